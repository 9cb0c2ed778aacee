"""Reminders of unacknowledged alerts (docs/escalation.md): an open alert is told again every
alert_reminder_interval_s whether or not new data arrives, until someone acknowledges it; each interval reminds
once, even with two scheduler replicas at the same time."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import dict_row

from alerts.handling import transition
from alerts.reminders import ReminderSettings, remind_unacknowledged, settings_from_config
from alerts.store import raise_alert
from models.scheduler import job_table, run_locked
from semon.audit import Actor
from semon.config import ConfigError, load_config
from semon.scope import Scope
from tests.conftest import add_user, register_equipment

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
EVERY_10_MINUTES = ReminderSettings(timedelta(minutes=10), ("critical", "high"))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def raise_fault(db: psycopg.Connection, equipment_id: int, kind: str = "entrapment", severity: str = "critical",
                seen_at: datetime = T0) -> int:
    change = raise_alert(db, equipment_id=equipment_id, kind=kind, source="device", severity=severity,
                         message=kind, seen_at=seen_at)
    assert change is not None
    return change.alert_id


@pytest.fixture
def elevator(db: psycopg.Connection) -> int:
    return register_equipment(db, "EL-1", use_unit="Block 1 Owners")


def reminders(db: psycopg.Connection, alert_id: int) -> list[tuple]:
    """(when, recipient) of the alert's 'unacknowledged' outbox rows."""
    return [(r["created_at"], r["recipient"]) for r in db.execute(
        "SELECT created_at, recipient FROM notifications WHERE alert_id = %s AND event = 'unacknowledged'"
        " ORDER BY created_at, id", (alert_id,))]


def remind(db: psycopg.Connection, minutes: float, settings: ReminderSettings = EVERY_10_MINUTES) -> int:
    return remind_unacknowledged(db, at(minutes), settings)


def test_an_unacknowledged_alert_is_reminded_to_the_firm_each_interval_and_only_then(db, elevator):
    alert_id = raise_fault(db, elevator)

    assert remind(db, 9.99) == 0
    assert remind(db, 10) == 1
    assert remind(db, 10) == 0
    assert remind(db, 19.99) == 0
    assert remind(db, 20) == 1

    assert reminders(db, alert_id) == [(at(10), "firm"), (at(20), "firm")]
    assert db.execute("SELECT reminded_at, reminder_count FROM alerts WHERE id = %s", (alert_id,)).fetchone() == {
        "reminded_at": at(20), "reminder_count": 2}


def test_new_data_on_the_alert_does_not_put_the_reminder_off(db, elevator):
    alert_id = raise_fault(db, elevator)
    raise_fault(db, elevator, seen_at=at(7))  # the monitor reports it again

    assert db.execute("SELECT count FROM alerts WHERE id = %s", (alert_id,)).fetchone()["count"] == 2
    assert remind(db, 10) == 1
    assert reminders(db, alert_id) == [(at(10), "firm")]


def test_a_quiet_alert_is_reminded_though_no_data_arrives(db, elevator):
    alert_id = raise_fault(db, elevator)

    for minutes in (10, 20, 30, 40):
        remind(db, minutes)

    assert [when for when, _ in reminders(db, alert_id)] == [at(10), at(20), at(30), at(40)]


def test_reminders_stop_once_the_alert_is_acknowledged(db, elevator):
    alert_id = raise_fault(db, elevator)
    remind(db, 10)
    technician = add_user(db, "tech", "firm", firm="Shenghui Elevator Service")
    transition(db, Actor(technician, "tech"), Scope.everything(), alert_id, "acknowledge", now=at(12))

    assert remind(db, 20) == 0
    assert remind(db, 60) == 0
    assert reminders(db, alert_id) == [(at(10), "firm")]


def test_a_reopened_alert_is_reminded_an_interval_after_it_reopened(db, elevator):
    alert_id = raise_fault(db, elevator)
    remind(db, 10)
    db.execute("UPDATE alerts SET reopened_at = %s, reopened_count = 1 WHERE id = %s", (at(15), alert_id))

    assert remind(db, 20) == 0
    assert remind(db, 25) == 1
    assert [when for when, _ in reminders(db, alert_id)] == [at(10), at(25)]


def test_only_the_severities_the_setting_names_are_reminded(db, elevator):
    medium = raise_fault(db, elevator, "door_close_failure", "medium")
    critical = raise_fault(db, elevator)

    assert remind(db, 10) == 1
    assert reminders(db, medium) == [] and len(reminders(db, critical)) == 1
    assert remind(db, 10, ReminderSettings(timedelta(minutes=10), ("medium",))) == 1
    assert reminders(db, medium) == [(at(10), "firm")]
    assert remind(db, 60, ReminderSettings(timedelta(minutes=10), ())) == 0


def test_a_muted_alert_is_not_reminded(db, elevator):
    offline = raise_fault(db, elevator, "offline", "medium")
    alert_id = raise_fault(db, elevator)
    db.execute("UPDATE alerts SET muted_by = %s WHERE id = %s", (offline, alert_id))  # as an inhibition rule marks it

    assert remind(db, 30) == 0
    assert reminders(db, alert_id) == []


def test_two_replicas_at_once_remind_an_interval_once(db, elevator, db_url):
    alert_id = raise_fault(db, elevator)
    with psycopg.connect(db_url, row_factory=dict_row) as first, psycopg.connect(db_url, row_factory=dict_row) as other:
        assert remind_unacknowledged(first, at(10), EVERY_10_MINUTES) == 1  # its transaction still open
        assert remind_unacknowledged(other, at(10), EVERY_10_MINUTES) == 0  # skips the row, does not wait
        first.commit()
        assert remind_unacknowledged(other, at(10.01), EVERY_10_MINUTES) == 0
        other.commit()

    assert reminders(db, alert_id) == [(at(10), "firm")]


def test_two_replicas_in_threads_remind_each_of_many_alerts_once(db, db_url):
    alerts = [raise_fault(db, register_equipment(db, f"EL-{n}")) for n in range(40)]
    start = threading.Barrier(2)
    reminded: list[int] = []

    def replica() -> None:
        with psycopg.connect(db_url, row_factory=dict_row) as conn:
            start.wait()
            reminded.append(remind_unacknowledged(conn, at(10), EVERY_10_MINUTES))

    threads = [threading.Thread(target=replica) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sum(reminded) == 40
    rows = db.execute("SELECT alert_id, count(*) AS n FROM notifications WHERE event = 'unacknowledged'"
                      " GROUP BY alert_id").fetchall()
    assert sorted(r["alert_id"] for r in rows) == sorted(alerts) and {r["n"] for r in rows} == {1}


def test_the_scheduler_runs_reminders_and_escalation_on_the_configured_interval(db, elevator, base_config, db_url):
    config = base_config.replace(database_url=db_url, alert_reminder_interval_s=300.0)
    alert_id = raise_fault(db, elevator)
    jobs = job_table(config)

    assert run_locked(config, "alert_reminders", jobs["alert_reminders"][0], at(5)) == 1
    assert run_locked(config, "escalation", jobs["escalation"][0], at(5)) == 1
    assert reminders(db, alert_id) == [(at(5), "firm")]
    assert db.execute("SELECT escalation_stage FROM alerts WHERE id = %s", (alert_id,)).fetchone() == {
        "escalation_stage": 1}


def test_the_reminder_settings_are_read_from_the_configuration():
    config = load_config(environ={"SEMON_ALERT_REMINDER_INTERVAL_S": "120",
                                                            "SEMON_ALERT_REMINDER_SEVERITIES": "critical, medium"})
    assert settings_from_config(config) == ReminderSettings(timedelta(minutes=2), ("critical", "medium"))
    assert settings_from_config(load_config(environ={})) == EVERY_10_MINUTES
    with pytest.raises(ConfigError, match="alert_reminder_severities = 'critical,urgent': urgent: each must be one of"
                                          " critical, high, medium, low"):
        load_config(environ={"SEMON_ALERT_REMINDER_SEVERITIES": "critical,urgent"})
