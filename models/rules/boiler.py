"""Boiler and pressure-vessel rules: water level, pressure, flame, flue gas, water quality, safety valve
(docs/rules.md). Neither reports a mode: their rules apply at all times."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.rules.rule import SLOW, Hit, Rule, Verdict
from models.rules.settings import RuleSettings


class View:
    """One boiler or pressure-vessel sample as the rules read it."""

    __slots__ = ("values", "rated_pressure", "lit")


def observe(values: Mapping[str, Any], ts: float, mem: dict[str, Any], equipment: Any, s: RuleSettings) -> View:
    """Read one sample, updating the equipment's memory `mem` (JSON scalars only)."""
    v = View()
    v.values = values
    v.rated_pressure = equipment.rated_pressure_mpa
    # Whether the flame was proven since the burner was last called to fire: a burner starts with a pre-purge and
    # an ignition, firing without a flame for a while; losing a proven flame is a flame failure at once.
    burner = values.get("burner")
    if burner == "off":
        mem.pop("lit", None)
    elif burner is not None and values.get("flame"):
        mem["lit"] = 1
    v.lit = "lit" in mem
    return v


def _water_level(low: bool):
    def check(v: View, s: RuleSettings) -> Verdict:
        get = v.values.get
        level = get("water_level_mm")
        if level is None:
            return None
        if (level >= -s.water_level_band_mm) if low else (level <= s.water_level_band_mm):
            return False
        # The mass balance tells a real deficit (or surplus) from a swelling level or a glitch: the feed controller
        # answers a level error by feeding more (less) than the steam taken, so a feed short of (above) the steam
        # flow means the water is really running out (in).
        feed, steam = get("feedwater_flow_tph"), get("steam_flow_tph")
        confirmed = feed is not None and steam is not None and (feed < steam if low else feed > steam)
        return Hit(s.water_level_s, {"water_level_mm": level, "band_mm": s.water_level_band_mm,
                                     "feedwater_flow_tph": feed, "steam_flow_tph": steam}, corroborated=confirmed)

    return check


def _overpressure(v: View, s: RuleSettings) -> Verdict:
    rated = v.rated_pressure
    if not rated:
        return False  # no rated pressure in the registry: nothing to compare with
    pressure = v.values.get("pressure_mpa")
    if pressure is None:
        return None
    limit = rated * s.overpressure_ratio
    if pressure <= limit:
        return False
    return Hit(0.0, {"pressure_mpa": pressure, "rated_pressure_mpa": rated, "limit_mpa": round(limit, 4)})


def _flame_failure(v: View, s: RuleSettings) -> Verdict:
    get = v.values.get
    burner, flame = get("burner"), get("flame")
    if burner == "off" or flame:
        return False
    if burner is None or flame is None:
        return None
    if v.lit:
        return Hit(s.flame_failure_s, {"burner": burner, "flame": False, "lost": True})
    return Hit(s.ignition_s, {"burner": burner, "flame": False, "lost": False})


def _high_flue_gas_temp(v: View, s: RuleSettings) -> Verdict:
    temp = v.values.get("flue_gas_temp_c")
    if temp is None:
        return None
    if temp <= s.flue_gas_max_c:
        return False
    return Hit(s.flue_gas_s, {"flue_gas_temp_c": temp, "limit_c": s.flue_gas_max_c,
                              "burner": v.values.get("burner")})


def _water_quality(v: View, s: RuleSettings) -> Verdict:
    get = v.values.get
    hardness, ph = get("water_hardness_mmol_l"), get("ph")
    if hardness is None and ph is None:
        return None
    bad_hardness = hardness is not None and hardness > s.hardness_max_mmol_l
    bad_ph = ph is not None and not s.ph_min <= ph <= s.ph_max
    if not (bad_hardness or bad_ph):
        return False
    return Hit(s.water_quality_s, {"water_hardness_mmol_l": hardness, "ph": ph,
                                   "hardness_max_mmol_l": s.hardness_max_mmol_l, "ph_min": s.ph_min,
                                   "ph_max": s.ph_max, "hardness_out": bad_hardness, "ph_out": bad_ph})


def _describe_water_quality(f: Mapping[str, Any]) -> str:
    out = []
    if f["hardness_out"]:
        out.append(f"hardness {f['water_hardness_mmol_l']} mmol/L above {f['hardness_max_mmol_l']}")
    if f["ph_out"]:
        out.append(f"pH {f['ph']} outside {f['ph_min']}-{f['ph_max']}")
    return ", ".join(out)


def _safety_valve_open(v: View, s: RuleSettings) -> Verdict:
    valve = v.values.get("safety_valve_open")
    if valve is None:
        return None
    if not valve:
        return False
    return Hit(0.0, {"pressure_mpa": v.values.get("pressure_mpa"), "rated_pressure_mpa": v.rated_pressure})


def _describe_level(f: Mapping[str, Any]) -> str:
    return f"water level {f['water_level_mm']:+g} mm, beyond ±{f['band_mm']:g} mm"


_OVERPRESSURE = Rule("overpressure", _overpressure,
                     lambda f: f"{f['pressure_mpa']} MPa, above {f['limit_mpa']} MPa "
                               f"({f['rated_pressure_mpa']} MPa rated)")

BOILER_RULES: tuple[Rule, ...] = (
    _OVERPRESSURE,
    Rule("low_water_level", _water_level(low=True), _describe_level),
    Rule("high_water_level", _water_level(low=False), _describe_level),
    Rule("flame_failure", _flame_failure,
         lambda f: f"burner {f['burner']} {'lost its flame' if f['lost'] else 'called to fire shows no flame'}"),
    # The flue gas swings with the firing rate, from high fire to low fire every few minutes: one alert for as long
    # as it keeps coming back.
    Rule("high_flue_gas_temp", _high_flue_gas_temp,
         lambda f: f"flue gas {f['flue_gas_temp_c']} °C, above {f['limit_c']:g} °C", hysteresis=SLOW),
    Rule("water_quality", _water_quality, _describe_water_quality, hysteresis=SLOW),
)

VESSEL_RULES: tuple[Rule, ...] = (
    _OVERPRESSURE,
    Rule("safety_valve_open", _safety_valve_open, lambda f: f"safety valve open at {f['pressure_mpa']} MPa"),
)
