"""Maintenance windows (silences, docs/alert-handling.md): alerts raised in one are recorded but not notified, critical
ones excepted; a window ends by itself at its end and early when cancelled; who may declare one, through the page and
the API."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from alerts.store import raise_alert, resolve_alert
from tests.conftest import add_user, anonymous, register_equipment, signed_in

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
FIRM, OTHER_FIRM = "Shenghui Elevator Service", "Other Lift Co"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SOON = (datetime.now(UTC) + timedelta(hours=2)).isoformat()


def silence(db, *, equipment_id: int | None = None, use_unit_id: int | None = None, starts: datetime = NOW,
            ends: datetime = NOW + timedelta(hours=2)) -> int:
    return db.execute("INSERT INTO silences (equipment_id, use_unit_id, reason, starts_at, ends_at)"
                      " VALUES (%s, %s, 'lift upgrade', %s, %s) RETURNING id",
                      (equipment_id, use_unit_id, starts, ends)).fetchone()["id"]


def fault(db, eid: int, at: datetime, kind: str = "door_open_while_moving", severity: str = "high") -> int:
    return raise_alert(db, equipment_id=eid, kind=kind, source="device", severity=severity, message=kind,
                       seen_at=at).alert_id


def told(db, alert_id: int) -> list[str]:
    """The events queued for the firm about the alert, in order."""
    return [r["event"] for r in db.execute(
        "SELECT event FROM notifications WHERE alert_id = %s AND recipient = 'firm' ORDER BY id", (alert_id,))]


def test_an_alert_raised_in_a_window_is_recorded_with_it_and_not_notified(db):
    eid = register_equipment(db, "EL-1")
    window = silence(db, equipment_id=eid)

    alert_id = fault(db, eid, NOW + timedelta(minutes=30))
    resolve_alert(db, equipment_id=eid, kind="door_open_while_moving", resolved_at=NOW + timedelta(minutes=40))

    assert db.execute("SELECT silence_id FROM alerts WHERE id = %s", (alert_id,)).fetchone()["silence_id"] == window
    assert told(db, alert_id) == []
    assert [r["step"] for r in db.execute("SELECT step FROM alert_steps WHERE alert_id = %s ORDER BY at, id",
                                          (alert_id,))] == ["raised", "silenced", "resolved"]


def test_a_window_ends_by_itself_at_its_end(db):
    eid = register_equipment(db, "EL-1")
    silence(db, equipment_id=eid, ends=NOW + timedelta(hours=1))

    before_end = fault(db, eid, NOW + timedelta(minutes=59), kind="overspeed")
    after_end = fault(db, eid, NOW + timedelta(minutes=61))
    fault(db, eid, NOW + timedelta(minutes=62), kind="overspeed")  # the one raised inside repeats after it

    assert told(db, before_end) == ["repeated"]  # held back while the window stood, told once it was over
    assert told(db, after_end) == ["raised"]
    assert db.execute("SELECT silence_id FROM alerts WHERE id = %s", (after_end,)).fetchone()["silence_id"] is None


def test_a_window_for_a_use_units_site_covers_each_of_its_equipment_and_no_other(db):
    first = register_equipment(db, "EL-1", use_unit="Block 1")
    second = register_equipment(db, "EL-2", use_unit="Block 1", firm=OTHER_FIRM)
    elsewhere = register_equipment(db, "EL-3", use_unit="Block 2")
    unit = db.execute("SELECT id FROM use_units WHERE name = 'Block 1'").fetchone()["id"]
    silence(db, use_unit_id=unit)

    alerts = [fault(db, eid, NOW + timedelta(minutes=5)) for eid in (first, second, elsewhere)]

    assert [told(db, a) for a in alerts] == [[], [], ["raised"]]


def test_a_critical_alert_in_a_window_is_notified_all_the_same(db):
    eid = register_equipment(db, "EL-1")
    silence(db, equipment_id=eid)

    trapped = fault(db, eid, NOW + timedelta(minutes=5), kind="entrapment", severity="critical")

    assert told(db, trapped) == ["raised"]
    assert db.execute("SELECT silence_id FROM alerts WHERE id = %s", (trapped,)).fetchone()["silence_id"] is None


def test_a_window_not_yet_begun_holds_nothing_back(db):
    eid = register_equipment(db, "EL-1")
    silence(db, equipment_id=eid, starts=NOW + timedelta(hours=1), ends=NOW + timedelta(hours=3))

    assert told(db, fault(db, eid, NOW + timedelta(minutes=5))) == ["raised"]


# --- declaring and cancelling: the page and the API ----------------------------------------------------------------

@pytest.fixture
def parties(db) -> dict[str, int]:
    ids = {"EL-1": register_equipment(db, "EL-1", use_unit="Block 1"),
           "EL-2": register_equipment(db, "EL-2", use_unit="Block 2"),
           "EL-9": register_equipment(db, "EL-9", firm=OTHER_FIRM, use_unit="Block 2")}
    add_user(db, "tech", "firm", firm=FIRM)
    add_user(db, "inspector", "inspector", districts=("Xuhui District",))
    add_user(db, "owner", "use_unit", use_unit="Block 1")
    return ids


def in_hours(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def test_a_firm_user_declares_a_window_for_its_equipment_that_holds_back_its_alerts(app, db, parties):
    tech = signed_in(app, "tech")

    response = tech.post("/api/silences", json={"equipment": "EL-1", "reason": "更换曳引机 traction machine",
                                                "ends_at": in_hours(2)})

    assert response.status_code == 201
    body = response.get_json()
    assert (body["equipment_code"], body["state"], body["created_by"], body["alerts_held"]) == (
        "EL-1", "active", "tech", 0)
    alert_id = fault(db, parties["EL-1"], datetime.now(UTC))
    assert told(db, alert_id) == []
    listed = tech.get("/api/silences").get_json()["items"]
    assert [(s["id"], s["alerts_held"]) for s in listed] == [(body["id"], 1)]
    audit = db.execute("SELECT actor, action, target FROM audit_log").fetchall()
    assert [(a["actor"], a["action"], a["target"]) for a in audit] == [
        ("tech", "silence.declare", f"silence {body['id']} for equipment EL-1")]


def test_cancelling_a_window_lets_the_next_alerts_through(app, db, parties):
    tech = signed_in(app, "tech")
    window = tech.post("/api/silences", json={"equipment": "EL-1", "reason": "upgrade", "ends_at": in_hours(2)}
                       ).get_json()["id"]

    cancelled = tech.post(f"/api/silences/{window}/cancel")
    again = tech.post(f"/api/silences/{window}/cancel")

    assert (cancelled.status_code, cancelled.get_json()["state"]) == (200, "cancelled")
    assert (again.status_code, again.get_json()["error"]["message"]) == (
        409, f"maintenance window {window} is cancelled already")
    assert told(db, fault(db, parties["EL-1"], datetime.now(UTC) + timedelta(seconds=1))) == ["raised"]
    assert tech.get("/api/silences").get_json()["items"] == []
    assert [s["id"] for s in tech.get("/api/silences?ended=yes").get_json()["items"]] == [window]


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"equipment": "EL-9", "reason": "x", "ends_at": "+2h"}, 400, "ends_at: not a time: '+2h' (expected e.g. "
     "2026-06-15T18:00 or 2026-06-15T18:00:00+08:00)"),
    ({"equipment": "EL-9", "reason": "x", "ends_at": None}, 400, "ends_at: is required (结束时间)"),
    ({"equipment": "EL-1", "reason": " ", "ends_at": SOON}, 400, "reason: is required (原因)"),
    ({"equipment": "EL-1", "reason": "x", "ends_at": "2020-01-01T00:00:00+08:00"}, 400,
     "ends_at: 2020-01-01T00:00:00+08:00 is not in the future"),
    ({"equipment": "EL-9", "reason": "x", "ends_at": SOON}, 404, "no equipment with code 'EL-9'"),
    ({"use_unit": "Block 2", "reason": "x", "ends_at": SOON}, 403,
     "use unit 'Block 2' has equipment outside your scope (maintained by another firm); declare windows for your"
     " equipment one by one"),
    ({"equipment": "EL-1", "use_unit": "Block 1", "reason": "x", "ends_at": SOON}, 400,
     "name either an equipment (equipment) or a use unit (use_unit), not both or neither"),
])
def test_a_window_that_cannot_be_declared_is_refused_with_why_and_nothing_is_written(app, db, parties, body, status,
                                                                                     message):
    response = signed_in(app, "tech").post("/api/silences", json=body)

    assert (response.status_code, response.get_json()["error"]["message"]) == (status, message)
    assert db.execute("SELECT count(*) AS n FROM silences").fetchone()["n"] == 0


def test_a_window_longer_than_thirty_days_is_refused(app, db, parties):
    response = signed_in(app, "tech").post("/api/silences", json={"equipment": "EL-1", "reason": "x",
                                                                  "ends_at": in_hours(31 * 24)})
    assert (response.status_code, response.get_json()["error"]["message"]) == (
        400, "ends_at: a window lasts at most 30 days; declare another when it ends")


def test_a_use_unit_site_all_of_whose_equipment_the_firm_maintains_may_be_silenced(app, db, parties):
    response = signed_in(app, "tech").post("/api/silences", json={"use_unit": "Block 1", "reason": "停电检修",
                                                                  "ends_at": in_hours(1)})
    assert (response.status_code, response.get_json()["use_unit"]) == (201, "Block 1")


def test_the_page_form_declares_and_cancels_with_the_csrf_token(app, db, parties):
    tech = signed_in(app, "tech")
    token = _CSRF.search(tech.get("/silences").get_data(as_text=True)).group(1)

    # As a browser's datetime-local field sends it: the users' wall-clock time, without an offset.
    zone = ZoneInfo(app.config["SEMON"].time_zone)
    local_end = (datetime.now(UTC) + timedelta(hours=3)).astimezone(zone).strftime("%Y-%m-%dT%H:%M")
    declared = tech.post("/silences", data={"csrf_token": token, "equipment": "EL-1", "reason": "年检准备",
                                            "ends_at": local_end})
    window = db.execute("SELECT id FROM silences").fetchone()["id"]
    page = tech.get("/silences").get_data(as_text=True)
    refused = tech.post("/silences", data={"csrf_token": token, "equipment": "EL-1", "reason": "",
                                           "ends_at": local_end})
    cancelled = tech.post(f"/silences/{window}/cancel", data={"csrf_token": token})

    assert (declared.status_code, declared.headers["Location"]) == (302, "/silences")
    assert "年检准备" in page and "active" in page
    assert refused.status_code == 400 and "reason: is required (原因)" in refused.get_data(as_text=True)
    assert cancelled.status_code == 302
    assert db.execute("SELECT cancelled_at IS NOT NULL AS c FROM silences").fetchone()["c"] is True


@pytest.mark.parametrize(("who", "status"), [("inspector", 403), ("owner", 403)])
def test_inspectors_and_use_units_see_windows_but_may_not_declare_or_cancel_them(app, db, parties, who, status):
    window = silence(db, equipment_id=parties["EL-1"], starts=datetime.now(UTC), ends=datetime.now(UTC)
                     + timedelta(hours=1))
    client = signed_in(app, who)

    assert [s["id"] for s in client.get("/api/silences").get_json()["items"]] == [window]
    assert client.post("/api/silences", json={"equipment": "EL-1", "reason": "x", "ends_at": in_hours(1)}
                       ).status_code == status
    assert client.post(f"/api/silences/{window}/cancel").status_code == status
    assert db.execute("SELECT count(*) AS n FROM silences WHERE cancelled_at IS NULL").fetchone()["n"] == 1


def test_another_firms_window_is_not_seen_nor_cancelled(app, db, parties):
    window = silence(db, equipment_id=parties["EL-9"], starts=datetime.now(UTC), ends=datetime.now(UTC)
                     + timedelta(hours=1))
    tech = signed_in(app, "tech")

    assert tech.get("/api/silences").get_json()["items"] == []
    assert tech.post(f"/api/silences/{window}/cancel").status_code == 404
    assert anonymous(app).post(f"/api/silences/{window}/cancel").status_code == 401
    assert tech.post(f"/silences/{window}/cancel").status_code == 400  # a form without its CSRF token
    assert db.execute("SELECT cancelled_at FROM silences").fetchone()["cancelled_at"] is None
