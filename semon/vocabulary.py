"""The domain vocabulary shared by every part: equipment types, telemetry fields, channels, severities."""

from __future__ import annotations

import re
from dataclasses import dataclass

EQUIPMENT_TYPES = ("elevator", "escalator", "boiler", "pressure_vessel")
CHANNELS = ("telemetry", "event", "status")
CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TOPIC_ROOT = "sem/v1"

# Most severe first; the hazards page and routing sort on this order.
SEVERITIES = ("critical", "high", "medium", "low")
ALERT_STATES = ("open", "acknowledged", "resolved")
INSPECTION_RESULTS = ("pass", "pass_after_rectification", "fail")
EQUIPMENT_STATUSES = ("in_use", "suspended", "scrapped")

# The status of one check an equipment owes, as of a day (docs/compliance.md).
COMPLIANCE_STATUSES = ("ok", "due_soon", "overdue", "never_recorded")
# The equipment list's periodic-inspection status: the compliance status of that check, with never_recorded read
# as no_record and equipment not in use (which owes no check) as not_required (docs/compliance.md).
INSPECTION_STATUSES = ("ok", "due_soon", "overdue", "no_record", "not_required")
# Whether an equipment's monitor is reporting (models/presence.py decides).
CONNECTION_STATES = ("online", "offline", "no_data")

ELEVATOR_MODES = ("normal", "inspection", "maintenance", "fire_return", "firefighter",
                  "emergency_power", "earthquake", "out_of_service")
DIRECTIONS = ("up", "down", "stop")
DOOR_STATES = ("open", "opening", "closed", "closing")
BURNER_STATES = ("off", "low", "high")


@dataclass(frozen=True)
class TelemetryField:
    """A typed telemetry field; `kind` is float, int, bool or enum (with `choices`)."""

    name: str
    kind: str
    choices: tuple[str, ...] = ()

    @property
    def sql_type(self) -> str:
        return {"float": "double precision", "int": "bigint", "bool": "boolean", "enum": "text"}[self.kind]


def _fields(*specs: tuple) -> tuple[TelemetryField, ...]:
    return tuple(TelemetryField(*spec) for spec in specs)


# The contract's telemetry fields per type (docs/mqtt.md); each is a column of telemetry_<type>.
TELEMETRY_FIELDS: dict[str, tuple[TelemetryField, ...]] = {
    "elevator": _fields(
        ("floor", "int"), ("direction", "enum", DIRECTIONS), ("speed_mps", "float"),
        ("door", "enum", DOOR_STATES), ("door_zone", "bool"), ("load_pct", "float"),
        ("occupied", "bool"), ("mode", "enum", ELEVATOR_MODES), ("safety_circuit_ok", "bool"),
        ("door_lock_ok", "bool"), ("run_count", "int"), ("door_cycles", "int"), ("run_hours", "float"),
        ("vibration_rms_g", "float"), ("motor_current_a", "float"), ("motor_temp_c", "float"),
        ("leveling_mm", "float"),
    ),
    "escalator": _fields(
        ("running", "bool"), ("direction", "enum", DIRECTIONS), ("speed_mps", "float"),
        ("handrail_left_mps", "float"), ("handrail_right_mps", "float"), ("mode", "enum", ELEVATOR_MODES),
        ("safety_circuit_ok", "bool"), ("brake_ok", "bool"), ("motor_current_a", "float"),
        ("vibration_rms_g", "float"), ("run_hours", "float"),
    ),
    "boiler": _fields(
        ("pressure_mpa", "float"), ("water_level_mm", "float"), ("steam_temp_c", "float"),
        ("feedwater_temp_c", "float"), ("flue_gas_temp_c", "float"), ("o2_pct", "float"),
        ("burner", "enum", BURNER_STATES), ("flame", "bool"), ("feedwater_flow_tph", "float"),
        ("steam_flow_tph", "float"), ("load_pct", "float"), ("water_hardness_mmol_l", "float"),
        ("ph", "float"),
    ),
    "pressure_vessel": _fields(
        ("pressure_mpa", "float"), ("temperature_c", "float"), ("level_pct", "float"),
        ("safety_valve_open", "bool"),
    ),
}


def telemetry_table(equipment_type: str) -> str:
    """The hypertable that holds one equipment type's telemetry."""
    if equipment_type not in EQUIPMENT_TYPES:
        raise ValueError(f"unknown equipment type {equipment_type!r}")
    return f"telemetry_{equipment_type}"


def topic(equipment_type: str, code: str, channel: str) -> str:
    """The MQTT topic of one equipment's channel."""
    return f"{TOPIC_ROOT}/{equipment_type}/{code}/{channel}"
