"""Equipment registry CSV import: every bad row reported, nothing half-imported, re-import changes nothing."""

from __future__ import annotations

from datetime import date

import pytest

from models.compliance import add_months, compliance_statuses
from semon.registry.csvfiles import RegistryError
from semon.registry.fields import COLUMNS
from semon.registry.importer import import_registry_csv, parse_registry_csv

# The columns before commissioning_date was added: files written then must still import.
HEADER = ",".join(c for c in COLUMNS if c != "commissioning_date")
GOOD = [
    "EL-0001,elevator,Xuhui District,1 Tianyaoqiao Rd,Block 3 Owners,Shenghui Lifts,021-5555,2008-05-01,in_use,"
    "1.75,1000,18,,,2026-03-01",
    "BL-0001,boiler,Minhang District,9 Hongqiao Rd,Dye Works,Heat Safe Co,021-6666,2019-10-10,,,,,1.25,4,2025-01-10",
]


def write(tmp_path, *lines: str):
    path = tmp_path / "registry.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def test_it_imports_equipment_with_districts_firms_and_inspections(config, db, tmp_path):
    summary = import_registry_csv(config, write(tmp_path, *GOOD))
    assert summary.startswith("2 equipment: 2 new")
    rows = db.execute("""SELECT e.code, e.type, d.name AS district, f.name AS firm, f.phone, e.floors,
                                e.rated_pressure_mpa, e.status
                         FROM equipment e JOIN districts d ON d.id = e.district_id
                         JOIN maintenance_firms f ON f.id = e.firm_id ORDER BY code""").fetchall()
    assert [(r["code"], r["district"], r["firm"], r["status"]) for r in rows] == [
        ("BL-0001", "Minhang District", "Heat Safe Co", "in_use"),
        ("EL-0001", "Xuhui District", "Shenghui Lifts", "in_use")]
    assert rows[1]["floors"] == 18 and rows[0]["rated_pressure_mpa"] == 1.25
    # The last inspection is a record, due again when the compliance rules say (docs/compliance.md).
    due = {(s.code, s.check): (s.last_on, s.due_on) for s in compliance_statuses(db, date(2026, 3, 15))}
    assert due[("EL-0001", "periodic_inspection")] == (date(2026, 3, 1), date(2027, 3, 1))


def test_reimporting_the_same_file_changes_nothing(config, db, tmp_path):
    path = write(tmp_path, *GOOD)
    import_registry_csv(config, path)
    before = db.execute("SELECT code, updated_at FROM equipment ORDER BY code").fetchall()
    summary = import_registry_csv(config, path)
    assert summary.startswith("2 equipment: 0 new, 0 updated, 2 unchanged; 0 inspection")
    assert db.execute("SELECT code, updated_at FROM equipment ORDER BY code").fetchall() == before
    assert db.execute("SELECT count(*) AS n FROM inspections").fetchone()["n"] == 2


def test_a_bad_row_is_reported_with_line_and_column_and_nothing_is_imported(config, db, tmp_path):
    path = write(tmp_path, GOOD[0],
                 "EL 0002,lift,Xuhui District,,,,,2010-02-30,in_use,fast,,,,,",
                 GOOD[1],
                 GOOD[0])
    with pytest.raises(RegistryError) as failure:
        import_registry_csv(config, path)
    problems = failure.value.problems
    assert "line 3: column code: 'EL 0002' is not a registry code ([A-Za-z0-9_-], at most 64)" in problems
    assert "line 3: column type: 'lift' is not one of elevator, escalator, boiler, pressure_vessel" in problems
    assert "line 3: column install_date: '2010-02-30' is not a date (YYYY-MM-DD)" in problems
    assert "line 3: column rated_speed_mps: 'fast' is not a number" in problems
    assert "line 5: column code: 'EL-0001' already on line 2" in problems
    assert db.execute("SELECT count(*) AS n FROM equipment").fetchone()["n"] == 0


def test_a_wrong_header_is_reported(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("code,kind,district\nEL-1,elevator,X\n")
    with pytest.raises(RegistryError) as failure:
        parse_registry_csv(path)
    assert failure.value.problems[0].startswith("line 1: missing column 'type'")


@pytest.mark.parametrize(("day", "months", "expected"), [
    (date(2024, 2, 29), 12, date(2025, 2, 28)),
    (date(2026, 1, 31), 1, date(2026, 2, 28)),
    (date(2027, 8, 31), 6, date(2028, 2, 29)),
    (date(2026, 3, 15), 12, date(2027, 3, 15)),
])
def test_due_dates_never_overshoot_a_month_end(day, months, expected):
    assert add_months(day, months) == expected


def test_the_import_command_lists_each_bad_row_and_exits_non_zero(db_url, db, tmp_path):
    import os
    import subprocess
    import sys

    path = write(tmp_path, GOOD[0], "EL-0002,elevator,,,,,,,,,,,,,")
    result = subprocess.run([sys.executable, "-m", "semon.cli", "import-equipment", str(path)],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "SEMON_DATABASE_URL": db_url})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"{path}:line 3: column district: is required",
                                          "Error: 1 bad row(s); nothing was imported"]
    assert db.execute("SELECT count(*) AS n FROM equipment").fetchone()["n"] == 0
