"""What the benchmark runs in child processes: publishers and the two reference subscribers.

Each runs in a process of its own (multiprocessing, spawn) so that none shares a GIL with another or with
the ingester, and reports one result on a queue. A failure is reported as a string, never swallowed.
"""

from __future__ import annotations

import resource
import threading
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from typing import Any

from bench.fleet import SEQ_PHASE, ElevatorTelemetry, format_ts
from bench.rawmqtt import RawPublisher, drain_session

DRAIN_TS_STEP_MS = 5_000  # a monitor reporting every 5 s: the backlog of an outage
CHUNK = 500  # messages per socket write when publishing as fast as the broker takes them


@dataclass(frozen=True)
class PublishJob:
    host: str
    port: int
    client_id: str
    first_device: int
    devices: int
    phase: int                      # seq = phase * SEQ_PHASE + k
    messages_per_device: int = 0    # drain: this many per device, as fast as the broker acknowledges
    rate_per_s: float = 0.0         # live: paced at this rate for duration_s
    duration_s: float = 0.0
    start_at: float = 0.0           # time.time() at which all publishers of a phase start together
    stamp_sent_at: bool = False
    window: int = 2000              # most messages not yet acknowledged by the broker
    seed: int = 0


@dataclass
class PublishReport:
    client_id: str
    first_device: int
    published: int = 0
    acked: int = 0
    started: float = 0.0
    finished: float = 0.0           # when the last PUBACK arrived
    last_sent: float = 0.0          # when the last message was written
    counts: list[int] = field(default_factory=list)   # messages per device of the job's slice
    error: str = ""


def publish_main(job: PublishJob, results: Queue[Any]) -> None:
    """Publish one job's messages and put a PublishReport on `results`."""
    report = PublishReport(job.client_id, job.first_device, counts=[0] * job.devices)
    try:
        generator = ElevatorTelemetry(job.first_device, job.devices, job.seed)
        publisher = RawPublisher(job.host, job.port, job.client_id, window=job.window)
        delay = job.start_at - time.time()
        if delay > 0:
            time.sleep(delay)
        report.started = time.time()
        if job.rate_per_s > 0:
            _publish_paced(job, generator, publisher, report)
        else:
            _publish_backlog(job, generator, publisher, report)
        report.last_sent = time.time()
        if not publisher.wait_acked(120):
            raise TimeoutError(f"{publisher.published - publisher.acked} messages never acknowledged by the broker")
        report.finished = time.time()
        report.published, report.acked = publisher.published, publisher.acked
        publisher.disconnect()
    except Exception:  # noqa: BLE001 - the parent must see why, whatever it is
        report.error = traceback.format_exc()
    results.put(report)


def _publish_backlog(job: PublishJob, generator: ElevatorTelemetry, publisher: RawPublisher,
                     report: PublishReport) -> None:
    # Timestamps of an outage that just ended: the last message of each device is from about now.
    end_ms = int(time.time() * 1000)
    first_ms = end_ms - job.messages_per_device * DRAIN_TS_STEP_MS
    topics = generator.topics
    for k in range(job.messages_per_device):
        seq = job.phase * SEQ_PHASE + k
        base_ms = first_ms + k * DRAIN_TS_STEP_MS
        batch = []
        for j in range(job.devices):
            # Devices are not in step: each reports at its own offset within the 5 s.
            ts = format_ts(base_ms + (j * 7919) % DRAIN_TS_STEP_MS)
            batch.append((topics[j], generator.payload(j, seq, ts)))
            if len(batch) == CHUNK:
                publisher.publish_many(batch)
                batch = []
        if batch:
            publisher.publish_many(batch)
    report.counts = [job.messages_per_device] * job.devices


def _publish_paced(job: PublishJob, generator: ElevatorTelemetry, publisher: RawPublisher,
                   report: PublishReport) -> None:
    # Round-robin over the devices at the job's rate; every few milliseconds, send what is due by now.
    counts = report.counts
    topics = generator.topics
    started = time.monotonic()
    end = started + job.duration_s
    sent = 0
    j = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - started) * job.rate_per_s)
        if due <= sent:
            time.sleep(0.002)
            continue
        ts = format_ts(int(time.time() * 1000))
        batch = []
        for _ in range(min(due - sent, CHUNK)):
            seq = job.phase * SEQ_PHASE + counts[j]
            counts[j] += 1
            sent_at = time.time_ns() if job.stamp_sent_at else None
            batch.append((topics[j], generator.payload(j, seq, ts, sent_at)))
            j = (j + 1) % job.devices
        publisher.publish_many(batch)
        sent += len(batch)


@dataclass
class DrainReport:
    name: str
    received: int = 0
    connected_at: float = 0.0
    done_at: float = 0.0
    peak_rss_kb: int = 0
    error: str = ""


def paho_drain_main(host: str, port: int, client_id: str, receive_maximum: int, expected: int, timeout_s: float,
                    results: Queue[Any]) -> None:
    """The ceiling: a bare paho subscriber with the ingester's session settings that only acknowledges.

    MQTT 5, persistent session, QoS 1, the same Receive Maximum as the ingester, paho's automatic
    acknowledgement after on_message; no parsing, no database. Leaves no session behind.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    report = DrainReport("paho")
    done = threading.Event()
    try:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)

        def on_connect(client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
            report.connected_at = time.time()

        def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            report.received += 1
            if report.received >= expected:
                report.done_at = time.time()
                done.set()

        client.on_connect = on_connect
        client.on_message = on_message
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        properties.ReceiveMaximum = receive_maximum
        client.connect(host, port, keepalive=60, clean_start=False, properties=properties)
        client.loop_start()
        if not done.wait(timeout_s):
            raise TimeoutError(f"received {report.received} of {expected} in {timeout_s:.0f} s")
        deadline = time.monotonic() + 5
        while client.want_write() and time.monotonic() < deadline:  # the last PUBACKs
            time.sleep(0.01)
        # Session expiry 0 on DISCONNECT ends the session: it must not collect the live phases' messages.
        goodbye = Properties(PacketTypes.DISCONNECT)
        goodbye.SessionExpiryInterval = 0
        client.disconnect(properties=goodbye)
        client.loop_stop()
        report.peak_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except Exception:  # noqa: BLE001
        report.error = traceback.format_exc()
    results.put(report)


def raw_drain_main(host: str, port: int, client_id: str, expected: int, timeout_s: float,
                   results: Queue[Any]) -> None:
    """The broker's delivery ceiling: a socket-level QoS 1 subscriber that acknowledges in bulk."""
    from bench.rawmqtt import discard_session

    report = DrainReport("raw")
    try:
        def connected() -> None:
            report.connected_at = time.time()

        report.received = drain_session(host, port, client_id, expected, timeout_s, on_connected=connected)
        report.done_at = time.time()
        if report.received < expected:
            raise TimeoutError(f"received {report.received} of {expected} in {timeout_s:.0f} s")
        discard_session(host, port, client_id)
    except Exception:  # noqa: BLE001
        report.error = traceback.format_exc()
    results.put(report)
