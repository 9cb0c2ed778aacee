"""What every simulated monitor shares: its clock, message counter, random stream and fault bookkeeping."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from simulators.operation import Operation

if TYPE_CHECKING:
    from simulators.fleet import Equipment

# Physics advance in steps this long, whatever the publishing interval, so behaviour does not depend on it.
SUBSTEP_S = 0.5
# A longer gap (a suspended laptop) is not replayed step by step; models fast-forward their counters.
MAX_CATCH_UP_S = 900.0

D = TypeVar("D", bound="Device")


@dataclass(frozen=True)
class FaultBehaviour(Generic[D]):
    """How a fault shows in a model's telemetry: `enter` when raised, `tick` on every step while active."""

    enter: Callable[[D], None]
    tick: Callable[[D, float], None] | None = None


def clamp(value: float, low: float, high: float) -> float:
    """value limited to [low, high], always a float (a JSON number field must not turn into an int)."""
    return float(max(low, min(high, value)))


def format_ts(now: datetime, tz: timezone) -> str:
    """RFC 3339 with the monitor's local offset and milliseconds, as the contract's `ts`."""
    if now.tzinfo is None:
        raise ValueError("simulated time must be timezone-aware")
    return now.astimezone(tz).isoformat(timespec="milliseconds")


class Device:
    """A simulated monitor: `step(now)` gives its telemetry, `raise_fault`/`clear_fault` its events.

    Models are pure: the caller supplies the time, so the same seed and timestamps give the same messages.
    """

    equipment_type: ClassVar[str]
    FAULTS: ClassVar[Mapping[str, FaultBehaviour[Any]]] = {}
    # How the equipment is operated (simulators/operation.py); the simulation sets the scenario's.
    operation: Operation = Operation()

    def __init__(self, equipment: Equipment, seed: int, tz: timezone = UTC):
        self.equipment = equipment
        self.tz = tz
        # One stream per monitor: adding equipment to a scenario does not change the others' behaviour.
        self.rng = random.Random(f"{seed}/{equipment.code}")
        self.in_service = equipment.status == "in_use"
        self.seq = 0
        self.fault: str | None = None
        self.clock: datetime | None = None
        self.now = datetime.min.replace(tzinfo=UTC)  # the moment being simulated, during start() and tick()
        # Wear severity by kind, 0 (as new) to 1 (failed); the simulation sets it from its wear plan.
        self.degradation: Mapping[str, float] = {}
        # Whether a maintenance visit is due now; the simulation sets it from its visit plan.
        self.maintenance_requested = False
        # The local calendar of the moment being simulated, for weekly and seasonal rhythms (simulators/traffic.py).
        self.weekday = 0  # Monday
        self.day_of_year = 1

    @property
    def code(self) -> str:
        """The equipment's registry code."""
        return self.equipment.code

    def worn(self, kind: str) -> float:
        """Severity of one kind of wear (simulators/wear.py), 0 when the equipment is not wearing that way."""
        return self.degradation.get(kind, 0.0)

    @property
    def in_maintenance(self) -> bool:
        """Whether a technician has the equipment (it reports a maintenance or inspection mode)."""
        return False

    @property
    def behaviour(self) -> FaultBehaviour[Any] | None:
        """The active fault's behaviour, if a fault is active."""
        return None if self.fault is None else self.FAULTS[self.fault]

    def step(self, now: datetime) -> dict[str, Any]:
        """Advance to `now` and return the telemetry payload for that moment."""
        self.advance(now)
        return self._message(now, self.telemetry())

    def raise_fault(self, fault: str, now: datetime) -> dict[str, Any]:
        """Start showing a fault's signature; return its `raised` event payload."""
        if fault not in self.FAULTS:
            raise ValueError(f"{self.equipment_type} cannot simulate fault {fault!r}")
        if self.fault is not None:
            raise ValueError(f"{self.code} already has fault {self.fault!r} active")
        self.advance(now)
        if self.in_maintenance:
            # Ground truth stays unambiguous: a fault is never injected under a technician's hands.
            raise ValueError(f"{self.code} is being maintained")
        self.fault = fault
        self.FAULTS[fault].enter(self)
        return self._message(now, {"code": fault, "state": "raised",
                                   "detail": {"simulated": True, **self.fault_detail()}})

    def clear_fault(self, fault: str, now: datetime) -> dict[str, Any]:
        """Stop the fault and start recovering; return its `cleared` event payload."""
        if self.fault != fault:
            raise ValueError(f"{self.code} has no active fault {fault!r}")
        self.advance(now)
        detail = {"simulated": True, **self.fault_detail()}
        self.fault = None
        self.recover(fault)
        return self._message(now, {"code": fault, "state": "cleared", "detail": detail})

    def advance(self, now: datetime) -> None:
        """Run the model's physics up to `now` (time never runs backwards)."""
        if now.tzinfo is None:
            raise ValueError("simulated time must be timezone-aware")
        if self.clock is None:
            self.clock = self.now = now
            local = now.astimezone(self.tz)
            self.weekday, self.day_of_year = local.weekday(), local.timetuple().tm_yday
            self.start(now)
            return
        gap = (now - self.clock).total_seconds()
        if gap <= 0:
            return
        if gap > MAX_CATCH_UP_S:
            self.skip(self.clock, now - timedelta(seconds=MAX_CATCH_UP_S))
            gap = MAX_CATCH_UP_S
        steps = math.ceil(gap / SUBSTEP_S)
        dt = gap / steps
        begin = now - timedelta(seconds=gap)
        local = begin.astimezone(self.tz)
        hour = local.hour + local.minute / 60 + local.second / 3600
        weekday = local.weekday()
        self.day_of_year = local.timetuple().tm_yday  # a season does not turn in a step
        for i in range(1, steps + 1):
            self.now = begin + timedelta(seconds=i * dt)
            hours = hour + i * dt / 3600
            self.weekday = (weekday + int(hours // 24)) % 7
            self.tick(dt, hours % 24)
        self.clock = self.now = now

    def local_hour(self, now: datetime) -> float:
        """Hour of day on the monitor's local clock, e.g. 8.5 for 08:30."""
        local = now.astimezone(self.tz)
        return local.hour + local.minute / 60 + local.second / 3600

    def _message(self, now: datetime, body: dict[str, Any]) -> dict[str, Any]:
        # Telemetry and events share one counter per device, as a real monitor's would.
        self.seq += 1
        return {"ts": format_ts(now, self.tz), "seq": self.seq, **body}

    # What each model provides.

    def start(self, now: datetime) -> None:
        """Set the initial state at the first moment simulated (counters from the install date)."""

    def tick(self, dt: float, hour: float) -> None:
        """Advance the physics by dt seconds; hour is the local hour of day (self.weekday its day of the week)."""
        raise NotImplementedError

    def skip(self, since: datetime, until: datetime) -> None:
        """Fast-forward over a long gap without simulating it (counters grow by what is expected)."""
        self.now = until

    def telemetry(self) -> dict[str, Any]:
        """The telemetry fields of the current state."""
        raise NotImplementedError

    def fault_detail(self) -> dict[str, Any]:
        """What an event's `detail` reports about the current state."""
        return {}

    def recover(self, fault: str) -> None:
        """Return to normal operation after `fault` was cleared."""
