"""Handling an alert (docs/alert-handling.md): the automatic steps of the timeline, reopening instead of a new alert,
inhibition (an offline monitor, and rules as data), and people acknowledging, going on site, resolving, assigning and
commenting through the pages and the API, within their role and scope."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row

from alerts.store import AlertInput, raise_alert, raise_alerts, resolve_alert
from models.presence import presence_job
from tests.conftest import add_user, anonymous, register_equipment, signed_in, wait_until

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
FIRM, OTHER_FIRM = "Shenghui Elevator Service", "Other Lift Co"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def steps(db, alert_id: int) -> list[tuple[str, str]]:
    """(step, actor) of the alert's timeline, in order."""
    return [(r["step"], r["actor"]) for r in db.execute(
        "SELECT step, actor FROM alert_steps WHERE alert_id = %s ORDER BY at, id", (alert_id,))]


def told(db, alert_id: int) -> list[tuple[str, str]]:
    """(event, recipient) of each outbox row of the alert: each change in the order queued, its recipients firm,
    use unit, district."""
    return [(r["event"], r["recipient"]) for r in db.execute(
        "SELECT event, recipient FROM notifications WHERE alert_id = %s"
        " ORDER BY min(id) OVER (PARTITION BY event, created_at),"
        " array_position('{firm,use_unit,district}'::text[], recipient)", (alert_id,))]


def alert(db, alert_id: int) -> dict:
    return db.execute("SELECT * FROM alerts WHERE id = %s", (alert_id,)).fetchone()


def entrapment(db, eid: int, at: datetime = NOW) -> int:
    return raise_alert(db, equipment_id=eid, kind="entrapment", source="device", severity="critical",
                       message="trapped", seen_at=at).alert_id


# --- automatic steps and reopening --------------------------------------------------------------------------------

def test_raising_writes_a_raised_step_and_an_automatic_resolution_one_by_semon(db):
    eid = register_equipment(db, "EL-1")
    alert_id = entrapment(db, eid)
    resolve_alert(db, equipment_id=eid, kind="entrapment", resolved_at=NOW + timedelta(minutes=4))

    assert steps(db, alert_id) == [("raised", "semon"), ("resolved", "semon")]
    resolved_step = db.execute("SELECT at FROM alert_steps WHERE step = 'resolved'").fetchone()["at"]
    assert resolved_step == NOW + timedelta(minutes=4)
    assert alert(db, alert_id)["resolved_by"] is None  # nobody: semon


def test_a_recurrence_within_the_reopen_window_reopens_the_alert_and_tells_who_heard_of_it(db):
    eid = register_equipment(db, "EL-1", use_unit="Block 1")
    alert_id = entrapment(db, eid)
    resolve_alert(db, equipment_id=eid, kind="entrapment", resolved_at=NOW + timedelta(minutes=5))

    again = raise_alert(db, equipment_id=eid, kind="entrapment", source="device", severity="critical",
                        message="trapped again", seen_at=NOW + timedelta(minutes=50))

    assert (again.alert_id, again.event) == (alert_id, "reopened")
    row = alert(db, alert_id)
    assert (row["state"], row["reopened_count"], row["reopened_at"], row["resolved_at"], row["count"],
            row["message"]) == ("open", 1, NOW + timedelta(minutes=50), None, 2, "trapped again")
    assert db.execute("SELECT count(*) AS n FROM alerts").fetchone()["n"] == 1
    assert steps(db, alert_id) == [("raised", "semon"), ("resolved", "semon"), ("reopened", "semon")]
    # The routes that hear of 'raised' hear of 'reopened' (the migration added it to them).
    assert told(db, alert_id) == [("raised", "firm"), ("raised", "use_unit"), ("raised", "district"),
                                  ("resolved", "firm"), ("resolved", "use_unit"), ("resolved", "district"),
                                  ("reopened", "firm"), ("reopened", "use_unit"), ("reopened", "district")]


def test_a_reopened_alert_is_to_be_acknowledged_again(db):
    eid = register_equipment(db, "EL-1")
    alert_id = entrapment(db, eid)
    db.execute("UPDATE alerts SET state = 'acknowledged', acknowledged_at = %s WHERE id = %s",
               (NOW + timedelta(minutes=1), alert_id))
    resolve_alert(db, equipment_id=eid, kind="entrapment", resolved_at=NOW + timedelta(minutes=5))
    entrapment(db, eid, NOW + timedelta(minutes=20))

    assert (alert(db, alert_id)["state"], alert(db, alert_id)["acknowledged_at"]) == ("open", None)


def test_a_recurrence_after_the_reopen_window_is_a_new_alert(db):
    eid = register_equipment(db, "EL-1")
    first = entrapment(db, eid)
    resolve_alert(db, equipment_id=eid, kind="entrapment", resolved_at=NOW + timedelta(minutes=5))

    later = raise_alert(db, equipment_id=eid, kind="entrapment", source="device", severity="critical",
                        message="trapped", seen_at=NOW + timedelta(minutes=16), reopen_within_s=600)

    assert later.event == "raised" and later.alert_id != first
    assert [r["state"] for r in db.execute("SELECT state FROM alerts ORDER BY id")] == ["resolved", "open"]


def test_a_batch_reopens_some_and_raises_others_in_one_statement(db):
    reopening, fresh = register_equipment(db, "EL-1"), register_equipment(db, "EL-2")
    old = raise_alert(db, equipment_id=reopening, kind="overspeed", source="rule", severity="high",
                      message="fast", seen_at=NOW).alert_id
    resolve_alert(db, equipment_id=reopening, kind="overspeed", resolved_at=NOW + timedelta(minutes=1))

    result = raise_alerts(db, "rule", [AlertInput(eid, "overspeed", "high", "fast", NOW + timedelta(minutes=9))
                                       for eid in (reopening, fresh)])

    assert (result.raised, result.repeated, result.reopened) == (1, 0, 1)
    assert alert(db, old)["state"] == "open"
    assert db.execute("SELECT count(*) AS n FROM alerts WHERE state = 'open'").fetchone()["n"] == 2


def test_two_writers_reopening_at_once_leave_one_open_alert_that_counts_both(db, db_url):
    eid = register_equipment(db, "EL-1")
    alert_id = entrapment(db, eid)
    resolve_alert(db, equipment_id=eid, kind="entrapment", resolved_at=NOW + timedelta(minutes=5))
    outcome: dict[str, object] = {}

    with (psycopg.connect(db_url, row_factory=dict_row) as first,
          psycopg.connect(db_url, row_factory=dict_row) as second):
        outcome["first"] = raise_alert(first, equipment_id=eid, kind="entrapment", source="device",
                                       severity="critical", message="a", seen_at=NOW + timedelta(minutes=20))

        def race() -> None:  # blocks on the row the first holds, then finds it open
            try:
                outcome["second"] = raise_alert(second, equipment_id=eid, kind="entrapment", source="rule",
                                                severity="critical", message="b", seen_at=NOW + timedelta(minutes=21))
                second.commit()
            except Exception as exc:  # noqa: BLE001 - the assertion below shows it
                outcome["second"] = exc

        racer = threading.Thread(target=race)
        racer.start()
        wait_until(lambda: db.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                      (second.info.backend_pid,)).fetchone()["wait_event_type"] == "Lock",
                   message="the second writer waiting on the first's row")
        first.commit()
        racer.join(timeout=30)

    assert (outcome["first"].alert_id, outcome["first"].event) == (alert_id, "reopened")
    assert (outcome["second"].alert_id, outcome["second"].event) == (alert_id, "repeated")
    row = alert(db, alert_id)
    assert (row["state"], row["reopened_count"], row["count"], row["sources"]) == ("open", 1, 3, ["device", "rule"])
    assert db.execute("SELECT count(*) AS n FROM alerts").fetchone()["n"] == 1


# --- inhibition ------------------------------------------------------------------------------------------------

def offline(db, eid: int, at: datetime = NOW) -> int:
    return raise_alert(db, equipment_id=eid, kind="offline", source="presence", severity="medium",
                       message="monitor offline", seen_at=at, repeat=False).alert_id


def overspeed(db, eid: int, at: datetime, source: str = "rule") -> int:
    return raise_alert(db, equipment_id=eid, kind="overspeed", source=source, severity="high", message="fast",
                       seen_at=at).alert_id


def test_an_offline_monitor_mutes_its_telemetry_derived_alerts_until_it_is_back(db):
    eid, elsewhere = register_equipment(db, "EL-1"), register_equipment(db, "EL-2")
    offline_id = offline(db, eid)
    muted = overspeed(db, eid, NOW + timedelta(minutes=1))
    overspeed(db, eid, NOW + timedelta(minutes=2))  # a repeat while muted
    reported = raise_alert(db, equipment_id=eid, kind="door_open_while_moving", source="device", severity="high",
                           message="door", seen_at=NOW + timedelta(minutes=1)).alert_id
    not_muted = overspeed(db, elsewhere, NOW + timedelta(minutes=1))

    assert alert(db, muted)["muted_by"] == offline_id
    assert told(db, muted) == []
    assert steps(db, muted) == [("raised", "semon"), ("muted", "semon")]
    # The monitor's own report and another equipment's alerts are not explained by this monitor being offline.
    assert (alert(db, reported)["muted_by"], told(db, reported)) == (None, [("raised", "firm"), ("raised", "district")])
    assert told(db, not_muted) == [("raised", "firm"), ("raised", "district")]

    resolve_alert(db, equipment_id=eid, kind="offline", resolved_at=NOW + timedelta(minutes=10))

    assert alert(db, muted)["muted_by"] is None
    assert steps(db, muted) == [("raised", "semon"), ("muted", "semon"), ("unmuted", "semon")]
    assert told(db, muted) == [("raised", "firm"), ("raised", "district")]
    when = {r["created_at"] for r in db.execute("SELECT created_at FROM notifications WHERE alert_id = %s", (muted,))}
    assert when == {NOW + timedelta(minutes=10)}
    overspeed(db, eid, NOW + timedelta(minutes=11))
    assert told(db, muted)[-1] == ("repeated", "firm")  # told as any other alert from now on


def test_an_alert_muted_that_cleared_while_offline_is_never_told(db):
    eid = register_equipment(db, "EL-1")
    offline(db, eid)
    muted = overspeed(db, eid, NOW + timedelta(minutes=1))
    resolve_alert(db, equipment_id=eid, kind="overspeed", resolved_at=NOW + timedelta(minutes=3))
    resolve_alert(db, equipment_id=eid, kind="offline", resolved_at=NOW + timedelta(minutes=10))

    assert told(db, muted) == []
    assert alert(db, muted)["muted_by"] is not None  # the record keeps what explained it


def test_the_presence_job_bringing_a_monitor_back_notifies_what_it_muted(db):
    eid = register_equipment(db, "EL-1")
    db.execute("INSERT INTO equipment_state (equipment_id, status, last_seen) VALUES (%s, 'online', %s)",
               (eid, NOW - timedelta(minutes=10)))
    presence_job(db, NOW, timedelta(minutes=3))
    muted = overspeed(db, eid, NOW + timedelta(minutes=1))
    assert told(db, muted) == []

    db.execute("UPDATE equipment_state SET status = 'online', last_seen = %s", (NOW + timedelta(minutes=5),))
    presence_job(db, NOW + timedelta(minutes=6), timedelta(minutes=3))

    assert told(db, muted) == [("raised", "firm"), ("raised", "district")]


def test_an_inhibition_rule_lets_a_district_power_failure_mute_its_elevators_power_alerts(db):
    grid = register_equipment(db, "EL-1", district="Xuhui District")
    neighbour = register_equipment(db, "EL-2", district="Xuhui District")
    across = register_equipment(db, "EL-3", district="Minhang District")
    db.execute("INSERT INTO inhibition_rules (source_kind, source_source, target_kind, target_sources, scope)"
               " VALUES ('district_power_failure', 'device', 'power_failure', NULL, 'district')")
    outage = raise_alert(db, equipment_id=grid, kind="district_power_failure", source="device", severity="high",
                         message="grid down", seen_at=NOW).alert_id
    power = {eid: raise_alert(db, equipment_id=eid, kind="power_failure", source="device", severity="high",
                              message="no power", seen_at=NOW + timedelta(minutes=1)).alert_id
             for eid in (grid, neighbour, across)}

    assert [alert(db, power[e])["muted_by"] for e in (grid, neighbour, across)] == [outage, outage, None]
    assert [len(told(db, power[e])) for e in (grid, neighbour, across)] == [0, 0, 2]


def test_a_batch_of_ten_thousand_half_muted_stays_set_based(db, db_url):
    firm = db.execute("INSERT INTO maintenance_firms (name) VALUES ('Batch Firm') RETURNING id").fetchone()["id"]
    district = db.execute("INSERT INTO districts (name) VALUES ('Batch District') RETURNING id").fetchone()["id"]
    db.execute("INSERT INTO equipment (code, type, district_id, firm_id) SELECT 'B-' || n, 'elevator', %s, %s"
               " FROM generate_series(1, 10000) n", (district, firm))
    ids = [r["id"] for r in db.execute("SELECT id FROM equipment ORDER BY id")]
    raise_alerts(db, "presence", [AlertInput(i, "offline", "medium", "offline", NOW) for i in ids[::2]])
    batch = [AlertInput(i, "overspeed", "high", "too fast", NOW + timedelta(minutes=1)) for i in ids]
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        started = time.perf_counter()
        result = raise_alerts(conn, "rule", batch)
        conn.commit()
        elapsed = time.perf_counter() - started
    print(f"10,000 raises, 5,000 of them muted: {elapsed:.2f} s")

    assert (result.raised, result.repeated, result.reopened) == (10000, 0, 0)
    counts = db.execute("SELECT count(*) FILTER (WHERE muted_by IS NOT NULL) AS muted,"
                        " count(*) FILTER (WHERE muted_by IS NULL) AS told FROM alerts WHERE kind = 'overspeed'"
                        ).fetchone()
    assert (counts["muted"], counts["told"]) == (5000, 5000)
    queued = db.execute("SELECT count(*) AS n FROM notifications n JOIN alerts a ON a.id = n.alert_id"
                        " WHERE a.kind = 'overspeed' AND n.recipient = 'firm'").fetchone()["n"]
    assert queued == 5000


# --- people handling an alert: the API and the pages -------------------------------------------------------------

@pytest.fixture
def fleet(db) -> dict[str, int]:
    """EL-1 of the firm with an entrapment (alert 1) and an overdue inspection (alert 2); EL-9 of another firm with
    an entrapment (alert 3); a technician and a supervisor of the firm, a user of the other firm, an inspector, the
    use unit's user."""
    eid = register_equipment(db, "EL-1", use_unit="Block 1")
    other = register_equipment(db, "EL-9", firm=OTHER_FIRM, use_unit="Block 9")
    ids = {"EL-1": eid, "EL-9": other}
    ids["entrapment"] = entrapment(db, eid)
    ids["overdue"] = raise_alert(db, equipment_id=eid, kind="overdue:periodic_inspection", source="compliance",
                                 severity="medium", message="overdue", seen_at=NOW, repeat=False).alert_id
    ids["other"] = entrapment(db, other)
    add_user(db, "tech", "firm", firm=FIRM)
    add_user(db, "boss", "firm", firm=FIRM)
    add_user(db, "rival", "firm", firm=OTHER_FIRM)
    add_user(db, "inspector", "inspector", districts=("Xuhui District",))
    add_user(db, "owner", "use_unit", use_unit="Block 1")
    return ids


def csrf(client, url: str) -> str:
    return _CSRF.search(client.get(url).get_data(as_text=True)).group(1)


def test_a_firm_user_acknowledges_goes_on_site_and_resolves_with_comments_kept_on_the_timeline(app, db, fleet):
    tech = signed_in(app, "tech")
    alert_id = fleet["entrapment"]

    acknowledged = tech.post(f"/api/alerts/{alert_id}/acknowledge", json={"comment": "收到 on my way"})
    on_site = tech.post(f"/api/alerts/{alert_id}/on_site", json={})
    resolved = tech.post(f"/api/alerts/{alert_id}/resolve", json={"comment": "passenger freed"})

    assert [r.status_code for r in (acknowledged, on_site, resolved)] == [200, 200, 200]
    body = resolved.get_json()
    assert (body["state"], body["acknowledged_by"], body["on_site_by"], body["resolved_by"]) == (
        "resolved", "tech", "tech", "tech")
    assert [(s["step"], s["actor"], s["comment"]) for s in body["steps"]] == [
        ("raised", "semon", ""), ("acknowledged", "tech", "收到 on my way"), ("on_site", "tech", ""),
        ("resolved", "tech", "passenger freed")]
    # The resolution is told as the automatic one is; the notifications are on the timeline with their status.
    order = {"firm": 0, "use_unit": 1, "district": 2}
    notifications = sorted(body["notifications"], key=lambda n: (n["created_at"], order[n["recipient"]]))
    assert [(n["event"], n["recipient"], n["party"], n["status"]) for n in notifications] == [
        ("raised", "firm", FIRM, "pending"), ("raised", "use_unit", "Block 1", "pending"),
        ("raised", "district", "Xuhui District", "pending"), ("resolved", "firm", FIRM, "pending"),
        ("resolved", "use_unit", "Block 1", "pending"), ("resolved", "district", "Xuhui District", "pending")]
    audit = [(r["actor"], r["action"], r["target"]) for r in db.execute(
        "SELECT actor, action, target FROM audit_log ORDER BY id")]
    assert audit == [("tech", f"alert.{a}", f"alert {alert_id}") for a in ("acknowledge", "on_site", "resolve")]
    page = tech.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "passenger freed" in page and "notify resolved" in page and "Block 1" in page


def test_going_on_site_from_open_acknowledges_too(app, db, fleet):
    body = signed_in(app, "tech").post(f"/api/alerts/{fleet['entrapment']}/on_site", json={}).get_json()

    assert body["state"] == "on_site" and body["acknowledged_at"] == body["on_site_at"]
    assert [s["step"] for s in body["steps"]] == ["raised", "acknowledged", "on_site"]


@pytest.mark.parametrize(("first", "then", "message"), [
    ("acknowledge", "acknowledge", "alert {id} is acknowledged already"),
    (None, "resolve", "alert {id} is an entrapment: record the technician on site before resolving it"),
    ("on_site", "acknowledge", "alert {id} is on site already"),
])
def test_a_transition_the_state_does_not_allow_is_refused_with_why(app, db, fleet, first, then, message):
    tech = signed_in(app, "tech")
    alert_id = fleet["entrapment"]
    if first:
        tech.post(f"/api/alerts/{alert_id}/{first}", json={})
    before = alert(db, alert_id)

    response = tech.post(f"/api/alerts/{alert_id}/{then}", json={})

    assert response.status_code == 409
    assert response.get_json()["error"]["message"] == message.format(id=alert_id)
    assert alert(db, alert_id) == before


def test_a_resolved_alert_cannot_be_acknowledged_and_an_overdue_one_has_no_visit(app, db, fleet):
    tech = signed_in(app, "tech")
    overdue = fleet["overdue"]
    assert tech.post(f"/api/alerts/{overdue}/on_site", json={}).get_json()["error"]["message"] == (
        f"alert {overdue} (overdue:periodic_inspection) is answered by a record, not a visit: record the maintenance"
        " or inspection on the equipment's page")
    assert tech.post(f"/api/alerts/{overdue}/resolve", json={}).status_code == 200
    refused = tech.post(f"/api/alerts/{overdue}/acknowledge", json={})
    assert (refused.status_code, refused.get_json()["error"]["message"]) == (
        409, f"alert {overdue} is resolved: it cannot be acknowledged")


def test_an_alert_is_assigned_only_to_a_user_of_its_equipments_firm(app, db, fleet):
    boss = signed_in(app, "boss")
    alert_id = fleet["entrapment"]

    refused = boss.post(f"/api/alerts/{alert_id}/assign", json={"assigned_to": "rival"})
    assigned = boss.post(f"/api/alerts/{alert_id}/assign", json={"assigned_to": "tech", "comment": "nearest"})

    assert (refused.status_code, refused.get_json()["error"]["message"]) == (
        400, "assigned_to: rival is not a user of the equipment's maintenance firm")
    body = assigned.get_json()
    assert (assigned.status_code, body["assigned_to"]) == (200, "tech")
    assert [(s["step"], s["actor"], s["comment"], s["detail"]) for s in body["steps"]][-1] == (
        "assigned", "boss", "nearest", {"assigned_to": "tech"})
    assert signed_in(app, "tech").post(f"/api/alerts/{alert_id}/comment", json={}).get_json()["error"][
        "message"] == "comment: is required"


def test_the_alert_page_forms_act_with_the_csrf_token_and_show_the_step(app, db, fleet):
    tech = signed_in(app, "tech")
    alert_id = fleet["entrapment"]
    page = tech.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "确认 Acknowledge" in page and "到场 On site" in page

    response = tech.post(f"/alerts/{alert_id}/acknowledge",
                         data={"csrf_token": csrf(tech, f"/alerts/{alert_id}"), "comment": "coming"})
    refused = tech.post(f"/alerts/{alert_id}/acknowledge",
                        data={"csrf_token": csrf(tech, f"/alerts/{alert_id}")})

    assert (response.status_code, response.headers["Location"]) == (302, f"/alerts/{alert_id}")
    assert alert(db, alert_id)["state"] == "acknowledged"
    assert refused.status_code == 409
    assert f"alert {alert_id} is acknowledged already" in refused.get_data(as_text=True)
    assert steps(db, alert_id) == [("raised", "semon"), ("acknowledged", "tech")]


def test_the_hazards_page_links_each_alert_to_its_page_with_its_state(app, db, fleet):
    signed_in(app, "tech").post(f"/api/alerts/{fleet['entrapment']}/acknowledge", json={})
    page = signed_in(app, "tech").get("/hazards").get_data(as_text=True)

    assert f'href="/alerts/{fleet["entrapment"]}"' in page and "Acknowledged (已确认)" in page
    assert f'href="/alerts/{fleet["other"]}"' not in page  # another firm's


@pytest.mark.parametrize(("who", "status"), [("rival", 404), ("inspector", 403), ("owner", 403)])
def test_acting_needs_the_role_and_the_alerts_equipment_within_the_scope(app, db, fleet, who, status):
    before = alert(db, fleet["entrapment"])
    client = signed_in(app, who)

    for action, body in (("acknowledge", {}), ("on_site", {}), ("resolve", {}), ("assign", {"assigned_to": "tech"}),
                         ("comment", {"comment": "x"})):
        response = client.post(f"/api/alerts/{fleet['entrapment']}/{action}", json=body)
        assert response.status_code == status, action

    assert alert(db, fleet["entrapment"]) == before
    assert steps(db, fleet["entrapment"]) == [("raised", "semon")]
    # Reading: the other firm does not see it at all; the inspector and the use unit read it without the forms.
    if who == "rival":
        assert client.get(f"/api/alerts/{fleet['entrapment']}").status_code == 404
    else:
        page = client.get(f"/alerts/{fleet['entrapment']}").get_data(as_text=True)
        assert "Timeline" in page and "确认 Acknowledge" not in page


def test_nobody_and_a_form_without_its_csrf_token_change_nothing(app, db, fleet):
    alert_id = fleet["entrapment"]
    nobody = anonymous(app)
    assert nobody.post(f"/api/alerts/{alert_id}/acknowledge", json={}).status_code == 401
    assert nobody.post(f"/alerts/{alert_id}/acknowledge").status_code == 302
    assert signed_in(app, "tech").post(f"/alerts/{alert_id}/acknowledge", data={"comment": "x"}).status_code == 400

    assert alert(db, alert_id)["state"] == "open"
    assert steps(db, alert_id) == [("raised", "semon")]
