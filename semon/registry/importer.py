"""Importing the registry's CSV files (docs/registry-csv.md): every row is validated first, and any bad one
aborts the import with all of them listed; then every row is upserted by its key in one transaction. Columns left
out of a file are left as they are."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from semon.config import Config
from semon.db import connect
from semon.registry.csvfiles import RegistryError, read_csv
from semon.registry.fields import (
    CHECKS,
    EQUIPMENT_FIELDS,
    MAINTENANCE_KIND,
    RECORD_FIELDS,
    ColumnSpec,
    Entity,
    Rules,
    entity_columns,
    equipment_columns,
    record_problems,
    type_problems,
    validate_cells,
)
from semon.registry.upsert import upsert_many, upsert_select


@dataclass(frozen=True)
class Row:
    """One valid row of a CSV file: the parsed value of each column the file has, and the line it was read on."""

    line: int
    values: dict[str, Any]


def _parse_csv(path: Path, fields: dict[str, ColumnSpec], key: tuple[str, ...], rules: Rules = type_problems,
               describe: Callable[[dict[str, Any]], str] | None = None) -> list[Row]:
    """Read and validate a whole file whose rows are unique by `key` (a duplicate is reported at the key's last
    column, as `describe(values)` or the first key value); raises RegistryError listing every bad cell."""
    problems: list[str] = []
    rows: list[Row] = []
    seen: dict[tuple, int] = {}
    required = tuple(name for name, spec in fields.items() if spec.required)
    for line, cells in read_csv(path, tuple(fields), required, problems):
        def problem(column: str, reason: str, line: int = line) -> None:
            problems.append(f"line {line}: column {column}: {reason}")

        values = validate_cells(fields, cells, problem, rules=rules)
        if values is None:
            continue
        found = tuple(values[c] for c in key)
        if found in seen:
            what = describe(values) if describe else repr(found[0])
            problem(key[-1], f"{what} already on line {seen[found]}")
            continue
        seen[found] = line
        rows.append(Row(line, values))
    if problems:
        raise RegistryError(problems)
    return rows


def _summary(count: int, what: str, outcomes: list[str]) -> str:
    new, updated = outcomes.count("new"), outcomes.count("updated")
    return f"{count} {what}: {new} new, {updated} updated, {count - new - updated} unchanged"


# --- equipment ----------------------------------------------------------------------------------------------------

def parse_registry_csv(path: Path) -> list[Row]:
    """Read and validate an equipment CSV; raises RegistryError listing every bad cell."""
    return _parse_csv(path, EQUIPMENT_FIELDS, ("code",))


def import_registry_csv(config: Config, path: Path) -> str:
    """Validate the file, then upsert districts, use units, firms, equipment and last inspections by code."""
    rows = parse_registry_csv(path)
    inspections = 0
    with connect(config.database_url) as conn, conn.transaction():
        refs = _references(conn, rows)
        outcomes = upsert_many(conn, "equipment", "code", [equipment_columns(r.values, refs) for r in rows],
                               stamp=True)
        inspected = [r.values for r in rows if r.values.get("last_inspection_on") is not None]
        if inspected:
            # When it falls due again is the compliance rules' to say (docs/compliance.md), not stored here.
            with conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO inspections (equipment_id, kind, performed_on)
                       SELECT id, 'periodic_inspection', %s FROM equipment WHERE code = %s
                       ON CONFLICT (equipment_id, kind, performed_on) DO NOTHING""",
                    [(v["last_inspection_on"], v["code"]) for v in inspected])
                inspections = cur.rowcount
    return f"{_summary(len(rows), 'equipment', outcomes)}; {inspections} inspection record(s) added"


def _references(conn, rows: list[Row]) -> dict[str, dict[str, int]]:
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


# --- districts, maintenance firms, use units -----------------------------------------------------------------------

def parse_entity_csv(entity: Entity, path: Path) -> list[Row]:
    """Read and validate a firms, districts or use units CSV; raises RegistryError listing every bad cell."""
    return _parse_csv(path, entity.fields, (entity.key,))


def import_entity_csv(config: Config, entity: Entity, path: Path) -> str:
    """Validate the file, then upsert every row by name."""
    rows = parse_entity_csv(entity, path)
    with connect(config.database_url) as conn, conn.transaction():
        outcomes = upsert_many(conn, entity.table, entity.key, [entity_columns(entity, r.values) for r in rows])
    return _summary(len(rows), entity.name.replace("_", " "), outcomes)


# --- inspection and maintenance records ---------------------------------------------------------------------------

# A record is unique by equipment, check and date, in the file and in its table.
_RECORD_KEY = ("equipment_id", "kind", "performed_on")


def parse_records_csv(path: Path, today: date | None = None) -> list[Row]:
    """Read and validate a records CSV on its own (the equipment is checked at import); raises RegistryError."""
    return _parse_csv(path, RECORD_FIELDS, ("code", "check", "date"),
                      rules=functools.partial(record_problems, today=today or date.today()),
                      describe=lambda v: f"{v['check']} of {v['code']} on {v['date']}")


def import_records_csv(config: Config, path: Path, today: date | None = None) -> str:
    """Validate the file against itself and the registry, then upsert every record by (code, check, date)."""
    rows = parse_records_csv(path, today)
    with connect(config.database_url) as conn, conn.transaction():
        equipment = {r["code"]: r for r in conn.execute(
            "SELECT id, code, type FROM equipment WHERE code = ANY(%s)", (sorted({r.values["code"] for r in rows}),))}
        problems = []
        for row in rows:
            code, check = row.values["code"], row.values["check"]
            found = equipment.get(code)
            if found is None:
                problems.append(f"line {row.line}: column code: no equipment {code!r} in the registry "
                                f"(import the equipment CSV first)")
            elif found["type"] not in CHECKS[check].applies_to:
                problems.append(f"line {row.line}: column check: {check} does not apply to {found['type']} "
                                f"{code} (only to {', '.join(CHECKS[check].applies_to)})")
        if problems:
            raise RegistryError(problems)
        inserted, updated = _upsert_records(conn, rows, {code: r["id"] for code, r in equipment.items()})
    visits = sum(CHECKS[r.values["check"]].table == "maintenance_records" for r in rows)
    return (f"{len(rows)} records ({len(rows) - visits} inspections and tests, {visits} maintenance visits): "
            f"{inserted} new, {updated} updated, {len(rows) - inserted - updated} unchanged")


def _upsert_records(conn, rows: list[Row], ids: dict[str, int]) -> tuple[int, int]:
    """COPY the records into a scratch table, then one set-based upsert per table: a 10,000-equipment fleet has
    hundreds of thousands of records, too many for a statement each. Returns (inserted, updated)."""
    if not rows:
        return 0, 0
    # The columns the file has (every row has the same), as stored.
    present = [(name, spec.db_column(name)) for name, spec in RECORD_FIELDS.items()
               if name in rows[0].values and spec.db_column(name)]
    columns = ("equipment_id", "kind", *(column for _, column in present))
    conn.execute(f"CREATE TEMP TABLE record_import ON COMMIT DROP AS "
                 f"SELECT ''::text AS tbl, {', '.join(columns)} FROM inspections WITH NO DATA")
    with conn.cursor().copy(f"COPY record_import (tbl, {', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            check = row.values["check"]
            copy.write_row((CHECKS[check].table, ids[row.values["code"]],
                            MAINTENANCE_KIND if check == "maintenance" else check,
                            *(row.values[name] for name, _ in present)))
    inserted = updated = 0
    for table in dict.fromkeys(c.table for c in CHECKS.values()):
        select = f"SELECT {', '.join(f'r.{c}' for c in columns)}"
        joins = ""
        if table == "maintenance_records" and "organisation" in columns:
            # The visit's firm is the one named as organisation when it is a known maintenance firm.
            select, joins = select + ", f.id", " LEFT JOIN maintenance_firms f ON f.name = r.organisation"
        new, changed = upsert_select(conn, table, _RECORD_KEY, columns + (("firm_id",) if joins else ()),
                                     f"{select} FROM record_import r{joins} WHERE r.tbl = '{table}'")
        inserted, updated = inserted + new, updated + changed
    return inserted, updated
