"""Test-side MQTT clients: a publisher that waits for the broker's acknowledgements, and a subscriber; and the
accounts of the tests' brokers."""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from semon.tls import endpoint_from_url

# The service accounts every broker of the tests has (tests/conftest.py), one password each per test session: the
# simulator's publishes as any monitor (the tests' publishers use it: it is in the brokers' URL), the ingester's
# reads everything (the tests' subscribers use it too).
INGESTER = ("semon-ingest", secrets.token_urlsafe(24))
SIMULATOR = ("semon-simulator", secrets.token_urlsafe(24))


def _connect(client: mqtt.Client, url: str, username: str | None, password: str | None, ca_file: str | None,
             **options: Any) -> None:
    """Connect with the URL's account, or the one given, over TLS for mqtts:// (trusting ca_file)."""
    endpoint = endpoint_from_url(url, username=username or "", password=password or "", ca_file=ca_file or "")
    endpoint.configure(client)
    client.connect(endpoint.host, endpoint.port, **options)


class Publisher:
    """Publishes at QoS 1 and waits until the broker has acknowledged each message."""

    def __init__(self, url: str, client_id: str = "", *, username: str | None = None, password: str | None = None,
                 ca_file: str | None = None):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        _connect(self.client, url, username, password, ca_file)
        self.client.loop_start()

    def publish(self, topic: str, payload: Any, qos: int = 1, retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else (
            payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
        self.client.publish(topic, data, qos=qos, retain=retain).wait_for_publish(timeout=10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class StreamPublisher:
    """A monitor-side QoS 1 stream with a persistent session: unacknowledged messages survive a broker restart."""

    def __init__(self, url: str, client_id: str):
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=1)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 600
        _connect(self.client, url, None, None, None, clean_start=False, properties=properties)
        self.mids: list[int] = []
        self.acknowledged: set[int] = set()
        # on_publish, not MQTTMessageInfo.is_published(): a message published while the broker is away
        # reports "not connected" there, yet paho queues it and sends it once reconnected.
        self.client.on_publish = lambda client, userdata, mid, reason_code, properties: self.acknowledged.add(mid)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        self.mids.append(self.client.publish(topic, payload, qos=1).mid)

    def wait_all_acknowledged(self, timeout: float) -> bool:
        """True once the broker has acknowledged every message published so far."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.acknowledged.issuperset(self.mids):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Subscriber:
    """Collects every message on `topic` (sem/v1/#) with its retain flag and arrival time, and each as paho gave it
    (`raw`); as the ingester's account, which may read them, unless told otherwise. Ready once the broker has
    acknowledged the subscription."""

    def __init__(self, url: str, *, username: str = INGESTER[0], password: str = INGESTER[1],
                 topic: str = "sem/v1/#"):
        self.messages: list[tuple[str, bytes, bool, float]] = []
        self.raw: list[mqtt.MQTTMessage] = []
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: subscribed.set()
        _connect(self.client, url, username, password, None)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        if not subscribed.wait(10):
            self.close()
            raise TimeoutError(f"the broker at {url} did not acknowledge the subscription to {topic} in 10 s")

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            self.messages.append((message.topic, message.payload, bool(message.retain), time.monotonic()))
            self.raw.append(message)

    def received(self, channel: str, retained: bool | None = None,
                 district: str | None = None) -> list[tuple[str, bytes, bool, float]]:
        """Messages of one channel, optionally only (not) retained ones or one district's (-<code>- in the topic)."""
        with self.lock:
            return [m for m in self.messages if m[0].endswith("/" + channel)
                    and (retained is None or m[2] == retained)
                    and (district is None or f"-{district}-" in m[0])]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
