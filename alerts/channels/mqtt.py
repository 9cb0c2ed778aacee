"""MQTT: the message's JSON published at QoS 1 on sem/v1/alerts/<party> of semon's own broker, with the
ingester's account (semon.tls.endpoint; its ACL grants that topic, docs/monitors.md)."""

from __future__ import annotations

import json
import threading
from datetime import datetime

import paho.mqtt.client as mqtt

from alerts.channels import Message, SendError, Target
from semon.config import Config
from semon.tls import MqttEndpoint, endpoint
from semon.vocabulary import TOPIC_ROOT

ALERTS_TOPIC = f"{TOPIC_ROOT}/alerts"


def topic(party: str) -> str:
    """The topic of a party's alerts: sem/v1/alerts/<firm id>, or u<id> / d<id> for a use unit or a district."""
    return f"{ALERTS_TOPIC}/{party}"


class Mqtt:
    """Alerts for systems that listen on the broker (a firm's dispatch screen)."""

    name = "mqtt"
    idempotent = True  # the payload carries its idempotency key

    def __init__(self, where: MqttEndpoint, timeout_s: float, client_id: str = ""):
        self.where = where
        self.timeout_s = timeout_s
        self.client_id = client_id
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Config) -> Mqtt:
        """The channel on the configured broker, as the ingester's account."""
        return cls(endpoint(config, "ingester"), config.delivery_timeout_s)

    def send(self, target: Target, message: Message, now: datetime) -> None:
        """Publish at QoS 1 and wait for the broker's acknowledgement."""
        body = json.dumps({"idempotency_key": message.idempotency_key, **message.payload}, ensure_ascii=False)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        self.where.configure(client)
        with self._lock:  # one connection at a time: a burst of MQTT alerts is rare, a connection each is enough
            try:
                client.connect(self.where.host, self.where.port, keepalive=30)
            except OSError as exc:
                raise SendError(f"MQTT {self.where.describe()}: {exc}") from None
            connected = threading.Event()
            refused: list[str] = []

            def on_connect(client, userdata, flags, reason_code, properties) -> None:
                if reason_code.is_failure:
                    refused.append(str(reason_code))
                connected.set()

            client.on_connect = on_connect
            # A publication the broker's ACL refuses is acknowledged with a failure code (MQTT 5), not dropped quietly.
            client.on_publish = lambda client, userdata, mid, reason_code, properties: (
                refused.append(f"refused: {reason_code}") if reason_code.is_failure else None)
            client.loop_start()
            try:
                if not connected.wait(self.timeout_s) or refused:
                    raise SendError(f"MQTT {self.where.describe()}: not connected "
                                    f"({refused[0] if refused else 'no answer'})")
                info = client.publish(topic(target.party), body.encode(), qos=1)
                info.wait_for_publish(timeout=self.timeout_s)
                if not info.is_published():
                    raise SendError(f"MQTT {self.where.describe()}: no acknowledgement within {self.timeout_s} s",
                                    ambiguous=True)
                if refused:
                    raise SendError(f"MQTT {self.where.describe()}: {refused[0]} on {topic(target.party)}",
                                    permanent=True)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    raise SendError(f"MQTT {self.where.describe()}: {mqtt.error_string(info.rc)}", ambiguous=True)
            except (RuntimeError, ValueError) as exc:
                raise SendError(f"MQTT {self.where.describe()}: {exc}", ambiguous=True) from None
            finally:
                client.disconnect()
                client.loop_stop()
