"""One alert: its page with the timeline (every step and every notification of the outbox) and the forms to
acknowledge, record on site, resolve, assign and comment; the same as JSON under /api/alerts/<id>
(docs/alert-handling.md, docs/api.md). The transitions are alerts/handling.py's; reading needs the alert's equipment
within the scope, acting the act_on_alerts permission too (web/access.py)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for

from alerts import handling
from semon import clock
from semon.scope import equipment_condition
from web.access import actor, current_scope
from web.db import connection, fetch_all, fetch_one
from web.params import accepts

bp = Blueprint("alerts", __name__)

ITEM_FIELDS = ("id", "equipment_code", "equipment_type", "district", "address", "firm", "kind", "kind_description",
               "kind_name_zh", "source", "sources", "severity", "state", "count", "first_seen", "last_seen", "message",
               "acknowledged_at", "acknowledged_by", "on_site_at", "on_site_by", "resolved_at", "resolved_by",
               "assigned_to", "assigned_at", "reopened_count", "reopened_at", "muted_by", "silence_id",
               "escalation_stage", "rescue_late")
STEP_FIELDS = ("at", "step", "actor", "comment", "detail")
NOTIFICATION_FIELDS = ("id", "created_at", "event", "recipient", "party", "contact_role", "escalation_stage", "status",
                       "attempts", "sent_at", "last_error")
# What each action's form and API body may carry.
BODY_FIELDS = {"acknowledge": ("comment",), "on_site": ("comment",), "resolve": ("comment",),
               "assign": ("assigned_to", "comment"), "comment": ("comment",)}
DONE = {"acknowledge": "已确认 Acknowledged", "on_site": "已到场 On site recorded", "resolve": "已解决 Resolved",
        "assign": "已指派 Assigned", "comment": "已备注 Comment added"}

_ALERT_SQL = """
SELECT a.*, e.code AS equipment_code, e.type AS equipment_type, e.district_id, e.firm_id AS equipment_firm_id,
       e.use_unit_id, d.name AS district, e.address, COALESCE(af.name, ef.name) AS firm,
       fc.description AS kind_description, fc.name_zh AS kind_name_zh,
       ua.username AS acknowledged_by_name, uo.username AS on_site_by_name, ur.username AS resolved_by_name,
       ut.username AS assigned_to_name
  FROM alerts a
  JOIN equipment e ON e.id = a.equipment_id
  JOIN districts d ON d.id = e.district_id
  LEFT JOIN maintenance_firms af ON af.id = a.firm_id
  LEFT JOIN maintenance_firms ef ON ef.id = e.firm_id
  LEFT JOIN fault_codes fc ON fc.name = a.kind
  LEFT JOIN users ua ON ua.id = a.acknowledged_by
  LEFT JOIN users uo ON uo.id = a.on_site_by
  LEFT JOIN users ur ON ur.id = a.resolved_by
  LEFT JOIN users ut ON ut.id = a.assigned_to
 WHERE a.id = %(id)s"""
_STEPS_SQL = "SELECT at, step, actor, comment, detail FROM alert_steps WHERE alert_id = %(id)s ORDER BY at, id"
_NOTIFICATIONS_SQL = """
SELECT n.id, n.created_at, n.event, n.recipient, COALESCE(f.name, u.name, d.name) AS party, n.contact_role,
       n.escalation_stage, n.status, n.attempts, n.sent_at, n.last_error
  FROM notifications n
  LEFT JOIN maintenance_firms f ON f.id = n.firm_id
  LEFT JOIN use_units u ON u.id = n.use_unit_id
  LEFT JOIN districts d ON d.id = n.district_id
 WHERE n.alert_id = %(id)s
 ORDER BY n.created_at, n.id"""
# Whom each notification reached: one row per contact it went to, through which channel, and how that went (the
# address and the error text stay on the admins' /contacts page).
_DELIVERIES_SQL = """
SELECT dl.notification_id, c.name AS contact, c.role, dl.channel, COALESCE(m.status, 'waiting') AS status,
       COALESCE(m.attempts, 0) AS attempts, m.sent_at
  FROM deliveries dl
  JOIN notifications n ON n.id = dl.notification_id
  LEFT JOIN contacts c ON c.id = dl.contact_id
  LEFT JOIN delivery_messages m ON m.id = dl.message_id
 WHERE n.alert_id = %(id)s
 ORDER BY dl.id"""
# Who an alert may be assigned to: the enabled users of its equipment's maintenance firm.
_TECHNICIANS_SQL = ("SELECT username, display_name FROM users WHERE role = 'firm' AND NOT disabled"
                    " AND firm_id = %(firm_id)s ORDER BY username")


def _visible_alert(alert_id: int) -> dict[str, Any]:
    narrow, values = equipment_condition(current_scope(), "e")
    row = fetch_one(_ALERT_SQL + narrow, values | {"id": alert_id})
    if row is None:  # outside the scope reads the same as unknown
        abort(404, description=f"no alert {alert_id}")
    for name in ("acknowledged_by", "on_site_by", "resolved_by", "assigned_to"):
        row[name] = row.pop(f"{name}_name")
    return row


def _item(row: dict[str, Any]) -> dict[str, Any]:
    alert_id = row["id"]
    item = {name: row[name] for name in ITEM_FIELDS}
    item["steps"] = fetch_all(_STEPS_SQL, {"id": alert_id})
    item["notifications"] = fetch_all(_NOTIFICATIONS_SQL, {"id": alert_id})
    reached: dict[int, list[dict[str, Any]]] = {}
    for row in fetch_all(_DELIVERIES_SQL, {"id": alert_id}):
        reached.setdefault(row.pop("notification_id"), []).append(row)
    for notification in item["notifications"]:
        notification["deliveries"] = reached.get(notification["id"], [])
    return item


def alert_item(alert_id: int) -> dict[str, Any]:
    """The alert with its timeline, as the API gives it."""
    return _item(_visible_alert(alert_id))


def _timeline(steps: list[dict[str, Any]], notifications: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps and notifications in one list by time, a step before the notifications it caused."""
    rows = [{"at": s["at"], "order": 0, "step": s} for s in steps]
    rows += [{"at": n["created_at"], "order": 1, "notification": n} for n in notifications]
    return sorted(rows, key=lambda r: (r["at"], r["order"]))


def _page(alert_id: int, status: int = 200, error: str | None = None) -> tuple[str, int]:
    row = _visible_alert(alert_id)
    item = _item(row)
    technicians = fetch_all(_TECHNICIANS_SQL, {"firm_id": row["equipment_firm_id"]}) \
        if row["equipment_firm_id"] is not None else []
    return render_template("alert.html", a=item, timeline=_timeline(item["steps"], item["notifications"]),
                           technicians=technicians, error=error,
                           on_site_applies=row["source"] not in handling.NO_VISIT_SOURCES), status


def _act(alert_id: int, action: str, body: dict[str, str]) -> dict[str, Any]:
    """Take `action` on the alert as the signed-in user; HandlingError says why not."""
    conn = connection()
    now = clock.today_and_now(conn)[1]
    scope = current_scope()
    if action == "assign":
        return handling.assign(conn, actor(), scope, alert_id, body.get("assigned_to", ""), now=now,
                               comment=body.get("comment"))
    if action == "comment":
        return handling.comment(conn, actor(), scope, alert_id, body.get("comment", ""), now=now)
    return handling.transition(conn, actor(), scope, alert_id, action, now=now, comment=body.get("comment"))


def _json_body(action: str) -> dict[str, str]:
    """The request's JSON object (none at all is an empty one): only the action's fields, each a string."""
    if not request.get_data():
        return {}
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, description="the body must be a JSON object")
    fields = BODY_FIELDS[action]
    for name, value in data.items():
        if name not in fields:
            abort(400, description=f"{name}: unknown field (expected: {', '.join(fields)})")
        if value is not None and not isinstance(value, str):
            abort(400, description=f"{name}: must be a string, not {type(value).__name__}")
    return {name: value for name, value in data.items() if value is not None}


@bp.get("/alerts/<int:alert_id>")
@accepts()
def detail(alert_id: int) -> tuple[str, int]:
    """One alert's page: its state, who acted, the timeline of steps and notifications, and the forms to act."""
    return _page(alert_id)


@bp.get("/api/alerts/<int:alert_id>")
@accepts()
def api_detail(alert_id: int) -> Response:
    """One alert as JSON, with its steps and notifications."""
    return jsonify(alert_item(alert_id))


def _form_view(action: str):
    def view(alert_id: int) -> Response | tuple[str, int]:
        body = {name: request.form.get(name, "") for name in BODY_FIELDS[action]}
        try:
            _act(alert_id, action, body)
        except handling.HandlingError as exc:
            if exc.status == 404:
                abort(404, description=str(exc))
            return _page(alert_id, exc.status, str(exc))
        flash(f"{DONE[action]}: alert {alert_id}")
        return redirect(url_for("alerts.detail", alert_id=alert_id))

    view.__name__ = f"form_{action}"
    view.__doc__ = f"The {action.replace('_', ' ')} form of an alert's page."
    return accepts()(view)


def _api_view(action: str):
    def view(alert_id: int) -> Response:
        body = _json_body(action)
        try:
            _act(alert_id, action, body)
        except handling.HandlingError as exc:
            abort(exc.status, description=str(exc))
        return jsonify(alert_item(alert_id))

    view.__name__ = f"api_{action}"
    view.__doc__ = f"{action.replace('_', ' ').capitalize()} an alert: the alert after, as GET gives it."
    return accepts()(view)


for _action in handling.ACTIONS:
    bp.add_url_rule(f"/alerts/<int:alert_id>/{_action}", view_func=_form_view(_action), methods=["POST"])
    bp.add_url_rule(f"/api/alerts/<int:alert_id>/{_action}", view_func=_api_view(_action), methods=["POST"])
