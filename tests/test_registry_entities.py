"""Registry CSV for every entity (equipment, firms, districts, use units, records): each bad row reported with
line, column and reason, nothing imported on error, re-import changes nothing, export re-imports unchanged."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from semon import clock
from semon.registry.csvfiles import RegistryError
from semon.registry.exporter import export_csv
from semon.registry.fields import DISTRICTS, EQUIPMENT_COLUMNS, FIRMS, USE_UNITS
from semon.registry.importer import import_entity_csv, import_records_csv, import_registry_csv, parse_registry_csv
from web.db import FROZEN_NOW

EQUIPMENT = [
    ",".join(EQUIPMENT_COLUMNS),
    "EL-0001,elevator,Xuhui District,1 Tianyaoqiao Rd,Block 3 Owners,Shenghui Lifts,021-5555,2008-05-01,in_use,"
    "1.75,1000,18,,,2026-03-01,2008-06-01,traction,Otis,GeN2,LiftEye,LE-3,,yes,30,2019-04-01",
    "PV-0001,pressure_vessel,Minhang District,9 Hongqiao Rd,Dye Works,,,2019-10-10,,,,,1.6,,2025-01-10,,"
    "pressure_vessel,Harbin Boiler,AQ-2,,,2,,,",
    'BL-0001,boiler,Minhang District,"9 Hongqiao Rd, boiler house",Dye Works,Heat Safe Co,021-6666,2019-10-10,'
    "suspended,,,,1.25,4.5,,,hot_water,,,,,,false,,",
]
FIRMS_CSV = [
    "name,duty_phone,email,contact_person,contact_phone,address,licence_no",
    "Shenghui Lifts,021-5555,duty@shenghui.example,Wang Lei,13800138000,8 Caobao Rd,TS3310001",
    'Heat Safe Co,021-6666,,Zhao Min,,"1 Jinke Rd, Pudong",',
]
DISTRICTS_CSV = ["name,admin_code,authority,phone,email",
                 "Xuhui District,310104,Xuhui Market Supervision Bureau,021-64870000,",
                 "Minhang District,310112,,,"]
USE_UNITS_CSV = ["name,address,contact_person,contact_phone,credit_code,email",
                 "Block 3 Owners,1 Tianyaoqiao Rd,Li Na,13900139000,91310104MA1FL0XX1X,safety@block3.example",
                 "Dye Works,9 Hongqiao Rd,Chen Jie,021-7777,,"]
RECORDS_CSV = ["code,check,date,result,organisation,person,report_number,defects,rectify_by",
               "EL-0001,maintenance,2026-11-10,pass,Shenghui Lifts,Sun Hao,WB-1,,",
               "EL-0001,periodic_inspection,2025-03-01,pass_after_rectification,Institute,Liu Yang,DJ-1,door gap,",
               "PV-0001,safety_valve_calibration,2026-01-05,pass,Institute,Liu Yang,AF-1,,",
               "PV-0001,periodic_inspection,2026-11-02,fail,Institute,Liu Yang,DJ-2,shell corroded,2026-12-15"]


def write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def count(db, table: str) -> int:
    return db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]


# The records above were done by 20 November 2026 (Shanghai time).
RECORDS_DONE = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def import_all(config, tmp_path: Path) -> list[str]:
    with clock.frozen(RECORDS_DONE):
        return [import_entity_csv(config, DISTRICTS, write(tmp_path, "districts.csv", DISTRICTS_CSV)),
                import_entity_csv(config, FIRMS, write(tmp_path, "firms.csv", FIRMS_CSV)),
                import_entity_csv(config, USE_UNITS, write(tmp_path, "use_units.csv", USE_UNITS_CSV)),
                import_registry_csv(config, write(tmp_path, "equipment.csv", EQUIPMENT)),
                import_records_csv(config, write(tmp_path, "records.csv", RECORDS_CSV))]


def test_every_entity_imports_and_reimporting_changes_nothing(config, db, tmp_path):
    first = import_all(config, tmp_path)
    assert first[:4] == ["2 districts: 2 new, 0 updated, 0 unchanged", "2 firms: 2 new, 0 updated, 0 unchanged",
                         "2 use units: 2 new, 0 updated, 0 unchanged",
                         "3 equipment: 3 new, 0 updated, 0 unchanged; 2 inspection record(s) added"]
    row = db.execute("""SELECT e.subtype, e.manufacturer, e.monitor_vendor, e.on_demand_maintenance,
                               e.maintenance_cycle_days, e.governor_install_date, u.contact_person, e.use_unit,
                               f.phone, f.licence_no
                          FROM equipment e JOIN use_units u ON u.id = e.use_unit_id
                          JOIN maintenance_firms f ON f.id = e.firm_id WHERE e.code = 'EL-0001'""").fetchone()
    assert row == {"subtype": "traction", "manufacturer": "Otis", "monitor_vendor": "LiftEye",
                   "on_demand_maintenance": True, "maintenance_cycle_days": 30,
                   "governor_install_date": date(2019, 4, 1), "contact_person": "Li Na", "use_unit": "Block 3 Owners",
                   "phone": "021-5555", "licence_no": "TS3310001"}
    assert db.execute("SELECT safety_grade FROM equipment WHERE code = 'PV-0001'").fetchone()["safety_grade"] == 2
    before = {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
              for t in ("districts", "maintenance_firms", "use_units", "equipment", "inspections")}
    again = import_all(config, tmp_path)
    assert again[:3] == [s.replace("2 new", "0 new").replace("0 unchanged", "2 unchanged") for s in first[:3]]
    assert again[3] == "3 equipment: 0 new, 0 updated, 3 unchanged; 0 inspection record(s) added"
    assert again[4].endswith("0 new, 0 updated, 4 unchanged")
    assert {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in before} == before


def test_export_then_import_round_trips(config, db, tmp_path):
    import_all(config, tmp_path)
    exported = {}
    for what in ("equipment", "records", "firms", "districts", "use_units"):
        out = io.StringIO()
        export_csv(config, what, out)
        exported[what] = out.getvalue()
    # Each starts with the BOM, so that Excel reads the Chinese names as UTF-8.
    assert {what: text[0] for what, text in exported.items()} == dict.fromkeys(exported, "\ufeff")
    exported = {what: text[1:] for what, text in exported.items()}
    equipment = exported["equipment"].splitlines()
    assert equipment[0] == ",".join(EQUIPMENT_COLUMNS)
    assert equipment[1] == ('BL-0001,boiler,Minhang District,"9 Hongqiao Rd, boiler house",Dye Works,Heat Safe Co,'
                            "021-6666,2019-10-10,suspended,,,,1.25,4.5,,,hot_water,,,,,,false,,")
    records = exported["records"].splitlines()
    assert records[0] == RECORDS_CSV[0] and set(RECORDS_CSV[1:]) < set(records)
    assert exported["firms"].splitlines()[1] == 'Heat Safe Co,021-6666,,Zhao Min,,"1 Jinke Rd, Pudong",'
    assert exported["use_units"].splitlines() == USE_UNITS_CSV
    before = db.execute("SELECT * FROM equipment ORDER BY code").fetchall()
    paths = {what: write(tmp_path, f"export-{what}.csv", ["\ufeff" + text]) for what, text in exported.items()}
    assert import_registry_csv(config, paths["equipment"]).startswith("3 equipment: 0 new, 0 updated, 3 unchanged")
    with clock.frozen(RECORDS_DONE):
        assert import_records_csv(config, paths["records"]).endswith("0 new, 0 updated, 6 unchanged")
    for entity in (FIRMS, DISTRICTS, USE_UNITS):
        assert import_entity_csv(config, entity, paths[entity.name]).endswith("0 new, 0 updated, 2 unchanged")
    assert db.execute("SELECT * FROM equipment ORDER BY code").fetchall() == before


def test_columns_left_out_of_a_file_are_left_as_they_are(config, db, tmp_path):
    import_all(config, tmp_path)
    # A first-version file (no subtype, maker, monitor or compliance columns) still imports, changing nothing
    # it does not mention.
    old = write(tmp_path, "old.csv", ["code,type,district,address,use_unit,maintenance_firm,status",
                                      "EL-0001,elevator,Xuhui District,2 Tianyaoqiao Rd,Block 3 Owners,"
                                      "Shenghui Lifts,in_use"])
    assert import_registry_csv(config, old).startswith("1 equipment: 0 new, 1 updated")
    row = db.execute("SELECT address, subtype, floors, on_demand_maintenance FROM equipment "
                     "WHERE code = 'EL-0001'").fetchone()
    assert row == {"address": "2 Tianyaoqiao Rd", "subtype": "traction", "floors": 18, "on_demand_maintenance": True}
    firms = write(tmp_path, "firms-phone.csv", ["name,duty_phone", "Heat Safe Co,400-820-1234"])
    assert import_entity_csv(config, FIRMS, firms) == "1 firms: 0 new, 1 updated, 0 unchanged"
    firm = db.execute("SELECT phone, contact_person FROM maintenance_firms WHERE name = 'Heat Safe Co'").fetchone()
    assert firm == {"phone": "400-820-1234", "contact_person": "Zhao Min"}


def test_bad_equipment_rows_are_each_reported_and_nothing_is_imported(config, db, tmp_path):
    path = write(tmp_path, "equipment.csv", [
        EQUIPMENT[0], EQUIPMENT[1],
        "EL-0002,elevator,Xuhui District,,,,,,,,,,,,,,steam,,,,,,maybe,0,",
        "PV-0002,pressure_vessel,Minhang District,,,,,,,,,,,,,,,,,,,7,,,",
        "BL-0002,boiler,Minhang District,,,,call me,,,,,,,,,,,,,,,2,,,2020-01-01",
        "ES-0002,escalator,Xuhui District,,,,,,,,,,,,,,escalator,,,,,,,,",
    ])
    with pytest.raises(RegistryError) as failure:
        import_registry_csv(config, path, create_districts=True)
    assert str(failure.value) == "7 problems in 3 rows"
    assert failure.value.problems == [
        "line 3: column on_demand_maintenance: 'maybe' is not true or false (or yes/no, 是/否, 1/0)",
        "line 3: column maintenance_cycle_days: '0' must be greater than 0",
        "line 3: column subtype: 'steam' is not a subtype of elevator (one of traction, hydraulic)",
        "line 4: column safety_grade: '7' is not a safety grade (1 to 5)",
        "line 5: column maintenance_firm_phone: 'call me' is not a phone number (digits, spaces, + ( ) - / , # *)",
        "line 5: column safety_grade: applies only to pressure_vessel, not to boiler",
        "line 5: column governor_install_date: applies only to elevator, not to boiler",
    ]
    assert count(db, "equipment") == count(db, "districts") == count(db, "use_units") == 0


def test_equipment_fields_that_do_not_fit_the_type_are_reported(tmp_path):
    path = write(tmp_path, "equipment.csv", [
        EQUIPMENT[0],
        "EL-0002,elevator,Xuhui District,,,,,,,,,,,,,,steam,,,,,,,,",
        "BL-0002,boiler,Minhang District,,,,,,,,,,,,,,,,,,,2,true,,2020-01-01",
        # Ratings of another type: a lift's speed, load and floors on a boiler, a boiler's on a lift and a vessel.
        "BL-0003,boiler,Minhang District,,,,,,,1.75,1000,18,1.25,4,,,,,,,,,,,",
        "EL-0003,elevator,Xuhui District,,,,,,,1.75,1000,18,1.6,4,,,,,,,,,,,",
        "ES-0003,escalator,Xuhui District,,,,,,,0.5,,3,,,,,,,,,,,,,",
        "PV-0003,pressure_vessel,Minhang District,,,,,,,,,,1.6,10,,,,,,,,,,,",
    ])
    with pytest.raises(RegistryError) as failure:
        parse_registry_csv(path, date(2026, 3, 15))
    assert failure.value.problems == [
        "line 2: column subtype: 'steam' is not a subtype of elevator (one of traction, hydraulic)",
        "line 3: column safety_grade: applies only to pressure_vessel, not to boiler",
        "line 3: column on_demand_maintenance: applies only to elevator, escalator, not to boiler",
        "line 3: column governor_install_date: applies only to elevator, not to boiler",
        "line 4: column rated_speed_mps: applies only to elevator, escalator, not to boiler",
        "line 4: column rated_load_kg: applies only to elevator, not to boiler",
        "line 4: column floors: applies only to elevator, not to boiler",
        "line 5: column rated_pressure_mpa: applies only to boiler, pressure_vessel, not to elevator",
        "line 5: column rated_capacity_tph: applies only to boiler, not to elevator",
        "line 6: column floors: applies only to elevator, not to escalator",
        "line 7: column rated_capacity_tph: applies only to boiler, not to pressure_vessel",
    ]


def test_the_json_api_refuses_what_the_csv_import_refuses(app, client, config, db, tmp_path):
    db.execute("INSERT INTO districts (name) VALUES ('Minhang District'), ('Xuhui District')")
    # 00:30 on 15 March in Shanghai, still the 14th in UTC: the users' day decides what is in the future.
    at = datetime(2026, 3, 14, 16, 30, tzinfo=UTC)
    app.config[FROZEN_NOW] = at
    # The same bad boiler through both doors gives the same reasons.
    boiler = {"code": "BL-9", "type": "boiler", "district": "Minhang District", "install_date": "2026-03-16",
              "rated_speed_mps": "1.75", "rated_load_kg": "1000", "floors": "18", "rated_pressure_mpa": "1.25"}
    api = client.post("/api/registry/equipment", json=boiler)
    assert api.status_code == 400
    reasons = [(p["field"], p["reason"]) for p in api.get_json()["error"]["problems"]]
    assert reasons == [("rated_speed_mps", "applies only to elevator, escalator, not to boiler"),
                       ("rated_load_kg", "applies only to elevator, not to boiler"),
                       ("floors", "applies only to elevator, not to boiler"),
                       ("install_date", "2026-03-16 is in the future")]
    path = write(tmp_path, "boiler.csv", [",".join(boiler), ",".join(boiler.values())])
    with clock.frozen(at), pytest.raises(RegistryError) as failure:
        import_registry_csv(config, path)
    assert failure.value.problems == [f"line 2: column {field}: {reason}" for field, reason in reasons]
    # A PATCH must leave the whole equipment fitting its type and its own dates.
    lift = {"code": "EL-9", "type": "elevator", "district": "Xuhui District", "install_date": "2008-05-01",
            "floors": 18}
    assert client.post("/api/registry/equipment", json=lift).status_code == 201
    for change, problems in (
            ({"type": "boiler"}, [{"field": "floors", "reason": "applies only to elevator, not to boiler"}]),
            ({"commissioning_date": "2008-04-30"},
             [{"field": "commissioning_date", "reason": "2008-04-30 is before the install_date 2008-05-01"}])):
        refused = client.patch("/api/registry/equipment/EL-9", json=change)
        assert (refused.status_code, refused.get_json()["error"]["problems"]) == (400, problems)
    assert count(db, "equipment") == 1


@pytest.mark.parametrize(("entity", "lines", "problems"), [
    (FIRMS, ["name,duty_phone,email", "Good Co,021-1,a@b.cn", ",021-2,", "Bad Co,phone?,nobody", "Good Co,,"],
     ["line 3: column name: is required",
      "line 4: column duty_phone: 'phone?' is not a phone number (digits, spaces, + ( ) - / , # *)",
      "line 4: column email: 'nobody' is not an e-mail address",
      "line 5: column name: 'Good Co' already on line 2"]),
    (DISTRICTS, ["name,admin_code", "Xuhui District,310104", "Minhang District,3101", "Pudong,31011X,extra"],
     ["line 3: column admin_code: '3101' is not a six-digit division code",
      "line 4: expected 2 columns, found 3"]),
    (USE_UNITS, ["name,credit_code,contact_phone", "Dye Works,91310104MA1FL0XX1x,", "Mall,," + "9" * 41],
     ["line 2: column credit_code: '91310104MA1FL0XX1x' is not a unified social credit code "
      "(18 digits or capitals)",
      f"line 3: column contact_phone: '{'9' * 41}' is not a phone number (digits, spaces, + ( ) - / , # *)"]),
    (USE_UNITS, ["name,colour", "Dye Works,red"],
     ["line 1: unknown column 'colour' (expected: name,address,contact_person,contact_phone,credit_code,email)"]),
    (USE_UNITS, ["name,email", "Dye Works,works at example.com"],
     ["line 2: column email: 'works at example.com' is not an e-mail address"]),
    (FIRMS, ["duty_phone", "021-1"],
     ["line 1: missing column 'name' (expected: name,duty_phone,email,contact_person,contact_phone,address,"
      "licence_no)"]),
])
def test_bad_entity_rows_are_each_reported_and_nothing_is_imported(config, db, tmp_path, entity, lines, problems):
    with pytest.raises(RegistryError) as failure:
        import_entity_csv(config, entity, write(tmp_path, f"{entity.name}.csv", lines))
    assert failure.value.problems == problems
    assert count(db, entity.table) == 0


def test_the_registry_command_imports_exports_and_reports_bad_rows(db_url, db, tmp_path):
    def semon(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "semon.cli", "registry", *args], capture_output=True,
                              text=True, timeout=60, env={**os.environ, "SEMON_DATABASE_URL": db_url})

    good = semon("import", "use-units", str(write(tmp_path, "u.csv", USE_UNITS_CSV)))
    assert (good.returncode, good.stdout) == (0, "2 use units: 2 new, 0 updated, 0 unchanged\n")
    exported = semon("export", "use-units")
    assert exported.returncode == 0 and exported.stdout.splitlines()[0] == "\ufeff" + USE_UNITS_CSV[0]
    out = tmp_path / "out.csv"
    assert semon("export", "use-units", str(out)).stderr == f"wrote 2 use-units row(s) to {out}\n"
    assert out.read_bytes() == exported.stdout.encode("utf-8") and out.read_bytes().startswith(b"\xef\xbb\xbf")
    bad = write(tmp_path, "d.csv", ["name,admin_code", "X,1"])
    failed = semon("import", "districts", str(bad))
    assert failed.returncode == 1
    assert failed.stderr.splitlines() == [f"{bad}:line 2: column admin_code: '1' is not a six-digit division code",
                                          "Error: 1 problem in 1 row; nothing was imported"]
    assert count(db, "districts") == 0
    misplaced = semon("import", "districts", str(bad), "--create-districts")
    assert (misplaced.returncode, misplaced.stderr.splitlines()[-1]) == (
        2, "Error: --create-districts applies only to the equipment file")
