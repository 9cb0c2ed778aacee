"""Registry CSV imports (equipment, and their inspection and maintenance records): validate every row first,
then upsert all of them in one transaction."""

from __future__ import annotations

import calendar
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from semon.config import Config
from semon.db import connect
from semon.vocabulary import CODE_PATTERN, EQUIPMENT_STATUSES, EQUIPMENT_TYPES, INSPECTION_RESULTS

# New columns go at the end and are optional, so that files written before them still import.
COLUMNS = ("code", "type", "district", "address", "use_unit", "maintenance_firm", "maintenance_firm_phone",
           "install_date", "status", "rated_speed_mps", "rated_load_kg", "floors", "rated_pressure_mpa",
           "rated_capacity_tph", "last_inspection_on", "commissioning_date")
REQUIRED = ("code", "type", "district")

RECORD_COLUMNS = ("code", "check", "date", "result", "organisation", "person", "report_number", "defects")
RECORD_REQUIRED = ("code", "check", "date", "result")
# Defects are one cell; several are separated by this.
DEFECT_SEPARATOR = "; "
# maintenance_records.kind of the TSG T5002 half-monthly visit (the records CSV calls it `maintenance`).
MAINTENANCE_KIND = "routine"
# TSG 21-2016: pressure vessels of safety grade 1-2 every 6 years (grade 3 is 3-6 years; the registry has no
# grade yet, so the longer default applies), the first within 3 years of commissioning.
PRESSURE_VESSEL_INSPECTION_MONTHS = 72
PRESSURE_VESSEL_FIRST_INSPECTION_MONTHS = 36
OLD_GOVERNOR_YEARS = 15


@dataclass(frozen=True)
class Check:
    """A kind of record: the table it goes to, the equipment types it applies to, and its default interval."""

    table: str
    applies_to: tuple[str, ...]
    months: int = 0
    days: int = 0


# The defaults of issue 5's rule table; `next_due` applies the exceptions (pressure vessels, old governors).
CHECKS: dict[str, Check] = {
    "periodic_inspection": Check("inspections", EQUIPMENT_TYPES, months=12),
    "internal_inspection": Check("inspections", ("boiler",), months=24),
    "governor_calibration": Check("inspections", ("elevator",), months=24),
    "rescue_drill": Check("inspections", ("elevator", "escalator"), months=6),
    "water_quality_test": Check("inspections", ("boiler",), months=3),
    "safety_valve_calibration": Check("inspections", ("boiler", "pressure_vessel"), months=12),
    "pressure_gauge_verification": Check("inspections", ("boiler", "pressure_vessel"), months=6),
    "maintenance": Check("maintenance_records", ("elevator", "escalator"), days=15),
}


class RegistryError(Exception):
    """The file has bad rows; `problems` lists each as 'line N: column C: reason'."""

    def __init__(self, problems: list[str]):
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


@dataclass(frozen=True)
class EquipmentRow:
    code: str
    type: str
    district: str
    address: str
    use_unit: str
    firm: str
    firm_phone: str
    install_date: date | None
    status: str
    rated_speed_mps: float | None
    rated_load_kg: int | None
    floors: int | None
    rated_pressure_mpa: float | None
    rated_capacity_tph: float | None
    last_inspection_on: date | None
    commissioning_date: date | None = None


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


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if value <= 0:
            raise ValueError(f"{text!r} must be greater than 0")
        return value

    return parse


def next_due(check: str, equipment_type: str, performed_on: date, install_date: date | None = None,
             inspection_months: int = 12) -> date:
    """When the next record of `check` falls due after one performed on `performed_on`."""
    rule = CHECKS[check]
    if rule.days:
        return performed_on + timedelta(days=rule.days)
    months = rule.months
    if check == "periodic_inspection":
        months = PRESSURE_VESSEL_INSPECTION_MONTHS if equipment_type == "pressure_vessel" else inspection_months
    elif check == "governor_calibration" and install_date is not None \
            and add_months(install_date, 12 * OLD_GOVERNOR_YEARS) < performed_on:
        # TSG T7001 2.9(4): a governor older than 15 years is calibrated yearly (the lift's age stands in
        # for the governor's: the registry does not record governor replacements).
        months = 12
    return add_months(performed_on, months)


_PARSERS = {"install_date": _date, "last_inspection_on": _date, "commissioning_date": _date,
            "rated_speed_mps": _positive(float),
            "rated_load_kg": _positive(int), "floors": _positive(int), "rated_pressure_mpa": _positive(float),
            "rated_capacity_tph": _positive(float)}


def _read_csv(path: Path, columns: tuple[str, ...], required: tuple[str, ...],
              problems: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line, cells) for each non-blank row; header and shape problems go to `problems`."""
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
        if missing or unknown:
            reasons = [f"missing column {c!r}" for c in missing] + [f"unknown column {c!r}" for c in unknown]
            raise RegistryError([f"line 1: {r} (expected: {','.join(columns)})" for r in reasons])
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
    for line, cells in _read_csv(path, COLUMNS, REQUIRED, problems):
        row = _validate_row(cells, line, problems)
        if row is None:
            continue
        if row.code in seen:
            problems.append(f"line {line}: column code: {row.code!r} already on line {seen[row.code]}")
            continue
        seen[row.code] = line
        rows.append(row)
    if problems:
        raise RegistryError(problems)
    return rows


def _validate_row(cells: dict[str, str], line: int, problems: list[str]) -> EquipmentRow | None:
    bad = len(problems)

    def problem(column: str, reason: str) -> None:
        problems.append(f"line {line}: column {column}: {reason}")

    for column in REQUIRED:
        if not cells[column]:
            problem(column, "is required")
    if cells["code"] and not CODE_PATTERN.match(cells["code"]):
        problem("code", f"{cells['code']!r} is not a registry code ([A-Za-z0-9_-], at most 64)")
    if cells["type"] and cells["type"] not in EQUIPMENT_TYPES:
        problem("type", f"{cells['type']!r} is not one of {', '.join(EQUIPMENT_TYPES)}")
    status = cells["status"] or "in_use"
    if status not in EQUIPMENT_STATUSES:
        problem("status", f"{status!r} is not one of {', '.join(EQUIPMENT_STATUSES)}")
    parsed: dict[str, Any] = {}
    for column, parse in _PARSERS.items():
        if cells[column]:
            try:
                parsed[column] = parse(cells[column])
            except ValueError as exc:
                problem(column, str(exc))
    if len(problems) > bad:
        return None
    return EquipmentRow(
        code=cells["code"], type=cells["type"], district=cells["district"], address=cells["address"],
        use_unit=cells["use_unit"], firm=cells["maintenance_firm"], firm_phone=cells["maintenance_firm_phone"],
        install_date=parsed.get("install_date"), status=status,
        rated_speed_mps=parsed.get("rated_speed_mps"), rated_load_kg=parsed.get("rated_load_kg"),
        floors=parsed.get("floors"), rated_pressure_mpa=parsed.get("rated_pressure_mpa"),
        rated_capacity_tph=parsed.get("rated_capacity_tph"), last_inspection_on=parsed.get("last_inspection_on"),
        commissioning_date=parsed.get("commissioning_date"))


_UPSERT_EQUIPMENT = """
INSERT INTO equipment (code, type, district_id, address, use_unit, firm_id, install_date, status,
                       rated_speed_mps, rated_load_kg, floors, rated_pressure_mpa, rated_capacity_tph,
                       commissioning_date)
VALUES (%(code)s, %(type)s, %(district_id)s, %(address)s, %(use_unit)s, %(firm_id)s, %(install_date)s,
        %(status)s, %(rated_speed_mps)s, %(rated_load_kg)s, %(floors)s, %(rated_pressure_mpa)s,
        %(rated_capacity_tph)s, %(commissioning_date)s)
ON CONFLICT (code) DO UPDATE SET
    type = EXCLUDED.type, district_id = EXCLUDED.district_id, address = EXCLUDED.address,
    use_unit = EXCLUDED.use_unit, firm_id = EXCLUDED.firm_id, install_date = EXCLUDED.install_date,
    status = EXCLUDED.status, rated_speed_mps = EXCLUDED.rated_speed_mps,
    rated_load_kg = EXCLUDED.rated_load_kg, floors = EXCLUDED.floors,
    rated_pressure_mpa = EXCLUDED.rated_pressure_mpa, rated_capacity_tph = EXCLUDED.rated_capacity_tph,
    commissioning_date = EXCLUDED.commissioning_date, updated_at = now()
WHERE (equipment.type, equipment.district_id, equipment.address, equipment.use_unit, equipment.firm_id,
       equipment.install_date, equipment.status, equipment.rated_speed_mps, equipment.rated_load_kg,
       equipment.floors, equipment.rated_pressure_mpa, equipment.rated_capacity_tph, equipment.commissioning_date)
      IS DISTINCT FROM
      (EXCLUDED.type, EXCLUDED.district_id, EXCLUDED.address, EXCLUDED.use_unit, EXCLUDED.firm_id,
       EXCLUDED.install_date, EXCLUDED.status, EXCLUDED.rated_speed_mps, EXCLUDED.rated_load_kg,
       EXCLUDED.floors, EXCLUDED.rated_pressure_mpa, EXCLUDED.rated_capacity_tph, EXCLUDED.commissioning_date)
RETURNING id, (xmax = 0) AS inserted
"""


def import_registry_csv(config: Config, path: Path) -> str:
    """Validate the file, then upsert districts, firms, equipment and last inspections by code."""
    rows = parse_registry_csv(path)
    interval = config.inspection_interval_months
    inserted = updated = inspections = 0
    with connect(config.database_url) as conn, conn.transaction():
        districts = _ids(conn, "districts", {r.district for r in rows})
        firms = _firm_ids(conn, {(r.firm, r.firm_phone) for r in rows if r.firm})
        for row in rows:
            result = conn.execute(_UPSERT_EQUIPMENT, {
                **row.__dict__, "district_id": districts[row.district], "firm_id": firms.get(row.firm)}).fetchone()
            if result is not None:
                inserted += result["inserted"]
                updated += not result["inserted"]
            if row.last_inspection_on is not None:
                cur = conn.execute(
                    """INSERT INTO inspections (equipment_id, kind, performed_on, next_due)
                       SELECT id, 'periodic_inspection', %s, %s FROM equipment WHERE code = %s
                       ON CONFLICT (equipment_id, kind, performed_on) DO NOTHING""",
                    (row.last_inspection_on,
                     next_due("periodic_inspection", row.type, row.last_inspection_on, row.install_date, interval),
                     row.code))
                inspections += cur.rowcount
    unchanged = len(rows) - inserted - updated
    return (f"{len(rows)} equipment: {inserted} new, {updated} updated, {unchanged} unchanged; "
            f"{inspections} inspection record(s) added")


def _ids(conn, table: str, names: set[str]) -> dict[str, int]:
    for name in sorted(names):
        conn.execute(f"INSERT INTO {table} (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (name,))
    return {r["name"]: r["id"] for r in conn.execute(f"SELECT id, name FROM {table}")}


def _firm_ids(conn, firms: set[tuple[str, str]]) -> dict[str, int]:
    for name, phone in sorted(firms):
        conn.execute("""INSERT INTO maintenance_firms (name, phone) VALUES (%s, %s)
                        ON CONFLICT (name) DO UPDATE SET phone = EXCLUDED.phone
                        WHERE maintenance_firms.phone IS DISTINCT FROM EXCLUDED.phone AND EXCLUDED.phone <> ''""",
                     (name, phone))
    return {r["name"]: r["id"] for r in conn.execute("SELECT id, name FROM maintenance_firms")}


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
            "SELECT id, code, type, install_date FROM equipment WHERE code = ANY(%s)",
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
        with conn.cursor().copy("COPY record_import FROM STDIN") as copy:
            for row in rows:
                found = equipment[row.code]
                check = CHECKS[row.check]
                copy.write_row((
                    check.table, found["id"], MAINTENANCE_KIND if row.check == "maintenance" else row.check,
                    row.performed_on, row.result,
                    next_due(row.check, found["type"], row.performed_on, found["install_date"],
                             config.inspection_interval_months),
                    row.organisation, row.person, row.report_no, row.defects))
        inspections = conn.execute(_UPSERT_INSPECTIONS).fetchone()
        maintenance = conn.execute(_UPSERT_MAINTENANCE).fetchone()
    visits = sum(CHECKS[r.check].table == "maintenance_records" for r in rows)
    inserted = inspections["inserted"] + maintenance["inserted"]
    updated = inspections["updated"] + maintenance["updated"]
    return (f"{len(rows)} records ({len(rows) - visits} inspections and tests, {visits} maintenance visits): "
            f"{inserted} new, {updated} updated, {len(rows) - inserted - updated} unchanged")
