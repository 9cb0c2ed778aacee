"""The telemetry fault rules (models/rules, docs/rules.md) run on each committed batch, in the same transaction.

Each equipment's rule state lives in rule_state and is locked for the batch: the telemetry, the state it moved
and the alerts it raised commit together, so a restart continues exactly where the last commit left it, and two
ingesters sharing the stream take turns on one equipment instead of judging it twice."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alerts.store import raise_alert, resolve_alert
from models.rules.engine import Change, Detector, EquipmentInfo, Sample

SOURCE = "rule"


def apply_changes(conn: psycopg.Connection, equipment_id: int, changes: Iterable[Change]) -> int:
    """Raise or resolve the alerts of one equipment's rule changes, in order; returns how many."""
    count = 0
    for change in changes:
        if change.event == "raised":
            raise_alert(conn, equipment_id=equipment_id, kind=change.kind, source=SOURCE, severity=change.severity,
                        message=change.message, seen_at=change.at, detail=dict(change.detail))
        else:
            resolve_alert(conn, equipment_id=equipment_id, kind=change.kind, resolved_at=change.at)
        count += 1
    return count


def lock_states(conn: psycopg.Connection, equipment_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The rule state of each equipment, its row locked until the transaction ends (created when new)."""
    ids = sorted(set(equipment_ids))
    with conn.cursor(row_factory=dict_row) as cur:
        # In id order, like equipment_state: two ingesters lock the same rows in the same order, never crosswise.
        cur.execute("INSERT INTO rule_state (equipment_id) SELECT unnest(%s::integer[]) ORDER BY 1"
                    " ON CONFLICT DO NOTHING", (ids,))
        rows = cur.execute("SELECT equipment_id, state FROM rule_state WHERE equipment_id = ANY(%s)"
                           " ORDER BY equipment_id FOR UPDATE", (ids,)).fetchall()
    return {r["equipment_id"]: r["state"] for r in rows}


def save_states(conn: psycopg.Connection, states: Mapping[int, tuple[dict[str, Any], Any, bool]]) -> None:
    """Store (state, last_ts, pending) per equipment: COPY to a scratch table and one UPDATE, since a batch of a
    large fleet touches thousands of equipment (a statement each cost the ingester a third of its throughput)."""
    if not states:
        return
    with conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS stage_rule_state (equipment_id integer, state jsonb,"
                    " last_ts timestamptz, pending boolean) ON COMMIT DELETE ROWS")
        with cur.copy("COPY stage_rule_state (equipment_id, state, last_ts, pending) FROM STDIN") as copy:
            for equipment_id, (state, last_ts, pending) in states.items():
                copy.write_row((equipment_id, Jsonb(state), last_ts, pending))
        cur.execute("UPDATE rule_state r SET state = s.state, last_ts = COALESCE(s.last_ts, r.last_ts),"
                    " pending = s.pending, updated_at = now() FROM stage_rule_state s"
                    " WHERE r.equipment_id = s.equipment_id")
        cur.execute("DELETE FROM stage_rule_state")  # a caller in autocommit keeps the table between uses


class RuleRunner:
    """Runs the detector over a batch's telemetry; `info` gives an equipment's registry facts by id."""

    def __init__(self, detector: Detector, info: Callable[[int], EquipmentInfo | None]):
        self.detector = detector
        self.info = info

    def run(self, conn: psycopg.Connection, samples: Mapping[int, list[Sample]]) -> int:
        """Advance the rules of every equipment in `samples` (its new telemetry); returns the alert changes."""
        if not samples:
            return 0
        states = lock_states(conn, list(samples))
        updated: dict[int, tuple[dict[str, Any], Any, bool]] = {}
        changed = 0
        for equipment_id in sorted(samples):
            info = self.info(equipment_id)
            if info is None:
                continue
            ordered = sorted(samples[equipment_id], key=lambda s: (s.ts, s.seq))
            state, changes = self.detector.evaluate(info, states.get(equipment_id), ordered)
            updated[equipment_id] = (state, ordered[-1].ts, self.detector.pending(state))
            changed += apply_changes(conn, equipment_id, changes)
        save_states(conn, updated)
        return changed
