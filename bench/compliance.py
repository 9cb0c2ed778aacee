"""Benchmark: the compliance status of 100,000 equipment with 1,000,000 records (target under 2 s).

A fresh database: mixed equipment (elevators, escalators, boilers, pressure vessels) in 16 districts and 200
firms, registered with generate_series, and 10 records each (inspections and maintenance visits) spread
over the last few years. Then models.compliance computes the status of every (equipment, check): the first
run and the best of 3 of the status computed and counted in SQL (what the figures do), fetched as tuples, and
as the list of CheckStatus; then the scheduler's scan (alerts, reminders). The last line printed is one JSON
object ("seconds": the status of all, computed in SQL, best of 3).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from contextlib import ExitStack
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
from psycopg.rows import dict_row, tuple_row

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.compliance import STATUS_SQL, compliance_statuses, scan_compliance  # noqa: E402
from semon.config import load_config  # noqa: E402
from semon.db import create_database, drop_database, redact  # noqa: E402
from semon.migrate import migrate  # noqa: E402

AS_OF = date(2026, 11, 22)
RECORDS_PER_EQUIPMENT = 10

# 60 % elevators, 20 % escalators, 12 % boilers, 8 % pressure vessels; 2 % suspended, 1 % scrapped;
# 5 % of lifts on demand-based maintenance with a 30-day cycle; 44 % with an online monitor.
_SETUP = """
INSERT INTO districts (name) SELECT 'District ' || g FROM generate_series(1, 16) g;
INSERT INTO maintenance_firms (name, phone) SELECT 'Firm ' || g, '021-5555' FROM generate_series(1, 200) g;
INSERT INTO equipment (code, type, district_id, firm_id, install_date, commissioning_date, status, safety_grade,
                       on_demand_maintenance, maintenance_cycle_days)
SELECT 'BC' || lpad(g::text, 8, '0'),
       CASE WHEN g %% 100 < 60 THEN 'elevator' WHEN g %% 100 < 80 THEN 'escalator'
            WHEN g %% 100 < 92 THEN 'boiler' ELSE 'pressure_vessel' END,
       1 + g %% 16, 1 + g %% 200,
       date '2000-01-01' + (g * 7919) %% 9000, date '2000-03-01' + (g * 7919) %% 9000,
       CASE WHEN g %% 50 = 0 THEN 'suspended' WHEN g %% 100 = 1 THEN 'scrapped' ELSE 'in_use' END,
       CASE WHEN g %% 100 >= 92 THEN 1 + g %% 3 END,
       g %% 20 = 3, CASE WHEN g %% 20 = 3 THEN 30 END
FROM generate_series(1, %(equipment)s) g;
INSERT INTO equipment_state (equipment_id, status, status_changed_at, last_seen)
SELECT id, 'online', now(), now() FROM equipment WHERE id %% 100 < 44;
"""

# The checks each type owes, in the order records cycle through them (maintenance most often for lifts).
_RECORDS = """
WITH checks (type, n, names) AS (VALUES
    ('elevator', 6, ARRAY['maintenance', 'maintenance', 'maintenance', 'periodic_inspection',
                          'governor_calibration', 'rescue_drill']),
    ('escalator', 5, ARRAY['maintenance', 'maintenance', 'maintenance', 'periodic_inspection', 'rescue_drill']),
    ('boiler', 5, ARRAY['periodic_inspection', 'internal_inspection', 'water_quality_test',
                        'safety_valve_calibration', 'pressure_gauge_verification']),
    ('pressure_vessel', 3, ARRAY['periodic_inspection', 'safety_valve_calibration',
                                 'pressure_gauge_verification'])),
r AS (
    -- k-th record of each equipment, 40 days apart (so never two on one day), the newest 0-30 days ago.
    SELECT e.id, c.names[1 + k %% c.n] AS check_name,
           %(as_of)s::date - (k * 40 + (e.id * 13) %% 30) AS on_day,
           CASE WHEN (e.id + k) %% 33 = 0 THEN 'fail' ELSE 'pass' END AS result
    FROM equipment e JOIN checks c ON c.type = e.type CROSS JOIN generate_series(0, %(per)s - 1) k)
{insert}
"""
_INSPECTIONS = """INSERT INTO inspections (equipment_id, kind, performed_on, result)
SELECT id, check_name, on_day, result FROM r WHERE check_name <> 'maintenance'"""
_MAINTENANCE = """INSERT INTO maintenance_records (equipment_id, performed_on, result)
SELECT id, on_day, result FROM r WHERE check_name = 'maintenance'"""


def log(message: str) -> None:
    print(message, flush=True)


def setup(url: str, equipment: int) -> int:
    """Register the fleet and its records; returns the number of records."""
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.monotonic()
        for statement in filter(str.strip, _SETUP.split(";\n")):
            conn.execute(statement, {"equipment": equipment})
        for insert in (_INSPECTIONS, _MAINTENANCE):
            conn.execute(_RECORDS.format(insert=insert), {"as_of": AS_OF, "per": RECORDS_PER_EQUIPMENT})
        conn.execute("VACUUM ANALYZE")
        records = conn.execute("SELECT (SELECT count(*) FROM inspections) + (SELECT count(*) FROM "
                               "maintenance_records)").fetchone()[0]
        log(f"setup: {equipment:,} equipment, {records:,} records in {time.monotonic() - started:.1f} s")
        return records


def timed(run) -> tuple[float, object]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--equipment", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    config = load_config()
    with ExitStack() as stack:
        name = f"semon_bench_compliance_{os.getpid()}_{secrets.token_hex(3)}"
        url = create_database(config.database_url, name)
        stack.callback(drop_database, config.database_url, name)
        migrate(url)
        log(f"database: {redact(url)} (dropped at the end)")
        records = setup(url, args.equipment)
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            times: dict[str, list[float]] = {"sql": [], "fetch": [], "list": []}
            counts: dict[str, int] = {}
            rows = 0
            for _ in range(args.runs):
                seconds, result = timed(lambda: conn.execute(
                    f"SELECT status, count(*) AS n FROM ({STATUS_SQL}) s GROUP BY status", {"as_of": AS_OF})
                    .fetchall())
                times["sql"].append(seconds)
                counts = {r["status"]: r["n"] for r in result}  # type: ignore[union-attr]
                seconds, _ = timed(lambda: conn.cursor(row_factory=tuple_row, binary=True)
                                   .execute(STATUS_SQL, {"as_of": AS_OF}).fetchall())
                times["fetch"].append(seconds)
                seconds, statuses = timed(lambda: compliance_statuses(conn, AS_OF))
                times["list"].append(seconds)
                rows = len(statuses)  # type: ignore[arg-type]
            started = time.perf_counter()
            scan = scan_compliance(conn, AS_OF, datetime.now(UTC))
            first_scan = time.perf_counter() - started
            started = time.perf_counter()
            scan_compliance(conn, AS_OF, datetime.now(UTC))
            next_scan = time.perf_counter() - started
    log(f"status rows: {rows:,} ({', '.join(f'{k} {v:,}' for k, v in sorted(counts.items()))})")
    for key, label in (("sql", "computed and counted by status in SQL"), ("fetch", "all rows fetched as tuples"),
                       ("list", "compliance_statuses (CheckStatus list)")):
        log(f"{label:<40} first {times[key][0]:.2f} s, best {min(times[key]):.2f} s")
    log(f"scan_compliance: first run {first_scan:.1f} s ({scan.raised:,} alerts raised, {scan.reminders:,} "
        f"reminders), next run {next_scan:.1f} s")
    best = min(times["sql"])
    print(json.dumps({"equipment": args.equipment, "records": records, "status_rows": rows,
                      "seconds": round(best, 3), "first_seconds": round(times["sql"][0], 3),
                      "fetch_seconds": round(min(times["fetch"]), 3), "list_seconds": round(min(times["list"]), 3),
                      "per_status_row_us": round(best / max(rows, 1) * 1e6, 2), "statuses": counts,
                      "first_scan_seconds": round(first_scan, 1), "next_scan_seconds": round(next_scan, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
