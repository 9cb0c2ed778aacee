"""One equipment through every case that moves a due date: the equipment page, /api/equipment/<code>, the
planning list (JSON and CSV) and the open overdue alerts all give the compliance rules' due date."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser

import pytest

from models.compliance import add_months, rules_from_config, scan_compliance, sync_rules
from semon.clock import today
from tests.conftest import register_equipment

ALL_STATUSES = "overdue,due_soon,ok,never_recorded"


class ChecksTable(HTMLParser):
    """The equipment page's "checks owed" table: {check: (last, due, status text)}."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self._check: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "data-check" in attrs:
            self._check = attrs["data-check"]
            self.rows[self._check] = []
        elif tag == "td" and self._check is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None and self._check is not None:
            self.rows[self._check].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr":
            self._check = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def due_dates_seen(client, db, code: str, check: str) -> dict[str, str | None]:
    """The due date of one check as each view gives it (ISO dates; None for no due date or no alert)."""
    page = ChecksTable()
    page.feed(client.get(f"/equipment/{code}").get_data(as_text=True))
    api = client.get(f"/api/equipment/{code}").get_json()
    [from_api] = [c for c in api["checks"] if c["check"] == check]
    listing = client.get(f"/api/compliance/due?status={ALL_STATUSES}&limit=1000").get_json()["items"]
    [from_list] = [r for r in listing if (r["code"], r["check"]) == (code, check)]
    text = client.get(f"/api/compliance/due.csv?status={ALL_STATUSES}").get_data(as_text=True).lstrip("\ufeff")
    [from_csv] = [r for r in csv.DictReader(io.StringIO(text)) if (r["code"], r["check"]) == (code, check)]
    scan_compliance(db, today(db), datetime.now(UTC))
    alert = db.execute("SELECT a.detail FROM alerts a JOIN equipment e ON e.id = a.equipment_id WHERE e.code = %s"
                       " AND a.kind = %s AND a.state <> 'resolved'", (code, f"overdue:{check}")).fetchone()
    return {"page": page.rows[check][2] or None, "api": from_api["due_on"], "list": from_list["due"],
            "csv": from_csv["due"] or None, "status": from_api["status"],
            "alert": alert["detail"]["due"] if alert else None}


def record(db, eid: int, check: str, on: date, result: str = "pass", rectify_by: date | None = None) -> None:
    if check == "maintenance":
        db.execute("INSERT INTO maintenance_records (equipment_id, performed_on, result, rectify_by, defects)"
                   " VALUES (%s, %s, %s, %s, 'noted')", (eid, on, result, rectify_by))
    else:
        db.execute("INSERT INTO inspections (equipment_id, kind, performed_on, result, rectify_by, defects)"
                   " VALUES (%s, %s, %s, %s, %s, 'noted')", (eid, check, on, result, rectify_by))


@pytest.fixture
def day(db) -> date:
    sync_rules(db, rules_from_config())
    return today(db)


def assert_agree(client, db, code: str, check: str, expected: date) -> dict[str, str | None]:
    seen = due_dates_seen(client, db, code, check)
    iso = expected.isoformat()
    assert (seen["page"], seen["api"], seen["list"], seen["csv"]) == (iso, iso, iso, iso), seen
    # An overdue check has its alert, naming the same due date; a check in date has none.
    assert seen["alert"] == (iso if expected < today(db) else None), seen
    assert (seen["status"] == "overdue") == (expected < today(db)), seen
    return seen


def test_every_view_gives_the_rules_due_date_of_a_periodic_inspection(client, db, day):
    eid = register_equipment(db, "EL-AGREE", install_date=day - timedelta(days=3000))
    check = "periodic_inspection"
    passed = day - timedelta(days=200)
    record(db, eid, check, passed)
    assert_agree(client, db, "EL-AGREE", check, add_months(passed, 12))
    failed = day - timedelta(days=40)  # failed, no deadline given: 30 days to rectify, overdue since 10 days
    record(db, eid, check, failed, "fail")
    assert_agree(client, db, "EL-AGREE", check, failed + timedelta(days=30))
    failed_again = day - timedelta(days=5)  # a deadline of its own, later than the default
    record(db, eid, check, failed_again, "fail", rectify_by=day + timedelta(days=50))
    assert_agree(client, db, "EL-AGREE", check, day + timedelta(days=50))
    fixed = day - timedelta(days=2)  # passed after rectification: a whole interval again
    record(db, eid, check, fixed, "pass_after_rectification")
    assert_agree(client, db, "EL-AGREE", check, add_months(fixed, 12))


def test_every_view_gives_the_rules_due_date_of_an_old_governor(client, db, day):
    # Installed 17 years ago, older than 15 at its last calibration: calibrated every 12 months, not 24.
    eid = register_equipment(db, "EL-GOV", install_date=add_months(day, -17 * 12))
    calibrated = day - timedelta(days=380)
    record(db, eid, "governor_calibration", calibrated)
    assert_agree(client, db, "EL-GOV", "governor_calibration", add_months(calibrated, 12))


def test_every_view_gives_the_rules_due_date_of_a_grade_3_pressure_vessel(client, db, day):
    eid = register_equipment(db, "PV-AGREE", "pressure_vessel", install_date=day - timedelta(days=5000),
                             safety_grade=3)
    inspected = day - timedelta(days=1200)
    record(db, eid, "periodic_inspection", inspected)
    assert_agree(client, db, "PV-AGREE", "periodic_inspection", add_months(inspected, 36))


def test_every_view_gives_the_rules_due_date_of_on_demand_maintenance_with_the_monitor_offline(client, db, day):
    eid = register_equipment(db, "EL-OD", install_date=day - timedelta(days=3000), on_demand_maintenance=True,
                             maintenance_cycle_days=30)
    visited = day - timedelta(days=20)
    record(db, eid, "maintenance", visited)
    db.execute("INSERT INTO equipment_state (equipment_id, status, last_seen) VALUES (%s, 'online', now())", (eid,))
    assert_agree(client, db, "EL-OD", "maintenance", visited + timedelta(days=30))
    # The monitor goes offline: the firm's approved cycle no longer applies, the 15 days do.
    db.execute("UPDATE equipment_state SET status = 'offline' WHERE equipment_id = %s", (eid,))
    assert_agree(client, db, "EL-OD", "maintenance", visited + timedelta(days=15))
