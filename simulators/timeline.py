"""The fault timeline: a scenario's scheduled faults, the faults its wear episodes end in, and its repeating
random faults, merged in time order."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

from simulators.fleet import Equipment
from simulators.scenario import Scenario
from simulators.wear import WearPlan

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

    # A wear episode's fault goes on the queue once the episode begins: before anything later is yielded, and
    # before a random fault is drawn that could overlap it (its own plan keeps it clear of scheduled faults).
    wear = WearPlan(scenario, fleet, seed)

    def take_wear(until: float) -> None:
        while wear.next_start() <= until:
            episode = wear.pop()
            schedule(episode.end_s, episode.clear_s, episode.equipment, episode.leads_to)

    while True:
        while True:
            horizon = min(queue[0][0] if queue else float("inf"), next_at)
            if horizon < float("inf"):
                take_wear(horizon)
            elif wear.next_start() < float("inf"):
                take_wear(wear.next_start())  # only wear left: one episode at a time (it may be endless)
                continue
            if not queue and next_at == float("inf"):
                return
            if not (queue and next_at > queue[0][0]):
                break
            yield heapq.heappop(queue)[3]
        assert repeat is not None
        duration = round(rng.uniform(*repeat.duration_s))
        take_wear(next_at + duration + GAP_S)
        available = [e for e in candidates if free(e.code, next_at, next_at + duration)]
        if available:
            equipment = rng.choice(available)
            schedule(next_at, next_at + duration, equipment.code, rng.choice(repeat.faults[equipment.type]))
        for code in busy:
            busy[code] = [(s, e) for s, e in busy[code] if e + GAP_S >= next_at]
        next_at += repeat.every_s
