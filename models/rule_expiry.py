"""The telemetry rules between messages: a dwell that is running when a monitor goes quiet (it reports on change,
or it lost power with a passenger inside) is decided on the server's clock by this job (docs/rules.md).

Only equipment with a pending dwell is looked at (rule_state.pending); rows an ingester holds for its batch are
skipped, since that batch is deciding them."""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from models.rules.engine import Detector, EquipmentInfo
from models.rules.runtime import apply_changes, save_states

_PENDING = """
SELECT r.equipment_id, r.state, r.last_ts, s.last_seen, e.type, e.rated_speed_mps, e.floors, e.rated_pressure_mpa
  FROM rule_state r
  JOIN equipment e ON e.id = r.equipment_id
  LEFT JOIN equipment_state s ON s.equipment_id = r.equipment_id
 WHERE r.pending
 ORDER BY r.equipment_id
   FOR UPDATE OF r SKIP LOCKED
"""


def expire_pending(conn: psycopg.Connection, now: datetime, detector: Detector) -> int:
    """Let the rules decide every pending dwell at `now`; returns the alert changes made."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_PENDING).fetchall()
    changed = 0
    updated = {}
    for row in rows:
        if row["last_seen"] is None:
            continue
        info = EquipmentInfo(row["equipment_id"], row["type"], row["rated_speed_mps"], row["floors"],
                             row["rated_pressure_mpa"])
        state, changes = detector.expire(info, row["state"], row["last_seen"], now)
        changed += apply_changes(conn, row["equipment_id"], changes)
        updated[row["equipment_id"]] = (state, None, detector.pending(state))
    save_states(conn, updated)
    return changed
