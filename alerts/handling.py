"""Handling an alert (docs/alert-handling.md): what people do with it, the one home of its state transitions.

open → acknowledged → on_site (a technician at the equipment: faults, not compliance notices) → resolved. A step may
be skipped forward (on site straight from open counts as acknowledged then too; a false alarm is resolved from open),
never back: a resolved alert comes back only by reopening when it recurs (alerts/store.py). An entrapment is resolved
by a person only once a technician is recorded on site: the 30-minute arrival is what regulators rate firms on.
Each transition, assignment and comment is a step of the alert's timeline (alert_steps) and an entry of the audit log,
written in one transaction with the change; a transition is queued for whoever routing says hears of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alerts import store
from alerts.routing import queue_sql
from semon.audit import Actor, record
from semon.scope import Scope, equipment_condition
from semon.users import FIRM

ACTIONS = ("acknowledge", "on_site", "resolve", "assign", "comment")
MAX_COMMENT = 2000
# Alerts a technician goes to the equipment for: all but the compliance scan's (answered by a record, not a visit).
NO_VISIT_SOURCES = ("compliance",)
# Kinds resolved by a person only after a technician was recorded on site.
RESCUE_KINDS = ("entrapment",)
# From which states each transition may be made, and the state it leads to.
_TRANSITIONS = {
    "acknowledge": (("open",), "acknowledged"),
    "on_site": (("open", "acknowledged"), "on_site"),
    "resolve": (("open", "acknowledged", "on_site"), "resolved"),
}
_STEP = {"acknowledge": "acknowledged", "on_site": "on_site", "resolve": "resolved"}
# The alert's columns kept in the audit log before and after a change.
_AUDITED = ("id", "state", "acknowledged_at", "acknowledged_by", "on_site_at", "on_site_by", "resolved_at",
            "resolved_by", "assigned_to", "assigned_at")

_QUEUE = f"""
WITH changes AS (
    SELECT id AS alert_id, NULL::bigint AS reminder_id, equipment_id, %(event)s::text AS event, severity, source,
           %(at)s::timestamptz AS at
      FROM alerts WHERE id = %(id)s),
queued AS ({queue_sql("changes")})
SELECT count(*) FROM changes"""


class HandlingError(Exception):
    """An action that cannot be taken, in one readable line; `status` is the HTTP status to answer it with (404: no
    such alert within the scope, 409: the state does not allow it, 400: a bad value)."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


def _locked(conn: psycopg.Connection, scope: Scope, alert_id: int) -> dict[str, Any]:
    """The alert, locked for the change, if its equipment is within `scope`; else HandlingError 404."""
    narrow, values = equipment_condition(scope, "e")
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT a.*, e.firm_id AS equipment_firm_id FROM alerts a"
                          " JOIN equipment e ON e.id = a.equipment_id"
                          " WHERE a.id = %(id)s" + narrow + " FOR UPDATE OF a", values | {"id": alert_id}).fetchone()
    if row is None:  # outside the scope reads the same as unknown
        raise HandlingError(f"no alert {alert_id}", 404)
    return row


def _comment(comment: str | None) -> str:
    text = (comment or "").strip()
    if len(text) > MAX_COMMENT:
        raise HandlingError(f"comment: at most {MAX_COMMENT} characters, not {len(text)}", 400)
    if "\x00" in text:
        raise HandlingError("comment: contains a NUL character", 400)
    return text


def _step(conn: psycopg.Connection, alert_id: int, step: str, actor: Actor, at: datetime, comment: str,
          detail: dict[str, Any] | None = None) -> None:
    conn.execute("INSERT INTO alert_steps (alert_id, at, step, user_id, actor, comment, detail)"
                 " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                 (alert_id, at, step, actor.user_id, actor.name, comment, Jsonb(detail or {})))


def _audited(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in _AUDITED}


def _refusal(action: str, alert: dict[str, Any]) -> str | None:
    """Why `action` cannot be taken on `alert` now, or None."""
    allowed, _ = _TRANSITIONS[action]
    state = alert["state"]
    if state not in allowed:
        already = _TRANSITIONS[action][1]
        if state == already or (action == "acknowledge" and state == "on_site"):
            return f"alert {alert['id']} is {state.replace('_', ' ')} already"
        return f"alert {alert['id']} is {state.replace('_', ' ')}: it cannot be {_STEP[action].replace('_', ' ')}"
    if action == "on_site" and alert["source"] in NO_VISIT_SOURCES:
        return (f"alert {alert['id']} ({alert['kind']}) is answered by a record, not a visit: record the maintenance"
                " or inspection on the equipment's page")
    if action == "resolve" and alert["kind"] in RESCUE_KINDS and alert["on_site_at"] is None:
        return f"alert {alert['id']} is an {alert['kind']}: record the technician on site before resolving it"
    return None


def transition(conn: psycopg.Connection, actor: Actor, scope: Scope, alert_id: int, action: str, *,
               now: datetime, comment: str | None = None) -> dict[str, Any]:
    """Acknowledge, record on site, or resolve (`action`) the alert within `scope` as `actor` at `now`; returns the
    alert after. Raises HandlingError for an alert not visible or a transition its state does not allow."""
    if action not in _TRANSITIONS:
        raise HandlingError(f"unknown action {action!r} (expected: {', '.join(_TRANSITIONS)})", 400)
    text = _comment(comment)
    with conn.transaction():
        alert = _locked(conn, scope, alert_id)
        refusal = _refusal(action, alert)
        if refusal:
            raise HandlingError(refusal)
        user = actor.user_id
        if action == "acknowledge":
            sql = "acknowledged_at = %(now)s, acknowledged_by = %(user)s, state = 'acknowledged'"
        elif action == "on_site":
            # On site is acknowledged too: the 3-minute acknowledgement counts it.
            sql = ("on_site_at = %(now)s, on_site_by = %(user)s, state = 'on_site',"
                   " acknowledged_at = COALESCE(acknowledged_at, %(now)s),"
                   " acknowledged_by = CASE WHEN acknowledged_at IS NULL THEN %(user)s ELSE acknowledged_by END")
            if alert["state"] == "open":
                _step(conn, alert_id, "acknowledged", actor, now, "")
        else:
            sql = "resolved_at = %(now)s, resolved_by = %(user)s, state = 'resolved'"
        with conn.cursor(row_factory=dict_row) as cur:
            after = cur.execute(f"UPDATE alerts SET {sql} WHERE id = %(id)s RETURNING *",
                                {"now": now, "user": user, "id": alert_id}).fetchone()
        _step(conn, alert_id, _STEP[action], actor, now, text)
        conn.execute(_QUEUE, {"event": _STEP[action], "at": now, "id": alert_id})
        record(conn, actor, f"alert.{action}", f"alert {alert_id}", _audited(alert),
               _audited(after) | ({"comment": text} if text else {}))
        if action == "resolve":
            store.unmute_explained(conn, now)  # a person may resolve an offline alert too
    return after


def assign(conn: psycopg.Connection, actor: Actor, scope: Scope, alert_id: int, username: str, *, now: datetime,
           comment: str | None = None) -> dict[str, Any]:
    """Assign the alert within `scope` to `username`, a firm user of the equipment's maintenance firm."""
    text = _comment(comment)
    username = (username or "").strip()
    if "\x00" in username:
        raise HandlingError("assigned_to: contains a NUL character", 400)
    if not username:
        raise HandlingError("assigned_to: is required (a username of the equipment's maintenance firm)", 400)
    with conn.transaction():
        alert = _locked(conn, scope, alert_id)
        if alert["state"] == "resolved":
            raise HandlingError(f"alert {alert_id} is resolved: there is nothing left to assign")
        with conn.cursor(row_factory=dict_row) as cur:
            user = cur.execute("SELECT id, username, role, firm_id, disabled FROM users WHERE username = %s",
                               (username,)).fetchone()
        if user is None or user["disabled"]:
            raise HandlingError(f"assigned_to: no user named {username!r}", 400)
        if user["role"] != FIRM or user["firm_id"] is None or user["firm_id"] != alert["equipment_firm_id"]:
            raise HandlingError(f"assigned_to: {user['username']} is not a user of the equipment's maintenance firm",
                                400)
        with conn.cursor(row_factory=dict_row) as cur:
            after = cur.execute("UPDATE alerts SET assigned_to = %s, assigned_at = %s WHERE id = %s RETURNING *",
                                (user["id"], now, alert_id)).fetchone()
        _step(conn, alert_id, "assigned", actor, now, text, {"assigned_to": user["username"]})
        record(conn, actor, "alert.assign", f"alert {alert_id}", _audited(alert), _audited(after))
    return after


def comment(conn: psycopg.Connection, actor: Actor, scope: Scope, alert_id: int, text: str, *,
            now: datetime) -> dict[str, Any]:
    """Add a comment to the timeline of the alert within `scope`; any state, a resolved alert's too."""
    body = _comment(text)
    if not body:
        raise HandlingError("comment: is required", 400)
    with conn.transaction():
        alert = _locked(conn, scope, alert_id)
        _step(conn, alert_id, "commented", actor, now, body)
        record(conn, actor, "alert.comment", f"alert {alert_id}", None, {"id": alert_id, "comment": body})
    return alert
