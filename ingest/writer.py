"""Write a batch of parsed messages in one transaction: COPY to staging, then insert without duplicates."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row, scalar_row
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads

from ingest.messages import Equipment, Event, FaultCode, Lookup, Parsed, Rejected, Status, Telemetry
from models.fault_events import apply_device_events
from models.rules.engine import EquipmentInfo, Sample
from models.rules.runtime import RuleRunner
from semon.vocabulary import TELEMETRY_FIELDS, fault_label, telemetry_table, topic

_EVENT_COLUMNS = ("ts", "equipment_id", "seq", "code", "state", "detail")
_REJECTED_FIELD_COLUMNS = ", ".join(("ts", "equipment_id", "topic", "seq", "field", "value", "reason", "stored"))

# Per equipment: the newest ts and, for each field, its value in the newest row that has it (nulls mean "not
# sent"). Typed aggregates per column cost the server a third of jsonb_each + jsonb_object_agg (measured).
def _state_from_stage(equipment_type: str) -> sql.Composed:
    latest = sql.SQL(", ").join(
        sql.SQL("{name}, (array_agg({col} ORDER BY ts DESC, seq DESC) FILTER (WHERE {col} IS NOT NULL))[1]").format(
            name=sql.Literal(f.name), col=sql.Identifier(f.name))
        for f in TELEMETRY_FIELDS[equipment_type])
    return sql.SQL("""
    SELECT equipment_id, NULL::text AS status, max(ts) AS last_ts,
           jsonb_strip_nulls(jsonb_build_object({})) AS last_values
    FROM {} GROUP BY equipment_id""").format(latest, sql.Identifier("stage_" + telemetry_table(equipment_type)))


_STATE_FROM_STAGE = {t: _state_from_stage(t) for t in TELEMETRY_FIELDS}

# One row per equipment (ON CONFLICT DO UPDATE may touch a row only once), in a fixed order so that two
# ingesters on a shared subscription cannot deadlock. Telemetry or an event is proof of life even when the
# monitor skipped its "online" status.
_STATE_UPSERT = """
    INSERT INTO equipment_state AS s (equipment_id, status, status_changed_at, last_seen, last_ts, last_values)
    SELECT equipment_id, COALESCE(max(status), 'online'), now(), now(), max(last_ts),
           COALESCE((array_agg(last_values ORDER BY last_ts DESC NULLS LAST))[1], '{{}}')
    FROM ({}) AS batch
    GROUP BY equipment_id
    ORDER BY equipment_id
    ON CONFLICT (equipment_id) DO UPDATE SET
        status = EXCLUDED.status,
        status_changed_at = CASE WHEN EXCLUDED.status IS DISTINCT FROM s.status
                            THEN now() ELSE s.status_changed_at END,
        last_seen = now(),
        last_ts = GREATEST(s.last_ts, EXCLUDED.last_ts),
        last_values = CASE WHEN EXCLUDED.last_ts IS NULL THEN s.last_values
                           WHEN s.last_ts IS NULL OR EXCLUDED.last_ts >= s.last_ts
                           THEN s.last_values || EXCLUDED.last_values
                           ELSE EXCLUDED.last_values || s.last_values END"""


@dataclass
class WriteResult:
    stored: int = 0          # rows new to the database
    duplicates: int = 0      # telemetry/events already stored (redeliveries)
    dead_lettered: int = 0
    statuses: int = 0
    fields_refused: int = 0  # values that cannot be true, not stored (rejected_fields)
    fields_misspelt: int = 0  # unknown fields named like a contract field, kept in extra (rejected_fields)
    rule_changes: int = 0    # alerts raised or resolved by the telemetry rules

    def add(self, other: WriteResult) -> None:
        """Add another result's counts to this one."""
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.dead_lettered += other.dead_lettered
        self.statuses += other.statuses
        self.fields_refused += other.fields_refused
        self.fields_misspelt += other.fields_misspelt
        self.rule_changes += other.rule_changes


# What the ingester reads of the registry: the equipment it accepts messages for, and what the telemetry rules need of
# each (rated speed for overspeed, floors for overtravel ...).
_EQUIPMENT_SQL = ("SELECT id, code, type, rated_speed_mps, floors, rated_pressure_mpa FROM equipment"
                  " WHERE status <> 'scrapped'")


def _equipment_info(row: dict[str, Any]) -> EquipmentInfo:
    return EquipmentInfo(row["id"], row["type"], row["rated_speed_mps"], row["floors"], row["rated_pressure_mpa"])


class DatabaseLookup(Lookup):
    """Equipment and fault codes cached from the database, reloaded as soon as the registry changes.

    The connection LISTENs on semon_registry, which every change to equipment or fault codes notifies
    (migration 0019): `refresh()`, called before each batch, and a lookup that misses reload the cache when a
    notification has come (a non-blocking read: no round trip to the server). An unknown code is also
    looked up on its own before it is called unknown, since a notification may still be on its way when the first
    message of a just-registered monitor arrives; those look-ups are bounded (`direct_checks_per_s`, and once per
    code until the next reload) so that a flood of unknown codes cannot hammer the database. The periodic reload on
    a miss (`reload_interval_s`) stays as the fallback (docs/ingest.md, "Registering takes effect at once").
    """

    def __init__(self, conn: psycopg.Connection, reload_interval_s: float = 5.0, direct_checks_per_s: float = 20.0):
        self._conn = conn
        self._reload_interval_s = reload_interval_s
        self._direct_checks_per_s = direct_checks_per_s
        self._equipment: dict[str, Equipment] = {}
        self._faults: dict[str, FaultCode] = {}
        self._faults_by_number: dict[int, FaultCode] = {}
        self._loaded_at = float("-inf")
        self._stale = False
        self._checked: set[str] = set()  # codes looked up on their own and not found since the last reload
        self._check_budget = direct_checks_per_s
        self._budget_at = time.monotonic()
        conn.execute("LISTEN semon_registry")
        self.reload()

    def _registry_changed(self) -> bool:
        # Notifications wait in the socket, or in psycopg's queue when a query read them; neither can be read in
        # the middle of a transaction.
        if self._conn.info.transaction_status == TransactionStatus.IDLE:
            for _ in self._conn.notifies(timeout=0):
                self._stale = True
        return self._stale

    def refresh(self) -> None:
        """Reload the cache if the registry changed since it was read."""
        if self._registry_changed():
            self.reload()

    def reload(self) -> None:
        """Read the registry and the fault-code table again."""
        self._stale = False
        with self._conn.cursor() as cur:
            cur.execute(_EQUIPMENT_SQL)
            rows = cur.fetchall()
            self._equipment = {r["code"]: Equipment(r["id"], r["code"], r["type"]) for r in rows}
            self._info = {r["id"]: _equipment_info(r) for r in rows}
            cur.execute("SELECT name, gbt_code, equipment_types, severity, description, name_zh FROM fault_codes")
            fault_rows = cur.fetchall()
            faults = [FaultCode(r["name"], r["gbt_code"], tuple(r["equipment_types"])) for r in fault_rows]
            self.severities = {r["name"]: r["severity"] for r in fault_rows}
            self.labels = {r["name"]: fault_label(r["description"], r["name_zh"]) for r in fault_rows}
        self._conn.commit()
        self._faults = {f.name: f for f in faults}
        self._faults_by_number = {f.gbt_code: f for f in faults if f.gbt_code is not None}
        self._checked.clear()
        self._loaded_at = time.monotonic()

    def _maybe_reload(self) -> None:
        if self._registry_changed() or time.monotonic() - self._loaded_at >= self._reload_interval_s:
            self.reload()

    def _may_check(self, code: str) -> bool:
        if code in self._checked:
            return False
        now = time.monotonic()
        self._check_budget = min(self._direct_checks_per_s,
                                 self._check_budget + (now - self._budget_at) * self._direct_checks_per_s)
        self._budget_at = now
        if self._check_budget < 1:
            return False
        self._check_budget -= 1
        return True

    def _check(self, code: str) -> Equipment | None:
        with self._conn.cursor() as cur:
            row = cur.execute(_EQUIPMENT_SQL + " AND code = %s", (code,)).fetchone()
        self._conn.commit()
        if self._registry_changed():  # the look-up brought the registry's notification with it: read everything
            self.reload()
            return self._equipment.get(code)
        if row is None:
            self._checked.add(code)
            return None
        found = self._equipment[code] = Equipment(row["id"], row["code"], row["type"])
        self._info[row["id"]] = _equipment_info(row)
        return found

    def equipment(self, code: str) -> Equipment | None:
        found = self._equipment.get(code)
        if found is None:
            self._maybe_reload()
            found = self._equipment.get(code)
            if found is None and self._may_check(code):
                found = self._check(code)
        return found

    def equipment_info(self, equipment_id: int) -> EquipmentInfo | None:
        """The registry facts the telemetry rules use, of an equipment the lookup has seen."""
        return self._info.get(equipment_id)

    def fault_code(self, name_or_number: str | int) -> FaultCode | None:
        if isinstance(name_or_number, int):
            return self._faults_by_number.get(name_or_number)
        found = self._faults.get(name_or_number)
        # ASCII digits only: str.isdigit() also takes "²" (which int() refuses, and the writer died of it) and "٣".
        if found is None and name_or_number.isascii() and name_or_number.isdigit():
            found = self._faults_by_number.get(int(name_or_number))
        return found


def _samples(telemetry: Mapping[str, list[Telemetry]]) -> dict[int, list[Sample]]:
    samples: dict[int, list[Sample]] = {}
    for rows in telemetry.values():
        for row in rows:
            samples.setdefault(row.equipment.id, []).append(Sample(row.ts, row.seq, row.values))
    return samples


class BatchWriter:
    """Owns one connection and writes whole batches atomically."""

    def __init__(self, conn: psycopg.Connection, rules: RuleRunner | None = None):
        self.conn = conn
        self.rules = rules
        # Rule states and extra fields cross as jsonb in every batch: orjson is several times the stdlib's speed.
        set_json_dumps(orjson.dumps, conn)
        set_json_loads(orjson.loads, conn)
        self._create_staging()

    def _create_staging(self) -> None:
        with self.conn.transaction():
            for equipment_type in TELEMETRY_FIELDS:
                table = telemetry_table(equipment_type)
                self.conn.execute(sql.SQL(
                    "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                ).format(sql.Identifier("stage_" + table), sql.Identifier(table)))
            self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS stage_events (LIKE events INCLUDING DEFAULTS) "
                              "ON COMMIT DELETE ROWS")
            self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS stage_rejected_fields "
                              "(LIKE rejected_fields INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
            self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS stage_state (equipment_id integer, status text, "
                              "last_ts timestamptz, last_values jsonb) ON COMMIT DELETE ROWS")

    def write(self, batch: Sequence[Parsed]) -> WriteResult:
        """Store telemetry, events, statuses, dead letters and rejected fields of the batch in one transaction."""
        result = WriteResult()
        telemetry: dict[str, list[Telemetry]] = {}
        flagged: list[Telemetry] = []  # telemetry with fields in rejected_fields
        events: list[Event] = []
        statuses: list[Status] = []
        rejected: list[Rejected] = []
        for item in batch:
            if isinstance(item, Telemetry):
                telemetry.setdefault(item.equipment.type, []).append(item)
                if item.problems:
                    flagged.append(item)
            elif isinstance(item, Event):
                events.append(item)
            elif isinstance(item, Status):
                statuses.append(item)
            else:
                rejected.append(item)
        with self.conn.transaction():
            for equipment_type, rows in telemetry.items():
                inserted = self._insert_telemetry(equipment_type, rows)
                result.stored += inserted
                result.duplicates += len(rows) - inserted
            if telemetry and self.rules is not None:
                result.rule_changes = self.rules.run(self.conn, _samples(telemetry))
            if events:
                new_events = self._insert_events(events)
                result.stored += len(new_events)
                result.duplicates += len(events) - len(new_events)
                apply_device_events(self.conn, new_events)
            if rejected:
                self._insert_dead_letters(rejected)
                result.dead_lettered = len(rejected)
            if flagged:
                stored = self._insert_rejected_fields(flagged)
                result.fields_misspelt = sum(stored)
                result.fields_refused = len(stored) - result.fields_misspelt
            self._update_state(telemetry, events, statuses)
            result.statuses = len(statuses)
        return result

    def _insert_telemetry(self, equipment_type: str, rows: list[Telemetry]) -> int:
        table = telemetry_table(equipment_type)
        fields = [f.name for f in TELEMETRY_FIELDS[equipment_type]]
        columns = ["ts", "equipment_id", "seq", *fields, "extra"]
        column_sql = sql.SQL(", ").join(map(sql.Identifier, columns))
        with self.conn.cursor() as cur:
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
                    sql.Identifier("stage_" + table), column_sql)) as copy:
                for row in rows:
                    values = row.values
                    copy.write_row((row.ts, row.equipment.id, row.seq, *[values.get(f) for f in fields],
                                    Jsonb(row.extra) if row.extra else None))
            cur.execute(sql.SQL("INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} "
                                "ON CONFLICT DO NOTHING").format(
                table=sql.Identifier(table), cols=column_sql, stage=sql.Identifier("stage_" + table)))
            return cur.rowcount

    def _insert_events(self, events: list[Event]) -> list[dict[str, Any]]:
        """Store the events; returns those new to the table (a redelivered event is not applied twice)."""
        with self.conn.cursor(row_factory=dict_row) as cur:
            with cur.copy(f"COPY stage_events ({', '.join(_EVENT_COLUMNS)}) FROM STDIN") as copy:
                for e in events:
                    copy.write_row((e.ts, e.equipment.id, e.seq, e.code, e.state, Jsonb(e.detail)))
            cols = ", ".join(_EVENT_COLUMNS)
            cur.execute(f"INSERT INTO events ({cols}) SELECT {cols} FROM stage_events ON CONFLICT DO NOTHING"
                        f" RETURNING {cols}")
            return cur.fetchall()

    def _insert_dead_letters(self, rejected: list[Rejected]) -> None:
        copy_sql = "COPY dead_letter (topic, payload, reason, category) FROM STDIN"
        with self.conn.cursor() as cur, cur.copy(copy_sql) as copy:
            for r in rejected:
                copy.write_row((r.topic, r.payload, r.reason, r.category))

    def _insert_rejected_fields(self, flagged: list[Telemetry]) -> list[bool]:
        # Through staging like telemetry, so that a redelivered message reports its fields once; returns the
        # `stored` flag of each row new to the table.
        with self.conn.cursor(row_factory=scalar_row) as cur:
            with cur.copy(f"COPY stage_rejected_fields ({_REJECTED_FIELD_COLUMNS}) FROM STDIN") as copy:
                for row in flagged:
                    where = topic(row.equipment.type, row.equipment.code, "telemetry")
                    for p in row.problems:
                        copy.write_row((row.ts, row.equipment.id, where, row.seq, p.field, Jsonb(p.value), p.reason,
                                        p.stored))
            cur.execute(f"INSERT INTO rejected_fields ({_REJECTED_FIELD_COLUMNS}) SELECT {_REJECTED_FIELD_COLUMNS} "
                        "FROM stage_rejected_fields ON CONFLICT DO NOTHING RETURNING stored")
            return cur.fetchall()

    def _update_state(self, telemetry: dict[str, list[Telemetry]], events: list[Event],
                      statuses: list[Status]) -> None:
        # Telemetry's latest values are derived in SQL from the staging tables the batch was just copied to:
        # building them in Python cost more GIL time than anything else in the writer (bench/RESULTS.md).
        # Events and statuses are few; they go through stage_state.
        status_of = {s.equipment.id: s.status for s in statuses}  # the last one received wins
        others = sorted({e.equipment.id for e in events} | set(status_of))
        if not telemetry and not others:
            return
        with self.conn.cursor() as cur:
            if others:
                with cur.copy("COPY stage_state (equipment_id, status) FROM STDIN") as copy:
                    for i in others:
                        copy.write_row((i, status_of.get(i)))
            parts = [_STATE_FROM_STAGE[t] for t in telemetry]
            parts.append(sql.SQL("SELECT equipment_id, status, last_ts, last_values FROM stage_state"))
            cur.execute(sql.SQL(_STATE_UPSERT).format(sql.SQL(" UNION ALL ").join(parts)))
