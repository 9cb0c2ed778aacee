"""`semon simulate` against a real broker: time modes, several processes, labels and a clean stop."""

from __future__ import annotations

import json
import logging
import multiprocessing
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from simulators.run import SimulationStats, TimeMode, default_processes, parse_history, run_simulation
from simulators.scenario import load_scenario
from tests.conftest import wait_until
from tests.mqtt_helpers import SIMULATOR, Subscriber

SCENARIO = """
name: run-{code}
utc_offset: "+08:00"
districts:
  - name: Test District
    code: {code}
    equipment: {{elevator: {elevators}, boiler: 2}}
    sites:
      - {{use_unit: Test Tower, address: 1 Test Road, kind: office, floors: 10, hosts: [elevator, boiler]}}
firms:
  - {{name: Test Lifts, phone: "021-1", serves: [elevator, boiler]}}
faults:
  - {{at_s: 0.3, clear_at_s: 0.9, equipment: EL-{code}-0001, fault: entrapment}}
"""


def scenario_file(tmp_path: Path, code: str, elevators: int = 3) -> str:
    path = tmp_path / f"run-{code}.yaml"
    path.write_text(SCENARIO.format(code=code, elevators=elevators), encoding="utf-8")
    return str(path)


@pytest.fixture
def run(broker, base_config, tmp_path):
    """Runs a simulation of a fresh scenario against the test broker; leaves no retained status behind."""
    config = base_config.replace(mqtt_url=broker.url)
    live = Subscriber(broker.url)
    scenarios: list[str] = []

    def start(code: str, elevators: int = 3, **options) -> tuple[SimulationStats, list[tuple[str, bytes, float]]]:
        scenario = scenario_file(tmp_path, code, elevators)
        scenarios.append(scenario)
        options.setdefault("interval_s", 5.0)
        options.setdefault("duration_s", 2.0)
        stats = run_simulation(config, scenario, seed=1, **options)
        # Everything acknowledged reaches the subscriber shortly after.
        wait_until(lambda: len(live.received("telemetry", False, code)) >= stats.published["telemetry"], timeout=5,
                   message="every acknowledged telemetry message")
        return stats, [(topic, payload, at) for topic, payload, _, at in live.received("telemetry", False, code)]

    yield start
    live.close()
    cleaner = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    cleaner.username_pw_set(*SIMULATOR)
    cleaner.connect("127.0.0.1", broker.port)
    cleaner.loop_start()
    for scenario in scenarios:
        for code, kind in load_scenario(scenario).equipment_codes().items():
            cleaner.publish(f"sem/v1/{kind}/{code}/status", b"", qos=1, retain=True).wait_for_publish(timeout=5)
    cleaner.disconnect()
    cleaner.loop_stop()


def ts_of(payload: bytes) -> float:
    return datetime.fromisoformat(json.loads(payload)["ts"]).timestamp()


def test_history_and_speed_options_parse_and_refuse_what_makes_no_sense():
    assert parse_history("30d") == 30 * 86400 and parse_history("12h") == 43200
    assert parse_history("90m") == 5400 and parse_history("45s") == 45 and parse_history("1.5h") == 5400
    for bad in ("", "3x", "-1d", "0h", "d"):
        with pytest.raises(ValueError):
            parse_history(bad)
    with pytest.raises(ValueError, match="cannot be combined"):
        TimeMode(speed=60, history_s=3600)
    with pytest.raises(ValueError):
        TimeMode(speed=0)
    # Backfill items already past go out at once; later ones on the wall clock.
    assert TimeMode(history_s=100).wall_offset(40) == -60 and TimeMode(speed=60).wall_offset(120) == 2


def test_default_processes_follow_the_rate_within_the_machine(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert default_processes(59, 5.0, TimeMode()) == 1  # the demo fleet
    assert default_processes(10_000, 5.0, TimeMode()) == 2  # the load fleet: 2,000 messages/s
    assert default_processes(59, 5.0, TimeMode(speed=3600)) == 2  # never more than the CPUs
    assert default_processes(1, 0.001, TimeMode()) == 1  # never more than the devices
    assert default_processes(59, 5.0, TimeMode(history_s=86400)) == 2  # a backfill goes flat out


def test_accelerated_time_moves_ts_speed_times_faster_than_wall_time(run):
    started = time.time()
    stats, telemetry = run("A1", speed=60, duration_s=3.0, processes=1)
    assert stats.skipped == 0
    # 5 monitors every 5 simulated seconds at x60: 60 messages a wall second.
    assert 120 <= len(telemetry) <= 200
    first, last = telemetry[len(telemetry) // 10], telemetry[-1]
    ratio = (ts_of(last[1]) - ts_of(first[1])) / (last[2] - first[2])
    assert 50 <= ratio <= 70, ratio
    # The monitors' clock starts now and runs ahead of the wall clock.
    assert abs(ts_of(telemetry[0][1]) - started) < 10
    assert ts_of(last[1]) > time.time() + 60


def test_backfill_publishes_history_with_its_timestamps_quickly_then_reaches_now(run, caplog):
    caplog.set_level(logging.INFO, logger="simulators.run")
    started = time.time()
    # Two hours of 5 monitors every 60 s: 600 messages of history, then real time.
    stats, telemetry = run("B1", interval_s=60.0, history_s=7200, duration_s=3.0, processes=1)
    assert stats.skipped == 0
    stamps = [ts_of(payload) for _, payload, _ in telemetry]
    assert min(stamps) == pytest.approx(started - 7200, abs=30)
    assert max(stamps) == pytest.approx(started, abs=70)
    assert 590 <= len(telemetry) <= 610
    history = [arrived for (_, payload, arrived), ts in zip(telemetry, stamps, strict=True) if ts < started - 120]
    assert max(history) - min(history) < 2.0  # as fast as the broker takes it, not in real time
    per_device: dict[str, list[float]] = defaultdict(list)
    for (topic, _, _), ts in zip(telemetry, stamps, strict=True):
        per_device[topic].append(ts)
    assert len(per_device) == 5 and all(ts == sorted(ts) for ts in per_device.values())
    assert "backfill caught up" in caplog.text


def test_several_processes_publish_the_fleet_once_each_device_from_one_process(run, tmp_path):
    labels = tmp_path / "labels.jsonl"
    stats, telemetry = run("P1", elevators=9, interval_s=0.25, duration_s=2.5, processes=3, labels_path=labels)
    assert stats.processes == 3 and stats.dropped == 0 and stats.skipped == 0
    assert stats.published["telemetry"] == len(telemetry)
    seqs: dict[str, list[int]] = defaultdict(list)
    for topic, payload, _ in telemetry:
        seqs[topic.split("/")[3]].append(json.loads(payload)["seq"])
    assert set(seqs) == set(load_scenario(str(tmp_path / "run-P1.yaml")).equipment_codes())
    for code, numbers in seqs.items():
        # One process per device: its own counter, strictly increasing, never a message twice.
        assert numbers == sorted(set(numbers)), code
        assert len(numbers) >= 7, code
    assert not multiprocessing.active_children()
    # The shards' labels, merged: the scheduled entrapment (raised at 0.3 s, cleared at 0.9 s).
    rows = [json.loads(line) for line in labels.read_text().splitlines()]
    assert [(r["equipment"], r["kind"], r["name"]) for r in rows] == [("EL-P1-0001", "fault", "entrapment")]
    assert rows[0]["end"] > rows[0]["start"]


def test_a_stop_ends_every_process_cleanly_with_offline_statuses(broker, base_config, tmp_path):
    config = base_config.replace(mqtt_url=broker.url)
    scenario = scenario_file(tmp_path, "S1", elevators=4)
    codes = load_scenario(scenario).equipment_codes()
    live = Subscriber(broker.url)
    stop = threading.Event()
    result: dict[str, SimulationStats] = {}
    runner = threading.Thread(target=lambda: result.update(stats=run_simulation(
        config, scenario, seed=1, interval_s=0.5, duration_s=None, processes=2, stop_event=stop)))
    try:
        runner.start()
        wait_until(lambda: len({m[0] for m in live.received("telemetry", False, "S1")}) == len(codes), timeout=15,
                   message="telemetry from every monitor")
        asked = time.monotonic()
        stop.set()
        runner.join(timeout=15)
        assert not runner.is_alive() and time.monotonic() - asked < 5
        assert not multiprocessing.active_children()
        stats = result["stats"]
        wait_until(lambda: len(live.received("status", False, "S1")) >= stats.published["status"], timeout=5,
                   message="every status")
        last_status = {topic: payload for topic, payload, _, _ in live.received("status", False, "S1")}
        assert len(last_status) == len(codes) and set(last_status.values()) == {b"offline"}
        assert stats.published["telemetry"] == len(live.received("telemetry", False, "S1"))
    finally:
        stop.set()
        live.close()
        cleaner = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        cleaner.username_pw_set(*SIMULATOR)
        cleaner.connect("127.0.0.1", broker.port)
        cleaner.loop_start()
        for code, kind in codes.items():
            cleaner.publish(f"sem/v1/{kind}/{code}/status", b"", qos=1, retain=True).wait_for_publish(timeout=5)
        cleaner.disconnect()
        cleaner.loop_stop()


def test_duration_stops_a_multi_process_run_on_time(run):
    started = time.monotonic()
    stats, telemetry = run("D1", interval_s=0.5, duration_s=1.5, processes=2)
    # Spawning two interpreters and saying offline take a little; the duration itself is kept.
    assert time.monotonic() - started < 10
    assert stats.published["status"] >= 2 * 5 and stats.dropped == 0
    # 5 monitors every 0.5 s for 1.5 s, whatever the jitter at the edges.
    assert 10 <= len(telemetry) <= 20
