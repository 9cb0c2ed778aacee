"""The domain vocabulary shared by every part: equipment types, telemetry fields, channels, severities."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

EQUIPMENT_TYPES = ("elevator", "escalator", "boiler", "pressure_vessel")
CHANNELS = ("telemetry", "event", "status")
CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TOPIC_ROOT = "sem/v1"

# Most severe first; the hazards page and routing sort on this order.
SEVERITIES = ("critical", "high", "medium", "low")
ALERT_STATES = ("open", "acknowledged", "on_site", "resolved")  # docs/alert-handling.md
# The wear models' fleet detectors (docs/wear.md); the first is the default.
WEAR_DETECTORS = ("fleet_zscore", "robust_covariance", "isolation_forest", "zscore")
# Who raised an alert (docs/alerts.md): the monitor, a rule on its telemetry, a wear model, the compliance scan,
# the presence job.
ALERT_SOURCES = ("device", "rule", "anomaly", "compliance", "presence")
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
    """A typed telemetry field; `kind` is float, int, bool or enum (with `choices`).

    A number below `minimum` or above `maximum` cannot be true (`bounds_reason` says why): the ingester refuses
    that field and stores the message's others (docs/mqtt.md, "Values that cannot be true").
    """

    name: str
    kind: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    bounds_reason: str = ""

    @property
    def sql_type(self) -> str:
        return {"float": "double precision", "int": "bigint", "bool": "boolean", "enum": "text"}[self.kind]

    @property
    def cumulative(self) -> bool:
        """Whether the field is a counter since installation, which only grows (docs/mqtt.md)."""
        return self.name in CUMULATIVE_FIELDS


# The counters since installation; a reading below the one before is a reset or a fault (docs/rollup.md).
CUMULATIVE_FIELDS = frozenset({"run_count", "door_cycles", "run_hours"})


Bounds = tuple[float | None, float | None, str]  # (minimum, maximum, why no real equipment reads outside them)


def _fields(bounds: dict[str, Bounds], *specs: tuple) -> tuple[TelemetryField, ...]:
    fields = tuple(TelemetryField(*spec) for spec in specs)
    stray = sorted(set(bounds) - {f.name for f in fields})
    if stray:
        raise ValueError(f"bounds given for fields that do not exist: {', '.join(stray)}")
    return tuple(replace(f, minimum=b[0], maximum=b[1], bounds_reason=b[2]) if (b := bounds.get(f.name)) else f
                 for f in fields)


# Bounds catch a wrong unit, scale or sign, never a real reading however alarming: each lies beyond anything real
# equipment reaches, faults and acceptance tests included. Temperatures may read the ambient air of a cold plant.
_COLDEST_C = -60.0  # colder than anywhere in China (the record is -53 °C, at Mohe)
_COLD_REASON = "-60 °C is colder than anywhere in China, where the record is -53 °C"
_VACUUM_MPA = -0.101325  # gauge pressure of a perfect vacuum: nothing reads lower
_COUNTER: Bounds = (0, 10**10, "a counter is never negative; 10,000,000,000 is one a second for 300 years")
_RUN_HOURS: Bounds = (0, 1_000_000, "hours run are never negative; 1,000,000 h is 114 years without a stop")
_VIBRATION: Bounds = (0, 20, "an RMS is never negative; a ride is felt at 0.01 g, and 20 g would wreck the machine")
_MOTOR_CURRENT: Bounds = (0, 5000, "an RMS current is never negative; the largest elevator motors draw about 1,000 A")
_ESCALATOR_SPEED: Bounds = (0, 5, "a speed is a magnitude; escalators and moving walks run at 0.5-0.9 m/s")
_SHARE: Bounds = (0, 100, "a share of the whole, 0-100 %")
_FLOW: Bounds = (0, 10_000, "a flow here is never negative; the largest boilers make about 4,000 t/h")

# The contract's telemetry fields per type (docs/mqtt.md); each is a column of telemetry_<type>.
TELEMETRY_FIELDS: dict[str, tuple[TelemetryField, ...]] = {
    "elevator": _fields(
        {"floor": (-50, 300, "no building has 50 basement levels or 300 storeys; the tallest has about 160"),
         "speed_mps": (0, 30, "a speed is a magnitude, `direction` gives the way; the fastest elevators run at "
                              "21 m/s and their governors trip at 115 %"),
         "load_pct": (0, 300, "a load is never negative, and a car's floor area keeps it far below 3 times its "
                              "rated load"),
         "run_count": _COUNTER, "door_cycles": _COUNTER, "run_hours": _RUN_HOURS,
         "vibration_rms_g": _VIBRATION, "motor_current_a": _MOTOR_CURRENT,
         "motor_temp_c": (_COLDEST_C, 500, f"{_COLD_REASON}; a winding burns out far below 500 °C"),
         "leveling_mm": (-1_000_000, 1_000_000, "no car is 1 km from a landing: the longest travel is about 580 m")},
        ("floor", "int"), ("direction", "enum", DIRECTIONS), ("speed_mps", "float"),
        ("door", "enum", DOOR_STATES), ("door_zone", "bool"), ("load_pct", "float"),
        ("occupied", "bool"), ("mode", "enum", ELEVATOR_MODES), ("safety_circuit_ok", "bool"),
        ("door_lock_ok", "bool"), ("run_count", "int"), ("door_cycles", "int"), ("run_hours", "float"),
        ("vibration_rms_g", "float"), ("motor_current_a", "float"), ("motor_temp_c", "float"),
        ("leveling_mm", "float"),
    ),
    "escalator": _fields(
        {"speed_mps": _ESCALATOR_SPEED, "handrail_left_mps": _ESCALATOR_SPEED, "handrail_right_mps": _ESCALATOR_SPEED,
         "motor_current_a": _MOTOR_CURRENT, "vibration_rms_g": _VIBRATION, "run_hours": _RUN_HOURS},
        ("running", "bool"), ("direction", "enum", DIRECTIONS), ("speed_mps", "float"),
        ("handrail_left_mps", "float"), ("handrail_right_mps", "float"), ("mode", "enum", ELEVATOR_MODES),
        ("safety_circuit_ok", "bool"), ("brake_ok", "bool"), ("motor_current_a", "float"),
        ("vibration_rms_g", "float"), ("run_hours", "float"),
    ),
    "boiler": _fields(
        {"pressure_mpa": (_VACUUM_MPA, 100, "gauge pressure: none is below a perfect vacuum; the highest-pressure "
                                            "boilers run at about 30 MPa, and a value in kPa is 1,000 times too big"),
         "water_level_mm": (-5000, 5000, "the level moves within a drum or shell, and none is 5 m across"),
         "steam_temp_c": (_COLDEST_C, 800, f"{_COLD_REASON}; the hottest boilers make steam at about 620 °C"),
         "feedwater_temp_c": (_COLDEST_C, 400, f"{_COLD_REASON}; feedwater is heated to at most about 300 °C"),
         "flue_gas_temp_c": (_COLDEST_C, 2000, f"{_COLD_REASON}; no fuel burns in air hotter than about 2,000 °C"),
         "o2_pct": _SHARE, "feedwater_flow_tph": _FLOW, "steam_flow_tph": _FLOW,
         "load_pct": (0, 200, "a load is never negative, and no boiler makes twice its rated output"),
         "water_hardness_mmol_l": (0, 100, "hardness is never negative; seawater's is about 60 mmol/L, and a value "
                                           "in mg/L CaCO3 is 100 times too big"),
         "ph": (0, 14, "the pH scale of water runs from 0 to 14")},
        ("pressure_mpa", "float"), ("water_level_mm", "float"), ("steam_temp_c", "float"),
        ("feedwater_temp_c", "float"), ("flue_gas_temp_c", "float"), ("o2_pct", "float"),
        ("burner", "enum", BURNER_STATES), ("flame", "bool"), ("feedwater_flow_tph", "float"),
        ("steam_flow_tph", "float"), ("load_pct", "float"), ("water_hardness_mmol_l", "float"),
        ("ph", "float"),
    ),
    "pressure_vessel": _fields(
        {"pressure_mpa": (_VACUUM_MPA, 2000, "gauge pressure: none is below a perfect vacuum; ultra-high-pressure "
                                             "vessels such as isostatic presses run at up to about 1,000 MPa"),
         "temperature_c": (-273.15, 1500, "nothing is colder than absolute zero, and steel melts at about 1,450 °C"),
         "level_pct": _SHARE},
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


def fault_label(description: str, name_zh: str = "") -> str:
    """How a fault code reads to people (fault_codes.description and .name_zh): "Passenger trapped (困人)"."""
    text = description[:1].upper() + description[1:]
    return f"{text} ({name_zh})" if name_zh else text
