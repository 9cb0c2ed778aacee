"""What "today" and "now" are for every part of semon: the database's clock, so that the scheduler's scans and
the web pages judge the same due dates the same way whichever host runs them."""

from __future__ import annotations

from datetime import date, datetime

import psycopg
from psycopg.rows import dict_row


def today_and_now(conn: psycopg.Connection) -> tuple[date, datetime]:
    """The database's current date (its session time zone) and its current time."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT current_date AS today, now() AS now").fetchone()
    assert row is not None
    return row["today"], row["now"]


def today(conn: psycopg.Connection) -> date:
    """The database's current date: the day every compliance status and figure is judged on."""
    return today_and_now(conn)[0]
