"""Gradual wear, ground-truth labels and sudden faults of the simulated fleet; pure, no broker."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from statistics import mean
from typing import Any

import pytest

from simulators.monitor import MonitorMix
from simulators.scenario import Scenario, ScenarioError, load_scenario
from simulators.simulation import Due, FleetSimulation, Message
from simulators.timeline import fault_timeline
from simulators.wear import WEAR_KINDS
from tests.test_simulators import SIGNATURES

DAY = date(2026, 11, 22)
START = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)  # 08:00 on the scenarios' +08:00 clock
HOUR, DAYS = 3600.0, 86400.0

FLEET = """
name: {name}
utc_offset: "+08:00"
districts:
  - name: Test District
    code: W1
    equipment: {{elevator: 5, escalator: 3, boiler: 4}}
    sites:
      - {{use_unit: Test Hospital, address: 1 Test Road, kind: hospital, floors: 12, hosts: [elevator, boiler]}}
      - {{use_unit: Test Mall, address: 2 Test Road, kind: mall, floors: 5, hosts: [escalator]}}
firms:
  - {{name: Test Service, phone: "021-1", serves: [elevator, escalator, boiler]}}
"""

# One worn unit per wear kind, a week to failure; EL-W1-0005, ES-W1-0003 and BL-W1-0004 stay healthy.
WEEK_OF_WEAR = FLEET.format(name="wear") + """
wear:
  - {equipment: EL-W1-0001, kind: door_operator, start: 0, duration: 7d}
  - {equipment: EL-W1-0002, kind: bearing, start: 0, duration: 7d}
  - {equipment: EL-W1-0003, kind: brake, start: 0, duration: 7d}
  - {equipment: EL-W1-0004, kind: motor_overheat, start: 0, duration: 7d}
  - {equipment: ES-W1-0001, kind: handrail, start: 0, duration: 7d}
  - {equipment: ES-W1-0002, kind: step_chain, start: 0, duration: 7d}
  - {equipment: BL-W1-0001, kind: scaling, start: 0, duration: 7d}
  - {equipment: BL-W1-0002, kind: softener, start: 0, duration: 7d}
  - {equipment: BL-W1-0003, kind: burner_drift, start: 0, duration: 7d}
"""
WEAR_END_S, FAULT_LASTS_S = 7 * DAYS, HOUR
# Two hours at the same local time (11:00-13:00, the same traffic and heat demand): on day 1, on day 7 just
# before the fault, and on day 8 after the repair.
WINDOWS = {"early": (3 * HOUR, 5 * HOUR), "late": (6 * DAYS + 3 * HOUR, 6 * DAYS + 5 * HOUR),
           "repaired": (7 * DAYS + 3 * HOUR, 7 * DAYS + 5 * HOUR)}
CONTROL = {"elevator": "EL-W1-0005", "escalator": "ES-W1-0003", "boiler": "BL-W1-0004"}

Samples = list[dict[str, Any]]


def door_cycles_per_run(s: Samples) -> float:
    return (s[-1]["door_cycles"] - s[0]["door_cycles"]) / max(1, s[-1]["run_count"] - s[0]["run_count"])


def running_at_speed(s: Samples, key: str) -> float:
    return mean(t[key] for t in s if t["speed_mps"] > 0.5)


def burner_high(s: Samples, key: str) -> float:
    return mean(t[key] for t in s if t["burner"] == "high")


@dataclass(frozen=True)
class WearSignal:
    """What a user sees move as a kind of wear progresses: a measure over a window and its direction."""

    code: str
    measure: Callable[[Samples], float]
    rises: bool
    by_at_least: float


WEAR_SIGNALS: dict[str, WearSignal] = {
    # Reopenings count as door cycles, so a worn operator makes more door cycles per run.
    "door_operator": WearSignal("EL-W1-0001", door_cycles_per_run, True, 0.4),
    "bearing": WearSignal("EL-W1-0002", lambda s: running_at_speed(s, "vibration_rms_g"), True, 0.02),
    "brake": WearSignal("EL-W1-0003", lambda s: mean(abs(t["leveling_mm"]) for t in s), True, 5.0),
    # The second hour: the motor's temperature lags its load by tens of minutes.
    "motor_overheat": WearSignal("EL-W1-0004", lambda s: mean(t["motor_temp_c"] for t in s[len(s) // 2:]),
                                 True, 15.0),
    "handrail": WearSignal("ES-W1-0001", lambda s: mean(t["handrail_left_mps"] / t["speed_mps"]
                                                        for t in s if t["running"]), False, 0.05),
    "step_chain": WearSignal("ES-W1-0002", lambda s: mean(t["vibration_rms_g"] for t in s if t["running"]),
                             True, 0.015),
    "scaling": WearSignal("BL-W1-0001", lambda s: burner_high(s, "flue_gas_temp_c"), True, 20.0),
    "softener": WearSignal("BL-W1-0002", lambda s: mean(t["water_hardness_mmol_l"] for t in s), True, 0.012),
    "burner_drift": WearSignal("BL-W1-0003", lambda s: burner_high(s, "o2_pct"), True, 1.2),
}


def load_text(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Scenario:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_scenario(str(path))


@dataclass
class Run:
    """What a driven simulation sent: telemetry by equipment and window, and every fault event."""

    simulation: FleetSimulation
    telemetry: dict[str, dict[str, Samples]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    events: list[tuple[float, str, str, str]] = field(default_factory=list)


def drive(simulation: FleetSimulation, until_s: float, windows: dict[str, tuple[float, float]]) -> Run:
    """Run the schedule to until_s: every fault action, and telemetry only inside the windows (the device
    fast-forwards over the gaps between them, as after a long pause)."""
    run = Run(simulation)
    for due in simulation.schedule():
        if due.at_s >= until_s:
            return run
        window = next((name for name, (a, b) in windows.items() if a <= due.at_s < b), None)
        if due.action is None and window is None:
            continue
        message = simulation.message(due, START + timedelta(seconds=due.at_s))
        if message.channel == "event":
            run.events.append((due.at_s, due.equipment, message.payload["code"], message.payload["state"]))
        else:
            run.telemetry[due.equipment][window].append(message.payload)
    raise AssertionError("the schedule ended early")


@pytest.fixture(scope="module")
def week_of_wear(tmp_path_factory) -> Run:
    scenario = load_text(tmp_path_factory.mktemp("wear"), WEEK_OF_WEAR)
    return drive(FleetSimulation(scenario, 7, interval_s=20.0, today=DAY), WINDOWS["repaired"][1], WINDOWS)


def test_every_wear_kind_has_a_tested_signal():
    assert set(WEAR_SIGNALS) == {kind for kinds in WEAR_KINDS.values() for kind in kinds}


@pytest.mark.parametrize("kind", sorted(WEAR_SIGNALS))
def test_wear_moves_its_signal_before_its_fault_and_the_repair_restores_it(week_of_wear, kind):
    signal = WEAR_SIGNALS[kind]
    windows = week_of_wear.telemetry[signal.code]
    assert all(len(windows[w]) >= 300 for w in WINDOWS), {w: len(windows[w]) for w in WINDOWS}
    early, late, repaired = (signal.measure(windows[w]) for w in WINDOWS)
    sign = 1 if signal.rises else -1
    assert sign * (late - early) >= signal.by_at_least, (kind, early, late)
    # The same measure on a healthy unit of the same type does not move: the change is the wear, not the day.
    equipment_type = next(t for t, kinds in WEAR_KINDS.items() if kind in kinds)
    control = week_of_wear.telemetry[CONTROL[equipment_type]]
    assert abs(signal.measure(control["late"]) - signal.measure(control["early"])) < signal.by_at_least / 2
    # Its fault is raised when the episode ends, after the late window, and clears an hour later; the
    # technician who cleared it repaired the worn part.
    fault = WEAR_KINDS[equipment_type][kind]
    assert [e for e in week_of_wear.events if e[1] == signal.code] == [
        (WEAR_END_S, signal.code, fault, "raised"), (WEAR_END_S + FAULT_LASTS_S, signal.code, fault, "cleared")]
    assert WINDOWS["late"][1] < WEAR_END_S
    assert abs(repaired - early) < abs(late - early) / 2, (kind, early, late, repaired)


def test_a_worn_door_operator_also_spends_longer_opening_and_closing(week_of_wear):
    def moving_doors(samples: Samples) -> float:
        return mean(t["door"] in ("opening", "closing") for t in samples if t["speed_mps"] == 0)

    worn, control = week_of_wear.telemetry["EL-W1-0001"], week_of_wear.telemetry[CONTROL["elevator"]]
    change = moving_doors(worn["late"]) - moving_doors(worn["early"])
    assert change >= 0.15
    # A healthy car's share follows its traffic, which differs from day to day (here a Sunday, then a Saturday):
    # by about 0.1, never as far as the worn one's.
    assert abs(moving_doors(control["late"]) - moving_doors(control["early"])) < change / 2


def test_wear_episodes_are_labelled_with_the_fault_they_lead_to(week_of_wear):
    labels = week_of_wear.simulation.labels(START)
    wear = [row for row in labels if row["kind"] == "wear"]
    end = (START + timedelta(seconds=WEAR_END_S)).isoformat(timespec="milliseconds")
    cleared = (START + timedelta(seconds=WEAR_END_S + FAULT_LASTS_S)).isoformat(timespec="milliseconds")
    assert sorted((r["equipment"], r["name"], r["leads_to"]) for r in wear) == sorted(
        (s.code, kind, WEAR_KINDS[t][kind]) for kind, s in WEAR_SIGNALS.items()
        for t in WEAR_KINDS if kind in WEAR_KINDS[t])
    assert all(r["start"] == START.isoformat(timespec="milliseconds") and r["end"] == end for r in wear)
    faults = [row for row in labels if row["kind"] == "fault"]
    assert sorted((r["equipment"], r["name"], r["start"], r["end"]) for r in faults) == sorted(
        (r["equipment"], r["leads_to"], end, cleared) for r in wear)


# Ground truth on a fleet with everything at once: scheduled and random faults, scheduled and random wear.
MIXED = FLEET.format(name="mixed") + """
faults:
  - {at_s: 600, clear_at_s: 1800, equipment: EL-W1-0005, fault: entrapment}
  - {at_s: 3000, clear_at_s: 3300, equipment: BL-W1-0004, fault: flame_failure}
  - {at_s: 200000, equipment: ES-W1-0003, fault: emergency_stop}
wear:
  - {equipment: EL-W1-0001, kind: brake, start: 2h, duration: 1d, fault_lasts: 30m}
  - {equipment: BL-W1-0001, kind: softener, start: 1d, duration: 10d}
repeat:
  first_at_s: 7200
  every_s: 7200
  duration_s: [60, 900]
  faults:
    elevator: [entrapment, door_open_failure, overspeed]
    boiler: [low_water_level, overpressure]
wear_repeat:
  first: 6h
  every: 12h
  duration: [10h, 1d]
  fault_lasts: 20m
  kinds: {elevator: [door_operator, bearing], escalator: [handrail], boiler: [scaling]}
"""
MIXED_UNTIL_S = 3 * DAYS


def actions_only(simulation: FleetSimulation, until_s: float) -> list[Message]:
    """Every fault action up to until_s (no telemetry: labels are about what was injected)."""
    events = []
    for due in simulation.schedule():
        if due.at_s >= until_s:
            return events
        if due.action is not None:
            events.append(simulation.message(due, START + timedelta(seconds=due.at_s)))
    return events


def test_labels_match_every_fault_injected_and_every_wear_episode_begun(tmp_path):
    scenario = load_text(tmp_path, MIXED)
    simulation = FleetSimulation(scenario, 5, interval_s=600.0, today=DAY)
    events = actions_only(simulation, MIXED_UNTIL_S)
    labels = simulation.labels(START)
    assert [json.loads(json.dumps(row)) for row in labels] == labels

    # Faults: exactly the events sent, with the same moments; still raised at the end: no end.
    expected: list[dict[str, Any]] = []
    open_: dict[tuple[str, str], dict[str, Any]] = {}
    for message in events:
        code, payload = message.topic.split("/")[3], message.payload
        at = datetime.fromisoformat(payload["ts"]).astimezone(UTC)
        if payload["state"] == "raised":
            open_[(code, payload["code"])] = row = {"equipment": code, "name": payload["code"], "start": at,
                                                    "end": None}
            expected.append(row)
        else:
            open_.pop((code, payload["code"]))["end"] = at
    faults = [{"equipment": r["equipment"], "name": r["name"], "start": datetime.fromisoformat(r["start"]),
               "end": r["end"] and datetime.fromisoformat(r["end"])} for r in labels if r["kind"] == "fault"]
    assert sorted(faults, key=repr) == sorted(expected, key=repr)
    assert len(faults) >= 40  # scheduled, random, and the ends of wear
    assert any(f["end"] is None and f["name"] == "emergency_stop" for f in faults)

    # Wear: the scheduled episodes as written, random ones with their kind's fault; each ended episode's
    # fault was injected at its end.
    wear = [r for r in labels if r["kind"] == "wear"]
    assert {"equipment": "EL-W1-0001", "kind": "wear", "name": "brake", "start": "2026-11-22T02:00:00.000+00:00",
            "end": "2026-11-23T02:00:00.000+00:00", "leads_to": "unintended_movement"} in wear
    # Ten days: still wearing at the end of the three.
    assert {"equipment": "BL-W1-0001", "kind": "wear", "name": "softener", "start": "2026-11-23T00:00:00.000+00:00",
            "end": None, "leads_to": "water_quality"} in wear
    assert len(wear) >= 2 + 4  # the scheduled two, and random ones every 12 hours from the 6th
    codes = scenario.equipment_codes()
    for row in wear:
        assert row["leads_to"] == WEAR_KINDS[codes[row["equipment"]]][row["name"]]
        assert START <= datetime.fromisoformat(row["start"]) < START + timedelta(seconds=MIXED_UNTIL_S)
        if row["end"] is not None:
            assert (row["equipment"], row["leads_to"], datetime.fromisoformat(row["end"])) in {
                (f["equipment"], f["name"], f["start"]) for f in faults}
    # In start order, as a labels file is read.
    assert [r["start"] for r in labels] == sorted(r["start"] for r in labels)


def test_sharded_simulations_label_their_own_equipment_and_together_the_whole_fleet(tmp_path):
    scenario = load_text(tmp_path, MIXED)
    whole = FleetSimulation(scenario, 5, interval_s=600.0, today=DAY)
    actions_only(whole, 2 * DAYS)
    parts = []
    for k in range(2):
        shard = FleetSimulation(scenario, 5, interval_s=600.0, today=DAY, shard=(k, 2))
        actions_only(shard, 2 * DAYS)
        labels = shard.labels(START)
        assert {r["equipment"] for r in labels} <= set(shard.devices)
        parts += labels
    assert sorted(parts, key=repr) == sorted(whole.labels(START), key=repr)


# A short run where wear (fast, in minutes), its faults and random faults all happen within an hour.
HOUR_OF_EVERYTHING = FLEET.format(name="hour") + """
wear:
  - {equipment: EL-W1-0001, kind: door_operator, start: 0, duration: 40m, fault_lasts: 5m}
  - {equipment: BL-W1-0001, kind: scaling, start: 5m, duration: 30m, fault_lasts: 10m}
repeat:
  first_at_s: 300
  every_s: 300
  duration_s: [30, 240]
  faults:
    elevator: [entrapment, repeated_door_reopen, overspeed]
    escalator: [emergency_stop, handrail_speed_deviation]
    boiler: [low_water_level, feedwater_failure]
wear_repeat:
  first: 2m
  every: 10m
  duration: [10m, 20m]
  fault_lasts: 3m
  kinds: {elevator: [bearing, brake, motor_overheat], escalator: [handrail, step_chain], boiler: [softener]}
"""


def every_message(scenario: Scenario, seed: int, until_s: float) -> tuple[list[tuple[str, Any]], list[dict]]:
    simulation = FleetSimulation(scenario, seed, interval_s=5.0, today=DAY)
    sent = []
    for due in simulation.schedule():
        if due.at_s >= until_s:
            break
        message = simulation.message(due, START + timedelta(seconds=due.at_s))
        sent.append((message.topic, message.payload))
    return sent, simulation.labels(START)


@pytest.fixture(scope="module")
def hour_of_everything(tmp_path_factory) -> Scenario:
    return load_text(tmp_path_factory.mktemp("hour"), HOUR_OF_EVERYTHING)


def test_the_same_seed_gives_identical_messages_and_labels_and_another_seed_does_not(hour_of_everything):
    messages, labels = every_message(hour_of_everything, 3, HOUR)
    assert (messages, labels) == every_message(hour_of_everything, 3, HOUR)
    other_messages, other_labels = every_message(hour_of_everything, 4, HOUR)
    assert other_messages != messages and other_labels != labels
    assert {r["kind"] for r in labels} == {"fault", "wear"} and len(labels) >= 10


def ranges_hold(equipment, t: dict[str, Any]) -> bool:
    """Physically possible values for any state, faults included (a fault may exceed the rated values)."""
    if equipment.type == "elevator":
        return (1 <= t.get("floor", 1) <= equipment.floors and 0 <= t["speed_mps"] <= 1.35 * equipment.rated_speed_mps
                and 0 <= t["load_pct"] <= 110 and abs(t["leveling_mm"]) <= 40
                and 0 < t["vibration_rms_g"] < 0.2 and 0 <= t["motor_current_a"] < 200
                and 15 < t["motor_temp_c"] < 130)
    if equipment.type == "escalator":
        return (0 <= t["speed_mps"] <= 1.35 * equipment.rated_speed_mps
                and 0 <= t["handrail_left_mps"] <= 1.35 * equipment.rated_speed_mps * 1.02
                and 0 <= t["handrail_right_mps"] <= 1.35 * equipment.rated_speed_mps * 1.02
                and 0 <= t["vibration_rms_g"] < 0.2 and 0 <= t["motor_current_a"] < 100)
    if equipment.type == "boiler":
        return (0 <= t["pressure_mpa"] <= 1.1 * equipment.rated_pressure_mpa + 0.01
                and abs(t["water_level_mm"]) <= 210 and 15 < t["flue_gas_temp_c"] < 400
                and 0 <= t["o2_pct"] <= 20.9 and 0 <= t["water_hardness_mmol_l"] < 0.2 and 9 < t["ph"] < 12.5
                and 0 <= t["load_pct"] <= 100 and 0 <= t["steam_flow_tph"] <= equipment.rated_capacity_tph)
    return (0 <= t["pressure_mpa"] <= 1.1 * equipment.rated_pressure_mpa
            and 0 <= t["level_pct"] <= 100 and 0 < t["temperature_c"] < 80)


COUNTERS = {"elevator": ("run_count", "door_cycles", "run_hours"), "escalator": ("run_hours",)}


def test_counters_never_decrease_and_values_stay_physical_while_wear_and_faults_are_active(hour_of_everything):
    simulation = FleetSimulation(hour_of_everything, 9, interval_s=5.0, today=DAY)
    fleet = {e.code: e for e in simulation.fleet}
    telemetry: dict[str, Samples] = defaultdict(list)
    faulted = worn = 0
    for due in simulation.schedule():
        if due.at_s >= HOUR:
            break
        message = simulation.message(due, START + timedelta(seconds=due.at_s))
        if message.channel == "telemetry":
            device = simulation.devices[due.equipment]
            faulted += device.fault is not None
            worn += bool(device.degradation)
            assert ranges_hold(fleet[due.equipment], message.payload), (due.equipment, message.payload)
            telemetry[due.equipment].append(message.payload)
    assert faulted > 500 and worn > 1500  # the checks saw plenty of both
    for code, samples in telemetry.items():
        for counter in COUNTERS.get(fleet[code].type, ()):
            values = [t[counter] for t in samples]
            assert values == sorted(values), (code, counter)


# The sudden faults the evaluation scenario injects (its ground-truth labels), each checked on its telemetry.
SUDDEN_FAULTS = {
    "elevator": {"entrapment", "stop_outside_door_zone", "door_open_failure", "door_close_failure",
                 "door_open_while_moving", "overspeed", "overtravel_top", "overtravel_bottom",
                 "safety_circuit_open", "power_failure", "repeated_door_reopen"},
    "escalator": {"handrail_speed_deviation", "emergency_stop"},
    "boiler": {"low_water_level", "overpressure", "flame_failure", "feedwater_failure", "water_quality"},
}


@pytest.fixture(scope="module")
def evaluation_faults() -> tuple[FleetSimulation, dict[str, list[tuple[float, Message]]]]:
    """The evaluation scenario's scheduled sudden faults through the monitors' delivery (messages()), with
    telemetry every 10 s from 5 minutes before each until 5 minutes after it clears."""
    scenario = load_scenario("evaluation")
    # The devices' signatures as sound sensors read them: the monitors' own failings (drop-outs, a PIR that misses
    # still passengers...) are tested in test_simulator_monitors.py.
    scenario = replace(scenario, monitors=MonitorMix(reporting_share=scenario.monitors.reporting_share))
    simulation = FleetSimulation(scenario, 1, interval_s=10.0, today=DAY)
    last = max(f.clear_at_s or f.at_s for f in scenario.faults)
    actions = list(itertools.takewhile(lambda a: a.at_s <= last,
                                       fault_timeline(scenario, simulation.fleet_all, 1)))
    dues = [(a.at_s, 0, Due(a.at_s, a.equipment, a)) for a in actions]
    for fault in scenario.faults:
        assert fault.clear_at_s is not None
        t = fault.at_s - 300
        while t < fault.clear_at_s + 300:
            dues.append((t, 1, Due(t, fault.equipment)))
            t += 10
    sent: dict[str, list[tuple[float, Message]]] = defaultdict(list)
    # Random faults and the faults wear leads to are injected too, as in a real run of the scenario.
    for at_s, _, due in sorted(dues, key=lambda d: d[:2]):
        for message in simulation.messages(due, START + timedelta(seconds=at_s)):
            sent[due.equipment].append((at_s, message))
    return simulation, sent


def test_the_evaluation_scenario_covers_every_sudden_fault_and_every_wear_kind():
    scenario = load_scenario("evaluation")
    codes = scenario.equipment_codes()
    scheduled = {(codes[f.equipment], f.fault) for f in scenario.faults}
    assert {(t, f) for t, faults in SUDDEN_FAULTS.items() for f in faults} <= scheduled
    assert {(codes[w.equipment], w.kind) for w in scenario.wear} == {
        (t, k) for t, kinds in WEAR_KINDS.items() for k in kinds}
    # A scripted month: every wear episode ends (its fault raised) within a 30-day backfill.
    assert all(w.start_s + w.duration_s + w.fault_lasts_s < 30 * DAYS for w in scenario.wear)
    assert 20 <= len(codes) <= 60


def test_each_sudden_fault_shows_its_signature_and_reporting_monitors_raise_and_clear_it(evaluation_faults):
    simulation, sent = evaluation_faults
    fleet = {e.code: e for e in simulation.fleet}
    reporting = silent = 0
    for fault in simulation.scenario.faults:
        equipment = fleet[fault.equipment]
        during = [m.payload for at_s, m in sent[fault.equipment]
                  if m.channel == "telemetry" and fault.at_s < at_s < fault.clear_at_s]
        assert len(during) >= 10, fault
        assert SIGNATURES[equipment.type][fault.fault](during, equipment), (fault, during[:3])
        events = [(at_s, m.payload["code"], m.payload["state"]) for at_s, m in sent[fault.equipment]
                  if m.channel == "event" and fault.at_s <= at_s <= fault.clear_at_s]
        if simulation.monitors[fault.equipment].reports_faults:
            reporting += 1
            assert events == [(fault.at_s, fault.fault, "raised"), (fault.clear_at_s, fault.fault, "cleared")]
        else:
            silent += 1
            assert events == []  # a retrofit terminal: the fault is only in its telemetry
        # The labels hold it either way: ground truth is what was injected, not what was reported.
        assert {"equipment": fault.equipment, "kind": "fault", "name": fault.fault,
                "start": (START + timedelta(seconds=fault.at_s)).isoformat(timespec="milliseconds"),
                "end": (START + timedelta(seconds=fault.clear_at_s)).isoformat(timespec="milliseconds")
                } in simulation.labels(START)
    assert reporting >= 3 and silent >= 3


WEAR_ITEM = "{equipment: EL-W1-0001, kind: brake, start: 1d, duration: 7d}"


@pytest.mark.parametrize(("item", "error"), [
    ("{equipment: EL-W1-0001, kind: scaling, start: 1d, duration: 7d}",
     r"wear\[0\]: elevator has no wear kind 'scaling' \(known: door_operator, bearing, brake, motor_overheat\)"),
    ("{equipment: EL-W1-0009, kind: brake, start: 1d, duration: 7d}", r"wear\[0\]: no equipment EL-W1-0009"),
    ("{equipment: EL-W1-0001, kind: brake, start: 1d, duration: a week}",
     r"wear\[0\]\.duration: 'a week' is not a duration"),
    ("{equipment: EL-W1-0001, kind: brake, start: 1d}", r"wear\[0\]: missing key 'duration'"),
    ("{equipment: EL-W1-0001, kind: brake, start: 1d, duration: 7d, leads_to: flame_failure}",
     r"wear\[0\]\.leads_to: elevator cannot simulate 'flame_failure'"),
    ("{equipment: EL-W1-0001, kind: brake, start: 1d, duration: 7d, fault: overspeed}",
     r"wear\[0\]: unknown key\(s\) fault"),
    (WEAR_ITEM + "\n  - {equipment: EL-W1-0001, kind: bearing, start: 5d, duration: 7d}",
     r"wear: two wear episodes overlap on EL-W1-0001"),
])
def test_bad_wear_entries_are_refused_with_the_reason(tmp_path, item, error):
    with pytest.raises(ScenarioError, match=r"bad\.yaml: " + error):
        load_text(tmp_path, FLEET.format(name="bad") + f"wear:\n  - {item}\n", name="bad.yaml")


def test_a_wear_fault_may_not_overlap_a_scheduled_fault_and_random_wear_must_name_known_kinds(tmp_path):
    clash = FLEET.format(name="bad") + f"wear:\n  - {WEAR_ITEM}\n" + (
        "faults:\n  - {at_s: 691300, clear_at_s: 700000, equipment: EL-W1-0001, fault: entrapment}\n")
    with pytest.raises(ScenarioError, match="unintended_movement that brake wear on EL-W1-0001 leads to overlaps "
                                            "its fault entrapment"):
        load_text(tmp_path, clash, name="bad.yaml")
    unknown = FLEET.format(name="bad") + "wear_repeat: {every: 1d, kinds: {pressure_vessel: [corrosion]}}\n"
    with pytest.raises(ScenarioError, match="wear_repeat.kinds.pressure_vessel: no wear kinds for"):
        load_text(tmp_path, unknown, name="bad.yaml")
    # A well-formed episode parses with the documented defaults.
    fine = load_text(tmp_path, FLEET.format(name="fine") + f"wear:\n  - {WEAR_ITEM}\n")
    (episode,) = fine.wear
    assert (episode.start_s, episode.duration_s, episode.leads_to, episode.fault_lasts_s) == (
        DAYS, 7 * DAYS, "unintended_movement", HOUR)


def test_wear_changes_nothing_before_it_begins_nor_on_other_equipment(tmp_path):
    # Healthy models draw nothing extra from their random streams, so adding wear to a scenario leaves every
    # message the same until an episode begins, on its equipment as on the rest of the fleet.
    plain = load_text(tmp_path, FLEET.format(name="plain"), name="plain.yaml")
    worn = load_text(tmp_path, FLEET.format(name="plain") + """
wear:
  - {equipment: EL-W1-0001, kind: door_operator, start: 50m, duration: 1d}
  - {equipment: BL-W1-0001, kind: scaling, start: 50m, duration: 1d}
""", name="worn.yaml")
    before, _ = every_message(plain, 3, HOUR)
    after, labels = every_message(worn, 3, HOUR)
    started = 50 * 60

    def split(sent: list[tuple[str, Any]]) -> tuple[list, list]:
        parts: tuple[list, list] = ([], [])
        for topic, payload in sent:
            late = (topic.split("/")[3] in ("EL-W1-0001", "BL-W1-0001")
                    and datetime.fromisoformat(payload["ts"]) >= START + timedelta(seconds=started))
            parts[late].append((topic, payload))
        return parts

    assert split(after)[0] == split(before)[0]
    assert split(after)[1] != split(before)[1]  # once begun, the worn units do differ
    assert [(r["equipment"], r["name"]) for r in labels] == [("BL-W1-0001", "scaling"), ("EL-W1-0001", "door_operator")]
