"""The fleet on the caller's clock: which message is due when, and what it says; no I/O."""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from semon.vocabulary import topic
from simulators.base import Device
from simulators.devices import make_device
from simulators.fleet import Equipment, build_fleet
from simulators.scenario import Scenario
from simulators.timeline import FaultAction, fault_timeline


@dataclass(frozen=True)
class Message:
    """One MQTT message to publish."""

    channel: str
    topic: str
    payload: dict[str, Any] | str
    retain: bool = False

    def encode(self) -> bytes:
        """The payload as sent: compact JSON, or the bare word for a status."""
        if isinstance(self.payload, str):
            return self.payload.encode("utf-8")
        return json.dumps(self.payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Due:
    """Something to publish at_s seconds after the start: a device's telemetry, or a fault action."""

    at_s: float
    equipment: str
    action: FaultAction | None = None


class FleetSimulation:
    """The scenario's monitors and fault timeline; the caller decides what time it is."""

    def __init__(self, scenario: Scenario, seed: int, interval_s: float, today: date | None = None,
                 shard: tuple[int, int] = (0, 1)):
        """shard=(k, n): simulate only the k-th of n equal parts of the fleet (one per publishing process).

        Each device has its own random stream, so a device behaves the same whichever shard runs it.
        """
        if interval_s <= 0:
            raise ValueError("interval_s must be greater than 0")
        k, n = shard
        if not 0 <= k < n:
            raise ValueError(f"shard {k} of {n} does not exist")
        self.scenario = scenario
        self.seed = seed
        self.interval_s = interval_s
        self.shard = shard
        # The whole fleet is built (the registry and the fault timeline are the fleet's), then sharded.
        self.fleet_all: list[Equipment] = build_fleet(scenario, seed, today or date.today())
        self.fleet: list[Equipment] = [e for i, e in enumerate(self.fleet_all) if i % n == k]
        self.devices: dict[str, Device] = {e.code: make_device(e, seed, scenario.tz) for e in self.fleet}

    def statuses(self, state: str) -> list[Message]:
        """Every monitor's retained status message ("online" or "offline")."""
        return [Message("status", topic(e.type, e.code, "status"), state, retain=True) for e in self.fleet]

    def schedule(self) -> Iterator[Due]:
        """Telemetry and fault actions in time order, endless.

        Each device reports every interval_s, the devices spread evenly over the interval so the broker
        sees a steady stream rather than a burst; a fault action comes before telemetry due at the same time.
        """
        count = len(self.devices)
        queue: list[tuple[float, int, int, int, Due]] = []
        for index, code in enumerate(self.devices):
            queue.append((index / count * self.interval_s, 1, index, 0, Due(index / count * self.interval_s, code)))
        # The timeline is drawn over the whole fleet, so it is the same however the fleet is sharded; another
        # shard's actions are passed over below (filtering the endless timeline itself could wait forever).
        timeline = fault_timeline(self.scenario, self.fleet_all, self.seed)
        order = 0

        def push_next_action() -> None:
            nonlocal order
            action = next(timeline, None)
            if action is not None:
                order += 1
                heapq.heappush(queue, (action.at_s, 0, order, 0, Due(action.at_s, action.equipment, action)))

        heapq.heapify(queue)
        push_next_action()
        while queue:
            _, _, index, round_, due = heapq.heappop(queue)
            if due.action is not None and due.equipment not in self.devices:
                push_next_action()
                continue
            yield due
            if due.action is None:
                # Offsets from the round number, not by adding intervals, so they do not drift.
                next_at = (index / count + round_ + 1) * self.interval_s
                heapq.heappush(queue, (next_at, 1, index, round_ + 1, Due(next_at, due.equipment)))
            else:
                push_next_action()

    def messages(self, due: Due, now: datetime) -> list[Message]:
        """What the monitor actually sends for a due item at `now`: its message as the monitor's behaviour
        shapes it (nothing, a duplicate, a late one...). Runners publish this, not `message`."""
        return [self.message(due, now)]

    def message(self, due: Due, now: datetime) -> Message:
        """The message a due item produces at `now` (raises ValueError for an impossible fault action)."""
        device = self.devices[due.equipment]
        kind = device.equipment_type
        if due.action is None:
            return Message("telemetry", topic(kind, device.code, "telemetry"), device.step(now))
        if due.action.state == "raised":
            payload = device.raise_fault(due.action.fault, now)
        else:
            payload = device.clear_fault(due.action.fault, now)
        return Message("event", topic(kind, device.code, "event"), payload)
