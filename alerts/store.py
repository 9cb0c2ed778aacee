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

from alerts import silences
from alerts.inhibition import MUTERS_SQL, muted_sql
from alerts.routing import queue_sql
from semon.config import SETTINGS_BY_NAME


@dataclass(frozen=True)
class AlertChange:
    alert_id: int
    event: str  # raised, repeated, reopened or resolved


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
    raised: int        # alerts opened
    repeated: int      # repeats counted on alerts already open
    reopened: int = 0  # alerts resolved lately and open again (docs/alert-handling.md)


# A relation of alert inputs has these columns (equipment_id, kind, severity, message, detail, seen_at).
INPUT_COLUMNS = ("equipment_id", "kind", "severity", "message", "detail", "seen_at")

# The setting alert_reopen_within_s: a (equipment, kind) that recurs this soon after its alert was resolved reopens
# that alert. Processes set it from their config (configure); the setting's default until then.
_settings = {"reopen_within_s": float(SETTINGS_BY_NAME["alert_reopen_within_s"].default)}


def configure(config: Any) -> None:
    """Take the alert settings (alert_reopen_within_s) from a semon Config."""
    _settings["reopen_within_s"] = float(config.alert_reopen_within_s)


# Occurrences of one (equipment, kind) in a batch are grouped first (one row may be changed once per statement):
# the latest gives the message and detail, and each counts. Each is marked as it is raised (docs/alert-handling.md):
# muted_by, the open alert that explains it (alerts/inhibition.py), and silence_id, the maintenance window it falls
# in (alerts/silences.py). A (equipment, kind) whose alert was resolved within %(reopen_within)s seconds of its first
# occurrence and has none open reopens that alert; the others insert. The partial unique index alerts_one_open keeps
# one open alert per (equipment, kind) even when two writers race: of two reopening the same alert the second finds
# it open (its UPDATE re-checks the state) and takes the INSERT's path, where the conflict counts a repeat
# (repeat=True) or leaves it as it is (repeat=False: a condition still true is not a new occurrence).
# A new alert's step is dated by its first occurrence, a reopened one's by its recurrence (the monitor's time, as the
# resolution's is); its outbox rows by when they were queued. New and reopened alerts that carry a mark are left out
# of the queue here: the rows this statement writes are not visible to queue_sql's own check of the marks, which
# covers every later change of them.
_RAISE = """
WITH input AS (
    SELECT i.equipment_id, i.kind, (array_agg(i.severity ORDER BY i.seen_at DESC))[1] AS severity,
           (array_agg(i.message ORDER BY i.seen_at DESC))[1] AS message,
           (array_agg(i.detail ORDER BY i.seen_at DESC))[1] AS detail,
           min(i.seen_at) AS first_seen, max(i.seen_at) AS last_seen, count(*)::integer AS n,
           min(e.firm_id) AS firm_id, min(e.use_unit_id) AS use_unit_id, min(e.district_id) AS district_id,
           COALESCE(%(alert_at)s::timestamptz, max(i.seen_at)) AS mark_at
      FROM ({relation}) i JOIN equipment e ON e.id = i.equipment_id GROUP BY i.equipment_id, i.kind),
muters AS MATERIALIZED ({muters}),
muted AS ({muted}),
silenced AS ({silenced}),
marked AS (
    SELECT i.*, m.muted_by, s.silence_id
      FROM input i LEFT JOIN muted m USING (equipment_id, kind) LEFT JOIN silenced s USING (equipment_id, kind)),
lately AS (
    SELECT DISTINCT ON (a.equipment_id, a.kind) a.id, a.equipment_id, a.kind, a.resolved_at
      FROM alerts a
     WHERE a.state = 'resolved'
       AND a.resolved_at >= (SELECT min(first_seen) FROM input) - %(reopen_within)s * interval '1 second'
     ORDER BY a.equipment_id, a.kind, a.resolved_at DESC),
reopenable AS (
    SELECT l.id, i.* FROM marked i JOIN lately l USING (equipment_id, kind)
     WHERE l.resolved_at >= i.first_seen - %(reopen_within)s * interval '1 second'
       AND NOT EXISTS (SELECT FROM alerts o WHERE o.equipment_id = i.equipment_id AND o.kind = i.kind
                                              AND o.state <> 'resolved')),
reopened AS (
    UPDATE alerts a SET state = 'open', reopened_count = a.reopened_count + 1,
           reopened_at = COALESCE(%(alert_at)s::timestamptz, r.first_seen), resolved_at = NULL, resolved_by = NULL,
           acknowledged_at = NULL, acknowledged_by = NULL, on_site_at = NULL, on_site_by = NULL,
           escalation_stage = 0, severity = r.severity, message = r.message, detail = a.detail || r.detail,
           count = a.count + r.n, last_seen = GREATEST(a.last_seen, r.last_seen),
           sources = CASE WHEN %(alert_source)s = ANY (a.sources) THEN a.sources
                          ELSE a.sources || %(alert_source)s::text END,
           muted_by = r.muted_by, silence_id = r.silence_id
      FROM reopenable r
     WHERE a.id = r.id AND a.state = 'resolved'
    RETURNING a.id, a.equipment_id, a.kind, a.severity, a.source, a.muted_by, a.silence_id,
              a.reopened_at AS step_at),
raised AS (
    INSERT INTO alerts AS a (equipment_id, kind, source, sources, severity, firm_id, message, detail, count,
                             first_seen, last_seen, muted_by, silence_id)
    SELECT i.equipment_id, i.kind, %(alert_source)s, ARRAY[%(alert_source)s::text], i.severity, i.firm_id, i.message,
           i.detail, i.n, i.first_seen, i.last_seen, i.muted_by, i.silence_id
      FROM marked i
     WHERE NOT EXISTS (SELECT FROM reopened r WHERE r.equipment_id = i.equipment_id AND r.kind = i.kind)
    ON CONFLICT (equipment_id, kind) WHERE state <> 'resolved' DO {on_conflict}
    RETURNING a.id, a.equipment_id, a.kind, a.severity, a.source, a.muted_by, a.silence_id, (xmax = 0) AS inserted,
              COALESCE(%(alert_at)s::timestamptz, a.first_seen) AS step_at),
changes AS (
    SELECT id AS alert_id, NULL::bigint AS reminder_id, equipment_id, kind,
           CASE WHEN inserted THEN 'raised' ELSE 'repeated' END AS event, severity, source,
           COALESCE(%(alert_at)s::timestamptz, now()) AS at, muted_by, silence_id, inserted AS new, step_at
      FROM raised
    UNION ALL
    SELECT id, NULL::bigint, equipment_id, kind, 'reopened', severity, source,
           COALESCE(%(alert_at)s::timestamptz, now()), muted_by, silence_id, true, step_at
      FROM reopened),
steps AS (
    INSERT INTO alert_steps (alert_id, at, step, detail)
    SELECT alert_id, step_at, event, '{{}}'::jsonb FROM changes WHERE new
    UNION ALL
    SELECT alert_id, step_at, 'muted', jsonb_build_object('muted_by', muted_by) FROM changes
     WHERE new AND muted_by IS NOT NULL
    UNION ALL
    SELECT alert_id, step_at, 'silenced', jsonb_build_object('silence_id', silence_id) FROM changes
     WHERE new AND silence_id IS NOT NULL),
notified AS (SELECT * FROM changes WHERE NOT (new AND (muted_by IS NOT NULL OR silence_id IS NOT NULL))),
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
           " count(*) FILTER (WHERE event = 'repeated') AS repeated,"
           " count(*) FILTER (WHERE event = 'reopened') AS reopened FROM changes")

# `target` picks the open alerts to resolve (alias a); each change is notified like a raise, and is a step of the
# alert's timeline taken by semon.
_RESOLVE = """
WITH resolved AS (
    UPDATE alerts a SET state = 'resolved', resolved_at = {resolved_at}
    {target}
    RETURNING a.id, a.equipment_id, a.kind, a.severity, a.source, a.resolved_at),
changes AS (
    SELECT id AS alert_id, NULL::bigint AS reminder_id, equipment_id, kind, 'resolved' AS event, severity, source,
           COALESCE(%(alert_at)s::timestamptz, resolved_at) AS at
      FROM resolved),
steps AS (INSERT INTO alert_steps (alert_id, at, step) SELECT alert_id, at, 'resolved' FROM changes),
queued AS ({queue})
{select}"""

# Alerts still open whose muting alert is resolved: unmuted (a step) and notified as raised, since nobody was told
# of them. A statement of its own after the resolution, so that queue_sql sees the explanation resolved.
_UNMUTE = """
WITH unmuted AS (
    UPDATE alerts a SET muted_by = NULL
      FROM alerts m
     WHERE a.muted_by = m.id AND m.state = 'resolved' AND a.state <> 'resolved'
    RETURNING a.id, a.equipment_id, a.kind, a.severity, a.source, m.id AS muter_id, m.resolved_at),
changes AS (
    SELECT id AS alert_id, NULL::bigint AS reminder_id, equipment_id, kind, 'raised' AS event, severity, source,
           GREATEST(COALESCE(%(alert_at)s::timestamptz, resolved_at), resolved_at) AS at, muter_id
      FROM unmuted),
steps AS (INSERT INTO alert_steps (alert_id, at, step, detail)
          SELECT alert_id, at, 'unmuted', jsonb_build_object('muted_by', muter_id) FROM changes),
queued AS ({queue})
SELECT count(*) AS n FROM changes"""
_ONE_VALUES = ("SELECT * FROM (VALUES (%(equipment_id)s::integer, %(kind)s::text, %(severity)s::text,"
               " %(message)s::text, %(detail)s::jsonb, %(seen_at)s::timestamptz)) AS v (" + ", ".join(INPUT_COLUMNS)
               + ")")


def _raise_sql(relation: str, repeat: bool, select: str) -> str:
    return _RAISE.format(relation=relation, on_conflict=_REPEAT if repeat else "NOTHING",
                         muters=MUTERS_SQL, muted=muted_sql("input", "muters", "%(alert_source)s"),
                         silenced=silences.covering_sql("input"), queue=queue_sql("notified"), select=select)


def _raise_params(source: str, at: datetime | None, reopen_within_s: float | None) -> dict[str, Any]:
    within = _settings["reopen_within_s"] if reopen_within_s is None else reopen_within_s
    return {"alert_source": source, "alert_at": at, "reopen_within": within}


def _one(row: Any) -> tuple:
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


def raise_alert(conn: psycopg.Connection, *, equipment_id: int, kind: str, source: str, severity: str,
                message: str, seen_at: datetime, detail: Mapping[str, Any] | None = None,
                repeat: bool = True, reopen_within_s: float | None = None) -> AlertChange | None:
    """Open the (equipment, kind) alert (or reopen the one resolved lately), or count a repeat of the open one;
    queue what routing says. None when repeat=False found it already open."""
    row = conn.execute(_raise_sql(_ONE_VALUES, repeat, _ONE), {
        "equipment_id": equipment_id, "kind": kind, "severity": severity, "message": message,
        "detail": Jsonb(dict(detail or {})), "seen_at": seen_at} | _raise_params(source, None, reopen_within_s),
    ).fetchone()
    if row is None:
        if repeat or not conn.execute("SELECT FROM equipment WHERE id = %s", (equipment_id,)).fetchone():
            raise LookupError(f"no equipment with id {equipment_id}")
        return None
    alert_id, event = _one(row)
    return AlertChange(alert_id, event)


def raise_alerts_from(conn: psycopg.Connection, source: str, query: str, params: Mapping[str, Any] | None = None,
                      *, repeat: bool = True, at: datetime | None = None,
                      reopen_within_s: float | None = None) -> BatchResult:
    """Raise, set-based, every alert a query yields (columns INPUT_COLUMNS); the query's own parameters are
    `params`. Equipment ids that do not exist are skipped."""
    row = conn.execute(_raise_sql(query, repeat, _COUNTS),
                       dict(params or {}) | _raise_params(source, at, reopen_within_s)).fetchone()
    raised, repeated, reopened = _one(row)
    return BatchResult(raised, repeated, reopened)


def raise_alerts(conn: psycopg.Connection, source: str, alerts: Iterable[AlertInput], *, repeat: bool = True,
                 at: datetime | None = None, reopen_within_s: float | None = None) -> BatchResult:
    """Raise a batch of alerts set-based: COPY into a scratch table, then one statement."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS alert_input (equipment_id integer, kind text, severity text,"
                 " message text, detail jsonb, seen_at timestamptz)")
    conn.execute("TRUNCATE alert_input")
    with conn.cursor().copy(f"COPY alert_input ({', '.join(INPUT_COLUMNS)}) FROM STDIN") as copy:
        for alert in alerts:
            copy.write_row((alert.equipment_id, alert.kind, alert.severity, alert.message,
                            Jsonb(dict(alert.detail)), alert.seen_at))
    return raise_alerts_from(conn, source, "SELECT * FROM alert_input", repeat=repeat, at=at,
                             reopen_within_s=reopen_within_s)


def unmute_explained(conn: psycopg.Connection, at: datetime | None = None) -> int:
    """Unmute the open alerts whose muting alert is resolved, each a step, and queue them as raised: they are
    notified now (docs/alert-handling.md). Returns how many."""
    row = conn.execute(_UNMUTE.format(queue=queue_sql("changes")), {"alert_at": at}).fetchone()
    return _one(row)[0]


def resolve_alert(conn: psycopg.Connection, *, equipment_id: int, kind: str,
                  resolved_at: datetime) -> AlertChange | None:
    """Resolve the open (equipment, kind) alert, if there is one; queue what routing says, and notify the alerts it
    muted."""
    sql = _RESOLVE.format(
        resolved_at="%(resolved_at)s",
        target="WHERE a.equipment_id = %(equipment_id)s AND a.kind = %(kind)s AND a.state <> 'resolved'",
        queue=queue_sql("changes"), select=_ONE)
    row = conn.execute(sql, {"equipment_id": equipment_id, "kind": kind, "resolved_at": resolved_at,
                             "alert_at": None}).fetchone()
    if row is None:
        return None
    alert_id, event = _one(row)
    unmute_explained(conn)
    return AlertChange(alert_id, event)


def resolve_alerts_absent(conn: psycopg.Connection, source: str, kind_pattern: str, present: str,
                          params: Mapping[str, Any] | None = None, *, at: datetime) -> int:
    """Resolve, set-based, the open alerts of `source` whose kind is LIKE `kind_pattern` and whose (equipment_id,
    kind) the query `present` no longer yields: the condition is over; then notify the alerts they muted. Returns how
    many were resolved."""
    sql = _RESOLVE.format(
        resolved_at="%(alert_at)s",
        target=f"""WHERE a.source = %(alert_source)s AND a.kind LIKE %(alert_kinds)s AND a.state <> 'resolved'
      AND NOT EXISTS (SELECT FROM ({present}) p WHERE p.equipment_id = a.equipment_id AND p.kind = a.kind)""",
        queue=queue_sql("changes"), select="SELECT count(*) AS n FROM changes")
    row = conn.execute(sql, dict(params or {}) | {"alert_source": source, "alert_kinds": kind_pattern,
                                                  "alert_at": at}).fetchone()
    resolved = _one(row)[0]
    if resolved:
        unmute_explained(conn, at)
    return resolved
