"""The registry of device models: one class per equipment type, looked up instead of an if-chain."""

from __future__ import annotations

from datetime import UTC, timezone
from typing import TYPE_CHECKING

from simulators.base import Device
from simulators.boiler import Boiler
from simulators.elevator import Elevator
from simulators.escalator import Escalator
from simulators.pressure_vessel import PressureVessel

if TYPE_CHECKING:
    from simulators.fleet import Equipment

DEVICE_MODELS: dict[str, type[Device]] = {
    model.equipment_type: model for model in (Elevator, Escalator, Boiler, PressureVessel)
}


def make_device(equipment: Equipment, seed: int, tz: timezone = UTC) -> Device:
    """The simulated monitor of one piece of equipment."""
    return DEVICE_MODELS[equipment.type](equipment, seed, tz)


def supported_faults(equipment_type: str) -> frozenset[str]:
    """The fault codes a model can inject for an equipment type."""
    return frozenset(DEVICE_MODELS[equipment_type].FAULTS)
