"""Fault tests: a known stream of QoS 1 messages through real Mosquitto into real TimescaleDB, while things
break. Afterwards the stored rows must equal the set sent, with no duplicates."""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg.rows import dict_row

from ingest.service import Ingester
from tests.conftest import REPO, free_port, register_equipment, wait_until
from tests.mqtt_helpers import StreamPublisher

BASE_TS = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
CODES = [f"EL-F-{i:03d}" for i in range(20)]


def message(code: str, seq: int) -> tuple[str, bytes]:
    ts = BASE_TS + timedelta(seconds=seq)
    body = {"ts": ts.isoformat(), "seq": seq, "floor": seq % 12, "door": "closed", "speed_mps": 1.0,
            "run_count": 1000 + seq}
    return f"sem/v1/elevator/{code}/telemetry", json.dumps(body).encode()


def stream(per_device: int) -> list[tuple[str, int]]:
    """The (code, seq) pairs sent, interleaved across devices as monitors would send them."""
    return [(code, seq) for seq in range(per_device) for code in CODES]


def stored(url: str) -> list[tuple[str, int]]:
    with psycopg.connect(url) as conn:
        return conn.execute("""SELECT e.code, t.seq FROM telemetry_elevator t JOIN equipment e ON e.id = t.equipment_id
                               ORDER BY 1, 2""").fetchall()


def stored_count(url: str) -> int:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            return conn.execute("SELECT count(*) FROM telemetry_elevator").fetchone()[0]
    except psycopg.OperationalError:
        return -1


def publish_paced(publisher: StreamPublisher, pairs: list[tuple[str, int]], per_second: float,
                  extra: Iterator[tuple[str, bytes]] | None = None) -> threading.Thread:
    """Publish in a background thread at about `per_second`, so that faults land mid-stream."""

    def run() -> None:
        started = time.monotonic()
        for index, (code, seq) in enumerate(pairs):
            publisher.publish(*message(code, seq))
            if extra is not None and index % 20 == 19:
                publisher.publish(*next(extra))
            ahead = index / per_second - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


_metrics_ports: dict[int, int] = {}


def scrape(ingester: Ingester, name: str) -> float:
    """A sample of the ingester's /metrics page as an operator's Prometheus reads it (served on first use)."""
    port = _metrics_ports.get(id(ingester))
    if port is None:
        port = _metrics_ports[id(ingester)] = free_port()
        ingester.metrics.serve(port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"{name} is not on /metrics")


def assert_stored_exactly(url: str, pairs: list[tuple[str, int]], timeout: float = 60) -> None:
    expected = sorted(set(pairs))
    wait_until(lambda: stored_count(url) >= len(expected), timeout=timeout,
               message=f"{len(expected)} rows (have {stored_count(url)})")
    time.sleep(0.5)  # anything still in flight would show up as an extra row now
    assert stored(url) == expected


class IngesterProcess:
    """`semon ingest` as its own process, so that it can be killed like a real one."""

    def __init__(self, config, client_id: str, shared_group: str = ""):
        self.env = {**os.environ, "SEMON_DATABASE_URL": config.database_url, "SEMON_MQTT_URL": config.mqtt_url,
                    "SEMON_MQTT_CLIENT_ID": client_id, "SEMON_MQTT_SHARED_GROUP": shared_group,
                    "SEMON_INGEST_METRICS_PORT": "0", "SEMON_INGEST_BATCH_MS": "50"}
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "semon.cli", "ingest"], env=self.env, cwd=REPO,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
        return self.process.returncode


@pytest.fixture
def fleet(db) -> list[str]:
    for code in CODES:
        register_equipment(db, code)
    return CODES


@pytest.fixture
def publisher(config) -> Iterator[StreamPublisher]:
    pub = StreamPublisher(config.mqtt_url, f"monitors-{secrets.token_hex(3)}")
    yield pub
    pub.close()


def establish_session(config) -> None:
    """Connect once so that the broker keeps a session (and queues messages) for this client id."""
    first = Ingester(config)
    first.start()
    assert first.wait_connected(10)
    first.stop()


def test_nothing_is_lost_when_the_broker_restarts_mid_stream(config, fleet, publisher, broker):
    pairs = stream(100)
    ingester = Ingester(config)
    ingester.start()
    assert ingester.wait_connected(10)
    try:
        sender = publish_paced(publisher, pairs, per_second=1000)
        wait_until(lambda: stored_count(config.database_url) > 300, message="the stream under way")
        broker.restart()
        sender.join(30)
        assert publisher.wait_all_acknowledged(30), "the broker never acknowledged part of the stream"
        assert_stored_exactly(config.database_url, pairs)
    finally:
        ingester.stop()


def publish_until(publisher: StreamPublisher, done: threading.Event, per_second: float
                  ) -> tuple[threading.Thread, list[tuple[str, int]]]:
    """Publish round after round of the fleet at about `per_second` until `done` is set; the pairs sent so far."""
    sent: list[tuple[str, int]] = []

    def run() -> None:
        started = time.monotonic()
        for seq in range(1_000_000):
            for code in CODES:
                publisher.publish(*message(code, seq))
                sent.append((code, seq))
                ahead = len(sent) / per_second - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            if done.is_set():
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, sent


def test_nothing_is_lost_when_the_database_restarts_mid_stream(config, fleet, publisher, restart_database):
    ingester = Ingester(config)
    ingester.start()
    assert ingester.wait_connected(10)
    try:
        # The stream runs from before the server stops until after it is back, however long a restart takes.
        restarted = threading.Event()
        sender, pairs = publish_until(publisher, restarted, per_second=700)
        wait_until(lambda: stored_count(config.database_url) > 300, message="the stream under way")
        restart_database()
        time.sleep(2)
        restarted.set()
        sender.join(30)
        assert publisher.wait_all_acknowledged(30)
        assert_stored_exactly(config.database_url, pairs, timeout=90)
        assert scrape(ingester, "semon_ingest_database_retries_total") >= 1, "the outage was never noticed"
    finally:
        ingester.stop()


def test_nothing_is_lost_when_the_ingester_is_killed_and_restarted(config, fleet, publisher):
    pairs = stream(150)
    establish_session(config.replace(mqtt_client_id="semon-kill-test"))
    ingester = IngesterProcess(config, "semon-kill-test")
    ingester.start()
    try:
        sender = publish_paced(publisher, pairs, per_second=1000)
        wait_until(lambda: stored_count(config.database_url) > 500, timeout=30, message="the stream under way")
        ingester.kill()
        killed_at = stored_count(config.database_url)
        time.sleep(0.5)
        ingester.start()
        sender.join(30)
        assert publisher.wait_all_acknowledged(30)
        assert killed_at < len(pairs), "the kill came too late to test anything"
        assert_stored_exactly(config.database_url, pairs)
    finally:
        ingester.terminate()


def test_two_ingesters_share_the_stream_and_lose_nothing_when_one_is_killed(config, fleet, publisher):
    pairs = stream(150)
    group = f"g{secrets.token_hex(3)}"
    for client_id in ("semon-shared-1", "semon-shared-2"):
        establish_session(config.replace(mqtt_client_id=client_id, mqtt_shared_group=group))
    first = IngesterProcess(config, "semon-shared-1", shared_group=group)
    second = IngesterProcess(config, "semon-shared-2", shared_group=group)
    first.start()
    second.start()
    try:
        sender = publish_paced(publisher, pairs, per_second=1000)
        wait_until(lambda: stored_count(config.database_url) > 500, timeout=30, message="the stream under way")
        second.kill()
        sender.join(30)
        assert publisher.wait_all_acknowledged(30)
        # What the killed one had received but not committed waits in its session until it is back.
        second.start()
        assert_stored_exactly(config.database_url, pairs)
    finally:
        assert first.terminate() == 0
        second.terminate()


def test_duplicates_and_out_of_order_messages_are_stored_once(config, fleet, publisher, db):
    pairs = stream(40)
    sent = pairs + random.Random(1).sample(pairs, 200)  # resends of a fifth of the stream
    random.Random(2).shuffle(sent)
    ingester = Ingester(config)
    ingester.start()
    assert ingester.wait_connected(10)
    try:
        for code, seq in sent:
            publisher.publish(*message(code, seq))
        assert publisher.wait_all_acknowledged(30)
        assert_stored_exactly(config.database_url, pairs)
        wait_until(lambda: ingester.totals.duplicates == 200, message="200 duplicates counted")
    finally:
        ingester.stop()
    # The latest state is that of the newest message, whatever order they arrived in.
    state = db.execute("""SELECT s.last_values, s.last_ts FROM equipment_state s JOIN equipment e
                          ON e.id = s.equipment_id WHERE e.code = %s""", (CODES[0],)).fetchone()
    assert state["last_ts"] == BASE_TS + timedelta(seconds=39)
    assert state["last_values"]["run_count"] == 1039


def malformed() -> Iterator[tuple[str, bytes]]:
    """Every kind of bad message a monitor or installer gets wrong, in turn."""
    ts = BASE_TS.isoformat()
    kinds = [
        (f"sem/v1/elevator/{CODES[0]}/telemetry", b"{this is not json"),
        (f"sem/v1/elevator/{CODES[1]}/telemetry", json.dumps({"ts": ts, "seq": 1, "floor": "two"}).encode()),
        ("sem/v1/elevator/EL-NOT-REGISTERED/telemetry", json.dumps({"ts": ts, "seq": 1}).encode()),
        (f"sem/v1/elevator/{CODES[2]}/telemetry", json.dumps({"seq": 5}).encode()),
        (f"sem/v1/boiler/{CODES[3]}/telemetry", json.dumps({"ts": ts, "seq": 1}).encode()),
    ]
    index = 0
    while True:
        yield kinds[index % len(kinds)]
        index += 1


def test_malformed_messages_mixed_in_are_each_dead_lettered_with_their_reason(config, fleet, publisher, db):
    pairs = stream(50)  # 1,000 good messages, one bad after every 20 good: about 5 %
    ingester = Ingester(config)
    ingester.start()
    assert ingester.wait_connected(10)
    try:
        sender = publish_paced(publisher, pairs, per_second=2000, extra=malformed())
        sender.join(30)
        assert publisher.wait_all_acknowledged(30)
        assert_stored_exactly(config.database_url, pairs)
        wait_until(lambda: db.execute("SELECT count(*) AS n FROM dead_letter").fetchone()["n"] == 50,
                   message="50 dead letters")
    finally:
        ingester.stop()
    reasons = db.execute("SELECT reason, count(*) AS n FROM dead_letter GROUP BY 1 ORDER BY 1").fetchall()
    assert {r["reason"]: r["n"] for r in reasons} == {
        "equipment 'EL-F-003' is registered as elevator, not boiler": 10,
        "field floor must be an integer, got \"two\"": 10,
        "missing ts": 10,
        "payload is not JSON: unexpected character, expected a string key: line 1 column 2 (char 1)": 10,
        "unknown equipment 'EL-NOT-REGISTERED'": 10,
    }


@pytest.fixture
def restart_database(db_url, base_config):
    """Restart the TimescaleDB server the tests use (the project's own), or cut every connection to the test
    database for a few seconds when the server is someone else's (SEMON_DATABASE_URL)."""

    def restart() -> None:
        if os.environ.get("SEMON_DATABASE_URL"):
            name = db_url.rsplit("/", 1)[1]
            with psycopg.connect(base_config.database_url, autocommit=True, row_factory=dict_row) as admin:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
                time.sleep(3)
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            return
        script = Path(REPO) / "scripts" / "timescaledb.sh"
        subprocess.run([str(script), "stop"], check=True, capture_output=True, timeout=60)
        time.sleep(1)
        subprocess.run([str(script), "start"], check=True, capture_output=True, timeout=120)

    return restart


def test_sigterm_commits_and_acknowledges_what_it_holds_before_exiting(config, fleet, publisher):
    pairs = stream(250)
    establish_session(config.replace(mqtt_client_id="semon-term-test"))
    ingester = IngesterProcess(config, "semon-term-test")
    ingester.start()
    sender = publish_paced(publisher, pairs, per_second=1000)
    wait_until(lambda: stored_count(config.database_url) > 200, timeout=30, message="the stream under way")
    assert ingester.terminate() == 0
    sender.join(30)
    assert publisher.wait_all_acknowledged(30)
    assert stored_count(config.database_url) < len(pairs), "the stop came too late to test anything"
    # Everything the stopped ingester committed was acknowledged: its successor receives no redelivery.
    successor = Ingester(config.replace(mqtt_client_id="semon-term-test"))
    successor.start()
    try:
        assert_stored_exactly(config.database_url, pairs)
        assert successor.totals.duplicates == 0
    finally:
        successor.stop()


def test_a_stalled_database_holds_the_stream_at_the_receive_maximum_and_loses_nothing(config, fleet, publisher,
                                                                                      db_url):
    window = 50
    ingester = Ingester(config.replace(ingest_buffer_size=window, ingest_batch_size=20))
    ingester.start()
    assert ingester.wait_connected(10)
    pairs = stream(30)  # 600 messages, 12 windows
    try:
        with psycopg.connect(db_url) as blocker:
            # Writes to telemetry block behind this lock as they would behind a database that stopped answering.
            blocker.execute("LOCK TABLE telemetry_elevator IN ACCESS EXCLUSIVE MODE")
            sender = publish_paced(publisher, pairs, per_second=2000)
            sender.join(30)
            wait_until(lambda: scrape(ingester, "semon_ingest_received_total") >= window, message="a full window")
            time.sleep(1.0)  # a broker ignoring the window would have sent the rest by now
            held = scrape(ingester, "semon_ingest_received_total")
            assert held == window, f"received {held} messages with {window} allowed unacknowledged"
            blocker.rollback()
        assert_stored_exactly(config.database_url, pairs)
    finally:
        ingester.stop()


def test_a_slow_database_never_makes_the_buffer_hold_more_than_the_receive_maximum(config, fleet, publisher,
                                                                                    monkeypatch):
    # Mosquitto 2.0 overshoots the Receive Maximum while acknowledgements flow; the buffer must stay bounded.
    from ingest import writer as writer_module

    write = writer_module.BatchWriter.write

    def slow_write(self, batch):
        time.sleep(0.1)
        return write(self, batch)

    monkeypatch.setattr(writer_module.BatchWriter, "write", slow_write)
    window = 200
    ingester = Ingester(config.replace(ingest_buffer_size=window, ingest_batch_size=50))
    ingester.start()
    assert ingester.wait_connected(10)
    peak, watching = 0, threading.Event()

    def watch() -> None:
        nonlocal peak
        while not watching.is_set():
            peak = max(peak, ingester.buffer.qsize())
            time.sleep(0.001)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    pairs = stream(150)  # 3,000 messages, 15 windows
    try:
        publish_paced(publisher, pairs, per_second=100_000).join(60)
        assert_stored_exactly(config.database_url, pairs)
    finally:
        watching.set()
        ingester.stop()
    assert 0 < peak <= window, f"the buffer held {peak} messages with a receive maximum of {window}"
