"""Device-reported faults: each raised event opens (or repeats) an alert, each cleared event resolves it."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from alerts.store import raise_alert, resolve_alert

JOB_NAME = "fault_events"
# Rows become visible at commit, not at their received_at: read only what is old enough that no
# ingest transaction still holding an earlier received_at can commit after we move past it.
SETTLE = timedelta(seconds=5)


def process_fault_events(conn: psycopg.Connection, now: datetime) -> int:
    """Turn events received since the last run into alert changes; returns how many events were read."""
    upto = now - SETTLE
    row = conn.execute("SELECT position FROM job_cursors WHERE name = %s FOR UPDATE", (JOB_NAME,)).fetchone()
    since = row["position"] if row else datetime.fromtimestamp(0, upto.tzinfo)
    events = conn.execute("""
        SELECT e.equipment_id, e.code, e.state, e.ts, e.detail, f.severity, f.description,
               EXISTS (SELECT 1 FROM events c WHERE c.equipment_id = e.equipment_id AND c.code = e.code
                       AND c.state = 'cleared' AND c.ts > e.ts) AS cleared_later
        FROM events e JOIN fault_codes f ON f.name = e.code
        WHERE e.received_at > %s AND e.received_at <= %s
        ORDER BY e.ts, e.seq""", (since, upto)).fetchall()
    for event in events:
        if event["state"] == "raised":
            raise_alert(conn, equipment_id=event["equipment_id"], kind=event["code"], source="device",
                        severity=event["severity"], message=f"{event['description']} (reported by the monitor)",
                        seen_at=event["ts"], detail=event["detail"] or {})
            if event["cleared_later"]:
                # Delivered out of order: the clear came first, so the fault is already over.
                resolve_alert(conn, equipment_id=event["equipment_id"], kind=event["code"], resolved_at=event["ts"])
        else:
            resolve_alert(conn, equipment_id=event["equipment_id"], kind=event["code"], resolved_at=event["ts"])
    conn.execute("""INSERT INTO job_cursors (name, position) VALUES (%s, %s)
                    ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position""", (JOB_NAME, upto))
    return len(events)
