"""The ingester: MQTT QoS 1 with a persistent session, batched writes, ack only after commit."""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.messages import Rejected, parse_message
from ingest.writer import BatchWriter, DatabaseLookup, WriteResult
from semon.config import Config, mqtt_address
from semon.db import DatabaseUnavailable, connect, redact
from semon.vocabulary import TOPIC_ROOT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    generation: int    # which connection delivered it: a message id is only meaningful on its own connection
    mid: int
    qos: int
    topic: str
    payload: bytes


def subscription_topic(config: Config) -> str:
    """sem/v1/#, or its shared form when ingesters share the load."""
    topic = f"{TOPIC_ROOT}/#"
    return f"$share/{config.mqtt_shared_group}/{topic}" if config.mqtt_shared_group else topic


class Ingester:
    """Receives on the MQTT network thread, writes and acknowledges on one writer thread."""

    def __init__(self, config: Config):
        self.config = config
        self.buffer: queue.Queue[Received] = queue.Queue(maxsize=config.ingest_buffer_size)
        self.stopping = threading.Event()
        self.totals = WriteResult()
        self.received = 0
        self._generation = 0
        self._connected = threading.Event()
        self._writer_thread: threading.Thread | None = None
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.config.mqtt_client_id,
                             protocol=mqtt.MQTTv5, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        # Bounds what the broker pushes before we acknowledge; the rest waits in our session there.
        client.max_inflight_messages_set(1000)
        return client

    # --- MQTT network thread -----------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        self._generation += 1
        client.subscribe(subscription_topic(self.config), qos=1)
        self._connected.set()
        log.info("connected to %s (session present: %s)", self.config.mqtt_url, flags.session_present)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self.stopping.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        # Blocking here when the buffer is full is the back-pressure: we stop reading, the broker queues.
        self.buffer.put(Received(self._generation, message.mid, message.qos, message.topic, message.payload))
        self.received += 1

    # --- writer thread -----------------------------------------------------------------------------

    def _next_batch(self) -> list[Received]:
        batch: list[Received] = []
        deadline = time.monotonic() + self.config.ingest_batch_ms / 1000
        limit = self.config.ingest_batch_size
        while len(batch) < limit:
            timeout = deadline - time.monotonic()
            try:
                batch.append(self.buffer.get(timeout=max(timeout, 0)) if timeout > 0
                             else self.buffer.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write_loop(self) -> None:
        conn: psycopg.Connection | None = None
        writer: BatchWriter | None = None
        lookup: DatabaseLookup | None = None
        delay = 0.5
        pending: list[Received] = []
        while True:
            if not pending:
                if self.stopping.is_set() and self.buffer.empty():
                    break
                pending = self._next_batch()
                if not pending:
                    continue
            try:
                if conn is None or conn.closed:
                    conn = connect(self.config.database_url)
                    writer = BatchWriter(conn)
                    lookup = DatabaseLookup(conn)
                    delay = 0.5
                assert writer is not None and lookup is not None
                parsed = [parse_message(m.topic, m.payload, lookup) for m in pending]
                try:
                    result = writer.write(parsed)
                except psycopg.DataError:
                    result = self._write_one_by_one(writer, pending, parsed)
            except (psycopg.OperationalError, DatabaseUnavailable, psycopg.errors.AdminShutdown) as exc:
                # Keep the batch unacknowledged and retry: the broker redelivers whatever we lose now.
                log.warning("database write failed (%s); retrying in %.1fs", str(exc).strip()[:200], delay)
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(delay)
                delay = min(delay * 2, self.config.ingest_retry_max_s)
                continue
            self._acknowledge(pending)
            self._count(result)
            pending = []
        if conn is not None:
            conn.close()

    @staticmethod
    def _write_one_by_one(writer: BatchWriter, batch: list[Received], parsed: list) -> WriteResult:
        # A value the database refuses (a number beyond bigint, say) must not stall the whole batch.
        total = WriteResult()
        for message, item in zip(batch, parsed, strict=True):
            try:
                result = writer.write([item])
            except psycopg.DataError as exc:
                reason = f"database refused the values: {str(exc).strip().splitlines()[0]}"
                result = writer.write([Rejected(message.topic, message.payload, reason)])
            for name in ("stored", "duplicates", "dead_lettered", "statuses"):
                setattr(total, name, getattr(total, name) + getattr(result, name))
        return total

    def _acknowledge(self, batch: list[Received]) -> None:
        generation = self._generation
        for message in batch:
            # An id from an earlier connection could name another message now; the broker will redeliver.
            if message.qos > 0 and message.generation == generation:
                self.client.ack(message.mid, message.qos)

    def _count(self, result: WriteResult) -> None:
        self.totals.stored += result.stored
        self.totals.duplicates += result.duplicates
        self.totals.dead_lettered += result.dead_lettered
        self.totals.statuses += result.statuses

    # --- life cycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect (retrying in the background) and start writing."""
        address = mqtt_address(self.config.mqtt_url)
        if address.username:
            self.client.username_pw_set(address.username, address.password)
        connect_properties = Properties(PacketTypes.CONNECT)
        connect_properties.SessionExpiryInterval = self.config.mqtt_session_expiry_s
        self._writer_thread = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._writer_thread.start()
        self.client.connect_async(address.host, address.port, keepalive=30, clean_start=False,
                                  properties=connect_properties)
        self.client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        """True once connected and subscribed to the broker."""
        return self._connected.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Write and acknowledge everything received, then disconnect."""
        self.stopping.set()
        if self._writer_thread is not None:
            self._writer_thread.join(timeout)
        # Acks are queued on the client; give the network thread a moment to send them before leaving.
        deadline = time.monotonic() + 2
        while self.client.want_write() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.client.disconnect()
        self.client.loop_stop()
        log.info("ingester stopped: %s", self.totals)


def run_ingester(config: Config) -> None:
    """Run until SIGINT or SIGTERM, logging the rates once a minute."""
    connect(config.database_url).close()  # fail fast with a readable line if the database is not there
    ingester = Ingester(config)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    ingester.start()
    log.info("ingesting %s from %s into %s", subscription_topic(config), config.mqtt_url,
             redact(config.database_url))
    last = (time.monotonic(), 0, 0)
    while not stop.wait(60):
        now, stored = time.monotonic(), ingester.totals.stored
        rate = (stored - last[1]) / (now - last[0])
        log.info("stored %.0f/s; totals %s; buffer %d", rate, ingester.totals, ingester.buffer.qsize())
        last = (now, stored, 0)
    ingester.stop()
