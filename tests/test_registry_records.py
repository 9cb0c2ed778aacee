"""Inspection and maintenance records: the scenario's generated histories, and their CSV import (every bad row
reported, nothing half-imported, re-import changes nothing)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from models.compliance import add_months, compliance_statuses, next_due, rule_index, rules_from_config, scan_compliance
from semon.registry.csvfiles import RegistryError
from semon.registry.exporter import export_csv
from semon.registry.fields import RECORD_COLUMNS
from semon.registry.importer import import_records_csv, import_registry_csv, parse_records_csv
from simulators.fleet import build_fleet, equipment_records, records_path, write_registry_csv
from simulators.scenario import load_scenario, scenario_names

DAY = date(2026, 3, 15)

RULES = rule_index()  # the default intervals


def histories(scenario: str, seed: int, day: date) -> tuple[dict, dict[str, list]]:
    fleet = {e.code: e for e in build_fleet(load_scenario(scenario), seed, day)}
    return fleet, {code: equipment_records(e, day) for code, e in fleet.items()}


def last_due(records: list, check: str, equipment) -> date | None:
    done = [r for r in records if r.check == check]
    if not done:
        return None
    return next_due(RULES, check, {"type": equipment.type, "install_date": equipment.install_date},
                    max(r.date for r in done))


def test_the_scenarios_overdue_equipment_is_overdue_in_its_history_and_the_rest_is_in_date():
    scenario = load_scenario("demo")
    fleet, records = histories("demo", 7, DAY)
    in_use = {code for code, e in fleet.items() if e.status == "in_use"}
    overdue = {code for code in in_use if last_due(records[code], "periodic_inspection", fleet[code]) < DAY}
    assert overdue == set(scenario.overdue_inspection) & in_use
    for code in overdue:
        last = max(r.date for r in records[code] if r.check == "periodic_inspection")
        assert add_months(DAY, -20) < last < add_months(DAY, -13) + timedelta(days=1)

    maintained = {code for code in in_use if fleet[code].type in ("elevator", "escalator")}
    late = {code for code in maintained if last_due(records[code], "maintenance", fleet[code]) < DAY}
    assert 2 <= len(late) <= 3
    for code in late:
        assert (DAY - max(r.date for r in records[code] if r.check == "maintenance")).days > 15
    assert all(not [r for r in records[c] if r.check == "maintenance"] for c in in_use - maintained)

    for code, equipment in fleet.items():
        commissioned = equipment.commissioning_date
        assert equipment.install_date < commissioned < DAY
        assert all(commissioned <= r.date <= DAY for r in records[code])
        inspections = [r for r in records[code] if r.check == "periodic_inspection"]
        assert max(r.date for r in inspections) == equipment.last_inspection_on
        # Every earlier inspection was in date: each one came before the previous one's due date.
        for before, after in zip(inspections, inspections[1:], strict=False):
            assert after.date <= next_due(RULES, "periodic_inspection", {"type": equipment.type}, before.date)
        assert inspections[-1].result != "fail"
        visits = [r.date for r in records[code] if r.check == "maintenance"]
        assert all(0 < (b - a).days <= 15 for a, b in zip(visits, visits[1:], strict=False))
        if equipment.type in ("elevator", "escalator") and equipment.status == "in_use":
            assert (max(visits) - min(visits)).days >= 330  # about a year of visits
        if equipment.type == "boiler":
            internal = [r.date for r in records[code] if r.check == "internal_inspection"]
            assert internal[0] <= add_months(commissioned, 12)
            assert next_due(RULES, "internal_inspection", {"type": "boiler"}, internal[-1]) >= DAY

    every = [r for rs in records.values() for r in rs]
    assert {r.result for r in every} == {"pass", "pass_after_rectification", "fail"}
    assert sum(r.result == "pass" for r in every) > 0.9 * len(every)
    assert all(r.defects for r in every if r.result != "pass")
    assert all(r.organisation and r.person and r.report_number for r in every)
    assert len({r.report_number for r in every}) == len(every)
    assert any((DAY - e.install_date).days > 15 * 365 for e in fleet.values())


@pytest.mark.parametrize("name", scenario_names())
def test_in_every_scenario_exactly_the_listed_equipment_is_overdue_for_inspection(name):
    scenario = load_scenario(name)
    fleet = build_fleet(scenario, 7, DAY)
    overdue = {e.code for e in fleet
               if next_due(RULES, "periodic_inspection", {"type": e.type}, e.last_inspection_on) < DAY}
    assert overdue == set(scenario.overdue_inspection)
    assert all(e.install_date < e.commissioning_date < e.last_inspection_on for e in fleet)


def test_a_pressure_vessel_is_overdue_six_years_after_its_inspection_and_first_inspected_within_three():
    fleet, _ = histories("load", 7, DAY)
    vessels = [e for e in fleet.values() if e.type == "pressure_vessel"]
    for vessel in vessels:
        records = [r for r in equipment_records(vessel, DAY) if r.check == "periodic_inspection"]
        assert records[0].date <= add_months(vessel.commissioning_date, 36)
        overdue = next_due(RULES, "periodic_inspection", {"type": "pressure_vessel"}, records[-1].date) < DAY
        assert overdue == (vessel.code == "PV-BS-0010"), vessel.code


def write_demo(tmp_path: Path, seed: int = 7, day: date | None = None) -> tuple[Path, Path]:
    registry = tmp_path / "registry.csv"
    write_registry_csv(build_fleet(load_scenario("demo"), seed, day or date.today()), registry, day or date.today())
    return registry, records_path(registry)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


STORED = """
SELECT e.code, i.kind AS check, i.performed_on AS date, i.result, i.organisation, i.person,
       i.report_no AS report_number, i.defects, i.rectify_by
FROM inspections i JOIN equipment e ON e.id = i.equipment_id
UNION ALL
SELECT e.code, 'maintenance', m.performed_on, m.result, m.organisation, m.person, m.report_no, m.defects,
       m.rectify_by
FROM maintenance_records m JOIN equipment e ON e.id = m.equipment_id
ORDER BY 1, 3, 2
"""


def test_records_round_trip_through_the_import_and_drive_the_overdue_scan(config, db, tmp_path):
    registry, records = write_demo(tmp_path)
    assert records.name == "registry-records.csv"
    rows = read_rows(records)
    assert tuple(rows[0]) == RECORD_COLUMNS
    import_registry_csv(config, registry, create_districts=True)
    summary = import_records_csv(config, records)
    # The registry's last_inspection_on rows are already there; the records fill in who, what and found what.
    equipment = len(read_rows(registry))
    assert summary.startswith(f"{len(rows)} records (")
    assert f"{len(rows) - equipment} new, {equipment} updated, 0 unchanged" in summary

    stored = db.execute(STORED).fetchall()
    as_csv = sorted(tuple("" if r[c] is None else str(r[c]) for c in RECORD_COLUMNS) for r in stored)
    assert as_csv == sorted(tuple(r[c] for c in RECORD_COLUMNS) for r in rows)
    firms = db.execute("""SELECT count(*) FILTER (WHERE m.firm_id = e.firm_id) AS own, count(*) AS n
                          FROM maintenance_records m JOIN equipment e ON e.id = m.equipment_id""").fetchone()
    assert firms["own"] == firms["n"] > 0
    commissioned = db.execute("SELECT count(commissioning_date) AS n FROM equipment").fetchone()["n"]
    assert commissioned == equipment

    today = date.today()
    now = datetime.now(UTC)
    scan_compliance(db, today, now)
    alerted = {r["code"] for r in db.execute("""SELECT e.code FROM alerts a JOIN equipment e ON e.id = a.equipment_id
                                                 WHERE a.kind = 'overdue:periodic_inspection'""")}
    scenario = load_scenario("demo")
    assert alerted == set(scenario.overdue_inspection) - set(scenario.suspended)


def test_reimporting_the_same_records_changes_nothing(config, db, tmp_path):
    registry, records = write_demo(tmp_path)
    import_registry_csv(config, registry, create_districts=True)
    first = import_records_csv(config, records)
    before = db.execute(STORED).fetchall()
    ids = db.execute("SELECT max(id) AS i FROM inspections").fetchone()["i"]
    again = import_records_csv(config, records)
    count = len(read_rows(records))
    assert again.endswith(f": 0 new, 0 updated, {count} unchanged"), (first, again)
    assert db.execute(STORED).fetchall() == before
    assert db.execute("SELECT max(id) AS i FROM inspections").fetchone()["i"] == ids
    # Nor does importing the equipment again: its last inspection is one of the records.
    assert import_registry_csv(config, registry).endswith("; 0 inspection record(s) added")
    assert db.execute(STORED).fetchall() == before


# The first version's columns: files without rectify_by still import.
HEADER = ",".join(c for c in RECORD_COLUMNS if c != "rectify_by")


def write(tmp_path: Path, *lines: str, header: str = HEADER) -> Path:
    path = tmp_path / "records.csv"
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def register(config, tmp_path: Path) -> None:
    path = tmp_path / "registry.csv"
    path.write_text("code,type,district,maintenance_firm,install_date,commissioning_date\n"
                    "EL-1,elevator,Xuhui District,Shenghui Lifts,2004-03-01,2004-05-10\n"
                    "BL-1,boiler,Xuhui District,Heat Safe Co,2019-10-10,\n", encoding="utf-8")
    import_registry_csv(config, path, create_districts=True)


GOOD = [
    "EL-1,periodic_inspection,2025-05-06,pass,Special Equipment Inspection Institute,Wang Lei,DJ-1,",
    "EL-1,maintenance,2025-05-20,pass_after_rectification,Shenghui Lifts,Sun Hao,WB-1,brake lining worn",
    "EL-1,governor_calibration,2025-05-06,pass,Special Equipment Inspection Institute,Li Na,XS-1,",
    "BL-1,internal_inspection,2024-11-02,fail,Boiler Institute,Zhao Min,NJ-1,scale over 1 mm; gauge fouled",
]


def due_dates(db, as_of: date = DAY) -> dict[tuple[str, str], date]:
    """The compliance status's due date of each check with a record (docs/compliance.md)."""
    return {(s.code, s.check): s.due_on for s in compliance_statuses(db, as_of) if s.last_on is not None}


def test_imported_records_are_due_by_their_own_rules(config, db, tmp_path):
    register(config, tmp_path)
    summary = import_records_csv(config, write(tmp_path, *GOOD))
    assert summary == "4 records (3 inspections and tests, 1 maintenance visits): 4 new, 0 updated, 0 unchanged"
    assert {(r["code"], r["check"]): r["defects"] for r in db.execute(STORED)} == {
        ("EL-1", "periodic_inspection"): "", ("EL-1", "maintenance"): "brake lining worn",
        ("EL-1", "governor_calibration"): "", ("BL-1", "internal_inspection"): "scale over 1 mm; gauge fouled"}
    assert due_dates(db) == {
        ("EL-1", "periodic_inspection"): date(2026, 5, 6),
        ("EL-1", "maintenance"): date(2025, 6, 4),
        ("EL-1", "governor_calibration"): date(2026, 5, 6),  # the lift is over 15 years old: yearly
        # Failed, with no deadline given: the default rectification period (compliance_rectification_days).
        ("BL-1", "internal_inspection"): date(2024, 12, 2),
    }
    visit = db.execute("SELECT kind, firm_id FROM maintenance_records").fetchone()
    assert visit["kind"] == "routine" and visit["firm_id"] is not None


@pytest.mark.parametrize(("check", "equipment_type", "install", "day", "expected"), [
    ("periodic_inspection", "elevator", None, date(2024, 2, 29), date(2025, 2, 28)),
    ("periodic_inspection", "pressure_vessel", None, date(2020, 8, 31), date(2026, 8, 31)),
    ("governor_calibration", "elevator", date(2015, 1, 1), date(2026, 1, 1), date(2028, 1, 1)),
    ("governor_calibration", "elevator", date(2010, 1, 1), date(2026, 1, 1), date(2027, 1, 1)),
    ("maintenance", "escalator", None, date(2026, 2, 20), date(2026, 3, 7)),
    ("internal_inspection", "boiler", None, date(2025, 1, 31), date(2027, 1, 31)),
    ("pressure_gauge_verification", "boiler", None, date(2025, 8, 31), date(2026, 2, 28)),
])
def test_next_due_dates(check, equipment_type, install, day, expected):
    assert next_due(RULES, check, {"type": equipment_type, "install_date": install}, day) == expected


def test_next_due_follows_the_safety_grade_the_governor_date_and_the_configured_intervals():
    vessel = {"type": "pressure_vessel", "safety_grade": 3}
    assert next_due(RULES, "periodic_inspection", vessel, date(2024, 5, 1)) == date(2027, 5, 1)
    # A governor replaced in 2020 on a 2005 lift is not old: two-yearly, not yearly.
    lift = {"type": "elevator", "install_date": date(2005, 1, 1), "governor_install_date": date(2020, 1, 1)}
    assert next_due(RULES, "governor_calibration", lift, date(2026, 1, 1)) == date(2028, 1, 1)
    boiler = {"type": "boiler"}
    assert next_due(rule_index({"boiler_external_inspection_months": 6}), "periodic_inspection", boiler,
                    date(2026, 1, 31)) == date(2026, 7, 31)


def test_every_problem_of_a_file_is_reported_in_one_pass_and_nothing_is_imported(config, db, tmp_path):
    register(config, tmp_path)
    path = write(tmp_path, GOOD[0],
                 "EL-1,annual_party,2025-02-30,ok,,,,",
                 "EL 2,maintenance,2999-01-01,fail,,,,",
                 ",,,,,,,",
                 "EL-1,periodic_inspection,2025-05-06,pass,,,,",
                 "EL-1,maintenance,2025-06-01,pass,Shenghui Lifts",
                 GOOD[1],
                 # Valid on their own, but naming equipment the registry lacks, or a check that does not apply.
                 "EL-9,maintenance,2025-05-20,pass,,,,",
                 "BL-1,maintenance,2025-05-20,pass,,,,",
                 "EL-9,rescue_drill,2025-05-20,ok,,,,")
    with pytest.raises(RegistryError) as failure:
        import_records_csv(config, path)
    assert str(failure.value) == "12 problems in 7 rows"
    assert failure.value.problems == [
        "line 3: column check: 'annual_party' is not one of periodic_inspection, internal_inspection, "
        "governor_calibration, rescue_drill, water_quality_test, safety_valve_calibration, "
        "pressure_gauge_verification, maintenance",
        "line 3: column date: '2025-02-30' is not a date (YYYY-MM-DD)",
        "line 3: column result: 'ok' is not one of pass, pass_after_rectification, fail",
        "line 4: column code: 'EL 2' is not a registry code ([A-Za-z0-9_-], at most 64)",
        "line 4: column date: 2999-01-01 is in the future",
        "line 4: column defects: is required when the result is fail",
        "line 6: column date: periodic_inspection of EL-1 on 2025-05-06 already on line 2",
        "line 7: expected 8 columns, found 5",
        "line 9: column code: no equipment 'EL-9' in the registry (import the equipment CSV first)",
        "line 10: column check: maintenance does not apply to boiler BL-1 (only to elevator, escalator)",
        "line 11: column result: 'ok' is not one of pass, pass_after_rectification, fail",
        "line 11: column code: no equipment 'EL-9' in the registry (import the equipment CSV first)",
    ]
    assert db.execute("SELECT count(*) AS n FROM inspections").fetchone()["n"] == 0
    assert db.execute("SELECT count(*) AS n FROM maintenance_records").fetchone()["n"] == 0


RECTIFY_HEADER = HEADER + ",rectify_by"


def test_a_failed_record_is_due_by_its_rectification_deadline_which_round_trips(config, db, tmp_path):
    register(config, tmp_path)
    failed = GOOD[3] + ",2024-11-20"
    assert import_records_csv(config, write(tmp_path, GOOD[0] + ",", failed, header=RECTIFY_HEADER)).endswith(
        ": 2 new, 0 updated, 0 unchanged")
    stored = {r["check"]: r["rectify_by"] for r in db.execute(STORED)}
    assert stored == {"periodic_inspection": None, "internal_inspection": date(2024, 11, 20)}
    assert due_dates(db)[("BL-1", "internal_inspection")] == date(2024, 11, 20)

    out = io.StringIO()
    assert export_csv(config, "records", out) == 2
    exported = out.getvalue().splitlines()
    assert exported[0] == "\ufeff" + ",".join(RECORD_COLUMNS) and failed in exported
    path = tmp_path / "exported.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    assert import_records_csv(config, path).endswith(": 0 new, 0 updated, 2 unchanged")
    # A file without the column leaves the deadline as it is; an empty cell clears it.
    assert import_records_csv(config, write(tmp_path, GOOD[3])).endswith(": 0 new, 0 updated, 1 unchanged")
    assert due_dates(db)[("BL-1", "internal_inspection")] == date(2024, 11, 20)
    assert import_records_csv(config, write(tmp_path, GOOD[3] + ",", header=RECTIFY_HEADER)).endswith(
        ": 0 new, 1 updated, 0 unchanged")
    assert due_dates(db)[("BL-1", "internal_inspection")] == date(2024, 12, 2)


def test_rectify_by_is_only_for_a_failed_record_and_not_before_it(config, db, tmp_path):
    register(config, tmp_path)
    path = write(tmp_path, GOOD[0] + ",2025-06-01", GOOD[3] + ",2024-11-01", GOOD[3].replace("NJ-1", "NJ-2")
                 .replace("2024-11-02", "2024-11-03") + ",soon", header=RECTIFY_HEADER)
    with pytest.raises(RegistryError) as failure:
        import_records_csv(config, path)
    assert failure.value.problems == [
        "line 2: column rectify_by: applies only when the result is fail, not pass",
        "line 3: column rectify_by: 2024-11-01 is before the record's date 2024-11-02",
        "line 4: column rectify_by: 'soon' is not a date (YYYY-MM-DD)",
    ]
    assert db.execute("SELECT count(*) AS n FROM inspections").fetchone()["n"] == 0


def test_a_wrong_records_header_is_reported(tmp_path):
    with pytest.raises(RegistryError) as failure:
        parse_records_csv(write(tmp_path, "EL-1,x,2025-01-01,pass", header="code,kind,date,result"), DAY)
    assert failure.value.problems == [
        f"line 1: missing column 'check' (expected: {','.join(RECORD_COLUMNS)})",
        f"line 1: unknown column 'kind' (expected: {','.join(RECORD_COLUMNS)})",
    ]


def test_the_import_records_command_lists_each_bad_row_and_exits_non_zero(config, db_url, db, tmp_path):
    register(config, tmp_path)
    path = write(tmp_path, GOOD[0], "EL-1,maintenance,2025-05-20,,,,,")
    command = [sys.executable, "-m", "semon.cli", "import-records", str(path)]
    env = {**os.environ, "SEMON_DATABASE_URL": db_url}
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"{path}:line 3: column result: is required",
                                          "Error: 1 problem in 1 row; nothing was imported"]
    assert db.execute("SELECT count(*) AS n FROM inspections").fetchone()["n"] == 0
    path = write(tmp_path, *GOOD)
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("4 new, 0 updated, 0 unchanged")


def test_the_same_seed_writes_identical_registry_and_records_files(tmp_path):
    files = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        (tmp_path / name).mkdir()
        registry, records = write_demo(tmp_path / name, seed, DAY)
        files[name] = (registry.read_bytes(), records.read_bytes())
    assert files["a"] == files["b"]
    assert files["a"][0] != files["c"][0] and files["a"][1] != files["c"][1]


def test_the_generated_records_file_passes_its_own_validation(tmp_path):
    _, records = write_demo(tmp_path, 7, DAY)
    rows = parse_records_csv(records, today=DAY)
    by_check = defaultdict(int)
    for row in rows:
        by_check[row.values["check"]] += 1
    # Every check some equipment owes (models/compliance.py) has a history.
    assert set(by_check) == {rule.check_name for rule in rules_from_config()}
    assert by_check["maintenance"] > by_check["periodic_inspection"]


def test_in_the_demo_only_the_chosen_equipment_is_overdue_and_only_for_its_chosen_check(config, db, tmp_path):
    today = date.today()
    scenario = load_scenario("demo")
    fleet = build_fleet(scenario, 7, today)
    registry = tmp_path / "registry.csv"
    write_registry_csv(fleet, registry, today)
    import_registry_csv(config, registry, create_districts=True)
    import_records_csv(config, records_path(registry))

    late_maintenance = {e.code for e in fleet if e.status == "in_use" and e.last_maintenance_on is not None
                        and (today - e.last_maintenance_on).days > 15}
    assert 2 <= len(late_maintenance) <= 3
    expected = {(code, "periodic_inspection") for code in set(scenario.overdue_inspection) - set(scenario.suspended)}
    expected |= {(code, "maintenance") for code in late_maintenance}
    statuses = compliance_statuses(db, today)
    assert {(s.code, s.check) for s in statuses if s.status == "overdue"} == expected
    # Every check each in-use equipment owes has been done: none is counted from commissioning.
    in_use = sum(e.status == "in_use" for e in fleet)
    owed = sum(1 for e in fleet if e.status == "in_use" for r in rules_from_config() if r.equipment_type == e.type)
    assert len(statuses) == owed and len({s.code for s in statuses}) == in_use
    assert all(s.last_on is not None for s in statuses)
    assert scan_compliance(db, today, datetime.now(UTC)).overdue == len(expected)
