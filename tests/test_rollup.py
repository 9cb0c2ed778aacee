"""The telemetry rollup (models/rollup.py, docs/rollup.md) against the real database: exact windows from small series,
late and redelivered rows, counter resets, gaps, thin history, repeated runs, two replicas at once, the users' zone,
and hourly windows that show each simulated wear."""

from __future__ import annotations

import itertools
import json
import statistics
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import dict_row

from ingest.messages import parse_message
from ingest.writer import BatchWriter, DatabaseLookup
from models.rollup import (
    COMMON_FEATURES,
    FEATURES,
    RollupSettings,
    features_markdown,
    rollup,
    rollup_table,
    settings_from_config,
)
from semon.config import ConfigError, load_config
from semon.vocabulary import EQUIPMENT_TYPES, telemetry_table
from simulators.wear import WEAR_KINDS
from tests.conftest import REPO, register_equipment
from tests.test_writer_state import write

SHANGHAI = ZoneInfo("Asia/Shanghai")
H8 = datetime(2026, 3, 2, 8, 0, tzinfo=SHANGHAI)
SETTINGS = RollupSettings(width_s=3600, max_gap_s=300.0, settle_s=30.0, moving_speed_mps=0.05,
                          time_zone="Asia/Shanghai")
NONE_WRITTEN = dict.fromkeys(EQUIPMENT_TYPES, 0)


def store(db, eid: int, rows: list[dict[str, Any]], received_at: datetime, equipment_type: str = "elevator") -> None:
    """Store telemetry rows as the ingester does (a redelivered message is no second row), stored at received_at;
    each row's seq is its index unless given."""
    for index, row in enumerate(rows):
        values = {"seq": index, **row, "equipment_id": eid, "received_at": received_at}
        db.execute(f"INSERT INTO {telemetry_table(equipment_type)} ({', '.join(values)}) "
                   f"VALUES ({', '.join(['%s'] * len(values))}) ON CONFLICT DO NOTHING", list(values.values()))


def run(db, now: datetime, settings: RollupSettings = SETTINGS) -> dict[str, int]:
    """One run of the job, in a transaction of its own as the scheduler gives it."""
    with db.transaction():
        return rollup(db, now, settings)


def windows(db, eid: int, equipment_type: str = "elevator") -> list[dict[str, Any]]:
    return db.execute(f"SELECT * FROM {rollup_table(equipment_type)} WHERE equipment_id = %s ORDER BY width_s, bucket",
                      (eid,)).fetchall()


def features_of(window: dict[str, Any]) -> dict[str, Any]:
    """A window's features, without its key and computed_at."""
    return {k: v for k, v in window.items() if k not in ("equipment_id", "width_s", "bucket", "computed_at")}


def elevator(ts: datetime, **fields: Any) -> dict[str, Any]:
    """An elevator sample in normal service, at rest unless told."""
    return {"ts": ts, "mode": "normal", "speed_mps": 0.0, "direction": "stop", **fields}


def at(seconds: float, start: datetime = H8) -> datetime:
    return start + timedelta(seconds=seconds)


# (speed, direction, floor, door, run_count, door_cycles, run seconds, vibration, current, motor temp, load, leveling)
TRIPS = [
    (0.0, "stop", 1, "closed", 100, 200, 0, 0.002, 0.0, 40.0, 0.0, 1.0),
    (1.5, "up", 2, "closed", 101, 200, 8, 0.030, 20.0, 41.0, 50.0, 1.0),
    (0.0, "stop", 4, "opening", 101, 200, 12, 0.004, 0.0, 42.0, 50.0, 3.0),   # arrived going up, 3 mm high
    (0.0, "stop", 4, "closing", 101, 200, 12, 0.004, 0.0, 42.0, 0.0, 3.0),
    (0.0, "stop", 4, "opening", 101, 201, 12, 0.004, 0.0, 42.0, 0.0, 3.0),   # the closing door reopened
    (0.0, "stop", 4, "closed", 101, 202, 12, 0.002, 0.0, 42.0, 0.0, 3.0),
    (1.0, "down", 3, "closed", 102, 202, 18, 0.020, 10.0, 43.0, 0.0, 3.0),
    (0.0, "stop", 1, "open", 102, 202, 26, 0.003, 0.0, 43.0, 0.0, -2.0),    # arrived going down, 2 mm low
]


def trips_series(start: datetime = H8) -> list[dict[str, Any]]:
    """Two trips, one reopening, a sample every 10 s."""
    return [elevator(at(10 * i, start), speed_mps=speed, direction=direction, floor=floor, door=door, run_count=runs,
                     door_cycles=doors, run_hours=5000 + run_s / 3600, vibration_rms_g=vibration,
                     motor_current_a=current, motor_temp_c=temp, load_pct=load, leveling_mm=leveling)
            for i, (speed, direction, floor, door, runs, doors, run_s, vibration, current, temp, load, leveling)
            in enumerate(TRIPS)]


def test_an_elevator_window_holds_the_features_of_its_samples(db):
    eid = register_equipment(db, "EL-R1")
    store(db, eid, trips_series(), received_at=at(80))
    assert run(db, now=at(600)) == NONE_WRITTEN | {"elevator": 1}
    [window] = windows(db, eid)
    assert (window["equipment_id"], window["width_s"], window["bucket"]) == (eid, 3600, H8)
    assert features_of(window) == pytest.approx({
        "samples": 8, "covered_s": 70.0, "resumed": 1,
        "counter_resets": 0, "trips": 2, "trips_per_h": 2 * 3600 / 70, "door_cycles": 2,
        "door_cycles_per_h": 2 * 3600 / 70, "run_s": 26.0, "run_share": 26 / 70, "moving_s": 20.0,
        "door_cycles_per_trip": 1.0, "door_reversals": 1, "reopen_ratio": 0.5,
        "door_motion_s": 30.0, "door_cycle_s": 15.0,  # three steps of 10 s after an opening or closing door
        "vibration_run_mean_g": 0.025, "vibration_run_peak_g": 0.030, "motor_current_run_mean_a": 15.0,
        "motor_charge_per_trip_as": (20 * 10 + 10 * 10) / 2, "motor_current_sq_mean_a2": (400 * 10 + 100 * 10) / 70,
        "motor_temp_mean_c": 335 / 8, "motor_temp_max_c": 43.0, "load_run_mean_pct": 25.0,
        "stops_up": 1, "stops_down": 1, "leveling_up_mean_mm": 3.0, "leveling_down_mean_mm": -2.0,
        "leveling_overshoot_mm": 2.5, "leveling_abs_max_mm": 3.0}, rel=1e-9)


def test_an_escalator_window_holds_its_handrail_ratios_vibration_and_current(db):
    eid = register_equipment(db, "ES-R1", "escalator")
    rows = [{"ts": at(10 * i), "mode": "normal", "speed_mps": speed, "handrail_left_mps": left,
             "handrail_right_mps": right, "vibration_rms_g": vibration, "motor_current_a": current,
             "run_hours": 1000 + run_s / 3600}
            for i, (speed, left, right, vibration, current, run_s) in enumerate([
                (0.5, 0.505, 0.49, 0.012, 10.0, 0), (0.5, 0.51, 0.5, 0.018, 12.0, 10),
                (0.0, 0.0, 0.0, 0.001, 0.0, 20)])]
    store(db, eid, rows, received_at=at(30), equipment_type="escalator")
    run(db, now=at(600))
    [window] = windows(db, eid, "escalator")
    assert (window["equipment_id"], window["width_s"], window["bucket"]) == (eid, 3600, H8)
    assert features_of(window) == pytest.approx({
        "samples": 3, "covered_s": 20.0, "resumed": 1,
        "counter_resets": 0, "run_s": 20.0, "run_share": 1.0, "moving_s": 20.0, "speed_run_mean_mps": 0.5,
        "handrail_left_ratio": 1.015, "handrail_right_ratio": 0.99, "handrail_low_ratio": 0.99,
        "vibration_run_mean_g": 0.015, "vibration_run_peak_g": 0.018, "motor_current_run_mean_a": 11.0}, rel=1e-9)


def test_a_boiler_window_holds_flue_gas_and_o2_per_firing_stage_variability_and_the_water_balance(db):
    eid = register_equipment(db, "BL-R1", "boiler")
    samples = [  # burner, flame, flue gas, O2, load, pressure, level, feedwater, steam, hardness, pH
        ("off", False, 80.0, 20.9, 0.0, 0.90, 5.0, 0.0, 1.0, 0.010, 11.0),
        ("low", True, 150.0, 5.5, 30.0, 0.85, -5.0, 2.0, 2.0, 0.020, 11.2),   # a burner start
        ("low", True, 160.0, 5.0, 40.0, 0.90, 0.0, 3.0, 2.0, 0.010, 11.1),    # steady at low
        ("high", True, 200.0, 3.0, 80.0, 0.95, 10.0, 4.0, 3.0, 0.030, 11.0),  # just changed stage: not steady
        ("high", True, 210.0, 3.4, 90.0, 1.00, 0.0, 4.0, 4.0, 0.010, 11.2),   # steady at high
    ]
    store(db, eid, [{"ts": at(10 * i), "burner": burner, "flame": flame, "flue_gas_temp_c": flue, "o2_pct": o2,
                     "load_pct": load, "pressure_mpa": pressure, "water_level_mm": level, "feedwater_flow_tph": feed,
                     "steam_flow_tph": steam, "water_hardness_mmol_l": hardness, "ph": ph}
                    for i, (burner, flame, flue, o2, load, pressure, level, feed, steam, hardness, ph)
                    in enumerate(samples)], received_at=at(60), equipment_type="boiler")
    run(db, now=at(600))
    [window] = windows(db, eid, "boiler")
    assert (window["equipment_id"], window["width_s"], window["bucket"]) == (eid, 3600, H8)
    assert features_of(window) == pytest.approx({
        "samples": 5, "covered_s": 40.0, "resumed": 1,
        "firing_s": 30.0, "firing_share": 0.75, "high_fire_share": 0.25, "burner_starts": 1,
        "load_firing_mean_pct": 60.0, "flue_gas_low_mean_c": 160.0, "flue_gas_high_mean_c": 210.0,
        "o2_low_mean_pct": 5.0, "o2_high_mean_pct": 3.4, "pressure_mean_mpa": 0.92,
        "pressure_sd_mpa": statistics.stdev([0.90, 0.85, 0.90, 0.95, 1.00]),
        "water_level_sd_mm": statistics.stdev([5.0, -5.0, 0.0, 10.0, 0.0]), "water_level_min_mm": -5.0,
        "water_level_max_mm": 10.0, "feedwater_t": 90 / 3600, "steam_t": 80 / 3600, "feedwater_steam_ratio": 90 / 80,
        "hardness_mean_mmol_l": 0.016, "hardness_max_mmol_l": 0.03, "ph_mean": 11.1}, rel=1e-9)


def test_a_pressure_vessel_window_holds_pressure_and_temperature_variability(db):
    eid = register_equipment(db, "PV-R1", "pressure_vessel")
    samples = [(0.5, 30.0, 50.0, False), (0.6, 31.0, 52.0, False), (0.7, 32.0, 54.0, True), (0.6, 31.0, 54.0, False)]
    store(db, eid, [{"ts": at(10 * i), "pressure_mpa": p, "temperature_c": t, "level_pct": level,
                     "safety_valve_open": valve} for i, (p, t, level, valve) in enumerate(samples)],
          received_at=at(60), equipment_type="pressure_vessel")
    run(db, now=at(600))
    [window] = windows(db, eid, "pressure_vessel")
    assert (window["equipment_id"], window["width_s"], window["bucket"]) == (eid, 3600, H8)
    assert features_of(window) == pytest.approx({
        "samples": 4, "covered_s": 30.0, "resumed": 1,
        "pressure_mean_mpa": 0.6, "pressure_sd_mpa": statistics.stdev([0.5, 0.6, 0.7, 0.6]),
        "pressure_min_mpa": 0.5, "pressure_max_mpa": 0.7, "temperature_mean_c": 31.0,
        "temperature_sd_c": statistics.stdev([30.0, 31.0, 32.0, 31.0]), "temperature_max_c": 32.0,
        "level_mean_pct": 52.5, "level_sd_pct": statistics.stdev([50.0, 52.0, 54.0, 54.0]),
        "safety_valve_open_s": 10.0}, rel=1e-9)


def test_a_late_row_makes_the_next_run_recompute_its_window_and_no_other(db):
    eid = register_equipment(db, "EL-R2")
    seven = [elevator(at(-3600 + 60 * i), run_count=90 + i) for i in range(3)]
    eight = [elevator(at(0), run_count=100), elevator(at(10), run_count=101), elevator(at(30), run_count=103)]
    store(db, eid, seven + [{**row, "seq": 10 + i} for i, row in enumerate(eight)], received_at=at(40))
    assert run(db, now=at(600)) == NONE_WRITTEN | {"elevator": 2}
    before = windows(db, eid)
    assert [(w["bucket"], w["samples"], w["trips"], w["vibration_run_peak_g"]) for w in before] == [
        (at(-3600), 3, 2, None), (H8, 3, 3, None)]
    # The sample of 08:00:20 arrives an hour late: the car was moving then.
    store(db, eid, [elevator(at(20), seq=12, run_count=102, speed_mps=1.5, direction="up", vibration_rms_g=0.05)],
          received_at=at(3600))
    assert run(db, now=at(3700)) == NONE_WRITTEN | {"elevator": 1}
    after = windows(db, eid)
    assert after[0] == before[0]  # 07:00, untouched, not even recomputed
    assert (after[1]["samples"], after[1]["covered_s"], after[1]["trips"], after[1]["moving_s"],
            after[1]["vibration_run_peak_g"]) == (4, 30.0, 3, 10.0, 0.05)
    assert after[1]["computed_at"] > before[1]["computed_at"]


def test_a_late_row_at_the_end_of_a_window_also_recomputes_the_first_step_of_the_next(db):
    eid = register_equipment(db, "EL-R3")
    store(db, eid, [elevator(at(55 * 60), run_count=100), elevator(at(62 * 60), run_count=105)],
          received_at=at(62 * 60))
    run(db, now=at(70 * 60))
    # Seven minutes apart, beyond rollup_max_gap_s: 09:02 resumes after a gap, and its five trips count nowhere.
    assert [(w["bucket"], w["samples"], w["covered_s"], w["resumed"], w["trips"]) for w in windows(db, eid)] == [
        (H8, 1, 0.0, 1, None), (at(3600), 1, 0.0, 1, None)]
    store(db, eid, [elevator(at(58 * 60), seq=2, run_count=103)], received_at=at(80 * 60))
    assert run(db, now=at(90 * 60)) == NONE_WRITTEN | {"elevator": 2}
    assert [(w["bucket"], w["samples"], w["covered_s"], w["resumed"], w["trips"]) for w in windows(db, eid)] == [
        (H8, 2, 180.0, 1, 3), (at(3600), 1, 240.0, 0, 2)]


def test_a_redelivered_message_changes_nothing(db, db_url):
    eid = register_equipment(db, "EL-0001")
    topic = "sem/v1/elevator/EL-0001/telemetry"
    start = datetime.now(UTC).replace(minute=10, second=0, microsecond=0) - timedelta(hours=2)  # one window
    first = {"ts": start.isoformat(), "seq": 1, "run_count": 10, "door": "closed", "speed_mps": 0.0}
    second = {"ts": (start + timedelta(seconds=5)).isoformat(), "seq": 2, "run_count": 11, "door": "open",
              "speed_mps": 0.0}
    write(db_url, (topic, first), (topic, second))
    settled = replace(SETTINGS, settle_s=0.0)  # the rows are stored on the real clock
    run(db, datetime.now(UTC), settled)
    before = windows(db, eid)
    assert [(w["samples"], w["trips"]) for w in before] == [(2, 1)]
    write(db_url, (topic, second))  # a QoS 1 redelivery
    assert run(db, datetime.now(UTC), settled) == NONE_WRITTEN
    assert windows(db, eid) == before
    # Redelivered again beside a new message of the same window: that window counts each message once.
    third = {"ts": (start + timedelta(seconds=10)).isoformat(), "seq": 3, "run_count": 12, "speed_mps": 0.0}
    write(db_url, (topic, first), (topic, second), (topic, third))
    run(db, datetime.now(UTC), settled)
    assert [(w["samples"], w["covered_s"], w["trips"]) for w in windows(db, eid)] == [(3, 10.0, 2)]


def test_a_counter_reset_or_jump_counts_nothing_and_gives_no_negative_or_huge_rate(db):
    eid = register_equipment(db, "EL-R4")
    # 1002 -> 3: the monitor was reset; 4 -> 900000: it was replaced by one counting from elsewhere.
    counts = [1000, 1001, 1002, 3, 4, 900000, 900001]
    store(db, eid, [elevator(at(10 * i), run_count=n, door_cycles=2 * n) for i, n in enumerate(counts)],
          received_at=at(70))
    run(db, now=at(600))
    [window] = windows(db, eid)
    # Four steps of 10 s count; the two others (a step back and a jump of 899,996 in 10 s) count nothing.
    assert (window["trips"], window["door_cycles"], window["counter_resets"], window["trips_per_h"]) == (
        4, 8, 2, 4 * 3600 / 40)
    assert window["covered_s"] == 60.0  # the time still counts as covered: the monitor was reporting


def test_an_offline_stretch_gives_no_windows_and_no_activity_across_it(db):
    eid = register_equipment(db, "EL-R5")
    # A sample every 5 s from 08:00 to 09:00 and from 12:00 to 13:00, a trip a minute; the monitor was offline
    # from 09:00 to 12:00, when the car made 500 trips.
    hour = [elevator(at(5 * i), run_count=100 + i // 12) for i in range(720)]
    later = [elevator(at(4 * 3600 + 5 * i), seq=720 + i, run_count=600 + i // 12) for i in range(720)]
    store(db, eid, hour + later, received_at=at(5 * 3600))
    run(db, now=at(6 * 3600))
    assert [(w["bucket"], w["samples"], w["covered_s"], w["resumed"], w["trips"]) for w in windows(db, eid)] == [
        (H8, 720, 3595.0, 1, 59), (at(4 * 3600), 720, 3595.0, 1, 59)]
    assert windows(db, eid)[1]["trips_per_h"] == pytest.approx(59 * 3600 / 3595)


def test_an_equipment_with_one_sample_has_a_window_with_no_rates(db):
    eid = register_equipment(db, "EL-R6")
    store(db, eid, [elevator(at(42), run_count=7, door_cycles=9, run_hours=1.0, speed_mps=1.2, direction="up",
                             vibration_rms_g=0.02, motor_temp_c=35.0)], received_at=at(50))
    run(db, now=at(600))
    [window] = windows(db, eid)
    assert {k: window[k] for k in ("samples", "covered_s", "resumed", "counter_resets", "trips", "trips_per_h",
                                   "run_share", "door_cycle_s", "moving_s", "vibration_run_mean_g",
                                   "motor_temp_mean_c", "stops_up", "stops_down")} == {
        "samples": 1, "covered_s": 0.0, "resumed": 1, "counter_resets": 0, "trips": None, "trips_per_h": None,
        "run_share": None, "door_cycle_s": None, "moving_s": None, "vibration_run_mean_g": 0.02,
        "motor_temp_mean_c": 35.0, "stops_up": 0, "stops_down": 0}


def test_two_runs_without_new_telemetry_change_nothing(db):
    eid = register_equipment(db, "EL-R7")
    store(db, eid, trips_series(), received_at=at(80))
    run(db, now=at(600))
    before = windows(db, eid)
    cursors = db.execute("SELECT * FROM job_cursors ORDER BY name").fetchall()
    assert run(db, now=at(600)) == NONE_WRITTEN
    assert run(db, now=at(1200)) == NONE_WRITTEN
    assert windows(db, eid) == before
    assert [c["name"] for c in db.execute("SELECT * FROM job_cursors ORDER BY name")] == [c["name"] for c in cursors]


def test_rows_stored_after_the_settle_time_wait_for_the_next_run(db):
    eid = register_equipment(db, "EL-R8")
    store(db, eid, [elevator(at(0), run_count=1)], received_at=at(0))
    store(db, eid, [elevator(at(3600), seq=1, run_count=2)], received_at=at(590))  # 10 s before the run: not settled
    run(db, now=at(600))
    assert [w["bucket"] for w in windows(db, eid)] == [H8]
    run(db, now=at(660))
    assert [w["bucket"] for w in windows(db, eid)] == [H8, at(3600)]


def test_rows_of_a_transaction_still_open_during_a_run_are_rolled_up_by_the_next(db, db_url):
    eid = register_equipment(db, "EL-R9")
    no_margin = replace(SETTINGS, settle_s=0.0)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    with psycopg.connect(db_url) as ingest:
        # received_at is the ingest transaction's start: earlier than the run below, committed after it.
        ingest.execute("INSERT INTO telemetry_elevator (ts, equipment_id, seq, run_count) VALUES (%s, %s, 1, 5)",
                       (start, eid))
        run(db, datetime.now(UTC), no_margin)
        assert windows(db, eid) == []
    run(db, datetime.now(UTC), no_margin)
    assert [w["samples"] for w in windows(db, eid)] == [1]


def test_a_second_replica_waits_for_the_first_and_finds_the_work_done(db, db_url):
    eid = register_equipment(db, "EL-R10")
    run(db, now=at(0))  # the watermark rows exist, as in any run but the very first
    store(db, eid, trips_series(), received_at=at(80))
    results: dict[str, dict[str, int]] = {}
    with (psycopg.connect(db_url, row_factory=dict_row) as first,
          psycopg.connect(db_url, row_factory=dict_row) as second):
        def replica() -> None:
            with second.transaction():
                results["second"] = rollup(second, at(600), SETTINGS)

        with first.transaction():
            results["first"] = rollup(first, at(600), SETTINGS)
            waiting = threading.Thread(target=replica)
            waiting.start()
            waiting.join(1.0)
            assert waiting.is_alive(), "the second replica did not wait for the first's watermark"
        waiting.join(10.0)
    assert results == {"first": NONE_WRITTEN | {"elevator": 1}, "second": NONE_WRITTEN}
    assert [(w["samples"], w["trips"]) for w in windows(db, eid)] == [(8, 2)]


def test_windows_of_a_day_start_at_the_users_midnight(db):
    eid = register_equipment(db, "EL-R11")
    midnight = datetime(2026, 3, 2, tzinfo=SHANGHAI)
    store(db, eid, [elevator(midnight - timedelta(seconds=10), run_count=1), elevator(midnight, seq=1, run_count=2),
                    elevator(midnight + timedelta(hours=23), seq=2, run_count=3)], received_at=at(0))
    daily = replace(SETTINGS, width_s=86400)
    run(db, now=at(600), settings=daily)
    assert [(w["width_s"], w["bucket"], w["samples"], w["trips"]) for w in windows(db, eid)] == [
        (86400, midnight - timedelta(days=1), 1, None), (86400, midnight, 2, 1)]


def test_the_rollup_settings_come_from_the_configuration_and_a_gap_wider_than_a_window_is_refused(base_config):
    settings = settings_from_config(base_config)
    assert (settings.width_s, settings.max_gap_s, settings.moving_speed_mps, settings.time_zone) == (
        base_config.rollup_bucket_s, base_config.rollup_max_gap_s, base_config.rule_moving_speed_mps,
        base_config.time_zone)
    with pytest.raises(ConfigError) as failure:
        settings_from_config(base_config.replace(rollup_bucket_s=600, rollup_max_gap_s=900.0))
    assert str(failure.value) == ("rollup_max_gap_s = 900.0: must not exceed rollup_bucket_s (600): a late row may "
                                  "change only its own window and the next")


def test_a_window_width_that_does_not_divide_a_day_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("rollup_bucket_s: 7000\n")
    with pytest.raises(ConfigError) as failure:
        load_config(path, environ={})
    assert str(failure.value) == (f"{path}: rollup_bucket_s = 7000: must be a whole number of seconds from 60 to "
                                  "86400 that divides a day (86400)")


def test_each_rollup_table_has_the_columns_of_its_features(db):
    for equipment_type in EQUIPMENT_TYPES:
        columns = [r["column_name"] for r in db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
            (rollup_table(equipment_type),))]
        assert columns == ["equipment_id", "width_s", "bucket", *(f.name for f in FEATURES[equipment_type]),
                           "computed_at"], equipment_type


def test_docs_rollup_md_documents_every_feature_as_the_code_computes_it():
    docs = (REPO / "docs" / "rollup.md").read_text(encoding="utf-8")
    for equipment_type in (None, *EQUIPMENT_TYPES):
        table = features_markdown(equipment_type)
        assert table in docs, f"docs/rollup.md differs from models/rollup.py for {equipment_type}; use:\n{table}"
    assert all(f in FEATURES[t] for t in EQUIPMENT_TYPES for f in COMMON_FEATURES)
    tested = docs[docs.index("## What the windows are tested to show"):]
    for kind, (_, feature, rises, _) in WEAR_FEATURES.items():
        assert f"| `{kind}` | `{feature}` | {'rises' if rises else 'falls'} |" in tested, kind


# The simulated wear (simulators/wear.py), as hourly windows show it: one worn unit per kind against a healthy one of
# its type, on day 1 and on day 7 of a week to failure, at the same hours of the day.
WEAR_FEATURES = {  # kind: (worn unit, feature, rises, by at least)
    "door_operator": ("EL-W1-0001", "door_cycle_s", True, 1.0),
    "bearing": ("EL-W1-0002", "vibration_run_mean_g", True, 0.02),
    "brake": ("EL-W1-0003", "leveling_overshoot_mm", True, 5.0),
    "motor_overheat": ("EL-W1-0004", "motor_temp_mean_c", True, 15.0),
    "handrail": ("ES-W1-0001", "handrail_low_ratio", False, 0.05),
    "step_chain": ("ES-W1-0002", "vibration_run_mean_g", True, 0.015),
    "scaling": ("BL-W1-0001", "flue_gas_high_mean_c", True, 20.0),
    "softener": ("BL-W1-0002", "hardness_mean_mmol_l", True, 0.012),
    "burner_drift": ("BL-W1-0003", "o2_high_mean_pct", True, 1.2),
}


def test_hourly_windows_show_each_simulated_wear(db, db_url, tmp_path):
    from simulators.simulation import FleetSimulation
    from tests.test_simulator_wear import CONTROL, DAY, START, WEEK_OF_WEAR, WINDOWS, drive, load_text

    sent = drive(FleetSimulation(load_text(tmp_path, WEEK_OF_WEAR), 7, interval_s=5.0, today=DAY),
                 WINDOWS["late"][1], {w: WINDOWS[w] for w in ("early", "late")})
    types = {code: {"EL": "elevator", "ES": "escalator", "BL": "boiler"}[code[:2]] for code in sent.telemetry}
    ids = {code: register_equipment(db, code, equipment_type) for code, equipment_type in types.items()}
    messages = [(f"sem/v1/{types[code]}/{code}/telemetry", payload) for code, by_window in sent.telemetry.items()
                for payload in itertools.chain(*by_window.values())]
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        lookup, writer = DatabaseLookup(conn), BatchWriter(conn)
        for i in range(0, len(messages), 2000):
            writer.write([parse_message(topic, json.dumps(payload).encode(), lookup, now=START + timedelta(days=8))
                          for topic, payload in messages[i:i + 2000]])
    run(db, datetime.now(UTC), replace(SETTINGS, settle_s=0.0))

    def change(code: str, feature: str) -> float:
        """The feature's mean over the two late hours less its mean over the two early ones."""
        means = []
        for window in ("early", "late"):
            first, last = (START + timedelta(seconds=s) for s in WINDOWS[window])
            values = [r[feature] for r in db.execute(
                f"SELECT {feature} FROM {rollup_table(types[code])} WHERE equipment_id = %s AND bucket >= %s "
                "AND bucket < %s", (ids[code], first, last))]
            assert len(values) == 2 and None not in values, (code, feature, window, values)
            means.append(statistics.mean(values))
        return means[1] - means[0]

    assert set(WEAR_FEATURES) == set(WEAR_KINDS["elevator"]) | set(WEAR_KINDS["escalator"]) | set(WEAR_KINDS["boiler"])
    for kind, (code, feature, rises, by_at_least) in WEAR_FEATURES.items():
        moved = change(code, feature)
        assert (moved if rises else -moved) >= by_at_least, (kind, feature, moved)
        # The same feature of a healthy unit of the type hardly moves: the change is the wear, not the day.
        assert abs(change(CONTROL[types[code]], feature)) < by_at_least / 2, (kind, feature)


def test_hourly_windows_start_on_the_hour_of_the_users_zone_even_a_half_hour_one(db):
    eid = register_equipment(db, "EL-R12")
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30
    store(db, eid, [elevator(datetime(2026, 3, 2, 7, 59, 50, tzinfo=kolkata), run_count=1),
                    elevator(datetime(2026, 3, 2, 8, 0, 10, tzinfo=kolkata), seq=1, run_count=2)], received_at=at(0))
    run(db, now=at(600), settings=replace(SETTINGS, time_zone="Asia/Kolkata"))
    assert [(w["bucket"], w["samples"], w["covered_s"]) for w in windows(db, eid)] == [
        (datetime(2026, 3, 2, 7, tzinfo=kolkata), 1, 0.0), (datetime(2026, 3, 2, 8, tzinfo=kolkata), 1, 20.0)]
