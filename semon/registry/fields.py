"""The registry's fields: how each CSV column (and JSON API field, web/registry.py) is parsed, where it is stored,
and the rules between fields of one row. docs/registry-csv.md describes every column."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from models.compliance import RULE_TABLE
from semon.vocabulary import CODE_PATTERN, EQUIPMENT_STATUSES, EQUIPMENT_TYPES, INSPECTION_RESULTS

# Free-text cells longer than this are a mistake (a shifted column, a pasted document), not a name.
MAX_TEXT = 200
_INT_MAX = 2**31 - 1  # the columns are PostgreSQL integers


# --- cell parsers: text to value, or ValueError with the reason ---------------------------------------------------

def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if not math.isfinite(value):
            raise ValueError(f"{text!r} is not a finite number")
        if value <= 0:
            raise ValueError(f"{text!r} must be greater than 0")
        if kind is int and value > _INT_MAX:
            raise ValueError(f"{text!r} is too large (at most {_INT_MAX})")
        return value

    return parse


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text

    return parse


def _code(text: str) -> str:
    if not CODE_PATTERN.match(text):
        raise ValueError(f"{text!r} is not a registry code ([A-Za-z0-9_-], at most 64)")
    return text


def _text(text: str) -> str:
    if len(text) > MAX_TEXT:
        raise ValueError(f"is longer than {MAX_TEXT} characters")
    if "\x00" in text:  # PostgreSQL text cannot hold it: refuse it here, with the cell named
        raise ValueError("contains a NUL character")
    return text


def _pattern(regex: str, what: str) -> Callable[[str], str]:
    compiled = re.compile(regex)

    def parse(text: str) -> str:
        if not compiled.fullmatch(_text(text)):
            raise ValueError(f"{text!r} is not {what}")
        return text

    return parse


def _grade(text: str) -> int:
    if text not in ("1", "2", "3", "4", "5"):
        raise ValueError(f"{text!r} is not a safety grade (1 to 5)")
    return int(text)


# 是/否 as Chinese spreadsheets write them.
_BOOLEANS = {"true": True, "yes": True, "1": True, "是": True, "false": False, "no": False, "0": False, "否": False}


def _boolean(text: str) -> bool:
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise ValueError(f"{text!r} is not true or false (or yes/no, 是/否, 1/0)") from None


_phone = _pattern(r"\+?[0-9][0-9 ()/,#*-]{2,39}", "a phone number (digits, spaces, + ( ) - / , # *)")
_email = _pattern(r"[^@\s]+@[^@\s]+\.[^@\s]+", "an e-mail address")


@dataclass(frozen=True)
class ColumnSpec:
    """One CSV column / JSON field: how its text is parsed, the table column it is stored in (None when it is
    not stored as is), whether it is required, and the value an empty cell stands for."""

    parse: Callable[[str], Any] = _text
    column: str | None = ""
    required: bool = False
    empty: Any = ""

    def db_column(self, name: str) -> str | None:
        return name if self.column == "" else self.column


_DATE = ColumnSpec(_date, empty=None)


# --- equipment ----------------------------------------------------------------------------------------------------

# The subtypes of each type (docs/registry-csv.md); the database checks the same pairs.
SUBTYPES: dict[str, tuple[str, ...]] = {
    "elevator": ("traction", "hydraulic"), "escalator": ("escalator", "moving_walk"),
    "boiler": ("steam", "hot_water"), "pressure_vessel": ("pressure_vessel",)}
ALL_SUBTYPES = tuple(s for subtypes in SUBTYPES.values() for s in subtypes)

# In CSV column order. New columns go at the end and are optional, so that files written before them still import.
EQUIPMENT_FIELDS: dict[str, ColumnSpec] = {
    "code": ColumnSpec(_code, required=True), "type": ColumnSpec(_choice(EQUIPMENT_TYPES), required=True),
    "district": ColumnSpec(column=None, required=True), "address": ColumnSpec(),
    "use_unit": ColumnSpec(column=None), "maintenance_firm": ColumnSpec(column=None),
    "maintenance_firm_phone": ColumnSpec(_phone, column=None), "install_date": _DATE,
    # An empty status means in use, as in the first version of the format.
    "status": ColumnSpec(_choice(EQUIPMENT_STATUSES), empty="in_use"),
    "rated_speed_mps": ColumnSpec(_positive(float), empty=None),
    "rated_load_kg": ColumnSpec(_positive(int), empty=None), "floors": ColumnSpec(_positive(int), empty=None),
    "rated_pressure_mpa": ColumnSpec(_positive(float), empty=None),
    "rated_capacity_tph": ColumnSpec(_positive(float), empty=None),
    # Stored as a periodic_inspection record, not as an equipment column.
    "last_inspection_on": ColumnSpec(_date, column=None, empty=None),
    "commissioning_date": _DATE,
    # Added later: files without the columns from here on still import.
    "subtype": ColumnSpec(_choice(ALL_SUBTYPES), empty=None),
    "manufacturer": ColumnSpec(), "model": ColumnSpec(), "monitor_vendor": ColumnSpec(),
    "monitor_model": ColumnSpec(),
    # The compliance rules' inputs (docs/compliance.md).
    "safety_grade": ColumnSpec(_grade, empty=None), "on_demand_maintenance": ColumnSpec(_boolean, empty=False),
    "maintenance_cycle_days": ColumnSpec(_positive(int), empty=None), "governor_install_date": _DATE,
}
EQUIPMENT_COLUMNS = tuple(EQUIPMENT_FIELDS)
# The first version's columns, which the simulators write.
COLUMNS = EQUIPMENT_COLUMNS[:EQUIPMENT_COLUMNS.index("commissioning_date") + 1]

# Fields that only some types of equipment have (docs/registry-csv.md), in column order: the one table of them.
_ONLY_FOR = {"rated_speed_mps": ("elevator", "escalator"), "rated_load_kg": ("elevator",), "floors": ("elevator",),
             "rated_pressure_mpa": ("boiler", "pressure_vessel"), "rated_capacity_tph": ("boiler",),
             "safety_grade": ("pressure_vessel",), "on_demand_maintenance": ("elevator", "escalator"),
             "maintenance_cycle_days": ("elevator", "escalator"), "governor_install_date": ("elevator",)}
# Dates of what has happened: one after today is a typing mistake.
_PAST_DATES = ("install_date", "commissioning_date", "governor_install_date", "last_inspection_on")


def type_problems(values: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, reason) for each field of `values` that does not fit values['type'] (none without a type)."""
    if "type" not in values:
        return []
    found = []
    reason = subtype_problem(values["type"], values.get("subtype"))
    if reason:
        found.append(("subtype", reason))
    for field, types in _ONLY_FOR.items():
        if values.get(field) and values["type"] not in types:
            found.append((field, f"applies only to {', '.join(types)}, not to {values['type']}"))
    return found


def equipment_problems(values: dict[str, Any], today: date | None = None) -> list[tuple[str, str]]:
    """(field, reason) for each field of an equipment that does not fit its type or its other fields, or (when
    `today` is given) is a date after today."""
    found = type_problems(values)
    installed, commissioned = values.get("install_date"), values.get("commissioning_date")
    # Put into service (投入使用) after the acceptance inspection of the installed equipment, never before.
    if installed and commissioned and commissioned < installed:
        found.append(("commissioning_date", f"{commissioned} is before the install_date {installed}"))
    if today is not None:
        found += [(field, f"{values[field]} is in the future") for field in _PAST_DATES
                  if values.get(field) and values[field] > today]
    return found


def subtype_problem(equipment_type: str, subtype: str | None) -> str | None:
    """Why `subtype` cannot go with `equipment_type`, or None if it can (or is not given)."""
    allowed = SUBTYPES[equipment_type]
    if subtype is None or subtype in allowed:
        return None
    return f"{subtype!r} is not a subtype of {equipment_type} (one of {', '.join(allowed)})"


def equipment_columns(values: dict[str, Any], refs: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Equipment field values (district, use unit and firm names resolved to ids by `refs`) as equipment table
    columns."""
    columns = {spec.db_column(name): values[name] for name, spec in EQUIPMENT_FIELDS.items()
               if name in values and spec.db_column(name)}
    if "district" in values:
        columns["district_id"] = refs["districts"][values["district"]]
    if "use_unit" in values:
        columns["use_unit"] = values["use_unit"]
        columns["use_unit_id"] = refs["use_units"].get(values["use_unit"])
    if "maintenance_firm" in values:
        columns["firm_id"] = refs["maintenance_firms"].get(values["maintenance_firm"])
    return columns


# --- districts, maintenance firms, use units -----------------------------------------------------------------------

@dataclass(frozen=True)
class Entity:
    """A registry entity other than equipment: its table, key (name) and fields, in CSV column order."""

    name: str
    table: str
    fields: dict[str, ColumnSpec]
    key: str = "name"

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.fields)


FIRMS = Entity("firms", "maintenance_firms", {
    "name": ColumnSpec(required=True), "duty_phone": ColumnSpec(_phone, column="phone"),
    "email": ColumnSpec(_email), "contact_person": ColumnSpec(), "contact_phone": ColumnSpec(_phone),
    "address": ColumnSpec(), "licence_no": ColumnSpec()})
DISTRICTS = Entity("districts", "districts", {
    "name": ColumnSpec(required=True),
    "admin_code": ColumnSpec(_pattern(r"[0-9]{6}", "a six-digit division code")),
    "authority": ColumnSpec(), "phone": ColumnSpec(_phone), "email": ColumnSpec(_email)})
USE_UNITS = Entity("use_units", "use_units", {
    "name": ColumnSpec(required=True), "address": ColumnSpec(), "contact_person": ColumnSpec(),
    "contact_phone": ColumnSpec(_phone),
    "credit_code": ColumnSpec(_pattern(r"[0-9A-Z]{18}", "a unified social credit code (18 digits or capitals)")),
    "email": ColumnSpec(_email)})
ENTITIES = {e.name: e for e in (FIRMS, DISTRICTS, USE_UNITS)}


def entity_columns(entity: Entity, values: dict[str, Any]) -> dict[str, Any]:
    """An entity's field values as its table's columns."""
    return {spec.db_column(name): values[name] for name, spec in entity.fields.items() if name in values}


# --- inspection and maintenance records ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """A kind of record: the table it goes to and the equipment types that owe it."""

    table: str
    applies_to: tuple[str, ...]


# maintenance_records.kind of the TSG T5002 half-monthly visit (the records CSV calls it `maintenance`).
MAINTENANCE_KIND = "routine"
# The records CSV's documented order of checks (docs/registry-csv.md).
_CHECK_ORDER = ("periodic_inspection", "internal_inspection", "governor_calibration", "rescue_drill",
                "water_quality_test", "safety_valve_calibration", "pressure_gauge_verification", "maintenance")


def _checks() -> dict[str, Check]:
    # Which types owe which check is the compliance rule table's (models/compliance.py), not a second copy.
    owed: dict[str, list[str]] = {}
    for types, check, _ in RULE_TABLE:
        owed.setdefault(check, []).extend(t for t in types if t not in owed.get(check, []))
    # The documented order, then any check the rule table gains later.
    names = [c for c in _CHECK_ORDER if c in owed] + [c for c in owed if c not in _CHECK_ORDER]
    return {check: Check("maintenance_records" if check == "maintenance" else "inspections", tuple(owed[check]))
            for check in names}


CHECKS: dict[str, Check] = _checks()
# Defects are one cell; several are separated by this.
DEFECT_SEPARATOR = "; "
# Results that must say what was wrong, or nobody can follow them up.
_DEFECTS_REQUIRED = ("pass_after_rectification", "fail")

# In CSV column order; code and check are stored as the equipment's id and the record's kind and table.
RECORD_FIELDS: dict[str, ColumnSpec] = {
    "code": ColumnSpec(_code, column=None, required=True),
    "check": ColumnSpec(_choice(tuple(CHECKS)), column=None, required=True),
    "date": ColumnSpec(_date, column="performed_on", required=True),
    "result": ColumnSpec(_choice(INSPECTION_RESULTS), required=True),
    "organisation": ColumnSpec(), "person": ColumnSpec(), "report_number": ColumnSpec(column="report_no"),
    "defects": ColumnSpec(),
    # Added after the first version: the rectification deadline of a failed record.
    "rectify_by": _DATE,
}
RECORD_COLUMNS = tuple(RECORD_FIELDS)


def record_problems(values: dict[str, Any], today: date) -> list[tuple[str, str]]:
    """(field, reason) for each field of a record that does not fit the others or `today`."""
    found = []
    performed_on, result, rectify_by = values.get("date"), values.get("result"), values.get("rectify_by")
    if performed_on is not None and performed_on > today:
        found.append(("date", f"{performed_on} is in the future"))
    if result in _DEFECTS_REQUIRED and not values.get("defects"):
        found.append(("defects", f"is required when the result is {result}"))
    if rectify_by is not None and result is not None and result != "fail":
        found.append(("rectify_by", f"applies only when the result is fail, not {result}"))
    elif rectify_by is not None and performed_on is not None and rectify_by < performed_on:
        found.append(("rectify_by", f"{rectify_by} is before the record's date {performed_on}"))
    return found


# --- validation ---------------------------------------------------------------------------------------------------

Rules = Callable[[dict[str, Any]], list[tuple[str, str]]]


def parse_cells(fields: dict[str, ColumnSpec], cells: dict[str, str], problem: Callable[[str, str], None],
                partial: bool = False, rules: Rules = equipment_problems) -> dict[str, Any]:
    """Parse the given cells (text) by their fields, then check `rules` between the parsed values (by default
    the equipment's, without the dates' check against today); each problem goes to `problem` (field, reason).
    Required fields must be given unless `partial` (an update of some fields). Returns the values that parsed."""
    values: dict[str, Any] = {}
    for name, text in cells.items():
        spec = fields[name]
        if not text:
            if spec.required:
                problem(name, "is required")
            else:
                values[name] = spec.empty
            continue
        try:
            values[name] = spec.parse(text)
        except ValueError as exc:
            problem(name, str(exc))
    if not partial:
        for name, spec in fields.items():
            if spec.required and name not in cells:
                problem(name, "is required")
    for field, reason in rules(values):
        problem(field, reason)
    return values


def validate_cells(fields: dict[str, ColumnSpec], cells: dict[str, str], problem: Callable[[str, str], None],
                   partial: bool = False, rules: Rules = equipment_problems) -> dict[str, Any] | None:
    """`parse_cells`, or None if any cell or rule was bad."""
    bad = []

    def noted(field: str, reason: str) -> None:
        bad.append(field)
        problem(field, reason)

    values = parse_cells(fields, cells, noted, partial, rules)
    return None if bad else values
