"""Equipment registry CSV import: validate every row first, then upsert all of them in one transaction."""

from __future__ import annotations

import calendar
import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from semon.config import Config
from semon.db import connect
from semon.vocabulary import CODE_PATTERN, EQUIPMENT_STATUSES, EQUIPMENT_TYPES

COLUMNS = ("code", "type", "district", "address", "use_unit", "maintenance_firm", "maintenance_firm_phone",
           "install_date", "status", "rated_speed_mps", "rated_load_kg", "floors", "rated_pressure_mpa",
           "rated_capacity_tph", "last_inspection_on")
REQUIRED = ("code", "type", "district")


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


_PARSERS = {"install_date": _date, "last_inspection_on": _date, "rated_speed_mps": _positive(float),
            "rated_load_kg": _positive(int), "floors": _positive(int), "rated_pressure_mpa": _positive(float),
            "rated_capacity_tph": _positive(float)}


def parse_registry_csv(path: Path) -> list[EquipmentRow]:
    """Read and validate the whole file; raises RegistryError listing every bad cell."""
    problems: list[str] = []
    rows: list[EquipmentRow] = []
    seen: dict[str, int] = {}
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
        missing = [c for c in REQUIRED if c not in header]
        unknown = [c for c in header if c not in COLUMNS]
        if missing or unknown:
            reasons = [f"missing column {c!r}" for c in missing] + [f"unknown column {c!r}" for c in unknown]
            raise RegistryError([f"line 1: {r} (expected: {','.join(COLUMNS)})" for r in reasons])
        try:
            for record in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in record):
                    continue
                if len(record) != len(header):
                    problems.append(f"line {line}: expected {len(header)} columns, found {len(record)}")
                    continue
                cells = {c: "" for c in COLUMNS} | {h: v.strip() for h, v in zip(header, record, strict=True)}
                row = _validate_row(cells, line, problems)
                if row is None:
                    continue
                if row.code in seen:
                    problems.append(f"line {line}: column code: {row.code!r} already on line {seen[row.code]}")
                    continue
                seen[row.code] = line
                rows.append(row)
        except (UnicodeDecodeError, csv.Error) as exc:
            problems.append(f"line {reader.line_num}: unreadable CSV: {exc}")
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
        rated_capacity_tph=parsed.get("rated_capacity_tph"), last_inspection_on=parsed.get("last_inspection_on"))


_UPSERT_EQUIPMENT = """
INSERT INTO equipment (code, type, district_id, address, use_unit, firm_id, install_date, status,
                       rated_speed_mps, rated_load_kg, floors, rated_pressure_mpa, rated_capacity_tph)
VALUES (%(code)s, %(type)s, %(district_id)s, %(address)s, %(use_unit)s, %(firm_id)s, %(install_date)s,
        %(status)s, %(rated_speed_mps)s, %(rated_load_kg)s, %(floors)s, %(rated_pressure_mpa)s,
        %(rated_capacity_tph)s)
ON CONFLICT (code) DO UPDATE SET
    type = EXCLUDED.type, district_id = EXCLUDED.district_id, address = EXCLUDED.address,
    use_unit = EXCLUDED.use_unit, firm_id = EXCLUDED.firm_id, install_date = EXCLUDED.install_date,
    status = EXCLUDED.status, rated_speed_mps = EXCLUDED.rated_speed_mps,
    rated_load_kg = EXCLUDED.rated_load_kg, floors = EXCLUDED.floors,
    rated_pressure_mpa = EXCLUDED.rated_pressure_mpa, rated_capacity_tph = EXCLUDED.rated_capacity_tph,
    updated_at = now()
WHERE (equipment.type, equipment.district_id, equipment.address, equipment.use_unit, equipment.firm_id,
       equipment.install_date, equipment.status, equipment.rated_speed_mps, equipment.rated_load_kg,
       equipment.floors, equipment.rated_pressure_mpa, equipment.rated_capacity_tph)
      IS DISTINCT FROM
      (EXCLUDED.type, EXCLUDED.district_id, EXCLUDED.address, EXCLUDED.use_unit, EXCLUDED.firm_id,
       EXCLUDED.install_date, EXCLUDED.status, EXCLUDED.rated_speed_mps, EXCLUDED.rated_load_kg,
       EXCLUDED.floors, EXCLUDED.rated_pressure_mpa, EXCLUDED.rated_capacity_tph)
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
                    (row.last_inspection_on, add_months(row.last_inspection_on, interval), row.code))
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
