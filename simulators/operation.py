"""How the equipment is used beyond passengers and heat demand: maintenance visits (维保) that put lifts and escalators
in maintenance and inspection mode, passengers who linger in a closed car before it leaves, and a burner's purge
before its flame is proven. All off unless a scenario's `operation:` section turns them on (docs/simulate.md).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any

from simulators.wear import seconds

if TYPE_CHECKING:
    from simulators.fleet import Equipment

# TSG T5002 has lifts and escalators maintained at least every 15 days.
MAINTAINED_TYPES = ("elevator", "escalator")
# A visit keeps this far from a fault the scenario schedules on the same equipment, so that neither explains the other.
CLEAR_OF_FAULTS_S = 3600.0


@dataclass(frozen=True)
class Operation:
    """A scenario's `operation:` section. The defaults change nothing: no visits, no lingering, no purge."""

    maintenance_every_s: float = 0.0  # a visit to each in-use lift and escalator about this often; 0: never
    maintenance_lasts_s: tuple[float, float] = (3600.0, 7200.0)  # how long a visit lasts
    maintenance_hours: tuple[float, float] = (9.0, 16.0)  # the local hour a visit begins within
    boarding_wait_s: tuple[float, float] = (0.0, 0.0)  # mean and longest wait, doors closed, before a car leaves
    burner_purge_s: float = 0.0  # a burner called to fire shows its flame only after this purge and ignition


def parse_operation(data: Any) -> Operation:
    """The `operation:` section of a scenario (None: the defaults); ValueError names the bad key."""
    if data is None:
        return Operation()
    if not isinstance(data, Mapping):
        raise ValueError("operation must be a mapping")
    known = ("maintenance_every", "maintenance_lasts", "maintenance_hours", "boarding_wait_s", "burner_purge_s")
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ValueError(f"operation: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
    defaults = Operation()
    every = seconds(data.get("maintenance_every", 0), "operation.maintenance_every")
    lasts = _pair(data, "maintenance_lasts", defaults.maintenance_lasts_s, seconds)
    hours = _pair(data, "maintenance_hours", defaults.maintenance_hours, _number)
    wait = _pair(data, "boarding_wait_s", defaults.boarding_wait_s, _number)
    purge = _number(data.get("burner_purge_s", 0), "operation.burner_purge_s")
    if every < 0 or (every and every < 86400):
        raise ValueError("operation.maintenance_every must be 0 (no visits) or at least a day")
    if not 0 < lasts[0] <= lasts[1] <= 86400:
        raise ValueError("operation.maintenance_lasts needs 0 < shortest <= longest <= 1d")
    if not 0 <= hours[0] <= hours[1] < 24:
        raise ValueError("operation.maintenance_hours needs 0 <= earliest <= latest < 24")
    if not 0 <= wait[0] <= wait[1] <= 3600:
        raise ValueError("operation.boarding_wait_s needs 0 <= mean <= longest <= 3600")
    if not 0 <= purge <= 600:
        raise ValueError("operation.burner_purge_s must be between 0 and 600")
    return Operation(every, lasts, hours, wait, purge)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where} must be a number, got {value!r}")
    return float(value)


def _pair(data: Mapping[str, Any], key: str, default: tuple[float, float],
          parse: Callable[[Any, str], float]) -> tuple[float, float]:
    value = data.get(key, list(default))
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"operation.{key} must be a list of two values, got {value!r}")
    return parse(value[0], f"operation.{key}"), parse(value[1], f"operation.{key}")


def boarding_wait(operation: Operation, rng: random.Random) -> float:
    """How long passengers just aboard keep the car waiting, doors closed, before it leaves: exponential with
    the configured mean (most choose their floor at once), never longer than the configured longest."""
    mean, longest = operation.boarding_wait_s
    if mean <= 0:
        return 0.0
    return min(rng.expovariate(1 / mean), longest)


@dataclass(frozen=True)
class Visit:
    """One planned maintenance visit, in seconds after the simulation start."""

    start_s: float
    end_s: float


class VisitPlan:
    """Each maintained equipment's visits: about every `maintenance_every`, on a day drawn for it, beginning at a
    local daytime hour. A visit that would come within an hour of a fault the scenario schedules (or one its wear
    leads to) on the same equipment is left out.

    The hour needs the simulation's start, known once the first message is made (`bind`). Draws come from a
    stream per equipment, so a device's visits are the same in any shard.
    """

    def __init__(self, operation: Operation, fleet: Iterable[Equipment], seed: int, tz: timezone,
                 busy: Callable[[str], Iterable[tuple[float, float]]]):
        self.operation = operation
        self.seed = seed
        self.tz = tz
        self.busy = busy  # the spans (start_s, end_s) of faults the scenario puts on an equipment
        self.codes = {e.code for e in fleet if e.type in MAINTAINED_TYPES and e.status == "in_use"} \
            if operation.maintenance_every_s else set()
        self.start: datetime | None = None
        self._rng: dict[str, random.Random] = {}
        self._next_day: dict[str, float] = {}
        self._current: dict[str, Visit | None] = {}

    def bind(self, start: datetime) -> None:
        """Fix the simulation's start (the first time only)."""
        if self.start is None:
            self.start = start

    def active(self, code: str, at_s: float) -> bool:
        """Whether a maintenance visit to `code` is under way at_s seconds into the simulation."""
        if code not in self.codes or self.start is None:
            return False
        visit = self._current.get(code)
        while visit is None or visit.end_s <= at_s:
            visit = self._current[code] = self._next(code)
        return visit.start_s <= at_s

    def _next(self, code: str) -> Visit:
        assert self.start is not None
        every_days = self.operation.maintenance_every_s / 86400
        rng = self._rng.get(code)
        if rng is None:
            rng = self._rng[code] = random.Random(f"{self.seed}/visits/{code}")
            self._next_day[code] = rng.uniform(0, every_days)
        first_day = self.start.astimezone(self.tz).date()
        while True:
            day = self._next_day[code]
            # Firms keep to the cycle loosely: a visit comes up to two days early, never late.
            self._next_day[code] = day + every_days - rng.uniform(0, min(2.0, every_days / 4))
            hour = rng.uniform(*self.operation.maintenance_hours)
            lasts = rng.uniform(*self.operation.maintenance_lasts_s)
            begins = datetime.combine(first_day + timedelta(days=int(day)), time(), tzinfo=self.tz) \
                + timedelta(hours=hour)
            start_s = (begins - self.start).total_seconds()
            if start_s < 0:
                continue
            end_s = start_s + lasts
            spans = list(self.busy(code))
            if any(e == math.inf and s <= end_s + CLEAR_OF_FAULTS_S for s, e in spans):
                return Visit(math.inf, math.inf)  # a fault the scenario never clears: no visit from then on
            if all(end_s + CLEAR_OF_FAULTS_S < s or e + CLEAR_OF_FAULTS_S < start_s for s, e in spans):
                return Visit(start_s, end_s)
