"""Maintenance windows (维保窗口, silences): the list, declaring one and cancelling one early, as a page and as JSON
(docs/alert-handling.md, docs/api.md). The rules are alerts/silences.py's; declaring needs act_on_alerts
(web/access.py) and the equipment, or every equipment of the use unit, within the scope."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for

from alerts import silences
from alerts.silences import SilenceError
from semon import clock
from semon.scope import related_condition
from web.access import actor, current_scope
from web.db import connection, fetch_all
from web.params import accepts, choice

bp = Blueprint("silences", __name__)

FIELDS = ("equipment", "use_unit", "reason", "starts_at", "ends_at")


def _now() -> datetime:
    return clock.today_and_now(connection())[1]


def _time(name: str, text: str | None) -> datetime | None:
    """A time of the form or body: ISO 8601, with its offset or in the users' time zone (the session's)."""
    if not text:
        return None
    if "\x00" in text or len(text) > 64:
        raise SilenceError(f"{name}: not a time: {text[:64]!r}")
    try:
        # PostgreSQL reads a time without an offset in the session's zone, which is the users' (web/db.py).
        return connection().execute("SELECT %s::timestamptz AS t", (text.strip(),)).fetchone()["t"]
    except psycopg.DataError:
        raise SilenceError(f"{name}: not a time: {text!r} (expected e.g. 2026-06-15T18:00 or "
                           "2026-06-15T18:00:00+08:00)") from None


def _declare(body: dict[str, Any]) -> silences.Silence:
    for name, value in body.items():
        if isinstance(value, str) and "\x00" in value:
            raise SilenceError(f"{name}: contains a NUL character")
    now = _now()
    ends_at = _time("ends_at", body.get("ends_at"))
    if ends_at is None:
        raise SilenceError("ends_at: is required (结束时间)")
    return silences.declare(connection(), actor(), current_scope(), now=now, reason=body.get("reason") or "",
                            ends_at=ends_at, starts_at=_time("starts_at", body.get("starts_at")),
                            equipment_code=(body.get("equipment") or "").strip() or None,
                            use_unit=(body.get("use_unit") or "").strip() or None)


def _page(status: int = 200, error: str | None = None) -> tuple[str, int]:
    ended = choice(request.args, "ended", ("yes", "no")) == "yes"
    scope = current_scope()
    narrow, values = related_condition(scope, "u", "use_unit_id")
    return render_template(
        "silences.html", silences=silences.list_silences(connection(), scope, _now(), ended=ended), ended=ended,
        error=error, form=request.form,
        use_units=[r["name"] for r in fetch_all("SELECT u.name FROM use_units u WHERE true" + narrow
                                                + " ORDER BY u.name", values)]), status


@bp.get("/silences")
@accepts("ended")
def index() -> tuple[str, int]:
    """The maintenance windows scheduled or in force (ended=yes: every one), and the form to declare one."""
    return _page()


@bp.post("/silences")
@accepts()
def create() -> Response | tuple[str, int]:
    """Declare a window from the form."""
    try:
        silence = _declare({name: request.form.get(name, "") for name in FIELDS})
    except SilenceError as exc:
        return _page(exc.status, str(exc))
    flash(f"已声明维保窗口 Maintenance window {silence.id} declared until {silence.ends_at:%Y-%m-%d %H:%M}")
    return redirect(url_for("silences.index"))


@bp.post("/silences/<int:silence_id>/cancel")
@accepts()
def cancel(silence_id: int) -> Response | tuple[str, int]:
    """End a window now, from the form."""
    try:
        silences.cancel(connection(), actor(), current_scope(), silence_id, now=_now())
    except SilenceError as exc:
        if exc.status == 404:
            abort(404, description=str(exc))
        return _page(exc.status, str(exc))
    flash(f"已取消 Maintenance window {silence_id} cancelled")
    return redirect(url_for("silences.index"))


@bp.get("/api/silences")
@accepts("ended")
def api_list() -> Response:
    """The windows scheduled or in force (ended=yes: every one) as JSON: {"items": [...]}."""
    ended = choice(request.args, "ended", ("yes", "no")) == "yes"
    return jsonify({"items": [s.item() for s in silences.list_silences(connection(), current_scope(), _now(),
                                                                       ended=ended)]})


@bp.post("/api/silences")
@accepts()
def api_create() -> tuple[Response, int]:
    """Declare a window: {"equipment" or "use_unit", "reason", "ends_at", optional "starts_at"}."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, description="the body must be a JSON object")
    for name, value in data.items():
        if name not in FIELDS:
            abort(400, description=f"{name}: unknown field (expected: {', '.join(FIELDS)})")
        if value is not None and not isinstance(value, str):
            abort(400, description=f"{name}: must be a string, not {type(value).__name__}")
    try:
        silence = _declare(data)
    except SilenceError as exc:
        abort(exc.status, description=str(exc))
    return jsonify(silence.item()), 201


@bp.post("/api/silences/<int:silence_id>/cancel")
@accepts()
def api_cancel(silence_id: int) -> Response:
    """End a window now: the window after."""
    try:
        silence = silences.cancel(connection(), actor(), current_scope(), silence_id, now=_now())
    except SilenceError as exc:
        abort(exc.status, description=str(exc))
    return jsonify(silence.item())
