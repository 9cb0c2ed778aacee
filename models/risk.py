"""Risk ranking (风险分级): a score, a level and its reasons for every in-use equipment, for regulators deciding what
to inspect first (docs/risk.md).

The rule is one SQL statement over the compliance statuses (models.compliance.STATUS_SQL), the alerts and the
registry, so that 100,000 equipment cost one pass of each (docs/risk.md, Cost). Each factor adds points; the reasons are
each factor's points with the facts behind them, as data (web/labels.py words them). The points are constants
below (their reasoning is in docs/risk.md); the level thresholds are settings (risk_high_score, risk_medium_score).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
from psycopg.rows import dict_row

from models.compliance import PERIODIC_INSPECTION, STATUS_SQL
from semon.config import ConfigError
from semon.scope import Scope, equipment_condition

LEVELS = ("high", "medium", "low")
# Faults, entrapments and the firm's fault rate count the alerts seen in the last WINDOW_DAYS days, today included.
WINDOW_DAYS = 90
ENTRAPMENT = "entrapment"
WEAR_PREFIX = "wear:"
MAINTENANCE = "maintenance"

# --- the points (docs/risk.md explains each) --------------------------------------------------------------------
# Age: nothing for the first AGE_FREE_YEARS years, then AGE_POINTS_PER_YEAR a year up to AGE_MAX_POINTS (10 points at
# 15 years, the old-elevator mark of models/figures.py; the most at 20).
AGE_FREE_YEARS = 10
AGE_POINTS_PER_YEAR = 2
AGE_MAX_POINTS = 20
# Each overdue check: the periodic inspection (超期未检: the equipment runs without a valid inspection), more when
# overdue longer than PERIODIC_LONG_DAYS; maintenance (超期未维保); any other check (calibrations, drills, tests).
PERIODIC_POINTS = 25
PERIODIC_LONG_DAYS = 90
PERIODIC_LONG_POINTS = 35
MAINTENANCE_POINTS = 15
OTHER_CHECK_POINTS = 8
# Entrapments (困人) in the window: each one, up to ENTRAPMENTS_COUNTED of them.
ENTRAPMENT_POINTS = 20
ENTRAPMENTS_COUNTED = 3
# Other faults in the window, by the alert's severity, up to FAULTS_MAX_POINTS together.
FAULT_POINTS = {"critical": 5, "high": 3, "medium": 2, "low": 1}
FAULTS_MAX_POINTS = 20
# Each open wear alert (wear:<component>), up to WEAR_MAX_POINTS.
WEAR_POINTS = 8
WEAR_MAX_POINTS = 16
# The firm's record, over its in-use equipment the request may see, only when it has at least FIRM_MIN_EQUIPMENT of
# them: (at least this many %, points) of its equipment owing maintenance with maintenance overdue (its 超期未维保率),
# and (at least this many faults per equipment in the window, points). The highest tier reached counts.
FIRM_MIN_EQUIPMENT = 5
FIRM_MAINTENANCE_TIERS = ((30, 15), (15, 10), (5, 5))
FIRM_FAULT_TIERS = ((2, 10), (1, 5))

# The factors of the reasons, in the order they are listed when their points are equal. An overdue check's factor
# is "overdue:<check>", as the compliance job's alert kind.
FACTORS = ("overdue", "entrapments", "faults", "age", "wear", "firm_maintenance", "firm_faults")
OVERDUE_FACTOR = "overdue:"


@dataclass(frozen=True)
class Thresholds:
    """The lowest score of a high-risk and of a medium-risk equipment (settings risk_high_score, risk_medium_score)."""

    high: int
    medium: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Thresholds:
        """The thresholds of a semon Config; a medium threshold not below the high one is a ConfigError."""
        high, medium = config["risk_high_score"], config["risk_medium_score"]
        if medium >= high:
            raise ConfigError(f"risk_medium_score ({medium}) must be below risk_high_score ({high})")
        return cls(high, medium)


def _tiers(tiers: tuple[tuple[int, int], ...], part: str, whole: str, scale: str = "") -> str:
    """The points of the highest tier `part` reaches against `whole` (part >= threshold × whole), else 0."""
    cases = " ".join(f"WHEN {part}{scale} >= {threshold} * {whole} THEN {points}" for threshold, points in tiers)
    return f"CASE WHEN {whole} >= {FIRM_MIN_EQUIPMENT} THEN CASE {cases} ELSE 0 END ELSE 0 END"


# One row per in-use equipment the scope lets through. {scope:c} and {scope:e} narrow the statuses and the
# equipment; the firm's record is counted over the same equipment, so that a narrowed answer is the answer over a
# database holding only that equipment (docs/web.md, Scope). An alert counts in the window when it was last seen in it
# (an alert is one episode: its repeats while open are the same fault coming back, docs/rules.md); the window starts
# at the users' midnight (the session's TimeZone). Each reason is a row of `reasons` with its points; the score is
# their sum and the reasons are aggregated most points first, then in FACTORS order (built in order rather than
# sorted per equipment afterwards: that sort cost 2 s over 100,000 equipment).
_RISK_TEMPLATE = """
WITH checks AS (
    SELECT c.equipment_id, c.firm_id, c."check", c.status, c.due_on
      FROM ({status}) c
     WHERE true{{scope:c}}
),
fleet AS (
    SELECT e.id, e.code, e.type, e.district_id, e.firm_id, e.address, e.use_unit, e.install_date,
           extract(year FROM age(%(as_of)s::date, e.install_date))::integer AS years
      FROM equipment e
     WHERE e.status = 'in_use'{{scope:e}}
),
faults AS (
    SELECT a.equipment_id,
           count(*) FILTER (WHERE a.kind = '{entrapment}') AS entrapments,
           count(*) FILTER (WHERE a.kind <> '{entrapment}') AS faults,
           count(*) FILTER (WHERE a.kind <> '{entrapment}' AND a.severity = 'critical') AS critical,
           count(*) FILTER (WHERE a.kind <> '{entrapment}' AND a.severity = 'high') AS high,
           count(*) FILTER (WHERE a.kind <> '{entrapment}' AND a.severity = 'medium') AS medium,
           count(*) FILTER (WHERE a.kind <> '{entrapment}' AND a.severity = 'low') AS low,
           count(*) AS all_faults
      FROM alerts a
      JOIN fault_codes fc ON fc.name = a.kind
      JOIN fleet f ON f.id = a.equipment_id
     WHERE a.last_seen >= (%(as_of)s::date - {window_days} + 1)::timestamptz
     GROUP BY a.equipment_id
),
-- The firm's record, each reason built once per firm.
firm_maintenance AS (
    SELECT firm_id, points, jsonb_build_object('factor', 'firm_maintenance', 'points', points, 'overdue', overdue,
                                               'owing', owing) AS reason
      FROM (SELECT firm_id, count(*) AS owing, count(*) FILTER (WHERE status = 'overdue') AS overdue,
                   {firm_maintenance_points} AS points
              FROM checks
             WHERE "check" = '{maintenance}' AND firm_id IS NOT NULL
             GROUP BY firm_id) fm
     WHERE points > 0
),
firm_faults AS (
    SELECT firm_id, points, jsonb_build_object('factor', 'firm_faults', 'points', points, 'faults', faults,
                                               'equipment', equipment) AS reason
      FROM (SELECT f.firm_id, count(*) AS equipment, COALESCE(sum(x.all_faults), 0)::integer AS faults,
                   {firm_fault_points} AS points
              FROM fleet f
              LEFT JOIN faults x ON x.equipment_id = f.id
             WHERE f.firm_id IS NOT NULL
             GROUP BY f.firm_id) ff
     WHERE points > 0
),
reasons (equipment_id, ord, points, reason) AS (
    SELECT equipment_id, {ord_overdue}, points,
           jsonb_build_object('factor', '{overdue_factor}' || "check", 'points', points, 'check', "check",
                              'days', days, 'due_on', due_on)
      FROM (SELECT equipment_id, "check", due_on, %(as_of)s::date - due_on AS days,
                   CASE WHEN "check" = '{periodic}' AND %(as_of)s::date - due_on > {periodic_long_days}
                        THEN {periodic_long_points}
                        WHEN "check" = '{periodic}' THEN {periodic_points}
                        WHEN "check" = '{maintenance}' THEN {maintenance_points}
                        ELSE {other_check_points} END AS points
              FROM checks WHERE status = 'overdue') o
    UNION ALL
    SELECT x.equipment_id, {ord_entrapments}, p.points,
           jsonb_build_object('factor', 'entrapments', 'points', p.points, 'count', x.entrapments)
      FROM faults x
     CROSS JOIN LATERAL (SELECT LEAST(x.entrapments, {entrapments_counted}) * {entrapment_points} AS points) p
     WHERE x.entrapments > 0
    UNION ALL
    SELECT x.equipment_id, {ord_faults}, p.points,
           jsonb_build_object('factor', 'faults', 'points', p.points, 'count', x.faults, 'critical', x.critical,
                              'high', x.high, 'medium', x.medium, 'low', x.low)
      FROM faults x
     CROSS JOIN LATERAL (SELECT LEAST({faults_max}, x.critical * {critical} + x.high * {high}
                                      + x.medium * {medium} + x.low * {low}) AS points) p
     WHERE x.faults > 0
    UNION ALL
    SELECT f.id, {ord_age}, p.points,
           jsonb_build_object('factor', 'age', 'points', p.points, 'install_date', f.install_date, 'years', f.years)
      FROM fleet f
     CROSS JOIN LATERAL (SELECT LEAST({age_max}, (f.years - {age_free}) * {age_per_year}) AS points) p
     WHERE f.years > {age_free}
    UNION ALL
    SELECT w.equipment_id, {ord_wear}, p.points,
           jsonb_build_object('factor', 'wear', 'points', p.points, 'components', w.components)
      FROM (SELECT a.equipment_id, array_agg(substr(a.kind, {wear_from}) ORDER BY a.kind) AS components
              FROM alerts a JOIN fleet f ON f.id = a.equipment_id
             WHERE a.kind LIKE '{wear_prefix}%%' AND a.state <> 'resolved'
             GROUP BY a.equipment_id) w
     CROSS JOIN LATERAL (SELECT LEAST({wear_max}, cardinality(w.components) * {wear_points}) AS points) p
    UNION ALL
    SELECT f.id, {ord_firm_maintenance}, fm.points, fm.reason
      FROM fleet f JOIN firm_maintenance fm ON fm.firm_id = f.firm_id
    UNION ALL
    SELECT f.id, {ord_firm_faults}, ff.points, ff.reason
      FROM fleet f JOIN firm_faults ff ON ff.firm_id = f.firm_id
),
scored AS (
    SELECT equipment_id, sum(points)::integer AS score,
           jsonb_agg(reason ORDER BY points DESC, ord, reason ->> 'factor') AS reasons
      FROM reasons
     GROUP BY equipment_id
)
SELECT f.id, f.code, f.type, f.district_id, f.firm_id, d.name AS district, f.address, f.use_unit, m.name AS firm,
       f.install_date, COALESCE(s.score, 0) AS score,
       CASE WHEN s.score >= %(high_score)s THEN 'high' WHEN s.score >= %(medium_score)s THEN 'medium' ELSE 'low' END
           AS level,
       COALESCE(s.reasons, '[]'::jsonb) AS reasons
  FROM fleet f
  JOIN districts d ON d.id = f.district_id
  LEFT JOIN maintenance_firms m ON m.id = f.firm_id
  LEFT JOIN scored s ON s.equipment_id = f.id
"""
RISK_SQL = _RISK_TEMPLATE.format(
    status=STATUS_SQL.strip(), overdue_factor=OVERDUE_FACTOR, periodic=PERIODIC_INSPECTION, maintenance=MAINTENANCE,
    periodic_long_days=PERIODIC_LONG_DAYS, periodic_long_points=PERIODIC_LONG_POINTS, periodic_points=PERIODIC_POINTS,
    maintenance_points=MAINTENANCE_POINTS, other_check_points=OTHER_CHECK_POINTS, entrapment=ENTRAPMENT,
    window_days=WINDOW_DAYS, wear_prefix=WEAR_PREFIX, wear_from=len(WEAR_PREFIX) + 1,
    firm_maintenance_points=_tiers(FIRM_MAINTENANCE_TIERS, "count(*) FILTER (WHERE status = 'overdue')", "count(*)",
                                   " * 100"),
    firm_fault_points=_tiers(FIRM_FAULT_TIERS, "COALESCE(sum(x.all_faults), 0)", "count(*)"),
    age_max=AGE_MAX_POINTS, age_free=AGE_FREE_YEARS, age_per_year=AGE_POINTS_PER_YEAR,
    entrapments_counted=ENTRAPMENTS_COUNTED, entrapment_points=ENTRAPMENT_POINTS, faults_max=FAULTS_MAX_POINTS,
    wear_max=WEAR_MAX_POINTS, wear_points=WEAR_POINTS, **FAULT_POINTS,
    **{f"ord_{factor}": n for n, factor in enumerate(FACTORS, 1)})
_EVERYTHING = Scope.everything()
# The columns of a row: those of the final SELECT.
COLUMNS = ("id", "code", "type", "district_id", "firm_id", "district", "address", "use_unit", "firm", "install_date",
           "score", "level", "reasons")
# Most risk first; the code breaks ties, so that the order (and a rank) is the same on every request.
ORDER = "score DESC, code"


def risk_sql(scope: Scope) -> tuple[str, dict[str, Any]]:
    """(RISK_SQL narrowed to the scope, its scope parameters); the statement's own are as_of, high_score and
    medium_score."""
    query, values = RISK_SQL, {}
    for alias in ("c", "e"):
        condition, scoped = equipment_condition(scope, alias)
        query = query.replace("{scope:" + alias + "}", condition)
        values |= scoped
    return query, values


# Compiling the statement's many expressions costs more than it saves: 100,000 equipment scored in 2.6 s without JIT
# against 3.4 s with it (docs/risk.md, Cost). For the statement's transaction only.
_NO_JIT = "SET LOCAL jit = off"


def _parameters(as_of: date, thresholds: Thresholds) -> dict[str, Any]:
    return {"as_of": as_of, "high_score": thresholds.high, "medium_score": thresholds.medium}


def equipment_risk(conn: psycopg.Connection, as_of: date, thresholds: Thresholds, *,
                   scope: Scope = _EVERYTHING) -> list[dict[str, Any]]:
    """Every in-use equipment the scope lets through with its score, level and reasons on `as_of`, most risk first."""
    query, values = risk_sql(scope)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_NO_JIT)
        return cur.execute(f"{query} ORDER BY {ORDER}", values | _parameters(as_of, thresholds)).fetchall()


SNAPSHOT_TABLE = "risk_snapshot"


@contextmanager
def snapshot(conn: psycopg.Connection, as_of: date, thresholds: Thresholds, *,
             scope: Scope = _EVERYTHING) -> Iterator[str]:
    """Score the scope's equipment once into a temporary table (yielded by name, columns COLUMNS) for the block's
    queries (a page's count and rows); the table is dropped when the block ends."""
    # The statuses are most of the cost (about 2 s over 100,000 equipment): a listing's count and page queries
    # read the table instead of scoring twice.
    query, values = risk_sql(scope)
    with conn.transaction():
        conn.execute(_NO_JIT)
        conn.execute(f"DROP TABLE IF EXISTS pg_temp.{SNAPSHOT_TABLE}")
        conn.execute(f"CREATE TEMP TABLE {SNAPSHOT_TABLE} ON COMMIT DROP AS {query}",
                     values | _parameters(as_of, thresholds))
        yield f"pg_temp.{SNAPSHOT_TABLE}"
        # Dropped here as well as on commit, for a caller already inside a transaction.
        conn.execute(f"DROP TABLE pg_temp.{SNAPSHOT_TABLE}")
