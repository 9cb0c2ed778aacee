"""Inhibition (docs/alert-handling.md): an open alert that explains others mutes them. The rules are data, rows of
inhibition_rules: while an open alert of the rule's source kind stands, new alerts of its target kind and sources on
the same equipment, use unit's site or district are recorded with muted_by = that alert and not notified. The first
rule, from the migration: an offline monitor (presence's `offline`) mutes its equipment's telemetry-derived alerts
(sources rule and anomaly). alerts/store.py marks alerts as it raises them; alerts/routing.py holds back what a
standing mark mutes; store.unmute_explained notifies them once their explanation resolves."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import class_row

SCOPES = ("equipment", "use_unit", "district")


@dataclass(frozen=True)
class InhibitionRule:
    """One row of inhibition_rules."""

    id: int
    source_kind: str
    source_source: str | None
    target_kind: str
    target_sources: list[str] | None
    scope: str
    description: str


def rules(conn: psycopg.Connection) -> list[InhibitionRule]:
    """The inhibition rules in force."""
    with conn.cursor(row_factory=class_row(InhibitionRule)) as cur:
        return cur.execute("SELECT id, source_kind, source_source, target_kind, target_sources, scope, description"
                           " FROM inhibition_rules ORDER BY id").fetchall()


# The open alerts that explain others, each with the key its rule's scope compares: (target_kind, target_sources,
# scope, key, muter_id). Few rows (offline monitors, area-wide failures), read through the partial index of open
# alerts, so that a batch of new alerts hash-joins against them.
MUTERS_SQL = """
SELECT ir.target_kind, ir.target_sources, ir.scope, o.id AS muter_id,
       CASE ir.scope WHEN 'equipment' THEN o.equipment_id WHEN 'use_unit' THEN oe.use_unit_id
                     ELSE oe.district_id END AS key
  FROM inhibition_rules ir
  JOIN alerts o ON o.state <> 'resolved' AND o.kind LIKE ir.source_kind
                   AND (ir.source_source IS NULL OR o.source = ir.source_source)
  JOIN equipment oe ON oe.id = o.equipment_id"""


def muted_sql(inputs: str, muters: str, source: str) -> str:
    """A query of (equipment_id, kind, muted_by) for the rows of `inputs` (columns equipment_id, kind, use_unit_id,
    district_id) that an alert of the relation `muters` (MUTERS_SQL's columns) explains; `source` is the SQL of the
    new alerts' source. The lowest muting alert's id stands when several do."""
    # One equi-join per scope, so that a batch hash-joins with the muting alerts rather than trying every pair.
    joins = " UNION ALL ".join(
        f"SELECT i.equipment_id, i.kind, m.muter_id, m.target_kind, m.target_sources FROM {inputs} i"
        f" JOIN {muters} m ON m.scope = '{scope}' AND m.key = i.{column}"
        for scope, column in (("equipment", "equipment_id"), ("use_unit", "use_unit_id"), ("district", "district_id")))
    return f"""
SELECT p.equipment_id, p.kind, min(p.muter_id) AS muted_by
  FROM ({joins}) p
 WHERE p.kind LIKE p.target_kind AND (p.target_sources IS NULL OR {source} = ANY (p.target_sources))
 GROUP BY p.equipment_id, p.kind"""
