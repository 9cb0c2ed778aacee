"""A steam boiler: burner modulating on pressure, feedwater on drum level, water chemistry per GB/T 1576."""

from __future__ import annotations

from datetime import UTC, datetime, timezone
from typing import TYPE_CHECKING, Any

from simulators.base import Device, FaultBehaviour, clamp
from simulators.traffic import activity, heat_demand_factor

if TYPE_CHECKING:
    from simulators.fleet import Equipment

FIRING = {"off": 0.0, "low": 0.35, "high": 1.0}  # heat input as a share of rated steam output
PRESSURE_RATE = 0.10  # share of rated pressure gained per minute at a full-capacity surplus of heat
LEVEL_RATE_MM_S = 1.5  # drum level change per second at a full-capacity surplus of feedwater
LEVEL_GAIN = 0.02  # feedwater correction (share of capacity) per mm of level error
LEVEL_LIMIT_MM = 200.0  # the gauge glass ends here
AMBIENT_C = 20.0
# What full wear (severity 1) does; severity rises from 0 over an episode (simulators/wear.py).
WORN_SCALE_C = 50.0  # scale on the heating surfaces: hotter flue gas at the same firing
WORN_HARDNESS = 0.03  # exhausted softener: extra feedwater hardness, mmol/L (the GB/T 1576 limit is 0.03)
WORN_O2_PCT = 3.0  # burner drift: extra excess air


def saturation_temp_c(pressure_mpa: float) -> float:
    """Saturated steam temperature at a gauge pressure; within ~2 K of the steam tables up to 2.5 MPa."""
    absolute_bar = (pressure_mpa + 0.101325) * 10
    return 100.0 * absolute_bar ** 0.25


class Boiler(Device):
    """A simulated boiler monitor."""

    equipment_type = "boiler"

    def __init__(self, equipment: Equipment, seed: int, tz: timezone = UTC):
        super().__init__(equipment, seed, tz)
        rng = self.rng
        self.rated_pressure = equipment.rated_pressure_mpa or 1.25
        self.capacity = equipment.rated_capacity_tph or 4.0
        self.kind = equipment.site_kind
        self.setpoint = self.rated_pressure * rng.uniform(0.75, 0.85)
        self.fouling_c = rng.uniform(0.0, 15.0)
        self.o2_offset = rng.uniform(-0.4, 0.4)
        self.feedwater_base_c = rng.uniform(95.0, 104.0)  # deaerated feedwater
        self.hardness_base = rng.uniform(0.006, 0.018)  # GB/T 1576 feedwater: at most 0.03 mmol/L
        self.ph_base = rng.uniform(10.6, 11.3)  # GB/T 1576 boiler water: pH 10-12
        running = self.in_service
        self.pressure = self.setpoint if running else 0.0
        self.level = 0.0
        self.burner = "low" if running else "off"
        self.demand = 0.5
        self.steam = 0.0
        self.feed = 0.0
        self.flue = 150.0 if running else AMBIENT_C
        self.o2 = 5.5 if running else 20.9
        # Interlocks and failures a fault switches on; recover() switches them off.
        self.burner_lockout = False
        self.flame_failed = False  # flame safeguard locked out: the burner may be called, it shows no flame
        self.feed_override: float | None = None
        self.steam_valve_closed = False
        self.relief_open = False
        self.flue_extra_c = 0.0
        self.water_quality_bad = False
        # Seconds of pre-purge and ignition left after the burner was called to fire: no flame, no heat yet.
        self.purge_left = 0.0

    @property
    def lit(self) -> bool:
        """Whether the flame is proven (the burner fires and its start sequence is over)."""
        return self.burner != "off" and self.purge_left <= 0 and not self.flame_failed

    def start(self, now: datetime) -> None:
        self.demand = self._demand_target(self.local_hour(now))
        if self.in_service:
            self.steam = self.feed = self.capacity * self.demand

    def _demand_target(self, hour: float) -> float:
        base = 0.25 + 0.6 * activity(self.kind, hour, self.weekday)
        return clamp(base * heat_demand_factor(self.kind, self.day_of_year), 0.1, 0.95)

    def tick(self, dt: float, hour: float) -> None:
        if not self.in_service:
            return
        rng = self.rng
        self.demand += (self._demand_target(hour) - self.demand) * dt / 600 + rng.gauss(0, 0.004) * dt ** 0.5
        self.demand = clamp(self.demand, 0.05, 0.98)
        was_off = self.burner == "off"
        self._control()
        if was_off and self.burner != "off":
            self.purge_left = self.operation.burner_purge_s
        behaviour = self.behaviour
        if behaviour is not None and behaviour.tick is not None:
            behaviour.tick(self, dt)
        self._physics(dt)
        self.purge_left = max(0.0, self.purge_left - dt)

    def _control(self) -> None:
        # Burner on pressure with hysteresis, so it cycles off/low/high every few minutes.
        error = (self.pressure - self.setpoint) / self.rated_pressure
        if self.burner_lockout:
            self.burner = "off"
        elif self.burner == "off" and error < -0.02:
            self.burner = "low"
        elif self.burner == "low":
            if error < -0.05:
                self.burner = "high"
            elif error > 0.04:
                self.burner = "off"
        elif self.burner == "high" and error > 0.0:
            self.burner = "low"

    def _physics(self, dt: float) -> None:
        rng, capacity, rated = self.rng, self.capacity, self.rated_pressure
        # Below half the set point the header cannot take the full demand.
        available = clamp(self.pressure / (0.5 * self.setpoint), 0.0, 1.0)
        self.steam = 0.0 if self.steam_valve_closed else capacity * self.demand * available
        relief = 0.8 * capacity * available if self.relief_open else 0.0
        firing = FIRING[self.burner] if self.lit else 0.0
        heat = firing * capacity
        self.pressure += rated * PRESSURE_RATE / 60 * (heat - self.steam - relief) / capacity * dt
        self.pressure = clamp(self.pressure, 0.0, rated * 1.1)
        if self.feed_override is None:
            wanted = self.steam - LEVEL_GAIN * capacity * self.level
            self.feed = clamp(wanted, 0.0, 1.5 * capacity)
        else:
            self.feed = self.feed_override
        self.level += LEVEL_RATE_MM_S * (self.feed - self.steam - relief) / capacity * dt
        self.level = clamp(self.level + rng.gauss(0, 0.3) * dt ** 0.5, -LEVEL_LIMIT_MM, LEVEL_LIMIT_MM)
        scale = WORN_SCALE_C * self.worn("scaling")
        flue_target = 75.0 if firing == 0 else 120.0 + 100.0 * firing + self.fouling_c + scale
        self.flue += (flue_target + self.flue_extra_c - self.flue) * dt / 90
        drift = WORN_O2_PCT * self.worn("burner_drift")
        o2_target = 20.9 if firing == 0 else (3.3 if firing == 1.0 else 5.5) + self.o2_offset + drift
        self.o2 += (o2_target - self.o2) * dt / 15

    def telemetry(self) -> dict[str, Any]:
        rng = self.rng
        running = self.in_service
        if self.water_quality_bad:
            hardness, ph = rng.uniform(0.06, 0.1), rng.uniform(9.4, 9.8)
        else:
            hardness = max(0.0, self.hardness_base + WORN_HARDNESS * self.worn("softener") + rng.gauss(0, 0.001))
            ph = self.ph_base + rng.gauss(0, 0.03)
        return {
            "pressure_mpa": round(max(0.0, self.pressure + rng.gauss(0, 0.002)) if running else 0.0, 3),
            "water_level_mm": round(self.level + rng.gauss(0, 1.0), 1),
            "steam_temp_c": round(saturation_temp_c(self.pressure) if running else AMBIENT_C, 1),
            "feedwater_temp_c": round(self.feedwater_base_c + rng.gauss(0, 0.4) if running else AMBIENT_C, 1),
            "flue_gas_temp_c": round(self.flue + rng.gauss(0, 0.8), 1),
            "o2_pct": round(clamp(self.o2 + rng.gauss(0, 0.08), 0.0, 20.9), 2),
            "burner": self.burner,
            "flame": self.lit,
            "feedwater_flow_tph": round(self.feed, 2),
            "steam_flow_tph": round(self.steam, 2),
            "load_pct": round(self.steam / self.capacity * 100, 1),
            "water_hardness_mmol_l": round(hardness, 4),
            "ph": round(ph, 2),
        }

    def fault_detail(self) -> dict[str, Any]:
        return {"pressure_mpa": round(self.pressure, 3), "rated_pressure_mpa": self.rated_pressure,
                "water_level_mm": round(self.level, 1), "burner": self.burner,
                "flue_gas_temp_c": round(self.flue, 1)}

    def recover(self, fault: str) -> None:
        self.burner_lockout = self.steam_valve_closed = self.relief_open = self.water_quality_bad = False
        self.flame_failed = False
        self.feed_override = None
        self.flue_extra_c = 0.0


def _low_water_level(boiler: Boiler) -> None:
    # Feedwater lost; at the low-level limit (-50 mm) the interlock cuts the burner and locks it out.
    boiler.level = min(boiler.level, -55.0)
    boiler.feed_override = 0.0
    boiler.burner_lockout = True
    boiler.burner = "off"


def _high_water_level(boiler: Boiler) -> None:
    boiler.level = max(boiler.level, 55.0)
    boiler.feed_override = 1.5 * boiler.capacity  # feed valve stuck open


def _overpressure(boiler: Boiler) -> None:
    # The steam valve shut with the burner firing: pressure passed the rating before the interlock cut in.
    boiler.pressure = max(boiler.pressure, boiler.rated_pressure * boiler.rng.uniform(1.03, 1.06))
    boiler.steam_valve_closed = True
    boiler.burner_lockout = True
    boiler.burner = "off"


def _flame_failure(boiler: Boiler) -> None:
    # The flame safeguard shuts the fuel valve and locks out; the pressure control still calls for heat, so the
    # burner stage stays commanded with no flame (a low-water or overpressure interlock cuts the call itself).
    boiler.flame_failed = True


def _high_flue_gas_temp(boiler: Boiler) -> None:
    boiler.flue_extra_c = 130.0
    boiler.flue = max(boiler.flue, 265.0)


def _feedwater_failure(boiler: Boiler) -> None:
    boiler.feed_override = 0.0


def _low_water_interlock(boiler: Boiler, dt: float) -> None:
    # With no feedwater the level falls; at the low-level limit the mandatory interlock cuts the burner, so a
    # long feedwater failure never shows a boiler firing dry.
    if boiler.level < -50.0:
        boiler.burner_lockout = True
        boiler.burner = "off"


def _water_quality(boiler: Boiler) -> None:
    boiler.water_quality_bad = True


def _safety_valve_open(boiler: Boiler) -> None:
    boiler.pressure = max(boiler.pressure, boiler.rated_pressure * 1.04)
    boiler.relief_open = True
    boiler.burner_lockout = True
    boiler.burner = "off"


FAULTS: dict[str, FaultBehaviour[Boiler]] = {
    "low_water_level": FaultBehaviour(_low_water_level),
    "high_water_level": FaultBehaviour(_high_water_level),
    "overpressure": FaultBehaviour(_overpressure),
    "flame_failure": FaultBehaviour(_flame_failure),
    "high_flue_gas_temp": FaultBehaviour(_high_flue_gas_temp),
    "feedwater_failure": FaultBehaviour(_feedwater_failure, _low_water_interlock),
    "water_quality": FaultBehaviour(_water_quality),
    "safety_valve_open": FaultBehaviour(_safety_valve_open),
}
Boiler.FAULTS = FAULTS
