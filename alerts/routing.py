"""Who is told about which alert: the routes of the alert_routes table, resolved per equipment into rows of the
notifications outbox (docs/alerts.md). Every writer of alerts and reminders queues through `queue_sql`."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import class_row

from alerts.silences import in_force_sql
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


def held_back_sql(alert: str, at: str) -> str:
    """SQL: whether the alert row `alert` is held back from being told at `at` (docs/alert-handling.md): muted while
    its muting alert is not resolved, silenced while its maintenance window is in force."""
    return (f"(EXISTS (SELECT FROM alerts hm WHERE hm.id = {alert}.muted_by"
            f" AND (hm.state <> 'resolved' OR hm.resolved_at > {at}))"
            f" OR EXISTS (SELECT FROM silences hs WHERE hs.id = {alert}.silence_id AND {in_force_sql('hs', at)}))")


def _party_sql(recipient: str) -> tuple[str, str]:
    """SQL for the party a kind of recipient (`recipient`, an expression) is for an equipment row `e`: the columns
    firm_id, use_unit_id, district_id of the outbox row (one set), and the party's id (NULL: the equipment has none)."""
    columns = ",\n       ".join(f"CASE WHEN {recipient} = '{kind}' THEN e.{kind}_id END" for kind in RECIPIENTS)
    party = f"CASE {recipient} " + " ".join(f"WHEN '{kind}' THEN e.{kind}_id" for kind in RECIPIENTS) + " END"
    return columns, party


def queue_sql(changes: str) -> str:
    """An INSERT that queues one outbox row per alert change, matching route and existing recipient.

    `changes` names a relation (a CTE or a table) with the columns alert_id, reminder_id, equipment_id, event,
    severity (NULL for reminders), source and at (when it happened; the row is due for delivery then).
    A change of an alert that a standing mark holds back is not queued (docs/alert-handling.md): muted_by while the
    muting alert is not resolved at `at`, silence_id while its window is in force at `at`. The writer of a new alert
    leaves it out itself when it marks it: the row its own statement writes is not visible here."""
    columns, party = _party_sql("r.recipient")
    return f"""
INSERT INTO notifications (alert_id, reminder_id, event, recipient, firm_id, use_unit_id, district_id,
                           created_at, next_attempt_at)
SELECT c.alert_id, c.reminder_id, c.event, r.recipient,
       {columns},
       c.at, c.at
  FROM {changes} c
  JOIN equipment e ON e.id = c.equipment_id
  JOIN alert_routes r ON c.event = ANY (r.events)
   AND (r.sources IS NULL OR c.source = ANY (r.sources))
   AND (r.min_severity IS NULL
        OR array_position({_SEVERITY_ORDER}, c.severity) <= array_position({_SEVERITY_ORDER}, r.min_severity)
        OR (r.when_no_firm AND e.firm_id IS NULL))
 WHERE {party} IS NOT NULL
   AND NOT EXISTS (SELECT FROM alerts qa WHERE qa.id = c.alert_id AND {held_back_sql("qa", "c.at")})"""


def escalation_queue_sql(reached: str) -> str:
    """An INSERT that queues one 'escalated' outbox row per recipient of a reached escalation stage that the
    equipment has (docs/escalation.md): the chain names the recipients, not alert_routes.

    `reached` names a relation with the columns alert_id, equipment_id, recipient, contact_role, escalation_stage
    and at."""
    columns, party = _party_sql("s.recipient")
    return f"""
INSERT INTO notifications (alert_id, event, recipient, firm_id, use_unit_id, district_id, contact_role,
                           escalation_stage, created_at, next_attempt_at)
SELECT s.alert_id, 'escalated', s.recipient,
       {columns},
       s.contact_role, s.escalation_stage, s.at, s.at
  FROM {reached} s
  JOIN equipment e ON e.id = s.equipment_id
 WHERE {party} IS NOT NULL"""
