"""The field benchmark's machinery (bench/field.py): alerts as the store keeps them, the expiry job between
messages, skews taken off, the work split over processes, and a short run end to end. No broker, no database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from bench.field import (
    AlertBook,
    Feed,
    FieldSettings,
    Unit,
    detector,
    run_unit,
    score,
    units_of,
)
from models.rules import Change, EquipmentInfo, Sample, default_settings
from tests.conftest import REPO

SHANGHAI = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=SHANGHAI)
RULES = default_settings()
CAR = EquipmentInfo(1, "elevator", rated_speed_mps=1.75, floors=18)
# A car stopped between floors, door shut, a passenger inside: entrapment after 30 s, outside the door zone after 45 s.
STUCK = {"floor": 5, "direction": "stop", "speed_mps": 0.0, "door": "closed", "door_zone": False, "load_pct": 10.0,
         "occupied": True, "mode": "normal", "safety_circuit_ok": True, "door_lock_ok": True, "run_count": 100,
         "door_cycles": 200}


def change(kind: str, event: str, at: datetime, **detail) -> Change:
    return Change(kind, event, at, "high", f"{kind} {event}", detail)


def feed(skew_s: float = 0.0) -> tuple[Feed, AlertBook]:
    book = AlertBook()
    return Feed("EL-1", CAR, detector(RULES), book, skew_s, 1.0), book


def deliver(target: Feed, true_s: float, skew_s: float, seq: int, values=STUCK) -> None:
    """A reading taken true_s after T0, stamped on a clock skew_s ahead, arriving when it was taken."""
    target.deliver([Sample(T0 + timedelta(seconds=true_s + skew_s), seq, values)], T0 + timedelta(seconds=true_s))


def seen(book: AlertBook) -> list[tuple[str, float, bool]]:
    return [(a.kind, round(a.first_seen - T0.timestamp(), 3), a.silent) for a in book.alerts]


def test_an_alert_is_one_raise_until_its_clear_and_repeats_meanwhile_are_counted_on_it():
    book = AlertBook()
    book.apply("EL-1", [change("entrapment", "raised", T0), change("entrapment", "raised", T0 + timedelta(seconds=60)),
                        change("entrapment", "cleared", T0 + timedelta(seconds=200)),
                        change("entrapment", "raised", T0 + timedelta(seconds=900)),
                        change("overspeed", "cleared", T0)], skew_s=0.0)
    assert [(a.kind, a.first_seen - T0.timestamp(), a.repeats) for a in book.alerts] == [
        ("entrapment", 0.0, 1), ("entrapment", 900.0, 0)]


def test_a_dwell_decided_by_a_sample_has_the_monitors_skew_taken_off():
    target, book = feed(skew_s=90.0)
    for i in range(8):
        deliver(target, 5.0 * i, 90.0, i)
    assert seen(book) == [("entrapment", 30.0, False)]
    assert book.alerts[0].shown_at == T0 + timedelta(seconds=120)  # what the alert row says: the monitor's ts


def test_a_dwell_that_completes_while_the_monitor_is_silent_is_raised_as_the_expiry_job_would():
    # Three readings (the condition held 10 s at the last one, received at T0 + 10 s), then nothing until a
    # reading arrives at T0 + 100 s: the job, on the server's true clock, completes entrapment 20 s and the
    # stop outside the door zone 35 s into the silence, however far the monitor's clock is off.
    target, book = feed(skew_s=-45.0)
    for i in range(3):
        deliver(target, 5.0 * i, -45.0, i)
    assert book.alerts == [] and target.pending
    deliver(target, 100.0, -45.0, 3)
    assert seen(book) == [("entrapment", 30.0, True), ("stop_outside_door_zone", 45.0, True)]


@pytest.mark.parametrize(("arrival_s", "expected"), [
    (30.9, ("entrapment", 30.9, False)),  # the job's run at 30 s was too early: the reading decides, at its ts
    (31.6, ("entrapment", 30.5, True)),   # its run at 31 s completed the dwell, dated when it was reached
])
def test_the_expiry_job_runs_every_second_between_readings(arrival_s, expected):
    # Readings from 0.5 s, the condition held 25 s at the one received at 25.5 s: the dwell completes at 30.5 s.
    target, book = feed()
    for i in range(6):
        deliver(target, 0.5 + 5.0 * i, 0.0, i)
    deliver(target, arrival_s, 0.0, 6)
    assert seen(book) == [expected]


def test_the_expiry_job_runs_once_more_at_the_end_of_the_run():
    target, book = feed()
    for i in range(3):
        deliver(target, 5.0 * i, 0.0, i)
    target.expire_until(T0 + timedelta(seconds=40.5))
    assert seen(book) == [("entrapment", 30.0, True)]


def test_default_seeds_give_about_a_thousand_equipment_days_and_bad_values_are_refused():
    assert (FieldSettings.from_env({}).seeds, FieldSettings.from_env({}).days) == (1, 30.0)
    assert FieldSettings.from_env({"BENCH_FIELD_DAYS": "3"}).seeds == 11  # 30 equipment: 990 equipment-days
    with pytest.raises(SystemExit, match="BENCH_FIELD_DAYS must be in"):
        FieldSettings.from_env({"BENCH_FIELD_DAYS": "0"})
    with pytest.raises(SystemExit, match="must be a number"):
        FieldSettings.from_env({"BENCH_FIELD_SEEDS": "two"})


@pytest.mark.parametrize(("seeds", "processes", "expected"), [
    (1, 2, [(7, (0, 2)), (7, (1, 2))]),                    # one fleet split so that both CPUs work
    (2, 2, [(7, (0, 1)), (8, (0, 1))]),
    (3, 2, [(7, (0, 2)), (7, (1, 2)), (8, (0, 2)), (8, (1, 2)), (9, (0, 2)), (9, (1, 2))]),  # even shares
    (1, 1, [(7, (0, 1))]),
])
def test_the_work_is_split_into_seeds_and_shards_that_share_out_evenly(seeds, processes, expected):
    settings = FieldSettings(days=1.0, seeds=seeds, processes=processes, rules=RULES)
    assert [(u.seed, u.shard) for u in units_of(settings, 0.0)] == expected


def morning_run(rules, shard=(0, 1)):
    """An hour and a bit of the seed-7 fleet from 08:00 local, when passengers come and linger."""
    return run_unit(Unit(0, 7, shard, 0.05, T0.timestamp(), rules))


@pytest.fixture(scope="module")
def morning():
    return morning_run(RULES)


def test_a_too_short_dwell_at_a_floor_makes_lingering_passengers_false_entrapments(morning):
    default = score([morning]).figures
    bad = score([morning_run(replace(RULES, entrapment_at_floor_s=5.0))])
    assert bad.figures["field_false_by_kind"].get("entrapment", 0) >= 5
    assert bad.figures["field_false_by_kind"]["entrapment"] > default["field_false_by_kind"].get("entrapment", 0)
    # Each of them a car at a landing, listed with its equipment, seed and message.
    assert {key.split("/")[0][:2] for key, alert in bad.false if alert.kind == "entrapment"} == {"EL"}
    assert {alert.detail["between_floors"] for _, alert in bad.false if alert.kind == "entrapment"} == {False}
    assert bad.figures["field_equipment_days"] == default["field_equipment_days"]


def test_a_sharded_fleet_scores_as_the_whole_one(morning):
    whole = score([morning]).figures
    shards = score([morning_run(RULES, (0, 2)), morning_run(RULES, (1, 2))]).figures
    assert shards == whole


def test_a_short_run_prints_its_figures_as_the_last_line():
    env = {**os.environ, "BENCH_FIELD_DAYS": "0.05", "BENCH_FIELD_SEEDS": "1", "BENCH_FIELD_PROCESSES": "2"}
    done = subprocess.run([sys.executable, str(REPO / "bench" / "field.py")], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"field_equipment_days", "field_healthy_equipment_days", "field_healthy_elevator_days",
            "field_false_alerts", "field_false_per_1000_equipment_days",
            "field_false_per_1000_equipment_days_upper95", "field_entrapment_false_per_1000_elevator_days",
            "field_entrapment_false_per_1000_elevator_days_upper95", "field_mode_alerts", "field_false_by_kind",
            "field_seconds", "field_samples_per_s"} <= figures.keys()
    # 30 monitors for 72 minutes, less a reading interval each and a drop-out's backlog not flushed by the end.
    assert figures["field_equipment_days"] == pytest.approx(1.5, abs=0.03)
    assert figures["field_samples"] > 0.95 * 30 * 0.05 * 86400 / 5
    assert figures["field_false_alerts"] == sum(figures["field_false_by_kind"].values())
    assert figures["field_dead_letters"] == 0
