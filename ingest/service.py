"""The ingester: MQTT QoS 1 with a persistent session, batched writes, ack only after commit."""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from dataclasses import fields
from typing import NamedTuple

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.messages import Parsed, Rejected, parse_message
from ingest.metrics import IngestMetrics
from ingest.writer import BatchWriter, DatabaseLookup, WriteResult
from models.rules.engine import Detector
from models.rules.runtime import RuleRunner
from models.rules.settings import settings_from_config
from semon import paho_properties
from semon.config import Config
from semon.db import DatabaseUnavailable, connect, redact
from semon.tls import endpoint
from semon.vocabulary import TOPIC_ROOT

ALERTS_TOPIC_PREFIX = f"{TOPIC_ROOT}/alerts/"

log = logging.getLogger(__name__)
paho_properties.install()
# MQTT 5 caps Receive Maximum at 65535 unacknowledged messages.
_MAX_RECEIVE = 65535


class Received(NamedTuple):  # a tuple: built for every message on the receive thread, so it must be cheap
    generation: int    # which connection delivered it: a message id is only meaningful on its own connection
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at: float  # time.monotonic()


def subscription_topic(config: Config) -> str:
    """sem/v1/#, or its shared form when ingesters share the load."""
    topic = f"{TOPIC_ROOT}/#"
    return f"$share/{config.mqtt_shared_group}/{topic}" if config.mqtt_shared_group else topic


class Ingester:
    """Receives on the MQTT network thread, writes and acknowledges on one writer thread.

    Back-pressure comes from MQTT 5's Receive Maximum: the broker sends at most ingest_buffer_size
    messages we have not acknowledged, so our buffer is bounded and the rest waits in our session.
    """

    def __init__(self, config: Config):
        self.config = config
        self.window = min(config.ingest_buffer_size, _MAX_RECEIVE)
        # Bounded at `window` messages by the broker's Receive Maximum and, where the broker overshoots, by
        # _wait_for_room. SimpleQueue costs a fraction of Queue per message.
        self.buffer: queue.SimpleQueue[Received] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.failed = threading.Event()  # the writer died of an unexpected error
        self._room = threading.Event()  # set by the writer each time it takes a batch from the buffer
        self._overflow_logged = False
        self.totals = WriteResult()
        self.metrics = IngestMetrics()
        self._generation = 0
        # Held while acknowledging and while the connection changes, so that no ack of an old message id
        # can be queued between paho's reconnect and our on_connect: it would acknowledge another message.
        self._ack_lock = threading.Lock()
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        self._writer_thread: threading.Thread | None = None
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.config.mqtt_client_id,
                             protocol=mqtt.MQTTv5, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        # Its own account (mqtt_username) and, for mqtts://, TLS: docs/monitors.md.
        self.endpoint = endpoint(self.config, "ingester")
        self.endpoint.configure(client)
        return client

    # --- MQTT network thread -----------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker %s refused the connection: %s", self.endpoint.describe(), reason_code)
            return
        with self._ack_lock:
            self._generation += 1
        client.subscribe(subscription_topic(self.config), qos=1)
        log.info("connected to %s (session present: %s)", self.endpoint.describe(), flags.session_present)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if any(code.is_failure for code in reason_codes):
            log.error("the broker refused the subscription to %s: %s", subscription_topic(self.config), reason_codes)
            return
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._ack_lock:
            self._generation += 1  # whatever the old connection delivered will be delivered again
        self._connected.clear()
        self._disconnected.set()
        if not self.stopping.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        if message.topic.startswith(ALERTS_TOPIC_PREFIX):
            # semon's own alerts out (docs/delivery.md), not a monitor's message: nothing to store or dead-letter.
            client.ack(message.mid, message.qos)
            return
        if self.buffer.qsize() >= self.window and not self.stopping.is_set():
            self._wait_for_room()
        self.buffer.put(Received(self._generation, message.mid, message.qos, message.topic, message.payload,
                                 time.monotonic()))
        self.metrics.received.inc()

    def _wait_for_room(self) -> None:
        # Mosquitto 2.0 keeps to our Receive Maximum while we acknowledge nothing, but not while acks flow
        # (a test saw 2,850 buffered with a window of 200). Not reading the socket until the writer has taken
        # a batch bounds the buffer anyway: TCP back-pressure holds the rest in the broker.
        if not self._overflow_logged:
            self._overflow_logged = True
            # Also after a reconnect: the old connection's messages are still written (not acknowledged) while
            # the broker resends them. While paused no PINGREQ goes out; keepalive is 300 s.
            log.warning("the buffer holds %d messages (the Receive Maximum); pausing reads until the writer "
                        "has taken a batch (logged once; counted in semon_ingest_read_pauses_total)", self.window)
        self.metrics.read_pauses.inc()
        while self.buffer.qsize() >= self.window and not self.stopping.is_set():
            self._room.wait(0.5)
            self._room.clear()

    # --- writer thread -----------------------------------------------------------------------------

    def _next_batch(self, limit: int) -> list[Received]:
        batch: list[Received] = []
        wait_s = self.config.ingest_batch_ms / 1000
        try:
            batch.append(self.buffer.get(timeout=wait_s))
        except queue.Empty:
            return batch
        # A batch is written once its oldest message has waited batch_ms: a quiet stream waits at most that
        # long, and a backlog (messages that waited through the previous write) is written at once.
        deadline = batch[0].received_at + wait_s
        while len(batch) < limit:
            try:
                batch.append(self.buffer.get_nowait())
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self.buffer.get(timeout=remaining))
                except queue.Empty:
                    break
        return batch

    def _write_loop(self) -> None:
        try:
            self._write_until_stopped()
        except Exception:
            # A bug, not a database outage: nothing more can be acknowledged, so say so and let the process
            # exit; what this ingester held is redelivered to its successor.
            log.exception("the writer failed; stopping")
            self.failed.set()

    def _write_until_stopped(self) -> None:
        conn: psycopg.Connection | None = None
        writer: BatchWriter | None = None
        lookup: DatabaseLookup | None = None
        delay = 0.5
        pending: list[Received] = []
        drain_left: int | None = None  # once stopping: how many held messages are still to be written
        while True:
            if not pending:
                limit = self.config.ingest_batch_size
                if self.stopping.is_set():
                    # Write what we hold now, not what keeps arriving: that stays unacknowledged and the broker
                    # delivers it to whoever takes over the session.
                    drain_left = self.buffer.qsize() if drain_left is None else drain_left
                    if drain_left <= 0:
                        break
                    limit = min(limit, drain_left)
                pending = self._next_batch(limit)
                self._room.set()
                if drain_left is not None:
                    drain_left -= len(pending)
                if not pending:
                    continue
            started = time.monotonic()
            try:
                if conn is None or conn.closed:
                    conn = connect(self.config.database_url)
                    lookup = DatabaseLookup(conn)
                    writer = BatchWriter(conn, self._rules(lookup))
                assert writer is not None and lookup is not None
                lookup.refresh()  # a registry change takes effect with the next batch (docs/ingest.md)
                parsed = [parse_message(m.topic, m.payload, lookup) for m in pending]
                try:
                    result = writer.write(parsed)
                except psycopg.DataError:
                    result = self._write_one_by_one(writer, pending, parsed)
            except (psycopg.OperationalError, DatabaseUnavailable) as exc:
                # Keep the batch unacknowledged and retry: the broker redelivers whatever we lose now.
                log.warning("database write failed (%s); retrying in %.1fs", str(exc).strip()[:200], delay)
                self.metrics.db_retries.inc()
                if conn is not None:
                    conn.close()
                conn = None
                if self.stopping.wait(delay) and not self._connected.is_set():
                    break  # stopping, and the broker is gone too: nothing could be acknowledged anyway
                delay = min(delay * 2, self.config.ingest_retry_max_s)
                continue
            delay = 0.5
            self._acknowledge(pending)
            self._count(result, parsed, len(pending), started, pending[0].received_at)
            pending = []
        if conn is not None:
            conn.close()

    def _rules(self, lookup: DatabaseLookup) -> RuleRunner | None:
        # The telemetry rules (docs/rules.md) run in the writer's transaction; rules_enabled=false is the
        # benchmarks' baseline and the way out should a rule misbehave in the field.
        if not self.config.rules_enabled:
            return None
        detector = Detector(settings_from_config(self.config), lookup.severities, lookup.labels)
        return RuleRunner(detector, lookup.equipment_info)

    @staticmethod
    def _write_one_by_one(writer: BatchWriter, batch: list[Received], parsed: list[Parsed]) -> WriteResult:
        # A value the database refuses must not stall the whole batch: find it, keep it as a dead letter.
        total = WriteResult()
        for index, (message, item) in enumerate(zip(batch, parsed, strict=True)):
            try:
                result = writer.write([item])
            except psycopg.DataError as exc:
                reason = f"database refused the values: {str(exc).strip().splitlines()[0]}"
                parsed[index] = Rejected(message.topic, message.payload, reason, "database_refused")
                result = writer.write([parsed[index]])
            total.add(result)
        return total

    def _acknowledge(self, batch: list[Received]) -> None:
        with self._ack_lock:
            generation = self._generation
            for message in batch:
                # An id from an earlier connection could name another message now; the broker will redeliver.
                if message.qos > 0 and message.generation == generation:
                    self.client.ack(message.mid, message.qos)

    def _count(self, result: WriteResult, parsed: list[Parsed], size: int, started: float,
               oldest_received: float) -> None:
        now = time.monotonic()
        self.totals.add(result)
        m = self.metrics
        m.stored.inc(result.stored)
        m.duplicates.inc(result.duplicates)
        m.statuses.inc(result.statuses)
        m.fields_refused.inc(result.fields_refused)
        m.fields_misspelt.inc(result.fields_misspelt)
        for item in parsed:
            if isinstance(item, Rejected):
                m.dead_lettered.labels(item.category).inc()
        m.batch_size.observe(size)
        m.commit_seconds.observe(now - started)
        m.lag_seconds.set(now - oldest_received)
        m.buffer_depth.set(self.buffer.qsize())

    # --- life cycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect (retrying in the background) and start writing."""
        address = self.endpoint
        connect_properties = Properties(PacketTypes.CONNECT)
        connect_properties.SessionExpiryInterval = self.config.mqtt_session_expiry_s
        connect_properties.ReceiveMaximum = self.window
        self._writer_thread = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._writer_thread.start()
        # paho drops the connection when a PINGRESP is late, and under a backlog the broker's reply queues
        # behind thousands of messages (seen > 30 s in bench/ingest.py): a long keepalive avoids needless
        # reconnects and redeliveries while draining.
        self.client.connect_async(address.host, address.port, keepalive=300, clean_start=False,
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
        # A barrier: the broker handles a connection's packets in order, so once it acknowledges a message
        # published after our acks, it has applied them all. Closing the socket while messages still stream
        # in can reset the connection and lose acks still unsent, and the broker would redeliver those.
        if self._connected.is_set():
            try:
                self.client.publish(f"semon/ingest/{self.config.mqtt_client_id}/stopping", b"",
                                    qos=1).wait_for_publish(timeout=5)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not confirm the last acknowledgements: %s", exc)
        self._disconnected.clear()
        self.client.disconnect()
        self._disconnected.wait(5)
        self.client.loop_stop()
        log.info("ingester stopped: %s", self.totals)


def run_ingester(config: Config) -> None:
    """Run until SIGINT or SIGTERM, logging the rates once a minute."""
    connect(config.database_url).close()  # fail fast with a readable line if the database is not there
    ingester = Ingester(config)
    if config.ingest_metrics_port:
        ingester.metrics.serve(config.ingest_metrics_port)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    ingester.start()
    log.info("ingesting %s from %s into %s%s", subscription_topic(config), ingester.endpoint.describe(),
             redact(config.database_url),
             f"; metrics on :{config.ingest_metrics_port}/metrics" if config.ingest_metrics_port else "")
    last_at, last = time.monotonic(), WriteResult()
    while not stop.wait(1) and not ingester.failed.is_set():
        now, totals = time.monotonic(), ingester.totals
        if now - last_at < 60:
            continue
        minutes = (now - last_at) / 60
        log.info("last minute: stored %.0f/s, duplicates %.0f/min, dead letters %.0f/min, refused fields %.0f/min; "
                 "buffer %d", (totals.stored - last.stored) / (now - last_at),
                 (totals.duplicates - last.duplicates) / minutes, (totals.dead_lettered - last.dead_lettered) / minutes,
                 (totals.fields_refused - last.fields_refused) / minutes, ingester.buffer.qsize())
        last_at, last = now, WriteResult(**{f.name: getattr(totals, f.name) for f in fields(WriteResult)})
    ingester.stop()
    if ingester.failed.is_set():
        raise SystemExit("semon ingest: the writer failed (see the error above); exiting")
