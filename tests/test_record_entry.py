"""Recording a maintenance visit or an inspection result from the equipment's page and the API: the records CSV's
rules and tables (docs/registry-csv.md), a bad record refused with a readable message and nothing written, and the
compliance scan resolving the overdue alert the record answers (docs/alert-handling.md)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from models.compliance import scan_compliance
from semon.clock import today
from tests.conftest import add_user, register_equipment, signed_in

FIRM, OTHER_FIRM = "Shenghui Elevator Service", "Other Lift Co"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def overdue(db) -> int:
    """EL-1, maintained 60 days ago and inspected 400 days ago: both overdue, each with its alert after a scan."""
    eid = register_equipment(db, "EL-1", use_unit="Block 1")
    register_equipment(db, "EL-9", firm=OTHER_FIRM)
    day = today(db)
    db.execute("INSERT INTO maintenance_records (equipment_id, performed_on) VALUES (%s, %s)",
               (eid, day - timedelta(days=60)))
    db.execute("INSERT INTO inspections (equipment_id, kind, performed_on) VALUES (%s, 'periodic_inspection', %s)",
               (eid, day - timedelta(days=400)))
    add_user(db, "tech", "firm", firm=FIRM)
    add_user(db, "rival", "firm", firm=OTHER_FIRM)
    add_user(db, "inspector", "inspector", districts=("Xuhui District",))
    add_user(db, "owner", "use_unit", use_unit="Block 1")
    scan(db)
    assert open_kinds(db) == ["overdue:maintenance", "overdue:periodic_inspection"]
    return eid


def scan(db) -> None:
    scan_compliance(db, today(db), datetime.now(UTC))


def open_kinds(db) -> list[str]:
    return [r["kind"] for r in db.execute("SELECT kind FROM alerts WHERE state <> 'resolved' AND kind LIKE 'overdue:%'"
                                          " ORDER BY kind")]


def written(db) -> tuple[int, int, int]:
    """(maintenance records, inspections, audit entries)."""
    row = db.execute("SELECT (SELECT count(*) FROM maintenance_records) AS m, (SELECT count(*) FROM inspections) AS i,"
                     " (SELECT count(*) FROM audit_log) AS a").fetchone()
    return row["m"], row["i"], row["a"]


def test_a_maintenance_visit_recorded_through_the_api_resolves_the_overdue_alert_at_the_next_scan(app, db, overdue):
    day = today(db).isoformat()

    response = signed_in(app, "tech").post("/api/equipment/EL-1/records", json={
        "check": "maintenance", "date": day, "result": "pass", "person": "张师傅"})

    assert response.status_code == 201
    assert response.get_json() == {"code": "EL-1", "check": "maintenance", "date": day, "result": "pass",
                                   "organisation": FIRM, "person": "张师傅", "report_number": None, "defects": None,
                                   "rectify_by": None, "outcome": "new"}
    visit = db.execute("SELECT m.kind, m.performed_on::text AS day, f.name AS firm FROM maintenance_records m"
                       " LEFT JOIN maintenance_firms f ON f.id = m.firm_id ORDER BY m.id DESC LIMIT 1").fetchone()
    assert (visit["kind"], visit["day"], visit["firm"]) == ("routine", day, FIRM)
    audit = db.execute("SELECT actor, action, target FROM audit_log").fetchall()
    assert [(a["actor"], a["action"], a["target"]) for a in audit] == [
        ("tech", "records.add", f"maintenance of equipment EL-1 on {day}")]

    scan(db)

    assert open_kinds(db) == ["overdue:periodic_inspection"]
    resolved = db.execute("SELECT s.actor FROM alert_steps s JOIN alerts a ON a.id = s.alert_id"
                          " WHERE a.kind = 'overdue:maintenance' AND s.step = 'resolved'").fetchall()
    assert [r["actor"] for r in resolved] == ["semon"]


def test_an_inspection_recorded_through_the_page_form_resolves_the_overdue_inspection(app, db, overdue):
    tech = signed_in(app, "tech")
    page = tech.get("/equipment/EL-1").get_data(as_text=True)
    assert "Record a maintenance visit or an inspection" in page

    response = tech.post("/equipment/EL-1/records", data={
        "csrf_token": _CSRF.search(page).group(1), "check": "periodic_inspection", "date": today(db).isoformat(),
        "result": "pass", "organisation": "上海市特种设备监督检验技术研究院", "report_number": "SH-2026-0001",
        "person": "", "defects": "", "rectify_by": ""})

    assert (response.status_code, response.headers["Location"]) == (302, "/equipment/EL-1#records")
    stored = db.execute("SELECT organisation, report_no FROM inspections ORDER BY id DESC LIMIT 1").fetchone()
    assert (stored["organisation"], stored["report_no"]) == ("上海市特种设备监督检验技术研究院", "SH-2026-0001")
    scan(db)
    assert open_kinds(db) == ["overdue:maintenance"]


def test_a_bad_record_through_the_api_is_refused_with_every_problem_and_nothing_is_written(app, db, overdue):
    before = written(db)
    tomorrow = (today(db) + timedelta(days=1)).isoformat()

    response = signed_in(app, "tech").post("/api/equipment/EL-1/records", json={
        "check": "maintenance", "date": tomorrow, "result": "fail"})

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["message"] == f"date: {tomorrow} is in the future"
    assert error["problems"] == [{"field": "date", "reason": f"{tomorrow} is in the future"},
                                 {"field": "defects", "reason": "is required when the result is fail"}]
    assert written(db) == before


@pytest.mark.parametrize(("body", "message"), [
    ({"check": "water_quality_test", "date": "2026-01-05", "result": "pass"},
     "check: water_quality_test does not apply to elevator EL-1 (only to boiler)"),
    ({"check": "yearly", "date": "2026-01-05", "result": "pass"},
     "check: 'yearly' is not one of periodic_inspection, internal_inspection, governor_calibration, rescue_drill,"
     " water_quality_test, safety_valve_calibration, pressure_gauge_verification, maintenance"),
    ({"check": "maintenance", "date": "2026-02-30", "result": "pass"}, "date: '2026-02-30' is not a date (YYYY-MM-DD)"),
    ({"check": "maintenance", "date": "2026-01-05", "result": "pass", "code": "EL-9"},
     "code: unknown field (expected: check, date, result, organisation, person, report_number, defects, rectify_by)"),
])
def test_the_api_refuses_what_the_records_csv_refuses(app, db, overdue, body, message):
    before = written(db)

    response = signed_in(app, "tech").post("/api/equipment/EL-1/records", json=body)

    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == message
    assert written(db) == before


def test_a_bad_record_through_the_form_shows_why_on_the_page_and_writes_nothing(app, db, overdue):
    tech = signed_in(app, "tech")
    token = _CSRF.search(tech.get("/equipment/EL-1").get_data(as_text=True)).group(1)
    before = written(db)

    response = tech.post("/equipment/EL-1/records", data={
        "csrf_token": token, "check": "periodic_inspection", "date": today(db).isoformat(), "result": "pass",
        "rectify_by": today(db).isoformat()})

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Not recorded (未记录)" in page and "rectify_by: applies only when the result is fail, not pass" in page
    assert written(db) == before


@pytest.mark.parametrize(("who", "status"), [("rival", 404), ("inspector", 403), ("owner", 403)])
def test_only_the_equipments_firm_records_for_it(app, db, overdue, who, status):
    before = written(db)
    client = signed_in(app, who)

    response = client.post("/api/equipment/EL-1/records", json={"check": "maintenance",
                                                                 "date": today(db).isoformat(), "result": "pass"})

    assert response.status_code == status
    assert written(db) == before
    assert signed_in(app, "tech").post("/equipment/EL-1/records", data={"check": "maintenance"}).status_code == 400
    assert written(db) == before  # a form without its CSRF token
