"""The rules' thresholds and dwells: the rule_* settings of semon/config.py, without their prefix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from semon.config import SETTINGS

PREFIX = "rule_"


@dataclass(frozen=True)
class RuleSettings:
    """Every rule_* setting (docs/configuration.md, docs/rules.md); times in seconds on the monitor's clock."""

    clear_s: float
    transient_clear_s: float
    slow_clear_s: float
    repeat_dedup_s: float
    silence_s: float
    sample_gap_s: float
    moving_speed_mps: float
    entrapment_s: float
    entrapment_at_floor_s: float
    occupancy_debounce_s: float
    stop_outside_door_zone_s: float
    door_open_moving_samples: int
    relevel_speed_mps: float
    overspeed_ratio: float
    door_lock_s: float
    door_open_too_long_s: float
    door_reopen_count: int
    door_close_failure_s: float
    door_open_failure_s: float
    run_timeout_s: float
    overtravel_s: float
    floor_lost_s: float
    handrail_deviation_ratio: float
    handrail_deviation_s: float
    brake_not_released_s: float
    water_level_band_mm: float
    water_level_s: float
    overpressure_ratio: float
    flame_failure_s: float
    ignition_s: float
    flue_gas_max_c: float
    flue_gas_s: float
    hardness_max_mmol_l: float
    ph_min: float
    ph_max: float
    water_quality_s: float


def settings_from_config(config: Mapping[str, Any]) -> RuleSettings:
    """The rule settings in force (a semon.config.Config, or any mapping of setting names to values)."""
    return RuleSettings(**{f.name: config[PREFIX + f.name] for f in fields(RuleSettings)})


def default_settings(**changes: Any) -> RuleSettings:
    """The defaults of the settings table, with some changed by their short names (clear_s=30)."""
    defaults = {s.name: s.default for s in SETTINGS if s.name.startswith(PREFIX)}
    settings = settings_from_config(defaults)
    return RuleSettings(**{**settings.__dict__, **changes})
