"""Escalation (docs/escalation.md): chains of stages, kept as data, that tell more people about an alert nobody has
acted on in time, and the job that reaches each stage once.

A chain applies to alerts of its kinds and severities (the lowest priority wins when several do). A stage is reached
`delay_s` after the alert's first_seen (or its reopening) unless the alert has by then reached the stage's
`stopped_by` state or a later one; reaching it queues 'escalated' outbox rows for its recipients (alerts/routing.py),
raises alerts.escalation_stage, writes an 'escalated' step in the alert's timeline and, for a stage that says so,
marks the rescue late. An alert held back from being told (muted by an alert that stands for it, or raised in a
maintenance window still in force) is not escalated while it is held."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from alerts.routing import RECIPIENTS, escalation_queue_sql, held_back_sql
from semon.audit import Actor, record
from semon.vocabulary import ALERT_STATES, SEVERITIES

# The order an alert's handling goes through (docs/alert-handling.md); a stage stops at its state or any later one.
PROGRESS = ALERT_STATES
STOPPED_BY = PROGRESS[1:]
_KIND = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_ROLE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class EscalationError(ValueError):
    """A chain or stage that cannot be saved, said in one line."""


@dataclass(frozen=True)
class Recipient:
    """A kind of party (firm, use_unit, district) and which of its contacts (None: its usual ones)."""

    recipient: str
    contact_role: str | None = None

    def __str__(self) -> str:
        return self.recipient if self.contact_role is None else f"{self.recipient}:{self.contact_role}"


@dataclass(frozen=True)
class Stage:
    id: int
    stage: int
    delay_s: int
    stopped_by: str
    rescue_late: bool
    recipients: tuple[Recipient, ...] = ()


@dataclass(frozen=True)
class Chain:
    id: int
    name: str
    kinds: list[str] | None
    severities: list[str] | None
    priority: int
    enabled: bool
    description: str
    stages: list[Stage] = field(default_factory=list)


# One statement, so that a stage is reached once: the rows are locked in id order, skipping those another run holds
# (no deadlock, no wait), and the UPDATE re-checks the stage and state it read, so that a concurrent run or an
# acknowledgement committed meanwhile leaves the alert to the next run.
_ESCALATE = """
WITH chained AS (
    SELECT DISTINCT ON (a.id) a.id AS alert_id, a.equipment_id, a.state, a.escalation_stage,
           GREATEST(a.first_seen, a.reopened_at) AS since, a.muted_by, a.silence_id,
           c.id AS chain_id, c.name AS chain
      FROM alerts a
      JOIN escalation_chains c ON c.enabled AND (c.kinds IS NULL OR a.kind = ANY (c.kinds))
                              AND (c.severities IS NULL OR a.severity = ANY (c.severities))
     WHERE a.state <> 'resolved' AND NOT {held}
     ORDER BY a.id, c.priority, c.id),
due AS (
    SELECT ch.*, s.id AS stage_id, s.stage, s.rescue_late
      FROM chained ch
      JOIN escalation_stages s ON s.chain_id = ch.chain_id AND s.stage > ch.escalation_stage
     WHERE ch.since + make_interval(secs => s.delay_s) <= %(now)s
       AND array_position(%(progress)s::text[], ch.state) < array_position(%(progress)s::text[], s.stopped_by)),
locked AS (
    SELECT a.id FROM alerts a WHERE a.id IN (SELECT alert_id FROM due) ORDER BY a.id FOR UPDATE SKIP LOCKED),
reached AS (
    UPDATE alerts a SET escalation_stage = d.stage, rescue_late = a.rescue_late OR d.late
      FROM (SELECT alert_id, state, escalation_stage, muted_by, silence_id, max(stage) AS stage,
                   bool_or(rescue_late) AS late
              FROM due GROUP BY alert_id, state, escalation_stage, muted_by, silence_id) d
      JOIN locked l ON l.id = d.alert_id
     WHERE a.id = d.alert_id AND a.escalation_stage = d.escalation_stage AND a.state = d.state
       AND a.muted_by IS NOT DISTINCT FROM d.muted_by AND a.silence_id IS NOT DISTINCT FROM d.silence_id
    RETURNING a.id),
fired AS (SELECT due.* FROM due JOIN reached r ON r.id = due.alert_id),
told AS (
    SELECT f.alert_id, f.equipment_id, r.recipient, r.contact_role, f.stage AS escalation_stage,
           %(now)s::timestamptz AS at
      FROM fired f JOIN escalation_recipients r ON r.stage_id = f.stage_id),
queued AS ({queue}),
steps AS (
    INSERT INTO alert_steps (alert_id, at, step, actor, detail)
    SELECT f.alert_id, %(now)s, 'escalated', 'semon',
           jsonb_build_object('chain', f.chain, 'stage', f.stage, 'rescue_late', f.rescue_late, 'recipients',
                              (SELECT COALESCE(jsonb_agg(jsonb_build_object('recipient', r.recipient,
                                                                            'contact_role', r.contact_role)
                                                         ORDER BY r.id), '[]')
                                 FROM escalation_recipients r WHERE r.stage_id = f.stage_id))
      FROM fired f ORDER BY f.alert_id, f.stage)
SELECT count(*) AS n FROM fired"""


def escalate(conn: psycopg.Connection, now: datetime) -> int:
    """Reach, set-based, every escalation stage due at `now` and not stopped; returns how many were reached."""
    return _one(conn.execute(_ESCALATE.format(queue=escalation_queue_sql("told"),
                                              held=held_back_sql("a", "%(now)s")),
                             {"now": now, "progress": list(PROGRESS)}).fetchone())


# --- the chains as data, edited by an administrator (web/escalation.py) --------------------------------------------

def chains(conn: psycopg.Connection) -> list[Chain]:
    """Every chain with its stages and their recipients, in the order they are chosen."""
    with conn.cursor(row_factory=dict_row) as cur:
        found = [Chain(**r) for r in cur.execute(
            "SELECT id, name, kinds, severities, priority, enabled, description FROM escalation_chains"
            " ORDER BY priority, id")]
        stages = cur.execute(
            "SELECT s.chain_id, s.id, s.stage, s.delay_s, s.stopped_by, s.rescue_late,"
            "       COALESCE(array_agg(r.recipient ORDER BY r.id) FILTER (WHERE r.id IS NOT NULL), '{}') AS recipients,"
            "       COALESCE(array_agg(r.contact_role ORDER BY r.id) FILTER (WHERE r.id IS NOT NULL), '{}') AS roles"
            "  FROM escalation_stages s LEFT JOIN escalation_recipients r ON r.stage_id = s.id"
            " GROUP BY s.id ORDER BY s.chain_id, s.stage").fetchall()
    by_chain = {c.id: c for c in found}
    for s in stages:
        recipients = tuple(Recipient(k, role) for k, role in zip(s.pop("recipients"), s.pop("roles"), strict=True))
        by_chain[s.pop("chain_id")].stages.append(Stage(**s, recipients=recipients))
    return found


def parse_list(text: str, what: str) -> list[str] | None:
    """A comma-separated list as a chain keeps it; empty is None (any)."""
    items = [item.strip() for item in text.replace("，", ",").split(",") if item.strip()]
    if what == "severities":
        wrong = [s for s in items if s not in SEVERITIES]
        if wrong:
            raise EscalationError(f"severities: {', '.join(wrong)} is not one of {', '.join(SEVERITIES)}")
    else:
        wrong = [k for k in items if not _KIND.match(k)]
        if wrong:
            raise EscalationError(f"kinds: {wrong[0][:64]!r} is not an alert kind (letters, digits, _ . : -)")
    return list(dict.fromkeys(items)) or None


def parse_recipients(text: str) -> tuple[Recipient, ...]:
    """Recipients written as "use_unit, firm:supervisor, district"."""
    found: list[Recipient] = []
    for item in (i.strip() for i in text.replace("，", ",").split(",")):
        if not item:
            continue
        kind, _, role = (part.strip() for part in item.partition(":"))
        if kind not in RECIPIENTS:
            raise EscalationError(f"recipients: {item[:64]!r} must be one of {', '.join(RECIPIENTS)},"
                                  " optionally with :role (firm:supervisor)")
        if role and not _ROLE.match(role):
            raise EscalationError(f"recipients: role {role[:64]!r} must be lower-case letters, digits and _")
        recipient = Recipient(kind, role or None)
        if recipient not in found:
            found.append(recipient)
    if not found:
        raise EscalationError("recipients: a stage must tell someone (use_unit, firm:supervisor, district)")
    return tuple(found)


def _chain_row(conn: psycopg.Connection, chain_id: int) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT name, kinds, severities, priority, enabled, description FROM escalation_chains"
                           " WHERE id = %s", (chain_id,)).fetchone()


def save_chain(conn: psycopg.Connection, actor: Actor, *, chain_id: int | None, name: str, kinds: list[str] | None,
               severities: list[str] | None, priority: int, enabled: bool, description: str = "") -> int:
    """Add a chain (chain_id None) or change one; returns its id. Audited."""
    name = name.strip()
    if "\x00" in name + description:
        raise EscalationError("name, description: a NUL character cannot be kept")
    if not name or len(name) > 200:
        raise EscalationError("name: give a name of 1 to 200 characters")
    if len(description) > 2000:
        raise EscalationError("description: at most 2,000 characters")
    values = {"name": name, "kinds": kinds, "severities": severities, "priority": priority, "enabled": enabled,
              "description": description}
    with conn.transaction():
        taken = conn.execute("SELECT id FROM escalation_chains WHERE name = %s", (name,)).fetchone()
        if taken is not None and _one(taken) != chain_id:
            raise EscalationError(f"name: a chain named {name!r} exists already")
        if chain_id is None:
            row = conn.execute("INSERT INTO escalation_chains (name, kinds, severities, priority, enabled, description)"
                               " VALUES (%(name)s, %(kinds)s, %(severities)s, %(priority)s, %(enabled)s,"
                               " %(description)s) RETURNING id", values).fetchone()
            record(conn, actor, "escalation.chain.add", f"escalation chain {name}", None, values)
            return _one(row)
        before = _chain_row(conn, chain_id)
        if before is None:
            raise EscalationError(f"no escalation chain with id {chain_id}")
        conn.execute("UPDATE escalation_chains SET name = %(name)s, kinds = %(kinds)s, severities = %(severities)s,"
                     " priority = %(priority)s, enabled = %(enabled)s, description = %(description)s"
                     " WHERE id = %(id)s", values | {"id": chain_id})
        record(conn, actor, "escalation.chain.update", f"escalation chain {name}", before, values)
        return chain_id


def _stage_row(conn: psycopg.Connection, stage_id: int) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT c.name AS chain, s.chain_id, s.stage, s.delay_s, s.stopped_by, s.rescue_late,"
            "       (SELECT COALESCE(array_agg(CASE WHEN r.contact_role IS NULL THEN r.recipient"
            "                                      ELSE r.recipient || ':' || r.contact_role END ORDER BY r.id), '{}')"
            "          FROM escalation_recipients r WHERE r.stage_id = s.id) AS recipients"
            "  FROM escalation_stages s JOIN escalation_chains c ON c.id = s.chain_id WHERE s.id = %s",
            (stage_id,)).fetchone()
    return row


def save_stage(conn: psycopg.Connection, actor: Actor, *, chain_id: int, stage_id: int | None, stage: int,
               delay_s: int, stopped_by: str, rescue_late: bool, recipients: Iterable[Recipient]) -> int:
    """Add a stage to a chain (stage_id None) or change one, with its recipients; returns its id. Audited."""
    recipients = tuple(recipients)
    if stage < 1:
        raise EscalationError("stage: a stage number is 1 or more")
    if delay_s < 0:
        raise EscalationError("delay: 0 minutes or more after the alert was first seen")
    if stopped_by not in STOPPED_BY:
        raise EscalationError(f"stopped by: must be one of {', '.join(STOPPED_BY)}")
    if not recipients:
        raise EscalationError("recipients: a stage must tell someone (use_unit, firm:supervisor, district)")
    values = {"chain_id": chain_id, "stage": stage, "delay_s": delay_s, "stopped_by": stopped_by,
              "rescue_late": rescue_late}
    with conn.transaction():
        chain = _chain_row(conn, chain_id)
        if chain is None:
            raise EscalationError(f"no escalation chain with id {chain_id}")
        taken = conn.execute("SELECT id FROM escalation_stages WHERE chain_id = %s AND stage = %s",
                             (chain_id, stage)).fetchone()
        if taken is not None and _one(taken) != stage_id:
            raise EscalationError(f"stage: chain {chain['name']!r} has a stage {stage} already")
        before = None
        if stage_id is None:
            stage_id = _one(conn.execute(
                "INSERT INTO escalation_stages (chain_id, stage, delay_s, stopped_by, rescue_late) VALUES"
                " (%(chain_id)s, %(stage)s, %(delay_s)s, %(stopped_by)s, %(rescue_late)s) RETURNING id",
                values).fetchone())
        else:
            before = _stage_row(conn, stage_id)
            if before is None or before["chain_id"] != chain_id:
                raise EscalationError(f"no stage with id {stage_id} in chain {chain['name']!r}")
            conn.execute("UPDATE escalation_stages SET stage = %(stage)s, delay_s = %(delay_s)s,"
                         " stopped_by = %(stopped_by)s, rescue_late = %(rescue_late)s WHERE id = %(id)s",
                         values | {"id": stage_id})
            conn.execute("DELETE FROM escalation_recipients WHERE stage_id = %s", (stage_id,))
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO escalation_recipients (stage_id, recipient, contact_role) VALUES (%s, %s, %s)",
                            [(stage_id, r.recipient, r.contact_role) for r in recipients])
        record(conn, actor, "escalation.stage.update" if before else "escalation.stage.add",
               f"escalation chain {chain['name']} stage {stage}", before, _stage_row(conn, stage_id))
        return stage_id


def delete_stage(conn: psycopg.Connection, actor: Actor, stage_id: int) -> None:
    """Remove a stage and its recipients. Audited."""
    with conn.transaction():
        before = _stage_row(conn, stage_id)
        if before is None:
            raise EscalationError(f"no escalation stage with id {stage_id}")
        conn.execute("DELETE FROM escalation_stages WHERE id = %s", (stage_id,))
        record(conn, actor, "escalation.stage.delete", f"escalation chain {before['chain']} stage {before['stage']}",
               before, None)


def _one(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def stage_as_dict(stage: Stage) -> dict[str, Any]:
    """A stage as the page and JSON show it (recipients written as in the form)."""
    return asdict(stage) | {"recipients": ", ".join(str(r) for r in stage.recipients)}
