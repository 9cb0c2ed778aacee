"""Reminders of unacknowledged alerts (docs/escalation.md): an alert still open (nobody acknowledged it) is told again
to whoever routing names for 'unacknowledged', every `alert_reminder_interval_s`, whether or not new data arrives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from alerts.routing import held_back_sql, queue_sql
from semon.config import Config


@dataclass(frozen=True)
class ReminderSettings:
    interval: timedelta
    severities: tuple[str, ...]


def settings_from_config(config: Config) -> ReminderSettings:
    """The reminder settings in force."""
    return ReminderSettings(timedelta(seconds=config.alert_reminder_interval_s),
                            tuple(config.alert_reminder_severities))


# Each interval reminds once: the interval runs from the latest of first seen, reopened and last reminded, and the
# rows are locked (skipping those another run holds) and re-checked, so a second replica finds them reminded.
_DUE = f"""a.state = 'open' AND a.severity = ANY (%(severities)s) AND NOT {held_back_sql("a", "%(now)s")}
       AND GREATEST(a.first_seen, a.reopened_at, a.reminded_at) + %(interval)s <= %(now)s"""
_REMIND = f"""
WITH due AS (
    SELECT a.id FROM alerts a WHERE {_DUE} ORDER BY a.id FOR UPDATE SKIP LOCKED),
reminded AS (
    UPDATE alerts a SET reminded_at = %(now)s, reminder_count = a.reminder_count + 1
      FROM due WHERE a.id = due.id AND {_DUE}
    RETURNING a.id, a.equipment_id, a.severity, a.source),
changes AS (
    SELECT id AS alert_id, NULL::bigint AS reminder_id, equipment_id, 'unacknowledged' AS event, severity, source,
           %(now)s::timestamptz AS at
      FROM reminded),
queued AS ({{queue}})
SELECT count(*) AS n FROM reminded"""


def remind_unacknowledged(conn: psycopg.Connection, now: datetime, settings: ReminderSettings) -> int:
    """Queue an 'unacknowledged' reminder for every open alert whose interval has passed; returns how many alerts."""
    if not settings.severities:
        return 0
    row = conn.execute(_REMIND.format(queue=queue_sql("changes")),
                       {"now": now, "interval": settings.interval, "severities": list(settings.severities)}).fetchone()
    return row["n"] if isinstance(row, dict) else row[0]
