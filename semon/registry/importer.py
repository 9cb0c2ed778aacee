"""Importing the registry's CSV files (docs/registry-csv.md): every row is validated first, against the file and
the registry, and any problem aborts the import with all of them listed; then every row is upserted by its key in
one transaction. Columns left out of a file are left as they are."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from semon import clock
from semon.audit import Actor, record
from semon.config import Config
from semon.db import connect
from semon.registry.csvfiles import Problems, read_csv
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
    equipment_problems,
    parse_cells,
    record_problems,
)
from semon.registry.upsert import upsert_many, upsert_select


@dataclass(frozen=True)
class Row:
    """One row of a CSV file: the parsed value of each column the file has, and the line it was read on."""

    line: int
    values: dict[str, Any]


@dataclass(frozen=True)
class Parsed:
    """A file read and validated on its own: its rows (a bad one with the values that did parse, so that the
    registry checks still see it), the problems found so far, and the encoding it was read in."""

    rows: list[Row]
    problems: Problems
    encoding: str

    def valid_rows(self) -> list[Row]:
        """The rows, once no problem was found; else RegistryError with every problem."""
        self.problems.raise_if_any()
        return self.rows

    @property
    def read_as(self) -> str:
        """The summary's note when the file was not UTF-8."""
        return "" if self.encoding == "utf-8-sig" else "; the file was read as GB18030 (GBK), not UTF-8"


def _parse_csv(path: Path, fields: dict[str, ColumnSpec], key: tuple[str, ...], rules: Rules,
               describe: Callable[[dict[str, Any]], str] | None = None) -> Parsed:
    """Read and validate a whole file whose rows are unique by `key` (a duplicate is reported at the key's last
    column, as `describe(values)` or the first key value)."""
    problems = Problems()
    required = tuple(name for name, spec in fields.items() if spec.required)
    file = read_csv(path, tuple(fields), required, problems)
    rows: list[Row] = []
    seen: dict[tuple, int] = {}
    for line, cells in file.rows:
        def problem(column: str, reason: str, line: int = line) -> None:
            problems.add(line, reason, column)

        # A required column the header lacks is reported once, on line 1, not again on every row.
        values = parse_cells(fields, cells, problem, partial=bool(file.missing), rules=rules)
        if all(c in values for c in key):
            found = tuple(values[c] for c in key)
            if found in seen:
                problem(key[-1], f"{describe(values) if describe else repr(found[0])} already on line {seen[found]}")
            else:
                seen[found] = line
        rows.append(Row(line, values))
    return Parsed(rows, problems, file.encoding)


def _summary(count: int, what: str, outcomes: list[str]) -> str:
    new, updated = outcomes.count("new"), outcomes.count("updated")
    return f"{count} {what}: {new} new, {updated} updated, {count - new - updated} unchanged"


# --- equipment ----------------------------------------------------------------------------------------------------

def _read_equipment(path: Path, today: date) -> Parsed:
    return _parse_csv(path, EQUIPMENT_FIELDS, ("code",), functools.partial(equipment_problems, today=today))


def parse_registry_csv(path: Path, today: date) -> list[Row]:
    """Read and validate an equipment CSV on its own (dates after `today` are refused); raises RegistryError
    listing every problem."""
    return _read_equipment(path, today).valid_rows()


def _audit_import(conn: Any, actor: Actor | None, what: str, path: Path, summary: str, rows: int) -> None:
    """One audit log entry for an import, in its transaction: who imported which file, and what it changed."""
    if actor is not None:
        record(conn, actor, "registry.import", f"{what} CSV {path.name}", None, {"rows": rows, "summary": summary})


def import_registry_csv(config: Config, path: Path, create_districts: bool = False,
                        actor: Actor | None = None) -> str:
    """Validate the file, then upsert use units, firms, equipment and last inspections by code. A district not
    registered is refused unless `create_districts`; the summary names every district, use unit and firm
    created. With an `actor`, the import is written to the audit log."""
    with connect(config.database_url, time_zone=config.time_zone) as conn, conn.transaction():
        parsed = _read_equipment(path, clock.today(conn))
        if not create_districts:
            _check_districts(conn, parsed)
        rows = parsed.valid_rows()
        refs, created = _references(conn, rows)
        outcomes = upsert_many(conn, "equipment", "code", [equipment_columns(r.values, refs) for r in rows],
                               stamp=True)
        inspections = 0
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
        new = "".join(f"; new {what}: {', '.join(names)}" for what, names in created.items() if names)
        summary = f"{_summary(len(rows), 'equipment', outcomes)}; {inspections} inspection record(s) added{new}"
        _audit_import(conn, actor, "equipment", path, summary, len(rows))
    return summary + parsed.read_as


def _check_districts(conn, parsed: Parsed) -> None:
    """Each row naming a district not registered is a problem, with the registered name closest to it: a misspelt
    district must not slip in as a new one (docs/registry-csv.md)."""
    known = [r["name"] for r in conn.execute("SELECT name FROM districts ORDER BY name")]
    registered = set(known)
    hints: dict[str, str] = {}
    for row in parsed.rows:
        name = row.values.get("district")
        if not name or name in registered:
            continue
        if name not in hints:
            closest = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
            hints[name] = f" (did you mean {closest[0]!r}?)" if closest else ""
        parsed.problems.add(row.line, f"no district {name!r} is registered{hints[name]}; register it first "
                                      "(semon registry import districts) or import with --create-districts",
                            "district")


def _references(conn, rows: list[Row]) -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
    """Ids of the districts, use units and firms the rows name, creating those not yet registered (a firm's
    phone is set from maintenance_firm_phone when given), and the names created of each."""
    created: dict[str, list[str]] = {}
    for what, table, names in (
            ("districts", "districts", {r.values["district"] for r in rows}),
            ("use units", "use_units", {r.values["use_unit"] for r in rows if r.values.get("use_unit")})):
        created[what] = [r["name"] for r in conn.execute(
            f"INSERT INTO {table} (name) SELECT unnest(%s::text[]) ORDER BY 1 "
            "ON CONFLICT (name) DO NOTHING RETURNING name", (sorted(names),))]
    firms = {(r.values["maintenance_firm"], r.values.get("maintenance_firm_phone", ""))
             for r in rows if r.values.get("maintenance_firm")}
    created["maintenance firms"] = []
    for name, phone in sorted(firms):
        row = conn.execute("""INSERT INTO maintenance_firms (name, phone) VALUES (%s, %s)
                              ON CONFLICT (name) DO UPDATE SET phone = EXCLUDED.phone
                              WHERE maintenance_firms.phone IS DISTINCT FROM EXCLUDED.phone AND EXCLUDED.phone <> ''
                              RETURNING (xmax = 0) AS inserted""", (name, phone)).fetchone()
        if row is not None and row["inserted"]:
            created["maintenance firms"].append(name)
    refs = {table: {r["name"]: r["id"] for r in conn.execute(f"SELECT id, name FROM {table}")}
            for table in ("districts", "use_units", "maintenance_firms")}
    return refs, created


# --- districts, maintenance firms, use units -----------------------------------------------------------------------

def _read_entity(entity: Entity, path: Path) -> Parsed:
    return _parse_csv(path, entity.fields, (entity.key,), rules=lambda values: [])


def parse_entity_csv(entity: Entity, path: Path) -> list[Row]:
    """Read and validate a firms, districts or use units CSV; raises RegistryError listing every problem."""
    return _read_entity(entity, path).valid_rows()


def import_entity_csv(config: Config, entity: Entity, path: Path, actor: Actor | None = None) -> str:
    """Validate the file, then upsert every row by name (with an `actor`, written to the audit log)."""
    parsed = _read_entity(entity, path)
    rows = parsed.valid_rows()
    with connect(config.database_url) as conn, conn.transaction():
        outcomes = upsert_many(conn, entity.table, entity.key, [entity_columns(entity, r.values) for r in rows])
        summary = _summary(len(rows), entity.name.replace("_", " "), outcomes)
        _audit_import(conn, actor, entity.name, path, summary, len(rows))
    return summary + parsed.read_as


# --- inspection and maintenance records ---------------------------------------------------------------------------

# A record is unique by equipment, check and date, in the file and in its table.
_RECORD_KEY = ("equipment_id", "kind", "performed_on")


def _read_records(path: Path, today: date) -> Parsed:
    return _parse_csv(path, RECORD_FIELDS, ("code", "check", "date"),
                      rules=functools.partial(record_problems, today=today),
                      describe=lambda v: f"{v['check']} of {v['code']} on {v['date']}")


def parse_records_csv(path: Path, today: date) -> list[Row]:
    """Read and validate a records CSV on its own (the equipment is checked at import; dates after `today` are
    refused); raises RegistryError listing every problem."""
    return _read_records(path, today).valid_rows()


def import_records_csv(config: Config, path: Path, actor: Actor | None = None) -> str:
    """Validate the file against itself and the registry, then upsert every record by (code, check, date) (with an
    `actor`, written to the audit log)."""
    with connect(config.database_url, time_zone=config.time_zone) as conn, conn.transaction():
        parsed = _read_records(path, clock.today(conn))
        codes = sorted({r.values["code"] for r in parsed.rows if "code" in r.values})
        equipment = {r["code"]: r for r in conn.execute(
            "SELECT id, code, type FROM equipment WHERE code = ANY(%s)", (codes,))}
        for row in parsed.rows:
            found = record_registry_problem(row.values, equipment.get(row.values.get("code")))
            if found is not None:
                parsed.problems.add(row.line, found[1], found[0])
        rows = parsed.valid_rows()
        inserted, updated = upsert_records(conn, rows, {code: r["id"] for code, r in equipment.items()})
        visits = sum(CHECKS[r.values["check"]].table == "maintenance_records" for r in rows)
        summary = (f"{len(rows)} records ({len(rows) - visits} inspections and tests, {visits} maintenance visits): "
                   f"{inserted} new, {updated} updated, {len(rows) - inserted - updated} unchanged")
        _audit_import(conn, actor, "records", path, summary, len(rows))
    return summary + parsed.read_as


def record_registry_problem(values: dict[str, Any], equipment: dict[str, Any] | None) -> tuple[str, str] | None:
    """(column, reason) when a record's equipment (its registry row with type, None if unknown) is not registered or
    does not owe the record's check; None when it fits. The CSV import and the equipment page's form both ask."""
    code, check = values.get("code"), values.get("check")
    if code is not None and equipment is None:
        return "code", f"no equipment {code!r} in the registry (import the equipment CSV first)"
    if equipment is not None and check is not None and equipment["type"] not in CHECKS[check].applies_to:
        return "check", (f"{check} does not apply to {equipment['type']} {code} (only to "
                         f"{', '.join(CHECKS[check].applies_to)})")
    return None


def upsert_records(conn, rows: list[Row], ids: dict[str, int]) -> tuple[int, int]:
    """COPY the records (rows of validated values by RECORD_FIELDS, equipment `ids` by code) into a scratch table,
    then one set-based upsert per table: a 10,000-equipment fleet has hundreds of thousands of records, too many for a
    statement each. Returns (inserted, updated)."""
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
