"""`semon check-monitor` through the real broker: a simulated elevator (simulators/) that does everything right
passes, and each way of getting the contract wrong is named (docs/vendors.md)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from semon.check_monitor import FIX, OK, WARN, Report, check_monitor
from semon.config import Config
from simulators.devices import make_device
from simulators.fleet import Equipment
from tests.conftest import register_equipment
from tests.mqtt_helpers import Publisher, _connect

# Fast, so that a check of a few seconds sees many heartbeats: semon shows a monitor offline after 3 × 0.3 s.
HEARTBEAT_S = 0.3
LISTEN_S = 2.5
CODES = itertools.count(1)
Shape = Callable[[int, dict[str, Any]], list[dict[str, Any] | bytes]]


def as_is(n: int, payload: dict[str, Any]) -> list[dict[str, Any] | bytes]:
    return [payload]


class SimulatedMonitor:
    """A simulated elevator on the test broker, on the real clock: telemetry every `interval_s`, a retained `online`
    on connecting and every `heartbeat_s`, a retained `offline` last will. `shape` turns each reading into what is
    sent (the way a bad monitor gets it wrong); `drop_after_s` cuts the connection without a word, as a power cut
    does."""

    def __init__(self, url: str, code: str, *, shape: Shape = as_is, interval_s: float = 0.1,
                 heartbeat_s: float | None = HEARTBEAT_S, status: bool = True, retain_status: bool = True,
                 will: bool = True, drop_after_s: float | None = None):
        equipment = Equipment(code, "elevator", "Xuhui District", "1 Test Road", "Block 1", "Shenghui Elevator Service",
                              "021-5555", date(2015, 6, 1), "in_use", date(2026, 6, 1), rated_speed_mps=1.75,
                              rated_load_kg=1000, floors=18)
        self.device = make_device(equipment, seed=7)
        self.topic = f"sem/v1/elevator/{code}"
        self.shape, self.interval_s, self.heartbeat_s = shape, interval_s, heartbeat_s
        self.status, self.retain_status, self.drop_after_s = status, retain_status, drop_after_s
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"monitor-{code}", protocol=mqtt.MQTTv5)
        if will:
            self.client.will_set(f"{self.topic}/status", b"offline", qos=1, retain=True)
        self.url = url
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        _connect(self.client, self.url, None, None, None, keepalive=5)
        self.client.loop_start()
        if self.status:
            self._publish("status", b"online", retain=self.retain_status)
        self.thread.start()

    def _publish(self, channel: str, payload: dict[str, Any] | bytes, retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(f"{self.topic}/{channel}", data, qos=1, retain=retain)

    def _run(self) -> None:
        started = last_heartbeat = time.monotonic()
        n = 0
        while not self.stopping.wait(self.interval_s):
            if self.drop_after_s is not None and time.monotonic() - started > self.drop_after_s:
                # No DISCONNECT: the broker sees the connection die and publishes the last will, if any.
                self.client.loop_stop()
                self.client.socket().close()
                return
            for payload in self.shape(n, self.device.step(datetime.now(UTC))):
                self._publish("telemetry", payload)
            n += 1
            if self.status and self.heartbeat_s and time.monotonic() - last_heartbeat >= self.heartbeat_s:
                self._publish("status", b"online", retain=self.retain_status)
                last_heartbeat = time.monotonic()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        if self.client.socket() is not None:
            self.client.disconnect()
            self.client.loop_stop()


@pytest.fixture
def check_config(config: Config) -> Config:
    return config.replace(heartbeat_interval_s=HEARTBEAT_S, offline_after_missed_heartbeats=3)


@pytest.fixture
def run_check(db, broker, check_config) -> Iterator[Callable[..., Report]]:
    """Check a freshly registered elevator while a simulated monitor, made with the options given, publishes."""
    monitors: list[SimulatedMonitor] = []

    def run(**options: Any) -> Report:
        code = f"EL-CHECK-{next(CODES)}"  # the broker keeps an earlier test's retained status
        register_equipment(db, code)
        monitor = SimulatedMonitor(broker.url, code, **options)
        monitors.append(monitor)
        return check_monitor(check_config, code, LISTEN_S, on_start=[monitor.start])

    yield run
    for monitor in monitors:
        monitor.stop()
    # The broker outlives the test: a retained status left behind would reach the next test's ingester.
    cleaner = Publisher(broker.url)
    for monitor in monitors:
        cleaner.publish(f"{monitor.topic}/status", b"", retain=True)
    cleaner.close()


def findings(report: Report, check: str) -> list[str]:
    return [f"{f.level}: {f.text}" for f in report.findings if f.check == check]


def test_a_simulated_monitor_that_keeps_the_contract_passes(run_check):
    report = run_check()

    assert report.must_fix == [], report.text()
    assert report.checks(OK) >= {"contract", "seq", "clock_skew", "status_retained", "heartbeat", "silence",
                                 "last_will", "fields_never_sent", "counter_backwards"}
    assert report.checks(WARN) == set()
    assert report.counts["telemetry"] > 15 and report.counts["status"] >= 4
    assert report.text().endswith("结论 Verdict: nothing to fix")


def test_a_monitor_that_loses_its_connection_leaves_its_last_will(run_check):
    report = run_check(drop_after_s=1.0)

    assert report.must_fix == [], report.text()
    assert findings(report, "last_will")[0].startswith("ok: it left at ")


def test_payloads_that_break_the_contract_are_named_with_the_ingesters_reason(run_check):
    def wrong(n: int, payload: dict[str, Any]) -> list[dict[str, Any] | bytes]:
        if n % 3 == 0:
            return [{**payload, "floor": "third"}]
        if n % 3 == 1:
            return [{**payload, "load_pct": -5, "speed_ms": 1.0}]
        return [payload]

    report = run_check(shape=wrong)

    assert report.checks(FIX) == {"contract", "refused_fields", "misspelt_fields"}
    contract, = findings(report, "contract")
    assert "break the contract and are dead-lettered" in contract
    assert '× field floor must be an integer, got "third"' in contract
    refused, = findings(report, "refused_fields")
    assert "× field load_pct must be between 0 and 300, got -5 (a load is never negative" in refused
    misspelt, = findings(report, "misspelt_fields")
    assert "× field speed_ms is unknown; did you mean speed_mps?" in misspelt


def test_seq_gaps_repeats_and_reversals_are_named(run_check):
    held: list[dict[str, Any]] = []

    def jumbled(n: int, payload: dict[str, Any]) -> list[dict[str, Any] | bytes]:
        seq = payload["seq"] * 2  # counts by two: every other number missing
        if n % 5 == 4:
            return [{**payload, "seq": seq - 2}]  # the number of the message before, on another message
        if n % 5 == 1:
            held.append({**payload, "seq": seq})  # sent after the next one
            return []
        return [{**payload, "seq": seq}, *[held.pop() for _ in list(held)]]

    report = run_check(shape=jumbled)

    assert {"seq_repeat", "seq_reversal"} <= report.checks(FIX)
    assert "seq_gap" in report.checks(WARN)
    assert "seq number(s) used for two different messages" in findings(report, "seq_repeat")[0]
    assert "seq went back" in findings(report, "seq_reversal")[0]
    assert "never reached the broker" in findings(report, "seq_gap")[0]


def test_a_repeated_message_alike_is_a_harmless_redelivery(run_check):
    report = run_check(shape=lambda n, payload: [payload, payload] if n % 4 == 0 else [payload])

    assert report.must_fix == [], report.text()
    assert findings(report, "seq_redelivered")[0].startswith("ok: ")


def test_a_clock_off_by_half_a_minute_is_named(run_check):
    def late(n: int, payload: dict[str, Any]) -> list[dict[str, Any] | bytes]:
        ts = datetime.fromisoformat(payload["ts"]) - timedelta(seconds=30)
        return [{**payload, "ts": ts.isoformat(timespec="milliseconds")}]

    report = run_check(shape=late)

    skew, = findings(report, "clock_skew")
    assert skew.startswith("fix: the monitor's clock is 30.")
    assert "s behind the server's; synchronise it (NTP)" in skew


def test_local_time_sent_as_utc_is_named_as_a_wrong_offset(run_check):
    def local_as_utc(n: int, payload: dict[str, Any]) -> list[dict[str, Any] | bytes]:
        ts = datetime.fromisoformat(payload["ts"]).astimezone(UTC) + timedelta(hours=8)
        return [{**payload, "ts": ts.isoformat(timespec="milliseconds")}]

    report = run_check(shape=local_as_utc)

    skew, = findings(report, "clock_skew")
    assert "ahead of the server's; 8 h looks like local time sent with the wrong UTC offset" in skew


def test_a_monitor_without_status_or_heartbeat_is_told_to_send_them(run_check):
    report = run_check(status=False, will=False, interval_s=1.2)

    assert {"status_missing", "silence"} <= report.checks(FIX)
    assert "publish a retained `online` on connecting" in findings(report, "status_missing")[0]
    assert findings(report, "silence")[0].startswith("fix: silent for 1.")
    assert "no heartbeat" in findings(report, "heartbeat")[0]


def test_a_status_published_without_retain_is_named(run_check):
    report = run_check(retain_status=False)

    not_retained, = findings(report, "status_not_retained")
    assert not_retained == ("fix: its last status was 'online' but the broker holds none: publish status (and the "
                            "`offline` last will) retained, so that semon learns it whenever it reconnects")


def test_a_monitor_that_drops_without_a_last_will_is_named(run_check):
    report = run_check(will=False, drop_after_s=1.0)

    last_will, = findings(report, "last_will")
    assert last_will.startswith("fix: it stopped sending at ")
    assert "it has no last will (set a retained `offline`)" in last_will


def test_fields_the_rules_and_models_need_but_never_sent_are_named(run_check):
    report = run_check(shape=lambda n, p: [{k: p[k] for k in ("ts", "seq", "floor", "door", "run_count")}])

    never, = findings(report, "fields_never_sent")
    assert never == ("fix: fields semon needs that it never sent: direction, speed_mps, door_zone, occupied, mode, "
                     "safety_circuit_ok, door_lock_ok, door_cycles (read by the telemetry rules (docs/rules.md)); "
                     "run_hours, vibration_rms_g, motor_current_a, motor_temp_c, load_pct, leveling_mm (read by the "
                     "rollups and wear models (docs/rollup.md))")


def test_a_counter_that_goes_back_is_named(run_check):
    report = run_check(shape=lambda n, p: [{**p, "run_count": 5000 - n if n % 6 == 5 else 5000 + n}])

    back, = findings(report, "counter_backwards")
    assert back.startswith("fix: cumulative counters went back ")
    assert "run_count 5004 → 4995 at " in back


def test_the_command_prints_the_report_and_exits_1_when_something_must_be_fixed(db, db_url, broker, config):
    register_equipment(db, "EL-CLI")
    monitor = SimulatedMonitor(broker.url, "EL-CLI", status=False, will=False)
    monitor.start()
    try:
        env = {**os.environ, "SEMON_DATABASE_URL": db_url, "SEMON_MQTT_URL": config.mqtt_url,
               "SEMON_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_S)}
        result = subprocess.run([sys.executable, "-m", "semon.cli", "check-monitor", "EL-CLI", "--for", "2s"],
                                capture_output=True, text=True, timeout=60, env=env)
    finally:
        monitor.stop()

    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("监测终端 Monitor EL-CLI (elevator), listened for 2 s: ")
    assert "必须修复 Must fix (1):\n  - no status message, and the broker holds none" in result.stdout
    assert result.stdout.endswith("结论 Verdict: 1 problem(s) to fix before semon can rely on this monitor\n")
