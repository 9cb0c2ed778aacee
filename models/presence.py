"""Presence: an equipment whose monitor has missed its heartbeats is offline, like one whose last will arrived."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg


def mark_silent_offline(conn: psycopg.Connection, now: datetime, silence: timedelta) -> int:
    """Mark offline every equipment not heard from for `silence`; returns how many changed."""
    cur = conn.execute("""UPDATE equipment_state SET status = 'offline', status_changed_at = %(now)s
                          WHERE status IS DISTINCT FROM 'offline' AND last_seen < %(cutoff)s""",
                       {"now": now, "cutoff": now - silence})
    return cur.rowcount
