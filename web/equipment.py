"""The equipment register: the list with inspection and online status, and one equipment's page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request, url_for

from models import compliance
from semon.vocabulary import EQUIPMENT_TYPES
from web import params
from web.db import connection, fetch_all, fetch_one

bp = Blueprint("equipment", __name__)

INSPECTION_STATUSES = ("ok", "due_soon", "overdue", "no_record", "not_required")
CONNECTION_STATES = ("online", "offline", "no_data")
# The inspection status is compliance's status of this check (models/compliance.py), so that the pages agree
# with /compliance and the overdue alerts; its never_recorded reads no_record here.
PERIODIC_CHECK = "periodic_inspection"
_FROM_COMPLIANCE = {"never_recorded": "no_record"}
_TO_COMPLIANCE = {v: k for k, v in _FROM_COMPLIANCE.items()}
# The periodic-inspection status of every in-use equipment: only for a filter on it (a page computes its own).
_PERIODIC_SQL = compliance.status_sql(check=True)
RECENT_ALERTS = 20
RECENT_MAINTENANCE = 10

# Fields of one row of the list, in the order the API gives them.
LIST_FIELDS = ("code", "type", "district", "address", "firm", "equipment_status", "inspection_status",
               "next_inspection_due", "inspection_on_record", "connection", "last_seen", "offline_since",
               "open_alerts")
DETAIL_FIELDS = LIST_FIELDS + ("use_unit", "install_date", "rated_speed_mps", "rated_load_kg", "floors",
                               "rated_pressure_mpa", "rated_capacity_tph", "firm_phone", "firm_email")

# One row per equipment with its derived states; the inspection fields are added from the compliance rules
# (_add_inspection). A monitor is offline when it said so (its last will) or when it has missed
# offline_after_missed_heartbeats heartbeats; stale is a state, so offline_since is given, not values.
_EQUIPMENT_SQL = """
SELECT * FROM (
    SELECT e.id, e.code, e.type, d.name AS district, e.address, f.name AS firm,
           e.status AS equipment_status, e.use_unit, e.install_date, e.rated_speed_mps, e.rated_load_kg,
           e.floors, e.rated_pressure_mpa, e.rated_capacity_tph,
           f.phone AS firm_phone, f.email AS firm_email,
           EXISTS (SELECT FROM inspections i WHERE i.equipment_id = e.id AND i.kind = 'periodic_inspection')
               AS periodic_on_record,
           CASE WHEN s.status IS NULL AND s.last_seen IS NULL THEN 'no_data'
                WHEN s.status = 'offline' THEN 'offline'
                WHEN COALESCE(s.last_seen, s.status_changed_at) < now() - %(offline_after)s THEN 'offline'
                ELSE 'online' END AS connection,
           CASE WHEN s.status = 'offline' THEN COALESCE(s.status_changed_at, s.last_seen)
                WHEN COALESCE(s.last_seen, s.status_changed_at) < now() - %(offline_after)s
                THEN COALESCE(s.last_seen, s.status_changed_at) END AS offline_since,
           s.last_seen, s.last_values,
           (SELECT count(*) FROM alerts a
             WHERE a.equipment_id = e.id AND a.state <> 'resolved') AS open_alerts
      FROM equipment e
      JOIN districts d ON d.id = e.district_id
      LEFT JOIN maintenance_firms f ON f.id = e.firm_id
      LEFT JOIN equipment_state s ON s.equipment_id = e.id
) listed
"""

_INSPECTIONS_SQL = """
SELECT kind, performed_on, result, next_due, organisation, report_no
  FROM inspections WHERE equipment_id = %(id)s
 ORDER BY performed_on DESC, kind
"""

_MAINTENANCE_SQL = """
SELECT m.kind, m.performed_on, m.next_due, f.name AS firm, m.notes
  FROM maintenance_records m LEFT JOIN maintenance_firms f ON f.id = m.firm_id
 WHERE m.equipment_id = %(id)s
 ORDER BY m.performed_on DESC, m.kind
 LIMIT %(limit)s
"""

_ALERTS_SQL = """
SELECT a.id, a.kind, fc.description AS kind_description, a.source, a.severity, a.state, a.count,
       a.first_seen, a.last_seen, a.acknowledged_at, a.resolved_at, a.message
  FROM alerts a LEFT JOIN fault_codes fc ON fc.name = a.kind
 WHERE a.equipment_id = %(id)s AND (a.state <> 'resolved') = %(open)s
 ORDER BY a.last_seen DESC, a.id DESC
 LIMIT %(limit)s
"""


@dataclass(frozen=True)
class EquipmentFilter:
    """What the list is narrowed to; None means no restriction."""

    district: str | None = None
    type: str | None = None
    firm: str | None = None
    status: str | None = None
    connection: str | None = None
    q: str | None = None
    limit: int = params.DEFAULT_LIMIT
    offset: int = 0

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> EquipmentFilter:
        """Parse the query string; a bad value is a 400."""
        limit, offset = params.page(args)
        return cls(
            district=params.text(args, "district"),
            type=params.choice(args, "type", EQUIPMENT_TYPES),
            firm=params.text(args, "firm"),
            status=params.choice(args, "status", INSPECTION_STATUSES),
            connection=params.choice(args, "connection", CONNECTION_STATES),
            q=params.text(args, "q"),
            limit=limit,
            offset=offset,
        )

    def where(self) -> tuple[str, dict[str, Any]]:
        """The WHERE clause over the listed rows and its parameters."""
        clauses = []
        values: dict[str, Any] = {}
        for name in ("district", "type", "firm", "connection"):
            if getattr(self, name) is not None:
                clauses.append(f"{name} = %({name})s")
                values[name] = getattr(self, name)
        if self.status == "not_required":
            # Not in use, or (should the rule table lack it) a type that owes no periodic inspection.
            clauses.append("(equipment_status <> 'in_use'"
                           f" OR id NOT IN (SELECT equipment_id FROM ({_PERIODIC_SQL}) c))")
            values["check"] = PERIODIC_CHECK
        elif self.status is not None:
            clauses.append(f"id IN (SELECT equipment_id FROM ({_PERIODIC_SQL}) c WHERE c.status = %(status)s)")
            values |= {"check": PERIODIC_CHECK, "status": _TO_COMPLIANCE.get(self.status, self.status)}
        if self.q is not None:
            clauses.append("(code ILIKE %(q)s OR address ILIKE %(q)s)")
            values["q"] = params.like_pattern(self.q)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), values

    def args(self, **changes: Any) -> dict[str, Any]:
        """The query-string arguments that reproduce this filter, for links to other pages of it."""
        current = {"district": self.district, "type": self.type, "firm": self.firm, "status": self.status,
                   "connection": self.connection, "q": self.q, "offset": self.offset}
        if self.limit != params.DEFAULT_LIMIT:
            current["limit"] = self.limit
        current.update(changes)
        return {k: v for k, v in current.items() if v not in (None, "", 0)}


def _state_params() -> dict[str, Any]:
    config = current_app.config["SEMON"]
    offline_after = dt.timedelta(
        seconds=config.heartbeat_interval_s * config.offline_after_missed_heartbeats)
    # as_of is the database's today, as /compliance and the compliance job count it.
    today = fetch_one("SELECT current_date AS today")
    return {"offline_after": offline_after, "as_of": today["today"] if today else dt.date.today()}


def _set_inspection(row: dict[str, Any], status: compliance.CheckStatus | None) -> None:
    """The periodic-inspection fields of a row from compliance's status of that check (None: owes none)."""
    if status is None:  # not in use: compliance leaves it out
        row.update(inspection_status="not_required", next_inspection_due=None,
                   inspection_on_record=row["periodic_on_record"])
    else:
        row.update(inspection_status=_FROM_COMPLIANCE.get(status.status, status.status),
                   next_inspection_due=status.due_on, inspection_on_record=status.last_on is not None)


def _add_inspection(rows: list[dict[str, Any]], as_of: dt.date) -> None:
    """Add the periodic-inspection fields to the rows: the compliance status of that check for these only."""
    ids = [r["id"] for r in rows if r["equipment_status"] == "in_use"]
    found = {s.equipment_id: s for s in compliance.check_statuses(connection(), as_of, PERIODIC_CHECK,
                                                                   equipment_ids=ids)} if ids else {}
    for row in rows:
        _set_inspection(row, found.get(row["id"]))


def list_equipment(flt: EquipmentFilter) -> tuple[int, list[dict[str, Any]]]:
    """(total matching, the requested page of rows) sorted by code."""
    where, values = flt.where()
    values |= _state_params()
    total = fetch_one("SELECT count(*) AS n FROM (" + _EQUIPMENT_SQL + where + ") matching", values)
    rows = fetch_all(_EQUIPMENT_SQL + where + " ORDER BY code LIMIT %(limit)s OFFSET %(offset)s",
                     values | {"limit": flt.limit, "offset": flt.offset})
    _add_inspection(rows, values["as_of"])
    return (total["n"] if total else 0), rows


def get_equipment(code: str) -> dict[str, Any] | None:
    """One equipment with its derived states, the compliance status of every check it owes, inspections,
    maintenance and alerts; None if unknown."""
    state = _state_params()
    row = fetch_one(_EQUIPMENT_SQL + " WHERE code = %(code)s", state | {"code": code})
    if row is None:
        return None
    statuses = compliance.compliance_statuses(connection(), state["as_of"], equipment_ids=[row["id"]])
    row["checks"] = [{"check": s.check, "last_on": s.last_on, "due_on": s.due_on, "status": s.status}
                     for s in statuses]
    _set_inspection(row, next((s for s in statuses if s.check == PERIODIC_CHECK), None))
    ident = {"id": row["id"]}
    row["inspections"] = fetch_all(_INSPECTIONS_SQL, ident)
    row["maintenance"] = fetch_all(_MAINTENANCE_SQL, ident | {"limit": RECENT_MAINTENANCE})
    # Open alerts are few by construction (one per kind), so the limit only bounds the resolved ones.
    row["open_alert_list"] = fetch_all(_ALERTS_SQL, ident | {"open": True, "limit": 1000})
    row["recent_alerts"] = fetch_all(_ALERTS_SQL, ident | {"open": False, "limit": RECENT_ALERTS})
    return row


def _choices() -> dict[str, list[str]]:
    return {
        "districts": [r["name"] for r in fetch_all("SELECT name FROM districts ORDER BY name")],
        "firms": [r["name"] for r in fetch_all("SELECT name FROM maintenance_firms ORDER BY name")],
    }


def _list_item(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in LIST_FIELDS}


def _detail_item(row: dict[str, Any]) -> dict[str, Any]:
    item = {name: row[name] for name in DETAIL_FIELDS}
    item["state"] = {"connection": row["connection"], "last_seen": row["last_seen"],
                     "offline_since": row["offline_since"], "last_values": row["last_values"]}
    item["checks"] = row["checks"]
    item["inspections"] = row["inspections"]
    item["maintenance"] = row["maintenance"]
    item["alerts"] = {"open": row["open_alert_list"], "recent": row["recent_alerts"]}
    return item


@bp.get("/")
@bp.get("/equipment")
def index() -> str:
    """The equipment list page."""
    flt = EquipmentFilter.from_args(request.args)
    total, rows = list_equipment(flt)
    prev_url = next_url = None
    if flt.offset > 0:
        prev_url = url_for("equipment.index", **flt.args(offset=max(flt.offset - flt.limit, 0)))
    if flt.offset + len(rows) < total:
        next_url = url_for("equipment.index", **flt.args(offset=flt.offset + flt.limit))
    return render_template("equipment_list.html", rows=rows, total=total, flt=flt,
                           prev_url=prev_url, next_url=next_url, types=EQUIPMENT_TYPES,
                           inspection_statuses=INSPECTION_STATUSES, connection_states=CONNECTION_STATES,
                           **_choices())


@bp.get("/equipment/<code>")
def detail(code: str) -> str:
    """One equipment's page."""
    row = get_equipment(code)
    if row is None:
        abort(404, description=f"no equipment with code {code!r}")
    return render_template("equipment_detail.html", e=row)


@bp.get("/api/equipment")
def api_list() -> Response:
    """The equipment list as JSON: {"total", "limit", "offset", "items"}."""
    flt = EquipmentFilter.from_args(request.args)
    total, rows = list_equipment(flt)
    return jsonify({"total": total, "limit": flt.limit, "offset": flt.offset,
                    "items": [_list_item(r) for r in rows]})


@bp.get("/api/equipment/<code>")
def api_detail(code: str) -> Response:
    """One equipment as JSON."""
    row = get_equipment(code)
    if row is None:
        abort(404, description=f"no equipment with code {code!r}")
    return jsonify(_detail_item(row))
