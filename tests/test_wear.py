"""Wear models (docs/wear.md): saving and loading, refusal of bad models, the cold-start fallback, training without
a transaction, wear alerts opened and resolved, and a simulated worn door operator found before its fault."""

from __future__ import annotations

import json
import logging
import zlib
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import pytest
import skops.io as sio
from psycopg.rows import dict_row

from models.rollup import RollupSettings, rollup
from models.wear import jobs
from models.wear.baseline import DayTable, FleetBaseline, deviations, own_baselines, reference, rest_days
from models.wear.features import (
    COMPONENT_OF_SIMULATED_WEAR,
    COMPONENTS,
    WEAR_FEATURES,
    daily_sums,
    feature_names,
    features_markdown,
    recent_sums,
)
from models.wear.model import CLIP, DETECTORS, ModelRefused, dumps, fit
from models.wear.scoring import WearSettings, judge, score_ends, settings_from_config
from models.wear.store import ModelCache, save_model
from semon.config import ConfigError, load_config
from tests.conftest import REPO, register_equipment

SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = date(2026, 3, 31)
SETTINGS = WearSettings(width_s=3600, time_zone="Asia/Shanghai", baseline_days=14, min_history_days=14,
                        recent_hours=2, trim_windows=0, alert_windows=3, score_threshold=1.0, train_days=30,
                        detector="isolation_forest")
ELEVATOR = feature_names("elevator")
# A healthy elevator's windows: the hours 10:00 and 11:00 of each day hold these features (docs/rollup.md).
HEALTHY = {"door_cycle_s": 5.0, "door_cycles_per_trip": 1.2, "reopen_ratio": 0.02, "vibration_run_mean_g": 0.02,
           "vibration_run_peak_g": 0.05, "leveling_overshoot_mm": 1.0, "leveling_abs_max_mm": 8.0,
           "motor_temp_mean_c": 45.0}


def noon(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI)


def store_window(db, eid: int, bucket: datetime, **features: float) -> None:
    """One hourly rollup window of an elevator, covered throughout, holding these wear features."""
    f = HEALTHY | features
    doors, trips, stops = 60, round(60 / f["door_cycles_per_trip"]), 50
    db.execute("""
        INSERT INTO rollup_elevator (equipment_id, width_s, bucket, samples, covered_s, resumed, counter_resets,
                                     trips, door_cycles, door_reversals, door_motion_s, moving_s,
                                     vibration_run_mean_g, vibration_run_peak_g, stops_up, stops_down,
                                     leveling_overshoot_mm, leveling_abs_max_mm, motor_temp_mean_c)
        VALUES (%s, 3600, %s, 720, 3600, 0, 0, %s, %s, %s, %s, 600, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (equipment_id, width_s, bucket) DO UPDATE SET door_motion_s = EXCLUDED.door_motion_s""",
               (eid, bucket, trips, doors, round(f["reopen_ratio"] * doors), f["door_cycle_s"] * doors,
                f["vibration_run_mean_g"], f["vibration_run_peak_g"], stops // 2, stops - stops // 2,
                f["leveling_overshoot_mm"], f["leveling_abs_max_mm"], f["motor_temp_mean_c"]))


def store_days(db, eid: int, first: date, days: int, rng: np.random.Generator | None = None, **features: float) -> None:
    """Two windows a day for `days` days from `first`; with rng, each day's features vary a little."""
    for d in range(days):
        day = first + timedelta(days=d)
        noise = {} if rng is None else {
            "door_cycle_s": HEALTHY["door_cycle_s"] + rng.normal(0, 0.1),
            "vibration_run_mean_g": HEALTHY["vibration_run_mean_g"] + rng.normal(0, 0.0008),
            "vibration_run_peak_g": HEALTHY["vibration_run_peak_g"] + rng.normal(0, 0.002),
            "leveling_overshoot_mm": HEALTHY["leveling_overshoot_mm"] + rng.normal(0, 0.4),
            "leveling_abs_max_mm": HEALTHY["leveling_abs_max_mm"] + rng.normal(0, 0.8),
            "motor_temp_mean_c": HEALTHY["motor_temp_mean_c"] + rng.normal(0, 0.8)}
        for hour in (10, 11):
            store_window(db, eid, noon(day, hour), **(noise | features))


def fleet(db, count: int = 6, days: int = 30, seed: int = 1) -> list[int]:
    """`count` healthy elevators with `days` days of windows before TODAY."""
    rng = np.random.default_rng(seed)
    ids = []
    for n in range(count):
        eid = register_equipment(db, f"EL-F{n}")
        store_days(db, eid, TODAY - timedelta(days=days), days, rng)
        ids.append(eid)
    return ids


def synthetic_table(equipment: int = 20, days: int = 40, seed: int = 0) -> DayTable:
    """Daily values of a healthy elevator fleet: each unit its own level, each day a little noise."""
    rng = np.random.default_rng(seed)
    level = np.array([HEALTHY[name] for name in ELEVATOR])
    spread = np.array([0.3, 0.05, 0.005, 0.004, 0.01, 1.0, 2.0, 3.0])
    units = level + rng.normal(0, 1, (equipment, 1, len(ELEVATOR))) * spread
    values = units + rng.normal(0, 0.2, (equipment, days, len(ELEVATOR))) * spread
    return DayTable("elevator", np.arange(1, equipment + 1), np.datetime64("2026-01-01"), values,
                    np.full_like(values, 1000.0), np.full(values.shape[:2], 1.0))


def test_a_saved_model_loads_back_and_scores_as_it_did(db):
    table = synthetic_table()
    model, validation = fit(table, 21, baseline_days=14, min_history_days=14, detector="isolation_forest")
    stored = save_model(db, model, train_from=date(2026, 1, 22), train_to=date(2026, 2, 10), width_s=3600,
                        validation=validation, settings={"detector": "isolation_forest"})
    loaded = ModelCache().active(db, "elevator")
    z = np.random.default_rng(5).normal(0, 3, (50, len(ELEVATOR)))
    own = np.random.default_rng(6).random((50, len(ELEVATOR))) < 0.8
    assert loaded.id == stored.id and loaded.version == 1
    assert np.array_equal(loaded.model.score(z, own), model.score(z, own))
    assert np.array_equal(loaded.model.spread, model.spread) and loaded.model.threshold == model.threshold
    row = db.execute("SELECT * FROM wear_models").fetchone()
    assert (row["equipment_type"], row["active"], row["train_from"], row["train_to"], row["equipment_count"],
            row["sample_count"], row["features"]) == ("elevator", True, date(2026, 1, 22), date(2026, 2, 10), 20,
                                                      20 * 19, list(ELEVATOR))
    assert set(row["library_versions"]) == {"python", "scikit-learn", "numpy", "scipy", "skops"}
    assert row["validation"]["held_out_days"] == 20 * 4
    assert set(row["validation"]) == {"method", "detector", "held_out_days", "isolation_forest_high_share",
                                      "isolation_forest_high_share_of_normal_days", "zscore_high_share",
                                      "zscore_high_share_of_normal_days"}


class NotAModelPart:
    """A type no model file may build."""


def test_a_model_of_other_features_or_an_unreadable_or_untrusted_file_is_refused_and_the_previous_stays(db, caplog):
    model, validation = fit(synthetic_table(), 21, baseline_days=14, min_history_days=14, detector="zscore")
    first = save_model(db, model, train_from=TODAY, train_to=TODAY, width_s=3600, validation=validation, settings={})
    other = replace(model, features=("door_cycle_s", "trips_per_h"))
    with pytest.raises(ModelRefused, match=r"new elevator model: trained on other features \(door_cycle_s, "
                                           r"trips_per_h\) than this code's for elevator \(door_cycle_s, "):
        save_model(db, other, train_from=TODAY, train_to=TODAY, width_s=3600, validation=validation, settings={})
    assert [(r["version"], r["active"]) for r in db.execute("SELECT * FROM wear_models")] == [(1, True)]

    good = dumps(model)
    bad = {"other features": dumps(other), "unreadable": good[: len(good) // 2],
           "untrusted": sio.dumps({"format": 1, "estimator": NotAModelPart()})}
    reasons = {"other features": "trained on other features", "unreadable": "not a readable model file",
               "untrusted": f"refused, it would build types not trusted: {NotAModelPart.__module__}.NotAModelPart"}
    for name, blob in bad.items():
        db.execute("DELETE FROM wear_models WHERE version > 1")
        db.execute("UPDATE wear_models SET active = false")
        bad_id = db.execute("""
            INSERT INTO wear_models (equipment_type, version, train_from, train_to, width_s, detector, equipment_count,
                                     sample_count, features, library_versions, settings, validation, model, active)
            VALUES ('elevator', 2, %s, %s, 3600, 'zscore', 1, 1, %s, '{}', '{}', '{}', %s, true)
            RETURNING id""", (TODAY, TODAY, list(ELEVATOR), blob)).fetchone()["id"]
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="models.wear.store"):
            in_use = ModelCache().active(db, "elevator")
        assert in_use.id == first.id, name  # the newest earlier version that loads
        [line] = [r.getMessage() for r in caplog.records]
        assert line.startswith(f"wear_models id {bad_id} (elevator version 2): ") and reasons[name] in line, name
        assert line.endswith("; using the previous version") and "\n" not in line, name


def test_equipment_with_three_days_of_history_is_judged_against_the_fleet_baseline(db):
    ids = fleet(db)
    new = register_equipment(db, "EL-NEW")
    store_days(db, new, TODAY - timedelta(days=3), 3, door_cycle_s=5.5)
    old = ids[0]
    stored = jobs.train_type(db, "elevator", TODAY, SETTINGS)
    end = noon(TODAY - timedelta(days=1), 12)  # the period judged: 10:00-12:00 yesterday
    judged = judge(db, "elevator", [end], stored, SETTINGS)
    by_id = {int(e): k for k, e in enumerate(judged.equipment_ids)}
    door = ELEVATOR.index("door_cycle_s")
    assert not judged.own[by_id[new]].any() and judged.own[by_id[old]].all()
    assert judged.normal[by_id[new], door] == stored.model.fleet.median[door]
    own_days = [r["v"] for r in db.execute(
        "SELECT door_motion_s / door_cycles AS v FROM rollup_elevator WHERE equipment_id = %s AND bucket >= %s "
        "AND bucket < %s AND extract(hour FROM bucket AT TIME ZONE 'Asia/Shanghai') = 10",
        (old, noon(TODAY - timedelta(days=15), 0), noon(TODAY - timedelta(days=1), 0)))]
    # The period judged is a Monday's: its normal is the median of the 10 working days among the 14 before.
    assert len(own_days) == 14
    working = [v for k, v in enumerate(own_days) if (TODAY - timedelta(days=15 - k)).weekday() < 5]
    assert len(working) == 10
    assert judged.normal[by_id[old], door] == pytest.approx(float(np.median(working)))
    fleet_days = db.execute("SELECT count(*) AS n FROM wear_baselines WHERE NOT history").fetchone()["n"]
    assert fleet_days == 1  # the new elevator's baseline row says it has no history yet


def test_training_holds_no_transaction_and_no_lock_but_its_own_while_it_fits(config, db, monkeypatch):
    from models.scheduler import job_table, run_locked

    fleet(db)
    db.execute("INSERT INTO job_cursors (name, position) VALUES ('rollup:elevator:3600s', now())")
    key = zlib.crc32(b"wear_train")
    seen = {}

    def watched_fit(*args, **kwargs):
        trainer = db.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = %s::bigint::oid"
                             " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                             (key,)).fetchone()["pid"]
        seen["activity"] = db.execute("SELECT state, xact_start FROM pg_stat_activity WHERE pid = %s",
                                      (trainer,)).fetchone()
        seen["locks"] = [r["locktype"] for r in db.execute("SELECT locktype FROM pg_locks WHERE pid = %s", (trainer,))]
        # Another job's lock and the rollup's watermark rows are free meanwhile.
        with db.transaction():
            seen["rollup_lock"] = db.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok",
                                             (zlib.crc32(b"rollup"),)).fetchone()["ok"]
            seen["watermarks"] = len(db.execute("SELECT * FROM job_cursors FOR UPDATE NOWAIT").fetchall())
        return fit(*args, **kwargs)

    monkeypatch.setattr(jobs, "fit", watched_fit)
    config = config.replace(wear_train_days=20, wear_detector="zscore")
    job, _ = job_table(config)["wear_train"]
    assert run_locked(config, "wear_train", job, noon(TODAY, 0)) == {"elevator": 1, "escalator": None,
                                                                     "boiler": None}
    assert seen == {"activity": {"state": "idle", "xact_start": None}, "locks": ["advisory"], "rollup_lock": True,
                    "watermarks": 1}
    # (pg_locks is the server's: other databases' sessions are not this test's)
    assert db.execute("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND database = "
                      "(SELECT oid FROM pg_database WHERE datname = current_database())").fetchone()["n"] == 0


def alerts(db) -> list[dict]:
    return db.execute("SELECT equipment_id, kind, source, state, message, detail, first_seen, resolved_at"
                      " FROM alerts ORDER BY id").fetchall()


def test_high_scores_in_a_row_open_a_door_operator_alert_that_resolves_after_maintenance_and_a_normal_score(db):
    fleet(db)
    worn = register_equipment(db, "EL-W")
    store_days(db, worn, TODAY - timedelta(days=30), 30)  # its door cycle took 5.0 s every day
    stored = jobs.train_type(db, "elevator", TODAY, replace(SETTINGS, detector="zscore"))
    door = ELEVATOR.index("door_cycle_s")
    # The worn elevator's door cycle takes 8 s from 08:00 today on (5 s every day before).
    for hour in range(8, 14):
        store_window(db, worn, noon(TODAY, hour), door_cycle_s=8.0)

    def score(hour: int) -> dict[str, int]:
        return score_ends(db, "elevator", [noon(TODAY, hour)], stored, SETTINGS)

    assert score(9) == {"scored": 1, "raised": 0, "resolved": 0}  # 08:00-09:00 high: one window
    assert score(10) == {"scored": 1, "raised": 0, "resolved": 0}  # two
    assert score(11) == {"scored": 1, "raised": 1, "resolved": 0}  # three in a row: the alert opens



    [alert] = alerts(db)
    assert (alert["equipment_id"], alert["kind"], alert["source"], alert["state"], alert["first_seen"]) == \
        (worn, "wear:door_operator", "anomaly", "open", noon(TODAY, 11))
    assert alert["message"] == (
        "Door operator (门机): a door cycle (opening and closing) takes 60 % longer than normal: 8.0 s against "
        "5.0 s (开关门时间比平时长60%); over the last 2 h (近2小时), against this elevator's own normal of the 14 "
        "days before (与本梯前14天相比)")
    # Its own days never varied: the scale is the fleet's floor (docs/wear.md), with the error of the door motion's
    # count of samples: 120 door cycles of 5 s in samples 5 s apart (sqrt(5 × 5 / 120) s).
    deviation = round(min(3.0 / np.hypot(stored.model.fleet.floor[door], np.sqrt(5.0 * 5.0 / 120)), CLIP), 2)
    assert alert["detail"]["features"] == {"door_cycle_s": {"value": 8.0, "normal": 5.0, "deviation": deviation}}
    assert alert["detail"]["baseline"] == "own" and alert["detail"]["score"] >= 1.0
    # Still high: the alert stays open as it was.
    assert score(12) == {"scored": 1, "raised": 0, "resolved": 0}
    # The door back to 5 s: the score is normal, but nobody has maintained the elevator since.
    for hour in range(14, 18):
        store_window(db, worn, noon(TODAY, hour))
    assert score(16) == {"scored": 1, "raised": 0, "resolved": 0}
    assert alerts(db)[0]["state"] == "open"
    # A maintenance record on the day of the alert, and the next normal score resolves it.
    db.execute("INSERT INTO maintenance_records (equipment_id, kind, performed_on) VALUES (%s, 'routine', %s)",
               (worn, TODAY))
    assert score(17) == {"scored": 1, "raised": 0, "resolved": 1}
    assert (alerts(db)[0]["state"], alerts(db)[0]["resolved_at"]) == ("resolved", noon(TODAY, 17))
    streaks = [r["streak"] for r in db.execute("SELECT streak FROM wear_scores WHERE equipment_id = %s ORDER BY "
                                               "ends_at", (worn,))]
    assert streaks == [1, 2, 3, 4, 0, 0]


def test_the_scoring_job_judges_each_window_the_rollup_completed_since_its_last_run_once(db):
    ids = fleet(db)
    jobs.train_type(db, "elevator", TODAY, replace(SETTINGS, detector="zscore"))
    for eid in ids[:2]:
        for hour in range(9, 16):
            store_window(db, eid, noon(TODAY, hour))
    rollup = RollupSettings(3600, 300.0, 30.0, 0.05, "Asia/Shanghai")
    models = ModelCache()

    def run(rolled_up_to: datetime) -> int:
        db.execute("INSERT INTO job_cursors (name, position) VALUES ('rollup:elevator:3600s', %(at)s) "
                   "ON CONFLICT (name) DO UPDATE SET position = %(at)s", {"at": rolled_up_to})
        with db.transaction():
            return jobs.score_job(db, rolled_up_to + timedelta(minutes=1), SETTINGS, rollup, models)["elevator"]

    # A first run judges the last window complete: 10:00-12:00, where two elevators have windows.
    assert run(noon(TODAY, 12) + timedelta(minutes=10)) == {"scored": 2, "raised": 0, "resolved": 0}
    # The next, each window end since: 13:00, 14:00 and 15:00.
    assert run(noon(TODAY, 15) + timedelta(minutes=10)) == {"scored": 6, "raised": 0, "resolved": 0}
    assert run(noon(TODAY, 15) + timedelta(minutes=20)) == {"scored": 0, "raised": 0, "resolved": 0}
    ends = [r["ends_at"] for r in db.execute("SELECT DISTINCT ends_at FROM wear_scores ORDER BY ends_at")]
    assert ends == [noon(TODAY, hour) for hour in (12, 13, 14, 15)]


def test_the_wear_settings_come_from_the_configuration_and_a_period_shorter_than_a_window_is_refused(base_config):
    settings = settings_from_config(base_config)
    assert (settings.baseline_days, settings.min_history_days, settings.recent_hours, settings.width_s) == \
        (14, 14, 24, 3600)
    for detector in DETECTORS:
        assert load_config(environ={"SEMON_WEAR_DETECTOR": detector}).wear_detector == detector
    with pytest.raises(ConfigError, match="wear_recent_hours = 1: must cover at least one rollup window"):
        settings_from_config(base_config.replace(wear_recent_hours=1, rollup_bucket_s=7200))
    assert settings.trim_windows == 2


def test_a_rest_day_is_judged_against_the_rest_days_before_it_and_a_working_day_against_the_working_days():
    # A mall's elevator: its motor runs at 50 °C at weekends, 45 °C on working days (2026-01-01 is a Thursday).
    days = np.datetime64("2026-01-01") + np.arange(28)
    rest = rest_days(days)
    assert rest.tolist()[:7] == [False, False, True, True, False, False, False]
    temp = ELEVATOR.index("motor_temp_mean_c")
    values = np.tile(np.array([HEALTHY[name] for name in ELEVATOR]), (1, 28, 1))
    wiggle = np.where(np.arange(28) % 2 == 0, 0.5, -0.5)  # the days differ by ±0.5 °C about their kind's level
    values[0, :, temp] = np.where(rest, 50.0, 45.0) + wiggle
    table = DayTable("elevator", np.array([1]), days[0], values, np.full_like(values, 1000.0), np.full((1, 28), 30.0))
    sunday, wednesday = 24, 27  # 2026-01-25 and 2026-01-28
    own = own_baselines(table, np.array([sunday, wednesday]), baseline_days=14, min_history_days=14)
    assert own.rest_median[0, :, temp].tolist() == [50.0, 50.0] and own.median[0, :, temp].tolist() == [45.0, 45.0]
    assert own.scale[0, :, temp] == pytest.approx([0.5 * 1.4826] * 2)  # the spread about each kind's level
    fleet = FleetBaseline(np.zeros(len(ELEVATOR)), np.ones(len(ELEVATOR)), np.full(len(ELEVATOR), 0.1))
    # A Sunday at 50 °C is its normal; a working day at 50 °C is 5 °C hotter than working days are.
    median, scale = reference(own, fleet, np.array([[1.0, 0.0]]))
    assert median[0, :, temp].tolist() == [50.0, 45.0]
    z = deviations("elevator", np.full((1, 2, len(ELEVATOR)), 50.0), table.den[:, [sunday, wednesday]], median,
                   scale, np.full((1, 2), 30.0))
    assert z[0, :, temp] == pytest.approx([0.0, 5.0 / (0.5 * 1.4826)])
    # A period half on Saturday and half on Friday is judged against the mean of both levels.
    assert reference(own, fleet, np.array([[0.5, 0.5]]))[0][0, 0, temp] == 47.5


def test_a_door_cycle_time_seen_in_few_samples_deviates_less_surely_than_one_seen_in_many():
    door = ELEVATOR.index("door_cycle_s")
    values = np.tile(np.array([HEALTHY[name] for name in ELEVATOR]), (2, 1))
    values[:, door] = 6.0  # 1 s slower than its normal of 5 s
    median = np.tile(np.array([HEALTHY[name] for name in ELEVATOR]), (2, 1))
    scale = np.full_like(median, 0.3)
    den = np.full_like(median, 800.0)
    den[1] = 200.0  # a quiet Sunday's 200 door cycles against a working day's 800
    z = deviations("elevator", values, den, median, scale, np.array([30.0, 30.0]))
    # Door motion is a count of samples 30 s apart: its error is sqrt(5 s × 30 s / door cycles).
    assert z[:, door] == pytest.approx([1.0 / np.hypot(0.3, np.sqrt(150 / 800)),
                                        1.0 / np.hypot(0.3, np.sqrt(150 / 200))])
    assert z[1, door] < 0.6 * z[0, door]


def test_one_hours_burst_of_door_cycles_without_trips_is_left_out_of_the_period_judged(db):
    eid = register_equipment(db, "EL-HELD")
    day = TODAY - timedelta(days=1)
    for hour in range(24):
        # At noon a door held open at a landing for half an hour: 60 door cycles in 8 trips.
        store_window(db, eid, noon(day, hour), **({"door_cycles_per_trip": 7.5} if hour == 12 else {}))
    # At 03:00 the car stood idle: no trip, so no door cycles per trip that hour (unknown, not zero).
    db.execute("UPDATE rollup_elevator SET trips = 0, door_cycles = 0, door_reversals = 0, door_motion_s = 0"
               " WHERE equipment_id = %s AND bucket = %s", (eid, noon(day, 3)))
    end = noon(TODAY, 0)
    per_trip = ELEVATOR.index("door_cycles_per_trip")
    kept = recent_sums(db, "elevator", [end], width_s=3600, hours=24, trim=2)
    whole = recent_sums(db, "elevator", [end], width_s=3600, hours=24, trim=0)
    assert whole.values()[0, per_trip] == pytest.approx(23 * 60 / (22 * 50 + 8))
    assert kept.values()[0, per_trip] == pytest.approx(1.2)  # 60 door cycles in 50 trips, as every other hour
    assert (kept.den[0, per_trip], whole.den[0, per_trip]) == (21 * 50, 22 * 50 + 8)  # the burst and one more
    assert (kept.covered_s[0], kept.samples[0]) == (24 * 3600, 24 * 720)  # the coverage is the period's, all of it
    daily = daily_sums(db, "elevator", day, TODAY, width_s=3600, time_zone="Asia/Shanghai", trim=2)
    assert daily.values()[0, per_trip] == pytest.approx(1.2)


def test_every_feature_names_a_known_component_and_every_simulated_wear_kind_has_one():
    from simulators.wear import WEAR_KINDS

    assert {f.component for features in WEAR_FEATURES.values() for f in features} == set(COMPONENTS)
    assert set(COMPONENT_OF_SIMULATED_WEAR) == {k for kinds in WEAR_KINDS.values() for k in kinds}
    for equipment_type, kinds in WEAR_KINDS.items():
        components = {f.component for f in WEAR_FEATURES[equipment_type]}
        assert {COMPONENT_OF_SIMULATED_WEAR[k] for k in kinds} <= components, equipment_type


def test_docs_wear_md_lists_every_feature_as_the_code_computes_it_and_the_pages_name_each_component():
    from web.labels import alert_kind

    assert features_markdown() in (REPO / "docs" / "wear.md").read_text(encoding="utf-8")
    assert alert_kind("wear:door_operator") == "Door operator (门机) — wear (磨损预警)"
    assert alert_kind("wear:boiler_fouling") == "Heating-surface scale (受热面结垢) — wear (磨损预警)"


# Five elevators, the first wearing its door operator from day 6 to its fault on day 14.
FLEET = """
name: wear-model
utc_offset: "+08:00"
districts:
  - name: Test District
    code: W1
    equipment: {elevator: 5}
    sites:
      - {use_unit: Test Tower, address: 1 Test Road, kind: office, floors: 12, hosts: [elevator]}
firms:
  - {name: Test Service, phone: "021-1", serves: [elevator]}
wear:
  - {equipment: EL-W1-0001, kind: door_operator, start: 6d, duration: 8d}
"""
START = datetime(2026, 11, 2, tzinfo=SHANGHAI)  # a Monday
DAY_S = 86400.0


def telemetry_until(simulation, until_s: float) -> dict[str, list[dict]]:
    """The fleet's telemetry up to until_s, three hours a day (08:00-11:00; the monitors fast-forward between),
    enough for daily features and quick to simulate."""
    sent: dict[str, list[dict]] = defaultdict(list)
    for due in simulation.schedule():
        if due.at_s >= until_s:
            return sent
        if due.action is None and 8 * 3600 <= due.at_s % DAY_S < 11 * 3600:
            sent[due.equipment].append(simulation.message(due, START + timedelta(seconds=due.at_s)).payload)
    raise AssertionError("the schedule ended early")


def test_a_simulated_worn_door_operator_opens_a_door_operator_alert_before_its_fault(db, db_url, tmp_path,
                                                                                    base_config):
    from ingest.messages import parse_message
    from ingest.writer import BatchWriter, DatabaseLookup
    from simulators.simulation import FleetSimulation
    from tests.test_simulator_wear import load_text

    fault_s = 14 * DAY_S
    simulation = FleetSimulation(load_text(tmp_path, FLEET), 7, interval_s=10.0, today=START.date())
    telemetry = telemetry_until(simulation, fault_s)
    ids = {code: register_equipment(db, code) for code in telemetry}
    messages = [(f"sem/v1/elevator/{code}/telemetry", payload) for code, payloads in telemetry.items()
                for payload in payloads]
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        lookup, writer = DatabaseLookup(conn), BatchWriter(conn)
        for i in range(0, len(messages), 5000):
            writer.write([parse_message(topic, json.dumps(payload).encode(), lookup, now=START + timedelta(days=20))
                          for topic, payload in messages[i:i + 5000]])
    with db.transaction():
        rollup(db, datetime.now(UTC), RollupSettings(3600, 300.0, 0.0, 0.05, "Asia/Shanghai"))

    # Trained on the six days before the wear, each elevator against its own normal from its fourth day on; then
    # every hour judged until the fault, as the scheduler's jobs would.
    settings = replace(settings_from_config(base_config), baseline_days=3, min_history_days=3, train_days=6)
    stored = jobs.train_type(db, "elevator", (START + timedelta(days=6)).date(), settings)
    ends = [START + timedelta(days=6, hours=h) for h in range(1, 8 * 24 + 1)]
    score_ends(db, "elevator", ends, stored, settings)

    # Only the worn car's door operator alert is this test's: the others are the benchmark's to count (bench/wear.py,
    # with the default 14-day baselines), as a 3-day baseline judges an office's Monday against a Friday and its
    # weekend (too few working days to know the week: its motor looks hot on Monday).
    [alert] = [a for a in alerts(db) if a["equipment_id"] == ids["EL-W1-0001"] and a["kind"] == "wear:door_operator"]
    assert (alert["kind"], alert["state"]) == ("wear:door_operator", "open")
    assert alert["first_seen"] < START + timedelta(seconds=fault_s)
    assert alert["message"].startswith("Door operator (门机): ")
    named = set(alert["detail"]["features"])
    assert named and named <= {"door_cycle_s", "door_cycles_per_trip", "reopen_ratio"}
    assert "against this elevator's own normal of the 3 days before" in alert["message"]
