"""Firm ratings (维保单位信用评价): per maintenance firm and month, how it answered its alerts, how often its equipment
failed, how much of it was overdue, and a grade A/B/C/D (docs/ratings.md).

One SQL statement computes every figure and the grade for any set of months and firms, set-based, so that the
ranking of 1,000 firms costs one pass over a month's alerts and one recorded day of compliance_daily. The overdue
figures are read from compliance_daily (models/figures.py records them from the compliance statuses): no due date is
computed here. The time limits, weights, scales and grade thresholds are settings (docs/configuration.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from models.compliance import PERIODIC_INSPECTION
from models.risk import ENTRAPMENT, MAINTENANCE
from semon.config import ConfigError
from semon.scope import Scope, equipment_condition, related_condition

# The parts of the score, in the order the weights setting names them (docs/ratings.md, The grade).
PARTS = ("ack", "arrival", "alerts", "maintenance", "inspection")
GRADES = ("A", "B", "C", "D")
_PAIR = re.compile(r"([A-Za-z_]+)=([0-9]+(?:\.[0-9]+)?)")
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


def _pairs(name: str, text: str, keys: Sequence[str]) -> dict[str, float]:
    """`text` as "key=number key=number", exactly `keys`; anything else is a ConfigError naming the setting."""
    words = str(text).split()
    found = [_PAIR.fullmatch(word) for word in words]
    if not words or not all(found):
        raise ConfigError(f"{name} = {text!r}: expected {' '.join(f'{k}=<number>' for k in keys)}")
    values = {m.group(1): float(m.group(2)) for m in found if m}
    if sorted(values) != sorted(keys) or len(values) != len(words):
        raise ConfigError(f"{name} = {text!r}: must name each of {', '.join(keys)} once")
    return values


@dataclass(frozen=True)
class Settings:
    """The rating's settings (rating_*): time limits in minutes, the parts' weights, the scales of the parts that
    count against a firm, and the lowest score of grades A, B and C."""

    ack_minutes: int
    arrival_minutes: int
    weights: Mapping[str, float]
    alerts_per_100_zero: float
    overdue_rate_zero: float
    grade_floors: Mapping[str, float]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """The settings of a semon Config; weights or grades that cannot be used are a ConfigError."""
        weights = _pairs("rating_weights", config["rating_weights"], PARTS)
        if not sum(weights.values()) > 0:
            raise ConfigError(f"rating_weights = {config['rating_weights']!r}: at least one weight must be above 0")
        floors = _pairs("rating_grades", config["rating_grades"], GRADES[:-1])
        if not 100 >= floors["A"] > floors["B"] > floors["C"] >= 0:
            raise ConfigError(f"rating_grades = {config['rating_grades']!r}: must be 100 >= A > B > C >= 0")
        return cls(config["rating_ack_minutes"], config["rating_arrival_minutes"], weights,
                   config["rating_alerts_per_100_zero"], config["rating_overdue_rate_zero"], floors)

    def parameters(self) -> dict[str, Any]:
        """The statement's parameters for these settings."""
        return ({"ack_minutes": self.ack_minutes, "arrival_minutes": self.arrival_minutes,
                 "alerts_zero": self.alerts_per_100_zero, "overdue_zero": self.overdue_rate_zero}
                | {f"w_{part}": self.weights[part] for part in PARTS}
                | {f"grade_{grade}": self.grade_floors[grade] for grade in GRADES[:-1]})


def parse_month(text: str) -> date:
    """The first day of the month written YYYY-MM; ValueError otherwise."""
    match = _MONTH.fullmatch(text)
    if match is None or not 1 <= int(match.group(2)) <= 12 or not 1900 <= int(match.group(1)) <= 2999:
        raise ValueError(f"expected a month as YYYY-MM (1900-01 to 2999-12), not {text!r}")
    return date(int(match.group(1)), int(match.group(2)), 1)


def month_text(month: date) -> str:
    """A month as YYYY-MM."""
    return f"{month:%Y-%m}"


def months_back(last: date, count: int) -> list[date]:
    """The `count` months up to the month of `last`, newest first (first days)."""
    index = last.year * 12 + last.month - 1
    return [date((index - n) // 12, (index - n) % 12 + 1, 1) for n in range(count)]


# One row per (month, firm). Months are the users' calendar months: the session runs in the time_zone setting's zone
# (semon.clock), so a date cast to timestamptz is the users' midnight and date_trunc('month') their month.
#
# Alerts: those on which a firm was rated are its fault alerts (kind a fault code, as models/risk.py counts faults)
# first seen in the month, attributed to the firm they were routed to when raised (alerts.firm_id), leaving out the
# alerts muted by another that explains them and those raised in a maintenance window (recorded, not notified).
# A firm "responded" at its first step on the alert: acknowledging it, arriving on site, or resolving it itself.
# Needing a response: every one of them but those that cleared by themselves within the acknowledgement limit before
# anyone responded, and those still unanswered whose limit has not yet passed at `now` (not yet decided).
# Entrapments: each is judged once its limit has passed or someone arrived; never reached on site counts as late.
# Times count from first_seen, or for a reopened alert from reopened_at: reopening clears its steps (alerts/store.py),
# so its columns tell of its latest episode only; it is one alert of the month it was first seen in.
#
# The overdue figures and the units are those recorded in compliance_daily on the month's last recorded day (the
# same day for every firm of the answer): in-use equipment, and per check owing and overdue, as the rates of
# docs/compliance-figures.md count them (超期未检率 is the periodic inspection's).
#
# {scope:h}, {scope:x} narrow the daily rows and the alerts (district of the equipment, firm of the alert);
# {visible} is whether the registry's equipment in the scope refers to the firm.
_TEMPLATE = """
WITH months AS (
    SELECT m AS month FROM unnest(%(months)s::date[]) m
),
firms AS (
    SELECT f.id, f.name, {visible} AS visible
      FROM maintenance_firms f
     WHERE (%(firm_id)s::integer IS NULL OR f.id = %(firm_id)s)
),
days AS (
    SELECT mo.month, d.day
      FROM months mo
     CROSS JOIN LATERAL (SELECT max(h.day) AS day FROM compliance_daily h
                          WHERE h.day >= mo.month AND h.day < (mo.month + interval '1 month')::date{scope:h}) d
),
daily AS (
    SELECT d.month, d.day, h.id, h.firm_id, h.in_use
      FROM days d
      JOIN compliance_daily h ON h.day = d.day
     WHERE h.firm_id IS NOT NULL AND (%(firm_id)s::integer IS NULL OR h.firm_id = %(firm_id)s){scope:h}
),
registry AS (
    SELECT x.month, x.firm_id, sum(x.in_use)::integer AS units,
           COALESCE(sum(c.inspection_owing), 0)::integer AS inspection_owing,
           COALESCE(sum(c.inspection_overdue), 0)::integer AS inspection_overdue,
           COALESCE(sum(c.maintenance_owing), 0)::integer AS maintenance_owing,
           COALESCE(sum(c.maintenance_overdue), 0)::integer AS maintenance_overdue
      FROM daily x
      -- Per row of the day, through the key (daily_id, check_name): a join the planner may turn into a scan of
      -- every day's rows, which grows with the history.
      LEFT JOIN LATERAL (
          SELECT sum(k.owing) FILTER (WHERE k.check_name = '{periodic}') AS inspection_owing,
                 sum(k.overdue) FILTER (WHERE k.check_name = '{periodic}') AS inspection_overdue,
                 sum(k.owing) FILTER (WHERE k.check_name = '{maintenance}') AS maintenance_owing,
                 sum(k.overdue) FILTER (WHERE k.check_name = '{maintenance}') AS maintenance_overdue
            FROM compliance_daily_check k
           WHERE k.daily_id = x.id AND k.check_name IN ('{periodic}', '{maintenance}')) c ON true
     GROUP BY x.month, x.firm_id
),
rated AS (
    SELECT x.*, LEAST(x.acknowledged_at, x.on_site_at,
                      CASE WHEN x.resolved_by IS NOT NULL THEN x.resolved_at END) AS responded_at
      FROM (SELECT a.firm_id, e.district_id, e.use_unit_id, a.kind, a.first_seen,
                   COALESCE(a.reopened_at, a.first_seen) AS started, a.acknowledged_at, a.on_site_at, a.resolved_at,
                   a.resolved_by
              FROM alerts a
              JOIN equipment e ON e.id = a.equipment_id
             WHERE a.first_seen >= %(first)s::date::timestamptz
               AND a.first_seen < (%(last)s::date + interval '1 month')::timestamptz
               AND a.firm_id IS NOT NULL AND a.muted_by IS NULL AND a.silence_id IS NULL
               AND (%(firm_id)s::integer IS NULL OR a.firm_id = %(firm_id)s)
               AND EXISTS (SELECT FROM fault_codes fc WHERE fc.name = a.kind)) x
     WHERE true{scope:x}
),
judged AS (
    SELECT date_trunc('month', r.first_seen)::date AS month, r.firm_id, r.started, r.responded_at, r.resolved_at,
           r.on_site_at,
           NOT ((r.responded_at IS NULL AND r.resolved_by IS NULL
                     AND COALESCE(r.resolved_at <= r.started + l.ack, false))
                OR (r.responded_at IS NULL AND r.resolved_at IS NULL AND %(now)s < r.started + l.ack))
               AS needs_response,
           r.kind = '{entrapment}'
               AND NOT (r.on_site_at IS NULL AND r.resolved_at IS NULL AND %(now)s < r.started + l.arrival)
               AS rescue_judged,
           l.ack, l.arrival
      FROM rated r
     CROSS JOIN (SELECT make_interval(mins => %(ack_minutes)s) AS ack,
                        make_interval(mins => %(arrival_minutes)s) AS arrival) l
),
handled AS (
    SELECT month, firm_id, count(*)::integer AS alerts,
           count(*) FILTER (WHERE needs_response)::integer AS ack_due,
           count(*) FILTER (WHERE needs_response AND responded_at <= started + ack)::integer AS ack_on_time,
           count(*) FILTER (WHERE rescue_judged)::integer AS entrapments,
           count(*) FILTER (WHERE rescue_judged AND on_site_at <= started + arrival)::integer AS arrived_on_time,
           avg(extract(epoch FROM responded_at - started)) FILTER (WHERE needs_response) AS ack_seconds,
           avg(extract(epoch FROM resolved_at - started)) FILTER (WHERE needs_response) AS resolve_seconds
      FROM judged
     GROUP BY month, firm_id
),
figures AS (
    SELECT mo.month, f.id AS firm_id, f.name AS firm, d.day AS compliance_day,
           CASE WHEN d.day IS NOT NULL THEN COALESCE(r.units, 0) END AS units,
           COALESCE(h.alerts, 0) AS alerts, COALESCE(h.ack_due, 0) AS ack_due,
           COALESCE(h.ack_on_time, 0) AS ack_on_time, COALESCE(h.entrapments, 0) AS entrapments,
           COALESCE(h.arrived_on_time, 0) AS arrived_on_time, h.ack_seconds, h.resolve_seconds,
           COALESCE(r.inspection_owing, 0) AS inspection_owing, COALESCE(r.inspection_overdue, 0) AS inspection_overdue,
           COALESCE(r.maintenance_owing, 0) AS maintenance_owing,
           COALESCE(r.maintenance_overdue, 0) AS maintenance_overdue
      FROM months mo
     CROSS JOIN firms f
      JOIN days d ON d.month = mo.month
      LEFT JOIN registry r ON r.month = mo.month AND r.firm_id = f.id
      LEFT JOIN handled h ON h.month = mo.month AND h.firm_id = f.id
     WHERE f.visible OR r.firm_id IS NOT NULL OR h.firm_id IS NOT NULL
),
rates AS (
    SELECT g.*,
           CASE WHEN units > 0 THEN alerts * 100.0 / units END AS alerts_per_100,
           CASE WHEN ack_due > 0 THEN ack_on_time::numeric / ack_due END AS ack_rate,
           CASE WHEN entrapments > 0 THEN arrived_on_time::numeric / entrapments END AS arrival_rate,
           CASE WHEN inspection_owing > 0 THEN inspection_overdue::numeric / inspection_owing END
               AS inspection_overdue_rate,
           CASE WHEN maintenance_owing > 0 THEN maintenance_overdue::numeric / maintenance_owing END
               AS maintenance_overdue_rate
      FROM figures g
),
parts AS (
    SELECT r.*, r.ack_rate AS p_ack, r.arrival_rate AS p_arrival,
           GREATEST(0, 1 - r.alerts_per_100 / %(alerts_zero)s::numeric) AS p_alerts,
           GREATEST(0, 1 - r.maintenance_overdue_rate / %(overdue_zero)s::numeric) AS p_maintenance,
           GREATEST(0, 1 - r.inspection_overdue_rate / %(overdue_zero)s::numeric) AS p_inspection
      FROM rates r
),
scored AS (
    SELECT p.*,
           CASE WHEN p.units > 0 THEN round(100 * ({weighted}) / NULLIF({weights}, 0), 1) END AS score
      FROM parts p
)
SELECT s.*,
       CASE WHEN s.score IS NULL THEN NULL
            WHEN s.score >= %(grade_A)s::numeric THEN 'A' WHEN s.score >= %(grade_B)s::numeric THEN 'B'
            WHEN s.score >= %(grade_C)s::numeric THEN 'C' ELSE 'D' END AS grade,
       row_number() OVER (PARTITION BY s.month ORDER BY s.score DESC NULLS LAST, s.firm) AS rank
  FROM scored s
 ORDER BY s.month DESC, rank
"""
# A part left undefined (no alert needed a response, no entrapment, nothing owed) neither helps nor hurts: its weight
# is left out of the sum the score is divided by.
_WEIGHTED = " + ".join(f"%(w_{p})s::numeric * COALESCE(p.p_{p}, 0)" for p in PARTS)
_WEIGHTS = " + ".join(f"CASE WHEN p.p_{p} IS NOT NULL THEN %(w_{p})s::numeric ELSE 0 END" for p in PARTS)
_SQL = (_TEMPLATE.replace("{periodic}", PERIODIC_INSPECTION).replace("{maintenance}", MAINTENANCE)
        .replace("{entrapment}", ENTRAPMENT).replace("{weighted}", _WEIGHTED).replace("{weights}", _WEIGHTS))

# The figures of a row as the API gives them, in order (docs/ratings.md, The figures).
FIELDS = ("month", "rank", "firm", "grade", "score", "units", "alerts", "alerts_per_100", "ack_due", "ack_on_time",
          "ack_rate", "entrapments", "arrived_on_time", "arrival_rate", "mean_ack_minutes", "mean_resolve_minutes",
          "inspection_owing", "inspection_overdue", "inspection_overdue_rate", "maintenance_owing",
          "maintenance_overdue", "maintenance_overdue_rate", "compliance_day")
_EVERYTHING = Scope.everything()


def ratings_sql(scope: Scope) -> tuple[str, dict[str, Any]]:
    """(the statement narrowed to the scope, its scope parameters)."""
    query, values = _SQL, {}
    for alias in ("h", "x"):
        condition, scoped = equipment_condition(scope, alias)
        query = query.replace("{scope:" + alias + "}", condition)
        values |= scoped
    visible, scoped = related_condition(scope, "f", "firm_id", prefix="")
    return query.replace("{visible}", visible or "true"), values | scoped


def _minutes(seconds: Any) -> float | None:
    return None if seconds is None else round(float(seconds) / 60, 1)


def _ratio(value: Any, digits: int = 4) -> float | None:
    # Rates to 0.01 %, alerts per 100 units to 0.01: more digits say nothing a reader can use.
    return None if value is None else round(float(value), digits)


def _row(r: dict[str, Any]) -> dict[str, Any]:
    return {"month": month_text(r["month"]), "rank": r["rank"], "firm": r["firm"], "grade": r["grade"],
            "score": _ratio(r["score"], 1), "units": r["units"], "alerts": r["alerts"],
            "alerts_per_100": _ratio(r["alerts_per_100"], 2), "ack_due": r["ack_due"], "ack_on_time": r["ack_on_time"],
            "ack_rate": _ratio(r["ack_rate"]), "entrapments": r["entrapments"],
            "arrived_on_time": r["arrived_on_time"], "arrival_rate": _ratio(r["arrival_rate"]),
            "mean_ack_minutes": _minutes(r["ack_seconds"]), "mean_resolve_minutes": _minutes(r["resolve_seconds"]),
            "inspection_owing": r["inspection_owing"], "inspection_overdue": r["inspection_overdue"],
            "inspection_overdue_rate": _ratio(r["inspection_overdue_rate"]),
            "maintenance_owing": r["maintenance_owing"], "maintenance_overdue": r["maintenance_overdue"],
            "maintenance_overdue_rate": _ratio(r["maintenance_overdue_rate"]), "compliance_day": r["compliance_day"]}


def ratings(conn: psycopg.Connection, months: Sequence[date], settings: Settings, *, now: datetime,
            scope: Scope = _EVERYTHING, firm_id: int | None = None) -> list[dict[str, Any]]:
    """The ratings of every firm the scope lets through (or of one firm) in each of `months` (first days), newest
    month first and by rank within a month; an alert not yet answered is judged as it stands at `now`."""
    if not months:
        return []
    query, values = ratings_sql(scope)
    values |= settings.parameters() | {"months": list(months), "first": min(months), "last": max(months), "now": now,
                                       "firm_id": firm_id}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = [_row(r) for r in cur.execute(query, values).fetchall()]
    if firm_id is not None:  # a place among one firm says nothing: the rank is the ranking's
        for row in rows:
            row["rank"] = None
    return rows
