"""Alerts and the scheduler's jobs against the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row

from alerts.store import raise_alert, resolve_alert
from ingest.messages import Equipment, Event
from ingest.writer import BatchWriter
from models.scheduler import run_locked
from tests.conftest import register_equipment

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def alerts(db, **where):
    clause = " AND ".join(f"{k} = %({k})s" for k in where) or "true"
    return db.execute(f"SELECT * FROM alerts WHERE {clause} ORDER BY id", where).fetchall()


def write_events(db_url: str, *events: tuple[int, str, str, datetime, int]) -> None:
    """Store (equipment_id, code, state, ts, seq) events as the ingester's writer does: one batch, one transaction."""
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        BatchWriter(conn).write([Event(Equipment(eid, f"EL-{eid}", "elevator"), ts, seq, code, state, {})
                                 for eid, code, state, ts, seq in events])


def test_a_repeat_counts_on_the_one_open_alert(db):
    eid = register_equipment(db, "EL-A1")
    first = raise_alert(db, equipment_id=eid, kind="entrapment", source="device", severity="critical",
                        message="trapped", seen_at=NOW)
    again = raise_alert(db, equipment_id=eid, kind="entrapment", source="device", severity="critical",
                        message="trapped", seen_at=NOW + timedelta(minutes=1))
    assert (first.event, again.event, first.alert_id) == ("raised", "repeated", again.alert_id)
    [alert] = alerts(db)
    assert alert["count"] == 2 and alert["last_seen"] == NOW + timedelta(minutes=1)
    assert alert["firm_id"] is not None
    resolve_alert(db, equipment_id=eid, kind="entrapment", resolved_at=NOW + timedelta(minutes=5))
    raise_alert(db, equipment_id=eid, kind="entrapment", source="device", severity="critical",
                message="trapped again", seen_at=NOW + timedelta(hours=2))  # after alert_reopen_within_s
    assert [a["state"] for a in alerts(db)] == ["resolved", "open"]
    events = [r["event"] for r in db.execute("SELECT event FROM notifications WHERE recipient = 'firm' ORDER BY id")]
    assert events == ["raised", "repeated", "resolved", "raised"]


def test_the_database_refuses_a_second_open_alert(db):
    eid = register_equipment(db, "EL-A2")
    db.execute("INSERT INTO alerts (equipment_id, kind, source, severity) VALUES (%s, 'overspeed', 'rule', 'high')",
               (eid,))
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("INSERT INTO alerts (equipment_id, kind, source, severity) "
                   "VALUES (%s, 'overspeed', 'rule', 'high')", (eid,))


def test_device_events_open_and_resolve_alerts_as_they_are_stored(db, db_url):
    eid = register_equipment(db, "EL-A3")
    write_events(db_url, (eid, "entrapment", "raised", NOW - timedelta(minutes=10), 1),
                 (eid, "door_close_failure", "raised", NOW - timedelta(minutes=8), 2))
    assert {(a["kind"], a["state"], a["severity"], tuple(a["sources"])) for a in alerts(db)} == {
        ("entrapment", "open", "critical", ("device",)), ("door_close_failure", "open", "medium", ("device",))}
    write_events(db_url, (eid, "entrapment", "cleared", NOW + timedelta(minutes=1), 3))
    assert alerts(db, kind="entrapment")[0]["state"] == "resolved"
    # A redelivered event is not stored twice, so it is not counted twice.
    write_events(db_url, (eid, "door_close_failure", "raised", NOW - timedelta(minutes=8), 2))
    assert alerts(db, kind="door_close_failure")[0]["count"] == 1


def test_a_clear_delivered_before_its_raise_leaves_no_open_alert(db, db_url):
    eid = register_equipment(db, "EL-A4")
    write_events(db_url, (eid, "overspeed", "cleared", NOW - timedelta(minutes=5), 2))
    write_events(db_url, (eid, "overspeed", "raised", NOW - timedelta(minutes=6), 1))
    [alert] = alerts(db)
    assert alert["state"] == "resolved"


def test_a_job_is_skipped_while_another_replica_holds_its_lock(config, db):
    import zlib

    with psycopg.connect(config.database_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (zlib.crc32(b"presence"),))
        assert run_locked(config, "presence", lambda conn, now: "ran") is None
        other.execute("SELECT pg_advisory_unlock(%s)", (zlib.crc32(b"presence"),))
    assert run_locked(config, "presence", lambda conn, now: "ran") == "ran"


def test_equipment_silent_for_three_heartbeats_is_marked_offline(db):
    from models.presence import mark_silent_offline

    quiet, chatty = register_equipment(db, "EL-P1"), register_equipment(db, "EL-P2")
    db.execute("""INSERT INTO equipment_state (equipment_id, status, last_seen) VALUES
                  (%s, 'online', %s), (%s, 'online', %s)""",
               (quiet, NOW - timedelta(seconds=181), chatty, NOW - timedelta(seconds=170)))
    assert mark_silent_offline(db, NOW, timedelta(seconds=180)) == 1
    states = {r["equipment_id"]: (r["status"], r["status_changed_at"])
              for r in db.execute("SELECT * FROM equipment_state")}
    assert states == {quiet: ("offline", NOW), chatty: ("online", None)}
    assert mark_silent_offline(db, NOW, timedelta(seconds=180)) == 0


def test_each_scheduled_job_does_its_work_under_its_lock(config, db):
    from models.scheduler import job_table

    now = datetime.now(UTC)
    jobs = job_table(config)
    assert set(jobs) == {"presence", "rule_expiry", "compliance", "compliance_daily", "rollup", "wear_train",
                         "wear_score", "escalation", "alert_reminders", "delivery"}
    overdue = register_equipment(db, "EL-C1", install_date="2020-01-01")
    db.execute("INSERT INTO inspections (equipment_id, performed_on) VALUES (%s, current_date - 400)", (overdue,))
    silent = register_equipment(db, "EL-C2")
    db.execute("INSERT INTO equipment_state (equipment_id, status, last_seen) VALUES (%s, 'online', %s)",
               (silent, now - timedelta(hours=1)))
    results = {name: run_locked(config, name, job, now) for name, (job, _) in jobs.items()}
    assert results["presence"] == (1, 1, 0)  # marked offline, its offline alert opened
    assert results["compliance"].raised >= 1
    assert results["compliance_daily"] == 1  # one (district, type) group
    assert results["rule_expiry"] == 0  # no dwell running
    assert results["rollup"] == {"elevator": 0, "escalator": 0, "boiler": 0, "pressure_vessel": 0}  # no telemetry
    assert results["wear_train"] == {"elevator": None, "escalator": None, "boiler": None}  # nothing to train on
    nothing = {"scored": 0, "raised": 0, "resolved": 0}
    assert results["wear_score"] == {"elevator": nothing, "escalator": nothing, "boiler": nothing}  # no model yet
    assert (results["escalation"], results["alert_reminders"]) == (0, 0)  # nothing critical, nothing waited for
    kinds = {(a["equipment_id"], a["kind"], a["source"]) for a in alerts(db)}
    assert {(overdue, "overdue:periodic_inspection", "compliance"), (silent, "offline", "presence")} <= kinds
    assert db.execute("SELECT in_use FROM compliance_daily WHERE day = current_date").fetchone()["in_use"] == 2
    # Delivery took the outbox the other jobs filled: nobody of these parties has a contact or an e-mail.
    unreached = db.execute("SELECT count(*) AS n FROM notifications WHERE status = 'failed'"
                           " AND last_error LIKE 'no contact%'").fetchone()["n"]
    assert results["delivery"].no_contact == unreached > 0


def test_the_migration_renames_open_alerts_of_the_old_overdue_kind(db):
    from semon.migrate import MIGRATIONS_DIR

    eid = register_equipment(db, "EL-OLD")
    db.execute("""INSERT INTO alerts (equipment_id, kind, source, severity, message, first_seen, last_seen, state)
                  VALUES (%s, 'inspection_overdue', 'compliance', 'medium', 'old', now(), now(), 'open'),
                         (%s, 'inspection_overdue', 'compliance', 'medium', 'older', now(), now(), 'resolved')""",
               (eid, eid))
    db.execute((MIGRATIONS_DIR / "0008_rename_overdue_alerts.sql").read_text())
    kinds = {(r["state"], r["kind"]) for r in db.execute("SELECT state, kind FROM alerts")}
    assert kinds == {("open", "overdue:periodic_inspection"), ("resolved", "inspection_overdue")}
