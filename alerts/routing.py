"""Who is told about which alert: the routes of the alert_routes table, resolved per equipment into rows of the
notifications outbox (docs/alerts.md). Every writer of alerts and reminders queues through `queue_sql`."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import class_row

from semon.vocabulary import SEVERITIES

RECIPIENTS = ("firm", "use_unit", "district")
_SEVERITY_ORDER = "ARRAY[" + ", ".join(f"'{s}'" for s in SEVERITIES) + "]::text[]"


@dataclass(frozen=True)
class Route:
    """One row of alert_routes: which changes (events, sources, least severity) reach which kind of party."""

    id: int
    recipient: str
    events: list[str]
    sources: list[str] | None
    min_severity: str | None
    when_no_firm: bool
    description: str


def routes(conn: psycopg.Connection) -> list[Route]:
    """The routes in force."""
    with conn.cursor(row_factory=class_row(Route)) as cur:
        return cur.execute("SELECT id, recipient, events, sources, min_severity, when_no_firm, description"
                           " FROM alert_routes ORDER BY id").fetchall()


def queue_sql(changes: str) -> str:
    """An INSERT that queues one outbox row per alert change, matching route and existing recipient.

    `changes` names a relation (a CTE or a table) with the columns alert_id, reminder_id, equipment_id, event,
    severity (NULL for reminders), source and at (when it happened; the row is due for delivery then)."""
    recipient_id = ("CASE r.recipient WHEN 'firm' THEN e.firm_id WHEN 'use_unit' THEN e.use_unit_id"
                    " ELSE e.district_id END")
    return f"""
INSERT INTO notifications (alert_id, reminder_id, event, recipient, firm_id, use_unit_id, district_id,
                           created_at, next_attempt_at)
SELECT c.alert_id, c.reminder_id, c.event, r.recipient,
       CASE WHEN r.recipient = 'firm' THEN e.firm_id END,
       CASE WHEN r.recipient = 'use_unit' THEN e.use_unit_id END,
       CASE WHEN r.recipient = 'district' THEN e.district_id END,
       c.at, c.at
  FROM {changes} c
  JOIN equipment e ON e.id = c.equipment_id
  JOIN alert_routes r ON c.event = ANY (r.events)
   AND (r.sources IS NULL OR c.source = ANY (r.sources))
   AND (r.min_severity IS NULL
        OR array_position({_SEVERITY_ORDER}, c.severity) <= array_position({_SEVERITY_ORDER}, r.min_severity)
        OR (r.when_no_firm AND e.firm_id IS NULL))
 WHERE {recipient_id} IS NOT NULL"""
