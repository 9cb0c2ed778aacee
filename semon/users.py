"""Users of the web app, their roles and parties, passwords, API tokens and the login rate limit (docs/access.md).

Each change is written with its audit entry in one transaction (semon/audit.py). A user's scope, the equipment it may
see, is scope_of(user) and nothing else; which role may do which action is web/access.py's table.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from werkzeug.security import check_password_hash, generate_password_hash

from semon.audit import Actor, record
from semon.scope import Scope

ADMIN, INSPECTOR, FIRM, USE_UNIT = "admin", "inspector", "firm", "use_unit"
ROLES = (ADMIN, INSPECTOR, FIRM, USE_UNIT)
USERNAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
MIN_PASSWORD_LENGTH = 10
# Tokens read "semon_" and 43 URL-safe characters (256 random bits): recognisable in a leaked file or a log.
TOKEN_PREFIX = "semon_"

_USER_SQL = """
SELECT u.id, u.username, u.display_name, u.role, u.firm_id, f.name AS firm, u.use_unit_id, uu.name AS use_unit,
       u.all_districts, u.disabled, u.session_generation, u.created_at, u.password_hash,
       COALESCE(ARRAY(SELECT ud.district_id FROM user_districts ud WHERE ud.user_id = u.id ORDER BY 1), '{}')
           AS district_ids,
       COALESCE(ARRAY(SELECT d.name FROM user_districts ud JOIN districts d ON d.id = ud.district_id
                       WHERE ud.user_id = u.id ORDER BY d.name), '{}') AS districts
  FROM users u
  LEFT JOIN maintenance_firms f ON f.id = u.firm_id
  LEFT JOIN use_units uu ON uu.id = u.use_unit_id
"""


class UserError(Exception):
    """A user or token change that cannot be made, in one readable line."""


@dataclass(frozen=True)
class User:
    """A user as the web app and the command line see it (never its password hash)."""

    id: int
    username: str
    display_name: str
    role: str
    firm_id: int | None
    firm: str | None
    use_unit_id: int | None
    use_unit: str | None
    all_districts: bool
    disabled: bool
    session_generation: int
    created_at: dt.datetime
    district_ids: tuple[int, ...]
    districts: tuple[str, ...]

    @property
    def parties(self) -> str:
        """Whose equipment the user sees, in words: the firm, the use unit, the districts."""
        if self.role == ADMIN or self.all_districts:
            return "all (全部)"
        if self.role == FIRM:
            return self.firm or ""
        if self.role == USE_UNIT:
            return self.use_unit or ""
        return ", ".join(self.districts) or "none (无)"

    def audit_row(self) -> dict[str, Any]:
        """The user as the audit log keeps it before and after a change."""
        row = asdict(self)
        for key in ("id", "created_at", "firm_id", "use_unit_id", "district_ids"):
            row.pop(key)
        row["districts"] = list(self.districts)
        return row


@functools.cache
def _dummy_hash() -> str:
    # Verified against when the user is unknown, so that an unknown name costs the time a wrong password does.
    return generate_password_hash("no user has this password", method="scrypt")


def _user(row: dict[str, Any] | None) -> User | None:
    if row is None:
        return None
    values = {k: v for k, v in row.items() if k != "password_hash"}
    return User(**values | {"district_ids": tuple(row["district_ids"]), "districts": tuple(row["districts"])})


def _cursor(conn: psycopg.Connection) -> psycopg.Cursor:
    return conn.cursor(row_factory=dict_row)


def scope_of(user: User) -> Scope:
    """The equipment `user` may see (docs/access.md): the one place a role becomes a scope."""
    if user.disabled:
        return Scope.nothing()
    if user.role == ADMIN or (user.role == INSPECTOR and user.all_districts):
        return Scope.everything()
    if user.role == INSPECTOR:
        return Scope.of(districts=user.district_ids)
    if user.role == FIRM and user.firm_id is not None:
        return Scope.of(firms=[user.firm_id])
    if user.role == USE_UNIT and user.use_unit_id is not None:
        return Scope.of(use_units=[user.use_unit_id])
    return Scope.nothing()  # a role without its party sees nothing rather than everything


def get_user(conn: psycopg.Connection, *, user_id: int | None = None, username: str | None = None) -> User | None:
    """The user with this id or name, or None."""
    column, value = ("u.id", user_id) if user_id is not None else ("u.username", username)
    return _user(_cursor(conn).execute(_USER_SQL + f" WHERE {column} = %s", (value,)).fetchone())


def list_users(conn: psycopg.Connection) -> list[User]:
    """Every user, by name."""
    return [u for u in map(_user, _cursor(conn).execute(_USER_SQL + " ORDER BY u.username").fetchall()) if u]


def hash_password(password: str) -> str:
    """A password as kept: Werkzeug's scrypt with a random salt; a password too short is refused."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"a password has at least {MIN_PASSWORD_LENGTH} characters (密码至少{MIN_PASSWORD_LENGTH}位)")
    return generate_password_hash(password, method="scrypt")


def _ids(conn: psycopg.Connection, table: str, what: str, names: Iterable[str]) -> list[int]:
    ids = []
    for name in names:
        row = _cursor(conn).execute(f"SELECT id FROM {table} WHERE name = %s", (name,)).fetchone()
        if row is None:
            raise UserError(f"no {what} named {name!r} is registered")
        ids.append(row["id"])
    return ids


def create_user(conn: psycopg.Connection, actor: Actor, username: str, role: str, password: str, *,
                display_name: str = "", firm: str | None = None, use_unit: str | None = None,
                districts: Iterable[str] = (), all_districts: bool = False) -> User:
    """Add a user: a firm's with its firm, a use unit's with its use unit, an inspector with districts or all."""
    districts = [d for d in districts if d]
    if not USERNAME.fullmatch(username):
        raise UserError(f"username {username!r}: 1 to 64 letters, digits or . _ @ -")
    if role not in ROLES:
        raise UserError(f"role {role!r}: one of {', '.join(ROLES)}")
    if (role == FIRM) != bool(firm):
        raise UserError("a firm's user, and only one, names its maintenance firm (--firm)")
    if (role == USE_UNIT) != bool(use_unit):
        raise UserError("a use unit's user, and only one, names its use unit (--use-unit)")
    if role != INSPECTOR and (districts or all_districts):
        raise UserError("only an inspector is given districts")
    if role == INSPECTOR and all_districts and districts:
        raise UserError("an inspector of all districts is given no list of districts")
    password_hash = hash_password(password)
    with conn.transaction():
        firm_id = _ids(conn, "maintenance_firms", "maintenance firm", [firm])[0] if firm else None
        use_unit_id = _ids(conn, "use_units", "use unit", [use_unit])[0] if use_unit else None
        district_ids = _ids(conn, "districts", "district", districts)
        try:
            with conn.transaction():
                row = _cursor(conn).execute(
                    "INSERT INTO users (username, display_name, role, password_hash, firm_id, use_unit_id,"
                    " all_districts) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (username, display_name, role, password_hash, firm_id, use_unit_id, all_districts)).fetchone()
        except psycopg.errors.UniqueViolation:
            raise UserError(f"user {username!r} already exists") from None
        for district_id in district_ids:
            conn.execute("INSERT INTO user_districts (user_id, district_id) VALUES (%s, %s)", (row["id"], district_id))
        user = get_user(conn, user_id=row["id"])
        assert user is not None
        record(conn, actor, "user.add", f"user {username}", None, user.audit_row())
    return user


def _change(conn: psycopg.Connection, actor: Actor, username: str, action: str, sql: str,
            values: tuple[Any, ...] = ()) -> User:
    """Apply `sql` (its last parameter the user's id) to one user and log the change."""
    with conn.transaction():
        before = get_user(conn, username=username)
        if before is None:
            raise UserError(f"no user named {username!r}")
        conn.execute(sql, (*values, before.id))
        after = get_user(conn, user_id=before.id)
        assert after is not None
        record(conn, actor, action, f"user {username}", before.audit_row(), after.audit_row())
    return after


def set_disabled(conn: psycopg.Connection, actor: Actor, username: str, disabled: bool) -> User:
    """Disable a user (its sessions and tokens stop working at once) or enable it again."""
    return _change(conn, actor, username, "user.disable" if disabled else "user.enable",
                   "UPDATE users SET disabled = %s, session_generation = session_generation + 1, updated_at = now()"
                   " WHERE id = %s", (disabled,))


def reset_password(conn: psycopg.Connection, actor: Actor, username: str, password: str) -> User:
    """Set a new password; every session of the user ends (its tokens stay: revoke them apart)."""
    password_hash = hash_password(password)
    return _change(conn, actor, username, "user.reset_password",
                   "UPDATE users SET password_hash = %s, session_generation = session_generation + 1,"
                   " updated_at = now() WHERE id = %s", (password_hash,))


def end_sessions(conn: psycopg.Connection, actor: Actor, username: str) -> User:
    """Log the user out everywhere: every session signed in before now stops working."""
    return _change(conn, actor, username, "user.logout_everywhere",
                   "UPDATE users SET session_generation = session_generation + 1, updated_at = now() WHERE id = %s")


# --- login --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoginLimits:
    """Failed logins allowed per account name and per address within `window_s` seconds."""

    per_username: int
    per_address: int
    window_s: int


class LoginRefused(Exception):
    """A login refused: wrong name or password, a disabled user, or too many failures (`retry_after_s` set)."""

    def __init__(self, message: str, retry_after_s: int | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


def login(conn: psycopg.Connection, username: str, password: str, remote_addr: str, limits: LoginLimits) -> User:
    """The user whose name and password these are; raises LoginRefused. Failures are counted in the database, so
    the limit holds across every web worker."""
    refused: LoginRefused | None = None
    with conn.transaction():
        # One login per name at a time, across workers: two parallel guesses cannot both read "one left".
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('semon.login:' || %s))", (username,))
        counts = _cursor(conn).execute(
            """SELECT count(*) FILTER (WHERE username = %(username)s) AS by_name,
                      count(*) FILTER (WHERE remote_addr = %(addr)s) AS by_address,
                      ceil(extract(epoch FROM min(failed_at) + make_interval(secs => %(window)s) - now()))::int
                          AS retry_after_s
                 FROM login_failures
                WHERE (username = %(username)s OR remote_addr = %(addr)s)
                  AND failed_at > now() - make_interval(secs => %(window)s)""",
            {"username": username, "addr": remote_addr, "window": limits.window_s}).fetchone()
        if counts["by_name"] >= limits.per_username or counts["by_address"] >= limits.per_address:
            minutes = max(1, -(-(counts["retry_after_s"] or limits.window_s) // 60))
            raise LoginRefused(f"too many failed logins; try again in {minutes} minutes "
                               f"(登录失败次数过多，请{minutes}分钟后再试)", retry_after_s=minutes * 60)
        row = _cursor(conn).execute("SELECT id, password_hash, disabled FROM users WHERE username = %s",
                                    (username,)).fetchone()
        if row is None or not check_password_hash(row["password_hash"], password):
            if row is None:
                check_password_hash(_dummy_hash(), password)
            # Kept: the failure is committed with the transaction, and the refusal raised after it.
            conn.execute("INSERT INTO login_failures (username, remote_addr) VALUES (%s, %s)",
                         (username, remote_addr))
            refused = LoginRefused("wrong username or password (用户名或密码错误)")
        elif row["disabled"]:
            refused = LoginRefused("this user is disabled (该用户已停用)")
    if refused is not None:
        raise refused
    user = get_user(conn, user_id=row["id"])
    assert user is not None
    return user


# --- API tokens ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    """An API token as listed: never the token itself, which is shown once when made."""

    id: int
    username: str
    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


_TOKEN_SQL = """SELECT t.id, u.username, t.name, t.created_at, t.last_used_at, t.revoked_at
                  FROM api_tokens t JOIN users u ON u.id = t.user_id"""


def token_digest(token: str) -> str:
    """What is kept of a token: its SHA-256, in hex."""
    # The token holds 256 random bits: a fast hash keeps it as safe as scrypt would, at no cost per API request.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def list_tokens(conn: psycopg.Connection, username: str | None = None) -> list[Token]:
    """The tokens of one user (or of every user), newest first."""
    where, values = (" WHERE u.username = %s", (username,)) if username else ("", ())
    return [Token(**r) for r in _cursor(conn).execute(_TOKEN_SQL + where + " ORDER BY t.id DESC", values)]


def create_token(conn: psycopg.Connection, actor: Actor, username: str, name: str) -> tuple[Token, str]:
    """Make a token for `username` named `name`; returns it with the token itself, which is not kept."""
    name = name.strip()
    if not name or len(name) > 200:
        raise UserError("a token's name is 1 to 200 characters (令牌名称)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with conn.transaction():
        user = get_user(conn, username=username)
        if user is None:
            raise UserError(f"no user named {username!r}")
        row = _cursor(conn).execute("INSERT INTO api_tokens (user_id, name, token_sha256) VALUES (%s, %s, %s)"
                                    " RETURNING id", (user.id, name, token_digest(token))).fetchone()
        made = Token(**_cursor(conn).execute(_TOKEN_SQL + " WHERE t.id = %s", (row["id"],)).fetchone())
        record(conn, actor, "token.create", f"token {made.id} of {username}", None, {"name": name})
    return made, token


def revoke_token(conn: psycopg.Connection, actor: Actor, token_id: int, owner: str | None = None) -> Token:
    """Revoke a token (of `owner` only, when given); it stops working at once."""
    with conn.transaction():
        row = _cursor(conn).execute(_TOKEN_SQL + " WHERE t.id = %s FOR UPDATE OF t", (token_id,)).fetchone()
        if row is None or (owner is not None and row["username"] != owner):
            raise UserError(f"no token {token_id}" + (f" of {owner}" if owner else ""))
        before = Token(**row)
        if before.revoked_at is None:
            conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = %s", (token_id,))
        after = Token(**_cursor(conn).execute(_TOKEN_SQL + " WHERE t.id = %s", (token_id,)).fetchone())
        record(conn, actor, "token.revoke", f"token {token_id} of {before.username}",
               {"name": before.name, "revoked_at": before.revoked_at}, {"name": after.name,
                                                                          "revoked_at": after.revoked_at})
    return after


def user_by_token(conn: psycopg.Connection, token: str) -> User | None:
    """The enabled user whose token, not revoked, this is; None otherwise."""
    row = _cursor(conn).execute(
        "UPDATE api_tokens t SET last_used_at = now() FROM users u"
        " WHERE t.token_sha256 = %s AND t.revoked_at IS NULL AND u.id = t.user_id AND NOT u.disabled"
        " RETURNING t.user_id", (token_digest(token),)).fetchone()
    return None if row is None else get_user(conn, user_id=row["user_id"])
