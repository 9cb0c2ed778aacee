"""One module writes alerts and one routing rule addresses them: device faults, compliance, presence."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg.rows import dict_row

from alerts.store import AlertInput, raise_alert, raise_alerts, resolve_alert
from models.compliance import rules_from_config, scan_compliance, sync_rules
from models.fault_events import apply_device_events
from models.presence import presence_job
from tests.conftest import register_equipment

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
AS_OF = date(2026, 11, 22)


def outbox(db, **where) -> list[tuple[str, str, str | None]]:
    """(event, recipient, the recipient's name) of each queued notification, by event then recipient."""
    clause = " AND ".join(f"n.{k} = %({k})s" for k in where) or "true"
    return [(r["event"], r["recipient"], r["name"]) for r in db.execute(f"""
        SELECT n.event, n.recipient, COALESCE(f.name, u.name, d.name) AS name
          FROM notifications n
          LEFT JOIN maintenance_firms f ON f.id = n.firm_id
          LEFT JOIN use_units u ON u.id = n.use_unit_id
          LEFT JOIN districts d ON d.id = n.district_id
         WHERE {clause}
         ORDER BY array_position('{{raised,repeated,resolved}}'::text[], n.event),
                  array_position('{{firm,use_unit,district}}'::text[], n.recipient), n.id""", where)]


def add_event(db, equipment_id: int, code: str, state: str, ts: datetime, seq: int) -> None:
    """Store an event and apply it, as the ingester does in one transaction."""
    event = db.execute("INSERT INTO events (ts, equipment_id, seq, code, state, detail) VALUES (%s, %s, %s, %s, %s,"
                       " '{}') RETURNING equipment_id, code, state, ts, seq, detail",
                       (ts, equipment_id, seq, code, state)).fetchone()
    apply_device_events(db, [event])


def test_a_device_fault_and_an_overdue_check_reach_the_same_recipients(db):
    sync_rules(db, rules_from_config())
    eid = register_equipment(db, "EL-R1", install_date="2020-01-01", use_unit="Tower A Property",
                             district="Xuhui District")
    db.execute("INSERT INTO inspections (equipment_id, kind, performed_on) VALUES (%s, 'periodic_inspection',"
               " '2025-11-01')", (eid,))  # overdue since 2026-11-01
    # door_close_failure is medium, like an overdue check: the same route applies to both.
    add_event(db, eid, "door_close_failure", "raised", NOW - timedelta(minutes=10), 1)
    scan_compliance(db, AS_OF, NOW)
    device = db.execute("SELECT id FROM alerts WHERE source = 'device'").fetchone()["id"]
    overdue = db.execute("SELECT id FROM alerts WHERE kind = 'overdue:periodic_inspection'").fetchone()["id"]
    expected = [("raised", "firm", "Shenghui Elevator Service"), ("raised", "use_unit", "Tower A Property")]
    assert outbox(db, alert_id=device) == expected
    assert outbox(db, alert_id=overdue) == expected


def test_a_critical_fault_also_reaches_the_district_and_a_repeat_only_the_firm(db):
    eid = register_equipment(db, "EL-R2", use_unit="Tower B Property", district="Jing'an District")
    first = raise_alert(db, equipment_id=eid, kind="entrapment", source="device", severity="critical",
                        message="trapped", seen_at=NOW)
    again = raise_alert(db, equipment_id=eid, kind="entrapment", source="device", severity="critical",
                        message="trapped", seen_at=NOW + timedelta(minutes=1))
    resolve_alert(db, equipment_id=eid, kind="entrapment", resolved_at=NOW + timedelta(minutes=5))
    assert (first.event, again.event, first.alert_id) == ("raised", "repeated", again.alert_id)
    assert outbox(db) == [
        ("raised", "firm", "Shenghui Elevator Service"), ("raised", "use_unit", "Tower B Property"),
        ("raised", "district", "Jing'an District"),
        ("repeated", "firm", "Shenghui Elevator Service"),
        ("resolved", "firm", "Shenghui Elevator Service"), ("resolved", "use_unit", "Tower B Property"),
        ("resolved", "district", "Jing'an District")]
    [alert] = db.execute("SELECT count, last_seen, state FROM alerts").fetchall()
    assert (alert["count"], alert["last_seen"], alert["state"]) == (2, NOW + timedelta(minutes=1), "resolved")


def test_routing_is_data_a_new_route_changes_who_is_told(db):
    eid = register_equipment(db, "EL-R3", use_unit="Tower C Property")
    db.execute("UPDATE alert_routes SET events = array_append(events, 'repeated') WHERE recipient = 'use_unit'")
    db.execute("DELETE FROM alert_routes WHERE recipient = 'district'")
    db.execute("INSERT INTO alert_routes (recipient, events, sources) VALUES ('district', '{raised}', '{presence}')")
    for minute in (0, 1):
        raise_alert(db, equipment_id=eid, kind="entrapment", source="device", severity="critical",
                    message="trapped", seen_at=NOW + timedelta(minutes=minute))
    assert [(e, r) for e, r, _ in outbox(db)] == [
        ("raised", "firm"), ("raised", "use_unit"), ("repeated", "firm"), ("repeated", "use_unit")]


def test_alerts_of_equipment_no_firm_maintains_reach_the_district(db):
    eid = register_equipment(db, "EL-R4", firm=None, district="Putuo District")
    raise_alert(db, equipment_id=eid, kind="door_close_failure", source="device", severity="medium",
                message="door", seen_at=NOW)
    assert outbox(db) == [("raised", "district", "Putuo District")]


def test_a_monitor_gone_offline_opens_one_offline_alert_resolved_when_it_is_back(db):
    eid = register_equipment(db, "EL-R5")
    quiet = register_equipment(db, "EL-R6")
    db.execute("INSERT INTO equipment_state (equipment_id, status, last_seen) VALUES (%s, 'online', %s),"
               " (%s, 'online', %s)", (eid, NOW - timedelta(seconds=10), quiet, NOW - timedelta(minutes=10)))
    assert presence_job(db, NOW, timedelta(seconds=180)) == (1, 1, 0)
    assert presence_job(db, NOW + timedelta(minutes=1), timedelta(seconds=180)) == (0, 0, 0)
    [alert] = db.execute("SELECT * FROM alerts").fetchall()
    assert (alert["equipment_id"], alert["kind"], alert["source"], alert["state"]) == \
        (quiet, "offline", "presence", "open")
    db.execute("UPDATE equipment_state SET status = 'online', last_seen = %s WHERE equipment_id = %s",
               (NOW + timedelta(minutes=2), quiet))
    assert presence_job(db, NOW + timedelta(minutes=2), timedelta(seconds=180)) == (0, 0, 1)
    assert db.execute("SELECT state FROM alerts").fetchone()["state"] == "resolved"
    assert [e for e, _, _ in outbox(db)] == ["raised", "resolved"]


class CountingCursor(psycopg.Cursor):
    """Counts the statements a connection sends, to tell a set-based batch from one statement per row."""

    statements = 0

    def execute(self, *args, **kwargs):
        CountingCursor.statements += 1
        return super().execute(*args, **kwargs)


def test_a_batch_of_ten_thousand_raises_is_set_based(db, db_url):
    firm = db.execute("INSERT INTO maintenance_firms (name) VALUES ('Batch Firm') RETURNING id").fetchone()["id"]
    district = db.execute("INSERT INTO districts (name) VALUES ('Batch District') RETURNING id").fetchone()["id"]
    db.execute("INSERT INTO equipment (code, type, district_id, firm_id) SELECT 'B-' || n, 'elevator', %s, %s"
               " FROM generate_series(1, 10000) n", (district, firm))
    ids = [r["id"] for r in db.execute("SELECT id FROM equipment ORDER BY id")]
    batch = [AlertInput(i, "overspeed", "high", "too fast", NOW, {"speed_mps": 2.1}) for i in ids]
    with psycopg.connect(db_url, row_factory=dict_row, cursor_factory=CountingCursor) as conn:
        CountingCursor.statements = 0
        started = time.perf_counter()
        result = raise_alerts(conn, "rule", batch)
        again = raise_alerts(conn, "rule", batch[:10])
        conn.commit()
        elapsed = time.perf_counter() - started
    print(f"10,000 raises with their 20,000 outbox rows: {elapsed:.2f} s")
    assert (result.raised, result.repeated, again.raised, again.repeated) == (10000, 0, 0, 10)
    assert CountingCursor.statements <= 8  # a handful per batch, not one per alert
    assert db.execute("SELECT count(*) AS n FROM alerts WHERE state = 'open'").fetchone()["n"] == 10000
    counts = {r["recipient"]: r["n"] for r in db.execute(
        "SELECT recipient, count(*) AS n FROM notifications GROUP BY recipient")}
    assert counts == {"firm": 10010, "district": 10000}
