"""A test-side MQTT publisher that waits for the broker's acknowledgements."""

from __future__ import annotations

import json
from typing import Any

import paho.mqtt.client as mqtt

from semon.config import mqtt_address


class Publisher:
    """Publishes at QoS 1 and waits until the broker has acknowledged each message."""

    def __init__(self, url: str, client_id: str = ""):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        address = mqtt_address(url)
        self.client.connect(address.host, address.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: Any, qos: int = 1, retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else (
            payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
        self.client.publish(topic, data, qos=qos, retain=retain).wait_for_publish(timeout=10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
