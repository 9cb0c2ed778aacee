"""The equipment register: the list with inspection and online status (a page, JSON and CSV), one equipment's
page, and recording a maintenance visit or an inspection result for it (a form of the page and the API), validated
and stored as the records CSV import does (semon/registry/, docs/registry-csv.md)."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from flask import Blueprint, Response, abort, current_app, flash, jsonify, redirect, render_template, request, url_for

from models import compliance, presence
from semon import clock
from semon.audit import record
from semon.registry.fields import CHECKS, RECORD_FIELDS, record_problems, validate_cells
from semon.registry.importer import Row, record_registry_problem, upsert_records
from semon.scope import Scope, equipment_condition
from semon.vocabulary import CONNECTION_STATES, EQUIPMENT_TYPES, INSPECTION_RESULTS, INSPECTION_STATUSES
from web import csvout
from web.access import actor, current_scope, current_user
from web.db import connection, fetch_all, fetch_one
from web.listing import Filter, Listing, Page, by_equipment, district_and_firm_choices, search
from web.params import accepts
from web.registry import Invalid, _body, _invalid

bp = Blueprint("equipment", __name__)
# A record's bad fields answer as the registry API's do: the message, the field and every problem.
bp.errorhandler(Invalid)(_invalid)

# The inspection status is compliance's status of this check (models/compliance.py), so that the pages agree
# with /compliance and the overdue alerts; its never_recorded reads no_record here (docs/compliance.md).
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
# (_add_inspection). Online or not is models/presence.py's rule; stale is a state, so offline_since is given,
# not values. district_id, firm_id and use_unit_id are what a scope narrows on.
_EQUIPMENT_SQL = f"""
SELECT * FROM (
    SELECT e.id, e.code, e.type, e.district_id, e.firm_id, e.use_unit_id, d.name AS district, e.address,
           f.name AS firm,
           e.status AS equipment_status, e.use_unit, e.install_date, e.rated_speed_mps, e.rated_load_kg,
           e.floors, e.rated_pressure_mpa, e.rated_capacity_tph,
           f.phone AS firm_phone, f.email AS firm_email,
           EXISTS (SELECT FROM inspections i WHERE i.equipment_id = e.id AND i.kind = 'periodic_inspection')
               AS periodic_on_record,
           {presence.connection_sql("s")},
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
SELECT kind, performed_on, result, organisation, report_no
  FROM inspections WHERE equipment_id = %(id)s
 ORDER BY performed_on DESC, kind
"""

_MAINTENANCE_SQL = """
SELECT m.kind, m.performed_on, f.name AS firm, m.notes
  FROM maintenance_records m LEFT JOIN maintenance_firms f ON f.id = m.firm_id
 WHERE m.equipment_id = %(id)s
 ORDER BY m.performed_on DESC, m.kind
 LIMIT %(limit)s
"""

_ALERTS_SQL = """
SELECT a.id, a.kind, fc.description AS kind_description, fc.name_zh AS kind_name_zh, a.source, a.sources,
       a.severity, a.state, a.count,
       a.first_seen, a.last_seen, a.acknowledged_at, a.on_site_at, a.resolved_at, a.message
  FROM alerts a LEFT JOIN fault_codes fc ON fc.name = a.kind
 WHERE a.equipment_id = %(id)s AND (a.state <> 'resolved') = %(open)s
 ORDER BY a.last_seen DESC, a.id DESC
 LIMIT %(limit)s
"""


def _inspection_condition(status: str) -> tuple[str, dict[str, Any]]:
    """The list's inspection-status filter: compliance's status of the periodic inspection (as of %(as_of)s)."""
    if status == "not_required":
        # Not in use, or (should the rule table lack it) a type that owes no periodic inspection.
        return (f"(equipment_status <> 'in_use' OR id NOT IN (SELECT equipment_id FROM ({_PERIODIC_SQL}) c))",
                {"check": compliance.PERIODIC_INSPECTION})
    return (f"id IN (SELECT equipment_id FROM ({_PERIODIC_SQL}) c WHERE c.status = %(status)s)",
            {"check": compliance.PERIODIC_INSPECTION, "status": _TO_COMPLIANCE.get(status, status)})


EQUIPMENT = Listing(
    _EQUIPMENT_SQL,
    (Filter("district", named="district"), Filter("type", choices=EQUIPMENT_TYPES), Filter("firm", named="firm"),
     Filter("status", choices=INSPECTION_STATUSES, condition=_inspection_condition),
     Filter("connection", choices=CONNECTION_STATES), search("q", "code", "address")),
    order="code", narrow=by_equipment("listed"))


def _state_params() -> dict[str, Any]:
    # as_of is the database's today, as /compliance and the compliance job count it.
    return {"offline_after": presence.offline_after(current_app.config["SEMON"]), "as_of": clock.today(connection())}


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
    found = {s.equipment_id: s for s in compliance.check_statuses(connection(), as_of, compliance.PERIODIC_INSPECTION,
                                                                   equipment_ids=ids)} if ids else {}
    for row in rows:
        _set_inspection(row, found.get(row["id"]))


def get_equipment(code: str, scope: Scope) -> dict[str, Any] | None:
    """One equipment with its derived states, the compliance status of every check it owes, inspections,
    maintenance and alerts; None if unknown or outside `scope`."""
    state = _state_params()
    narrow, scoped = equipment_condition(scope, "listed")
    row = fetch_one(_EQUIPMENT_SQL + " WHERE code = %(code)s" + narrow, state | scoped | {"code": code})
    if row is None:
        return None
    statuses = compliance.compliance_statuses(connection(), state["as_of"], equipment_ids=[row["id"]])
    row["checks"] = [{"check": s.check, "last_on": s.last_on, "due_on": s.due_on, "status": s.status}
                     for s in statuses]
    _set_inspection(row, next((s for s in statuses if s.check == compliance.PERIODIC_INSPECTION), None))
    ident = {"id": row["id"]}
    row["inspections"] = fetch_all(_INSPECTIONS_SQL, ident)
    row["maintenance"] = fetch_all(_MAINTENANCE_SQL, ident | {"limit": RECENT_MAINTENANCE})
    # Open alerts are few by construction (one per kind), so the limit only bounds the resolved ones.
    row["open_alert_list"] = fetch_all(_ALERTS_SQL, ident | {"open": True, "limit": 1000})
    row["recent_alerts"] = fetch_all(_ALERTS_SQL, ident | {"open": False, "limit": RECENT_ALERTS})
    return row


def _visible_equipment(code: str) -> dict[str, Any]:
    row = get_equipment(code, current_scope())
    if row is None:  # outside the scope reads the same as unknown: its existence is not for this user
        abort(404, description=f"no equipment with code {code!r}")
    return row


def _list_page(paged: bool = True) -> Page:
    state = _state_params()
    page = EQUIPMENT.fetch(EQUIPMENT.parse(request.args, paged), current_scope(), state)
    _add_inspection(page.rows, state["as_of"])
    return page


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
@accepts(*EQUIPMENT.parameters)
def index() -> str:
    """The equipment list page."""
    page = _list_page()
    return render_template("equipment_list.html", types=EQUIPMENT_TYPES, inspection_statuses=INSPECTION_STATUSES,
                           connection_states=CONNECTION_STATES, **page.template_args("equipment.index"),
                           csv_url=url_for("equipment.api_csv", **page.query.filters()),
                           **district_and_firm_choices(current_scope()))


@bp.get("/equipment/<code>")
@accepts()
def detail(code: str) -> str:
    """One equipment's page."""
    return render_template("equipment_detail.html", e=_visible_equipment(code), record_form={},
                           **_record_choices())


@bp.get("/api/equipment")
@accepts(*EQUIPMENT.parameters)
def api_list() -> Response:
    """The equipment list as JSON: {"total", "limit", "offset", "items"}."""
    page = _list_page()
    return jsonify(page.body([_list_item(r) for r in page.rows]))


@bp.get("/api/equipment.csv")
@accepts(*EQUIPMENT.filter_parameters)
def api_csv() -> Response:
    """The whole equipment list as CSV: the fields of /api/equipment's items, with its filters."""
    page = _list_page(paged=False)
    return csvout.response(LIST_FIELDS, page.rows, f"equipment-{clock.today(connection()).isoformat()}.csv")


@bp.get("/api/equipment/<code>")
@accepts()
def api_detail(code: str) -> Response:
    """One equipment as JSON."""
    return jsonify(_detail_item(_visible_equipment(code)))


# --- recording a maintenance visit or an inspection result -------------------------------------------------------

# The records CSV's fields but the equipment's code, which is the page's (docs/registry-csv.md).
RECORD_ENTRY_FIELDS = {name: spec for name, spec in RECORD_FIELDS.items() if name != "code"}


def _record_values(equipment: dict[str, Any], cells: dict[str, str]) -> dict[str, Any]:
    """The record's values, validated as a row of the records CSV is; Invalid names every problem."""
    problems: list[tuple[str, str]] = []
    today = clock.today(connection())
    cells = {name: value.strip() for name, value in cells.items()} | {"code": equipment["code"]}
    user = current_user()
    if cells.get("check") == "maintenance" and not cells.get("organisation") and user is not None and user.firm:
        cells["organisation"] = user.firm  # a firm's own visit: the visit's firm is the one recording it
    values = validate_cells(RECORD_FIELDS, cells, lambda f, r: problems.append((f, r)),
                            rules=functools.partial(record_problems, today=today))
    if values is not None:
        found = record_registry_problem(values, equipment)
        if found is not None:
            problems.append(found)
    if problems or values is None:
        raise Invalid(problems)
    return values


def _add_record(code: str, cells: dict[str, str]) -> tuple[dict[str, Any], str]:
    """Validate and store one record of the visible equipment `code`, with its audit entry; (the record's values,
    'new' or 'updated')."""
    equipment = _visible_equipment(code)
    values = _record_values(equipment, cells)
    conn = connection()
    with conn.transaction():
        inserted, _ = upsert_records(conn, [Row(1, values)], {code: equipment["id"]})
        outcome = "new" if inserted else "updated"
        check = values["check"]
        record(conn, actor(), "records.add", f"{check} of equipment {code} on {values['date']}", None,
               {name: values.get(name) for name in RECORD_FIELDS} | {"outcome": outcome})
    return values, outcome


def _form_cells() -> dict[str, str]:
    problems = [(name, "contains a NUL character") for name, value in request.form.items() if "\x00" in value]
    if problems:
        raise Invalid(problems)
    return {name: request.form.get(name, "") for name in RECORD_ENTRY_FIELDS}


@bp.post("/equipment/<code>/records")
@accepts()
def record_form(code: str) -> Response | tuple[str, int]:
    """Record a maintenance visit or an inspection result from the equipment's page."""
    try:
        values, outcome = _add_record(code, _form_cells())
    except Invalid as exc:
        errors = [f"{field}: {reason}" for field, reason in exc.problems]
        return render_template("equipment_detail.html", e=_visible_equipment(code), record_errors=errors,
                               record_form=request.form, **_record_choices()), 400
    flash(f"已记录 Recorded ({outcome}): {values['check']} on {values['date']}")
    return redirect(url_for("equipment.detail", code=code) + "#records")


@bp.post("/api/equipment/<code>/records")
@accepts()
def api_record(code: str) -> tuple[Response, int]:
    """Record a maintenance visit or an inspection result: the records CSV's fields but code, as JSON."""
    values, outcome = _add_record(code, _body(RECORD_ENTRY_FIELDS))
    return jsonify({name: values.get(name) for name in RECORD_ENTRY_FIELDS} | {"code": code, "outcome": outcome}), \
        201 if outcome == "new" else 200


def _record_choices() -> dict[str, Any]:
    return {"record_checks": tuple(CHECKS), "record_results": INSPECTION_RESULTS}
