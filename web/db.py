"""The web app's connection pool: opened on first use, one connection per request, closed at exit."""

from __future__ import annotations

import atexit
import threading
from typing import Any

import psycopg
from flask import Flask, current_app, g
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from semon import clock
from semon.clock import session_options
from semon.db import connect

EXTENSION = "semon_db"
# The server is threaded: each request thread holds at most one connection, so this bounds both the
# concurrent requests that touch the database and the connections the web app costs PostgreSQL.
POOL_MAX_SIZE = 8
REQUEST_TIMEOUT_S = 10.0


class LazyPool:
    """A ConnectionPool opened by the first request rather than when the app is built."""

    def __init__(self, url: str, time_zone: str):
        self.url = url
        self.time_zone = time_zone
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()

    def get(self) -> ConnectionPool:
        """The open pool; raises semon.db.DatabaseUnavailable (with the reason) if it cannot be opened."""
        with self._lock:
            if self._pool is None:
                # A direct connection first: a failed pool open only says "timed out", this says why.
                connect(self.url, timeout_s=5, time_zone=self.time_zone).close()
                pool = ConnectionPool(
                    self.url, min_size=1, max_size=POOL_MAX_SIZE, open=False, name="semon-web",
                    # Read-only pages: autocommit leaves no connection idle in a transaction.
                    # Sessions in the users' zone: current_date is their day, times come with their offset.
                    kwargs={"row_factory": dict_row, "autocommit": True,
                            "options": session_options(self.time_zone)},
                    # After a database restart the pooled connections are dead; check before lending.
                    check=ConnectionPool.check_connection,
                )
                pool.open(wait=True, timeout=10)
                self._pool = pool
                atexit.register(self.close)
            return self._pool

    def close(self) -> None:
        """Close the pool if it was opened; the next request opens a new one."""
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
                atexit.unregister(self.close)


def init_app(app: Flask, url: str, time_zone: str) -> None:
    """Attach a lazy pool for `url` (sessions in `time_zone`) to the app; connections go back after each request."""
    app.extensions[EXTENSION] = LazyPool(url, time_zone)
    app.before_request(_freeze_clock)
    app.teardown_appcontext(_release_connection)


def close_pool(app: Flask) -> None:
    """Close the app's pool (tests and shutdown)."""
    app.extensions[EXTENSION].close()


def connection(timeout_s: float = REQUEST_TIMEOUT_S) -> psycopg.Connection:
    """This request's connection, borrowed from the pool on first use."""
    if "db_conn" not in g:
        pool = current_app.extensions[EXTENSION].get()
        g.db_conn = pool.getconn(timeout=timeout_s)
        g.db_pool = pool
    return g.db_conn


def fetch_all(query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """All rows of a parameterised query, as dicts."""
    return connection().execute(query, params).fetchall()


def fetch_one(query: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The first row of a parameterised query, or None."""
    return connection().execute(query, params).fetchone()


# Tests set app.config[FROZEN_NOW] to see the pages at a given time (semon.clock.frozen).
FROZEN_NOW = "SEMON_NOW"


def _freeze_clock() -> None:
    now = current_app.config.get(FROZEN_NOW)
    if now is not None:
        g.clock = clock.frozen(now)
        g.clock.__enter__()


def _release_connection(_exc: BaseException | None) -> None:
    frozen = g.pop("clock", None)
    if frozen is not None:
        frozen.__exit__(None, None, None)
    conn = g.pop("db_conn", None)
    pool = g.pop("db_pool", None)
    if conn is not None and pool is not None:
        # The pool discards a broken connection rather than lending it again.
        pool.putconn(conn)
