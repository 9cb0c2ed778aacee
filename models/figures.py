"""The regulator's figures: the overdue rate of each check (超期未检率 is the periodic inspection's), remote-monitoring
coverage, old elevators, and the planning lists (docs/compliance-figures.md).

Everything is aggregated in SQL over models.compliance.STATUS_SQL (one row per equipment and check), so a
figure over 100,000 equipment costs one pass of the status query. Only in-use equipment counts: suspended and
scrapped equipment owe no checks and are left out of both sides of every rate. Every figure and list takes a
scope (semon/scope.py) and counts only the equipment it lets through; Scope.everything() adds nothing to the SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from models.compliance import PERIODIC_INSPECTION, RULE_TABLE, STATUS_SQL
from semon.scope import Scope, equipment_condition
from semon.vocabulary import COMPLIANCE_STATUSES, EQUIPMENT_TYPES

# Regulators count an elevator as a candidate for an old-elevator safety assessment after 15 years in service.
OLD_ELEVATOR_YEARS = 15
# "A monitor that reported in the last 24 h" (docs/compliance-figures.md): a day's silence is a monitor out of
# service.
COVERAGE_WINDOW = timedelta(hours=24)
# What inspection planning looks at by default; never-recorded checks can be asked for explicitly.
PLANNING_STATUSES = ("overdue", "due_soon")
GROUPS = ("district", "type", "overall")
# Every check of the rule table, in its order. 超期未检 (and its rate, the one regulators quote) is the periodic
# inspection's alone; each other check has a figure of its own (docs/compliance-figures.md).
CHECKS = tuple(dict.fromkeys(check for _, check, _ in RULE_TABLE))
LIST_COLUMNS = ("code", "type", "district", "address", "use_unit", "firm", "check", "last_done", "due", "status",
                "days_overdue")
OLD_ELEVATOR_COLUMNS = ("code", "district", "address", "use_unit", "firm", "install_date", "years_in_service")

# The queries below read the statuses from a CTE named checks, which is either the status query itself
# (one pass each) or a snapshot of it taken once for several figures (see snapshot()). A CTE referenced once
# is inlined by PostgreSQL, so the planner may push a filter down into the status query. A trailing semicolon
# would end the statement it is embedded in.
_LIVE = "checks AS (" + STATUS_SQL.strip().rstrip(";") + ")"
_SNAPSHOT_TABLE = "compliance_figures_snapshot"
_SNAPSHOT = f"checks AS (SELECT * FROM pg_temp.{_SNAPSHOT_TABLE})"
_CHECKS = "{checks}"
# Where a scope narrows a query: on the rows of an alias with district_id and firm_id (equipment e, checks c,
# compliance_daily h); replaced by nothing for everything.
_SCOPE_ALIASES = ("e", "c", "h")
_EVERYTHING = Scope.everything()

# The rates in one pass of the statuses, as rows of two kinds: in-use equipment by district, type and overall (its
# "check" NULL), and for each check the in-use equipment that owes it, has it overdue, and has no record of it at all
# (whatever its status: the planning list's rows never done), grouped the same way. The status query gives one row
# per (equipment, check), so counting rows counts equipment. GROUPING() tells which set a row belongs to (1 = that
# column rolled up).
_RATES_SQL = "WITH " + _CHECKS + """
SELECT GROUPING(d.name) AS no_district, GROUPING(e.type) AS no_type, d.name AS district, e.type,
       NULL::text AS "check", count(*) AS in_use, NULL::bigint AS owing, NULL::bigint AS overdue,
       NULL::bigint AS never_recorded
  FROM equipment e
  JOIN districts d ON d.id = e.district_id
 WHERE e.status = 'in_use'{scope:e}
 GROUP BY GROUPING SETS ((d.name), (e.type), ())
UNION ALL
SELECT GROUPING(d.name), GROUPING(c.type), d.name, c.type, c."check", NULL, count(*),
       count(*) FILTER (WHERE c.status = 'overdue'),
       count(*) FILTER (WHERE c.last_on IS NULL)
  FROM checks c
  JOIN districts d ON d.id = c.district_id
 WHERE true{scope:c}
 GROUP BY GROUPING SETS ((d.name, c."check"), (c.type, c."check"), (c."check"))
"""

_COVERAGE_SQL = """
SELECT GROUPING(d.name) AS no_district, GROUPING(e.type) AS no_type, d.name AS district, e.type,
       count(*) AS in_use,
       count(*) FILTER (WHERE s.last_seen > %(since)s AND s.last_seen <= %(now)s) AS monitored
  FROM equipment e
  JOIN districts d ON d.id = e.district_id
  LEFT JOIN equipment_state s ON s.equipment_id = e.id
 WHERE e.status = 'in_use'{scope:e}
 GROUP BY GROUPING SETS ((d.name), (e.type), ())
"""

# The anniversary is computed by PostgreSQL's date arithmetic, so an elevator installed on 29 February has
# its anniversary on 28 February of a common year and is "more than N years" from the day after.
_OLD_ELEVATORS_SQL = """
SELECT GROUPING(d.name) AS no_district, d.name AS district,
       count(*) AS elevators,
       count(*) FILTER (WHERE (e.install_date + make_interval(years => %(years)s))::date < %(as_of)s)
           AS old,
       count(*) FILTER (WHERE e.install_date IS NULL) AS install_date_unknown
  FROM equipment e
  JOIN districts d ON d.id = e.district_id
 WHERE e.type = 'elevator' AND e.status = 'in_use'{scope:e}
 GROUP BY GROUPING SETS ((d.name), ())
"""

_OLD_ELEVATOR_LIST_SQL = """
SELECT e.code, d.name AS district, e.address, e.use_unit, f.name AS firm, e.install_date,
       extract(year FROM age(%(as_of)s::date, e.install_date))::integer AS years_in_service
  FROM equipment e
  JOIN districts d ON d.id = e.district_id
  LEFT JOIN maintenance_firms f ON f.id = e.firm_id
 WHERE e.type = 'elevator' AND e.status = 'in_use'
   AND (e.install_date + make_interval(years => %(years)s))::date < %(as_of)s
   AND (%(district_id)s::integer IS NULL OR e.district_id = %(district_id)s){scope:e}
 ORDER BY e.install_date, e.code
"""

# The planning list: overdue first, longest overdue first, then by due date.
_DUE_SQL = "WITH " + _CHECKS + """
SELECT c.code, c.type, d.name AS district, e.address, e.use_unit, f.name AS firm, c."check",
       c.last_on AS last_done, c.due_on AS due, c.status,
       CASE WHEN c.status = 'overdue' THEN %(as_of)s::date - c.due_on END AS days_overdue,
       count(*) OVER () AS total
  FROM checks c
  JOIN equipment e ON e.id = c.equipment_id
  JOIN districts d ON d.id = c.district_id
  LEFT JOIN maintenance_firms f ON f.id = c.firm_id
 WHERE c.status = ANY(%(statuses)s)
   AND (%(district_id)s::integer IS NULL OR c.district_id = %(district_id)s)
   AND (%(firm_id)s::integer IS NULL OR c.firm_id = %(firm_id)s)
   AND (%(type)s::text IS NULL OR c.type = %(type)s)
   AND (%(check)s::text IS NULL OR c."check" = %(check)s){scope:c}
 ORDER BY array_position(%(order)s::text[], c.status), c.due_on NULLS LAST, c.code, c."check"
 LIMIT %(limit)s OFFSET %(offset)s
"""

# Checks overdue and due soon per firm and per district, for the planning page's "who has what to do", with the
# overdue ones counted per check as well (each has its own name: 超期未检 is the periodic inspection's). The check
# names are the rule table's, written into the query as literals.
_OVERDUE_PER_CHECK = ",\n       ".join(
    f"count(*) FILTER (WHERE c.status = 'overdue' AND c.\"check\" = '{check}') AS \"{check}\"" for check in CHECKS)
_DUE_SUMMARY_SQL = "WITH " + _CHECKS + """
SELECT GROUPING(c.firm_id) AS no_firm_group, GROUPING(c.district_id) AS no_district_group,
       f.name AS firm, d.name AS district,
       count(*) FILTER (WHERE c.status = 'overdue') AS overdue_checks,
       count(*) FILTER (WHERE c.status = 'due_soon') AS due_soon_checks,
       count(DISTINCT c.equipment_id) FILTER (WHERE c.status = 'overdue') AS overdue_equipment,
       """ + _OVERDUE_PER_CHECK + """
  FROM checks c
  LEFT JOIN maintenance_firms f ON f.id = c.firm_id
  LEFT JOIN districts d ON d.id = c.district_id
 WHERE c.status IN ('overdue', 'due_soon'){scope:c}
 GROUP BY GROUPING SETS ((c.firm_id, f.name), (c.district_id, d.name))
"""

# One day's figures in one statement (one snapshot of the registry): in-use equipment and coverage at the grain of
# the history table (day, district, type, firm: migrations 0010 and 0011), and under each of its rows the counts
# per check (compliance_daily_check), as the rates count them. The rates by district, type and overall are sums of
# them, and a scope narrows them on district and firm. The "any check" columns of days recorded before 0011 are
# left NULL: that figure is no longer kept (docs/compliance-figures.md). The join key is COALESCE(firm_id, 0), as in
# the table's unique index, so that equipment without a firm is matched by a hash join.
_DAILY_INSERT_SQL = "WITH " + _CHECKS + """,
groups AS (
    INSERT INTO compliance_daily (day, district_id, type, firm_id, in_use, monitored, recorded_at)
    SELECT %(as_of)s, e.district_id, e.type, e.firm_id, count(*),
           count(*) FILTER (WHERE s.last_seen > %(since)s AND s.last_seen <= %(now)s),
           %(now)s
      FROM equipment e
      LEFT JOIN equipment_state s ON s.equipment_id = e.id
     WHERE e.status = 'in_use'
     GROUP BY e.district_id, e.type, e.firm_id
    RETURNING id, district_id, type, COALESCE(firm_id, 0) AS firm),
counted AS (
    SELECT district_id, type, COALESCE(firm_id, 0) AS firm, "check", count(*) AS owing,
           count(*) FILTER (WHERE status = 'overdue') AS overdue,
           count(*) FILTER (WHERE last_on IS NULL) AS never_recorded
      FROM checks
     GROUP BY district_id, type, COALESCE(firm_id, 0), "check"),
by_check AS (
    INSERT INTO compliance_daily_check (daily_id, check_name, owing, overdue, never_recorded)
    SELECT g.id, c."check", c.owing, c.overdue, c.never_recorded
      FROM counted c
      JOIN groups g ON g.district_id = c.district_id AND g.type = c.type AND g.firm = c.firm)
SELECT count(*) AS written FROM groups
"""

_HISTORY_KEYS = {"district": "d.name", "type": "h.type", "overall": "NULL::text"}
_HISTORY_SQL = """
SELECT h.day, {key} AS key, sum(h.in_use)::integer AS in_use, sum(h.monitored)::integer AS monitored,
       sum(h.overdue_any_check)::integer AS overdue_any_check,
       sum(h.never_recorded_any_check)::integer AS never_recorded_any_check
  FROM compliance_daily h
  JOIN districts d ON d.id = h.district_id
 WHERE h.day BETWEEN %(first)s AND %(last)s{scope:h}
 GROUP BY h.day, {key}
 ORDER BY h.day, {key}
"""
_HISTORY_CHECKS_SQL = """
SELECT h.day, {key} AS key, k.check_name, sum(k.owing)::integer AS owing, sum(k.overdue)::integer AS overdue,
       sum(k.never_recorded)::integer AS never_recorded
  FROM compliance_daily h
  JOIN compliance_daily_check k ON k.daily_id = h.id
  JOIN districts d ON d.id = h.district_id
 WHERE h.day BETWEEN %(first)s AND %(last)s{scope:h}
 GROUP BY h.day, {key}, k.check_name
"""


def ratio(part: int, whole: int) -> float | None:
    """part / whole, or None when there is nothing to divide by (a rate of an empty group is undefined)."""
    return part / whole if whole else None


def _check_order(check: str) -> int:
    return CHECKS.index(check) if check in CHECKS else len(CHECKS)


@dataclass(frozen=True)
class CheckFigure:
    """One check's figure over a group: in-use equipment that owes it, has it overdue, has no record of it at all."""

    check: str
    owing: int
    overdue: int
    never_recorded: int

    @property
    def rate(self) -> float | None:
        """overdue / owing; None when no equipment of the group owes the check."""
        return ratio(self.overdue, self.owing)

    def as_dict(self) -> dict[str, Any]:
        """The API's by_check entry."""
        return {"owing": self.owing, "overdue": self.overdue, "rate": self.rate, "never_recorded": self.never_recorded}


def _by_check(figures: list[CheckFigure]) -> tuple[CheckFigure, ...]:
    return tuple(sorted(figures, key=lambda f: _check_order(f.check)))


@dataclass(frozen=True)
class OverdueRate:
    """The overdue figures of one district, type, or the whole fleet (key None): in-use equipment, and the figure of
    each check the group's equipment owes. Its overdue, rate and never_recorded are the periodic inspection's
    (超期未检, 超期未检率, 无检验记录)."""

    key: str | None
    in_use: int
    checks: tuple[CheckFigure, ...] = ()

    def check(self, name: str) -> CheckFigure:
        """The figure of one check (all zero when the group owes none)."""
        return next((f for f in self.checks if f.check == name), CheckFigure(name, 0, 0, 0))

    @property
    def periodic(self) -> CheckFigure:
        """The periodic inspection's figure."""
        return self.check(PERIODIC_INSPECTION)

    @property
    def overdue(self) -> int:
        """In-use equipment whose periodic inspection is overdue (超期未检)."""
        return self.periodic.overdue

    @property
    def never_recorded(self) -> int:
        """In-use equipment with no periodic inspection on record at all, overdue or not (无检验记录)."""
        return self.periodic.never_recorded

    @property
    def rate(self) -> float | None:
        """超期未检率: overdue / in-use equipment owing a periodic inspection; None for an empty group."""
        return self.periodic.rate

    def as_dict(self, group: str) -> dict[str, Any]:
        """The API's item: the group's key (none for overall), the periodic inspection's figures, every check's."""
        item = {group: self.key} if group != "overall" else {}
        return item | {"in_use": self.in_use, "overdue": self.overdue, "rate": self.rate,
                       "never_recorded": self.never_recorded,
                       "by_check": {f.check: f.as_dict() for f in self.checks}}


@dataclass(frozen=True)
class Coverage:
    """In-use equipment whose monitor reported within COVERAGE_WINDOW, for one group (key None: all)."""

    key: str | None
    in_use: int
    monitored: int

    @property
    def share(self) -> float | None:
        """monitored / in_use; None for an empty group."""
        return ratio(self.monitored, self.in_use)

    def as_dict(self, group: str) -> dict[str, Any]:
        """The API's item: the group's key (none for overall) and the counts."""
        item = {group: self.key} if group != "overall" else {}
        return item | {"in_use": self.in_use, "monitored": self.monitored, "share": self.share}


@dataclass(frozen=True)
class OldElevators:
    """In-use elevators in one district (None: all) and how many have been in service over OLD_ELEVATOR_YEARS."""

    district: str | None
    elevators: int
    old: int
    install_date_unknown: int

    @property
    def share(self) -> float | None:
        """old / elevators; None for an empty district."""
        return ratio(self.old, self.elevators)

    def as_dict(self) -> dict[str, Any]:
        """The API's item."""
        return {"district": self.district, "elevators": self.elevators, "old": self.old, "share": self.share,
                "install_date_unknown": self.install_date_unknown}


@dataclass(frozen=True)
class Grouped:
    """A figure by district, by type and for the whole fleet."""

    by_district: list[Any]
    by_type: list[Any]
    overall: Any

    def group(self, name: str) -> list[Any]:
        """The rows of one grouping: district, type or overall (one row)."""
        return {"district": self.by_district, "type": self.by_type, "overall": [self.overall]}[name]


def _type_order(key: str | None) -> int:
    return EQUIPMENT_TYPES.index(key) if key in EQUIPMENT_TYPES else len(EQUIPMENT_TYPES)


def _grouped(rows: list[dict[str, Any]], make: Any, empty: Any) -> Grouped:
    by_district = sorted((make(r["district"], r) for r in rows if not r["no_district"]), key=lambda x: x.key)
    by_type = sorted((make(r["type"], r) for r in rows if not r["no_type"] and r["no_district"]),
                     key=lambda x: _type_order(x.key))
    overall = [make(None, r) for r in rows if r["no_district"] and r["no_type"]]
    # PostgreSQL gives the () row even over no input rows; the fallback only keeps the shape certain.
    return Grouped(by_district, by_type, overall[0] if overall else empty)


def _rows(conn: psycopg.Connection, query: str, values: dict[str, Any], checks: str = _LIVE,
          scope: Scope = _EVERYTHING) -> list[dict[str, Any]]:
    query = query.replace(_CHECKS, checks)
    for alias in _SCOPE_ALIASES:
        marker = "{scope:" + alias + "}"
        if marker in query:
            condition, scoped = equipment_condition(scope, alias)
            query = query.replace(marker, condition)
            values = values | scoped
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, values).fetchall()


def overdue_rates(conn: psycopg.Connection, as_of: date, *, scope: Scope = _EVERYTHING,
                  _checks: str = _LIVE) -> Grouped:
    """The overdue figures on `as_of` (超期未检率 and each check's) by district, by type and overall (in-use
    equipment as registered now)."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in _rows(conn, _RATES_SQL, {"as_of": as_of}, _checks, scope):
        group = groups.setdefault((r["no_district"], r["no_type"], r["district"], r["type"]),
                                  {k: r[k] for k in ("no_district", "no_type", "district", "type")}
                                  | {"in_use": 0, "checks": []})
        if r["check"] is None:
            group["in_use"] = r["in_use"]
        else:
            group["checks"].append(CheckFigure(r["check"], r["owing"], r["overdue"], r["never_recorded"]))
    return _grouped(list(groups.values()), lambda key, g: OverdueRate(key, g["in_use"], _by_check(g["checks"])),
                    OverdueRate(None, 0))


def coverage(conn: psycopg.Connection, now: datetime, *, scope: Scope = _EVERYTHING) -> Grouped:
    """Remote-monitoring coverage at `now` by district, by type and overall."""
    rows = _rows(conn, _COVERAGE_SQL, {"now": now, "since": now - COVERAGE_WINDOW}, scope=scope)
    return _grouped(rows, lambda key, r: Coverage(key, r["in_use"], r["monitored"]), Coverage(None, 0, 0))


def old_elevators(conn: psycopg.Connection, as_of: date, years: int = OLD_ELEVATOR_YEARS, *,
                  scope: Scope = _EVERYTHING) -> tuple[list[OldElevators], OldElevators]:
    """(per district, all districts): in-use elevators in service for more than `years` years on `as_of`."""
    rows = _rows(conn, _OLD_ELEVATORS_SQL, {"as_of": as_of, "years": years}, scope=scope)
    made = [(r["no_district"], OldElevators(r["district"], r["elevators"], r["old"], r["install_date_unknown"]))
            for r in rows]
    by_district = sorted((o for rolled_up, o in made if not rolled_up), key=lambda o: o.district or "")
    total = [o for rolled_up, o in made if rolled_up]
    return by_district, (total[0] if total else OldElevators(None, 0, 0, 0))


def old_elevator_list(conn: psycopg.Connection, as_of: date, *, district_id: int | None = None,
                      years: int = OLD_ELEVATOR_YEARS, scope: Scope = _EVERYTHING) -> list[dict[str, Any]]:
    """The old elevators themselves (longest in service first), for the safety-assessment campaign."""
    return _rows(conn, _OLD_ELEVATOR_LIST_SQL, {"as_of": as_of, "years": years, "district_id": district_id},
                 scope=scope)


def due_list(conn: psycopg.Connection, as_of: date, *, statuses: tuple[str, ...] = PLANNING_STATUSES,
             district_id: int | None = None, firm_id: int | None = None, equipment_type: str | None = None,
             check: str | None = None, limit: int | None = None, offset: int = 0, scope: Scope = _EVERYTHING,
             _checks: str = _LIVE) -> tuple[int, list[dict[str, Any]]]:
    """(total matching, rows) of the planning list: one row per (equipment, check) with a status in `statuses`
    (and of one check if given)."""
    unknown = [s for s in statuses if s not in COMPLIANCE_STATUSES]
    if unknown:
        raise ValueError(f"unknown status {unknown[0]!r}; expected one of {', '.join(COMPLIANCE_STATUSES)}")
    rows = _rows(conn, _DUE_SQL, {
        "as_of": as_of, "statuses": list(statuses), "district_id": district_id, "firm_id": firm_id,
        "type": equipment_type, "check": check, "order": ["overdue", "due_soon", "never_recorded", "ok"],
        "limit": limit, "offset": offset}, _checks, scope)
    total = rows[0].pop("total") if rows else 0
    for row in rows[1:]:
        row.pop("total")
    if not rows and offset:
        # The page is past the end: the window count came back with no row to carry it.
        total = due_list(conn, as_of, statuses=statuses, district_id=district_id, firm_id=firm_id,
                         equipment_type=equipment_type, check=check, limit=1, offset=0, scope=scope,
                         _checks=_checks)[0]
    return total, rows


def due_summary(conn: psycopg.Connection, as_of: date, *, scope: Scope = _EVERYTHING, _checks: str = _LIVE
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per firm, per district) counts of overdue and due-soon checks, of overdue checks per check, and of
    equipment with any check overdue."""
    rows = _rows(conn, _DUE_SUMMARY_SQL, {"as_of": as_of}, _checks, scope)
    fields = ("overdue_checks", "due_soon_checks", "overdue_equipment")

    def counts(r: dict[str, Any]) -> dict[str, Any]:
        return {k: r[k] for k in fields} | {"overdue_by_check": {check: r[check] for check in CHECKS}}
    by_firm = [{"firm": r["firm"]} | counts(r) for r in rows if not r["no_firm_group"]]
    by_district = [{"district": r["district"]} | counts(r) for r in rows if not r["no_district_group"]]
    # Equipment without a firm sorts last: it is the regulator's problem, not a firm's.
    by_firm.sort(key=lambda r: (r["firm"] is None, r["firm"] or ""))
    by_district.sort(key=lambda r: r["district"] or "")
    return by_firm, by_district


def record_daily_figures(conn: psycopg.Connection, day: date, *, now: datetime | None = None) -> int:
    """Record `day`'s figures in compliance_daily and compliance_daily_check, replacing any earlier run of that day;
    returns the compliance_daily rows written. Coverage is counted at `now` (default: the current time)."""
    # Safe to run as often as wished: the last run of a day is the one kept. Coverage is counted at the time of the
    # run since only the latest report time of each monitor is known.
    now = now or datetime.now(UTC)
    with conn.transaction():
        # The day's rows per check go with their compliance_daily rows (ON DELETE CASCADE).
        conn.execute("DELETE FROM compliance_daily WHERE day = %(day)s", {"day": day})
        written = conn.execute(_DAILY_INSERT_SQL.replace(_CHECKS, _LIVE),
                               {"as_of": day, "now": now, "since": now - COVERAGE_WINDOW}).fetchone()
        return written["written"] if isinstance(written, dict) else written[0]


def history(conn: psycopg.Connection, first: date, last: date, group: str, *,
            scope: Scope = _EVERYTHING) -> list[dict[str, Any]]:
    """The recorded daily figures from `first` to `last`, summed by day and district, type or overall; a scope
    counts its districts' and firms' rows (days recorded before migration 0010 have no firm). Days recorded before
    migration 0011 have no figure per check (overdue, rate, never_recorded None) but the "any check" one they kept."""
    if group not in _HISTORY_KEYS:
        raise ValueError(f"group must be one of {', '.join(GROUPS)}, not {group!r}")
    key = _HISTORY_KEYS[group]
    values = {"first": first, "last": last}
    checks: dict[tuple[date, str | None], list[CheckFigure]] = {}
    for r in _rows(conn, _HISTORY_CHECKS_SQL.replace("{key}", key), values, scope=scope):
        checks.setdefault((r["day"], r["key"]), []).append(
            CheckFigure(r["check_name"], r["owing"], r["overdue"], r["never_recorded"]))
    items = []
    for r in _rows(conn, _HISTORY_SQL.replace("{key}", key), values, scope=scope):
        figures = _by_check(checks.get((r["day"], r["key"]), []))
        periodic = next((f for f in figures if f.check == PERIODIC_INSPECTION), None)
        any_check = None if r["overdue_any_check"] is None else {
            "overdue": r["overdue_any_check"], "rate": ratio(r["overdue_any_check"], r["in_use"]),
            "never_recorded": r["never_recorded_any_check"]}
        item = {"day": r["day"]} | ({group: r["key"]} if group != "overall" else {})
        item |= {"in_use": r["in_use"], "overdue": None, "rate": None, "never_recorded": None}
        if periodic is not None:
            item |= {"overdue": periodic.overdue, "rate": periodic.rate, "never_recorded": periodic.never_recorded}
        items.append(item | {"monitored": r["monitored"], "coverage": ratio(r["monitored"], r["in_use"]),
                             "by_check": {f.check: f.as_dict() for f in figures}, "any_check": any_check})
    return items


@dataclass(frozen=True)
class Snapshot:
    """The statuses of one day taken once, for several figures over them (see snapshot())."""

    conn: psycopg.Connection
    as_of: date
    scope: Scope = _EVERYTHING

    def overdue_rates(self) -> Grouped:
        """overdue_rates() over the snapshot."""
        return overdue_rates(self.conn, self.as_of, scope=self.scope, _checks=_SNAPSHOT)

    def due_summary(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """due_summary() over the snapshot."""
        return due_summary(self.conn, self.as_of, scope=self.scope, _checks=_SNAPSHOT)

    def due_list(self, **filters: Any) -> tuple[int, list[dict[str, Any]]]:
        """due_list() over the snapshot, with its keyword filters."""
        return due_list(self.conn, self.as_of, scope=self.scope, _checks=_SNAPSHOT, **filters)


@contextmanager
def snapshot(conn: psycopg.Connection, as_of: date, *, scope: Scope = _EVERYTHING) -> Iterator[Snapshot]:
    """Compute the statuses on `as_of` of the scope's equipment once into a temporary table, for the block's
    figures; the table is dropped when the block ends."""
    # The status query is the cost of every figure (about 2 s over 100,000 equipment); a page that shows the
    # rates, the per-firm summary and the list pays it once instead of three times.
    with conn.transaction():
        conn.execute(f"DROP TABLE IF EXISTS pg_temp.{_SNAPSHOT_TABLE}")
        narrow, scoped = equipment_condition(scope, "c", prefix=" WHERE ")
        statuses = f"SELECT * FROM ({STATUS_SQL}) c{narrow}" if narrow else STATUS_SQL
        conn.execute(f"CREATE TEMP TABLE {_SNAPSHOT_TABLE} ON COMMIT DROP AS {statuses}", {"as_of": as_of} | scoped)
        # Without statistics the planner guesses the temporary table's size; the joins then go wrong.
        conn.execute(f"ANALYZE pg_temp.{_SNAPSHOT_TABLE}")
        yield Snapshot(conn, as_of, scope)
        # Dropped here as well as on commit, for a caller already inside a transaction; after an error the
        # rollback of this block removes the table instead.
        conn.execute(f"DROP TABLE pg_temp.{_SNAPSHOT_TABLE}")
