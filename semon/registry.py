"""The registry's CSV files (equipment, their inspection and maintenance records, firms, districts, use units):
imports validate every row first, then upsert all of them in one transaction; exports write the same format.
The field rules here also validate the JSON API's bodies (web/registry.py)."""

from __future__ import annotations

import calendar
import csv
import functools
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TextIO

from semon.config import Config
from semon.db import connect
from semon.vocabulary import CODE_PATTERN, EQUIPMENT_STATUSES, EQUIPMENT_TYPES, INSPECTION_RESULTS

# The first version's columns (the simulators write these). New columns go at the end and are optional, so
# that files written before them still import.
COLUMNS = ("code", "type", "district", "address", "use_unit", "maintenance_firm", "maintenance_firm_phone",
           "install_date", "status", "rated_speed_mps", "rated_load_kg", "floors", "rated_pressure_mpa",
           "rated_capacity_tph", "last_inspection_on", "commissioning_date")
REQUIRED = ("code", "type", "district")
# Added with use units as entities (0006); the simulators write COLUMNS, so these extend it rather than join it.
EQUIPMENT_COLUMNS = COLUMNS + ("subtype", "manufacturer", "model", "monitor_vendor", "monitor_model",
                               "safety_grade", "on_demand_maintenance", "maintenance_cycle_days",
                               "governor_install_date")
# The subtypes of each type (issue 5); the database checks the same pairs.
SUBTYPES: dict[str, tuple[str, ...]] = {
    "elevator": ("traction", "hydraulic"), "escalator": ("escalator", "moving_walk"),
    "boiler": ("steam", "hot_water"), "pressure_vessel": ("pressure_vessel",)}
ALL_SUBTYPES = tuple(s for subtypes in SUBTYPES.values() for s in subtypes)
# Free-text cells longer than this are a mistake (a shifted column, a pasted document), not a name.
MAX_TEXT = 200

RECORD_COLUMNS = ("code", "check", "date", "result", "organisation", "person", "report_number", "defects")
RECORD_REQUIRED = ("code", "check", "date", "result")
# Defects are one cell; several are separated by this.
DEFECT_SEPARATOR = "; "
# maintenance_records.kind of the TSG T5002 half-monthly visit (the records CSV calls it `maintenance`).
MAINTENANCE_KIND = "routine"
@dataclass(frozen=True)
class Check:
    """A kind of record: the table it goes to and the equipment types that owe it."""

    table: str
    applies_to: tuple[str, ...]


def _checks() -> dict[str, Check]:
    # Which types owe which check is the compliance rule table's (models/compliance.py), not a second copy.
    from models.compliance import RULE_TABLE

    owed: dict[str, list[str]] = {}
    for types, check, _ in RULE_TABLE:
        owed.setdefault(check, []).extend(t for t in types if t not in owed.get(check, []))
    order = ("periodic_inspection", "internal_inspection", "governor_calibration", "rescue_drill",
             "water_quality_test", "safety_valve_calibration", "pressure_gauge_verification", "maintenance")
    # The records CSV's documented order (docs/registry-csv.md), then any check the rule table gains later.
    names = [c for c in order if c in owed] + [c for c in owed if c not in order]
    return {check: Check("maintenance_records" if check == "maintenance" else "inspections", tuple(owed[check]))
            for check in names}


CHECKS: dict[str, Check] = _checks()


class RegistryError(Exception):
    """The file has bad rows; `problems` lists each as 'line N: column C: reason'."""

    def __init__(self, problems: list[str]):
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


@dataclass(frozen=True)
class EquipmentRow:
    """One valid row of the equipment CSV: the parsed value of each column the file has."""

    line: int
    values: dict[str, Any]


@dataclass(frozen=True)
class RecordRow:
    """One inspection, test or maintenance visit from the records CSV; `line` is where it was read."""

    line: int
    code: str
    check: str
    performed_on: date
    result: str
    organisation: str
    person: str
    report_no: str
    defects: str


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None


_INT_MAX = 2**31 - 1  # the columns are PostgreSQL integers


def _positive(kind: type) -> Any:
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


def rule_index(config: Mapping[str, Any] | None = None) -> dict[tuple[str, str], Any]:
    """The compliance rules with config's intervals (the defaults when None), by (equipment type, check)."""
    from models.compliance import rules_from_config

    return {(r.equipment_type, r.check_name): r for r in rules_from_config(config)}


def next_due(rules: Mapping[tuple[str, str], Any], check: str, equipment: Mapping[str, Any],
             performed_on: date) -> date:
    """When the next record of `check` falls due after one performed on `performed_on`: the compliance rules
    (`rule_index`; safety grade 3 and old governors included), as the compliance status computes it."""
    rule = rules[(equipment["type"], check)]
    if rule.days:
        return performed_on + timedelta(days=rule.days)
    months = rule.months
    if rule.grade3_months is not None and (equipment.get("safety_grade") or 0) >= 3:
        months = rule.grade3_months
    governor = equipment.get("governor_install_date") or equipment.get("install_date")
    if rule.old_months is not None and rule.old_after_years is not None and governor is not None \
            and add_months(governor, 12 * rule.old_after_years) < performed_on:
        months = rule.old_months
    return add_months(performed_on, months)


def _read_csv(path: Path, columns: tuple[str, ...], required: tuple[str, ...], problems: list[str],
              header_out: list[str] | None = None) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line, cells) for each non-blank row; header and shape problems go to `problems`. The file's own
    columns are put in `header_out`."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
        reader = csv.reader(handle)
        header = next(reader, None)
    except UnicodeDecodeError:
        raise RegistryError(["line 1: the file is not UTF-8 text"]) from None
    with handle:
        if header is None:
            raise RegistryError(["line 1: the file is empty; expected a header row"])
        header = [h.strip() for h in header]
        missing = [c for c in required if c not in header]
        unknown = [c for c in header if c not in columns]
        twice = sorted({c for c in header if header.count(c) > 1})
        if missing or unknown or twice:
            reasons = ([f"missing column {c!r}" for c in missing] + [f"unknown column {c!r}" for c in unknown]
                       + [f"column {c!r} given twice" for c in twice])
            raise RegistryError([f"line 1: {r} (expected: {','.join(columns)})" for r in reasons])
        if header_out is not None:
            header_out.extend(header)
        try:
            for record in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in record):
                    continue
                if len(record) != len(header):
                    problems.append(f"line {line}: expected {len(header)} columns, found {len(record)}")
                    continue
                yield line, {c: "" for c in columns} | {h: v.strip() for h, v in zip(header, record, strict=True)}
        except (UnicodeDecodeError, csv.Error) as exc:
            problems.append(f"line {reader.line_num}: unreadable CSV: {exc}")


def parse_registry_csv(path: Path) -> list[EquipmentRow]:
    """Read and validate the whole file; raises RegistryError listing every bad cell."""
    problems: list[str] = []
    rows: list[EquipmentRow] = []
    seen: dict[str, int] = {}
    header: list[str] = []
    for line, cells in _read_csv(path, EQUIPMENT_COLUMNS, REQUIRED, problems, header):
        values = validate_cells(EQUIPMENT_FIELDS, {c: cells[c] for c in header}, _line_problem(line, problems))
        if values is None:
            continue
        code = values["code"]
        if code in seen:
            problems.append(f"line {line}: column code: {code!r} already on line {seen[code]}")
            continue
        seen[code] = line
        rows.append(EquipmentRow(line, values))
    if problems:
        raise RegistryError(problems)
    return rows


def _line_problem(line: int, problems: list[str]) -> Callable[[str, str], None]:
    def problem(column: str, reason: str) -> None:
        problems.append(f"line {line}: column {column}: {reason}")

    return problem


def validate_cells(fields: dict[str, Field], cells: dict[str, str], problem: Callable[[str, str], None],
                    partial: bool = False) -> dict[str, Any] | None:
    """Parse the given cells (text) by their fields; each bad one goes to `problem`. Required fields must be
    given unless `partial` (an update of some fields)."""
    values: dict[str, Any] = {}
    bad = False
    for name, text in cells.items():
        spec = fields[name]
        if not text:
            if spec.required:
                problem(name, "is required")
                bad = True
            else:
                values[name] = spec.empty
            continue
        try:
            values[name] = spec.parse(text)
        except ValueError as exc:
            problem(name, str(exc))
            bad = True
    if not partial:
        for name, spec in fields.items():
            if spec.required and name not in cells:
                problem(name, "is required")
                bad = True
    if "type" in values:
        for field, reason in type_problems(values):
            problem(field, reason)
            bad = True
    return None if bad else values


# Fields that only some types of equipment have.
_ONLY_FOR = {"safety_grade": ("pressure_vessel",), "on_demand_maintenance": ("elevator", "escalator"),
             "maintenance_cycle_days": ("elevator", "escalator"), "governor_install_date": ("elevator",)}


def type_problems(values: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, reason) for each field of `values` that does not fit values['type']."""
    found = []
    reason = subtype_problem(values["type"], values.get("subtype"))
    if reason:
        found.append(("subtype", reason))
    for field, types in _ONLY_FOR.items():
        if values.get(field) and values["type"] not in types:
            found.append((field, f"applies only to {', '.join(types)}, not to {values['type']}"))
    return found


def subtype_problem(equipment_type: str, subtype: str | None) -> str | None:
    """Why `subtype` cannot go with `equipment_type`, or None if it can (or is not given)."""
    allowed = SUBTYPES[equipment_type]
    if subtype is None or subtype in allowed:
        return None
    return f"{subtype!r} is not a subtype of {equipment_type} (one of {', '.join(allowed)})"


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


_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _boolean(text: str) -> bool:
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise ValueError(f"{text!r} is not true or false (or yes/no, 1/0)") from None


_phone = _pattern(r"\+?[0-9][0-9 ()/,#*-]{2,39}", "a phone number (digits, spaces, + ( ) - / , # *)")
_email = _pattern(r"[^@\s]+@[^@\s]+\.[^@\s]+", "an e-mail address")


@dataclass(frozen=True)
class Field:
    """One CSV column / JSON field: how its text is parsed, the table column it is stored in (None when it is
    not stored as is), and the value an empty cell stands for."""

    parse: Callable[[str], Any] = _text
    column: str | None = ""
    required: bool = False
    empty: Any = ""

    def db_column(self, name: str) -> str | None:
        return name if self.column == "" else self.column


_DATE = Field(_date, empty=None)

EQUIPMENT_FIELDS: dict[str, Field] = {
    "code": Field(_code, required=True), "type": Field(_choice(EQUIPMENT_TYPES), required=True),
    "district": Field(_text, column=None, required=True), "address": Field(),
    "use_unit": Field(column=None), "maintenance_firm": Field(column=None),
    "maintenance_firm_phone": Field(_phone, column=None), "install_date": _DATE,
    # An empty status means in use, as in the first version of the format.
    "status": Field(_choice(EQUIPMENT_STATUSES), empty="in_use"),
    "rated_speed_mps": Field(_positive(float), empty=None), "rated_load_kg": Field(_positive(int), empty=None),
    "floors": Field(_positive(int), empty=None), "rated_pressure_mpa": Field(_positive(float), empty=None),
    "rated_capacity_tph": Field(_positive(float), empty=None),
    "last_inspection_on": Field(_date, column=None, empty=None),
    "commissioning_date": _DATE,
    "subtype": Field(_choice(ALL_SUBTYPES), empty=None),
    "manufacturer": Field(), "model": Field(), "monitor_vendor": Field(), "monitor_model": Field(),
    # The compliance rules' inputs (migration 0005).
    "safety_grade": Field(_grade, empty=None), "on_demand_maintenance": Field(_boolean, empty=False),
    "maintenance_cycle_days": Field(_positive(int), empty=None), "governor_install_date": _DATE,
}
# The fields are the columns, in the same order (a new column is added to both).
assert tuple(EQUIPMENT_FIELDS) == EQUIPMENT_COLUMNS


@dataclass(frozen=True)
class Entity:
    """A registry entity other than equipment: its table, key (name) and fields, in CSV column order."""

    name: str
    table: str
    fields: dict[str, Field]
    key: str = "name"

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.fields)


FIRMS = Entity("firms", "maintenance_firms", {
    "name": Field(required=True), "duty_phone": Field(_phone, column="phone"), "email": Field(_email),
    "contact_person": Field(), "contact_phone": Field(_phone), "address": Field(), "licence_no": Field()})
DISTRICTS = Entity("districts", "districts", {
    "name": Field(required=True), "admin_code": Field(_pattern(r"[0-9]{6}", "a six-digit division code")),
    "authority": Field(), "phone": Field(_phone), "email": Field(_email)})
USE_UNITS = Entity("use_units", "use_units", {
    "name": Field(required=True), "address": Field(), "contact_person": Field(), "contact_phone": Field(_phone),
    "credit_code": Field(_pattern(r"[0-9A-Z]{18}", "a unified social credit code (18 digits or capitals)"))})
ENTITIES = {e.name: e for e in (FIRMS, DISTRICTS, USE_UNITS)}


def upsert(conn, table: str, key: str, values: dict[str, Any], stamp: bool = False) -> str:
    """Insert or update one row by `key` (a table column), touching only the given columns and only when one of
    them differs; returns 'new', 'updated' or 'unchanged'."""
    row = conn.execute(_upsert_sql(table, key, tuple(values), stamp), values).fetchone()
    if row is None:
        return "unchanged"
    return "new" if row["inserted"] else "updated"


def upsert_many(conn, table: str, key: str, rows: list[dict[str, Any]], stamp: bool = False) -> list[str]:
    """`upsert` for rows that all have the same columns, sent as one batch (executemany pipelines them: a
    10,000-row file would otherwise wait for 10,000 round trips)."""
    if not rows:
        return []
    outcomes = []
    with conn.cursor() as cur:
        cur.executemany(_upsert_sql(table, key, tuple(rows[0]), stamp), rows, returning=True)
        while True:
            row = cur.fetchone()
            outcomes.append("unchanged" if row is None else "new" if row["inserted"] else "updated")
            if not cur.nextset():
                break
    return outcomes


@functools.cache
def _upsert_sql(table: str, key: str, columns: tuple[str, ...], stamp: bool) -> str:
    # Cached: an import runs the same statement for every row, and psycopg prepares it by its text.
    others = [c for c in columns if c != key]
    insert = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(f'%({c})s' for c in columns)}) "
              f"ON CONFLICT ({key}) DO ")
    if not others:
        return insert + "NOTHING RETURNING true AS inserted"
    sets = [f"{c} = EXCLUDED.{c}" for c in others] + (["updated_at = now()"] if stamp else [])
    # The NULL makes a row of one column a row too.
    return (insert + "UPDATE SET " + ", ".join(sets)
            + f" WHERE ({', '.join(f'{table}.{c}' for c in others)}, NULL)"
            + f" IS DISTINCT FROM ({', '.join(f'EXCLUDED.{c}' for c in others)}, NULL)"
            + " RETURNING (xmax = 0) AS inserted")


def update(conn, table: str, key: str, values: dict[str, Any], stamp: bool = False) -> bool:
    """Change the given columns of the row whose `key` column equals values[key], only if one differs (an
    upsert cannot do a partial update: the would-be insert must satisfy NOT NULL first). True if changed."""
    others = [c for c in values if c != key]
    if not others:
        return False
    sets = [f"{c} = %({c})s" for c in others] + (["updated_at = now()"] if stamp else [])
    cur = conn.execute(
        f"UPDATE {table} SET {', '.join(sets)} WHERE {key} = %({key})s AND ({', '.join(others)}, NULL) "
        f"IS DISTINCT FROM ({', '.join(f'%({c})s' for c in others)}, NULL)", values)
    return cur.rowcount > 0


def _summary(count: int, what: str, outcomes: list[str]) -> str:
    new, updated = outcomes.count("new"), outcomes.count("updated")
    return f"{count} {what}: {new} new, {updated} updated, {count - new - updated} unchanged"


def import_registry_csv(config: Config, path: Path) -> str:
    """Validate the file, then upsert districts, use units, firms, equipment and last inspections by code.
    Columns absent from the file are left as they are on equipment already registered."""
    rows = parse_registry_csv(path)
    rules = rule_index(config)
    inspections = 0
    with connect(config.database_url) as conn, conn.transaction():
        refs = _references(conn, rows)
        outcomes = upsert_many(conn, "equipment", "code", [equipment_columns(r.values, refs) for r in rows],
                               stamp=True)
        inspected = [r.values for r in rows if r.values.get("last_inspection_on") is not None]
        if inspected:
            with conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO inspections (equipment_id, kind, performed_on, next_due)
                       SELECT id, 'periodic_inspection', %s, %s FROM equipment WHERE code = %s
                       ON CONFLICT (equipment_id, kind, performed_on) DO NOTHING""",
                    [(v["last_inspection_on"],
                      next_due(rules, "periodic_inspection", v, v["last_inspection_on"]),
                      v["code"]) for v in inspected])
                inspections = cur.rowcount
    return f"{_summary(len(rows), 'equipment', outcomes)}; {inspections} inspection record(s) added"


def _references(conn, rows: list[EquipmentRow]) -> dict[str, dict[str, int]]:
    """Ids of the districts, use units and firms the rows name, creating those not yet registered (a firm's
    phone is set from maintenance_firm_phone when given)."""
    districts = {r.values["district"] for r in rows}
    use_units = {r.values["use_unit"] for r in rows if r.values.get("use_unit")}
    for table, names in (("districts", districts), ("use_units", use_units)):
        for name in sorted(names):
            conn.execute(f"INSERT INTO {table} (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (name,))
    firms = {(r.values["maintenance_firm"], r.values.get("maintenance_firm_phone", ""))
             for r in rows if r.values.get("maintenance_firm")}
    for name, phone in sorted(firms):
        conn.execute("""INSERT INTO maintenance_firms (name, phone) VALUES (%s, %s)
                        ON CONFLICT (name) DO UPDATE SET phone = EXCLUDED.phone
                        WHERE maintenance_firms.phone IS DISTINCT FROM EXCLUDED.phone AND EXCLUDED.phone <> ''""",
                     (name, phone))
    return {table: {r["name"]: r["id"] for r in conn.execute(f"SELECT id, name FROM {table}")}
            for table in ("districts", "use_units", "maintenance_firms")}


def equipment_columns(values: dict[str, Any], refs: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Equipment field values (names resolved to ids by `refs`) as equipment table columns."""
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


def parse_entity_csv(entity: Entity, path: Path) -> list[dict[str, Any]]:
    """Read and validate a firms, districts or use units CSV; raises RegistryError listing every bad cell."""
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    header: list[str] = []
    required = tuple(n for n, f in entity.fields.items() if f.required)
    for line, cells in _read_csv(path, entity.columns, required, problems, header):
        values = validate_cells(entity.fields, {c: cells[c] for c in header}, _line_problem(line, problems))
        if values is None:
            continue
        key = values[entity.key]
        if key in seen:
            problems.append(f"line {line}: column {entity.key}: {key!r} already on line {seen[key]}")
            continue
        seen[key] = line
        rows.append(values)
    if problems:
        raise RegistryError(problems)
    return rows


def entity_columns(entity: Entity, values: dict[str, Any]) -> dict[str, Any]:
    """An entity's field values as its table's columns."""
    return {spec.db_column(name): values[name] for name, spec in entity.fields.items() if name in values}


def import_entity_csv(config: Config, entity: Entity, path: Path) -> str:
    """Validate the file, then upsert every row by name; columns absent from the file are left as they are."""
    rows = parse_entity_csv(entity, path)
    with connect(config.database_url) as conn, conn.transaction():
        outcomes = upsert_many(conn, entity.table, entity.key, [entity_columns(entity, row) for row in rows])
    return _summary(len(rows), entity.name.replace("_", " "), outcomes)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    # str(float) round-trips exactly, so an export re-imports as unchanged.
    return str(value)


def _write_csv(out: TextIO, columns: tuple[str, ...], rows: Iterable[dict[str, Any]]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([_cell(row[c]) for c in columns])
        count += 1
    return count


# The latest periodic inspection is exported as last_inspection_on, so that the file re-imports unchanged.
EQUIPMENT_EXPORT_SQL = """
SELECT e.code, e.type, d.name AS district, e.address, COALESCE(u.name, e.use_unit) AS use_unit,
       f.name AS maintenance_firm, COALESCE(f.phone, '') AS maintenance_firm_phone, e.install_date, e.status,
       e.rated_speed_mps, e.rated_load_kg, e.floors, e.rated_pressure_mpa, e.rated_capacity_tph,
       (SELECT max(performed_on) FROM inspections i
         WHERE i.equipment_id = e.id AND i.kind = 'periodic_inspection') AS last_inspection_on,
       e.commissioning_date, e.subtype, e.manufacturer, e.model, e.monitor_vendor, e.monitor_model,
       e.safety_grade, e.on_demand_maintenance, e.maintenance_cycle_days, e.governor_install_date
  FROM equipment e
  JOIN districts d ON d.id = e.district_id
  LEFT JOIN use_units u ON u.id = e.use_unit_id
  LEFT JOIN maintenance_firms f ON f.id = e.firm_id
 ORDER BY e.code
"""

_RECORDS_EXPORT_SQL = """
SELECT e.code, i.kind AS check, i.performed_on AS date, i.result, i.organisation, i.person,
       i.report_no AS report_number, i.defects
  FROM inspections i JOIN equipment e ON e.id = i.equipment_id WHERE i.kind = ANY(%(checks)s)
UNION ALL
SELECT e.code, 'maintenance', m.performed_on, m.result, m.organisation, m.person, m.report_no, m.defects
  FROM maintenance_records m JOIN equipment e ON e.id = m.equipment_id WHERE m.kind = %(maintenance)s
 ORDER BY 1, 3, 2
"""


def export_csv(config: Config, what: str, out: TextIO) -> int:
    """Write `what` (equipment, records, or an entity name) as CSV in its import format; returns the rows."""
    with connect(config.database_url) as conn:
        if what == "equipment":
            return _write_csv(out, EQUIPMENT_COLUMNS, conn.execute(EQUIPMENT_EXPORT_SQL))
        if what == "records":
            return _write_csv(out, RECORD_COLUMNS, conn.execute(_RECORDS_EXPORT_SQL, {
                "checks": [c for c in CHECKS if c != "maintenance"], "maintenance": MAINTENANCE_KIND}))
        entity = ENTITIES[what]
        selected = ", ".join(f"{spec.db_column(name)} AS {name}" for name, spec in entity.fields.items())
        return _write_csv(out, entity.columns,
                          conn.execute(f"SELECT {selected} FROM {entity.table} ORDER BY {entity.key}"))


def parse_records_csv(path: Path, today: date | None = None) -> list[RecordRow]:
    """Read and validate a records CSV on its own (the equipment is checked at import); raises RegistryError."""
    today = today or date.today()
    problems: list[str] = []
    rows: list[RecordRow] = []
    seen: dict[tuple[str, str, date], int] = {}
    for line, cells in _read_csv(path, RECORD_COLUMNS, RECORD_REQUIRED, problems):
        row = _validate_record(cells, line, today, problems)
        if row is None:
            continue
        key = (row.code, row.check, row.performed_on)
        if key in seen:
            problems.append(f"line {line}: column date: {row.check} of {row.code} on {row.performed_on} "
                            f"already on line {seen[key]}")
            continue
        seen[key] = line
        rows.append(row)
    if problems:
        raise RegistryError(problems)
    return rows


def _validate_record(cells: dict[str, str], line: int, today: date, problems: list[str]) -> RecordRow | None:
    bad = len(problems)

    def problem(column: str, reason: str) -> None:
        problems.append(f"line {line}: column {column}: {reason}")

    for column in RECORD_REQUIRED:
        if not cells[column]:
            problem(column, "is required")
    if cells["code"] and not CODE_PATTERN.match(cells["code"]):
        problem("code", f"{cells['code']!r} is not a registry code ([A-Za-z0-9_-], at most 64)")
    if cells["check"] and cells["check"] not in CHECKS:
        problem("check", f"{cells['check']!r} is not one of {', '.join(CHECKS)}")
    performed_on = None
    if cells["date"]:
        try:
            performed_on = _date(cells["date"])
        except ValueError as exc:
            problem("date", str(exc))
        else:
            if performed_on > today:
                problem("date", f"{performed_on} is in the future")
    if cells["result"] and cells["result"] not in INSPECTION_RESULTS:
        problem("result", f"{cells['result']!r} is not one of {', '.join(INSPECTION_RESULTS)}")
    elif cells["result"] in ("pass_after_rectification", "fail") and not cells["defects"]:
        # A result that is not a clean pass must say what was wrong, or nobody can follow it up.
        problem("defects", f"is required when the result is {cells['result']}")
    if len(problems) > bad or performed_on is None:
        return None
    return RecordRow(line=line, code=cells["code"], check=cells["check"], performed_on=performed_on,
                     result=cells["result"], organisation=cells["organisation"], person=cells["person"],
                     report_no=cells["report_number"], defects=cells["defects"])


_UPSERT_INSPECTIONS = """
WITH upserted AS (
    INSERT INTO inspections (equipment_id, kind, performed_on, result, next_due, organisation, person, report_no,
                             defects)
    SELECT equipment_id, kind, performed_on, result, next_due, organisation, person, report_no, defects
    FROM record_import WHERE tbl = 'inspections'
    ON CONFLICT (equipment_id, kind, performed_on) DO UPDATE SET
        result = EXCLUDED.result, next_due = EXCLUDED.next_due, organisation = EXCLUDED.organisation,
        person = EXCLUDED.person, report_no = EXCLUDED.report_no, defects = EXCLUDED.defects
    WHERE (inspections.result, inspections.next_due, inspections.organisation, inspections.person,
           inspections.report_no, inspections.defects)
          IS DISTINCT FROM
          (EXCLUDED.result, EXCLUDED.next_due, EXCLUDED.organisation, EXCLUDED.person, EXCLUDED.report_no,
           EXCLUDED.defects)
    RETURNING (xmax = 0) AS inserted)
SELECT count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT inserted) AS updated FROM upserted
"""

# The firm is the one named as organisation when it is a known maintenance firm.
_UPSERT_MAINTENANCE = """
WITH upserted AS (
    INSERT INTO maintenance_records (equipment_id, kind, performed_on, firm_id, next_due, result, organisation,
                                     person, report_no, defects)
    SELECT r.equipment_id, r.kind, r.performed_on, f.id, r.next_due, r.result, r.organisation, r.person,
           r.report_no, r.defects
    FROM record_import r LEFT JOIN maintenance_firms f ON f.name = r.organisation
    WHERE r.tbl = 'maintenance_records'
    ON CONFLICT (equipment_id, kind, performed_on) DO UPDATE SET
        firm_id = EXCLUDED.firm_id, next_due = EXCLUDED.next_due, result = EXCLUDED.result,
        organisation = EXCLUDED.organisation, person = EXCLUDED.person, report_no = EXCLUDED.report_no,
        defects = EXCLUDED.defects
    WHERE (maintenance_records.firm_id, maintenance_records.next_due, maintenance_records.result,
           maintenance_records.organisation, maintenance_records.person, maintenance_records.report_no,
           maintenance_records.defects)
          IS DISTINCT FROM
          (EXCLUDED.firm_id, EXCLUDED.next_due, EXCLUDED.result, EXCLUDED.organisation, EXCLUDED.person,
           EXCLUDED.report_no, EXCLUDED.defects)
    RETURNING (xmax = 0) AS inserted)
SELECT count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT inserted) AS updated FROM upserted
"""


def import_records_csv(config: Config, path: Path, today: date | None = None) -> str:
    """Validate the file against itself and the registry, then upsert every record by (code, check, date)."""
    rows = parse_records_csv(path, today)
    with connect(config.database_url) as conn, conn.transaction():
        equipment = {r["code"]: r for r in conn.execute(
            "SELECT id, code, type, install_date, safety_grade, governor_install_date FROM equipment "
            "WHERE code = ANY(%s)",
            (sorted({r.code for r in rows}),))}
        problems = []
        for row in rows:
            found = equipment.get(row.code)
            if found is None:
                problems.append(f"line {row.line}: column code: no equipment {row.code!r} in the registry "
                                f"(import the equipment CSV first)")
            elif found["type"] not in CHECKS[row.check].applies_to:
                problems.append(f"line {row.line}: column check: {row.check} does not apply to {found['type']} "
                                f"{row.code} (only to {', '.join(CHECKS[row.check].applies_to)})")
        if problems:
            raise RegistryError(problems)
        # COPY into a scratch table, then one set-based upsert per table: a 10,000-equipment fleet has
        # hundreds of thousands of records, too many for a statement each.
        conn.execute("""CREATE TEMP TABLE record_import (
            tbl text, equipment_id integer, kind text, performed_on date, result text, next_due date,
            organisation text, person text, report_no text, defects text) ON COMMIT DROP""")
        rules = rule_index(config)
        with conn.cursor().copy("COPY record_import FROM STDIN") as copy:
            for row in rows:
                found = equipment[row.code]
                check = CHECKS[row.check]
                copy.write_row((
                    check.table, found["id"], MAINTENANCE_KIND if row.check == "maintenance" else row.check,
                    row.performed_on, row.result,
                    next_due(rules, row.check, found, row.performed_on),
                    row.organisation, row.person, row.report_no, row.defects))
        inspections = conn.execute(_UPSERT_INSPECTIONS).fetchone()
        maintenance = conn.execute(_UPSERT_MAINTENANCE).fetchone()
    visits = sum(CHECKS[r.check].table == "maintenance_records" for r in rows)
    inserted = inspections["inserted"] + maintenance["inserted"]
    updated = inspections["updated"] + maintenance["updated"]
    return (f"{len(rows)} records ({len(rows) - visits} inspections and tests, {visits} maintenance visits): "
            f"{inserted} new, {updated} updated, {len(rows) - inserted - updated} unchanged")
