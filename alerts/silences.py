"""Maintenance windows (silences, 维保窗口; docs/alert-handling.md): a firm user (for its own equipment, or a use unit's
site all of whose equipment it maintains) or an administrator declares one for an equipment or a use unit's site, with
a reason and an end. Alerts raised in it are recorded with silence_id and not notified; it ends by itself at ends_at
(every check is by time, no job), or earlier when cancelled. Critical alerts (entrapment, overspeed, low water,
overpressure) are never silenced: a trapped passenger is no maintenance noise, and the 30-minute rescue cannot wait
for the window to end.

Each declaration and cancellation is in the audit log."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row

from semon.audit import Actor, record
from semon.scope import Scope, equipment_condition

# Severities a window does not hold back (see the module's docstring).
NEVER_SILENCED = ("critical",)
MAX_REASON = 500
# A window longer than this is more likely a mistake than a plan: a major repair is declared again when it runs on.
MAX_DURATION = timedelta(days=30)
STATES = ("scheduled", "active", "ended", "cancelled")


def in_force_sql(silence: str, at: str) -> str:
    """SQL: whether the silence row `silence` holds at the time `at`."""
    return (f"({silence}.starts_at <= {at} AND {at} < {silence}.ends_at"
            f" AND ({silence}.cancelled_at IS NULL OR {at} < {silence}.cancelled_at))")


def covering_sql(inputs: str) -> str:
    """A query of (equipment_id, kind, silence_id) for the rows of `inputs` (columns equipment_id, kind, use_unit_id,
    severity, mark_at) that a window in force at mark_at covers; the latest declared stands when several do."""
    never = ", ".join(f"'{s}'" for s in NEVER_SILENCED)
    return f"""
SELECT i.equipment_id, i.kind, max(s.id) AS silence_id
  FROM {inputs} i
  JOIN silences s ON (s.equipment_id = i.equipment_id OR s.use_unit_id = i.use_unit_id)
 WHERE i.severity NOT IN ({never}) AND s.ends_at > (SELECT min(mark_at) FROM {inputs})
   AND {in_force_sql('s', 'i.mark_at')}
 GROUP BY i.equipment_id, i.kind"""


class SilenceError(Exception):
    """A window that cannot be declared or cancelled, in one readable line; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Silence:
    """A maintenance window as pages and the API show it."""

    id: int
    equipment_code: str | None
    use_unit: str | None
    reason: str
    starts_at: datetime
    ends_at: datetime
    created_by: str | None
    created_at: datetime
    cancelled_at: datetime | None
    state: str
    alerts_held: int

    def item(self) -> dict[str, Any]:
        """The window as the JSON API gives it."""
        return asdict(self)


_SELECT = """
SELECT s.id, e.code AS equipment_code, u.name AS use_unit, s.reason, s.starts_at, s.ends_at,
       cu.username AS created_by, s.created_at, s.cancelled_at,
       CASE WHEN s.cancelled_at IS NOT NULL AND s.cancelled_at < s.ends_at THEN 'cancelled'
            WHEN %(now)s::timestamptz < s.starts_at THEN 'scheduled'
            WHEN %(now)s::timestamptz < s.ends_at THEN 'active' ELSE 'ended' END AS state,
       (SELECT count(*) FROM alerts a WHERE a.silence_id = s.id)::integer AS alerts_held
  FROM silences s
  LEFT JOIN equipment e ON e.id = s.equipment_id
  LEFT JOIN use_units u ON u.id = s.use_unit_id
  LEFT JOIN users cu ON cu.id = s.created_by
"""


def _visible(scope: Scope) -> tuple[str, dict[str, Any]]:
    """A window is visible when its equipment is, or any equipment of its use unit is."""
    condition, values = equipment_condition(scope, "v", prefix="")
    if not condition:
        return "", {}
    return (f" AND EXISTS (SELECT FROM equipment v WHERE (v.id = s.equipment_id OR v.use_unit_id = s.use_unit_id)"
            f" AND {condition})"), values


def list_silences(conn: psycopg.Connection, scope: Scope, now: datetime, *, ended: bool = False) -> list[Silence]:
    """The windows `scope` may see, the latest first: those scheduled or in force, and with `ended` the rest."""
    narrow, values = _visible(scope)
    when = "" if ended else (" AND s.ends_at > %(now)s::timestamptz"
                             " AND (s.cancelled_at IS NULL OR s.cancelled_at > %(now)s::timestamptz)")
    with conn.cursor(row_factory=class_row(Silence)) as cur:
        return cur.execute(_SELECT + " WHERE true" + when + narrow + " ORDER BY s.starts_at DESC, s.id DESC",
                           values | {"now": now}).fetchall()


def get_silence(conn: psycopg.Connection, scope: Scope, silence_id: int, now: datetime) -> Silence | None:
    """One window, if `scope` may see it."""
    narrow, values = _visible(scope)
    with conn.cursor(row_factory=class_row(Silence)) as cur:
        return cur.execute(_SELECT + " WHERE s.id = %(id)s" + narrow, values | {"now": now, "id": silence_id}
                           ).fetchone()


def _target(conn: psycopg.Connection, scope: Scope, equipment_code: str | None,
            use_unit: str | None) -> tuple[int, str]:
    """(the equipment's or the use unit's id, words for the audit log) of what a window is declared for, within
    `scope`."""
    if bool(equipment_code) == bool(use_unit):
        raise SilenceError("name either an equipment (equipment) or a use unit (use_unit), not both or neither")
    narrow, values = equipment_condition(scope, "e")
    if equipment_code:
        row = conn.execute("SELECT e.id FROM equipment e WHERE e.code = %(code)s" + narrow,
                           values | {"code": equipment_code}).fetchone()
        if row is None:  # outside the scope reads the same as unknown
            raise SilenceError(f"no equipment with code {equipment_code!r}", 404)
        return _first(row), f"equipment {equipment_code}"
    row = conn.execute("SELECT id, (SELECT count(*) FROM equipment e WHERE e.use_unit_id = u.id) AS total,"
                       f" (SELECT count(*) FROM equipment e WHERE e.use_unit_id = u.id{narrow}) AS mine"
                       " FROM use_units u WHERE u.name = %(name)s", values | {"name": use_unit}).fetchone()
    unit_id, total, mine = (None, 0, 0) if row is None else _values(row)
    if unit_id is None or mine == 0:
        raise SilenceError(f"no use unit named {use_unit!r}", 404)
    if mine < total:
        # A site's window holds back every firm's alerts there: only who answers for all its equipment may declare it.
        raise SilenceError(f"use unit {use_unit!r} has equipment outside your scope (maintained by another firm);"
                           " declare windows for your equipment one by one", 403)
    return unit_id, f"use unit {use_unit}"


def _first(row: Any) -> Any:
    return _values(row)[0]


def _values(row: Any) -> tuple:
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


def declare(conn: psycopg.Connection, actor: Actor, scope: Scope, *, now: datetime, reason: str,
            ends_at: datetime, starts_at: datetime | None = None, equipment_code: str | None = None,
            use_unit: str | None = None) -> Silence:
    """Declare a window for an equipment or a use unit's site within `scope`, from `starts_at` (default `now`) to
    `ends_at`; raises SilenceError saying what is wrong."""
    reason = reason.strip()
    if not reason:
        raise SilenceError("reason: is required (原因)")
    if len(reason) > MAX_REASON:
        raise SilenceError(f"reason: at most {MAX_REASON} characters, not {len(reason)}")
    starts_at = starts_at or now
    if ends_at <= now:
        raise SilenceError(f"ends_at: {ends_at.isoformat()} is not in the future")
    if ends_at <= starts_at:
        raise SilenceError(f"ends_at: {ends_at.isoformat()} is not after starts_at {starts_at.isoformat()}")
    if ends_at - starts_at > MAX_DURATION:
        raise SilenceError(f"ends_at: a window lasts at most {MAX_DURATION.days} days; declare another when it ends")
    with conn.transaction():
        target_id, words = _target(conn, scope, equipment_code, use_unit)
        equipment_id, unit_id = (target_id, None) if equipment_code else (None, target_id)
        silence_id = _first(conn.execute(
            "INSERT INTO silences (equipment_id, use_unit_id, reason, starts_at, ends_at, created_by, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (equipment_id, unit_id, reason, starts_at, ends_at, actor.user_id, now)).fetchone())
        silence = get_silence(conn, Scope.everything(), silence_id, now)
        assert silence is not None
        record(conn, actor, "silence.declare", f"silence {silence_id} for {words}", None, silence.item())
    return silence


def cancel(conn: psycopg.Connection, actor: Actor, scope: Scope, silence_id: int, *, now: datetime) -> Silence:
    """End a window now; raises SilenceError when it is not visible, not the user's to end, or over already."""
    with conn.transaction():
        before = get_silence(conn, scope, silence_id, now)
        if before is None:
            raise SilenceError(f"no maintenance window {silence_id}", 404)
        if before.state in ("ended", "cancelled"):
            raise SilenceError(f"maintenance window {silence_id} is {before.state} already", 409)
        _target(conn, scope, before.equipment_code, before.use_unit)  # the same right as declaring it
        conn.execute("UPDATE silences SET cancelled_at = %s WHERE id = %s", (now, silence_id))
        after = get_silence(conn, scope, silence_id, now)
        assert after is not None
        record(conn, actor, "silence.cancel", f"silence {silence_id}", before.item(), after.item())
    return after
