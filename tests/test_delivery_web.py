"""The contacts and routing pages (web/contacts.py): an administrator adds a contact (audited, its secret never
shown), switches it off, edits routes and sends a failed message again; other roles are refused."""

from __future__ import annotations

from tests.conftest import add_user, register_equipment, signed_in
from tests.test_access import _CSRF


def csrf(client, path: str = "/contacts") -> str:
    return _CSRF.search(client.get(path).get_data(as_text=True)).group(1)


def test_an_administrator_adds_a_contact_and_it_is_audited_without_its_secret(app, client, db):
    register_equipment(db, "EL-1")
    firm = db.execute("SELECT id FROM maintenance_firms").fetchone()["id"]
    answer = client.post("/contacts", data={
        "csrf_token": csrf(client), "party": f"firm:{firm}", "name": "值班 王", "channel": "webhook",
        "address": "https://dispatch.example.cn/hook", "secret": "s3cret-value", "duty_start": "08:00",
        "duty_end": "20:00", "duty_days": ["1", "2", "3"], "min_severity": "high"})
    assert answer.status_code == 302
    row = db.execute("SELECT name, channel, secret, duty_days, min_severity FROM contacts").fetchone()
    assert row == {"name": "值班 王", "channel": "webhook", "secret": "s3cret-value", "duty_days": [1, 2, 3],
                   "min_severity": "high"}
    entry = db.execute("SELECT action, after FROM audit_log WHERE action = 'contact.create'").fetchone()
    assert entry["after"]["has_secret"] is True and "s3cret-value" not in str(entry["after"])
    page = client.get("/contacts").get_data(as_text=True)
    assert "值班 王" in page and "s3cret-value" not in page


def test_a_contact_with_a_bad_address_is_refused_with_the_field_named(app, client, db):
    register_equipment(db, "EL-1")
    firm = db.execute("SELECT id FROM maintenance_firms").fetchone()["id"]
    answer = client.post("/contacts", data={"csrf_token": csrf(client), "party": f"firm:{firm}", "name": "x",
                                            "channel": "email", "address": "not-an-address"})
    assert answer.status_code == 400
    assert "address: &#39;not-an-address&#39; is not an e-mail address" in answer.get_data(as_text=True)
    assert db.execute("SELECT count(*) AS n FROM contacts").fetchone()["n"] == 0


def test_an_administrator_adds_and_removes_a_route(app, client, db):
    before = db.execute("SELECT count(*) AS n FROM alert_routes").fetchone()["n"]
    token = csrf(client)
    assert client.post("/contacts/routes", data={"csrf_token": token, "recipient": "district",
                                                 "events": ["raised", "escalated"], "min_severity": "critical",
                                                 "description": "监察 critical"}).status_code == 302
    route = db.execute("SELECT id, events, min_severity FROM alert_routes ORDER BY id DESC LIMIT 1").fetchone()
    assert (route["events"], route["min_severity"]) == (["raised", "escalated"], "critical")
    assert client.post(f"/contacts/routes/{route['id']}/delete", data={"csrf_token": token}).status_code == 302
    assert db.execute("SELECT count(*) AS n FROM alert_routes").fetchone()["n"] == before
    actions = [r["action"] for r in db.execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["route.create", "route.delete"]


def test_other_roles_may_not_see_or_change_contacts(app, db):
    register_equipment(db, "EL-1")
    add_user(db, "firm-user", "firm", firm="Shenghui Elevator Service")
    firm_client = signed_in(app, "firm-user")
    assert firm_client.get("/contacts").status_code == 403
    assert firm_client.post("/contacts/routes", data={"recipient": "firm", "events": ["raised"]}).status_code in (
        400, 403)
    assert db.execute("SELECT count(*) AS n FROM audit_log").fetchone()["n"] == 0


def test_a_failed_message_is_listed_and_an_administrator_sends_it_again(app, client, db):
    from datetime import UTC, datetime

    from alerts.channels.webhook import Webhook
    from alerts.delivery import DeliverySettings, deliver
    from alerts.store import AlertInput, raise_alerts

    db.execute("DELETE FROM alert_routes WHERE recipient <> 'firm'")
    equipment = register_equipment(db, "EL-1")
    firm = db.execute("SELECT id FROM maintenance_firms").fetchone()["id"]
    db.execute("INSERT INTO contacts (firm_id, name, channel, address) VALUES (%s, 'duty', 'webhook',"
               " 'http://127.0.0.1:9/hook')", (firm,))
    now = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    raise_alerts(db, "device", [AlertInput(equipment, "entrapment", "critical", "trapped", now)], at=now)
    deliver(db, now, DeliverySettings(max_attempts=1), {"webhook": Webhook(2)})
    page = client.get("/contacts").get_data(as_text=True)
    assert "失败 Failed" in page and "127.0.0.1:9" in page
    message = db.execute("SELECT id FROM delivery_messages").fetchone()["id"]
    assert client.post(f"/contacts/messages/{message}/retry", data={"csrf_token": csrf(client)}).status_code == 302
    assert db.execute("SELECT status, attempts FROM delivery_messages").fetchone() == {"status": "pending",
                                                                                      "attempts": 0}
    assert db.execute("SELECT status FROM notifications").fetchone()["status"] == "pending"
    assert db.execute("SELECT action FROM audit_log").fetchone()["action"] == "delivery.retry"


def test_a_disabled_contact_is_kept_and_told_nothing(app, client, db):
    register_equipment(db, "EL-1")
    firm = db.execute("SELECT id FROM maintenance_firms").fetchone()["id"]
    contact = db.execute("INSERT INTO contacts (firm_id, name, channel, address) VALUES (%s, 'duty', 'email',"
                         " 'duty@firm.example.cn') RETURNING id", (firm,)).fetchone()["id"]
    assert client.post(f"/contacts/{contact}/disable", data={"csrf_token": csrf(client)}).status_code == 302
    assert db.execute("SELECT active FROM contacts").fetchone()["active"] is False
    assert client.post("/contacts/999/enable", data={"csrf_token": csrf(client)}).status_code == 404
    assert client.post("/contacts/x/enable", data={"csrf_token": csrf(client)}).status_code == 404
