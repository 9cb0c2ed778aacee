"""Presence: whether a monitor is online. An equipment whose monitor has missed its heartbeats is offline, like
one whose last will arrived; the presence job marks it so and keeps one `offline` alert open while it lasts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from alerts.store import raise_alerts_from, resolve_alerts_absent
from semon.vocabulary import CONNECTION_STATES as CONNECTION_STATES  # the states connection_sql gives


def offline_after(config: Any) -> timedelta:
    """How long a monitor may stay silent before it counts as offline: offline_after_missed_heartbeats
    heartbeats of heartbeat_interval_s."""
    return timedelta(seconds=config.heartbeat_interval_s * config.offline_after_missed_heartbeats)


def connection_sql(state: str = "s", offline_after_param: str = "offline_after", now: str = "now()") -> str:
    """SQL for (connection, offline_since) of an equipment_state row aliased `state`: offline when the monitor
    said so (its last will) or has been silent for %(offline_after)s; no_data when it never reported."""
    seen = f"COALESCE({state}.last_seen, {state}.status_changed_at)"
    silent = f"{seen} < {now} - %({offline_after_param})s"
    return (f"CASE WHEN {state}.status IS NULL AND {state}.last_seen IS NULL THEN 'no_data'"
            f" WHEN {state}.status = 'offline' THEN 'offline'"
            f" WHEN {silent} THEN 'offline' ELSE 'online' END AS connection,"
            f" CASE WHEN {state}.status = 'offline' THEN COALESCE({state}.status_changed_at, {state}.last_seen)"
            f" WHEN {silent} THEN {seen} END AS offline_since")


def mark_silent_offline(conn: psycopg.Connection, now: datetime, silence: timedelta) -> int:
    """Mark offline every equipment not heard from for `silence`; returns how many changed."""
    cur = conn.execute("""UPDATE equipment_state SET status = 'offline', status_changed_at = %(now)s
                          WHERE status IS DISTINCT FROM 'offline' AND last_seen < %(cutoff)s""",
                       {"now": now, "cutoff": now - silence})
    return cur.rowcount


ALERT_KIND = "offline"
# A silent monitor hides every fault it would report: the firm must know, but it is not itself a hazard to the
# district's inspectors (alert_routes sends them high and critical alerts).
SEVERITY = "medium"
_OFFLINE = f"""
SELECT s.equipment_id, '{ALERT_KIND}' AS kind, '{SEVERITY}' AS severity,
       'monitor offline since ' || to_char(COALESCE(s.status_changed_at, s.last_seen), 'YYYY-MM-DD HH24:MI TZH:TZM')
           AS message,
       jsonb_build_object('last_seen', s.last_seen) AS detail,
       COALESCE(s.status_changed_at, s.last_seen, %(now)s) AS seen_at
  FROM equipment_state s JOIN equipment e ON e.id = s.equipment_id
 WHERE s.status = 'offline' AND e.status = 'in_use'"""


def sync_offline_alerts(conn: psycopg.Connection, now: datetime) -> tuple[int, int]:
    """Open an `offline` alert for each in-use equipment whose monitor is offline, resolve those back online;
    returns (opened, resolved)."""
    opened = raise_alerts_from(conn, "presence", _OFFLINE, {"now": now}, repeat=False, at=now).raised
    resolved = resolve_alerts_absent(conn, "presence", ALERT_KIND, _OFFLINE, {"now": now}, at=now)
    return opened, resolved


def presence_job(conn: psycopg.Connection, now: datetime, silence: timedelta) -> tuple[int, int, int]:
    """The scheduler's presence job: mark silent monitors offline, then sync the offline alerts."""
    marked = mark_silent_offline(conn, now, silence)
    return (marked, *sync_offline_alerts(conn, now))
