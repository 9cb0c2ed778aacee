"""MQTT accounts: one per monitor, allowed to publish under its own equipment's topics only, and the ingester's and
the simulators' (docs/monitors.md).

semon keeps the accounts, with password hashes only, in `mqtt_accounts`; Mosquitto's password file and ACL are
rendered from that table into the broker's directory, and the broker is told to reload them (SIGHUP). On reload
Mosquitto checks every connected client again, so a revoked or rotated account is disconnected at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psycopg
from psycopg.rows import dict_row

from semon.config import Config
from semon.db import connect
from semon.vocabulary import TOPIC_ROOT

SERVICE_ROLES = ("ingester", "simulator")
PASSWORD_FILE = "passwords"
ACL_FILE = "acl"
PID_FILE = "mosquitto.pid"
# Mosquitto's own format and iteration count (what mosquitto_passwd writes): the passwords are 192 random bits, out
# of reach of guessing however fast each guess is, while every CONNECT pays the iterations (a fleet reconnecting
# after a broker restart pays them ten thousand times at once).
HASH_ITERATIONS = 101
_SALT_BYTES = 12
# Serialises account changes, so that the files each change writes hold every change committed before it.
_LOCK_KEY = 0x5E3018
T = TypeVar("T")


class AccountError(Exception):
    """An account change cannot be made, or the broker cannot be told of it; the message says which."""


@dataclass(frozen=True)
class Account:
    """An active account as the broker sees it."""

    username: str
    role: str
    password_hash: str
    equipment_type: str | None = None  # a monitor's topics are its equipment's: sem/v1/<type>/<code>/...
    code: str | None = None


@dataclass(frozen=True)
class Issued:
    """A password just set: shown once, never stored."""

    username: str
    role: str
    password: str


def new_password() -> str:
    """A random password (32 URL-safe characters, 192 bits)."""
    return secrets.token_urlsafe(24)


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = HASH_ITERATIONS) -> str:
    """Mosquitto's PBKDF2-SHA512 form: $7$iterations$salt$hash (base64)."""
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """Whether `password` is the one `hashed` was made from."""
    try:
        _, kind, iterations, salt, _digest = hashed.split("$")
        if kind != "7":
            return False
        expected = hash_password(password, salt=base64.b64decode(salt), iterations=int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(expected, hashed)


def acl_topics(account: Account) -> list[tuple[str, str]]:
    """(access, topic filter) pairs the broker grants an account; nothing else is allowed, reading included."""
    if account.role == "monitor":
        # Its own topics only, any channel: a wrong channel still reaches the dead letters with its reason.
        return [("write", f"{TOPIC_ROOT}/{account.equipment_type}/{account.code}/#")]
    if account.role == "ingester":
        # semon/ingest/...: the ingester's stop barrier (ingest/service.py); sem/v1/alerts/...: alerts delivered
        # over MQTT by the scheduler with this account (docs/delivery.md).
        return [("read", f"{TOPIC_ROOT}/#"), ("write", "semon/ingest/#"), ("write", f"{TOPIC_ROOT}/alerts/#")]
    if account.role == "simulator":
        return [("write", f"{TOPIC_ROOT}/#")]
    raise ValueError(f"unknown role {account.role!r}")


def render_password_file(accounts: Iterable[Account]) -> str:
    """Mosquitto's password_file: username:hash lines."""
    return "".join(f"{a.username}:{a.password_hash}\n" for a in sorted(accounts, key=lambda a: a.username))


def render_acl(accounts: Iterable[Account], *, anonymous: Sequence[tuple[str, str]] = ()) -> str:
    """Mosquitto's acl_file. Lines before the first `user` are what anonymous clients may do, if they are let in."""
    lines = ["# Written by semon from its mqtt_accounts table (docs/monitors.md): edits here are overwritten.", ""]
    lines += [f"topic {access} {topic}" for access, topic in anonymous]
    for account in sorted(accounts, key=lambda a: a.username):
        lines += ["", f"user {account.username}"]
        lines += [f"topic {access} {topic}" for access, topic in acl_topics(account)]
    return "\n".join(lines) + "\n"


def write_broker_files(directory: Path, accounts: Sequence[Account], *,
                       anonymous: Sequence[tuple[str, str]] = ()) -> None:
    """Replace the password file and ACL in `directory` (each atomically; readable by their owner only)."""
    for name, text in ((PASSWORD_FILE, render_password_file(accounts)), (ACL_FILE, render_acl(accounts,
                                                                                            anonymous=anonymous))):
        temporary = directory / f".{name}.new"
        temporary.write_text(text, encoding="utf-8")
        temporary.chmod(0o600)
        temporary.replace(directory / name)


def broker_dir(config: Config) -> Path:
    """The directory of the Mosquitto semon runs (scripts/mosquitto.sh uses the same default)."""
    if config.mosquitto_dir:
        return Path(config.mosquitto_dir)
    return Path(os.environ.get("SEMON_VAR") or Path(__file__).resolve().parent.parent / "var") / "mosquitto"


def reload_broker(directory: Path) -> bool:
    """SIGHUP the Mosquitto whose pid is in directory/mosquitto.pid; False when none runs there."""
    try:
        pid = int((directory / PID_FILE).read_text().strip())
        # A stale pid file may name another program by now, which a SIGHUP could end.
        if Path(f"/proc/{pid}/comm").read_text().strip() != "mosquitto":
            return False
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return False
    except PermissionError:
        raise AccountError(f"the change is stored and the broker's files in {directory} are written, but this user "
                           f"may not signal Mosquitto (pid {pid}): reload it as its own user (kill -HUP {pid})") \
            from None
    return True


# --- the accounts table ---------------------------------------------------------------------------------------------

def _rows(conn: psycopg.Connection, query: str, params: Sequence[object] = ()) -> list[dict]:
    return conn.cursor(row_factory=dict_row).execute(query, params).fetchall()


def active_accounts(conn: psycopg.Connection) -> list[Account]:
    """Every account that may connect, with its monitor's equipment type."""
    return [Account(r["username"], r["role"], r["password_hash"], r["type"], r["code"]) for r in _rows(conn, """
        SELECT a.username, a.role, a.password_hash, e.type, e.code
          FROM mqtt_accounts a LEFT JOIN equipment e ON e.id = a.equipment_id
         WHERE a.revoked_at IS NULL ORDER BY a.username""")]


def _lock(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))


def provision(conn: psycopg.Connection, codes: Sequence[str]) -> list[Issued]:
    """An account for the monitor of each of these equipment codes (its username is the code); all or none."""
    _lock(conn)
    codes = list(dict.fromkeys(codes))
    found = {r["code"]: r["id"] for r in _rows(conn, "SELECT code, id FROM equipment WHERE code = ANY(%s)", (codes,))}
    unknown = [c for c in codes if c not in found]
    if unknown:
        raise AccountError(f"not in the equipment registry: {', '.join(unknown)}")
    taken = [r["username"] for r in _rows(conn, "SELECT username FROM mqtt_accounts WHERE username = ANY(%s) "
                                                "AND revoked_at IS NULL ORDER BY username", (codes,))]
    if taken:
        raise AccountError(f"already provisioned (rotate gives a new password): {', '.join(taken)}")
    return [_set_password(conn, code, "monitor", found[code]) for code in codes]


def provision_all(conn: psycopg.Connection) -> list[Issued]:
    """An account for every registered equipment, scrapped ones aside, that has none."""
    codes = [r["code"] for r in _rows(conn, """
        SELECT e.code FROM equipment e
         WHERE e.status <> 'scrapped'
           AND NOT EXISTS (SELECT 1 FROM mqtt_accounts a WHERE a.username = e.code AND a.revoked_at IS NULL)
         ORDER BY e.code""")]
    return provision(conn, codes) if codes else []


def set_service_account(conn: psycopg.Connection, role: str, username: str) -> Issued:
    """Create the account of an ingester or a simulator, or give it a new password."""
    if role not in SERVICE_ROLES:
        raise AccountError(f"a service account is for an {' or a '.join(SERVICE_ROLES)}, not {role!r}")
    _lock(conn)
    for row in _rows(conn, "SELECT role FROM mqtt_accounts WHERE username = %s", (username,)):
        if row["role"] != role:
            raise AccountError(f"{username} is already the account of a {row['role']}")
    if _rows(conn, "SELECT 1 FROM equipment WHERE code = %s", (username,)):
        raise AccountError(f"{username} is an equipment code: a service account needs a name of its own")
    return _set_password(conn, username, role, None)


def _set_password(conn: psycopg.Connection, username: str, role: str, equipment_id: int | None) -> Issued:
    password = new_password()
    conn.execute("""INSERT INTO mqtt_accounts (username, role, equipment_id, password_hash)
                    VALUES (%s, %s, %s, %s)
                    ON CONFLICT (username) DO UPDATE
                       SET password_hash = EXCLUDED.password_hash, equipment_id = EXCLUDED.equipment_id,
                           password_set_at = now(), revoked_at = NULL""",
                 (username, role, equipment_id, hash_password(password)))
    return Issued(username, role, password)


def revoke(conn: psycopg.Connection, usernames: Sequence[str]) -> list[str]:
    """Take these accounts' right to connect away (their rows stay, saying when); all or none."""
    _lock(conn)
    usernames = list(dict.fromkeys(usernames))
    revoked = [r["username"] for r in _rows(conn, """
        UPDATE mqtt_accounts SET revoked_at = now(), password_hash = NULL
         WHERE username = ANY(%s) AND revoked_at IS NULL RETURNING username""", (usernames,))]
    missing = [u for u in usernames if u not in revoked]
    if missing:
        raise AccountError(f"no active account: {', '.join(missing)}")
    return usernames


def rotate(conn: psycopg.Connection, usernames: Sequence[str]) -> list[Issued]:
    """A new password for each of these accounts, the old one refused from now on; all or none."""
    _lock(conn)
    usernames = list(dict.fromkeys(usernames))
    rows = {r["username"]: r for r in _rows(conn, """
        SELECT username, role, equipment_id FROM mqtt_accounts
         WHERE username = ANY(%s) AND revoked_at IS NULL""", (usernames,))}
    missing = [u for u in usernames if u not in rows]
    if missing:
        raise AccountError(f"no active account: {', '.join(missing)}")
    return [_set_password(conn, u, rows[u]["role"], rows[u]["equipment_id"]) for u in usernames]


def list_accounts(conn: psycopg.Connection) -> list[dict]:
    """Every account, revoked ones too, for `semon monitors list`."""
    return _rows(conn, """SELECT a.username, a.role, e.code, e.type, a.created_at, a.password_set_at, a.revoked_at
                            FROM mqtt_accounts a LEFT JOIN equipment e ON e.id = a.equipment_id
                           ORDER BY a.role, a.username""")


def write_from_table(conn: psycopg.Connection, directory: Path) -> None:
    """Write the broker's files from the accounts as `conn` sees them.

    Called in the transaction that changed the accounts, before its commit: a change the broker's files could not
    take is rolled back rather than stored without the broker knowing."""
    if not directory.is_dir():
        raise AccountError(f"the broker's directory {directory} does not exist (setting mosquitto_dir); "
                           "nothing was changed")
    try:
        write_broker_files(directory, active_accounts(conn))
    except OSError as exc:
        raise AccountError(f"cannot write the broker's files in {directory}: {exc.strerror}; nothing was changed") \
            from None


def change_accounts(config: Config, action: Callable[[psycopg.Connection], T]) -> tuple[T, bool]:
    """Run `action` on the accounts in one transaction with the broker's files written from its result, then reload
    the broker; returns what the action returned and whether a running broker was reloaded."""
    directory = broker_dir(config)
    with connect(config.database_url) as conn, conn.transaction():
        result = action(conn)
        write_from_table(conn, directory)
    return result, reload_broker(directory)
