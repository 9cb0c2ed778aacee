"""The registry's JSON API: list (with filters), one item, create and update for equipment, maintenance firms,
districts and use units (docs/registry-csv.md has the fields). Reads show what the request's scope lets through
(docs/web.md); writes are an administrator's (web/access.py) and each is in the audit log (docs/access.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from flask import Blueprint, Response, abort, jsonify, request, url_for

from semon import clock
from semon.audit import record
from semon.registry.fields import (
    ALL_SUBTYPES,
    ENTITIES,
    EQUIPMENT_FIELDS,
    ColumnSpec,
    Entity,
    entity_columns,
    equipment_columns,
    equipment_problems,
    validate_cells,
)
from semon.registry.upsert import update
from semon.scope import Scope, equipment_condition, related_condition
from semon.vocabulary import EQUIPMENT_STATUSES, EQUIPMENT_TYPES
from web.access import actor, current_scope
from web.db import connection, fetch_one
from web.jsonapi import API_PREFIX
from web.listing import Filter, Listing, by_equipment, by_related, search
from web.params import PAGE, accepts

bp = Blueprint("registry", __name__, url_prefix=API_PREFIX + "/registry")

# The CSV's conveniences (the firm's phone beside the equipment, the last inspection as a date) are not part of
# an equipment item: firms have their own endpoint and inspections are records.
API_EQUIPMENT_FIELDS = {n: f for n, f in EQUIPMENT_FIELDS.items()
                        if n not in ("maintenance_firm_phone", "last_inspection_on")}
# URL segment of each entity.
ENTITY_PATHS = {"firms": "firms", "districts": "districts", "use-units": "use_units"}
# Derived fields of the items: a body may carry them back (GET, edit, PUT) and they are ignored.
READ_ONLY = ("monitor_fitted", "updated_at", "equipment_count")

_EQUIPMENT_SQL = """
SELECT e.code, e.type, e.subtype, d.name AS district, e.address, COALESCE(u.name, NULLIF(e.use_unit, '')) AS use_unit,
       f.name AS maintenance_firm, e.install_date, e.commissioning_date, e.status, e.rated_speed_mps,
       e.rated_load_kg, e.floors, e.rated_pressure_mpa, e.rated_capacity_tph, e.manufacturer, e.model,
       e.monitor_vendor, e.monitor_model, e.monitor_vendor <> '' AS monitor_fitted, e.safety_grade,
       e.on_demand_maintenance, e.maintenance_cycle_days, e.governor_install_date, e.updated_at
  FROM equipment e
  JOIN districts d ON d.id = e.district_id
  LEFT JOIN use_units u ON u.id = e.use_unit_id
  LEFT JOIN maintenance_firms f ON f.id = e.firm_id
"""
# How many equipment each entity has, by its column in equipment.
_REFERENCING_COLUMN = {"maintenance_firms": "firm_id", "districts": "district_id", "use_units": "use_unit_id"}


class Invalid(Exception):
    """A request body with bad fields: (field, reason) pairs, the first named in the message."""

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__(f"{problems[0][0]}: {problems[0][1]}")
        self.problems = problems


@bp.errorhandler(Invalid)
def _invalid(exc: Invalid) -> tuple[Response, int]:
    # The repo's error shape, plus the field(s) so that a form can mark them.
    body = {"error": {"status": 400, "message": str(exc), "field": exc.problems[0][0],
                      "problems": [{"field": f, "reason": r} for f, r in exc.problems]}}
    return jsonify(body), 400


def _body(fields: Mapping[str, ColumnSpec]) -> dict[str, str]:
    """The request's JSON object as CSV-like text cells; unknown fields and non-scalar values are rejected."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise Invalid([("body", "must be a JSON object")])
    problems: list[tuple[str, str]] = []
    cells: dict[str, str] = {}
    for name, value in data.items():
        if name in READ_ONLY:
            continue
        if name not in fields:
            problems.append((name, f"unknown field (expected: {', '.join(fields)})"))
        elif value is None:
            cells[name] = ""
        elif isinstance(value, str) and "\x00" in value:
            problems.append((name, "contains a NUL character"))  # PostgreSQL text cannot hold one
        elif isinstance(value, str):
            cells[name] = value.strip()
        elif isinstance(value, bool):
            cells[name] = "true" if value else "false"
        elif isinstance(value, int | float):
            cells[name] = str(value)
        else:
            problems.append((name, f"must be a string, a number or true/false, not {type(value).__name__}"))
    if problems:
        raise Invalid(problems)
    return cells


def _validate(fields: Mapping[str, ColumnSpec], cells: dict[str, str], partial: bool) -> dict[str, Any]:
    problems: list[tuple[str, str]] = []
    # The same rules as the CSV import's, dates after the users' today included (docs/registry-csv.md).
    today = clock.today(connection())
    values = validate_cells(dict(fields), cells, lambda f, r: problems.append((f, r)), partial=partial,
                            rules=lambda v: equipment_problems(v, today))
    if values is None:
        raise Invalid(problems)
    return values


def _write(key: str, fields: Mapping[str, ColumnSpec], current: dict[str, Any] | None) -> dict[str, Any]:
    """The validated values of a POST (current is None), PUT (every field; absent ones are emptied) or PATCH."""
    cells = _body(fields)
    if current is not None and key in cells and cells[key] != current[key]:
        raise Invalid([(key, f"cannot be changed (it is {current[key]!r})")])
    if current is not None:
        cells[key] = current[key]
    if request.method == "PUT":
        cells = {name: "" for name in fields} | cells
    return _validate(fields, cells, partial=request.method == "PATCH")


def _created(item: dict[str, Any], endpoint: str, **url_args: Any) -> tuple[Response, int, dict[str, str]]:
    return jsonify(item), 201, {"Location": url_for(endpoint, **url_args)}


# --- equipment ------------------------------------------------------------------------------------------------

def _equipment(code: str, scope: Scope | None = None) -> dict[str, Any] | None:
    """One equipment's registry entry, if it is within `scope` (None: any, for a write that just made it)."""
    narrow, scoped = equipment_condition(scope or Scope.everything(), "e")
    return fetch_one(_EQUIPMENT_SQL + " WHERE e.code = %(code)s" + narrow, {"code": code} | scoped)


def _monitor(value: str) -> tuple[str, dict[str, Any]]:
    return ("e.monitor_vendor <> ''" if value == "yes" else "e.monitor_vendor = ''"), {}


EQUIPMENT = Listing(
    _EQUIPMENT_SQL,
    (Filter("type", "e.type", EQUIPMENT_TYPES), Filter("subtype", "e.subtype", ALL_SUBTYPES),
     Filter("status", "e.status", EQUIPMENT_STATUSES), Filter("district", "d.name", named="district"),
     Filter("firm", "f.name", named="firm"),
     Filter("use_unit", "COALESCE(u.name, e.use_unit)"), Filter("monitor", choices=("yes", "no"), condition=_monitor),
     search("q", "e.code", "e.address")),
    order="e.code", narrow=by_equipment("e"))


@bp.get("/equipment")
@accepts(*EQUIPMENT.parameters)
def equipment_list() -> Response:
    """Equipment, filtered by type, subtype, district, firm, use_unit, status, monitor (yes/no) and q (text in
    the code or address): {"total", "limit", "offset", "items"}."""
    page = EQUIPMENT.fetch(EQUIPMENT.parse(request.args), current_scope())
    return jsonify(page.body(page.rows))


@bp.get("/equipment/<code>")
@accepts()
def equipment_item(code: str) -> Response:
    """One equipment's registry entry."""
    row = _equipment(code, current_scope())
    if row is None:
        abort(404, description=f"no equipment with code {code!r}")
    return jsonify(row)


@bp.post("/equipment")
@accepts()
def equipment_create() -> tuple[Response, int, dict[str, str]]:
    """Register an equipment; its district, use unit and firm must be registered already."""
    values = _write("code", API_EQUIPMENT_FIELDS, None)
    conn = connection()
    try:
        with conn.transaction():
            columns = equipment_columns(values, _references(values))
            # A plain INSERT: of two simultaneous creates, the second gets the 409 below instead of overwriting.
            names = list(columns)
            conn.execute(f"INSERT INTO equipment ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})",
                         [columns[n] for n in names])
            record(conn, actor(), "registry.create", f"equipment {values['code']}", None, _equipment(values["code"]))
    except psycopg.errors.UniqueViolation:
        abort(409, description=f"equipment {values['code']!r} already exists")
    return _created(_equipment(values["code"]) or {}, "registry.equipment_item", code=values["code"])


@bp.route("/equipment/<code>", methods=["PUT", "PATCH"])
@accepts()
def equipment_update(code: str) -> Response:
    """Change an equipment (PUT: every field, absent ones emptied; PATCH: the fields given)."""
    current = _equipment(code)
    if current is None:
        abort(404, description=f"no equipment with code {code!r}")
    values = _write("code", API_EQUIPMENT_FIELDS, current)
    # A PATCH of some fields must still leave them fitting the type and each other (a subtype of it, a grade for a
    # vessel, commissioning not before installation).
    problems = equipment_problems({**current, **values})
    if problems:
        raise Invalid(problems)
    conn = connection()
    with conn.transaction():
        update(conn, "equipment", "code", equipment_columns(values, _references(values)), stamp=True)
        record(conn, actor(), "registry.update", f"equipment {code}", current, _equipment(code))
    return jsonify(_equipment(code))


def _references(values: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Ids of the district, use unit and firm named; one not registered is a 400 on its field."""
    refs: dict[str, dict[str, int]] = {"districts": {}, "use_units": {}, "maintenance_firms": {}}
    problems = []
    for field, table, what in (("district", "districts", "district"), ("use_unit", "use_units", "use unit"),
                               ("maintenance_firm", "maintenance_firms", "maintenance firm")):
        name = values.get(field)
        if not name:
            continue
        row = fetch_one(f"SELECT id FROM {table} WHERE name = %(name)s", {"name": name})
        if row is None:
            problems.append((field, f"no {what} {name!r} is registered"))
        else:
            refs[table][name] = row["id"]
    if problems:
        raise Invalid(problems)
    return refs


# --- firms, districts, use units ------------------------------------------------------------------------------

def _entity(path: str) -> Entity:
    if path not in ENTITY_PATHS:
        abort(404, description=f"no registry list {path!r} (one of equipment, {', '.join(ENTITY_PATHS)})")
    return ENTITIES[ENTITY_PATHS[path]]


def _entity_select(entity: Entity, scope: Scope) -> tuple[str, dict[str, Any]]:
    """The entity's rows with equipment_count, the equipment of each that the scope lets through."""
    selected = ", ".join(f"t.{spec.db_column(name)} AS {name}" for name, spec in entity.fields.items())
    narrow, scoped = equipment_condition(scope, "e")
    return (f"SELECT {selected}, (SELECT count(*) FROM equipment e "
            f"WHERE e.{_REFERENCING_COLUMN[entity.table]} = t.id{narrow}) AS equipment_count FROM {entity.table} t"
            ), scoped


def _entity_row(entity: Entity, name: str, scope: Scope | None = None) -> dict[str, Any] | None:
    """One entry, if equipment within `scope` refers to it (None: any, for a write)."""
    scope = scope or Scope.everything()
    select, scoped = _entity_select(entity, scope)
    related, related_values = related_condition(scope, "t", _REFERENCING_COLUMN[entity.table])
    return fetch_one(select + " WHERE t.name = %(name)s" + related, {"name": name} | scoped | related_values)


# The entity lists' one filter: text in the name.
_NAME_SEARCH = search("q", "t.name")


@bp.get("/<kind>")
@accepts(_NAME_SEARCH.name, *PAGE)
def entity_list(kind: str) -> Response:
    """Firms, districts or use units, filtered by q (text in the name): {"total", "limit", "offset", "items"}."""
    entity = _entity(kind)
    scope = current_scope()
    select, scoped = _entity_select(entity, scope)
    listing = Listing(select, (_NAME_SEARCH,), order="t.name",
                      narrow=by_related("t", _REFERENCING_COLUMN[entity.table]))
    page = listing.fetch(listing.parse(request.args), scope, scoped)
    return jsonify(page.body(page.rows))


# A name may hold a slash ("Beta Lift / North"): the path converter takes the rest of the path as the name.
@bp.get("/<kind>/<path:name>")
@accepts()
def entity_item(kind: str, name: str) -> Response:
    """One firm, district or use unit."""
    entity = _entity(kind)
    row = _entity_row(entity, name, current_scope())
    if row is None:
        abort(404, description=f"no {kind} entry named {name!r}")
    return jsonify(row)


@bp.post("/<kind>")
@accepts()
def entity_create(kind: str) -> tuple[Response, int, dict[str, str]]:
    """Register a firm, district or use unit."""
    entity = _entity(kind)
    values = _write(entity.key, entity.fields, None)
    columns = entity_columns(entity, values)
    conn = connection()
    try:
        with conn.transaction():
            conn.execute(f"INSERT INTO {entity.table} ({', '.join(columns)}) "
                         f"VALUES ({', '.join(f'%({c})s' for c in columns)})", columns)
            record(conn, actor(), "registry.create", f"{kind} {values['name']}", None,
                   _entity_row(entity, values["name"]))
    except psycopg.errors.UniqueViolation:
        abort(409, description=f"{kind} entry {values['name']!r} already exists; PUT or PATCH it instead")
    return _created(_entity_row(entity, values["name"]) or {}, "registry.entity_item", kind=kind,
                    name=values["name"])


@bp.route("/<kind>/<path:name>", methods=["PUT", "PATCH"])
@accepts()
def entity_update(kind: str, name: str) -> Response:
    """Change a firm, district or use unit (PUT: every field, absent ones emptied; PATCH: the fields given)."""
    entity = _entity(kind)
    current = _entity_row(entity, name)
    if current is None:
        abort(404, description=f"no {kind} entry named {name!r}")
    values = _write(entity.key, entity.fields, current)
    conn = connection()
    with conn.transaction():
        update(conn, entity.table, entity.key, entity_columns(entity, values))
        record(conn, actor(), "registry.update", f"{kind} {name}", current, _entity_row(entity, name))
    return jsonify(_entity_row(entity, name))
