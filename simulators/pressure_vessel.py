"""A pressure vessel (an air receiver or storage tank): pressure cycling between load and unload points."""

from __future__ import annotations

from datetime import UTC, timezone
from typing import TYPE_CHECKING, Any

from simulators.base import Device, FaultBehaviour, clamp

if TYPE_CHECKING:
    from simulators.fleet import Equipment

# The compressor loads at LOAD and unloads at UNLOAD, as shares of the rated (design) pressure.
LOAD_AT, UNLOAD_AT = 0.55, 0.70
LEVEL_TAU_S = 120.0


class PressureVessel(Device):
    """A simulated pressure-vessel monitor."""

    equipment_type = "pressure_vessel"

    def __init__(self, equipment: Equipment, seed: int, tz: timezone = UTC):
        super().__init__(equipment, seed, tz)
        rng = self.rng
        self.rated_pressure = equipment.rated_pressure_mpa or 1.0
        self.fill_rate = self.rated_pressure * rng.uniform(0.10, 0.20) / 60  # MPa per second while loading
        self.use_rate = self.rated_pressure * rng.uniform(0.04, 0.10) / 60
        self.ambient = rng.uniform(18.0, 30.0)
        self.filling = rng.random() < 0.5
        self.pressure = self.rated_pressure * rng.uniform(LOAD_AT, UNLOAD_AT) if self.in_service else 0.0
        self.temperature = self.ambient + 5.0
        self.level_target = rng.uniform(40.0, 70.0)
        self.level = self.level_target
        self.valve_open = False
        self.pressure_target: float | None = None  # a fault's pressure, overriding the compressor cycle
        self.level_override: float | None = None

    def tick(self, dt: float, hour: float) -> None:
        if not self.in_service:
            self.temperature += (self.ambient - self.temperature) * dt / 600
            return
        rng = self.rng
        if self.pressure_target is not None:
            self.pressure += (self.pressure_target - self.pressure) * dt / 60
        elif self.filling:
            self.pressure += self.fill_rate * dt
            self.filling = self.pressure < UNLOAD_AT * self.rated_pressure
        else:
            self.pressure -= self.use_rate * dt
            self.filling = self.pressure <= LOAD_AT * self.rated_pressure
        self.level_target = clamp(self.level_target + rng.gauss(0, 0.05) * dt ** 0.5, 35.0, 75.0)
        target = self.level_target if self.level_override is None else self.level_override
        self.level += (target - self.level) * dt / LEVEL_TAU_S
        # Compression warms the vessel a little while the compressor runs.
        heat = 12.0 * self.pressure / self.rated_pressure + (4.0 if self.filling else 0.0)
        self.temperature += (self.ambient + heat - self.temperature) * dt / 300

    def telemetry(self) -> dict[str, Any]:
        rng = self.rng
        return {
            "pressure_mpa": round(max(0.0, self.pressure + rng.gauss(0, 0.002)) if self.in_service else 0.0, 3),
            "temperature_c": round(self.temperature + rng.gauss(0, 0.2), 1),
            "level_pct": round(clamp(self.level + rng.gauss(0, 0.3), 0.0, 100.0), 1),
            "safety_valve_open": self.valve_open,
        }

    def fault_detail(self) -> dict[str, Any]:
        return {"pressure_mpa": round(self.pressure, 3), "rated_pressure_mpa": self.rated_pressure,
                "level_pct": round(self.level, 1)}

    def recover(self, fault: str) -> None:
        self.valve_open = False
        self.pressure_target = self.level_override = None
        self.filling = self.pressure < LOAD_AT * self.rated_pressure


def _overpressure(vessel: PressureVessel) -> None:
    # The unloader failed: pressure climbs past the rating towards the safety valve's set pressure.
    vessel.pressure = max(vessel.pressure, vessel.rated_pressure * 1.02)
    vessel.pressure_target = vessel.rated_pressure * 1.08


def _safety_valve_open(vessel: PressureVessel) -> None:
    vessel.pressure = max(vessel.pressure, vessel.rated_pressure * 1.05)
    vessel.pressure_target = vessel.rated_pressure * 0.5
    vessel.valve_open = True


def _low_level(vessel: PressureVessel) -> None:
    vessel.level = min(vessel.level, 9.0)
    vessel.level_override = 3.0


def _high_level(vessel: PressureVessel) -> None:
    vessel.level = max(vessel.level, 91.0)
    vessel.level_override = 97.0


FAULTS: dict[str, FaultBehaviour[PressureVessel]] = {
    "overpressure": FaultBehaviour(_overpressure),
    "safety_valve_open": FaultBehaviour(_safety_valve_open),
    "low_water_level": FaultBehaviour(_low_level),
    "high_water_level": FaultBehaviour(_high_level),
}
PressureVessel.FAULTS = FAULTS
