"""Contacts and routing for administrators (docs/delivery.md): the contacts of firms, use units and districts, the
alert_routes rows that decide who is told about what, and the messages that need attention (failed, or unknown
after an ambiguous SMS answer). Each change is in the audit log."""

from __future__ import annotations

from datetime import time

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from werkzeug.exceptions import NotFound

from alerts import contacts
from alerts.routing import RECIPIENTS, routes
from semon import audit
from semon.vocabulary import SEVERITIES
from web import access
from web.db import connection, fetch_all
from web.params import accepts

bp = Blueprint("contacts", __name__)
EVENTS = ("raised", "repeated", "resolved", "escalated", "reminder", "reopened", "acknowledged", "on_site",
          "unacknowledged")


def _page(status: int = 200, error: str | None = None) -> tuple[str, int]:
    conn = connection()
    return render_template(
        "contacts.html", contacts=contacts.list_contacts(conn), routes=routes(conn), error=error,
        parties={party: fetch_all(f"SELECT id, name FROM {table} ORDER BY name")
                 for party, table in contacts.PARTY_TABLES.items()},
        channels=contacts.CHANNELS, roles=contacts.ROLES, severities=SEVERITIES, recipients=RECIPIENTS,
        events=EVENTS,
        attention=fetch_all("SELECT id, channel, address, status, attempts, created_at, last_error"
                            " FROM delivery_messages WHERE status IN ('failed', 'unknown')"
                            " ORDER BY created_at DESC LIMIT 200")), status


def _time(text: str, field: str) -> time | None:
    if not text or text == "24:00":
        return None
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise contacts.ContactError(f"{field}: expected HH:MM, not {text!r}") from None


@bp.get("/contacts")
@accepts()
def index() -> tuple[str, int]:
    """Every contact, the routes, and the messages that need attention."""
    return _page()


@bp.post("/contacts")
@accepts()
def create() -> Response | tuple[str, int]:
    """Add a contact from the form."""
    form = request.form
    try:
        party, _, party_id = form.get("party", "").partition(":")
        contact = contacts.ContactInput(
            party=party, party_id=int(party_id or 0), name=form.get("name", ""), channel=form.get("channel", ""),
            address=form.get("address", ""), role=form.get("role", "duty").strip() or "duty",
            secret=form.get("secret", ""),
            duty_days=tuple(int(d) for d in form.getlist("duty_days")) or (1, 2, 3, 4, 5, 6, 7),
            duty_start=_time(form.get("duty_start", ""), "duty_start") or time(0, 0),
            duty_end=_time(form.get("duty_end", ""), "duty_end"), min_severity=form.get("min_severity", "low"))
        added = contacts.add_contact(connection(), access.actor(), contact)
    except (contacts.ContactError, ValueError) as exc:
        return _page(400, str(exc))
    flash(f"已添加联系人 Contact added: {added['name']}")
    return redirect(url_for("contacts.index"))


def _id(text: str, what: str) -> int:
    # Path segments are plain strings (the route walks of tests/test_access.py fill them alike): a number here.
    if not text.isdigit() or len(text) > 18:
        raise NotFound(f"no {what} {text!r}")
    return int(text)


def _switch(contact_id: str, active: bool) -> Response | tuple[str, int]:
    try:
        contacts.set_active(connection(), access.actor(), _id(contact_id, "contact"), active)
    except contacts.ContactError as exc:
        return _page(404, str(exc))
    flash("已启用 Enabled" if active else "已停用 Disabled")
    return redirect(url_for("contacts.index"))


@bp.post("/contacts/<contact_id>/enable")
@accepts()
def enable(contact_id: str) -> Response | tuple[str, int]:
    """Switch a contact on again."""
    return _switch(contact_id, True)


@bp.post("/contacts/<contact_id>/disable")
@accepts()
def disable(contact_id: str) -> Response | tuple[str, int]:
    """Switch a contact off: it is kept, and told nothing."""
    return _switch(contact_id, False)


@bp.post("/contacts/routes")
@accepts()
def add_route() -> Response | tuple[str, int]:
    """Add a route: which changes (events, least severity) reach which kind of party."""
    form = request.form
    recipient, events = form.get("recipient", ""), form.getlist("events")
    min_severity = form.get("min_severity") or None
    if recipient not in RECIPIENTS or not events or not set(events) <= set(EVENTS) or (
            min_severity is not None and min_severity not in SEVERITIES):
        return _page(400, "route: choose a recipient, at least one event, and a severity from the lists")
    conn = connection()
    with conn.transaction():
        row = conn.execute("INSERT INTO alert_routes (recipient, events, min_severity, when_no_firm, description)"
                           " VALUES (%s, %s, %s, %s, %s) RETURNING id, recipient, events, min_severity,"
                           " when_no_firm, description",
                           (recipient, events, min_severity, form.get("when_no_firm") == "yes",
                            form.get("description", "")[:500])).fetchone()
        audit.record(conn, access.actor(), "route.create", f"alert_route {row['id']}", None, dict(row))
    flash("已添加路由 Route added")
    return redirect(url_for("contacts.index"))


@bp.post("/contacts/routes/<route_id>/delete")
@accepts()
def delete_route(route_id: str) -> Response | tuple[str, int]:
    """Remove a route."""
    route = _id(route_id, "route")
    conn = connection()
    with conn.transaction():
        row = conn.execute("DELETE FROM alert_routes WHERE id = %s RETURNING id, recipient, events, min_severity,"
                           " when_no_firm, description", (route,)).fetchone()
        if row is None:
            return _page(404, f"no route with id {route}")
        audit.record(conn, access.actor(), "route.delete", f"alert_route {route}", dict(row), None)
    flash("已删除路由 Route removed")
    return redirect(url_for("contacts.index"))


@bp.post("/contacts/messages/<message_id>/retry")
@accepts()
def retry(message_id: str) -> Response | tuple[str, int]:
    """Send a failed or unknown message again (for an unknown SMS: after checking it did not go out)."""
    message = _id(message_id, "message")
    conn = connection()
    with conn.transaction():
        row = conn.execute("UPDATE delivery_messages SET status = 'pending', attempts = 0, next_attempt_at = now()"
                           " WHERE id = %s AND status IN ('failed', 'unknown') RETURNING id, channel, address",
                           (message,)).fetchone()
        if row is None:
            return _page(404, f"no failed or unknown message with id {message}")
        conn.execute("UPDATE notifications SET status = 'pending' WHERE id IN"
                     " (SELECT notification_id FROM deliveries WHERE message_id = %s)", (message,))
        audit.record(conn, access.actor(), "delivery.retry", f"message {message}", None, dict(row))
    flash("将重新发送 Will be sent again")
    return redirect(url_for("contacts.index"))
