"""An escalator: runs during its site's opening hours, handrails a little faster than the steps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timezone
from typing import TYPE_CHECKING, Any

from simulators.base import Device, FaultBehaviour
from simulators.traffic import activity

if TYPE_CHECKING:
    from simulators.fleet import Equipment

START_ACCEL_MPS2 = 0.4  # soft start and stop (EN 115-1 limits deceleration to 1 m/s²)
# Run hours never exceed the scheduled hours since installation times this margin (their ceiling) and
# start at it; so a restarted simulator, starting at the ceiling again, never reports less than before.
COUNTER_MARGIN = 1.01
# What full wear (severity 1) does; severity rises from 0 over an episode (simulators/wear.py).
WORN_HANDRAIL_SLIP = 0.12  # the left handrail falls this share behind its nominal speed
WORN_CHAIN_G = 0.04  # step chain and its bearings: extra vibration while running


class Escalator(Device):
    """A simulated escalator monitor."""

    equipment_type = "escalator"

    def __init__(self, equipment: Equipment, seed: int, tz: timezone = UTC):
        super().__init__(equipment, seed, tz)
        self.rated_speed = equipment.rated_speed_mps or 0.5
        self.kind = equipment.site_kind
        self.direction = self.rng.choice(("up", "down"))
        self.opens_at = self.rng.choice((7.0, 7.5, 9.5, 10.0))
        self.closes_at = self.rng.choice((21.5, 22.0, 22.5))
        self.rated_current = self.rng.uniform(18.0, 26.0)
        self.wear = self.rng.random() ** 2
        # Handrails run 0-2 % faster than the steps (EN 115-1), each side a little differently.
        self.nominal_handrail = (1 + self.rng.uniform(0.004, 0.018), 1 + self.rng.uniform(0.004, 0.018))
        self.handrail_factor = list(self.nominal_handrail)
        self.speed = 0.0
        self.moving_direction = self.direction
        self.safety_ok = True
        self.brake_ok = True
        self.load = 0.0
        self.run_s = 0.0
        self.installed = datetime.combine(equipment.install_date, datetime.min.time(), tzinfo=tz)
        # A maintenance visit (simulators/operation.py): the technician's script, one step per tick, and the mode
        # the unit reports meanwhile.
        self.visit: Iterator[object] | None = None
        self.service_mode = "normal"
        self.dt = 0.0

    @property
    def in_maintenance(self) -> bool:
        return self.visit is not None

    def start(self, now: datetime) -> None:
        self.run_s = self._ceiling(now)
        if self.in_service and self._scheduled(self.local_hour(now)):
            self.speed = self.rated_speed

    def skip(self, since: datetime, until: datetime) -> None:
        super().skip(since, until)
        if self.in_service:
            self.run_s = min(self.run_s + self._scheduled_s(since, until), self._ceiling(until))

    def _scheduled_s(self, since: datetime, until: datetime) -> float:
        return self._scheduled_since_epoch(until) - self._scheduled_since_epoch(since)

    def _scheduled_since_epoch(self, moment: datetime) -> float:
        local = moment.astimezone(self.tz)
        hour = local.hour + local.minute / 60 + local.second / 3600
        today = min(max(hour, self.opens_at), self.closes_at) - self.opens_at
        return (local.toordinal() * (self.closes_at - self.opens_at) + today) * 3600

    def _ceiling(self, moment: datetime) -> float:
        return self._scheduled_s(self.installed, moment) * COUNTER_MARGIN

    def _scheduled(self, hour: float) -> bool:
        return self.opens_at <= hour < self.closes_at

    def tick(self, dt: float, hour: float) -> None:
        behaviour = self.behaviour
        if behaviour is None or self.fault in KEEPS_RUNNING:
            if self.visit is None and self.maintenance_requested and self.in_service:
                self.visit = self._visit()  # barriers at both landings: passengers take another way
            if self.visit is not None:
                self.dt = dt
                if next(self.visit, None) is _DONE:
                    self.visit = None
            else:
                target = self.rated_speed if self.in_service and self._scheduled(hour) else 0.0
                self._ramp(target, dt)
        if behaviour is not None and behaviour.tick is not None:
            behaviour.tick(self, dt)
        self.load = activity(self.kind, hour, self.weekday) if self.speed > 0 and self.visit is None else 0.0
        if self.speed > 0:
            self.run_s = min(self.run_s + dt, self._ceiling(self.now))

    def _ramp(self, target: float, dt: float) -> None:
        step = START_ACCEL_MPS2 * dt
        self.speed = min(target, self.speed + step) if target > self.speed else max(target, self.speed - step)

    # A maintenance visit (TSG T5002 half-monthly maintenance). Each generator below advances one tick per step
    # (self.dt long); waits end early once the visit is over.

    def _visit(self) -> Iterator[object]:
        self.service_mode = "maintenance"
        yield from self._ramp_to(0.0)
        tasks: tuple[Callable[[], Iterator[None]], ...] = (self._open_work, self._inspection_runs)
        while self.maintenance_requested:
            yield from self.rng.choice(tasks)()
        self.service_mode = "normal"
        yield _DONE

    def _ramp_to(self, target: float) -> Iterator[None]:
        while self.speed != target:
            yield
            self._ramp(target, self.dt)

    def _for(self, seconds: float, until_visit_ends: bool = False) -> Iterator[None]:
        left = seconds
        while left > 0 and not (until_visit_ends and not self.maintenance_requested):
            yield
            left -= self.dt

    def _open_work(self) -> Iterator[None]:
        # Steps out, comb plates and skirts checked: the unit stands with its safety circuit open.
        self.safety_ok = False
        yield from self._for(self.rng.uniform(600, 1800), until_visit_ends=True)
        self.safety_ok = True
        yield from self._for(self.rng.uniform(10, 60))

    def _inspection_runs(self) -> Iterator[None]:
        # Short runs on the inspection control, either way round.
        self.service_mode = "inspection"
        for _ in range(self.rng.randint(1, 4)):
            self.moving_direction = self.rng.choice(("up", "down"))
            yield from self._ramp_to(self.rated_speed)
            yield from self._for(self.rng.uniform(20, 120), until_visit_ends=True)
            yield from self._ramp_to(0.0)
            yield from self._for(self.rng.uniform(10, 60))
        self.moving_direction = self.direction
        self.service_mode = "maintenance"

    def telemetry(self) -> dict[str, Any]:
        rng = self.rng
        running = self.speed > 0
        speed = self.speed * (1 + rng.gauss(0, 0.003)) if running else 0.0
        if running:
            # Passengers going up load the motor; going down they drive it (regeneration), barely.
            share = 0.55 * self.load if self.moving_direction == "up" else -0.05 * self.load
            current = self.rated_current * (0.3 + share) * (1 + rng.gauss(0, 0.02))
            vibration = 0.01 + 0.015 * self.wear + WORN_CHAIN_G * self.worn("step_chain") + abs(rng.gauss(0, 0.002))
        else:
            current, vibration = 0.0, 0.001 + abs(rng.gauss(0, 0.0003))
        slip = 1.0 - WORN_HANDRAIL_SLIP * self.worn("handrail")
        return {
            "running": running,
            "direction": self.moving_direction if running else "stop",
            "speed_mps": round(speed, 3),
            "handrail_left_mps": round(speed * self.handrail_factor[0] * slip, 3),
            "handrail_right_mps": round(speed * self.handrail_factor[1], 3),
            "mode": self.service_mode if self.in_service else "out_of_service",
            "safety_circuit_ok": self.safety_ok,
            "brake_ok": self.brake_ok,
            "motor_current_a": round(current, 2),
            "vibration_rms_g": round(vibration, 4),
            "run_hours": round(self.run_s / 3600, 4),
        }

    def fault_detail(self) -> dict[str, Any]:
        return {"speed_mps": round(self.speed, 3), "rated_speed_mps": self.rated_speed,
                "direction": self.moving_direction if self.speed > 0 else "stop"}

    def recover(self, fault: str) -> None:
        self.safety_ok = self.brake_ok = True
        if self.moving_direction != self.direction:
            self.speed = 0.0  # the reversal stopped it; it restarts in its own direction
        self.moving_direction = self.direction
        self.handrail_factor = list(self.nominal_handrail)


def _stop(unit: Escalator) -> None:
    unit.speed = 0.0


def _stop_with_safety_open(unit: Escalator) -> None:
    unit.speed = 0.0
    unit.safety_ok = False


def _overspeed(unit: Escalator) -> None:
    unit.speed = unit.rated_speed * unit.rng.uniform(1.2, 1.3)


def _unintended_reversal(unit: Escalator) -> None:
    unit.moving_direction = "down" if unit.direction == "up" else "up"
    unit.speed = unit.rated_speed * 0.4


def _brake_not_released(unit: Escalator) -> None:
    unit.speed = 0.0
    unit.brake_ok = False


def _handrail_slow(unit: Escalator) -> None:
    # The left handrail slips to ~78 % of step speed, past the 15 % deviation that must stop the unit.
    unit.handrail_factor[0] = unit.rng.uniform(0.74, 0.8)


FAULTS: dict[str, FaultBehaviour[Escalator]] = {
    "safety_circuit_open": FaultBehaviour(_stop_with_safety_open),
    "overspeed": FaultBehaviour(_overspeed),
    "unintended_reversal": FaultBehaviour(_unintended_reversal),
    "step_missing": FaultBehaviour(_stop_with_safety_open),
    "handrail_speed_deviation": FaultBehaviour(_handrail_slow),
    "brake_not_released": FaultBehaviour(_brake_not_released),
    "comb_plate_jam": FaultBehaviour(_stop_with_safety_open),
    "emergency_stop": FaultBehaviour(_stop),
    "power_failure": FaultBehaviour(_stop_with_safety_open),
}
_DONE = object()  # what a visit yields last: the unit is handed back

# Faults during which the escalator keeps its normal schedule.
KEEPS_RUNNING = frozenset({"handrail_speed_deviation"})
Escalator.FAULTS = FAULTS
