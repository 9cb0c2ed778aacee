"""Compliance: which checks each equipment owes, when each falls due, its status, and the alerts and reminders.

The rule table is data (RULE_TABLE below, intervals from config); `sync_rules` writes it to the
compliance_rules table so that the status is one SQL query (STATUS_SQL) that others can aggregate.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from alerts.routing import queue_sql
from alerts.store import raise_alerts_from, resolve_alerts_absent
from semon.vocabulary import COMPLIANCE_STATUSES

STATUSES = COMPLIANCE_STATUSES  # ok, due_soon, overdue, never_recorded (docs/compliance.md)
# Due-soon reminders go out this many days before the due date, each once per due date.
REMINDER_DAYS = (30, 7, 1)
ALERT_PREFIX = "overdue:"
# The check whose overdue status regulators call 超期未检 (docs/compliance-figures.md).
PERIODIC_INSPECTION = "periodic_inspection"


@dataclass(frozen=True)
class CheckStatus:
    equipment_id: int
    code: str
    type: str
    district_id: int
    firm_id: int | None
    check: str
    last_on: date | None
    due_on: date | None
    status: str


@dataclass(frozen=True)
class Rule:
    """One row of the rule table: an equipment type owes a check every `months` (or `days`)."""

    equipment_type: str
    check_name: str
    months: int = 0
    days: int = 0
    first_months: int | None = None     # the first one, counted from commissioning (else installation)
    grade3_months: int | None = None    # pressure vessels of safety grade 3 or worse
    old_months: int | None = None       # governors older than old_after_years
    old_after_years: int | None = None
    on_demand: bool = False             # 按需维保 with an online monitor uses the firm's approved cycle
    due_soon_days: int = 30
    rectification_days: int = 30


# The rule table (docs/compliance.md). Each entry: equipment types, check, then the setting that holds each
# interval, so that every interval is editable in config.yaml (TSG T7001, T5002, TSG 11-2020, TSG 21-2016).
RULE_TABLE: tuple[tuple[tuple[str, ...], str, dict[str, str]], ...] = (
    (("elevator", "escalator"), "periodic_inspection", {"months": "inspection_interval_months"}),
    (("elevator", "escalator"), "maintenance", {"days": "maintenance_interval_days", "on_demand": "",
                                                "due_soon_days": "maintenance_due_soon_days"}),
    (("elevator",), "governor_calibration", {"months": "governor_calibration_months",
                                              "old_months": "governor_calibration_old_months",
                                              "old_after_years": "governor_old_after_years"}),
    (("elevator", "escalator"), "rescue_drill", {"months": "rescue_drill_months"}),
    (("boiler",), "periodic_inspection", {"months": "boiler_external_inspection_months"}),
    (("boiler",), "internal_inspection", {"months": "boiler_internal_inspection_months",
                                          "first_months": "boiler_internal_first_months"}),
    (("boiler",), "water_quality_test", {"months": "water_quality_test_months"}),
    (("pressure_vessel",), "periodic_inspection", {"months": "pressure_vessel_inspection_months",
                                                   "first_months": "pressure_vessel_first_inspection_months",
                                                   "grade3_months": "pressure_vessel_grade3_inspection_months"}),
    (("boiler", "pressure_vessel"), "safety_valve_calibration", {"months": "safety_valve_calibration_months"}),
    (("boiler", "pressure_vessel"), "pressure_gauge_verification",
     {"months": "pressure_gauge_verification_months"}),
)


def rules_from_config(config: Mapping[str, Any] | None = None) -> tuple[Rule, ...]:
    """The rule table with the intervals of `config` (the defaults of semon/config.py when None)."""
    from semon.config import SETTINGS

    values = {s.name: s.default for s in SETTINGS}
    values.update(config or {})
    rules = []
    for types, check, settings in RULE_TABLE:
        extra: dict[str, Any] = {k: (True if k == "on_demand" else values[name]) for k, name in settings.items()}
        extra.setdefault("due_soon_days", values["compliance_due_soon_days"])
        for equipment_type in types:
            rules.append(Rule(equipment_type, check, rectification_days=values["compliance_rectification_days"],
                              **extra))
    return tuple(rules)


_RULE_COLUMNS = tuple(f.name for f in fields(Rule))


def rule_index(config: Mapping[str, Any] | None = None) -> dict[tuple[str, str], Rule]:
    """The rules with config's intervals (the defaults when None), by (equipment type, check)."""
    return {(r.equipment_type, r.check_name): r for r in rules_from_config(config)}


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's end as PostgreSQL's date + interval is
    (31 Jan + 1 month = 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def next_due(rules: Mapping[tuple[str, str], Rule], check: str, equipment: Mapping[str, Any],
             performed_on: date | None, *, result: str = "pass", rectify_by: date | None = None,
             monitor_online: bool = False) -> date | None:
    """When `check` falls due after a record of `result` on `performed_on` (None: never recorded, counted from
    commissioning, else installation): STATUS_SQL's due date, for code without a database (the simulators'
    histories); tests/test_compliance.py holds the two to agreement. None when there is nothing to count from.

    `equipment` gives type and, where the rule needs them, safety_grade, governor_install_date, install_date,
    commissioning_date, on_demand_maintenance and maintenance_cycle_days; `monitor_online` says whether an
    on-demand lift's monitor counts as online (docs/compliance.md)."""
    rule = rules[(equipment["type"], check)]
    months, days = rule.months, rule.days
    governor = equipment.get("governor_install_date") or equipment.get("install_date")
    if rule.grade3_months is not None and (equipment.get("safety_grade") or 0) >= 3:
        months = rule.grade3_months
    elif rule.old_months is not None and rule.old_after_years is not None and governor is not None \
            and performed_on is not None and performed_on > add_months(governor, 12 * rule.old_after_years):
        months = rule.old_months
    if rule.on_demand and equipment.get("on_demand_maintenance") and equipment.get("maintenance_cycle_days") \
            and monitor_online:
        days = equipment["maintenance_cycle_days"]
    if performed_on is None:
        start = equipment.get("commissioning_date") or equipment.get("install_date")
        if start is None:
            return None
        return add_months(start, rule.first_months or months) + timedelta(days=days)
    due = add_months(performed_on, months) + timedelta(days=days)
    if result == "fail":
        return min(due, rectify_by or performed_on + timedelta(days=rule.rectification_days))
    return due


def sync_rules(conn: psycopg.Connection, rules: tuple[Rule, ...]) -> bool:
    """Make compliance_rules hold exactly `rules`; returns whether anything changed."""
    stored = {tuple(r[c] for c in _RULE_COLUMNS) if isinstance(r, dict) else tuple(r)
              for r in conn.execute(f"SELECT {', '.join(_RULE_COLUMNS)} FROM compliance_rules")}
    wanted = {tuple(getattr(r, c) for c in _RULE_COLUMNS) for r in rules}
    if stored == wanted:
        return False
    # One transaction (a savepoint inside the scheduler's): no reader sees the table half written.
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DELETE FROM compliance_rules")
        cur.executemany(f"INSERT INTO compliance_rules ({', '.join(_RULE_COLUMNS)}) "
                        f"VALUES ({', '.join(['%s'] * len(_RULE_COLUMNS))})", sorted(wanted))
    return True


# One row per in-use equipment and check it owes. Month arithmetic is PostgreSQL's, which clamps to the
# month's end: 2024-02-29 + 12 months = 2025-02-28, 2024-01-31 + 1 month = 2024-02-29. Never recorded checks
# count from commissioning (else installation). A failed latest record is due again by its rectification
# deadline. The monitor of an on-demand (按需维保) lift must be online and have reported within 24 h of the
# start of as_of. OFFSET 0 keeps the due date computed once per row, not once per use in the status CASE.
_STATUS_TEMPLATE = """
SELECT equipment_id, code, type, district_id, firm_id, "check", last_on, due_on,
       CASE WHEN due_on < %(as_of)s::date THEN 'overdue'
            WHEN due_on <= %(as_of)s::date + due_soon_days THEN 'due_soon'
            WHEN last_on IS NULL THEN 'never_recorded'
            ELSE 'ok' END AS status
FROM (
SELECT e.id AS equipment_id, e.code, e.type, e.district_id, e.firm_id, r.check_name AS "check",
       l.performed_on AS last_on, r.due_soon_days, CASE
    WHEN l.performed_on IS NULL THEN (COALESCE(e.commissioning_date, e.install_date)
         + make_interval(months => COALESCE(r.first_months, iv.months), days => iv.days))::date
    WHEN l.result = 'fail' THEN LEAST((l.performed_on + make_interval(months => iv.months, days => iv.days))::date,
                                      COALESCE(l.rectify_by, l.performed_on + r.rectification_days))
    ELSE (l.performed_on + make_interval(months => iv.months, days => iv.days))::date END AS due_on
FROM equipment e
JOIN ({rules}) r ON r.equipment_type = e.type
LEFT JOIN equipment_state s ON s.equipment_id = e.id
{latest}
CROSS JOIN LATERAL (SELECT
    CASE WHEN r.grade3_months IS NOT NULL AND e.safety_grade >= 3 THEN r.grade3_months
         WHEN r.old_months IS NOT NULL AND l.performed_on
              > COALESCE(e.governor_install_date, e.install_date) + make_interval(years => r.old_after_years)
              THEN r.old_months
         ELSE r.months END AS months,
    CASE WHEN r.on_demand AND e.on_demand_maintenance AND e.maintenance_cycle_days IS NOT NULL
              AND s.status = 'online' AND s.last_seen >= (%(as_of)s::date - 1)::timestamptz
              THEN e.maintenance_cycle_days
         ELSE r.days END AS days
) iv
WHERE e.status = 'in_use'{equipment_filter}
OFFSET 0
) c
"""
# The latest record of each (equipment, check). For the whole fleet: one pass over each records table in
# index order (inspections' unique (equipment_id, kind, performed_on) backwards, maintenance_records_latest
# forwards), hash-joined; measured 1.3 s against 1.8 s for a probe per row (bench/compliance.py).
_LATEST_ALL = """LEFT JOIN (
    (SELECT DISTINCT ON (equipment_id, kind) equipment_id, kind AS check_name, performed_on, result, rectify_by
     FROM inspections ORDER BY equipment_id DESC, kind DESC, performed_on DESC)
    UNION ALL
    (SELECT DISTINCT ON (equipment_id) equipment_id, 'maintenance', performed_on, result, rectify_by
     FROM maintenance_records ORDER BY equipment_id, performed_on DESC)
) l ON l.equipment_id = e.id AND l.check_name = r.check_name"""
# For a few equipment: one backward index probe per (equipment, check).
_LATEST_SOME = """LEFT JOIN LATERAL (
    (SELECT i.performed_on, i.result, i.rectify_by FROM inspections i
     WHERE r.check_name <> 'maintenance' AND i.equipment_id = e.id AND i.kind = r.check_name
     ORDER BY i.performed_on DESC LIMIT 1)
    UNION ALL
    (SELECT m.performed_on, m.result, m.rectify_by FROM maintenance_records m
     WHERE r.check_name = 'maintenance' AND m.equipment_id = e.id
     ORDER BY m.performed_on DESC LIMIT 1)
) l ON true"""


def _sql_literal(value: Any) -> str:
    if value is None:
        return "NULL::integer"
    return str(value).lower() if isinstance(value, bool) else str(int(value))


def _rules_source() -> str:
    # compliance_rules, or the defaults while it is empty (a database nobody has synced, a truncated test one).
    columns = ", ".join(_RULE_COLUMNS)
    defaults = ",\n        ".join(
        "(" + ", ".join(f"'{v}'" if isinstance(v, str) else _sql_literal(v)
                        for v in (getattr(rule, c) for c in _RULE_COLUMNS)) + ")" for rule in rules_from_config())
    return (f"SELECT {columns} FROM compliance_rules\n    UNION ALL\n    SELECT * FROM (VALUES\n        {defaults}\n"
            f"    ) AS v ({columns}) WHERE NOT EXISTS (SELECT FROM compliance_rules)")


# Parameters: %(as_of)s (a date). Columns: those of CheckStatus.
STATUS_SQL = _STATUS_TEMPLATE.format(rules=_rules_source(), latest=_LATEST_ALL, equipment_filter="")
_STATUS_SOME = _STATUS_TEMPLATE.format(rules=_rules_source(), latest=_LATEST_SOME,
                                       equipment_filter=" AND e.id = ANY(%(equipment_ids)s)")


def compliance_statuses(conn: psycopg.Connection, as_of: date, *,
                        equipment_ids: list[int] | None = None) -> list[CheckStatus]:
    """The status of every check each in-use equipment owes, as of `as_of` (all equipment, or those given)."""
    # Binary tuples and positional construction: loading 372,000 rows is most of the time at 100,000 equipment.
    with conn.cursor(row_factory=tuple_row, binary=True) as cur:
        if equipment_ids is None:
            cur.execute(STATUS_SQL + " ORDER BY 1, 6", {"as_of": as_of})
        else:
            cur.execute(_STATUS_SOME + " ORDER BY 1, 6", {"as_of": as_of, "equipment_ids": list(equipment_ids)})
        return [CheckStatus(*row) for row in cur.fetchall()]


def status_sql(*, check: bool = False, equipment_ids: bool = False) -> str:
    """STATUS_SQL narrowed with the same rules and due dates: to one check (parameter %(check)s) and/or to some
    equipment (%(equipment_ids)s, probed one by one as for compliance_statuses). Parameters: %(as_of)s too."""
    conditions = (" AND r.check_name = %(check)s" if check else "") \
        + (" AND e.id = ANY(%(equipment_ids)s)" if equipment_ids else "")
    return _STATUS_TEMPLATE.format(rules=_rules_source(), latest=_LATEST_SOME if equipment_ids else _LATEST_ALL,
                                   equipment_filter=conditions)


_STATUS_ONE_CHECK_SOME = status_sql(check=True, equipment_ids=True)


def check_statuses(conn: psycopg.Connection, as_of: date, check: str, *,
                   equipment_ids: list[int]) -> list[CheckStatus]:
    """compliance_statuses of one check only, for the equipment given (e.g. one page of a list)."""
    with conn.cursor(row_factory=tuple_row, binary=True) as cur:
        cur.execute(_STATUS_ONE_CHECK_SOME + " ORDER BY 1",
                    {"as_of": as_of, "check": check, "equipment_ids": list(equipment_ids)})
        return [CheckStatus(*row) for row in cur.fetchall()]


@dataclass(frozen=True)
class ScanResult:
    overdue: int      # (equipment, check) pairs overdue now (alerting or not)
    raised: int       # alerts opened by this run (overdue checks and no_records notices)
    resolved: int     # alerts resolved by this run
    reminders: int    # due-soon reminders queued by this run


# Set-based for the whole fleet: a first scan after importing 100,000 equipment opens tens of thousands of
# alerts. alerts.store keeps one open alert per (equipment, kind); a check still overdue is not a new occurrence
# (repeat=False: its count stays), and every change is queued for whom alerts/routing.py names.
# The overdue set goes to an indexed temporary table: as a CTE its row estimate (hundreds for 100,000) led
# the planner to a nested-loop anti join that ran for minutes.
# The statuses are computed once per scan (compliance_scan) for both the alerts and the reminders.
_SCAN_SQL = f"CREATE TEMPORARY TABLE compliance_scan ON COMMIT DROP AS {STATUS_SQL}"
# The overdue checks that alert. Not those of an equipment registered without any record (one no_records notice
# stands for them: a lift installed in 2020 and registered today would otherwise open an overdue alert per check,
# each sent to its firm and use unit), nor a check never recorded on equipment registered within the grace period
# (its records are still being imported). Their statuses stay overdue on the pages and in the figures.
_OVERDUE_SQL = f"""
CREATE TEMPORARY TABLE compliance_overdue ON COMMIT DROP AS
SELECT c.equipment_id, '{ALERT_PREFIX}' || c."check" AS kind, c."check", c.due_on, c.last_on
  FROM compliance_scan c JOIN equipment e ON e.id = c.equipment_id
 WHERE c.status = 'overdue'
   AND NOT (c.last_on IS NULL AND %(grace_days)s > 0
            AND e.created_at > %(now)s - make_interval(days => %(grace_days)s))
   AND c.equipment_id NOT IN (SELECT equipment_id FROM compliance_unrecorded)
"""
NO_RECORDS = "no_records"
# In-use equipment that owes checks and has a record of none of them.
_UNRECORDED_SQL = """
CREATE TEMPORARY TABLE compliance_unrecorded ON COMMIT DROP AS
SELECT equipment_id, min(due_on) AS first_due FROM compliance_scan
 GROUP BY equipment_id HAVING bool_and(last_on IS NULL)
"""
_NO_RECORDS_ALERTS = f"""
SELECT equipment_id, '{NO_RECORDS}' AS kind, 'low' AS severity,
       'registered without inspection or maintenance records: import them (semon registry import records)'
           AS message,
       jsonb_build_object('first_due', to_char(first_due, 'YYYY-MM-DD')) AS detail,
       %(now)s::timestamptz AS seen_at
  FROM compliance_unrecorded"""
SEVERITY = "medium"
_OVERDUE_ALERTS = f"""
SELECT equipment_id, kind, '{SEVERITY}' AS severity,
       replace("check", '_', ' ') || ' overdue since ' || to_char(due_on, 'YYYY-MM-DD') AS message,
       jsonb_build_object('check', "check", 'due', to_char(due_on, 'YYYY-MM-DD'),
                          'last', to_char(last_on, 'YYYY-MM-DD')) AS detail,
       %(now)s::timestamptz AS seen_at
  FROM compliance_overdue"""


# The most urgent reminder threshold reached: a job that first sees a check 5 days before its due date
# sends the 7-day reminder, not the 30-day one too; each (equipment, check, due date, threshold) once.
# Only thresholds within the check's due-soon window count: no 30-day reminder of a 15-day maintenance cycle.
_REMINDERS_SQL = f"""
WITH s AS (SELECT * FROM compliance_scan WHERE status = 'due_soon'),
picked AS (
    SELECT equipment_id, "check", due_on,
           (SELECT min(t) FROM unnest(%(days)s::int[]) t
            WHERE s.due_on - %(as_of)s::date <= t AND t <= r.due_soon_days) AS days_before
    FROM s JOIN ({_rules_source()}) r ON r.equipment_type = s.type AND r.check_name = s."check"
    WHERE s.status = 'due_soon' AND s.due_on >= %(as_of)s::date),
added AS (
    INSERT INTO compliance_reminders (equipment_id, check_name, due_on, days_before, created_at)
    SELECT equipment_id, "check", due_on, days_before, %(now)s FROM picked
    WHERE days_before IS NOT NULL
    ON CONFLICT DO NOTHING RETURNING id, equipment_id),
changes AS (
    SELECT NULL::bigint AS alert_id, id AS reminder_id, equipment_id, 'reminder' AS event, NULL::text AS severity,
           'compliance' AS source, %(now)s::timestamptz AS at
      FROM added),
queued AS ({queue_sql("changes")})
SELECT count(*) AS n FROM added
"""


def scan_compliance(conn: psycopg.Connection, as_of: date, now: datetime,
                    rules: tuple[Rule, ...] | None = None, grace_days: int | None = None) -> ScanResult:
    """Sync the rules, raise one alert per overdue (equipment, check) (one no_records notice for equipment without
    any record), resolve those back in date, and queue due-soon reminders. `grace_days`: the
    compliance_registration_grace_days setting (its default when None)."""
    if grace_days is None:
        from semon.config import SETTINGS_BY_NAME

        grace_days = SETTINGS_BY_NAME["compliance_registration_grace_days"].default
    sync_rules(conn, rules if rules is not None else rules_from_config())
    with conn.transaction():  # the temporary table lives until the end of it
        # A second scan in one transaction finds the tables of the first.
        conn.execute("DROP TABLE IF EXISTS pg_temp.compliance_scan, pg_temp.compliance_overdue,"
                     " pg_temp.compliance_unrecorded")
        conn.execute(_SCAN_SQL, {"as_of": as_of})
        conn.execute(_UNRECORDED_SQL)
        conn.execute("ALTER TABLE compliance_unrecorded ADD PRIMARY KEY (equipment_id)")
        conn.execute(_OVERDUE_SQL, {"now": now, "grace_days": grace_days})
        conn.execute("ALTER TABLE compliance_overdue ADD PRIMARY KEY (equipment_id, kind)")
        conn.execute("ANALYZE compliance_overdue")
        overdue = conn.execute("SELECT count(*) FROM compliance_scan WHERE status = 'overdue'").fetchone()
        raised = raise_alerts_from(conn, "compliance", _OVERDUE_ALERTS, {"now": now}, repeat=False, at=now).raised
        raised += raise_alerts_from(conn, "compliance", _NO_RECORDS_ALERTS, {"now": now}, repeat=False,
                                    at=now).raised
        resolved = resolve_alerts_absent(conn, "compliance", ALERT_PREFIX + "%", "SELECT * FROM compliance_overdue",
                                         at=now)
        resolved += resolve_alerts_absent(conn, "compliance", NO_RECORDS,
                                          f"SELECT equipment_id, '{NO_RECORDS}' AS kind FROM compliance_unrecorded",
                                          at=now)
        reminders = conn.execute(_REMINDERS_SQL, {"as_of": as_of, "now": now, "days": list(REMINDER_DAYS)}).fetchone()
    overdue = overdue["count"] if isinstance(overdue, dict) else overdue[0]
    sent = reminders["n"] if isinstance(reminders, dict) else reminders[0]
    return ScanResult(overdue, raised, resolved, sent)
