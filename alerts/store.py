"""Alerts: one open alert per (equipment, kind), raised, repeated and resolved, one at a time or set-based for a
batch, each change queued in the outbox for the recipients alerts/routing.py names (docs/alerts.md).

Every source of alerts (device events, compliance, presence, rules, models) writes through this module."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from alerts.routing import queue_sql


@dataclass(frozen=True)
class AlertChange:
    alert_id: int
    event: str  # raised, repeated or resolved


@dataclass(frozen=True)
class AlertInput:
    """One occurrence of a hazard on an equipment, to be raised."""

    equipment_id: int
    kind: str
    severity: str
    message: str
    seen_at: datetime
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchResult:
    raised: int      # alerts opened
    repeated: int    # repeats counted on alerts already open


# A relation of alert inputs has these columns (equipment_id, kind, severity, message, detail, seen_at).
INPUT_COLUMNS = ("equipment_id", "kind", "severity", "message", "detail", "seen_at")

# Occurrences of one (equipment, kind) in a batch are grouped first (one row may be changed once per statement):
# the latest gives the message and detail, and each counts. The partial unique index alerts_one_open keeps one
# open alert per (equipment, kind) even when two writers race; on conflict an open alert counts a repeat
# (repeat=True) or is left as it is (repeat=False: a condition still true is not a new occurrence).
_RAISE = """
WITH input AS (
    SELECT equipment_id, kind, (array_agg(severity ORDER BY seen_at DESC))[1] AS severity,
           (array_agg(message ORDER BY seen_at DESC))[1] AS message,
           (array_agg(detail ORDER BY seen_at DESC))[1] AS detail,
           min(seen_at) AS first_seen, max(seen_at) AS last_seen, count(*)::integer AS n
      FROM ({relation}) i GROUP BY equipment_id, kind),
raised AS (
    INSERT INTO alerts AS a (equipment_id, kind, source, sources, severity, firm_id, message, detail, count,
                             first_seen, last_seen)
    SELECT i.equipment_id, i.kind, %(alert_source)s, ARRAY[%(alert_source)s::text], i.severity, e.firm_id, i.message,
           i.detail, i.n, i.first_seen, i.last_seen
      FROM input i JOIN equipment e ON e.id = i.equipment_id
    ON CONFLICT (equipment_id, kind) WHERE state <> 'resolved' DO {on_conflict}
    RETURNING a.id, a.equipment_id, a.kind, a.severity, a.source, (xmax = 0) AS inserted),
changes AS (
    SELECT id AS alert_id, NULL::bigint AS reminder_id, equipment_id, kind,
           CASE WHEN inserted THEN 'raised' ELSE 'repeated' END AS event, severity, source,
           COALESCE(%(alert_at)s::timestamptz, now()) AS at
      FROM raised),
queued AS ({queue})
{select}"""
# A repeat from another source (the monitor's event and the rule on its telemetry) records that source too.
_REPEAT = """UPDATE SET
    count = a.count + EXCLUDED.count,
    sources = CASE WHEN EXCLUDED.source = ANY (a.sources) THEN a.sources ELSE a.sources || EXCLUDED.source END,
    last_seen = GREATEST(a.last_seen, EXCLUDED.last_seen),
    message = EXCLUDED.message,
    detail = a.detail || EXCLUDED.detail"""
_ONE = "SELECT alert_id, event FROM changes"
_COUNTS = ("SELECT count(*) FILTER (WHERE event = 'raised') AS raised,"
           " count(*) FILTER (WHERE event = 'repeated') AS repeated FROM changes")

# `target` picks the open alerts to resolve (alias a); each change is notified like a raise.
_RESOLVE = """
WITH resolved AS (
    UPDATE alerts a SET state = 'resolved', resolved_at = {resolved_at}
    {target}
    RETURNING a.id, a.equipment_id, a.kind, a.severity, a.source, a.resolved_at),
changes AS (
    SELECT id AS alert_id, NULL::bigint AS reminder_id, equipment_id, kind, 'resolved' AS event, severity, source,
           COALESCE(%(alert_at)s::timestamptz, resolved_at) AS at
      FROM resolved),
queued AS ({queue})
{select}"""
_ONE_VALUES = ("SELECT * FROM (VALUES (%(equipment_id)s::integer, %(kind)s::text, %(severity)s::text,"
               " %(message)s::text, %(detail)s::jsonb, %(seen_at)s::timestamptz)) AS v (" + ", ".join(INPUT_COLUMNS)
               + ")")


def _raise_sql(relation: str, repeat: bool, select: str) -> str:
    return _RAISE.format(relation=relation, on_conflict=_REPEAT if repeat else "NOTHING",
                         queue=queue_sql("changes"), select=select)


def _one(row: Any) -> tuple:
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


def raise_alert(conn: psycopg.Connection, *, equipment_id: int, kind: str, source: str, severity: str,
                message: str, seen_at: datetime, detail: Mapping[str, Any] | None = None,
                repeat: bool = True) -> AlertChange | None:
    """Open the (equipment, kind) alert, or count a repeat of the open one; queue what routing says.
    None when repeat=False found it already open."""
    row = conn.execute(_raise_sql(_ONE_VALUES, repeat, _ONE), {
        "equipment_id": equipment_id, "kind": kind, "severity": severity, "message": message,
        "detail": Jsonb(dict(detail or {})), "seen_at": seen_at, "alert_source": source, "alert_at": None,
    }).fetchone()
    if row is None:
        if repeat or not conn.execute("SELECT FROM equipment WHERE id = %s", (equipment_id,)).fetchone():
            raise LookupError(f"no equipment with id {equipment_id}")
        return None
    alert_id, event = _one(row)
    return AlertChange(alert_id, event)


def raise_alerts_from(conn: psycopg.Connection, source: str, query: str, params: Mapping[str, Any] | None = None,
                      *, repeat: bool = True, at: datetime | None = None) -> BatchResult:
    """Raise, set-based, every alert a query yields (columns INPUT_COLUMNS); the query's own parameters are
    `params`. Equipment ids that do not exist are skipped."""
    row = conn.execute(_raise_sql(query, repeat, _COUNTS),
                       dict(params or {}) | {"alert_source": source, "alert_at": at}).fetchone()
    raised, repeated = _one(row)
    return BatchResult(raised, repeated)


def raise_alerts(conn: psycopg.Connection, source: str, alerts: Iterable[AlertInput], *, repeat: bool = True,
                 at: datetime | None = None) -> BatchResult:
    """Raise a batch of alerts set-based: COPY into a scratch table, then one statement."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS alert_input (equipment_id integer, kind text, severity text,"
                 " message text, detail jsonb, seen_at timestamptz)")
    conn.execute("TRUNCATE alert_input")
    with conn.cursor().copy(f"COPY alert_input ({', '.join(INPUT_COLUMNS)}) FROM STDIN") as copy:
        for alert in alerts:
            copy.write_row((alert.equipment_id, alert.kind, alert.severity, alert.message,
                            Jsonb(dict(alert.detail)), alert.seen_at))
    return raise_alerts_from(conn, source, "SELECT * FROM alert_input", repeat=repeat, at=at)


def resolve_alert(conn: psycopg.Connection, *, equipment_id: int, kind: str,
                  resolved_at: datetime) -> AlertChange | None:
    """Resolve the open (equipment, kind) alert, if there is one; queue what routing says."""
    sql = _RESOLVE.format(
        resolved_at="%(resolved_at)s",
        target="WHERE a.equipment_id = %(equipment_id)s AND a.kind = %(kind)s AND a.state <> 'resolved'",
        queue=queue_sql("changes"), select=_ONE)
    row = conn.execute(sql, {"equipment_id": equipment_id, "kind": kind, "resolved_at": resolved_at,
                             "alert_at": None}).fetchone()
    if row is None:
        return None
    alert_id, event = _one(row)
    return AlertChange(alert_id, event)


def resolve_alerts_absent(conn: psycopg.Connection, source: str, kind_pattern: str, present: str,
                          params: Mapping[str, Any] | None = None, *, at: datetime) -> int:
    """Resolve, set-based, the open alerts of `source` whose kind is LIKE `kind_pattern` and whose (equipment_id,
    kind) the query `present` no longer yields: the condition is over. Returns how many."""
    sql = _RESOLVE.format(
        resolved_at="%(alert_at)s",
        target=f"""WHERE a.source = %(alert_source)s AND a.kind LIKE %(alert_kinds)s AND a.state <> 'resolved'
      AND NOT EXISTS (SELECT FROM ({present}) p WHERE p.equipment_id = a.equipment_id AND p.kind = a.kind)""",
        queue=queue_sql("changes"), select="SELECT count(*) AS n FROM changes")
    row = conn.execute(sql, dict(params or {}) | {"alert_source": source, "alert_kinds": kind_pattern,
                                                  "alert_at": at}).fetchone()
    return _one(row)[0]

