"""Overdue periodic inspections (超期未检): one alert per in-use equipment past its due date."""

from __future__ import annotations

from datetime import date, datetime

import psycopg

from alerts.store import raise_alert, resolve_alert

KIND = "inspection_overdue"

# The due date is the latest inspection's next_due; never inspected equipment falls due one interval
# after installation. Suspended and scrapped equipment are not in use and owe no inspection.
_DUE = """
SELECT e.id, e.code, COALESCE(i.next_due, (e.install_date + make_interval(months => %(months)s))::date) AS due
FROM equipment e
LEFT JOIN LATERAL (
    SELECT next_due FROM inspections
    WHERE equipment_id = e.id AND kind = 'periodic_inspection'
    ORDER BY performed_on DESC LIMIT 1) i ON true
WHERE e.status = 'in_use'
"""


def scan_overdue_inspections(conn: psycopg.Connection, today: date, now: datetime,
                             interval_months: int = 12) -> tuple[int, int]:
    """Raise an alert for each overdue equipment, resolve those back in date; returns (overdue, resolved)."""
    due = conn.execute(_DUE, {"months": interval_months}).fetchall()
    open_ids = {r["equipment_id"] for r in conn.execute(
        "SELECT equipment_id FROM alerts WHERE kind = %s AND state <> 'resolved'", (KIND,))}
    overdue_ids = set()
    for row in due:
        if row["due"] is not None and row["due"] < today:
            overdue_ids.add(row["id"])
            if row["id"] in open_ids:
                continue  # still overdue is not a new occurrence: the count stays as it is
            raise_alert(conn, equipment_id=row["id"], kind=KIND, source="compliance", severity="medium",
                        message=f"periodic inspection overdue since {row['due'].isoformat()}",
                        seen_at=now, detail={"due": row["due"].isoformat()})
    resolved = 0
    for equipment_id in open_ids:
        if equipment_id not in overdue_ids:
            resolve_alert(conn, equipment_id=equipment_id, kind=KIND, resolved_at=now)
            resolved += 1
    return len(overdue_ids), resolved
