"""Alerts: one open alert per (equipment, kind), raised, repeated and resolved, with an outbox row each time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class AlertChange:
    alert_id: int
    event: str  # raised, repeated or resolved


# The partial unique index alerts_one_open makes this race-free: a second raise becomes a repeat.
_RAISE = """
INSERT INTO alerts AS a (equipment_id, kind, source, severity, firm_id, message, detail, first_seen, last_seen)
SELECT e.id, %(kind)s, %(source)s, %(severity)s, e.firm_id, %(message)s, %(detail)s, %(seen_at)s, %(seen_at)s
FROM equipment e WHERE e.id = %(equipment_id)s
ON CONFLICT (equipment_id, kind) WHERE state <> 'resolved' DO UPDATE SET
    count = a.count + 1,
    last_seen = GREATEST(a.last_seen, EXCLUDED.last_seen),
    message = EXCLUDED.message,
    detail = a.detail || EXCLUDED.detail
RETURNING id, (xmax = 0) AS inserted
"""


def raise_alert(conn: psycopg.Connection, *, equipment_id: int, kind: str, source: str, severity: str,
                message: str, seen_at: datetime, detail: dict[str, Any] | None = None) -> AlertChange:
    """Open the (equipment, kind) alert, or count a repeat of the open one; queue a notification."""
    row = conn.execute(_RAISE, {"equipment_id": equipment_id, "kind": kind, "source": source,
                                "severity": severity, "message": message, "detail": Jsonb(detail or {}),
                                "seen_at": seen_at}).fetchone()
    if row is None:
        raise LookupError(f"no equipment with id {equipment_id}")
    alert_id, inserted = (row["id"], row["inserted"]) if isinstance(row, dict) else row
    change = AlertChange(alert_id, "raised" if inserted else "repeated")
    if inserted:
        _enqueue(conn, change)
    return change


def resolve_alert(conn: psycopg.Connection, *, equipment_id: int, kind: str,
                  resolved_at: datetime) -> AlertChange | None:
    """Resolve the open (equipment, kind) alert, if there is one; queue a notification."""
    row = conn.execute("""UPDATE alerts SET state = 'resolved', resolved_at = %s
                          WHERE equipment_id = %s AND kind = %s AND state <> 'resolved' RETURNING id""",
                       (resolved_at, equipment_id, kind)).fetchone()
    if row is None:
        return None
    change = AlertChange(row["id"] if isinstance(row, dict) else row[0], "resolved")
    _enqueue(conn, change)
    return change


def _enqueue(conn: psycopg.Connection, change: AlertChange) -> None:
    # Routed to the firm that maintains the equipment; delivery reads this outbox and retries.
    conn.execute("""INSERT INTO notifications (alert_id, firm_id, event)
                    SELECT id, firm_id, %s FROM alerts WHERE id = %s""", (change.event, change.alert_id))
