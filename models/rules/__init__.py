"""Fault rules on telemetry: a pure engine that derives fault codes from each equipment's samples, and
its runtime (runtime.py: state in rule_state, alerts through alerts/) that the ingester and the rule_expiry job
call (docs/rules.md)."""

from models.rules.engine import REGISTRY, Change, Detector, EquipmentInfo, Sample, load_state
from models.rules.settings import RuleSettings, default_settings, settings_from_config

__all__ = ["REGISTRY", "Change", "Detector", "EquipmentInfo", "RuleSettings", "Sample", "default_settings",
           "load_state", "settings_from_config"]
