"""The fault timeline: a scenario's scheduled faults merged with its repeating random ones, in time order."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

from simulators.fleet import Equipment
from simulators.scenario import Scenario

# Faults on one equipment never overlap and are this far apart, so each raise/clear pair stays distinct.
GAP_S = 5.0


@dataclass(frozen=True)
class FaultAction:
    """Raise or clear one fault on one equipment, at_s seconds after the simulation starts."""

    at_s: float
    equipment: str
    fault: str
    state: str  # "raised" or "cleared"


def fault_timeline(scenario: Scenario, fleet: list[Equipment], seed: int) -> Iterator[FaultAction]:
    """Every fault action of the scenario in time order; endless when the scenario repeats faults."""
    rng = random.Random(f"{seed}/faults")
    order = itertools.count()
    queue: list[tuple[float, int, int, FaultAction]] = []
    busy: dict[str, list[tuple[float, float]]] = {}

    def schedule(at_s: float, clear_at_s: float | None, equipment: str, fault: str) -> None:
        # Clears sort before raises at the same moment, so back-to-back faults do not collide.
        heapq.heappush(queue, (at_s, 1, next(order), FaultAction(at_s, equipment, fault, "raised")))
        if clear_at_s is not None:
            heapq.heappush(queue, (clear_at_s, 0, next(order), FaultAction(clear_at_s, equipment, fault, "cleared")))
        busy.setdefault(equipment, []).append((at_s, float("inf") if clear_at_s is None else clear_at_s))

    for fault in scenario.faults:
        schedule(fault.at_s, fault.clear_at_s, fault.equipment, fault.fault)

    repeat = scenario.repeat
    candidates = [e for e in fleet if e.status == "in_use" and repeat and repeat.faults.get(e.type)]
    next_at = repeat.first_at_s if repeat and candidates else float("inf")

    def free(code: str, start: float, end: float) -> bool:
        return all(end + GAP_S < s or e + GAP_S < start for s, e in busy.get(code, ()))

    while True:
        while (queue and next_at > queue[0][0]) or (not queue and next_at == float("inf")):
            if not queue:
                return
            yield heapq.heappop(queue)[3]
        assert repeat is not None
        duration = round(rng.uniform(*repeat.duration_s))
        available = [e for e in candidates if free(e.code, next_at, next_at + duration)]
        if available:
            equipment = rng.choice(available)
            schedule(next_at, next_at + duration, equipment.code, rng.choice(repeat.faults[equipment.type]))
        for code in busy:
            busy[code] = [(s, e) for s, e in busy[code] if e + GAP_S >= next_at]
        next_at += repeat.every_s
