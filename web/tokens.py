"""One's own API tokens: list, create (the token is shown once) and revoke (docs/access.md)."""

from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for

from semon import users
from web import access
from web.db import connection
from web.params import accepts

bp = Blueprint("tokens", __name__)


def _signed_in_name() -> str:
    user = access.current_user()
    assert user is not None  # the sign-in check lets nobody through to here
    return user.username


def _page(status: int = 200, **extra: object) -> tuple[str, int]:
    tokens = users.list_tokens(connection(), _signed_in_name())
    return render_template("tokens.html", tokens=tokens, **extra), status


@bp.get("/tokens")
@accepts()
def index() -> tuple[str, int]:
    """The signed-in user's tokens."""
    return _page()


@bp.post("/tokens")
@accepts()
def create() -> tuple[str, int]:
    """Make a token named by the form's `name`; the page shows it this once."""
    try:
        made, token = users.create_token(connection(), access.actor(), _signed_in_name(),
                                         request.form.get("name", ""))
    except users.UserError as exc:
        return _page(400, error=str(exc))
    return _page(201, new_token=token, new_token_name=made.name)


@bp.post("/tokens/<int:token_id>/revoke")
@accepts()
def revoke(token_id: int) -> Response | tuple[str, int]:
    """Revoke one of the signed-in user's tokens."""
    try:
        revoked = users.revoke_token(connection(), access.actor(), token_id, owner=_signed_in_name())
    except users.UserError as exc:
        return _page(404, error=str(exc))
    flash(f"已撤销令牌 Token revoked: {revoked.name}")
    return redirect(url_for("tokens.index"))
