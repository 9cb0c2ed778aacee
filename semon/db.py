"""Database access: connections and pools from the configured URL, with readable connection errors."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from semon.clock import session_options


class DatabaseUnavailable(Exception):
    """The database cannot be reached or refused the connection."""


def redact(url: str) -> str:
    """The URL with its password hidden, for messages."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def connect(url: str, *, autocommit: bool = False, timeout_s: float = 10,
            time_zone: str | None = None) -> psycopg.Connection:
    """One connection; rows come back as dicts. With `time_zone`, the session runs in it (semon/clock.py)."""
    extra = {"options": session_options(time_zone)} if time_zone else {}
    try:
        return psycopg.connect(url, autocommit=autocommit, row_factory=dict_row, connect_timeout=timeout_s, **extra)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"cannot connect to the database at {redact(url)}: {reason}") from None


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def database_name(url: str) -> str:
    """The database named in a URL."""
    return urlsplit(url).path.lstrip("/") or "postgres"


def create_database(server_url: str, name: str) -> str:
    """Create database `name` on the server of `server_url` unless it exists; returns its URL."""
    with connect(with_database(server_url, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    """Drop database `name`, disconnecting whoever is still connected."""
    with connect(with_database(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
