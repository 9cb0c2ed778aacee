"""Equipment registry CSV import: every bad row reported, nothing half-imported, re-import changes nothing."""

from __future__ import annotations

import getpass
from datetime import UTC, date, datetime

import pytest

from models.compliance import add_months, compliance_statuses
from semon import clock
from semon.registry.csvfiles import RegistryError
from semon.registry.fields import COLUMNS, EQUIPMENT_COLUMNS
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
    summary = import_registry_csv(config, write(tmp_path, *GOOD), create_districts=True)
    assert summary == ("2 equipment: 2 new, 0 updated, 0 unchanged; 2 inspection record(s) added; "
                       "new districts: Minhang District, Xuhui District; new use units: Block 3 Owners, Dye Works; "
                       "new maintenance firms: Heat Safe Co, Shenghui Lifts")
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
    import_registry_csv(config, path, create_districts=True)
    before = db.execute("SELECT code, updated_at FROM equipment ORDER BY code").fetchall()
    summary = import_registry_csv(config, path)
    assert summary == "2 equipment: 0 new, 0 updated, 2 unchanged; 0 inspection record(s) added"
    assert db.execute("SELECT code, updated_at FROM equipment ORDER BY code").fetchall() == before
    assert db.execute("SELECT count(*) AS n FROM inspections").fetchone()["n"] == 2


def test_a_bad_row_is_reported_with_line_and_column_and_nothing_is_imported(config, db, tmp_path):
    path = write(tmp_path, GOOD[0],
                 "EL 0002,lift,Xuhui District,,,,,2010-02-30,in_use,fast,,,,,",
                 GOOD[1],
                 GOOD[0])
    with pytest.raises(RegistryError) as failure:
        import_registry_csv(config, path, create_districts=True)
    assert str(failure.value) == "5 problems in 2 rows"
    problems = failure.value.problems
    assert "line 3: column code: 'EL 0002' is not a registry code ([A-Za-z0-9_-], at most 64)" in problems
    assert "line 3: column type: 'lift' is not one of elevator, escalator, boiler, pressure_vessel" in problems
    assert "line 3: column install_date: '2010-02-30' is not a date (YYYY-MM-DD)" in problems
    assert "line 3: column rated_speed_mps: 'fast' is not a number" in problems
    assert "line 5: column code: 'EL-0001' already on line 2" in problems
    assert db.execute("SELECT count(*) AS n FROM equipment").fetchone()["n"] == 0


def row(**cells: str) -> str:
    """An equipment row of HEADER's columns, empty but for `cells`."""
    return ",".join(cells.get(column, "") for column in HEADER.split(","))


def test_cell_type_duplicate_and_district_problems_of_a_file_come_out_together(config, db, tmp_path):
    db.execute("INSERT INTO districts (name) VALUES ('Xuhui District'), ('Minhang District')")
    path = write(tmp_path, GOOD[0],
                 row(code="BL-0002", type="boiler", district="Xuhui Distrct", floors="18"),
                 GOOD[0],
                 row(code="EL-0003", type="elevator", district="Xuhui District", install_date="tomorrow"),
                 row(code="EL-0004", type="elevator", district="Pudong New Area"))
    with pytest.raises(RegistryError) as failure:
        import_registry_csv(config, path)
    assert failure.value.problems == [
        "line 3: column floors: applies only to elevator, not to boiler",
        "line 3: column district: no district 'Xuhui Distrct' is registered (did you mean 'Xuhui District'?); "
        "register it first (semon registry import districts) or import with --create-districts",
        "line 4: column code: 'EL-0001' already on line 2",
        "line 5: column install_date: 'tomorrow' is not a date (YYYY-MM-DD)",
        "line 6: column district: no district 'Pudong New Area' is registered; "
        "register it first (semon registry import districts) or import with --create-districts",
    ]
    assert str(failure.value) == "5 problems in 4 rows"
    assert db.execute("SELECT count(*) AS n FROM equipment").fetchone()["n"] == 0
    assert [r["name"] for r in db.execute("SELECT name FROM districts ORDER BY name")] == [
        "Minhang District", "Xuhui District"]


def test_a_wrong_header_is_reported(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("code,kind,district\nEL-1,elevator,X\nEL 2,boiler,X\n")
    with pytest.raises(RegistryError) as failure:
        parse_registry_csv(path, date(2026, 3, 15))
    expected = ",".join(EQUIPMENT_COLUMNS)
    # The rows are still checked, without the missing column reported again on each.
    assert failure.value.problems == [
        f"line 1: missing column 'type' (expected: {expected})",
        f"line 1: unknown column 'kind' (expected: {expected})",
        "line 3: column code: 'EL 2' is not a registry code ([A-Za-z0-9_-], at most 64)"]
    assert str(failure.value) == "3 problems in the header and 1 row"


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

    path = write(tmp_path, GOOD[0], "EL-0002,elevator,,,,,,,,,,,,,", "EL-0003,elevator,Xuhui,,,,,,,,,,,,")
    command = [sys.executable, "-m", "semon.cli", "import-equipment", str(path)]
    env = {**os.environ, "SEMON_DATABASE_URL": db_url}
    db.execute("INSERT INTO districts (name) VALUES ('Minhang District'), ('Xuhui District')")
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{path}:line 3: column district: is required",
        f"{path}:line 4: column district: no district 'Xuhui' is registered (did you mean 'Xuhui District'?); "
        "register it first (semon registry import districts) or import with --create-districts",
        "Error: 2 problems in 2 rows; nothing was imported"]
    assert db.execute("SELECT count(*) AS n FROM equipment").fetchone()["n"] == 0
    # Asked to, the import creates the district, misspelt or not, and says so.
    path = write(tmp_path, GOOD[0], "EL-0003,elevator,Xuhui,,,,,,,,,,,,")
    result = subprocess.run([*command, "--create-districts"], capture_output=True, text=True, timeout=60, env=env)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == ("2 equipment: 2 new, 0 updated, 0 unchanged; 1 inspection record(s) added; "
                             "new districts: Xuhui; new use units: Block 3 Owners; new maintenance firms: "
                             "Shenghui Lifts\n")
    # The import is in the audit log, with whose shell made it; the refused one left nothing there.
    [entry] = db.execute("SELECT actor, action, target, after FROM audit_log").fetchall()
    assert entry["actor"] == f"cli:{getpass.getuser()}"
    assert (entry["action"], entry["target"]) == ("registry.import", "equipment CSV registry.csv")
    assert entry["after"] == {"rows": 2, "summary": result.stdout.strip()}


# 00:30 on 15 March in Shanghai is still 14 March in UTC: the users' day decides what is in the future.
MIDNIGHT_IN_SHANGHAI = datetime(2026, 3, 14, 16, 30, tzinfo=UTC)
DATES = "code,type,district,install_date,commissioning_date,governor_install_date,last_inspection_on"


def test_dates_after_the_users_today_and_commissioning_before_installation_are_refused(config, db, tmp_path):
    path = tmp_path / "dates.csv"
    path.write_text("\n".join([DATES,
                               "EL-1,elevator,Xuhui District,2026-03-15,2026-03-15,2026-03-15,2026-03-15",
                               "EL-2,elevator,Xuhui District,2026-03-16,2026-03-20,2026-04-01,2026-03-16",
                               "EL-3,elevator,Xuhui District,2008-05-01,2008-04-30,,"]) + "\n", encoding="utf-8")
    with clock.frozen(MIDNIGHT_IN_SHANGHAI), pytest.raises(RegistryError) as failure:
        import_registry_csv(config, path, create_districts=True)
    assert failure.value.problems == [
        "line 3: column install_date: 2026-03-16 is in the future",
        "line 3: column commissioning_date: 2026-03-20 is in the future",
        "line 3: column governor_install_date: 2026-04-01 is in the future",
        "line 3: column last_inspection_on: 2026-03-16 is in the future",
        "line 4: column commissioning_date: 2008-04-30 is before the install_date 2008-05-01",
    ]
    assert db.execute("SELECT count(*) AS n FROM equipment").fetchone()["n"] == 0
    # Today's dates are not in the future.
    path.write_text(f"{DATES}\nEL-1,elevator,Xuhui District,2026-03-15,2026-03-15,2026-03-15,2026-03-15\n")
    with clock.frozen(MIDNIGHT_IN_SHANGHAI):
        assert import_registry_csv(config, path, create_districts=True).startswith("1 equipment: 1 new")


def test_a_file_saved_by_chinese_excel_in_gb18030_is_read_and_the_summary_says_so(config, db, tmp_path):
    path = tmp_path / "设备.csv"
    path.write_bytes(("code,type,district,address,use_unit,on_demand_maintenance\n"
                      "EL-1,elevator,徐汇区,漕宝路8号,三号楼业主委员会,是\n"
                      "ES-1,escalator,徐汇区,漕宝路8号,三号楼业主委员会,否\n").encode("gbk"))
    summary = import_registry_csv(config, path, create_districts=True)
    assert summary == ("2 equipment: 2 new, 0 updated, 0 unchanged; 0 inspection record(s) added; new districts: "
                       "徐汇区; new use units: 三号楼业主委员会; the file was read as GB18030 (GBK), not UTF-8")
    rows = db.execute("""SELECT e.code, d.name AS district, e.address, e.use_unit, e.on_demand_maintenance
                         FROM equipment e JOIN districts d ON d.id = e.district_id ORDER BY e.code""").fetchall()
    assert rows == [
        {"code": "EL-1", "district": "徐汇区", "address": "漕宝路8号", "use_unit": "三号楼业主委员会",
         "on_demand_maintenance": True},
        {"code": "ES-1", "district": "徐汇区", "address": "漕宝路8号", "use_unit": "三号楼业主委员会",
         "on_demand_maintenance": False}]
    # The same file in UTF-8, with Excel's BOM, is the same registry: nothing to say about its encoding.
    path.write_text(path.read_bytes().decode("gbk"), encoding="utf-8-sig")
    assert import_registry_csv(config, path) == ("2 equipment: 0 new, 0 updated, 2 unchanged; "
                                                 "0 inspection record(s) added")


@pytest.mark.parametrize(("content", "problem"), [
    (b"code,type,district\nEL-1,elevator,\xff\xfe\n",
     "line 2: the file is neither UTF-8 nor GB18030 (GBK) text (byte 34); in Excel, save it as 'CSV UTF-8 (逗号分隔)'"),
    # With a BOM, the byte is still counted from the start of the file.
    (b"\xef\xbb\xbfcode,type,district\nEL-1,elevator,\xff\n",
     "line 2: the file is neither UTF-8 nor GB18030 (GBK) text (byte 37); in Excel, save it as 'CSV UTF-8 (逗号分隔)'"),
    ("code,type,district\n".encode("utf-16"),
     "line 1: the file is UTF-16 text (Excel's 'Unicode text'), not CSV; in Excel, save it as 'CSV UTF-8 (逗号分隔)'"),
])
def test_a_file_in_another_encoding_is_refused_with_how_to_save_it(tmp_path, content, problem):
    path = tmp_path / "registry.csv"
    path.write_bytes(content)
    with pytest.raises(RegistryError) as failure:
        parse_registry_csv(path, date(2026, 3, 15))
    assert failure.value.problems == [problem]


def test_a_nul_character_in_a_text_cell_is_refused_with_its_cell_named(config, db, tmp_path):
    path = write(tmp_path, GOOD[0].replace("1 Tianyaoqiao Rd", "1 Tianyaoqiao\x00 Rd"))
    with pytest.raises(RegistryError) as failure:
        import_registry_csv(config, path, create_districts=True)
    assert failure.value.problems == ["line 2: column address: contains a NUL character"]
    assert db.execute("SELECT count(*) AS n FROM equipment").fetchone()["n"] == 0
