"""The simulated fleet: physics, fault signatures, determinism, the registry CSV, and publishing over MQTT."""

from __future__ import annotations

import csv
import functools
import itertools
import json
import math
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from semon.vocabulary import CODE_PATTERN, TELEMETRY_FIELDS
from simulators.devices import DEVICE_MODELS, make_device, supported_faults
from simulators.fleet import REGISTRY_COLUMNS, build_fleet, write_registry_csv
from simulators.run import run_simulation, write_scenario_registry
from simulators.scenario import ScenarioError, load_scenario
from simulators.simulation import FleetSimulation, Message
from simulators.timeline import FaultAction, fault_timeline
from tests.conftest import REPO, wait_until
from tests.mqtt_helpers import Subscriber

DAY = date(2026, 11, 22)
MORNING = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai, the demo's clock: the morning peak
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)$")
COUNTERS = {"elevator": ("run_count", "door_cycles", "run_hours"), "escalator": ("run_hours",)}
RECOVERY = timedelta(minutes=10)


@functools.cache
def fault_codes_from_migration() -> dict[str, set[str]]:
    """Fault code name -> equipment types, as the database is seeded with them."""
    sql = (REPO / "semon" / "migrations" / "0002_fault_codes.sql").read_text()
    rows = re.findall(r"\('(\w+)',\s*(?:\d+|NULL),\s*'\w+',\s*'\{([^}]*)\}'", sql)
    return {name: set(types.split(",")) for name, types in rows}


def simulate(seed: int, seconds: float, interval_s: float = 5.0, scenario: str = "demo") -> list[Message]:
    """Messages of a scenario on a simulated clock starting at MORNING."""
    simulation = FleetSimulation(load_scenario(scenario), seed, interval_s, today=DAY)
    messages = []
    for due in simulation.schedule():
        if due.at_s >= seconds:
            return messages
        messages.append(simulation.message(due, MORNING + timedelta(seconds=due.at_s)))
    return messages


def test_the_fleet_sends_the_same_messages_however_many_processes_share_it():
    def run(shard: tuple[int, int]) -> list[tuple[str, bytes]]:
        simulation = FleetSimulation(load_scenario("demo"), 7, 5.0, today=DAY, shard=shard)
        sent = []
        for due in simulation.schedule():
            if due.at_s >= 600:
                return sent
            sent += [(m.topic, m.encode()) for m in simulation.messages(due, MORNING + timedelta(seconds=due.at_s))]
        return sent

    whole = run((0, 1))
    parts = [run((k, 3)) for k in range(3)]
    assert sorted(whole) == sorted(m for part in parts for m in part)
    # Each shard sends its devices' messages in the order the whole fleet would.
    for part in parts:
        mine = {topic for topic, _ in part}
        assert [m for m in whole if m[0] in mine] == part


def test_an_empty_shard_yields_nothing_instead_of_waiting_forever():
    scenario = load_scenario("demo")
    simulation = FleetSimulation(scenario, 7, 5.0, today=DAY, shard=(0, 1))
    n = len(simulation.fleet_all)
    assert list(FleetSimulation(scenario, 7, 5.0, today=DAY, shard=(n, n + 1)).schedule()) == []


@pytest.fixture(scope="module")
def demo_hour() -> list[Message]:
    """One simulated hour of the demo fleet, every monitor reporting each 5 s."""
    return simulate(seed=7, seconds=3600)


def by_code(messages: list[Message]) -> dict[str, list[Message]]:
    grouped: dict[str, list[Message]] = defaultdict(list)
    for message in messages:
        grouped[message.topic.split("/")[3]].append(message)
    return grouped


def healthy_telemetry(messages: list[Message]) -> list[dict[str, Any]]:
    """Telemetry sent with no fault active and not within RECOVERY after one cleared."""
    healthy, faulted, recovering_until = [], False, None
    for message in messages:
        ts = datetime.fromisoformat(message.payload["ts"])
        if message.channel == "event":
            faulted = message.payload["state"] == "raised"
            recovering_until = None if faulted else ts + RECOVERY
        elif not faulted and (recovering_until is None or ts > recovering_until):
            healthy.append(message.payload)
    return healthy


def assert_contract(equipment_type: str, channel: str, payload: dict[str, Any]) -> None:
    assert json.loads(json.dumps(payload, allow_nan=False)) == payload
    assert RFC3339.match(payload["ts"]), payload["ts"]
    assert datetime.fromisoformat(payload["ts"]).utcoffset() is not None
    assert type(payload["seq"]) is int and payload["seq"] > 0
    if channel == "event":
        assert set(payload) == {"ts", "seq", "code", "state", "detail"}
        assert payload["state"] in ("raised", "cleared")
        assert equipment_type in fault_codes_from_migration()[payload["code"]]
        assert isinstance(payload["detail"], dict)
        return
    fields = {f.name: f for f in TELEMETRY_FIELDS[equipment_type]}
    assert set(payload) - {"ts", "seq"} <= set(fields), set(payload) - set(fields)
    for name, value in payload.items():
        if name in ("ts", "seq"):
            continue
        kind = fields[name].kind
        if kind == "float":
            assert type(value) is float and math.isfinite(value), (name, value)
        elif kind == "int":
            assert type(value) is int, (name, value)
        elif kind == "bool":
            assert type(value) is bool, (name, value)
        else:
            assert value in fields[name].choices, (name, value)


def test_every_payload_matches_the_contract_types(demo_hour):
    assert {m.channel for m in demo_hour} == {"telemetry", "event"}
    for message in demo_hour:
        _, _, equipment_type, code, channel = message.topic.split("/")
        assert CODE_PATTERN.match(code)
        assert_contract(equipment_type, channel, message.payload)
        assert json.loads(message.encode()) == message.payload


def test_seq_increases_per_device_across_telemetry_and_events(demo_hour):
    for code, messages in by_code(demo_hour).items():
        seqs = [m.payload["seq"] for m in messages]
        assert seqs == list(range(1, len(seqs) + 1)), code


def test_counters_never_decrease_over_a_simulated_hour(demo_hour):
    grew = defaultdict(int)
    for code, messages in by_code(demo_hour).items():
        equipment_type = messages[0].topic.split("/")[2]
        telemetry = [m.payload for m in messages if m.channel == "telemetry"]
        for counter in COUNTERS.get(equipment_type, ()):
            values = [t[counter] for t in telemetry]
            assert all(a <= b for a, b in zip(values, values[1:], strict=False)), (code, counter)
            grew[equipment_type] += values[-1] > values[0]
    # Two elevators are suspended and a few have a quiet hour; escalators run all morning.
    assert grew["elevator"] >= 40 * len(COUNTERS["elevator"])
    assert grew["escalator"] == 2


def test_a_restarted_simulator_never_reports_fewer_runs_or_run_hours_than_before(demo_hour):
    restarted = FleetSimulation(load_scenario("demo"), 7, interval_s=5.0, today=DAY)
    for code, messages in by_code(demo_hour).items():
        before = [m.payload for m in messages if m.channel == "telemetry"][-1]
        after = restarted.devices[code].step(MORNING + timedelta(seconds=3600))
        for counter in ("run_count", "run_hours"):
            assert after.get(counter, 0) >= before.get(counter, 0), (code, counter)


def test_healthy_equipment_stays_in_physical_ranges(demo_hour):
    fleet = {e.code: e for e in build_fleet(load_scenario("demo"), 7, DAY)}
    checked = 0
    for code, messages in by_code(demo_hour).items():
        equipment = fleet[code]
        for t in healthy_telemetry(messages):
            checked += 1
            if equipment.type == "elevator":
                assert 1 <= t["floor"] <= equipment.floors
                assert 0 <= t["speed_mps"] <= equipment.rated_speed_mps * 1.02
                assert (t["direction"] == "stop") == (t["speed_mps"] == 0)
                if t["speed_mps"] > 0:
                    assert t["door"] == "closed" and t["motor_current_a"] > 0
                else:
                    assert t["door_zone"], "a healthy car stops only at landings"
                assert 0 <= t["load_pct"] <= 102 and (t["load_pct"] > 2 if t["occupied"] else True)
                assert abs(t["leveling_mm"]) <= 15
                assert 0 < t["vibration_rms_g"] < 0.1 and 0 <= t["motor_current_a"] < 150
                assert 15 < t["motor_temp_c"] < 90
                assert t["safety_circuit_ok"] and t["door_lock_ok"]
                assert t["mode"] == ("normal" if equipment.status == "in_use" else "out_of_service")
            elif equipment.type == "escalator":
                assert 0 <= t["speed_mps"] <= equipment.rated_speed_mps * 1.02
                assert t["running"] == (t["speed_mps"] > 0)
                for side in ("handrail_left_mps", "handrail_right_mps"):
                    assert t["speed_mps"] * 0.99 <= t[side] <= t["speed_mps"] * 1.03
                assert t["safety_circuit_ok"] and t["brake_ok"]
            elif equipment.type == "boiler":
                assert 0 < t["pressure_mpa"] < equipment.rated_pressure_mpa
                assert abs(t["water_level_mm"]) < 50
                assert 100 < t["steam_temp_c"] < 230
                assert 60 < t["flue_gas_temp_c"] < 250 and 0 <= t["o2_pct"] <= 20.9
                assert t["flame"] == (t["burner"] != "off")
                assert 0 <= t["load_pct"] <= 100
                assert t["feedwater_flow_tph"] <= 1.5 * equipment.rated_capacity_tph
                # GB/T 1576: feedwater hardness at most 0.03 mmol/L, boiler water pH 10-12.
                assert t["water_hardness_mmol_l"] <= 0.03 and 10 <= t["ph"] <= 12
            else:
                assert 0 < t["pressure_mpa"] < equipment.rated_pressure_mpa
                assert 0 <= t["level_pct"] <= 100 and 0 < t["temperature_c"] < 80
                assert t["safety_valve_open"] is False
    assert checked > 30000


def test_the_demo_timeline_raises_and_clears_its_documented_faults(demo_hour):
    events = [(datetime.fromisoformat(m.payload["ts"]) - MORNING, m.topic.split("/")[3], m.payload["code"],
               m.payload["state"]) for m in demo_hour if m.channel == "event"]
    seconds = {(code, fault, state): at.total_seconds() for at, code, fault, state in events}
    assert seconds[("EL-D1-0001", "entrapment", "raised")] == 20
    assert seconds[("EL-D1-0001", "entrapment", "cleared")] == 300
    assert seconds[("BL-D1-0001", "low_water_level", "raised")] == 30
    assert seconds[("EL-D2-0003", "door_close_failure", "raised")] == 40
    assert seconds[("EL-D1-0010", "overspeed", "raised")] == 60
    assert seconds[("EL-D1-0010", "overspeed", "cleared")] == 90
    repeated = [at.total_seconds() for at, _, _, state in events if state == "raised" and at.total_seconds() >= 600]
    assert repeated == [600, 1200, 1800, 2400, 3000]
    # The entrapped car, as the ingester sees it between raise and clear.
    trapped = [m.payload for m in by_code(demo_hour)["EL-D1-0001"] if m.channel == "telemetry"
               and 20 < (datetime.fromisoformat(m.payload["ts"]) - MORNING).total_seconds() < 300]
    assert trapped and all(t["speed_mps"] == 0 and t["door"] == "closed" and t["occupied"] for t in trapped)


def test_repeating_faults_come_every_ten_minutes_one_at_a_time_per_equipment_and_follow_the_seed():
    scenario = load_scenario("demo")
    fleet = build_fleet(scenario, 11, DAY)

    def one_day(seed: int) -> list[FaultAction]:
        return list(itertools.takewhile(lambda a: a.at_s < 86400, fault_timeline(scenario, fleet, seed)))

    actions = one_day(11)
    raised = [a.at_s for a in actions if a.state == "raised" and a.at_s >= 600]
    assert raised == [600.0 * n for n in range(1, 144)]
    assert [a.at_s for a in actions] == sorted(a.at_s for a in actions)
    states: dict[str, list[str]] = defaultdict(list)
    for action in actions:
        states[action.equipment].append(action.state)
    for code, sequence in states.items():
        assert sequence[::2] == ["raised"] * len(sequence[::2]) and "raised" not in sequence[1::2], code
    suspended = {e.code for e in fleet if e.status == "suspended"}
    assert not suspended & set(states)
    assert one_day(11) == actions and one_day(12) != actions


Signature = Callable[[list[dict[str, Any]], Any], bool]

# What a user watching the telemetry sees while each fault is active (samples, equipment) -> bool.
SIGNATURES: dict[str, dict[str, Signature]] = {
    "elevator": {
        "entrapment": lambda s, e: all(t["speed_mps"] == 0 and t["direction"] == "stop" and t["door"] == "closed"
                                       and t["occupied"] and not t["door_zone"] for t in s),
        "stop_outside_door_zone": lambda s, e: all(t["speed_mps"] == 0 and not t["door_zone"] for t in s),
        "overspeed": lambda s, e: all(t["speed_mps"] > 1.15 * e.rated_speed_mps for t in s),
        "door_close_failure": lambda s, e: all(t["door"] != "closed" and not t["door_lock_ok"]
                                               and t["speed_mps"] == 0 for t in s),
        "door_open_failure": lambda s, e: all(t["door"] == "opening" and t["door_zone"] and not t["door_lock_ok"]
                                              and t["speed_mps"] == 0 for t in s),
        "door_open_too_long": lambda s, e: all(t["door"] == "open" and t["speed_mps"] == 0 for t in s),
        "repeated_door_reopen": lambda s, e: (s[-1]["door_cycles"] - s[0]["door_cycles"] >= 10
                                              and s[-1]["run_count"] == s[0]["run_count"]),
        "door_open_while_moving": lambda s, e: all(t["speed_mps"] > 0 and t["door"] == "open" for t in s),
        "unintended_movement": lambda s, e: all(t["speed_mps"] > 0 and t["door"] == "open" for t in s),
        "safety_circuit_open": lambda s, e: all(not t["safety_circuit_ok"] and t["speed_mps"] == 0 for t in s),
        "power_failure": lambda s, e: all(t["speed_mps"] == 0 and t["motor_current_a"] == 0 for t in s),
        "door_lock_circuit_open": lambda s, e: all(not t["door_lock_ok"] and t["speed_mps"] == 0 for t in s),
        "overtravel_top": lambda s, e: all(t["floor"] == e.floors and not t["door_zone"]
                                           and not t["safety_circuit_ok"] for t in s),
        "overtravel_bottom": lambda s, e: all(t["floor"] == 1 and not t["door_zone"]
                                              and not t["safety_circuit_ok"] for t in s),
        "floor_position_lost": lambda s, e: all("floor" not in t for t in s),
        "run_time_limiter": lambda s, e: all(t["speed_mps"] == 0 for t in s),
        "run_timeout": lambda s, e: all(t["speed_mps"] == 0 for t in s),
        "rerun_prevention": lambda s, e: all(t["speed_mps"] == 0 for t in s),
        "alarm_button": lambda s, e: all(t["mode"] == "normal" for t in s),  # only the event says it
    },
    "escalator": {
        "overspeed": lambda s, e: all(t["speed_mps"] > 1.15 * e.rated_speed_mps for t in s),
        "handrail_speed_deviation": lambda s, e: all(t["handrail_left_mps"] < 0.85 * t["speed_mps"] for t in s),
        "unintended_reversal": lambda s, e: len({t["direction"] for t in s}) == 1 and s[0]["direction"] != "stop",
        "brake_not_released": lambda s, e: all(not t["brake_ok"] and not t["running"] for t in s),
        "emergency_stop": lambda s, e: all(not t["running"] and t["speed_mps"] == 0 for t in s),
        "safety_circuit_open": lambda s, e: all(not t["running"] and not t["safety_circuit_ok"] for t in s),
        "step_missing": lambda s, e: all(not t["running"] and not t["safety_circuit_ok"] for t in s),
        "comb_plate_jam": lambda s, e: all(not t["running"] and not t["safety_circuit_ok"] for t in s),
        "power_failure": lambda s, e: all(not t["running"] and t["motor_current_a"] == 0 for t in s),
    },
    "boiler": {
        "low_water_level": lambda s, e: all(t["water_level_mm"] < -50 and t["burner"] == "off"
                                            and not t["flame"] for t in s),
        "high_water_level": lambda s, e: all(t["water_level_mm"] > 50 for t in s),
        "overpressure": lambda s, e: all(t["pressure_mpa"] > e.rated_pressure_mpa for t in s),
        # The safeguard locked out, the pressure control still calls for heat: called to fire, no flame.
        "flame_failure": lambda s, e: all(not t["flame"] for t in s) and any(t["burner"] != "off" for t in s),
        "high_flue_gas_temp": lambda s, e: all(t["flue_gas_temp_c"] > 250 for t in s),
        "feedwater_failure": lambda s, e: (all(t["feedwater_flow_tph"] == 0 for t in s)
                                           and s[-1]["water_level_mm"] < s[0]["water_level_mm"]),
        "water_quality": lambda s, e: all(t["water_hardness_mmol_l"] > 0.03 or t["ph"] < 10 for t in s),
        "safety_valve_open": lambda s, e: (all(not t["flame"] for t in s)
                                           and s[-1]["pressure_mpa"] < s[0]["pressure_mpa"]),
    },
    "pressure_vessel": {
        "overpressure": lambda s, e: all(t["pressure_mpa"] > e.rated_pressure_mpa for t in s),
        "safety_valve_open": lambda s, e: all(t["safety_valve_open"] for t in s),
        "low_water_level": lambda s, e: all(t["level_pct"] < 10 for t in s),
        "high_water_level": lambda s, e: all(t["level_pct"] > 90 for t in s),
    },
}
UNDER_TEST = {"elevator": "EL-D1-0003", "escalator": "ES-D1-0001", "boiler": "BL-D1-0002",
              "pressure_vessel": "PV-D1-0001"}


def test_every_injectable_fault_is_a_seeded_fault_code_with_a_tested_signature():
    codes = fault_codes_from_migration()
    for equipment_type in DEVICE_MODELS:
        for fault in supported_faults(equipment_type):
            assert equipment_type in codes.get(fault, set()), (equipment_type, fault)
        assert set(SIGNATURES[equipment_type]) == supported_faults(equipment_type)


@pytest.mark.parametrize(("equipment_type", "fault"),
                         [(t, f) for t, faults in SIGNATURES.items() for f in faults])
def test_each_fault_shows_its_signature_between_raised_and_cleared_events(equipment_type, fault):
    equipment = next(e for e in build_fleet(load_scenario("demo"), 7, DAY) if e.code == UNDER_TEST[equipment_type])
    device = make_device(equipment, seed=7, tz=load_scenario("demo").tz)
    start = MORNING + timedelta(hours=3)  # 11:00 local: everything is running
    clock = iter(start + timedelta(seconds=5 * i) for i in range(1000))
    before = [device.step(next(clock)) for _ in range(24)]

    raised = device.raise_fault(fault, next(clock))
    during = [device.step(next(clock)) for _ in range(12)]
    cleared = device.clear_fault(fault, next(clock))
    after = [device.step(next(clock)) for _ in range(120)]

    assert (raised["code"], raised["state"], cleared["code"], cleared["state"]) == (fault, "raised", fault, "cleared")
    assert before[-1]["seq"] < raised["seq"] < during[0]["seq"] < cleared["seq"] < after[0]["seq"]
    for payload in (raised, cleared):
        assert_contract(equipment_type, "event", payload)
    assert SIGNATURES[equipment_type][fault](during, equipment), during
    assert healthy_telemetry_after_recovery(equipment_type, after[-1], equipment)
    for counter in COUNTERS.get(equipment_type, ()):
        values = [t[counter] for t in before + during + after]
        assert values == sorted(values), counter


def healthy_telemetry_after_recovery(equipment_type: str, t: dict[str, Any], equipment) -> bool:
    if equipment_type == "elevator":
        return t["safety_circuit_ok"] and t["door_lock_ok"] and "floor" in t and (
            t["speed_mps"] <= equipment.rated_speed_mps * 1.02) and (t["door_zone"] or t["speed_mps"] > 0)
    if equipment_type == "escalator":
        return t["running"] and t["safety_circuit_ok"] and t["brake_ok"] and (
            t["handrail_left_mps"] >= t["speed_mps"] * 0.99) and t["speed_mps"] <= equipment.rated_speed_mps * 1.02
    if equipment_type == "boiler":
        return (abs(t["water_level_mm"]) < 50 and t["pressure_mpa"] < equipment.rated_pressure_mpa
                and t["flue_gas_temp_c"] < 250 and t["water_hardness_mmol_l"] <= 0.03)
    return (t["pressure_mpa"] < equipment.rated_pressure_mpa and 10 < t["level_pct"] < 90
            and not t["safety_valve_open"])


def test_same_seed_gives_identical_messages_and_another_seed_does_not():
    first = [(m.topic, m.payload) for m in simulate(seed=3, seconds=600)]
    again = [(m.topic, m.payload) for m in simulate(seed=3, seconds=600)]
    other = [(m.topic, m.payload) for m in simulate(seed=4, seconds=600)]
    assert first == again
    assert first != other


def test_telemetry_is_spread_evenly_over_the_interval():
    simulation = FleetSimulation(load_scenario("demo"), 7, interval_s=5.0, today=DAY)
    count = len(simulation.devices)
    telemetry = [d for d, _ in zip(simulation.schedule(), range(3 * count + 50), strict=False) if d.action is None]
    first_round = telemetry[:count]
    assert len({d.equipment for d in first_round}) == count
    assert [d.at_s for d in first_round] == pytest.approx([5.0 * i / count for i in range(count)])
    one_device = [d.at_s for d in telemetry if d.equipment == "EL-D1-0005"][:3]
    assert [b - a for a, b in zip(one_device, one_device[1:], strict=False)] == pytest.approx([5.0, 5.0])


def test_registry_csv_lists_the_demo_fleet_with_its_overdue_inspections(tmp_path):
    path = tmp_path / "registry.csv"
    assert write_scenario_registry("demo", 7, path) == 59
    today = date.today()
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        assert tuple(next(reader)) == REGISTRY_COLUMNS
        rows = [dict(zip(REGISTRY_COLUMNS, r, strict=True)) for r in reader]
    counts = defaultdict(int)
    for row in rows:
        counts[row["type"]] += 1
        assert CODE_PATTERN.match(row["code"])
        assert row["status"] in ("in_use", "suspended")
        assert row["maintenance_firm"] and row["maintenance_firm_phone"]
        installed = date.fromisoformat(row["install_date"])
        inspected = date.fromisoformat(row["last_inspection_on"])
        assert installed < inspected <= today
        filled = {c for c in ("rated_speed_mps", "rated_load_kg", "floors", "rated_pressure_mpa",
                              "rated_capacity_tph") if row[c]}
        assert filled == {"elevator": {"rated_speed_mps", "rated_load_kg", "floors"},
                          "escalator": {"rated_speed_mps"},
                          "boiler": {"rated_pressure_mpa", "rated_capacity_tph"},
                          "pressure_vessel": {"rated_pressure_mpa"}}[row["type"]], row["code"]
        for column in filled:
            assert float(row[column]) > 0
    assert dict(counts) == {"elevator": 50, "escalator": 2, "boiler": 5, "pressure_vessel": 2}
    assert {r["district"] for r in rows} == {"Xuhui District", "Minhang District"}
    assert len({(r["maintenance_firm"], r["maintenance_firm_phone"]) for r in rows}) == 3
    assert 1 <= sum(r["status"] == "suspended" for r in rows) <= 3
    assert any((today - date.fromisoformat(r["install_date"])).days > 15 * 365 for r in rows)

    def months_ago(day: date) -> float:
        return (today.year - day.year) * 12 + today.month - day.month + (today.day - day.day) / 31

    overdue = {r["code"] for r in rows if months_ago(date.fromisoformat(r["last_inspection_on"])) > 12}
    assert overdue == {"EL-D1-0004", "EL-D2-0007", "ES-D1-0001", "BL-D2-0001"}
    for row in rows:
        if row["code"] in overdue:
            assert 13 <= months_ago(date.fromisoformat(row["last_inspection_on"])) < 20


def test_same_seed_and_day_give_an_identical_registry_csv(tmp_path):
    scenario = load_scenario("demo")
    write_registry_csv(build_fleet(scenario, 7, DAY), tmp_path / "a.csv")
    write_registry_csv(build_fleet(scenario, 7, DAY), tmp_path / "b.csv")
    write_registry_csv(build_fleet(scenario, 8, DAY), tmp_path / "c.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()


SMALL_SCENARIO = """
name: small
utc_offset: "+08:00"
districts:
  - name: Test District
    code: {code}
    equipment: {{elevator: 2, boiler: 1}}
    sites:
      - {{use_unit: Test Tower, address: 1 Test Road, kind: office, floors: 10, hosts: [elevator, boiler]}}
firms:
  - {{name: Test Lifts, phone: "021-1", serves: [elevator, boiler]}}
faults:
  - {{at_s: 0.3, clear_at_s: 0.9, equipment: EL-{code}-0001, fault: entrapment}}
"""


def small_scenario(tmp_path: Path, code: str) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL_SCENARIO.format(code=code), encoding="utf-8")
    return path


def test_a_scenario_loads_from_a_file_and_bad_ones_are_refused_with_the_reason(tmp_path):
    assert load_scenario(str(small_scenario(tmp_path, "T0"))).equipment_codes() == {
        "EL-T0-0001": "elevator", "EL-T0-0002": "elevator", "BL-T0-0001": "boiler"}
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'.*demo"):
        load_scenario("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text(small_scenario(tmp_path, "T0").read_text().replace("fault: entrapment", "fault: flame_failure"))
    with pytest.raises(ScenarioError, match="bad.yaml: faults: elevator EL-T0-0001 cannot simulate 'flame_failure'"):
        load_scenario(str(bad))


def clear_retained(url: str, topics: list[str]) -> None:
    """Leave the session's shared broker as we found it: an empty retained message deletes one."""
    publisher = Subscriber(url)
    for topic in topics:
        publisher.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(timeout=5)
    publisher.close()


def test_run_simulation_publishes_retained_status_telemetry_and_events_until_stopped(broker, base_config,
                                                                                     tmp_path):
    config = base_config.replace(mqtt_url=broker.url)
    scenario = str(small_scenario(tmp_path, "T1"))
    status_topics = [f"sem/v1/{t}/{c}/status" for c, t in load_scenario(scenario).equipment_codes().items()]
    live = Subscriber(broker.url)
    stop = threading.Event()
    result = {}
    runner = threading.Thread(target=lambda: result.update(stats=run_simulation(
        config, scenario, seed=1, interval_s=0.6, duration_s=None, stop_event=stop)))
    try:
        runner.start()
        wait_until(lambda: len({m[0] for m in live.received("telemetry")}) == 3 and len(
            live.received("event")) == 2, timeout=10, message="telemetry from every monitor and both events")
        stop.set()
        runner.join(timeout=10)
        assert not runner.is_alive()
        stats = result["stats"]

        expected = sorted([(t, b"online") for t in status_topics] + [(t, b"offline") for t in status_topics])
        # Only this scenario's monitors: other tests may leave retained statuses on the shared broker.
        wait_until(lambda: sorted(m[:2] for m in live.received("status") if m[0] in status_topics) == expected,
                   timeout=5,
                   message="online, then offline, from every monitor")
        wait_until(lambda: len(live.received("telemetry")) == stats.published["telemetry"], timeout=5,
                   message="every acknowledged telemetry message")
        for topic, payload, _, _ in live.received("telemetry"):
            assert_contract(topic.split("/")[2], "telemetry", json.loads(payload))
        events = [json.loads(m[1]) for m in live.received("event")]
        assert [(e["code"], e["state"]) for e in events] == [("entrapment", "raised"), ("entrapment", "cleared")]
        assert stats.published["status"] == 6 and stats.published["event"] == 2
        # The monitors' first readings arrive spread over the 0.6 s interval, not in one burst.
        first_seen: dict[str, float] = {}
        for topic, _, _, seen in live.received("telemetry"):
            first_seen.setdefault(topic, seen)
        assert max(first_seen.values()) - min(first_seen.values()) >= 0.2

        # A subscriber arriving later learns from the retained messages that every monitor is offline.
        late = Subscriber(broker.url)
        retained = wait_until(lambda: (lambda r: r if len(r) == 3 else None)(
            [m for m in late.received("status", retained=True) if m[0] in status_topics]),
            timeout=5, message="retained statuses")
        assert sorted(m[:2] for m in retained) == sorted((t, b"offline") for t in status_topics)
        late.close()
    finally:
        stop.set()
        live.close()
        clear_retained(broker.url, status_topics)


def test_run_simulation_stops_after_its_duration(broker, base_config, tmp_path):
    config = base_config.replace(mqtt_url=broker.url)
    scenario = str(small_scenario(tmp_path, "T2"))
    status_topics = [f"sem/v1/{t}/{c}/status" for c, t in load_scenario(scenario).equipment_codes().items()]
    try:
        started = time.monotonic()
        stats = run_simulation(config, scenario, seed=1, interval_s=0.2, duration_s=1.0)
        assert time.monotonic() - started < 5
        # 3 monitors every 0.2 s for 1 s, whatever the scheduling jitter at the edges.
        assert 10 <= stats.published["telemetry"] <= 18
        assert stats.published["status"] == 6 and stats.dropped == 0
    finally:
        clear_retained(broker.url, status_topics)


def test_the_same_seed_and_day_make_the_same_fleet_whatever_day_it_is_simulated_on(tmp_path):
    from click.testing import CliRunner

    from semon.cli import cli

    # `semon simulate --today`: a benchmark that kept its telemetry meets the same fleet again on a later day.
    day = date(2026, 1, 5)
    result = CliRunner().invoke(cli, ["simulate", "--scenario", "demo", "--seed", "7", "--today", day.isoformat(),
                                      "--registry-csv", str(tmp_path / "then.csv")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    write_scenario_registry("demo", 7, tmp_path / "direct.csv", day)
    assert (tmp_path / "then.csv").read_text(encoding="utf-8") == (tmp_path / "direct.csv").read_text(encoding="utf-8")
    installed = [date.fromisoformat(r["install_date"]) for r in csv.DictReader((tmp_path / "then.csv").open())]
    assert max(installed) < day
    write_scenario_registry("demo", 7, tmp_path / "today.csv")
    assert (tmp_path / "today.csv").read_text(encoding="utf-8") != (tmp_path / "then.csv").read_text(encoding="utf-8")
    a = FleetSimulation(load_scenario("demo"), 7, 30.0, today=day)
    b = FleetSimulation(load_scenario("demo"), 7, 30.0, today=day)
    assert [e.install_date for e in a.fleet_all] == [e.install_date for e in b.fleet_all]
