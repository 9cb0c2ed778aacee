"""Exporting the registry as CSV in its import format, so that an export re-imports unchanged
(docs/registry-csv.md)."""

from __future__ import annotations

from typing import TextIO

from semon.config import Config
from semon.db import connect
from semon.registry.csvfiles import write_csv
from semon.registry.fields import CHECKS, ENTITIES, EQUIPMENT_COLUMNS, MAINTENANCE_KIND, RECORD_COLUMNS

# The latest periodic inspection is exported as last_inspection_on, so that the file re-imports unchanged.
_EQUIPMENT_EXPORT_SQL = """
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

# The inspections of the records' checks and the routine maintenance visits, by code, date and check.
_RECORDS_EXPORT_SQL = """
SELECT e.code, i.kind AS check, i.performed_on AS date, i.result, i.organisation, i.person,
       i.report_no AS report_number, i.defects, i.rectify_by
  FROM inspections i JOIN equipment e ON e.id = i.equipment_id WHERE i.kind = ANY(%(checks)s)
UNION ALL
SELECT e.code, 'maintenance', m.performed_on, m.result, m.organisation, m.person, m.report_no, m.defects,
       m.rectify_by
  FROM maintenance_records m JOIN equipment e ON e.id = m.equipment_id WHERE m.kind = %(maintenance)s
 ORDER BY 1, 3, 2
"""


def export_csv(config: Config, what: str, out: TextIO) -> int:
    """Write `what` (equipment, records, or an entity name) as CSV in its import format; returns the rows."""
    with connect(config.database_url) as conn:
        if what == "equipment":
            return write_csv(out, EQUIPMENT_COLUMNS, conn.execute(_EQUIPMENT_EXPORT_SQL))
        if what == "records":
            return write_csv(out, RECORD_COLUMNS, conn.execute(_RECORDS_EXPORT_SQL, {
                "checks": [c for c in CHECKS if c != "maintenance"], "maintenance": MAINTENANCE_KIND}))
        entity = ENTITIES[what]
        selected = ", ".join(f"{spec.db_column(name)} AS {name}" for name, spec in entity.fields.items())
        return write_csv(out, entity.columns,
                         conn.execute(f"SELECT {selected} FROM {entity.table} ORDER BY {entity.key}"))
