"""The regulator's figures: overdue rate, remote-monitoring coverage, old elevators, and the planning lists
(docs/compliance-figures.md).

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

from models.compliance import STATUS_SQL
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

# One row per in-use equipment: whether any of its checks is overdue (the equipment is then overdue) or was
# never recorded. Equipment with no applicable check at all is in use and not overdue.
_FLAGS = _CHECKS + """,
flags AS (
    SELECT equipment_id,
           bool_or(status = 'overdue') AS overdue,
           bool_or(status = 'never_recorded') AS never_recorded
      FROM checks GROUP BY equipment_id)"""

# The three groupings in one pass: GROUPING() tells which set a row belongs to (1 = that column rolled up).
_RATES_SQL = "WITH " + _FLAGS + """
SELECT GROUPING(d.name) AS no_district, GROUPING(e.type) AS no_type, d.name AS district, e.type,
       count(*) AS in_use,
       count(*) FILTER (WHERE f.overdue) AS overdue,
       count(*) FILTER (WHERE f.never_recorded) AS never_recorded
  FROM equipment e
  JOIN districts d ON d.id = e.district_id
  LEFT JOIN flags f ON f.equipment_id = e.id
 WHERE e.status = 'in_use'{scope:e}
 GROUP BY GROUPING SETS ((d.name), (e.type), ())
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
   AND (%(type)s::text IS NULL OR c.type = %(type)s){scope:c}
 ORDER BY array_position(%(order)s::text[], c.status), c.due_on NULLS LAST, c.code, c."check"
 LIMIT %(limit)s OFFSET %(offset)s
"""

# Checks overdue and due soon per firm and per district, for the planning page's "who has what to do".
_DUE_SUMMARY_SQL = "WITH " + _CHECKS + """
SELECT GROUPING(c.firm_id) AS no_firm_group, GROUPING(c.district_id) AS no_district_group,
       f.name AS firm, d.name AS district,
       count(*) FILTER (WHERE c.status = 'overdue') AS overdue_checks,
       count(*) FILTER (WHERE c.status = 'due_soon') AS due_soon_checks,
       count(DISTINCT c.equipment_id) FILTER (WHERE c.status = 'overdue') AS overdue_equipment
  FROM checks c
  LEFT JOIN maintenance_firms f ON f.id = c.firm_id
  LEFT JOIN districts d ON d.id = c.district_id
 WHERE c.status IN ('overdue', 'due_soon'){scope:c}
 GROUP BY GROUPING SETS ((c.firm_id, f.name), (c.district_id, d.name))
"""

# One day's figures at the grain of the history table (day, district, type, firm: migration 0010); the rates by
# district, type and overall are sums of it, and a scope narrows it on district and firm.
_DAILY_INSERT_SQL = "WITH " + _FLAGS + """
INSERT INTO compliance_daily (day, district_id, type, firm_id, in_use, overdue, never_recorded, monitored,
                              recorded_at)
SELECT %(as_of)s, e.district_id, e.type, e.firm_id, count(*),
       count(*) FILTER (WHERE f.overdue),
       count(*) FILTER (WHERE f.never_recorded),
       count(*) FILTER (WHERE s.last_seen > %(since)s AND s.last_seen <= %(now)s),
       %(now)s
  FROM equipment e
  LEFT JOIN flags f ON f.equipment_id = e.id
  LEFT JOIN equipment_state s ON s.equipment_id = e.id
 WHERE e.status = 'in_use'
 GROUP BY e.district_id, e.type, e.firm_id
"""

_HISTORY_KEYS = {"district": "d.name", "type": "h.type", "overall": "NULL::text"}
_HISTORY_SQL = """
SELECT h.day, {key} AS key, sum(h.in_use)::integer AS in_use, sum(h.overdue)::integer AS overdue,
       sum(h.never_recorded)::integer AS never_recorded, sum(h.monitored)::integer AS monitored
  FROM compliance_daily h
  JOIN districts d ON d.id = h.district_id
 WHERE h.day BETWEEN %(first)s AND %(last)s{scope:h}
 GROUP BY h.day, {key}
 ORDER BY h.day, {key}
"""


def ratio(part: int, whole: int) -> float | None:
    """part / whole, or None when there is nothing to divide by (a rate of an empty group is undefined)."""
    return part / whole if whole else None


@dataclass(frozen=True)
class OverdueRate:
    """Overdue in-use equipment over in-use equipment for one district, type, or the whole fleet (key None)."""

    key: str | None
    in_use: int
    overdue: int
    never_recorded: int

    @property
    def rate(self) -> float | None:
        """overdue / in_use; None for an empty group."""
        return ratio(self.overdue, self.in_use)

    def as_dict(self, group: str) -> dict[str, Any]:
        """The API's item: the group's key (none for overall) and the counts."""
        item = {group: self.key} if group != "overall" else {}
        return item | {"in_use": self.in_use, "overdue": self.overdue, "rate": self.rate,
                       "never_recorded": self.never_recorded}


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
    """The overdue rate on `as_of` by district, by type and overall (in-use equipment as registered now)."""
    rows = _rows(conn, _RATES_SQL, {"as_of": as_of}, _checks, scope)
    return _grouped(rows, lambda key, r: OverdueRate(key, r["in_use"], r["overdue"], r["never_recorded"]),
                    OverdueRate(None, 0, 0, 0))


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
             limit: int | None = None, offset: int = 0, scope: Scope = _EVERYTHING,
             _checks: str = _LIVE) -> tuple[int, list[dict[str, Any]]]:
    """(total matching, rows) of the planning list: one row per (equipment, check) with a status in `statuses`."""
    unknown = [s for s in statuses if s not in COMPLIANCE_STATUSES]
    if unknown:
        raise ValueError(f"unknown status {unknown[0]!r}; expected one of {', '.join(COMPLIANCE_STATUSES)}")
    rows = _rows(conn, _DUE_SQL, {
        "as_of": as_of, "statuses": list(statuses), "district_id": district_id, "firm_id": firm_id,
        "type": equipment_type, "order": ["overdue", "due_soon", "never_recorded", "ok"],
        "limit": limit, "offset": offset}, _checks, scope)
    total = rows[0].pop("total") if rows else 0
    for row in rows[1:]:
        row.pop("total")
    if not rows and offset:
        # The page is past the end: the window count came back with no row to carry it.
        total = due_list(conn, as_of, statuses=statuses, district_id=district_id, firm_id=firm_id,
                         equipment_type=equipment_type, limit=1, offset=0, scope=scope, _checks=_checks)[0]
    return total, rows


def due_summary(conn: psycopg.Connection, as_of: date, *, scope: Scope = _EVERYTHING, _checks: str = _LIVE
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per firm, per district) counts of overdue and due-soon checks and of overdue equipment."""
    rows = _rows(conn, _DUE_SUMMARY_SQL, {"as_of": as_of}, _checks, scope)
    fields = ("overdue_checks", "due_soon_checks", "overdue_equipment")
    by_firm = [{"firm": r["firm"]} | {k: r[k] for k in fields} for r in rows if not r["no_firm_group"]]
    by_district = [{"district": r["district"]} | {k: r[k] for k in fields} for r in rows
                   if not r["no_district_group"]]
    # Equipment without a firm sorts last: it is the regulator's problem, not a firm's.
    by_firm.sort(key=lambda r: (r["firm"] is None, r["firm"] or ""))
    by_district.sort(key=lambda r: r["district"] or "")
    return by_firm, by_district


def record_daily_figures(conn: psycopg.Connection, day: date, *, now: datetime | None = None) -> int:
    """Record `day`'s figures in compliance_daily, replacing any earlier run of that day; returns rows written.
    Coverage is counted at `now` (default: the current time)."""
    # Safe to run as often as wished: the last run of a day is the one kept. Coverage is counted at the time of the
    # run since only the latest report time of each monitor is known.
    now = now or datetime.now(UTC)
    with conn.transaction():
        conn.execute("DELETE FROM compliance_daily WHERE day = %(day)s", {"day": day})
        written = conn.execute(_DAILY_INSERT_SQL.replace(_CHECKS, _LIVE),
                               {"as_of": day, "now": now, "since": now - COVERAGE_WINDOW})
        return written.rowcount


def history(conn: psycopg.Connection, first: date, last: date, group: str, *,
            scope: Scope = _EVERYTHING) -> list[dict[str, Any]]:
    """The recorded daily figures from `first` to `last`, summed by day and district, type or overall; a scope
    counts its districts' and firms' rows (days recorded before migration 0010 have no firm)."""
    if group not in _HISTORY_KEYS:
        raise ValueError(f"group must be one of {', '.join(GROUPS)}, not {group!r}")
    rows = _rows(conn, _HISTORY_SQL.replace("{key}", _HISTORY_KEYS[group]), {"first": first, "last": last},
                 scope=scope)
    items = []
    for r in rows:
        item = {"day": r["day"]} | ({group: r["key"]} if group != "overall" else {})
        items.append(item | {"in_use": r["in_use"], "overdue": r["overdue"], "rate": ratio(r["overdue"], r["in_use"]),
                             "never_recorded": r["never_recorded"], "monitored": r["monitored"],
                             "coverage": ratio(r["monitored"], r["in_use"])})
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
