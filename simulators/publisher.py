"""One MQTT connection that publishes for many simulated monitors and counts what the broker acknowledged."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

import paho.mqtt.client as mqtt

from semon import paho_properties
from semon.tls import MqttEndpoint
from simulators.simulation import Message

log = logging.getLogger(__name__)

# Bounded like a monitor's flash buffer: while the broker is away, messages beyond this are dropped (and
# counted) instead of growing the process without limit.
MAX_QUEUED_MESSAGES = 100_000


class Publisher:
    """Publishes at QoS 1 over one connection that paho keeps reconnecting; thread-safe."""

    def __init__(self, endpoint: MqttEndpoint, client_id: str, on_connected: Callable[[], None] | None = None):
        # paho builds a Properties object for every PUBACK, even over MQTT 3.1.1: a fifth of the publishing
        # cost at 1,000 messages/s. The ingester's cheaper, tested drop-in does for acks what it does for it.
        paho_properties.install()
        self.host, self.port, self.endpoint = endpoint.host, endpoint.port, endpoint
        self.on_connected = on_connected
        self.connected = threading.Event()
        self.ever_connected = False
        self.acked: Counter[str] = Counter()
        self.dropped = 0
        self.published = 0  # handed to paho (acknowledged or not)
        self._lock = threading.Lock()
        self._pending: dict[int, str] = {}
        self._early_acks: set[int] = set()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                             clean_session=True)
        # The simulator's own account (simulate_mqtt_username) and, for mqtts://, TLS: docs/monitors.md.
        endpoint.configure(client)
        client.max_inflight_messages_set(200)
        client.max_queued_messages_set(MAX_QUEUED_MESSAGES)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client

    def start(self) -> None:
        """Connect in the background; paho retries until the broker answers."""
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def publish(self, message: Message) -> bool:
        """Queue a message at QoS 1; False if it was dropped because the outgoing queue is full."""
        info = self.client.publish(message.topic, message.encode(), qos=1, retain=message.retain)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            with self._lock:
                self.dropped += 1
            return False
        # NO_CONN is fine at QoS 1: paho keeps the message and sends it once reconnected.
        with self._lock:
            self.published += 1
            if info.mid in self._early_acks:
                self._early_acks.discard(info.mid)
                self.acked[message.channel] += 1
            else:
                self._pending[info.mid] = message.channel
        return True

    def acked_counts(self) -> dict[str, int]:
        """Messages the broker acknowledged so far, per channel."""
        with self._lock:
            return dict(self.acked)

    def unacknowledged(self) -> int:
        """How many published messages the broker has not acknowledged yet."""
        with self._lock:
            return len(self._pending)

    def wait_for_acks(self, timeout_s: float) -> bool:
        """Wait until the broker acknowledged everything published; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.unacknowledged():
            if time.monotonic() > deadline or not self.connected.is_set():
                return False
            time.sleep(0.02)
        return True

    def stop(self) -> None:
        """Disconnect cleanly and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker %s refused the connection: %s", self.endpoint.describe(), reason_code)
            return
        log.info("connected to MQTT broker %s:%s", self.host, self.port)
        self.ever_connected = True
        # Before `connected` wakes the publishing loop, so "online" goes out ahead of any telemetry.
        if self.on_connected is not None:
            self.on_connected()
        self.connected.set()

    def _on_connect_fail(self, client, userdata) -> None:
        log.warning("cannot reach MQTT broker %s:%s; retrying", self.host, self.port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if reason_code.is_failure:
            log.warning("lost MQTT broker %s:%s (%s); reconnecting", self.host, self.port, reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # paho may deliver the ack before publish() returned the mid to us; remember it for publish().
        with self._lock:
            channel = self._pending.pop(mid, None)
            if channel is None:
                self._early_acks.add(mid)
            else:
                self.acked[channel] += 1
