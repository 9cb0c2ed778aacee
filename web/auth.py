"""Signing in (docs/access.md): sessions for the pages, API tokens for the JSON API, one check before every request.

The check, after the parameters' (web/params.py): the open routes (health, metrics, static files, vendor schemas)
pass; every other needs a user, by `Authorization: Bearer <token>` under /api/ or by the session cookie (which the
pages' CSV downloads under /api/ also use); nobody is a 401 in the API's error shape under /api/ and a redirect to
the login page elsewhere. Then the route's action must be one the user's role may do (web/access.py), and a write
made with a session must carry the CSRF token of its form (Flask-WTF), so that another site cannot make it with the
cookie.

A session names the user and its session generation: raising the generation (logout everywhere, a new password,
disabling) ends every session at once, on every web worker. A session idle longer than web_session_idle_minutes
ends too. The key that signs sessions is the setting web_secret_key, or one made once and kept in the database, so
that every web worker signs alike.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import psycopg
from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_login import LoginManager, UserMixin, login_user, logout_user
from flask_login import current_user as session_user
from flask_wtf.csrf import CSRFProtect
from psycopg_pool import PoolTimeout
from werkzeug.exceptions import Forbidden
from werkzeug.wrappers import Request, Response

from semon import users
from semon.db import DatabaseUnavailable
from semon.users import LoginLimits, LoginRefused, User
from web import access
from web.db import connection
from web.jsonapi import error_response, is_api_request
from web.params import accepts

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
csrf = CSRFProtect()

# Routes anyone may reach: whether the service is up, its metrics, the stylesheet, the vendors' JSON Schemas.
OPEN_PATHS = ("/healthz", "/metrics")
OPEN_PREFIXES = ("/static/", "/schemas/")
LOGIN_ENDPOINT = "auth.login"
SEEN = "semon_seen"  # session key: when the session last made a request (seconds since the epoch)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_SECRET_NAME = "session"
_secret_lock = threading.Lock()


class SessionUser(UserMixin):
    """A user as Flask-Login keeps it in the session: its id and session generation."""

    def __init__(self, user: User):
        self.user = user

    def get_id(self) -> str:
        """The session's identity: a raised generation makes it unknown."""
        return f"{self.user.id}:{self.user.session_generation}"


@login_manager.user_loader
def _load_session_user(identity: str) -> SessionUser | None:
    user_id, _, generation = identity.partition(":")
    if not (user_id.isdigit() and generation.isdigit()):
        return None
    user = users.get_user(connection(), user_id=int(user_id))
    if user is None or user.disabled or user.session_generation != int(generation):
        return None
    return SessionUser(user)


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, signed with the key of ensure_secret_key, the cookie marked Secure whenever
    the request came over HTTPS."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """The request's session; the first request that needs one fetches the signing key."""
        if not app.secret_key and not _is_open(request.path):
            try:
                ensure_secret_key(app)
            except (DatabaseUnavailable, PoolTimeout, psycopg.OperationalError) as exc:
                # Sessions open before the error handlers can answer: the check raises it again, and they do.
                g.semon_unavailable = exc
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure when the setting says so or the request is HTTPS."""
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def register(app: Flask) -> None:
    """Install sessions, CSRF protection and the sign-in check (after the parameters' check) on the app."""
    config = app.config["SEMON"]
    app.session_interface = SessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="semon_session", SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.web_secure_cookies,
        # The check is made in _check, where a request signed in by an API token is told apart.
        WTF_CSRF_CHECK_DEFAULT=False,
        # A form's token lives as long as its session; sessions end by the idle timeout.
        WTF_CSRF_TIME_LIMIT=None,
    )
    if config.web_secret_key:
        app.secret_key = config.web_secret_key
    login_manager.init_app(app, add_context_processor=False)
    csrf.init_app(app)
    app.before_request(_check)
    app.context_processor(_template_globals)
    app.register_blueprint(bp)


def _template_globals() -> dict[str, Any]:
    # From what the check found, never loaded while rendering: an error page must render with the database down.
    user = access.current_user()
    return {"signed_in": user, "may": lambda action: user is not None and access.may(user.role, action)}


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def ensure_secret_key(app: Flask) -> None:
    """Give the app its signing key, from the database when no setting gives it: made by the first worker that needs
    it and read by every other."""
    with _secret_lock:
        if not app.secret_key:
            conn = connection()
            conn.execute("INSERT INTO web_secrets (name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
                         (_SECRET_NAME, secrets.token_hex(32)))
            app.secret_key = conn.execute("SELECT value FROM web_secrets WHERE name = %s",
                                          (_SECRET_NAME,)).fetchone()["value"]


def _check() -> Response | None:
    if request.url_rule is None or _is_open(request.path):  # no such route: the 404 or 405 follows, and says nothing
        return None
    unavailable = g.pop("semon_unavailable", None)
    if unavailable is not None:
        raise unavailable
    if request.endpoint == LOGIN_ENDPOINT:
        if request.method not in SAFE_METHODS:
            csrf.protect()
        return None
    user, by_token = _signed_in()
    if user is None:
        return _sign_in_first()
    g.semon_user = user
    action = access.action_of(request.endpoint, request.method)
    if not access.may(user.role, action):
        raise Forbidden(f"a user of role {user.role} may not do this ({action}) (无此权限)")
    if not by_token and request.method not in SAFE_METHODS:
        csrf.protect()
    return None


def _signed_in() -> tuple[User | None, bool]:
    """(the user, whether by API token); the Authorization header is read for the API only."""
    header = request.headers.get("Authorization")
    if header is not None and is_api_request():
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            g.semon_refusal = "the Authorization header must be 'Bearer <token>'"
            return None, True
        user = users.user_by_token(connection(), token.strip())
        if user is None:
            g.semon_refusal = "the API token is unknown or revoked, or its user is disabled"
        return user, True
    if not session_user.is_authenticated:
        return None, False
    idle_s = current_app.config["SEMON"].web_session_idle_minutes * 60
    seen = session.get(SEEN)
    now = time.time()
    if not isinstance(seen, int | float) or now - seen > idle_s:
        logout_user()
        session.clear()
        g.semon_refusal = "signed out after being idle (闲置超时，已退出登录)"
        return None, False
    session[SEEN] = now
    return session_user.user, False


def _sign_in_first() -> Response:
    message = g.get("semon_refusal") or "sign in first: a session, or an API token as 'Authorization: Bearer <token>'"
    if is_api_request():
        response = error_response(401, message)
        response.headers["WWW-Authenticate"] = 'Bearer realm="semon"'
        return response
    if g.get("semon_refusal"):
        flash(message)
    target = request.full_path.rstrip("?") if request.method == "GET" else "/"
    return redirect(url_for(LOGIN_ENDPOINT, next=target if len(target) <= 200 else None))


def _local(target: str | None) -> str:
    """`target` if it is a path of this site, else the equipment list: a login never sends anyone elsewhere."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or urlsplit(target).netloc:
        return url_for("equipment.index")
    return target


def login_limits() -> LoginLimits:
    """The login rate limit in force (settings web_login_*)."""
    config = current_app.config["SEMON"]
    return LoginLimits(config.web_login_max_failures, config.web_login_max_failures_per_address,
                       config.web_login_window_minutes * 60)


@bp.route("/login", methods=["GET", "POST"])
@accepts("next")
def login() -> Response | tuple[str, int] | tuple[str, int, dict[str, str]] | str:
    """The login page; a POST with username and password signs in and goes on to `next`."""
    target = request.args.get("next")
    if request.method == "GET":
        return render_template("login.html", next=target)
    username = request.form.get("username", "").strip()
    try:
        user = users.login(connection(), username, request.form.get("password", ""), request.remote_addr or "",
                           login_limits())
    except LoginRefused as refused:
        page = render_template("login.html", next=target, error=str(refused), username=username)
        if refused.retry_after_s is None:
            return page, 401
        return page, 429, {"Retry-After": str(refused.retry_after_s)}
    session.clear()  # nothing of the session before signing in is carried into it
    login_user(SessionUser(user))
    session[SEEN] = time.time()
    return redirect(_local(target))


@bp.post("/logout")
@accepts()
def logout() -> Response:
    """Sign out of this session."""
    logout_user()
    session.clear()
    return redirect(url_for(LOGIN_ENDPOINT))


@bp.post("/logout-everywhere")
@accepts()
def logout_everywhere() -> Response:
    """Sign out of every session of the signed-in user, on every device (API tokens stay: revoke them apart)."""
    user = access.current_user()
    assert user is not None  # the check lets nobody through to here
    users.end_sessions(connection(), access.actor(), user.username)
    logout_user()
    session.clear()
    flash("signed out everywhere (已在所有设备退出登录)")
    return redirect(url_for(LOGIN_ENDPOINT))
