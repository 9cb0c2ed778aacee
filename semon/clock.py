"""What "today" and "now" are for every part of semon. Database sessions run in the configured time zone
(`time_zone`, semon.db.connect), so the database's current_date is the users' date: the scheduler's scans and the
web pages judge due dates on the same day, at the users' midnight, whichever hosts run them (docs/configuration.md).

Tests freeze the clock with `frozen(now)`: what `today_and_now` answers inside it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

_frozen: ContextVar[datetime | None] = ContextVar("semon_frozen_now", default=None)


def session_options(time_zone: str) -> str:
    """libpq `options` that run a session in `time_zone`."""
    return f"-c TimeZone={time_zone}"


def _zone(conn: psycopg.Connection) -> tzinfo:
    return conn.info.timezone


def today_and_now(conn: psycopg.Connection) -> tuple[date, datetime]:
    """The users' date and the current time (in their zone): the database's, unless the clock is frozen."""
    frozen = _frozen.get()
    if frozen is not None:
        local = frozen.astimezone(_zone(conn))
        return local.date(), local
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT current_date AS today, now() AS now").fetchone()
    assert row is not None
    return row["today"], row["now"]


def today(conn: psycopg.Connection, now: datetime | None = None) -> date:
    """The users' date at `now` (default: the current time): the day every compliance status and figure is
    judged on."""
    if now is None:
        return today_and_now(conn)[0]
    return now.astimezone(_zone(conn)).date()


def local_today(time_zone: str, now: datetime | None = None) -> date:
    """The users' date at `now` (default: this host's clock), for code without a database connection."""
    frozen = _frozen.get()
    return (now or frozen or datetime.now(UTC)).astimezone(ZoneInfo(time_zone)).date()


@contextmanager
def frozen(now: datetime) -> Iterator[None]:
    """Within the block, "now" is `now` (an aware datetime) for today_and_now and local_today."""
    if now.tzinfo is None:
        raise ValueError("a frozen time needs its time zone")
    token = _frozen.set(now)
    try:
        yield
    finally:
        _frozen.reset(token)
