"""Simulated telemetry replayed at a fixed rate, for what the telemetry rules cost (bench/detection.py).

bench/fleet.py's payloads are random from one message to the next (a car on floor 3, then 17 a second later), which
the rules rightly take for faults: with them the cost phase would measure an alert storm, not the rules on ordinary
traffic. So each publisher process first makes its shard of a scenario's telemetry with the simulator's device
models (about 25 µs a message), then sends it paced, each message with the wall clock as its ts and
`sent_at_ns` (kept in the row's extra) for the publish-to-commit lag. Runs in a spawned process; reports one
ReplayReport on a queue, a failure as a string.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

from bench.fleet import format_ts
from bench.rawmqtt import RawPublisher

CHUNK = 500  # messages per write at most


@dataclass(frozen=True)
class ReplayJob:
    host: str
    port: int
    client_id: str
    scenario: str
    seed: int
    shard: tuple[int, int]          # this publisher's part of the fleet (FleetSimulation's shards)
    rate_per_s: float               # the whole fleet's rate: each monitor reports every fleet size / rate seconds
    duration_s: float
    window: int = 2000              # most messages not yet acknowledged by the broker


@dataclass
class ReplayReport:
    client_id: str
    messages: int = 0
    acked: int = 0
    generated_s: float = 0.0        # seconds spent making the telemetry before sending
    started: float = 0.0
    last_sent: float = 0.0
    finished: float = 0.0           # when the last PUBACK arrived
    error: str = ""


def prepare(job: ReplayJob, start: datetime) -> list[tuple[bytes, bytes]]:
    """The shard's telemetry for the job's duration from `start` (its hours of the day), in sending order: (topic,
    the JSON object after its ts)."""
    from simulators.scenario import load_scenario
    from simulators.simulation import FleetSimulation

    scenario = load_scenario(job.scenario)
    fleet_size = len(scenario.equipment_codes())
    simulation = FleetSimulation(scenario, job.seed, fleet_size / job.rate_per_s, shard=job.shard)
    messages = []
    for due in simulation.schedule():
        if due.at_s >= job.duration_s:
            break
        if due.action is not None:
            continue
        message = simulation.message(due, start + timedelta(seconds=due.at_s))
        payload = dict(message.payload)  # type: ignore[arg-type]
        del payload["ts"]
        body = json.dumps(payload, separators=(",", ":")).encode()
        messages.append((message.topic.encode(), body[1:]))
    return messages


def replay_main(job: ReplayJob, results: Queue[Any], go: Event, start_at: Any) -> None:
    """Make the shard's telemetry and say "ready" on `results`; once `go` is set, send it at its share of the rate
    from start_at.value (time.time()); then put the ReplayReport on `results`."""
    report = ReplayReport(job.client_id)
    try:
        began = time.monotonic()
        messages = prepare(job, datetime.now(UTC))
        report.generated_s = time.monotonic() - began
        publisher = RawPublisher(job.host, job.port, job.client_id, window=job.window)
        results.put(("ready", job.client_id))
        if not go.wait(600):
            raise TimeoutError("no start signal within 10 minutes")
        delay = start_at.value - time.time()
        if delay > 0:
            time.sleep(delay)
        rate = job.rate_per_s / job.shard[1]
        report.started = time.time()
        started = time.monotonic()
        sent = 0
        while sent < len(messages):
            due = min(int((time.monotonic() - started) * rate), len(messages))
            if due <= sent:
                time.sleep(0.002)
                continue
            ts = format_ts(int(time.time() * 1000)).encode()
            batch = []
            for topic, body in messages[sent:min(due, sent + CHUNK)]:
                batch.append((topic, b'{"ts":"' + ts + b'","sent_at_ns":' + str(time.time_ns()).encode() + b","
                              + body))
            publisher.publish_many(batch)
            sent += len(batch)
        report.last_sent = time.time()
        if not publisher.wait_acked(120):
            raise TimeoutError(f"{publisher.published - publisher.acked} messages never acknowledged by the broker")
        report.finished = time.time()
        report.messages, report.acked = publisher.published, publisher.acked
        publisher.disconnect()
    except Exception:  # noqa: BLE001 - the parent must see why, whatever it is
        report.error = traceback.format_exc()
    results.put(("done", report))
