"""Users for administrators: list, add, disable and enable, reset a password, sign a user out everywhere
(docs/access.md). Each change is in the audit log."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for

from semon import users
from semon.users import ROLES, User
from web import access
from web.db import connection, fetch_all
from web.params import accepts

bp = Blueprint("users", __name__)


def _page(status: int = 200, error: str | None = None) -> tuple[str, int]:
    conn = connection()
    return render_template(
        "users.html", users=users.list_users(conn), roles=ROLES, error=error,
        firms=[r["name"] for r in fetch_all("SELECT name FROM maintenance_firms ORDER BY name")],
        districts=[r["name"] for r in fetch_all("SELECT name FROM districts ORDER BY name")]), status


@bp.get("/users")
@accepts()
def index() -> tuple[str, int]:
    """Every user with its role, whose equipment it sees, and whether it is enabled."""
    return _page()


@bp.post("/users")
@accepts()
def create() -> Response | tuple[str, int]:
    """Add a user from the form."""
    form = request.form
    try:
        user = users.create_user(
            connection(), access.actor(), form.get("username", "").strip(), form.get("role", ""),
            form.get("password", ""), display_name=form.get("display_name", "").strip(),
            firm=form.get("firm", "").strip() or None, use_unit=form.get("use_unit", "").strip() or None,
            districts=form.getlist("districts"), all_districts=form.get("all_districts") == "yes")
    except users.UserError as exc:
        return _page(400, str(exc))
    flash(f"已添加用户 User added: {user.username}")
    return redirect(url_for("users.index"))


def _change(username: str, change: Callable[[], User], done: str) -> Response | tuple[str, int]:
    try:
        change()
    except users.UserError as exc:
        return _page(404 if "no user named" in str(exc) else 400, str(exc))
    flash(f"{done}: {username}")
    return redirect(url_for("users.index"))


@bp.post("/users/<username>/disable")
@accepts()
def disable(username: str) -> Response | tuple[str, int]:
    """Disable a user: its sessions and tokens stop working at once."""
    return _change(username, lambda: users.set_disabled(connection(), access.actor(), username, True),
                   "已停用 Disabled")


@bp.post("/users/<username>/enable")
@accepts()
def enable(username: str) -> Response | tuple[str, int]:
    """Enable a disabled user again."""
    return _change(username, lambda: users.set_disabled(connection(), access.actor(), username, False),
                   "已启用 Enabled")


@bp.post("/users/<username>/reset-password")
@accepts()
def reset_password(username: str) -> Response | tuple[str, int]:
    """Set the password the form gives; the user's sessions end."""
    password = request.form.get("password", "")
    return _change(username, lambda: users.reset_password(connection(), access.actor(), username, password),
                   "已重置密码 Password reset")


@bp.post("/users/<username>/logout-everywhere")
@accepts()
def logout_everywhere(username: str) -> Response | tuple[str, int]:
    """End every session of the user."""
    return _change(username, lambda: users.end_sessions(connection(), access.actor(), username),
                   "已退出所有设备 Signed out everywhere")
