"""Does a flood of bad messages slow the good ones by more than it costs to store them?

Two drains of the ingester's persistent session, each timed from the ingester's "connected" line to the
moment its metrics show everything stored:
  1. GOOD messages only (contract-valid elevator telemetry);
  2. GOOD new good messages with as many bad ones interleaved one to one: payloads that are not JSON,
     unknown equipment, a field of the wrong type, no ts (each dead-lettered with its reason).
The cost of a good message is the first drain's time per message; the cost of a bad one is the extra time
of the second drain per bad message. A bad message must cost no more than a good one: both are one row
stored (telemetry or dead letter), and a bad one needs less parsing. Delivery is checked in SQL: every good
message stored once, every bad one in dead_letter.

    .venv/bin/python bench/flood.py      (TimescaleDB up; `make bench` runs it after bench/ingest.py)
    BENCH_FLOOD_MESSAGES  good messages per drain (100000)

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent  # see bench/ingest.py: keep this directory from shadowing `ingest`
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import json  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from itertools import cycle  # noqa: E402

import psycopg  # noqa: E402

from bench.fleet import SEQ_PHASE, ElevatorTelemetry, equipment_code, format_ts, register_fleet  # noqa: E402
from bench.rawmqtt import RawPublisher  # noqa: E402
from bench.services import IngesterProcess, PrivateBroker  # noqa: E402
from ingest.service import Ingester  # noqa: E402
from semon.config import load_config  # noqa: E402
from semon.db import create_database, drop_database, redact  # noqa: E402
from semon.migrate import migrate  # noqa: E402

DEVICES = 2_000
TS_STEP_MS = 5_000


def log(message: str) -> None:
    print(message, flush=True)


def bad_messages(count: int) -> list[tuple[bytes, bytes, str]]:
    """(topic, payload, kind) for `count` invalid messages, the kinds in turn."""
    kinds = cycle([
        ("not_json", lambda i: (f"sem/v1/elevator/{equipment_code(i % DEVICES)}/telemetry", b"{\"ts\": oops")),
        ("unknown_equipment", lambda i: (f"sem/v1/elevator/99{i:018d}/telemetry",
                                         json.dumps({"ts": format_ts(1_790_000_000_000), "seq": i}).encode())),
        ("bad_field", lambda i: (f"sem/v1/elevator/{equipment_code(i % DEVICES)}/telemetry",
                                 json.dumps({"ts": format_ts(1_790_000_000_000), "seq": 9 * SEQ_PHASE + i,
                                             "floor": "two"}).encode())),
        ("bad_ts", lambda i: (f"sem/v1/elevator/{equipment_code(i % DEVICES)}/telemetry",
                              json.dumps({"seq": i, "floor": 3}).encode())),
    ])
    out = []
    for i in range(count):
        kind, make = next(kinds)
        topic, payload = make(i)
        out.append((topic.encode(), payload, kind))
    return out


def good_messages(per_device: int, phase: int) -> list[tuple[bytes, bytes]]:
    generator = ElevatorTelemetry(0, DEVICES, seed=phase)
    end_ms = int(time.time() * 1000)
    first_ms = end_ms - per_device * TS_STEP_MS
    return [(generator.topics[j], generator.payload(j, phase * SEQ_PHASE + k,
                                                    format_ts(first_ms + k * TS_STEP_MS + j)))
            for k in range(per_device) for j in range(DEVICES)]


def publish(broker: PrivateBroker, messages: list[tuple[bytes, bytes]]) -> None:
    host, port = "127.0.0.1", int(broker.url.rsplit(":", 1)[1])
    publisher = RawPublisher(host, port, f"semon-flood-pub-{secrets.token_hex(3)}")
    publisher.publish_many(messages)
    if not publisher.wait_acked(120):
        raise TimeoutError("the broker did not acknowledge every message")
    publisher.disconnect()


def drain(settings: dict[str, str], stored: int, dead: int) -> float:
    """Start an ingester process, wait until it has stored and dead-lettered that many, stop it; seconds taken."""
    ingester = IngesterProcess(settings)
    ingester.start()
    try:
        if not ingester.connected.wait(30):
            raise RuntimeError("the ingester did not connect:\n" + "\n".join(ingester.log))
        deadline = time.monotonic() + 600
        while True:
            try:
                counters = ingester.counters()
            except OSError:
                counters = None
            if counters and counters.stored >= stored and counters.dead_lettered >= dead:
                return counters.at - ingester.connected_at
            if time.monotonic() > deadline or not ingester.running():
                raise RuntimeError(f"the drain did not finish: {counters}\n" + "\n".join(ingester.log))
            time.sleep(0.05)
    finally:
        ingester.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # SIGTERM must unwind like Ctrl-C so that the ingester and the broker are stopped and the database dropped.
    signal.signal(signal.SIGTERM, _interrupt)
    good = int(os.environ.get("BENCH_FLOOD_MESSAGES", 100_000))
    per_device = max(1, good // DEVICES)
    good = per_device * DEVICES
    config = load_config()
    log(f"semon flood benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average "
        + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    with ExitStack() as stack:
        name = f"semon_flood_{os.getpid()}_{secrets.token_hex(3)}"
        db_url = create_database(config.database_url, name)
        stack.callback(drop_database, config.database_url, name)
        migrate(db_url)
        with psycopg.connect(db_url) as conn:
            register_fleet(conn, DEVICES)
        broker = PrivateBroker(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="semon-flood-"))))
        broker.start()
        stack.callback(broker.stop)
        log(f"database {redact(db_url)}, {DEVICES:,} elevators; broker {broker.url}")
        client_id = f"semon-flood-ingest-{secrets.token_hex(3)}"
        ingester_config = config.replace(database_url=db_url, mqtt_url=broker.url, mqtt_client_id=client_id,
                                         ingest_metrics_port=0)
        primer = Ingester(ingester_config)
        primer.start()
        if not primer.wait_connected(15):
            raise RuntimeError("the ingester did not connect to the benchmark's broker")
        primer.stop()
        settings = {"SEMON_DATABASE_URL": db_url, "SEMON_MQTT_URL": broker.url, "SEMON_MQTT_CLIENT_ID": client_id}

        publish(broker, good_messages(per_device, 1))
        good_s = drain(settings, good, 0)
        log(f"good only: {good:,} messages stored in {good_s:.2f} s = {good / good_s:,.0f}/s")

        bad = bad_messages(good)
        mixed = [m for pair in zip(good_messages(per_device, 2), ((t, p) for t, p, _ in bad), strict=True)
                 for m in pair]
        publish(broker, mixed)
        mixed_s = drain(settings, good, good)  # counters start at 0 in each process
        log(f"good + bad 1:1: {len(mixed):,} messages ({good:,} stored, {good:,} dead-lettered) in {mixed_s:.2f} s "
            f"= {len(mixed) / mixed_s:,.0f}/s; good ones at {good / mixed_s:,.0f}/s")

        with psycopg.connect(db_url) as conn:
            rows, distinct = conn.execute("SELECT count(*), count(DISTINCT (equipment_id, seq)) "
                                          "FROM telemetry_elevator").fetchone()
            dead_rows = conn.execute("SELECT count(*) FROM dead_letter").fetchone()[0]
            by_kind = dict(conn.execute("SELECT split_part(split_part(reason, ':', 1), '''', 1), count(*) "
                                     "FROM dead_letter GROUP BY 1")
                           .fetchall())
    good_us = good_s / good * 1e6
    bad_us = (mixed_s - good_s) / good * 1e6
    results = {
        "good_only_per_s": round(good / good_s), "mixed_per_s": round(len(mixed) / mixed_s),
        "good_in_mixed_per_s": round(good / mixed_s), "us_per_good": round(good_us, 1),
        "us_per_bad": round(bad_us, 1), "bad_over_good_cost": round(bad_us / good_us, 2),
        "stored_rows": rows, "lost": 2 * good - distinct, "duplicated": rows - distinct,
        "dead_letter_rows": dead_rows, "dead_letter_missing": good - dead_rows,
        "target bad cost <= good cost": bad_us <= good_us,
    }
    log(f"dead letters by reason: {by_kind}")
    log(f"a good message costs {good_us:.1f} µs, a bad one {bad_us:.1f} µs ({results['bad_over_good_cost']}×): "
        f"target {'met' if results['target bad cost <= good cost'] else 'MISSED'}")
    log(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
