"""The detection benchmark's pure parts (bench/scoring.py, the scenario it runs) and the simulator realism it relies
on: maintenance periods, lingering passengers, a burner's purge, PIR misreadings, missing readings, reporting
jitter, the telemetry-only override and the clock start. No broker, no database."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from bench.detection import Settings, bench_scenario, check_targets, clock_start, monitors_of
from bench.scoring import (
    Alert,
    Label,
    classify,
    exposure,
    per_1000_days,
    percentile,
    poisson_upper_95,
    read_labels,
)
from simulators.monitor import MonitorMix
from simulators.operation import Operation, VisitPlan
from simulators.run import TimeMode, parse_clock_start
from simulators.scenario import load_scenario
from simulators.simulation import FleetSimulation

DAY_S = 86400.0
DAY = date(2026, 11, 22)
START = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)  # 08:00 on the scenarios' +08:00 clock

# --- matching -------------------------------------------------------------------------------------------------

ENTRAPMENT = Label("EL-1", "fault", "entrapment", 1000.0, 1100.0)


def category(alert: Alert, labels: list[Label], suspended: tuple[str, ...] = ()) -> str:
    return classify([alert], labels, tolerance_s=60.0, suspended=suspended).category[alert.id]


@pytest.mark.parametrize(("first_seen", "expected"), [
    (999.999, "false"),      # before the fault began
    (1000.0, "matched"),     # its start
    (1100.0, "matched"),     # its end
    (1160.0, "matched"),     # its end plus the tolerance
    (1160.001, "false"),     # past that
])
def test_an_alert_matches_a_fault_of_its_kind_from_its_start_to_its_end_plus_the_tolerance(first_seen, expected):
    assert category(Alert(1, "EL-1", "entrapment", first_seen), [ENTRAPMENT]) == expected


def test_an_alert_on_other_equipment_or_of_another_kind_does_not_match():
    assert category(Alert(1, "EL-2", "entrapment", 1050.0), [ENTRAPMENT]) == "false"
    # During the entrapment the car also stands outside the door zone: explained by the fault, but not a match.
    assert category(Alert(2, "EL-1", "stop_outside_door_zone", 1050.0), [ENTRAPMENT]) == "secondary"


def test_alerts_outside_faults_go_to_maintenance_then_wear_then_false():
    labels = [Label("EL-1", "maintenance", "maintenance", 2000.0, 3000.0),
              Label("EL-1", "wear", "door_operator", 2500.0, 9000.0)]
    assert category(Alert(1, "EL-1", "door_open_too_long", 2600.0), labels) == "mode"
    assert category(Alert(2, "EL-1", "door_open_too_long", 3000.001), labels) == "wear"
    assert category(Alert(3, "EL-1", "door_open_too_long", 1999.0), labels) == "false"
    # A suspended lift reports out_of_service the whole time: every alert on it is a mode alert.
    assert category(Alert(4, "EL-9", "entrapment", 50.0), labels, suspended=("EL-9",)) == "mode"


def test_a_fault_is_detected_by_its_first_matching_alert_and_later_ones_still_count_as_matched():
    early, late = Alert(7, "EL-1", "entrapment", 1090.0), Alert(3, "EL-1", "entrapment", 1030.0)
    result = classify([early, late], [ENTRAPMENT], tolerance_s=60.0)
    assert result.detection == {ENTRAPMENT: late}
    assert result.category == {3: "matched", 7: "matched"}


def test_a_fault_still_going_at_the_end_matches_until_the_horizon():
    going = Label("BL-1", "fault", "low_water_level", 500.0, None)
    result = classify([Alert(1, "BL-1", "low_water_level", 5000.0)], [going], tolerance_s=0.0, horizon=5000.0)
    assert result.category == {1: "matched"}


def test_labels_are_read_from_the_simulators_json_lines():
    rows = [{"equipment": "EL-1", "kind": "fault", "name": "entrapment", "start": "2026-11-22T00:00:01.500+00:00",
             "end": "2026-11-22T08:10:00.000+08:00"},
            {"equipment": "BL-1", "kind": "wear", "name": "scaling", "start": "2026-11-22T00:00:00.000+00:00",
             "end": None, "leads_to": "high_flue_gas_temp"}]
    assert read_labels(rows) == [Label("EL-1", "fault", "entrapment", START.timestamp() + 1.5,
                                       START.timestamp() + 600.0),
                                 Label("BL-1", "wear", "scaling", START.timestamp(), None)]


# --- rates ----------------------------------------------------------------------------------------------------


def test_exposure_counts_healthy_and_mode_days_without_faults_visits_or_wear():
    spans = {"EL-1": ("elevator", 0.0, 2 * DAY_S), "EL-2": ("elevator", 0.0, DAY_S),
             "BL-1": ("boiler", DAY_S, 3 * DAY_S), "EL-9": ("elevator", 0.0, DAY_S / 2)}
    labels = [Label("EL-1", "fault", "entrapment", DAY_S / 2, DAY_S / 2 + 3540.0),   # 3,600 s with the tolerance
              Label("EL-1", "maintenance", "maintenance", DAY_S, DAY_S + 7200.0),
              Label("BL-1", "wear", "scaling", 2 * DAY_S, None),                     # to the end of its span
              Label("EL-2", "fault", "overspeed", DAY_S - 30.0, None)]               # going at the end
    exposed = exposure(spans, labels, tolerance_s=60.0, suspended=("EL-9",))
    assert exposed.healthy_days == {"elevator": pytest.approx(2 - 3600 / DAY_S - 7200 / DAY_S + 1 - 30 / DAY_S),
                                    "boiler": pytest.approx(1.0)}
    assert exposed.mode_days == {"elevator": pytest.approx(7200 / DAY_S + 0.5), "boiler": 0.0}
    assert exposed.healthy_total == pytest.approx(4 - 10830 / DAY_S)


def test_rates_are_per_1000_equipment_days_with_a_poisson_upper_bound():
    assert per_1000_days(1, 2000.0) == 0.5
    assert per_1000_days(3, 60.0) == 50.0
    assert per_1000_days(0, 0.0) is None
    # The one-sided 95 % bounds of a Poisson mean: -ln(0.05) for none seen, then the chi-square values.
    assert poisson_upper_95(0) == pytest.approx(math.log(20), abs=1e-6)
    assert poisson_upper_95(1) == pytest.approx(4.7439, abs=1e-4)
    assert poisson_upper_95(3) == pytest.approx(7.7537, abs=1e-4)


def test_a_false_alarm_target_is_met_only_when_its_upper_bound_is_within_it():
    def entrapment(count: int, days: float) -> bool | None:
        result = {"entrapment_false_per_1000_equipment_days": per_1000_days(count, days),
                  "entrapment_false_per_1000_equipment_days_upper95": per_1000_days(poisson_upper_95(count), days),
                  "healthy_elevator_days": days}
        return check_targets(result)["entrapment false <= 0.05 per 1,000 elevator-days"][0]

    assert entrapment(0, 53.4) is None          # none seen, but 53 days bound the rate at 56 per 1,000
    assert entrapment(0, 60_000.0) is True      # none in 60,000 days: at most 0.0499 per 1,000
    assert entrapment(1, 60_000.0) is None      # 0.017 per 1,000 seen; the bound is 0.079
    assert entrapment(1, 1000.0) is False       # 1 per 1,000
    assert check_targets({})["recall 100 % of injected faults"] == (None, "not measured")


def test_percentiles_interpolate_between_ranks_like_numpy():
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([10.0, 20.0, 30.0, 40.0, 50.0], 99) == pytest.approx(49.6)
    assert percentile([10.0, 20.0, 30.0, 40.0, 50.0], 0) == 10.0
    assert percentile([10.0, 20.0, 30.0, 40.0, 50.0], 100) == 50.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


# --- the scenario the benchmark runs --------------------------------------------------------------------------


def test_the_compressed_schedule_keeps_each_fault_its_order_and_duration_within_the_days(tmp_path):
    original = yaml.safe_load(Path("simulators/scenarios/evaluation.yaml").read_text(encoding="utf-8"))["faults"]
    faults = load_scenario(str(bench_scenario(Settings(days=3.0), tmp_path))).faults
    assert [(f.equipment, f.fault, f.clear_at_s - f.at_s) for f in faults] == [
        (f["equipment"], f["fault"], f["clear_at_s"] - f["at_s"]) for f in original]
    assert [f.at_s for f in faults] == sorted(f.at_s for f in faults)
    assert (faults[0].equipment, faults[0].at_s) == ("EL-E1-0006", 3600)
    assert max(f.clear_at_s for f in faults) == 3 * DAY_S - 3600
    # At their own times for a run of a month.
    own = load_scenario(str(bench_scenario(Settings(days=30.0, schedule="scenario"), tmp_path))).faults
    assert [(f.equipment, f.fault, f.at_s, f.clear_at_s) for f in own] == [
        (f["equipment"], f["fault"], f["at_s"], f["clear_at_s"]) for f in original]


def test_the_benchmark_sees_every_monitor_as_the_simulator_makes_it(tmp_path):
    path = bench_scenario(Settings(days=3.0), tmp_path)
    reports, skews, types, suspended = monitors_of(path, Settings(days=3.0, reporting_share=0.0))
    assert len(reports) == 30 and not any(reports.values())
    simulation = FleetSimulation(load_scenario(str(path)), 7, 5.0)
    assert skews == {code: m.skew.total_seconds() for code, m in simulation.monitors.items()}
    assert sum(1 for s in skews.values() if s) >= 3  # the evaluation scenario's clocks are off on a fifth
    assert types["EL-E2-0008"] == "elevator" and suspended == ["EL-E2-0008"]
    reports, _, _, _ = monitors_of(path, Settings(days=3.0, reporting_share=1.0))
    assert all(reports.values())


# --- simulator realism ----------------------------------------------------------------------------------------

SMALL = """
name: small
utc_offset: "+08:00"
districts:
  - name: Test District
    code: R1
    equipment: {elevator: 3, escalator: 1, boiler: 1}
    sites:
      - {use_unit: Test Office, address: 1 Test Road, kind: office, floors: 12, hosts: [elevator, boiler]}
      - {use_unit: Test Mall, address: 2 Test Road, kind: mall, floors: 4, hosts: [escalator]}
firms:
  - {name: Test Service, phone: "021-1", serves: [elevator, escalator, boiler]}
faults:
  - {at_s: 40000, clear_at_s: 40600, equipment: EL-R1-0001, fault: entrapment}
"""


def simulate(text: str, tmp_path: Path, seconds: float, **changes) -> tuple[FleetSimulation, list]:
    path = tmp_path / "small.yaml"
    path.write_text(text)
    scenario = replace(load_scenario(str(path)), **changes)
    simulation = FleetSimulation(scenario, 3, 5.0, today=DAY)
    sent = []
    for due in simulation.schedule():
        if due.at_s >= seconds:
            break
        for message in simulation.messages(due, START + timedelta(seconds=due.at_s)):
            sent.append((due.at_s, message))
    return simulation, sent


@pytest.fixture(scope="module")
def visited(tmp_path_factory) -> tuple[FleetSimulation, list]:
    """Two days of the small fleet with a maintenance visit of 90 minutes to each lift and escalator a day."""
    operation = Operation(maintenance_every_s=DAY_S, maintenance_lasts_s=(5400.0, 5400.0))
    return simulate(SMALL, tmp_path_factory.mktemp("visits"), 2 * DAY_S, operation=operation)


def test_maintenance_visits_report_maintenance_or_inspection_mode_exactly_while_labelled(visited):
    simulation, sent = visited
    visits = [label for label in simulation.labels(START) if label["kind"] == "maintenance"]
    assert {v["equipment"] for v in visits} == {"EL-R1-0001", "EL-R1-0002", "EL-R1-0003", "ES-R1-0001"}
    spans = defaultdict(list)
    for visit in visits:
        begin, end = (datetime.fromisoformat(visit[k]) for k in ("start", "end"))
        spans[visit["equipment"]].append(((begin - START).total_seconds(), (end - START).total_seconds()))
        # The visit's hour on the local clock; 90 minutes, give or take waiting for the car to be free and handing
        # it back at a landing.
        assert 9 <= begin.astimezone(simulation.scenario.tz).hour < 16
        assert 5400 - 600 <= (end - begin).total_seconds() <= 5400 + 600
    modes = Counter()
    for at_s, message in sent:
        if message.channel != "telemetry" or "mode" not in message.payload:
            continue
        code = message.topic.split("/")[3]
        inside = any(begin <= at_s < end for begin, end in spans[code])
        mode = message.payload["mode"]
        assert (mode in ("maintenance", "inspection")) == inside, (code, at_s, mode)
        modes[mode] += 1
    assert modes["inspection"] > 0 and modes["maintenance"] > 0
    # No visit within an hour of the fault the scenario schedules on EL-R1-0001.
    assert all(end + 3600 < 40000 or begin > 40600 + 3600 for begin, end in spans["EL-R1-0001"])


def test_visits_keep_clear_of_scheduled_faults_and_stop_before_one_never_cleared():
    fleet = [replace(e, code=code) for e, code in zip(
        FleetSimulation(load_scenario("evaluation"), 7, 5.0, today=DAY).fleet_all[:2], ("EL-A", "EL-B"), strict=True)]
    busy = {"EL-A": [(10 * DAY_S, 10 * DAY_S + 600)], "EL-B": [(20 * DAY_S, math.inf)]}
    plan = VisitPlan(Operation(maintenance_every_s=DAY_S), fleet, 7, UTC, lambda code: busy[code])
    plan.bind(START)
    visits = {code: [t for t in range(0, int(40 * DAY_S), 600) if plan.active(code, t)] for code in busy}
    assert visits["EL-A"] and not [t for t in visits["EL-A"] if 10 * DAY_S - 3600 - 7200 < t < 10 * DAY_S + 4200]
    assert visits["EL-B"] and max(visits["EL-B"]) < 20 * DAY_S - 3600


def test_a_car_roof_visit_stops_between_floors_with_the_safety_circuit_open_in_inspection_mode(visited):
    _, sent = visited
    roof = [m.payload for _, m in sent if m.channel == "telemetry" and m.payload.get("mode") == "inspection"
            and m.payload.get("door_zone") is False and m.payload["speed_mps"] == 0
            and not m.payload["safety_circuit_ok"]]
    assert roof and all(p["door"] == "closed" and not p["occupied"] for p in roof)


def test_passengers_linger_in_a_closed_car_before_it_leaves_only_when_the_scenario_says_so(tmp_path):
    def longest_wait(operation: Operation) -> float:
        _, sent = simulate(SMALL, tmp_path, 6 * 3600, operation=operation)
        longest, since = 0.0, {}
        for at_s, m in sent:
            if m.channel != "telemetry" or not m.topic.startswith("sem/v1/elevator/"):
                continue
            p, code = m.payload, m.topic.split("/")[3]
            waiting = p["speed_mps"] == 0 and p["door"] == "closed" and p["door_zone"] and p["occupied"]
            if waiting:
                since.setdefault(code, at_s)
                longest = max(longest, at_s - since[code])
            else:
                since.pop(code, None)
        return longest

    assert longest_wait(Operation()) == 0.0
    lingering = longest_wait(Operation(boarding_wait_s=(4.0, 60.0)))
    assert 10.0 <= lingering <= 60.0


BOILER = SMALL.replace("{elevator: 3, escalator: 1, boiler: 1}", "{boiler: 1}").split("faults:")[0]


def test_a_burner_called_to_fire_shows_its_flame_only_after_its_purge(tmp_path):
    def unlit(operation: Operation) -> list[tuple[float, dict]]:
        _, sent = simulate(BOILER, tmp_path, DAY_S, operation=operation)
        return [(at_s, m.payload) for at_s, m in sent if m.channel == "telemetry"
                and m.payload["burner"] != "off" and not m.payload["flame"]]

    assert unlit(Operation()) == []
    purging = unlit(Operation(burner_purge_s=35.0))
    assert len(purging) >= 20
    # Each start's unlit readings span no more than the purge (readings every 5 s, up to a second early or late).
    runs, last = [], None
    for at_s, _ in purging:
        if last is None or at_s - last > 6:
            runs.append([at_s, at_s])
        runs[-1][1] = last = at_s
    assert max(end - begin for begin, end in runs) <= 35.0


def test_sensor_failings_flip_occupancy_and_leave_out_readings_at_their_rates(tmp_path):
    mix = MonitorMix(heartbeat_s=0, occupancy_miss_rate=0.2, occupancy_false_rate=0.05, field_dropout_rate=0.1)
    _, ideal = simulate(SMALL, tmp_path, 4 * 3600, monitors=MonitorMix(heartbeat_s=0))
    _, noisy = simulate(SMALL, tmp_path, 4 * 3600, monitors=mix)
    pairs = [(a.payload, b.payload) for (_, a), (_, b) in zip(ideal, noisy, strict=True) if a.channel == "telemetry"]
    cars = [(a, b) for a, b in pairs if "occupied" in a and "occupied" in b]
    missed = sum(1 for a, b in cars if a["occupied"] and not b["occupied"]) / sum(1 for a, _ in cars if a["occupied"])
    seen = sum(1 for a, b in cars if not a["occupied"] and b["occupied"]) / sum(1 for a, _ in cars
                                                                                if not a["occupied"])
    short = sum(1 for a, b in pairs if len(b) == len(a) - 1) / len(pairs)
    assert 0.15 < missed < 0.25 and 0.03 < seen < 0.07 and 0.08 < short < 0.12
    # Only the sensors differ: every other reading is the device's own.
    assert all({k: v for k, v in b.items() if k != "occupied"}.items() <= a.items() for a, b in pairs)


def test_readings_wander_around_their_slot_but_keep_their_order(tmp_path):
    _, sent = simulate(SMALL, tmp_path, 3600, monitors=MonitorMix(heartbeat_s=0, interval_jitter_s=1.0))
    times = defaultdict(list)
    for _, m in sent:
        times[m.topic.split("/")[3]].append(datetime.fromisoformat(m.payload["ts"]).timestamp())
    gaps = [b - a for series in times.values() for a, b in zip(series, series[1:], strict=False)]
    assert min(gaps) >= 3.0 and max(gaps) <= 7.0 and len({round(g, 3) for g in gaps}) > 100


def test_the_clock_can_start_in_the_past_without_a_backfill():
    mode = TimeMode(speed=864.0, clock_start_s=2.9 * DAY_S)
    assert mode.offset_s == 2.9 * DAY_S and not mode.realtime and mode.wall_offset(864.0) == 1.0
    assert mode.sim_epoch(1_000_000.0) == 1_000_000.0 - 2.9 * DAY_S
    at_midnight = TimeMode(speed=864.0, clock_epoch=START.timestamp())
    assert at_midnight.sim_epoch(1_000_000.0) == START.timestamp() and not at_midnight.realtime
    assert TimeMode().realtime and not TimeMode(history_s=60).realtime
    with pytest.raises(ValueError, match="cannot be combined"):
        TimeMode(history_s=60, clock_start_s=60)
    assert parse_clock_start("3d") == (3 * DAY_S, None)
    assert parse_clock_start("2026-11-22T08:00:00+08:00") == (0.0, START.timestamp())
    with pytest.raises(ValueError, match="needs its UTC offset"):
        parse_clock_start("2026-11-22T08:00:00")


def test_the_benchmarks_clock_starts_at_a_local_midnight_early_enough_that_no_ts_runs_ahead():
    now = datetime(2026, 12, 1, 17, 30, tzinfo=UTC).timestamp()  # 01:30 on 2 December in Shanghai
    began = clock_start(Settings(days=3.0, wall_s=300.0), now)
    assert began.isoformat() == "2026-11-29T00:00:00+08:00"
    assert began.timestamp() + 3 * DAY_S <= now + 300
