"""The fault rules on telemetry (models/rules, docs/rules.md): each rule's dwell, hysteresis, modes and silence, a
state that survives any restart, and the simulator's days and injected faults. Pure: no database, no broker."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from ingest.messages import Telemetry, parse_message
from models.rules import REGISTRY, Change, Detector, EquipmentInfo, Sample, default_settings, settings_from_config
from models.rules.settings import PREFIX, RuleSettings
from semon.config import SETTINGS, load_config
from semon.vocabulary import ELEVATOR_MODES, fault_label
from simulators.lookup import FleetLookup
from simulators.scenario import load_scenario
from simulators.simulation import Due, FleetSimulation
from simulators.timeline import FaultAction
from tests.conftest import REPO

SHANGHAI = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=SHANGHAI)
SETTINGS_DEFAULT = default_settings()
CLEAR = SETTINGS_DEFAULT.clear_s
TRANSIENT_CLEAR = SETTINGS_DEFAULT.transient_clear_s
SLOW = {"high_flue_gas_temp", "water_quality"}  # swing with the firing: recurrences counted, not raised again
CLEAR_S = {"overspeed": TRANSIENT_CLEAR, "door_open_while_moving": TRANSIENT_CLEAR,
           **{kind: SETTINGS_DEFAULT.slow_clear_s for kind in SLOW}}
ABSENT = object()  # a field the monitor does not send


def fault_severities() -> dict[str, str]:
    """Fault code -> default severity, as the migration seeds the fault_codes table."""
    sql = (REPO / "semon" / "migrations" / "0002_fault_codes.sql").read_text()
    return dict(re.findall(r"\('(\w+)',\s*(?:\d+|NULL),\s*'(\w+)'", sql))


def fault_labels() -> dict[str, str]:
    """Fault code -> how it reads, from the descriptions and Chinese names the migrations seed."""
    migrations = REPO / "semon" / "migrations"
    descriptions = dict(re.findall(r"\('(\w+)',\s*(?:\d+|NULL),\s*'\w+',\s*'[^']*',\s*'([^']*)'\)",
                                   (migrations / "0002_fault_codes.sql").read_text()))
    names = dict(re.findall(r"\('(\w+)',\s*'([^'\x00-\x7f]+)'\)",
                            (migrations / "0015_fault_code_names.sql").read_text()))
    return {code: fault_label(description, names[code]) for code, description in descriptions.items()}


SEVERITIES = fault_severities()
LABELS = fault_labels()
DETECTOR = Detector(SETTINGS_DEFAULT, SEVERITIES, LABELS)

EL = EquipmentInfo(1, "elevator", rated_speed_mps=1.75, floors=18)
ES = EquipmentInfo(2, "escalator", rated_speed_mps=0.5)
BL = EquipmentInfo(3, "boiler", rated_pressure_mpa=1.25)
PV = EquipmentInfo(4, "pressure_vessel", rated_pressure_mpa=1.0)

# A car parked at floor 3, door closed, empty; and the overrides that make it run between floors with a passenger.
EL_IDLE = {"floor": 3, "direction": "stop", "speed_mps": 0.0, "door": "closed", "door_zone": True, "load_pct": 0.0,
           "occupied": False, "mode": "normal", "safety_circuit_ok": True, "door_lock_ok": True, "run_count": 5000,
           "door_cycles": 10000}
RUNNING = {"direction": "up", "speed_mps": 1.75, "door_zone": False, "occupied": True}
EL_RUNNING = {**EL_IDLE, **RUNNING}
ES_RUNNING = {"running": True, "direction": "up", "speed_mps": 0.5, "handrail_left_mps": 0.505,
              "handrail_right_mps": 0.503, "mode": "normal", "safety_circuit_ok": True, "brake_ok": True}
BL_FIRING = {"pressure_mpa": 1.0, "water_level_mm": 2.0, "burner": "low", "flame": True, "flue_gas_temp_c": 180.0,
             "feedwater_flow_tph": 2.0, "steam_flow_tph": 2.0, "water_hardness_mmol_l": 0.01, "ph": 11.0}
PV_NORMAL = {"pressure_mpa": 0.6, "temperature_c": 25.0, "level_pct": 50.0, "safety_valve_open": False}

Overrides = Mapping[str, Any] | Callable[[int, int], Mapping[str, Any]]


@dataclass(frozen=True)
class Case:
    """A rule and a way to make its condition hold: `fault` overrides `base` (or, as a function of the fault
    samples so far and of those in this fault period, gives the overrides); `delay` is the time from the first
    sample of a fault period to the raise, with a sample a second, of which the condition itself holds for all but
    `builds_up` (door cycles being counted, a car arriving)."""

    name: str
    equipment: EquipmentInfo
    base: Mapping[str, Any]
    fault: Overrides
    delay: float
    suppressed: frozenset[str] = frozenset()
    normal: Overrides = field(default_factory=dict)
    code: str = ""
    builds_up: float = 0

    @property
    def kind(self) -> str:
        return self.code or self.name

    @property
    def clear_s(self) -> float:
        return CLEAR_S.get(self.kind, CLEAR)

    def values(self, phase: str, k: int, j: int, mode: str | None) -> dict[str, Any]:
        over = self.fault if phase == "fault" else self.normal
        values = {**self.base, **(over(k, j) if callable(over) else over)}
        if mode is not None:
            values["mode"] = mode
        return {name: value for name, value in values.items() if value is not ABSENT}


def build(case: Case, phases: list[tuple[float, str]], mode: str | None = None, step: float = 1.0) -> list[Sample]:
    """Samples every `step` s from T0 through the phases (seconds, "fault" or "normal")."""
    out: list[Sample] = []
    k = 0
    for seconds, phase in phases:
        for j in range(round(seconds / step)):
            out.append(Sample(T0 + timedelta(seconds=len(out) * step), len(out) + 1, case.values(phase, k, j, mode)))
            k += phase == "fault"
    return out


def run(equipment: EquipmentInfo, stream: list[Sample], cuts: tuple[int, ...] = (),
        detector: Detector = DETECTOR, state: Any = None) -> tuple[dict[str, Any], list[Change]]:
    """The stream in batches cut at `cuts`, the state through JSON between batches, as the ingester stores it."""
    changes: list[Change] = []
    bounds = [0, *cuts, len(stream)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        state, new = detector.evaluate(equipment, state, stream[a:b])
        state = json.loads(json.dumps(state))
        changes += new
    return state, changes


def events(changes: list[Change], kind: str | None = None) -> list[tuple[float, str, str]]:
    """(seconds after T0, kind, event) of each change (of one kind)."""
    return [(round((c.at - T0).total_seconds(), 3), c.kind, c.event) for c in changes if kind in (None, c.kind)]


TECH = frozenset({"inspection", "maintenance"})
TECH_OOS = TECH | {"out_of_service"}


def reopening(k: int, j: int) -> dict[str, Any]:
    """A door that reopens before it closes, one cycle a sample (no run meanwhile)."""
    return {"door": "closing", "door_cycles": 10001 + k, "run_count": 5000 + k - j}


def resting(k: int, j: int) -> dict[str, Any]:
    """The door at rest after a run (each normal period follows a run)."""
    return {"door_cycles": 10000 + k, "run_count": 5000 + k}


def arrival(k: int, j: int) -> dict[str, Any]:
    """The car runs with a passenger, arrives at the landing, and its door stays shut."""
    return RUNNING if j == 0 else {"occupied": True}


CASES = [
    Case("entrapment", EL, EL_IDLE, {"occupied": True, "door_zone": False}, 30,
         TECH | {"firefighter"}, normal={"door": "open"}),
    Case("entrapment_at_floor", EL, EL_IDLE, {"occupied": True}, 90, TECH | {"firefighter"},
         normal={"door": "open"}, code="entrapment"),
    Case("stop_outside_door_zone", EL, EL_IDLE, {"door_zone": False}, 45,
         TECH_OOS | {"earthquake", "emergency_power"}),
    Case("door_open_while_moving", EL, EL_RUNNING, {"door": "open"}, 1, TECH_OOS),
    Case("overspeed", EL, EL_RUNNING, {"speed_mps": 2.1}, 0, TECH_OOS),
    Case("safety_circuit_open", EL, EL_IDLE, {"safety_circuit_ok": False}, 0,
         TECH_OOS | {"earthquake", "emergency_power"}),
    Case("door_lock_circuit_open", EL, EL_IDLE, {"door_lock_ok": False}, 3, TECH_OOS | {"emergency_power"}),
    Case("door_open_too_long", EL, EL_IDLE, {"door": "open"}, 60,
         TECH_OOS | {"fire_return", "firefighter", "earthquake", "emergency_power"}),
    Case("repeated_door_reopen", EL, EL_IDLE, reopening, 19, TECH_OOS, normal=resting, builds_up=19),
    Case("door_close_failure", EL, EL_IDLE, {"door": "closing"}, 15, TECH_OOS | {"firefighter"}),
    Case("door_open_failure", EL, EL_IDLE, {"door": "opening"}, 15, TECH_OOS | {"firefighter"}),
    Case("door_open_failure_after_arrival", EL, EL_IDLE, arrival, 16, TECH_OOS | {"firefighter"},
         normal={"door": "open"}, code="door_open_failure", builds_up=1),
    Case("run_timeout", EL, EL_IDLE, RUNNING, 45, TECH_OOS),
    Case("overtravel_top", EL, EL_IDLE, {"floor": 19, "door_zone": False}, 10, TECH_OOS),
    Case("overtravel_top_at_terminal", EL, EL_IDLE, {"floor": 18, "door_zone": False, "safety_circuit_ok": False}, 10,
         TECH_OOS, code="overtravel_top"),
    Case("overtravel_bottom", EL, EL_IDLE, {"floor": 0, "door_zone": False}, 10, TECH_OOS),
    Case("floor_position_lost", EL, EL_IDLE, {"floor": ABSENT}, 10, TECH_OOS),
    Case("handrail_speed_deviation", ES, ES_RUNNING, {"handrail_left_mps": 0.4}, 15, TECH_OOS),
    Case("escalator_overspeed", ES, ES_RUNNING,
         {"speed_mps": 0.6, "handrail_left_mps": 0.6, "handrail_right_mps": 0.6}, 0, TECH_OOS, code="overspeed"),
    Case("unintended_reversal", ES, ES_RUNNING, {"direction": "down"}, 0, TECH_OOS),
    Case("escalator_safety_circuit_open", ES, ES_RUNNING, {"safety_circuit_ok": False}, 0,
         TECH_OOS | {"earthquake", "emergency_power"}, code="safety_circuit_open"),
    Case("brake_not_released", ES, ES_RUNNING, {"brake_ok": False}, 5, TECH_OOS),
    Case("low_water_level", BL, BL_FIRING, {"water_level_mm": -60.0}, 3),
    Case("high_water_level", BL, BL_FIRING, {"water_level_mm": 60.0}, 3),
    Case("overpressure", BL, BL_FIRING, {"pressure_mpa": 1.3}, 0),
    Case("flame_failure", BL, BL_FIRING, {"flame": False}, 5),
    Case("high_flue_gas_temp", BL, BL_FIRING, {"flue_gas_temp_c": 260.0}, 60),
    Case("water_quality", BL, BL_FIRING, {"water_hardness_mmol_l": 0.05}, 120),
    Case("water_quality_ph", BL, BL_FIRING, {"ph": 9.5}, 120, code="water_quality"),
    Case("vessel_overpressure", PV, PV_NORMAL, {"pressure_mpa": 1.05}, 0, code="overpressure"),
    Case("safety_valve_open", PV, PV_NORMAL, {"safety_valve_open": True}, 0),
]
CASE_IDS = [c.name for c in CASES]


def test_every_rule_has_a_case():
    assert {(c.equipment.type, c.kind) for c in CASES} == {
        (kind, rule.code) for kind, type_rules in REGISTRY.items() for rule in type_rules.rules}


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_a_rule_raises_at_the_sample_where_its_dwell_has_passed(case):
    _, changes = run(case.equipment, build(case, [(10, "normal"), (case.delay + 5, "fault")]))
    [change] = [c for c in changes if c.kind == case.kind]
    assert events([change]) == [(10 + case.delay, case.kind, "raised")]
    assert change.severity == SEVERITIES[case.kind]
    assert change.message.startswith(LABELS[case.kind] + ": ")
    assert json.loads(json.dumps(change.detail)) == change.detail


@pytest.mark.parametrize("case", [c for c in CASES if c.delay > 0], ids=[c.name for c in CASES if c.delay > 0])
def test_a_condition_gone_just_before_its_dwell_raises_nothing(case):
    _, changes = run(case.equipment, build(case, [(10, "normal"), (case.delay, "fault"), (30, "normal")]))
    assert events(changes, case.kind) == []


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_a_fault_clears_once_its_condition_has_been_gone_for_the_clear_time(case):
    _, changes = run(case.equipment, build(case, [(10, "normal"), (case.delay + 5, "fault"),
                                                  (case.clear_s + 5, "normal")]))
    gone_at = 10 + case.delay + 5
    assert events(changes, case.kind) == [(10 + case.delay, case.kind, "raised"),
                                          (gone_at + case.clear_s, case.kind, "cleared")]


def flapping(case: Case) -> tuple[list[tuple[float, str]], list[tuple[float, str, str]]]:
    """Phases where the condition comes back three times before it could clear, and the changes expected."""
    gap = case.clear_s - 10 - case.builds_up
    phases = [(10, "normal"), (case.delay + 2, "fault")]
    expected = [(10 + case.delay, case.kind, "raised")]
    t = 10 + case.delay + 2
    for _ in range(3):
        t += gap
        phases += [(gap, "normal"), (case.delay + 2, "fault")]
        if case.kind not in SLOW:
            expected.append((t + case.delay, case.kind, "raised"))
        t += case.delay + 2
    phases.append((case.clear_s + 2, "normal"))
    expected.append((t + case.clear_s, case.kind, "cleared"))
    return phases, expected


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_a_flapping_condition_is_one_fault_with_its_repeats_counted(case):
    phases, expected = flapping(case)
    _, changes = run(case.equipment, build(case, phases))
    assert events(changes, case.kind) == expected
    repeats = [c.detail.get("occurrence") for c in changes if c.kind == case.kind and c.event == "raised"]
    assert repeats == ([None] if case.kind in SLOW else [None, 2, 3, 4])
    assert [c.detail["occurrences"] for c in changes if c.kind == case.kind and c.event == "cleared"] == [4]


MODAL = [c for c in CASES if c.equipment.type in ("elevator", "escalator")]


@pytest.mark.parametrize("mode", [m for m in ELEVATOR_MODES if m != "normal"])
@pytest.mark.parametrize("case", MODAL, ids=[c.name for c in MODAL])
def test_a_mode_that_explains_a_fault_raises_nothing_and_the_others_do(case, mode):
    _, changes = run(case.equipment, build(case, [(10, "normal"), (case.delay + 5, "fault")], mode=mode))
    expected = [] if mode in case.suppressed else [(10 + case.delay, case.kind, "raised")]
    assert events(changes, case.kind) == expected


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_batches_cut_anywhere_with_the_state_through_json_give_the_same_changes(case):
    stream = build(case, [(10, "normal"), (case.delay + 5, "fault"), (case.clear_s + 5, "normal")])
    _, whole = run(case.equipment, stream)
    assert whole
    rng = random.Random(case.name)
    # Every cut of the raise and the clear (the slow faults' hour-long clear: 100 cuts at random).
    cuts = range(1, len(stream)) if len(stream) < 1000 else rng.sample(range(1, len(stream)), 100)
    for cut in cuts:
        assert run(case.equipment, stream, (cut,))[1] == whole, f"cut at sample {cut}"
    phases, _ = flapping(case)
    stream = build(case, phases)
    _, whole = run(case.equipment, stream)
    for _ in range(3):
        cuts = tuple(sorted(rng.sample(range(1, len(stream)), 12)))
        assert run(case.equipment, stream, cuts)[1] == whole, f"cuts at {cuts}"


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_samples_older_than_the_last_processed_are_ignored(case):
    stream = build(case, [(10, "normal"), (case.delay + 5, "fault"), (case.clear_s + 5, "normal")])
    state, _ = run(case.equipment, stream)
    # Late samples showing the fault again, and a redelivery of the last one, change nothing.
    late = [Sample(s.ts, s.seq, case.values("fault", 0, 1, None)) for s in stream[12:]]
    after, changes = DETECTOR.evaluate(case.equipment, state, late)
    assert (after, changes) == (state, [])


def test_samples_of_a_batch_are_taken_in_ts_and_seq_order():
    case = CASES[0]
    stream = build(case, [(10, "normal"), (40, "fault")])
    shuffled = stream[:]
    random.Random(1).shuffle(shuffled)
    assert run(EL, shuffled)[1] == run(EL, stream)[1]


# Entrapment and occupancy.

def test_entrapment_between_floors_has_its_own_time_and_at_a_floor_a_longer_one():
    between = build(CASES[0], [(5, "normal"), (100, "fault")])
    at_floor = build(CASES[1], [(5, "normal"), (100, "fault")])
    assert events(run(EL, between)[1], "entrapment") == [(35, "entrapment", "raised")]
    assert events(run(EL, at_floor)[1], "entrapment") == [(95, "entrapment", "raised")]
    [change] = [c for c in run(EL, between)[1] if c.kind == "entrapment"]
    assert change.message == ("Passenger trapped (困人): car stopped between floors near floor 3 with a passenger, "
                              "door closed, for 30 s")
    assert change.detail == {"floor": 3, "door_zone": False, "occupied": True, "between_floors": True,
                             "held_s": 30.0, "dwell_s": 30.0}


def trapped(occupied: list[bool], step: float = 5.0) -> list[Sample]:
    """A car stopped between floors, door closed, with the PIR readings given, a reading every `step` s."""
    return [Sample(T0 + timedelta(seconds=i * step), i + 1, {**EL_IDLE, "door_zone": False, "occupied": o})
            for i, o in enumerate(occupied)]


def test_pir_readings_that_miss_the_passenger_for_less_than_the_debounce_do_not_restart_the_dwell():
    # Readings 5 s apart: two in a row miss the passenger (10 s since the last true is within the 15 s debounce).
    readings = [True, True, False, False, True, True, True, True, True]
    assert events(run(EL, trapped(readings))[1], "entrapment") == [(30, "entrapment", "raised")]


def test_pir_readings_that_miss_the_passenger_past_the_debounce_restart_the_dwell():
    readings = [True, True, False, False, False] + [True] * 8
    # False from 15 s after the last true (at 5 s): the dwell restarts at the next true reading, at 25 s.
    assert events(run(EL, trapped(readings))[1], "entrapment") == [(55, "entrapment", "raised")]


def test_a_pir_seeing_someone_now_and_then_in_an_empty_parked_car_raises_nothing():
    readings = [i % 4 == 0 for i in range(200)]  # one reading in four, for 1000 s
    _, changes = run(EL, [Sample(s.ts, s.seq, {**s.values, "door_zone": True}) for s in trapped(readings)])
    assert changes == []


def test_a_passenger_choosing_a_floor_in_a_car_parked_at_a_landing_is_no_fault():
    # Boarded at floor 3 (the door opened and closed there), waiting 80 s before pressing a button.
    stream = build(CASES[1], [(5, "normal"), (80, "fault"), (10, "normal")])
    assert run(EL, stream)[1] == []


# Doors.

def test_door_open_while_moving_ignores_a_single_sample_but_not_one_the_lock_circuit_confirms():
    glitch = build(CASES[3], [(5, "normal"), (1, "fault"), (10, "normal")])
    assert events(run(EL, glitch)[1], "door_open_while_moving") == []
    both = Case("x", EL, EL_RUNNING, {"door": "open", "door_lock_ok": False}, 0)
    assert events(run(EL, build(both, [(5, "normal"), (1, "fault"), (10, "normal")]))[1],
                  "door_open_while_moving") == [(5, "door_open_while_moving", "raised")]


def test_a_car_relevelling_in_the_door_zone_with_its_door_open_is_no_fault():
    relevel = Case("x", EL, EL_IDLE, {"door": "open", "direction": "down", "speed_mps": 0.2, "door_lock_ok": False}, 0)
    assert events(run(EL, build(relevel, [(5, "normal"), (20, "fault")]))[1], "door_open_while_moving") == []
    faster = Case("x", EL, EL_IDLE, {"door": "open", "direction": "down", "speed_mps": 0.5}, 0)
    assert events(run(EL, build(faster, [(5, "normal"), (20, "fault")]))[1], "door_open_while_moving") == [
        (6, "door_open_while_moving", "raised")]


def test_an_open_lock_circuit_with_the_door_open_at_a_landing_is_no_fault_but_while_moving_it_is_at_once():
    at_landing = Case("x", EL, EL_IDLE, {"door": "open", "door_lock_ok": False}, 0)
    assert events(run(EL, build(at_landing, [(5, "normal"), (30, "fault")]))[1], "door_lock_circuit_open") == []
    moving = Case("x", EL, EL_RUNNING, {"door_lock_ok": False}, 0)
    assert events(run(EL, build(moving, [(5, "normal"), (3, "fault")]))[1], "door_lock_circuit_open") == [
        (5, "door_lock_circuit_open", "raised")]


def test_door_cycles_are_counted_from_the_last_run():
    # 14 reopenings, a run, then 19 more: never 20 without a run; the 20th after the run raises it.
    stream = [Sample(T0 + timedelta(seconds=i), i + 1, {**EL_IDLE, "door": "closing", "door_cycles": 10001 + i,
                                                         "run_count": 5000 + (i >= 15)}) for i in range(36)]
    assert events(run(EL, stream[:35])[1], "repeated_door_reopen") == []
    assert events(run(EL, stream)[1], "repeated_door_reopen") == [(35, "repeated_door_reopen", "raised")]


def test_a_door_reopening_each_time_it_is_sampled_is_not_a_door_stuck_closing_or_held_open():
    # Sampled once a cycle, a reopening door can read "closing" (or "open") every time; its counter moves.
    for door in ("closing", "open", "opening"):
        stream = [Sample(T0 + timedelta(seconds=5 * i), i + 1, {**EL_IDLE, "door": door, "door_cycles": 10000 + i})
                  for i in range(60)]
        kinds = {c.kind for c in run(EL, stream)[1]}
        assert kinds == {"repeated_door_reopen"}, door


def test_a_door_cycle_counted_in_a_sample_without_a_door_reading_still_restarts_the_door_dwell():
    # A worn door closes, reopens (the cycle is counted in the one sample whose door reading went missing) and
    # closes again: 16 s of "closing" readings, but no door stuck closing.
    doors = ["closing", "closing", None, "closing", "closing"]
    values = [{k: v for k, v in {**EL_IDLE, "door": door, "door_cycles": 10000 + (i >= 2)}.items() if v is not None}
              for i, door in enumerate(doors)]
    stream = [Sample(T0 + timedelta(seconds=4 * i), i + 1, v) for i, v in enumerate(values)]
    assert run(EL, stream)[1] == []


# Speed, position and registry facts.

def test_overspeed_needs_the_registrys_rated_speed():
    stream = build(CASES[4], [(5, "normal"), (10, "fault")])
    assert events(run(EquipmentInfo(9, "elevator", floors=18), stream)[1], "overspeed") == []
    unrated = EquipmentInfo(9, "pressure_vessel")
    assert run(unrated, build(CASES[-2], [(5, "normal"), (10, "fault")]))[1] == []


def test_a_car_running_away_is_overspeed_not_also_a_run_timeout():
    stream = build(CASES[4], [(5, "normal"), (100, "fault")])
    assert {c.kind for c in run(EL, stream)[1]} == {"overspeed"}


def test_an_overtravelled_car_is_not_also_stopped_outside_the_door_zone():
    stream = build(CASES[13], [(5, "normal"), (100, "fault")])
    kinds = {c.kind for c in run(EL, stream)[1]}
    assert "overtravel_top" in kinds and "stop_outside_door_zone" not in kinds


def test_a_floor_jumping_further_than_the_car_can_travel_is_a_lost_position():
    floors = [3, 3, 4, 5, 5, 12, 12]  # a sample a second at 1.75 m/s: 5 -> 12 in 1 s is impossible
    stream = [Sample(T0 + timedelta(seconds=i), i + 1, {**EL_RUNNING, "floor": f}) for i, f in enumerate(floors)]
    [change] = [c for c in run(EL, stream)[1] if c.kind == "floor_position_lost"]
    assert events([change]) == [(5, "floor_position_lost", "raised")]
    assert change.message == ("Floor position lost (楼层位置丢失): floor jumped from 5 to 12, further than the car "
                              "can travel")


def test_a_monitor_that_never_sends_a_floor_or_only_sends_what_changed_has_no_lost_position():
    never = [Sample(T0 + timedelta(seconds=i), i + 1, {k: v for k, v in EL_IDLE.items() if k != "floor"})
             for i in range(60)]
    assert run(EL, never)[1] == []
    changes_only = [Sample(T0, 1, EL_IDLE)] + [Sample(T0 + timedelta(seconds=i), i + 1, {"door": "closed"})
                                               for i in range(1, 60)]
    assert run(EL, changes_only)[1] == []


def test_an_escalator_reversed_by_its_operator_after_a_stop_is_no_fault():
    stopped = {**ES_RUNNING, "running": False, "direction": "stop", "speed_mps": 0.0, "handrail_left_mps": 0.0,
               "handrail_right_mps": 0.0}
    values = [ES_RUNNING] * 10 + [stopped] * 3 + [{**ES_RUNNING, "direction": "down"}] * 10
    stream = [Sample(T0 + timedelta(seconds=i), i + 1, v) for i, v in enumerate(values)]
    assert run(ES, stream)[1] == []


def test_low_water_confirmed_by_a_feed_short_of_the_steam_flow_is_raised_at_once():
    case = Case("x", BL, BL_FIRING, {"water_level_mm": -60.0, "feedwater_flow_tph": 0.0}, 0)
    assert events(run(BL, build(case, [(5, "normal"), (5, "fault")]))[1]) == [(5, "low_water_level", "raised")]


def test_a_burner_purging_before_its_flame_shows_is_no_flame_failure_but_one_that_never_lights_is():
    off = {**BL_FIRING, "burner": "off", "flame": False}
    values = [off] * 5 + [{**BL_FIRING, "flame": False}] * 60 + [BL_FIRING] * 30
    stream = [Sample(T0 + timedelta(seconds=i), i + 1, v) for i, v in enumerate(values)]
    assert run(BL, stream)[1] == []
    never = [off] * 5 + [{**BL_FIRING, "flame": False}] * 100
    stream = [Sample(T0 + timedelta(seconds=i), i + 1, v) for i, v in enumerate(never)]
    [change] = run(BL, stream)[1]
    assert (events([change]), change.message) == (
        [(95, "flame_failure", "raised")],
        "Flame lost (熄火): burner low called to fire shows no flame, for 90 s")


# Hysteresis, repeats, modes.

def test_a_transient_fault_recurring_soon_after_it_cleared_is_raised_as_a_repeat_of_it():
    case = CASES[4]  # overspeed
    phases = [(10, "normal"), (2, "fault"), (TRANSIENT_CLEAR + 100, "normal"), (2, "fault"),
              (TRANSIENT_CLEAR + 700, "normal"), (2, "fault")]
    _, changes = run(EL, build(case, phases))
    assert events(changes, "overspeed") == [(10, "overspeed", "raised"), (312, "overspeed", "cleared"),
                                            (412, "overspeed", "raised"), (714, "overspeed", "cleared"),
                                            (1414, "overspeed", "raised")]
    raised = [c for c in changes if c.kind == "overspeed" and c.event == "raised"]
    assert raised[1].detail["repeat"] is True
    assert raised[1].detail["previous_cleared_at"] == (T0 + timedelta(seconds=312)).isoformat(timespec="milliseconds")
    assert "repeat" not in raised[0].detail and "repeat" not in raised[2].detail


def test_a_mode_switch_cancels_a_pending_dwell():
    trapped_values = {**EL_IDLE, "occupied": True, "door_zone": False}
    values = [trapped_values] * 20 + [{**trapped_values, "mode": "fire_return"}] * 40
    stream = [Sample(T0 + timedelta(seconds=i), i + 1, v) for i, v in enumerate(values)]
    assert events(run(EL, stream)[1], "entrapment") == [(50, "entrapment", "raised")]


def test_an_open_fault_clears_after_the_hysteresis_when_a_mode_explains_it():
    values = [{**EL_IDLE, "safety_circuit_ok": False}] * 10 + [
        {**EL_IDLE, "safety_circuit_ok": False, "mode": "inspection"}] * 70
    stream = [Sample(T0 + timedelta(seconds=i), i + 1, v) for i, v in enumerate(values)]
    assert events(run(EL, stream)[1]) == [(0, "safety_circuit_open", "raised"), (70, "safety_circuit_open", "cleared")]


def test_a_reading_not_sent_neither_raises_nor_clears():
    without = {k: v for k, v in EL_IDLE.items() if k != "safety_circuit_ok"}
    values = [{**EL_IDLE, "safety_circuit_ok": False}] * 5 + [without] * 200
    stream = [Sample(T0 + timedelta(seconds=i), i + 1, v) for i, v in enumerate(values)]
    state, changes = run(EL, stream)
    assert events(changes) == [(0, "safety_circuit_open", "raised")]
    assert state["r"]["safety_circuit_open"]["a"] is True


# A silent monitor.

def silent_entrapment(held_s: int) -> tuple[dict[str, Any], datetime]:
    """The state after a trapped car's monitor sent `held_s` + 1 readings a second, and when the last arrived."""
    stream = trapped([True] * (held_s + 1), step=1.0)
    state, changes = run(EL, stream)
    assert changes == []
    return state, stream[-1].ts + timedelta(seconds=0.3)


def test_an_entrapment_dwell_completes_on_the_servers_clock_when_the_monitor_falls_silent():
    state, silent_since = silent_entrapment(20)
    assert DETECTOR.pending(state)
    assert DETECTOR.expire(EL, state, silent_since, silent_since + timedelta(seconds=9.9))[1] == []
    # Between floors, the car is also stopped outside the door zone (45 s): both complete, each when it is due.
    state, changes = DETECTOR.expire(EL, state, silent_since, silent_since + timedelta(seconds=25))
    assert [(c.kind, c.event, c.at) for c in changes] == [
        ("entrapment", "raised", silent_since + timedelta(seconds=10)),
        ("stop_outside_door_zone", "raised", silent_since + timedelta(seconds=25))]
    assert changes[0].detail["completed_while_silent"] is True
    assert changes[0].message.endswith("for 30 s (no message since; completed on the server's clock)")
    assert not DETECTOR.pending(state)
    assert DETECTOR.expire(EL, state, silent_since, silent_since + timedelta(seconds=60))[1] == []
    # The monitor comes back: the car is still there, then the door opens and it clears after the hysteresis.
    back = [Sample(silent_since + timedelta(seconds=100 + i), 100 + i,
                   {**EL_IDLE, "door_zone": False, "occupied": True, "door": "closed" if i < 5 else "open"})
            for i in range(70)]
    _, changes = DETECTOR.evaluate(EL, state, back)
    assert [(c.kind, c.event, c.at) for c in changes if c.kind == "entrapment"] == [
        ("entrapment", "cleared", silent_since + timedelta(seconds=165))]


def test_at_a_landing_or_with_the_last_reading_seeing_nobody_an_entrapment_waits_for_samples_through_a_silence():
    # At a landing: the passenger (a PIR reading every 5 s sees them) may open the door and leave unseen.
    at_floor = [Sample(T0 + timedelta(seconds=5 * i), i + 1, {**EL_IDLE, "occupied": True}) for i in range(13)]
    state, changes = run(EL, at_floor)
    assert changes == [] and not DETECTOR.pending(state)
    since = at_floor[-1].ts
    assert DETECTOR.expire(EL, state, since, since + timedelta(minutes=10))[1] == []
    # Back after a silence longer than rule_silence_s, still shut in: the 90 s start again at the first sample.
    back_at = since + timedelta(seconds=SETTINGS_DEFAULT.silence_s + 5)
    back = [Sample(back_at + timedelta(seconds=5 * i), 100 + i, {**EL_IDLE, "occupied": True}) for i in range(20)]
    assert [(c.kind, c.at) for c in DETECTOR.evaluate(EL, state, back)[1]] == [
        ("entrapment", back_at + timedelta(seconds=90))]
    # Between floors, with the PIR missing the passenger in the very last reading (occupied only by the debounce):
    # nothing is taken to hold through the silence but what was seen.
    for readings, completed in (([True] * 4 + [False], ["stop_outside_door_zone"]),
                                # ... while a last reading that sees them keeps the dwell going on the server's clock.
                                ([True] * 5, ["entrapment", "stop_outside_door_zone"])):
        stream = trapped(readings)
        state, changes = run(EL, stream)
        assert changes == []
        _, changes = DETECTOR.expire(EL, state, stream[-1].ts, stream[-1].ts + timedelta(minutes=10))
        assert [c.kind for c in changes] == completed


def test_a_stop_outside_the_door_zone_also_completes_while_silent_but_other_dwells_wait_for_samples():
    values = {**EL_IDLE, "door_zone": False, "door_lock_ok": False, "door": "open"}
    stream = [Sample(T0 + timedelta(seconds=i), i + 1, values) for i in range(11)]
    state, changes = run(EL, stream)
    assert changes == []
    since = stream[-1].ts
    state, changes = DETECTOR.expire(EL, state, since, since + timedelta(minutes=10))
    assert [(c.kind, c.at) for c in changes] == [("stop_outside_door_zone", since + timedelta(seconds=35))]
    # door_open_too_long had 10 s of its 60: a gap longer than rule_silence_s restarts it at the next sample.
    later = T0 + timedelta(seconds=10 + SETTINGS_DEFAULT.silence_s + 1)
    back = [Sample(later + timedelta(seconds=i), 100 + i, values) for i in range(61)]
    _, changes = DETECTOR.evaluate(EL, state, back)
    assert [(c.kind, c.at) for c in changes] == [("door_open_too_long", later + timedelta(seconds=60))]


def test_a_door_found_open_at_a_new_floor_is_timed_from_that_sample_and_a_held_one_runs_on():
    # The car ran from floor 3 to 7 between two samples and opened its door there: open from 5 s on.
    arrived = [Sample(T0, 1, {**EL_IDLE, "door": "open"})] + [
        Sample(T0 + timedelta(seconds=5 * i), i + 1, {**EL_IDLE, "floor": 7, "door": "open", "run_count": 5001})
        for i in range(1, 15)]
    assert events(run(EL, arrived)[1]) == [(65, "door_open_too_long", "raised")]
    # Held open at one floor the whole time: timed from the first sample.
    held = [Sample(T0 + timedelta(seconds=5 * i), i + 1, {**EL_IDLE, "door": "open"}) for i in range(15)]
    assert events(run(EL, held)[1]) == [(60, "door_open_too_long", "raised")]


def test_a_dwell_spans_a_gap_shorter_than_the_silence_time():
    values = {**EL_IDLE, "door": "open"}
    stream = [Sample(T0, 1, values), Sample(T0 + timedelta(seconds=61), 2, values)]
    assert events(run(EL, stream)[1]) == [(61, "door_open_too_long", "raised")]


def test_nothing_completes_while_silent_unless_its_condition_held_at_the_last_sample():
    values = [{**EL_IDLE, "door_zone": False, "occupied": True}] * 10 + [{**EL_IDLE, "door_zone": False}]
    stream = [Sample(T0 + timedelta(seconds=i), i + 1, v) for i, v in enumerate(values)]
    state, _ = run(EL, stream)  # the last reading misses the passenger: within the debounce, still held
    assert DETECTOR.pending(state)
    opened = stream + [Sample(T0 + timedelta(seconds=11), 12, {**EL_IDLE, "door": "open"})]
    state, _ = run(EL, opened)
    assert not DETECTOR.pending(state)
    assert DETECTOR.expire(EL, state, opened[-1].ts, opened[-1].ts + timedelta(hours=1))[1] == []


def test_open_faults_stay_open_while_the_monitor_is_silent():
    stream = [Sample(T0 + timedelta(seconds=i), i + 1, {**EL_IDLE, "safety_circuit_ok": False}) for i in range(5)]
    state, _ = run(EL, stream)
    after, changes = DETECTOR.expire(EL, state, stream[-1].ts, stream[-1].ts + timedelta(hours=2))
    assert (after, changes) == (state, [])


# The state, the detector, the settings.

def test_a_state_is_small_and_a_state_of_another_version_starts_afresh():
    stream = build(CASES[0], [(10, "normal"), (40, "fault")])
    state, _ = run(EL, stream)
    assert len(json.dumps(state)) < 600
    _, changes = DETECTOR.evaluate(EL, {**state, "v": 0}, stream[-5:])
    assert changes == []


def test_the_detector_refuses_severities_or_labels_that_lack_a_fault_code():
    with pytest.raises(ValueError, match="no severity or label for fault code.s. entrapment: the fault_codes table "
                                         "lacks them"):
        Detector(SETTINGS_DEFAULT, {k: v for k, v in SEVERITIES.items() if k != "entrapment"}, LABELS)
    with pytest.raises(ValueError, match="no severity or label for fault code.s. overspeed: "):
        Detector(SETTINGS_DEFAULT, SEVERITIES, {k: v for k, v in LABELS.items() if k != "overspeed"})
    with pytest.raises(ValueError, match="equipment 5: no rules for equipment type 'crane'"):
        DETECTOR.evaluate(EquipmentInfo(5, "crane"), None, [])


def test_every_rule_setting_is_in_the_settings_table_and_the_rule_docs():
    names = {PREFIX + f.name for f in fields(RuleSettings)}
    assert names == {s.name for s in SETTINGS if s.name.startswith(PREFIX)}
    assert settings_from_config(load_config()) == SETTINGS_DEFAULT
    docs = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    missing = sorted(n for n in names if f"`{n}`" not in docs)
    assert not missing, f"docs/rules.md does not name {missing}"
    assert all(f"`{rule.code}`" in docs for type_rules in REGISTRY.values() for rule in type_rules.rules)


def modes_table() -> str:
    """The table of docs/rules.md saying which modes explain which fault, as the rules have it."""
    lines = ["| type | fault | raises nothing in |", "| --- | --- | --- |"]
    for kind in ("elevator", "escalator"):
        for rule in REGISTRY[kind].rules:
            modes = ", ".join(m for m in ELEVATOR_MODES if m in rule.suppressed_in)
            lines.append(f"| {kind} | `{rule.code}` | {modes} |")
    return "\n".join(lines)


def test_the_docs_mode_table_is_the_one_the_rules_apply():
    docs = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    assert modes_table() in docs, (
        "docs/rules.md's mode table differs from the rules; replace it with:\n" + modes_table())


# The simulator: a normal day, and the faults the evaluation scenario injects.

DAY = date(2026, 11, 22)
MIDNIGHT = datetime(2026, 11, 22, 0, 0, tzinfo=SHANGHAI)  # the simulation's start
EVENING = 19 * 3600  # after the day's maintenance visits; escalators run and boilers fire


class Simulated:
    """One monitor of the evaluation fleet as the field has it (a PIR that misses still passengers, readings left
    out, drop-outs with a backlog, repeats, reordering, a skewed clock, maintenance visits), its telemetry typed as
    the ingester types it."""

    def __init__(self, code: str):
        self.simulation = FleetSimulation(load_scenario("evaluation"), 7, 5.0, today=DAY)
        self.lookup = FleetLookup(self.simulation)
        self.code = code
        e = self.simulation.devices[code].equipment
        self.info = EquipmentInfo(1, e.type, e.rated_speed_mps, e.floors, e.rated_pressure_mpa)

    def batches(self, from_s: float, seconds: float,
                actions: Mapping[float, str] | None = None) -> list[list[Sample]]:
        """What reaches the ingester for each reading, one every 5 s from from_s seconds after the start; actions
        at seconds after the start: "raised:<fault>" or "cleared:<fault>"."""
        pending = dict(actions or {})
        out = []
        for i in range(int(seconds / 5)):
            at = from_s + 5 * i
            for when in sorted(w for w in pending if w <= at):
                state, fault = pending.pop(when).split(":")
                action = FaultAction(when, self.code, fault, state)
                self.simulation.message(Due(when, self.code, action), MIDNIGHT + timedelta(seconds=when))
            now = MIDNIGHT + timedelta(seconds=at)
            batch = []
            for message in self.simulation.messages(Due(at, self.code), now):
                if message.channel == "telemetry":
                    parsed = parse_message(message.topic, message.encode(), self.lookup, now)
                    assert isinstance(parsed, Telemetry), parsed
                    batch.append(Sample(parsed.ts, parsed.seq, parsed.values))
            out.append(batch)
        return out

    def first_visit_day(self) -> int:
        """The first day (from 0) with a maintenance visit to this equipment."""
        plan = FleetSimulation(load_scenario("evaluation"), 7, 5.0, today=DAY).visits
        plan.bind(MIDNIGHT)
        return next(at // 86400 for at in range(0, 20 * 86400, 300) if plan.active(self.code, at))


def run_batches(equipment: EquipmentInfo, batches: list[list[Sample]]) -> list[Change]:
    """Each batch as the ingester evaluates it, the state through JSON in between."""
    state: Any = None
    changes: list[Change] = []
    for batch in batches:
        state, new = DETECTOR.evaluate(equipment, state, batch)
        state = json.loads(json.dumps(state))
        changes += new
    return changes


def fleet_codes(kind: str) -> list[str]:
    simulation = FleetSimulation(load_scenario("evaluation"), 7, 5.0, today=DAY)
    return [e.code for e in simulation.fleet_all if e.type == kind and e.status == "in_use"]


def one_per_site_kind() -> list[str]:
    simulation = FleetSimulation(load_scenario("evaluation"), 7, 5.0, today=DAY)
    chosen: dict[str, str] = {}
    for e in simulation.fleet_all:
        if e.type == "elevator" and e.status == "in_use":
            chosen.setdefault(e.site_kind, e.code)
    return sorted(chosen.values())


@pytest.mark.parametrize("code", one_per_site_kind() + fleet_codes("escalator"))
def test_a_normal_simulated_day_with_a_maintenance_visit_raises_nothing(code):
    simulated = Simulated(code)
    day = simulated.first_visit_day()
    batches = simulated.batches(day * 86400, 86400)
    visits = [v for v in simulated.simulation.labels(MIDNIGHT) if v["kind"] == "maintenance"]
    assert len(visits) == 1 and visits[0]["end"] is not None  # the day had its visit, in maintenance mode
    assert [c.message for c in run_batches(simulated.info, batches)] == []


@pytest.mark.parametrize("code", fleet_codes("boiler") + fleet_codes("pressure_vessel"))
def test_a_normal_simulated_day_of_a_boiler_or_vessel_raises_nothing(code):
    simulated = Simulated(code)
    assert [c.message for c in run_batches(simulated.info, simulated.batches(0, 86400))] == []


def technician(i: int) -> dict[str, Any]:
    """The i-th reading (5 s apart) of a two-hour maintenance visit, as technicians work."""
    minute = i // 12
    visit = {**EL_IDLE, "mode": "maintenance"}
    if minute < 20:  # on the car roof between floors, stop switch pressed; the roof is out of the PIR's view
        visit.update(door_zone=False, safety_circuit_ok=False, load_pct=7.5)
    elif minute < 50:  # a landing door held open, its lock circuit open
        visit.update(door="open", door_lock_ok=False)
    elif minute < 60:  # the door cycled by hand without a run
        visit.update(door="closing", door_cycles=10000 + i)
    elif minute < 75:  # inspection runs at 0.3 m/s with the landing door bypassed
        visit.update(mode="inspection", direction="down", speed_mps=0.3, door="open", door_zone=False,
                     door_cycles=10000 + 12 * 60)
    elif minute < 90:  # inside the car, doors closed, testing the alarm button and intercom
        visit.update(occupied=True, door_cycles=10000 + 12 * 60)
    elif minute < 95:  # the governor tripping test
        visit.update(mode="inspection", direction="down", speed_mps=2.3, door_zone=False, door_cycles=10000 + 12 * 60)
    else:  # the pit, with the lowest landing door opened by key
        visit.update(door_lock_ok=False, safety_circuit_ok=False, door_cycles=10000 + 12 * 60)
    return visit


def test_a_maintenance_visit_raises_nothing_and_the_car_comes_back_without_a_fault():
    values = [EL_IDLE] * 60 + [technician(i) for i in range(2 * 720)] + [{**EL_IDLE, "door_cycles": 10720}] * 720
    stream = [Sample(T0 + timedelta(seconds=5 * i), i + 1, v) for i, v in enumerate(values)]
    assert [c.message for c in run(EL, stream)[1]] == []


def test_a_brief_stop_between_floors_with_passengers_is_no_fault():
    stopped = {**EL_RUNNING, "direction": "stop", "speed_mps": 0.0}
    values = [EL_RUNNING] * 3 + [stopped] * 5 + [EL_RUNNING] * 3 + [{**EL_IDLE, "door": "open"}] * 3 + [EL_IDLE] * 5
    stream = [Sample(T0 + timedelta(seconds=5 * i), i + 1, v) for i, v in enumerate(values)]
    assert run(EL, stream)[1] == []


# Each fault the evaluation scenario injects, as the simulator injects it: what the rules raise for it, and how long
# after the injection at most (a reading every 5 s). Faults with no telemetry signature raise nothing.
DERIVED: dict[tuple[str, str], dict[str, float]] = {
    ("elevator", "entrapment"): {"entrapment": 35},
    ("elevator", "stop_outside_door_zone"): {"stop_outside_door_zone": 50},
    ("elevator", "door_open_failure"): {"door_open_failure": 20},
    ("elevator", "door_close_failure"): {"door_close_failure": 20},
    ("elevator", "door_open_while_moving"): {"door_open_while_moving": 5},
    ("elevator", "unintended_movement"): {"door_open_while_moving": 10},
    ("elevator", "overspeed"): {"overspeed": 5},
    ("elevator", "overtravel_top"): {"overtravel_top": 15, "safety_circuit_open": 5},
    ("elevator", "overtravel_bottom"): {"overtravel_bottom": 15, "safety_circuit_open": 5},
    ("elevator", "safety_circuit_open"): {"safety_circuit_open": 5},
    ("elevator", "power_failure"): {"safety_circuit_open": 5},
    ("elevator", "repeated_door_reopen"): {"repeated_door_reopen": 105},
    ("elevator", "door_open_too_long"): {"door_open_too_long": 65},
    ("elevator", "rerun_prevention"): {},
    ("elevator", "alarm_button"): {},
    ("escalator", "emergency_stop"): {},
    ("escalator", "handrail_speed_deviation"): {"handrail_speed_deviation": 20},
    ("escalator", "safety_circuit_open"): {"safety_circuit_open": 5},
    ("boiler", "water_quality"): {"water_quality": 125},
    ("boiler", "feedwater_failure"): {"low_water_level": 300},
    ("boiler", "low_water_level"): {"low_water_level": 5},
    ("boiler", "overpressure"): {"overpressure": 5},
    ("boiler", "flame_failure"): {"flame_failure": 10},
    ("boiler", "high_flue_gas_temp"): {"high_flue_gas_temp": 65},
    ("pressure_vessel", "overpressure"): {"overpressure": 5},
    ("pressure_vessel", "safety_valve_open"): {"safety_valve_open": 5},
}
NO_SIGNATURE = {("elevator", "alarm_button"), ("escalator", "emergency_stop")}


def evaluation_faults() -> set[tuple[str, str]]:
    """(equipment type, fault) of every fault the evaluation scenario injects: scheduled, repeating, worn into."""
    scenario = load_scenario("evaluation")
    types = scenario.equipment_codes()
    kinds = {(types[f.equipment], f.fault) for f in scenario.faults}
    kinds |= {(t, f) for t, faults in (scenario.repeat.faults if scenario.repeat else {}).items() for f in faults}
    return kinds | {(types[w.equipment], w.leads_to) for w in scenario.wear}


def test_every_fault_the_evaluation_scenario_injects_is_accounted_for():
    assert evaluation_faults() == set(DERIVED)


@pytest.mark.parametrize(("kind", "fault"), sorted(DERIVED))
def test_each_injected_fault_of_the_evaluation_scenario_is_raised_in_time(kind, fault):
    simulated = Simulated(fleet_codes(kind)[0])
    injected_s = EVENING + 1800
    batches = simulated.batches(EVENING, 2700, {injected_s: f"raised:{fault}", injected_s + 600: f"cleared:{fault}"})
    changes = run_batches(simulated.info, batches)
    injected = MIDNIGHT + timedelta(seconds=injected_s) + simulated.simulation.monitors[simulated.code].skew
    assert all(c.at >= injected for c in changes), "something was raised before the fault"
    raised: dict[str, float] = {}
    for change in changes:
        if change.event == "raised":
            raised.setdefault(change.kind, (change.at - injected).total_seconds())
    late = {code: raised.get(code) for code, limit in DERIVED[(kind, fault)].items() if raised.get(code, 1e9) > limit}
    assert not late, f"{fault}: not raised in time: {late} (raised: {raised})"
    if (kind, fault) in NO_SIGNATURE:
        assert raised == {}
