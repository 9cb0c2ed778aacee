"""The wear benchmark's scoring (bench/wear.py): labels to episodes, each wear alert's verdict, flagged before the
fault, lead times, false alerts per healthy equipment-day, precision and component match; the visits put on record,
the warm-up before the scenario, the timing fleet's mix and the targets. Hand-made inputs, no database."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bench.scoring import Label
from bench.wear import (
    TOLERANCE_S,
    Episode,
    Unit,
    UnitResult,
    Verdict,
    Visit,
    WearAlert,
    WearBenchSettings,
    bench_scenario,
    check_targets,
    episodes_of,
    judge,
    score_wear,
    timing_mix,
    visits_of,
)
from semon.config import load_config
from simulators.scenario import load_scenario

H = 3600.0
D = 86400.0
# Door-operator wear on A from day 2 until its fault on day 6, cleared two hours later; a sudden fault on A on day 8;
# a maintenance visit on B on day 3; the wear of C still going when the data ends (day 10).
DOOR_WEAR = Label("A", "wear", "door_operator", 2 * D, 6 * D)
DOOR_FAULT = Label("A", "fault", "door_close_failure", 6 * D, 6 * D + 2 * H)
SUDDEN = Label("A", "fault", "entrapment", 8 * D, 8 * D + 600)
VISIT = Label("B", "maintenance", "maintenance", 3 * D, 3 * D + 2 * H)
STILL_WEARING = Label("C", "wear", "bearing", 7 * D, None)
LABELS = [DOOR_WEAR, VISIT, STILL_WEARING, DOOR_FAULT, SUDDEN]
SPANS = {code: ("elevator", 0.0, 10 * D) for code in ("A", "B", "C")}
COMPONENTS = {"door_operator": "door_operator", "bearing": "bearing", "motor_overheat": "motor"}


def test_a_wear_episode_runs_from_its_start_to_its_fault_and_knows_when_that_fault_was_cleared():
    assert episodes_of(LABELS) == [Episode("A", "door_operator", 2 * D, 6 * D, 6 * D + 2 * H),
                                   Episode("C", "bearing", 7 * D, None, None)]


def test_an_episode_whose_fault_has_no_label_has_no_clear():
    assert episodes_of([DOOR_WEAR]) == [Episode("A", "door_operator", 2 * D, 6 * D, None)]


@pytest.mark.parametrize(("equipment", "opened", "expected"), [
    ("A", 2 * D, "early"),                          # the episode's start
    ("A", 6 * D - 1, "early"),                      # just before its fault
    ("A", 6 * D, "late"),                           # its fault, until it was cleared ...
    ("A", 6 * D + 2 * H + TOLERANCE_S, "late"),     # ... and the tolerance after
    ("A", 6 * D + 2 * H + TOLERANCE_S + 1, "false"),
    ("A", 2 * D - 1, "false"),                      # before the wear began
    ("A", 8 * D + 300, "fault"),                    # during a sudden fault: explained, but not by wear
    ("B", 3 * D + H, "mode"),                       # during a maintenance visit
    ("B", 3 * D + 2 * H + 1, "false"),
    ("C", 9 * D, "early"),                          # still wearing at the end: before its fault
])
def test_each_wear_alert_is_put_down_to_wear_a_fault_a_visit_or_nothing(equipment, opened, expected):
    episodes = [e for e in episodes_of(LABELS) if e.equipment == equipment]
    own = [label for label in LABELS if label.equipment == equipment]
    assert judge(WearAlert(equipment, "door_operator", opened), episodes, own, horizon=10 * D).category == expected


def test_wear_comes_before_a_visit_or_a_sudden_fault_that_happens_during_it():
    episode = Episode("A", "brake", 0.0, 5 * D)
    labels = [Label("A", "maintenance", "maintenance", D, D + H), Label("A", "fault", "entrapment", 2 * D, 2 * D + H)]
    for opened in (D + 60, 2 * D + 60):
        assert judge(WearAlert("A", "brake", opened), [episode], labels, 10 * D) == Verdict("early", episode)


def test_suspended_equipment_is_out_of_service_not_falsely_alarmed():
    assert judge(WearAlert("S", "bearing", D), [], [], 10 * D, suspended=frozenset({"S"})).category == "mode"


def test_a_false_alert_within_a_week_of_a_repair_is_counted_apart():
    episode = Episode("A", "brake", 0.0, D, D + H)
    assert judge(WearAlert("A", "brake", D + H + 7 * D), [episode], [], 20 * D) == Verdict("false", after_repair=True)
    assert judge(WearAlert("A", "brake", D + H + 7 * D + 1), [episode], [], 20 * D) == Verdict("false")


def test_the_figures_of_flagged_episodes_lead_times_false_alerts_and_precision():
    alerts = [
        WearAlert("A", "door_operator", 4 * D),      # flags the episode 48 h before its fault
        WearAlert("A", "bearing", 5 * D),            # a second alert on the episode, naming another component
        WearAlert("B", "door_operator", 3 * D + H),  # during the visit
        WearAlert("B", "motor", 5 * D),              # false; the model's "motor" is the motor_overheat component
        WearAlert("B", "bearing", 0.5 * D),          # before the detector started: left out
    ]
    scored = score_wear(alerts, LABELS, SPANS, active_from=D, types=("elevator",), components=COMPONENTS)
    # Healthy days from day 1 to 10: A without its episode (4 days) and fault window (2 h + the tolerance) and the
    # sudden fault (600 s + the tolerance), B without its visit (2 h), C until its wear began (6 days).
    healthy = (9 * D - 4 * D - (2 * H + TOLERANCE_S) - (600 + TOLERANCE_S)) + (9 * D - 2 * H) + 6 * D
    f = scored.figures
    assert f["wear_healthy_equipment_days"] == round(healthy / D, 1)
    assert (f["wear_episodes"], f["wear_flagged"], f["wear_flagged_before_fault"]) == (1, 1, 1.0)
    assert (f["wear_median_lead_h"], f["wear_median_lead_share"], f["wear_component_match"]) == (48.0, 0.5, 1.0)
    assert (f["wear_alerts"], f["wear_matching_alerts"], f["wear_false_alerts"], f["wear_mode_alerts"]) == (4, 2, 1, 1)
    assert f["wear_precision"] == 0.5
    assert f["wear_false_per_1000_equipment_days"] == round(1 / (healthy / D) * 1000, 3)
    assert f["wear_still_wearing_at_end"] == 1
    # Per kind: the episodes of the kind and the alerts naming its component.
    assert {kind: (row["episodes"], row["flagged"], row["alerts"], row["false_alerts"], row["precision"])
            for kind, row in scored.table.items()} == {"door_operator": (1, 1, 2, 0, 0.5), "bearing": (0, 0, 1, 0, 1.0),
                                                       "motor_overheat": (0, 0, 1, 1, 0.0)}
    assert [(a.component, v.category) for a, v in scored.verdicts] == [
        ("door_operator", "mode"), ("door_operator", "early"), ("bearing", "early"), ("motor_overheat", "false")]


def test_an_episode_counts_as_flagged_only_by_an_alert_between_its_start_and_its_fault():
    alerts = [WearAlert("A", "door_operator", 2 * D - H),  # before the wear began: false, flags nothing
              WearAlert("A", "bearing", 6 * D + H)]         # after the fault: late
    scored = score_wear(alerts, LABELS, SPANS, active_from=D, types=("elevator",), components=COMPONENTS)
    assert (scored.figures["wear_flagged"], scored.figures["wear_median_lead_h"]) == (0, None)
    assert (scored.figures["wear_false_alerts"], scored.figures["wear_late_alerts"]) == (1, 1)
    assert scored.missed == [Episode("A", "door_operator", 2 * D, 6 * D, 6 * D + 2 * H)]


def test_the_first_alert_of_an_episode_gives_its_lead_and_names_its_component():
    alerts = [WearAlert("A", "bearing", 5 * D), WearAlert("A", "door_operator", 5.5 * D)]
    scored = score_wear(alerts, LABELS, SPANS, active_from=D, types=("elevator",), components=COMPONENTS)
    assert (scored.figures["wear_median_lead_h"], scored.figures["wear_median_lead_share"]) == (24.0, 0.25)
    assert scored.figures["wear_component_match"] == 0.0


def test_an_episode_that_failed_before_the_detector_started_is_not_judged():
    scored = score_wear([], LABELS, SPANS, active_from=7 * D, types=("elevator",), components=COMPONENTS)
    assert (scored.figures["wear_episodes"], scored.figures["wear_flagged_before_fault"]) == (0, None)


def test_equipment_of_a_type_the_models_do_not_score_counts_nothing():
    spans = {**SPANS, "P": ("pressure_vessel", 0.0, 10 * D)}
    alerts = [WearAlert("P", "bearing", 5 * D)]
    scored = score_wear(alerts, LABELS, spans, active_from=D, types=("elevator",), components=COMPONENTS)
    assert scored.figures["wear_alerts"] == 0
    assert scored.figures["wear_healthy_days_by_type"] == {"elevator": scored.figures["wear_healthy_equipment_days"]}


def test_the_firms_records_are_the_visits_and_the_repairs_of_faults_cleared():
    labels = [VISIT, DOOR_FAULT, Label("A", "fault", "entrapment", 9 * D, None), Label("X", "maintenance", "m", 0, 1)]
    assert visits_of(labels, {"A": 1, "B": 2}) == [Visit(2, "routine", 3 * D + 2 * H),
                                                   Visit(1, "repair", 6 * D + 2 * H)]


def test_the_warm_up_moves_the_scheduled_wear_and_faults_but_not_the_random_faults(tmp_path: Path):
    original = load_scenario("evaluation")
    moved = load_scenario(bench_scenario(14, tmp_path))
    assert [w.start_s - o.start_s for w, o in zip(moved.wear, original.wear, strict=True)] == [14 * D] * 12
    assert {f.at_s - o.at_s for f, o in zip(moved.faults, original.faults, strict=True)} == {14 * D}
    assert {f.clear_at_s - o.clear_at_s for f, o in zip(moved.faults, original.faults, strict=True)} == {14 * D}
    assert moved.wear_repeat.first_s == original.wear_repeat.first_s + 14 * D
    assert moved.repeat == original.repeat
    assert moved.equipment_codes() == original.equipment_codes()


def test_the_timing_fleet_is_10000_equipment_in_the_load_scenarios_mix_of_types_with_wear_models():
    assert timing_mix() == {"elevator": 9312, "escalator": 486, "boiler": 202}


def test_the_false_alarm_target_is_met_only_when_its_upper_bound_is_within_it():
    def verdict(value, bound):
        result = {"wear_false_per_1000_equipment_days": value, "wear_false_per_1000_equipment_days_upper95": bound,
                  "wear_healthy_equipment_days": 5000}
        return check_targets(result)["false <= 1 per 1,000 healthy equipment-days"][0]

    assert (verdict(0.2, 0.949), verdict(0.2, 1.5), verdict(1.2, 2.0), verdict(None, None)) == (True, None, False, None)


def test_a_bad_setting_stops_the_benchmark_naming_it():
    config = load_config()
    assert WearBenchSettings.from_env(config, {}).warmup_days == config.wear_min_history_days
    with pytest.raises(SystemExit, match="BENCH_WEAR_INTERVAL_S must be in"):
        WearBenchSettings.from_env(config, {"BENCH_WEAR_INTERVAL_S": "600"})
    with pytest.raises(SystemExit, match="unknown phase"):
        WearBenchSettings.from_env(config, {"BENCH_WEAR_PHASES": "fleet,speed"})


def test_a_unit_done_is_noted_so_that_a_run_cut_short_resumes_without_it():
    unit = Unit(3, 8, (1, 2), 60.0, 1_759_420_800.0, 30.0, "evaluation", "postgresql://x/y", {"EL-E1-0001": 31},
                '{"seeds": 4}')
    result = UnitResult(unit, [{"equipment": "EL-E1-0001", "kind": "wear", "name": "bearing",
                                "start": "2026-10-04T00:00:00.000+00:00", "end": None}],
                        {"EL-E1-0001": ("elevator", 1.5, 2.5)}, {"EL-E1-0001": -30.0}, [],
                        Counter({"stored": 10, "duplicates": 1}), 12.5)
    assert UnitResult.from_json(json.loads(json.dumps(result.to_json()))) == result
