"""Escalation (docs/escalation.md): the default chains reach their stages at 5 and 30 minutes exactly (entrapment) and
10 and 60 (other critical alerts), stop at acknowledgement and arrival on site, mark the rescue late, reach each
stage once even with two scheduler replicas at the same time, hold back muted and silenced alerts; the chains are
data an administrator edits on the escalation page, refused to everyone else."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import dict_row

from alerts.escalation import escalate
from alerts.handling import transition
from alerts.store import raise_alert, resolve_alert
from semon.audit import Actor
from semon.scope import Scope
from tests.conftest import add_user, anonymous, register_equipment, signed_in

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
FIRM = "Shenghui Elevator Service"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def raise_fault(db: psycopg.Connection, equipment_id: int, kind: str = "entrapment",
                severity: str = "critical", source: str = "device") -> int:
    change = raise_alert(db, equipment_id=equipment_id, kind=kind, source=source, severity=severity,
                         message=kind, seen_at=T0)
    assert change is not None
    return change.alert_id


def act(db: psycopg.Connection, alert_id: int, action: str, minutes: float) -> None:
    """The firm's technician acknowledges, arrives on site or resolves, `minutes` after the alert was first seen."""
    technician = db.execute("SELECT id FROM users WHERE username = 'tech'").fetchone()
    user_id = technician["id"] if technician else add_user(db, "tech", "firm", firm=FIRM)
    transition(db, Actor(user_id, "tech"), Scope.everything(), alert_id, action, now=at(minutes))


@pytest.fixture
def elevator(db: psycopg.Connection) -> int:
    return register_equipment(db, "EL-1", use_unit="Block 1 Owners")


def escalations(db: psycopg.Connection, alert_id: int) -> list[tuple]:
    """(stage, recipient, contact_role, party name) of the alert's 'escalated' outbox rows, in order."""
    return [tuple(r.values()) for r in db.execute(
        "SELECT n.escalation_stage, n.recipient, n.contact_role,"
        "       COALESCE(f.name, u.name, d.name) AS party"
        "  FROM notifications n LEFT JOIN maintenance_firms f ON f.id = n.firm_id"
        "  LEFT JOIN use_units u ON u.id = n.use_unit_id LEFT JOIN districts d ON d.id = n.district_id"
        " WHERE n.alert_id = %s AND n.event = 'escalated'"
        " ORDER BY n.escalation_stage, n.recipient, n.contact_role", (alert_id,))]


def alert(db: psycopg.Connection, alert_id: int) -> dict:
    return db.execute("SELECT escalation_stage, rescue_late FROM alerts WHERE id = %s", (alert_id,)).fetchone()


def steps(db: psycopg.Connection, alert_id: int) -> list[tuple]:
    return [(r["at"], r["actor"], r["detail"]["stage"], r["detail"]["rescue_late"]) for r in db.execute(
        "SELECT at, actor, detail FROM alert_steps WHERE alert_id = %s AND step = 'escalated' ORDER BY at, id",
        (alert_id,))]


STAGE_1 = [(1, "firm", "supervisor", FIRM), (1, "use_unit", None, "Block 1 Owners")]
STAGE_2 = [(2, "district", None, "Xuhui District")]


def test_an_unacknowledged_entrapment_reaches_the_use_unit_and_the_firms_supervisor_at_5_minutes_exactly(db, elevator):
    alert_id = raise_fault(db, elevator)

    assert escalate(db, at(5) - timedelta(seconds=1)) == 0
    assert escalations(db, alert_id) == []
    assert escalate(db, at(5)) == 1

    assert escalations(db, alert_id) == STAGE_1
    assert alert(db, alert_id) == {"escalation_stage": 1, "rescue_late": False}
    assert steps(db, alert_id) == [(at(5), "semon", 1, False)]
    # Reached once: later runs before the next stage add nothing.
    assert escalate(db, at(5)) == 0
    assert escalate(db, at(29.99)) == 0
    assert escalations(db, alert_id) == STAGE_1


def test_nobody_on_site_at_30_minutes_tells_the_districts_inspectors_and_marks_the_rescue_late(db, elevator):
    alert_id = raise_fault(db, elevator)
    escalate(db, at(5))

    assert escalate(db, at(30) - timedelta(seconds=1)) == 0
    assert alert(db, alert_id) == {"escalation_stage": 1, "rescue_late": False}
    assert escalate(db, at(30)) == 1

    assert escalations(db, alert_id) == STAGE_1 + STAGE_2
    assert alert(db, alert_id) == {"escalation_stage": 2, "rescue_late": True}
    assert steps(db, alert_id) == [(at(5), "semon", 1, False), (at(30), "semon", 2, True)]
    assert escalate(db, at(120)) == 0


def test_an_entrapment_acknowledged_at_3_minutes_skips_stage_1_but_still_escalates_with_nobody_on_site(db, elevator):
    alert_id = raise_fault(db, elevator)
    act(db, alert_id, "acknowledge", 3)

    assert escalate(db, at(5)) == 0
    assert escalate(db, at(29)) == 0
    assert escalations(db, alert_id) == []
    assert escalate(db, at(30)) == 1

    assert escalations(db, alert_id) == STAGE_2
    assert alert(db, alert_id) == {"escalation_stage": 2, "rescue_late": True}


def test_a_technician_on_site_at_20_minutes_stops_stage_2_and_the_rescue_is_not_late(db, elevator):
    alert_id = raise_fault(db, elevator)
    escalate(db, at(5))
    act(db, alert_id, "acknowledge", 12)
    act(db, alert_id, "on_site", 20)

    assert escalate(db, at(30)) == 0
    assert escalate(db, at(90)) == 0

    assert escalations(db, alert_id) == STAGE_1
    assert alert(db, alert_id) == {"escalation_stage": 1, "rescue_late": False}


def test_a_resolved_alert_is_never_escalated(db, elevator):
    alert_id = raise_fault(db, elevator, "overspeed")
    act(db, alert_id, "resolve", 2)

    assert escalate(db, at(60)) == 0
    assert escalations(db, alert_id) == []


def test_a_reopened_alert_escalates_again_counting_from_its_reopening(db, elevator):
    alert_id = raise_fault(db, elevator)
    escalate(db, at(5))
    db.execute("UPDATE alerts SET state = 'open', escalation_stage = 0, reopened_at = %s WHERE id = %s",
               (at(50), alert_id))  # as alerts/store.py reopens it

    assert escalate(db, at(55) - timedelta(seconds=1)) == 0
    assert escalate(db, at(55)) == 1
    assert escalations(db, alert_id) == sorted(STAGE_1 * 2, key=str)  # once before, once after reopening


def test_a_run_that_comes_late_reaches_every_stage_due_at_once(db, elevator):
    alert_id = raise_fault(db, elevator)

    assert escalate(db, at(45)) == 2

    assert escalations(db, alert_id) == STAGE_1 + STAGE_2
    assert alert(db, alert_id) == {"escalation_stage": 2, "rescue_late": True}
    assert [s[2] for s in steps(db, alert_id)] == [1, 2]


def test_other_critical_alerts_follow_the_critical_chain_at_10_and_60_minutes_without_a_late_rescue(db, elevator):
    alert_id = raise_fault(db, elevator, "overspeed")

    assert escalate(db, at(9.99)) == 0
    assert escalate(db, at(10)) == 1
    assert escalations(db, alert_id) == STAGE_1
    assert escalate(db, at(59.99)) == 0
    assert escalate(db, at(60)) == 1

    assert escalations(db, alert_id) == STAGE_1 + STAGE_2
    assert alert(db, alert_id) == {"escalation_stage": 2, "rescue_late": False}


def test_an_alert_no_chain_applies_to_is_not_escalated(db, elevator):
    alert_id = raise_fault(db, elevator, "door_close_failure", "medium")

    assert escalate(db, at(600)) == 0
    assert escalations(db, alert_id) == [] and alert(db, alert_id)["escalation_stage"] == 0


def test_a_recipient_the_equipment_does_not_have_gets_no_row(db):
    alert_id = raise_fault(db, register_equipment(db, "EL-2"))  # no use unit registered

    escalate(db, at(5))

    assert escalations(db, alert_id) == [(1, "firm", "supervisor", FIRM)]
    assert alert(db, alert_id)["escalation_stage"] == 1


def test_a_muted_alert_is_not_escalated_until_the_alert_that_mutes_it_resolves(db, elevator):
    offline = raise_fault(db, elevator, "offline", "medium", "presence")
    alert_id = raise_fault(db, elevator, "overspeed", source="rule")
    db.execute("UPDATE alerts SET muted_by = %s WHERE id = %s", (offline, alert_id))  # as an inhibition rule marks it

    assert escalate(db, at(15)) == 0
    assert escalations(db, alert_id) == []
    resolve_alert(db, equipment_id=elevator, kind="offline", resolved_at=at(16))
    assert escalate(db, at(16)) == 1

    assert escalations(db, alert_id) == STAGE_1


def test_an_alert_raised_in_a_maintenance_window_is_not_escalated_while_the_window_lasts(db, elevator):
    db.execute("UPDATE escalation_chains SET severities = '{critical,high}' WHERE name = 'critical'")
    alert_id = raise_fault(db, elevator, "power_failure", "high")
    silence = db.execute("INSERT INTO silences (equipment_id, reason, starts_at, ends_at)"
                         " VALUES (%s, '年检 annual check', %s, %s) RETURNING id",
                         (elevator, at(-5), at(40))).fetchone()["id"]
    db.execute("UPDATE alerts SET silence_id = %s WHERE id = %s", (silence, alert_id))

    assert escalate(db, at(39)) == 0
    assert escalations(db, alert_id) == []
    assert escalate(db, at(40)) == 1
    assert escalations(db, alert_id) == STAGE_1


def test_two_replicas_running_at_once_reach_a_stage_once_the_second_skipping_what_the_first_holds(db, elevator,
                                                                                                   db_url):
    alert_id = raise_fault(db, elevator)
    with psycopg.connect(db_url, row_factory=dict_row) as first, psycopg.connect(db_url, row_factory=dict_row) as other:
        assert escalate(first, at(5)) == 1  # its transaction still open
        assert escalate(other, at(5)) == 0  # skips the row the first holds, without waiting for it
        first.commit()
        assert escalate(other, at(5)) == 0  # and finds it reached once the first commits
        other.commit()

    assert escalations(db, alert_id) == STAGE_1
    assert len(steps(db, alert_id)) == 1


def test_two_replicas_in_threads_reach_each_stage_of_many_alerts_exactly_once(db, db_url):
    alerts = [raise_fault(db, register_equipment(db, f"EL-{n}", use_unit=f"Owners {n}")) for n in range(40)]
    start = threading.Barrier(2)
    reached: list[int] = []

    def replica() -> None:
        with psycopg.connect(db_url, row_factory=dict_row) as conn:
            start.wait()
            reached.append(escalate(conn, at(31)))

    threads = [threading.Thread(target=replica) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sum(reached) == 80  # 40 alerts × 2 stages, shared between the replicas however they raced
    counts = db.execute("SELECT alert_id, count(*) AS n FROM notifications WHERE event = 'escalated'"
                        " GROUP BY alert_id").fetchall()
    assert sorted(r["alert_id"] for r in counts) == sorted(alerts)
    assert {r["n"] for r in counts} == {3}  # firm:supervisor and use unit at stage 1, district at stage 2
    assert db.execute("SELECT count(*) AS n FROM alert_steps WHERE step = 'escalated'").fetchone()["n"] == 80
    assert db.execute("SELECT count(*) AS n FROM alerts WHERE escalation_stage = 2 AND rescue_late").fetchone()["n"] \
        == 40


# --- the chains as data: the escalation page -----------------------------------------------------------------------

def csrf_of(client, url: str = "/escalation") -> str:
    return _CSRF.search(client.get(url).get_data(as_text=True)).group(1)


def stage_id(db: psycopg.Connection, chain: str, stage: int) -> int:
    return db.execute("SELECT s.id FROM escalation_stages s JOIN escalation_chains c ON c.id = s.chain_id"
                      " WHERE c.name = %s AND s.stage = %s", (chain, stage)).fetchone()["id"]


def chain_id(db: psycopg.Connection, name: str) -> int:
    return db.execute("SELECT id FROM escalation_chains WHERE name = %s", (name,)).fetchone()["id"]


def test_the_page_lists_each_chain_with_its_stages_delays_and_recipients(client):
    page = client.get("/escalation")

    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'value="entrapment"' in text and 'value="critical"' in text
    assert 'value="use_unit, firm:supervisor"' in text and 'value="district"' in text
    assert 'name="delay_minutes" value="5"' in text and 'name="delay_minutes" value="30"' in text


def test_an_administrator_changes_a_stage_and_escalation_follows_the_new_data(client, db, elevator):
    response = client.post("/escalation/stages", data={
        "csrf_token": csrf_of(client), "chain_id": chain_id(db, "entrapment"),
        "stage_id": stage_id(db, "entrapment", 1), "stage": "1", "delay_minutes": "3", "stopped_by": "acknowledged",
        "recipients": "firm:supervisor, district"})

    assert response.status_code == 302
    audit = db.execute("SELECT actor, action, target, before, after FROM audit_log").fetchall()
    assert [(a["actor"], a["action"], a["target"]) for a in audit] == [
        ("test-admin", "escalation.stage.update", "escalation chain entrapment stage 1")]
    assert audit[0]["before"]["delay_s"] == 300 and audit[0]["after"]["delay_s"] == 180
    assert audit[0]["after"]["recipients"] == ["firm:supervisor", "district"]
    alert_id = raise_fault(db, elevator)
    assert escalate(db, at(3) - timedelta(seconds=1)) == 0
    assert escalate(db, at(3)) == 1
    assert escalations(db, alert_id) == [(1, "district", None, "Xuhui District"), (1, "firm", "supervisor", FIRM)]


def test_an_administrator_adds_a_chain_and_a_stage_that_takes_over_by_priority(client, db, elevator):
    client.post("/escalation/chains", data={"csrf_token": csrf_of(client), "name": "锅炉缺水 low water",
                                            "kinds": "low_water_level，overpressure", "severities": "",
                                            "priority": "5", "enabled": "yes"})
    new = chain_id(db, "锅炉缺水 low water")
    client.post("/escalation/stages", data={"csrf_token": csrf_of(client), "chain_id": new, "stage": "1",
                                            "delay_minutes": "0.5", "stopped_by": "resolved",
                                            "recipients": "district:inspector"})

    assert db.execute("SELECT kinds, severities, priority, enabled FROM escalation_chains WHERE id = %s",
                      (new,)).fetchone() == {"kinds": ["low_water_level", "overpressure"], "severities": None,
                                             "priority": 5, "enabled": True}
    boiler = register_equipment(db, "BL-1", "boiler", use_unit="Plant Owners")
    alert_id = raise_fault(db, boiler, "low_water_level")
    assert escalate(db, at(0.5)) == 1
    assert escalations(db, alert_id) == [(1, "district", "inspector", "Xuhui District")]


def test_a_stage_is_removed_and_a_disabled_chain_escalates_nothing(client, db, elevator):
    client.post("/escalation/stages/delete", data={"csrf_token": csrf_of(client),
                                                   "stage_id": stage_id(db, "entrapment", 2)})
    assert db.execute("SELECT count(*) AS n FROM escalation_stages s JOIN escalation_chains c ON c.id = s.chain_id"
                      " WHERE c.name = 'entrapment'").fetchone()["n"] == 1
    client.post("/escalation/chains", data={"csrf_token": csrf_of(client), "chain_id": chain_id(db, "critical"),
                                            "name": "critical", "kinds": "", "severities": "critical",
                                            "priority": "100"})  # the box unticked: disabled
    alert_id = raise_fault(db, elevator, "overspeed")

    assert escalate(db, at(120)) == 0
    assert escalations(db, alert_id) == []
    assert [r["action"] for r in db.execute("SELECT action FROM audit_log ORDER BY id")] == [
        "escalation.stage.delete", "escalation.chain.update"]


@pytest.mark.parametrize(("form", "status", "message"), [
    ({"stage": "1", "delay_minutes": "five", "stopped_by": "acknowledged", "recipients": "firm"}, 400,
     "delay: 'five' is not a number of minutes"),
    ({"stage": "1", "delay_minutes": "5", "stopped_by": "arrived", "recipients": "firm"}, 400,
     "stopped by: must be one of acknowledged, on_site, resolved"),
    ({"stage": "1", "delay_minutes": "5", "stopped_by": "acknowledged", "recipients": "police"}, 400,
     "recipients: 'police' must be one of firm, use_unit, district"),
    ({"stage": "1", "delay_minutes": "5", "stopped_by": "acknowledged", "recipients": ""}, 400,
     "recipients: a stage must tell someone"),
    ({"stage": "2", "delay_minutes": "5", "stopped_by": "acknowledged", "recipients": "firm"}, 400,
     "stage: chain 'entrapment' has a stage 2 already"),
])
def test_a_stage_that_cannot_be_kept_is_refused_with_a_line_saying_why_and_nothing_changes(client, db, form, status,
                                                                                         message):
    before = db.execute("SELECT * FROM escalation_stages ORDER BY id").fetchall()

    response = client.post("/escalation/stages", data={"csrf_token": csrf_of(client),
                                                       "chain_id": chain_id(db, "entrapment")} | form)

    assert response.status_code == status
    assert message in response.get_data(as_text=True).replace("&#39;", "'")
    assert db.execute("SELECT * FROM escalation_stages ORDER BY id").fetchall() == before
    assert db.execute("SELECT count(*) AS n FROM audit_log").fetchone()["n"] == 0


def test_a_chain_with_an_unknown_severity_is_refused(client, db):
    response = client.post("/escalation/chains", data={"csrf_token": csrf_of(client), "name": "x",
                                                       "severities": "urgent", "priority": "1"})

    assert response.status_code == 400
    assert "severities: urgent is not one of critical, high, medium, low" in response.get_data(as_text=True)
    assert db.execute("SELECT count(*) AS n FROM escalation_chains").fetchone()["n"] == 2


def test_the_page_and_its_forms_are_refused_to_every_role_but_the_administrator(app, db, elevator):
    add_user(db, "firm-user", "firm", firm=FIRM)
    add_user(db, "inspector", "inspector", districts=("Xuhui District",))
    add_user(db, "owner", "use_unit", use_unit="Block 1 Owners")
    before = db.execute("SELECT * FROM escalation_stages ORDER BY id").fetchall()
    entrapment_1 = stage_id(db, "entrapment", 1)

    for username in ("firm-user", "inspector", "owner"):
        client = signed_in(app, username)
        assert client.get("/escalation").status_code == 403, username
        csrf = _CSRF.search(client.get("/tokens").get_data(as_text=True)).group(1)
        assert client.post("/escalation/stages/delete", data={"csrf_token": csrf, "stage_id": entrapment_1}
                           ).status_code == 403, username
        assert "升级 Escalation" not in client.get("/equipment").get_data(as_text=True)
    nobody = anonymous(app)
    assert nobody.get("/escalation").headers["Location"].startswith("/login")
    assert nobody.post("/escalation/stages/delete", data={"stage_id": entrapment_1}).status_code == 302

    assert db.execute("SELECT * FROM escalation_stages ORDER BY id").fetchall() == before


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(client, db):
    response = client.post("/escalation/stages/delete", data={"stage_id": stage_id(db, "entrapment", 2)})

    assert response.status_code == 400
    assert "The CSRF token is missing." in response.get_data(as_text=True)
    assert db.execute("SELECT count(*) AS n FROM escalation_stages").fetchone()["n"] == 4
