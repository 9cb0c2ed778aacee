"""The fleet on the caller's clock: which message is due when, and what it says; no I/O."""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from semon.vocabulary import topic
from simulators.base import Device
from simulators.devices import make_device
from simulators.fleet import Equipment, build_fleet
from simulators.monitor import MAX_JITTER_SHARE, MonitorBehaviour
from simulators.operation import VisitPlan
from simulators.scenario import Scenario
from simulators.timeline import FaultAction, fault_timeline
from simulators.wear import WearPlan


@dataclass(frozen=True)
class Message:
    """One MQTT message to publish."""

    channel: str
    topic: str
    payload: dict[str, Any] | str | bytes  # bytes: sent as they are (a malformed message)
    retain: bool = False

    def encode(self) -> bytes:
        """The payload as sent: compact JSON, the bare word for a status, or raw bytes."""
        if isinstance(self.payload, bytes):
            return self.payload
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
                 shard: tuple[int, int] = (0, 1), malformed_share: float = 0.0):
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
        # Wear episodes, drawn over the whole fleet like the fault timeline; each device reads its own.
        self.wear = WearPlan(scenario, self.fleet_all, seed)
        for device in self.devices.values():
            device.operation = scenario.operation
        # Maintenance visits (simulators/operation.py), kept clear of the faults the scenario schedules.
        self.visits = VisitPlan(scenario.operation, self.fleet, seed, scenario.tz, self._fault_spans)
        # Ground truth: faults as injected and maintenance periods as reported (see labels()), and the latest
        # moment simulated, in seconds.
        self._visits: list[dict[str, Any]] = []
        self._visiting: dict[str, dict[str, Any]] = {}
        self._injected: list[dict[str, Any]] = []
        self._active: dict[tuple[str, str], dict[str, Any]] = {}
        self._latest_s = 0.0
        # malformed_share: that share of all messages is bad (to exercise the dead-letter path); 0 by default.
        self.monitors: dict[str, MonitorBehaviour] = {
            e.code: MonitorBehaviour(e, seed, scenario.monitors, malformed_share) for e in self.fleet}

    def statuses(self, state: str) -> list[Message]:
        """Every monitor's retained status message ("online" or "offline")."""
        return [Message("status", topic(e.type, e.code, "status"), state, retain=True) for e in self.fleet]

    def schedule(self) -> Iterator[Due]:
        """Telemetry and fault actions in time order, endless.

        Each device reports every interval_s, the devices spread evenly over the interval so the broker
        sees a steady stream rather than a burst; a fault action comes before telemetry due at the same time.
        """
        if not self.devices:
            return  # only other shards' actions would come: nothing to yield, ever
        # Offsets come from a device's place in the whole fleet, so its times (and so its messages) are the same
        # however many processes share the fleet, and the shards' slots interleave instead of coinciding.
        count = len(self.fleet_all)
        place = {e.code: i for i, e in enumerate(self.fleet_all)}
        # A monitor's timer wanders around its slot (monitors.interval_jitter_s); each reading moves by less than
        # half the interval, so its readings keep their order. Its own stream: the same in any shard.
        jitter_s = min(self.scenario.monitors.interval_jitter_s, MAX_JITTER_SHARE * self.interval_s)
        jitters = {code: random.Random(f"{self.seed}/monitor/{code}/jitter") for code in self.devices} \
            if jitter_s else {}
        queue: list[tuple[float, int, int, int, Due]] = []
        for code in self.devices:
            index = place[code]
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
                if jitters:
                    next_at += jitters[due.equipment].uniform(-jitter_s, jitter_s)
                heapq.heappush(queue, (next_at, 1, index, round_ + 1, Due(next_at, due.equipment)))
            else:
                push_next_action()

    def messages(self, due: Due, now: datetime) -> list[Message]:
        """What the monitor actually sends for a due item at `now`: its message as the monitor's behaviour
        shapes it (nothing, a duplicate, a late one...). Runners publish this, not `message`."""
        message = self.message(due, now)
        if message.channel == "event" and not self.monitors[due.equipment].reports_faults:
            # A retrofit terminal only sends telemetry: the fault shows in it, but no event is produced, so
            # the event's seq is not used either (seq stays gap-free, as the terminal's own counter would).
            self.devices[due.equipment].seq -= 1
            return []
        return self.monitors[due.equipment].deliver(message, now)

    def message(self, due: Due, now: datetime) -> Message:
        """The message a due item produces at `now` (raises ValueError for an impossible fault action)."""
        device = self.devices[due.equipment]
        kind = device.equipment_type
        self._latest_s = max(self._latest_s, due.at_s)
        # Wear follows simulated elapsed time, so it is the same in real time, accelerated and backfill runs.
        device.degradation = self.wear.severity(device.code, due.at_s)
        self.visits.bind(now - timedelta(seconds=due.at_s))
        device.maintenance_requested = self.visits.active(device.code, due.at_s)
        if due.action is None:
            payload = device.step(now)
            self._note_visit(device, due.at_s)
            return Message("telemetry", topic(kind, device.code, "telemetry"), payload)
        action = due.action
        if action.state == "raised":
            payload = device.raise_fault(action.fault, now)
            label = {"equipment": device.code, "kind": "fault", "name": action.fault, "start_s": action.at_s,
                     "end_s": None}
            self._injected.append(label)
            self._active[(device.code, action.fault)] = label
        else:
            payload = device.clear_fault(action.fault, now)
            label = self._active.pop((device.code, action.fault), None)
            if label is not None:
                label["end_s"] = action.at_s
        return Message("event", topic(kind, device.code, "event"), payload)

    def _fault_spans(self, code: str) -> list[tuple[float, float]]:
        spans = [(f.at_s, float("inf") if f.clear_at_s is None else f.clear_at_s)
                 for f in self.scenario.faults if f.equipment == code]
        spans += [(w.start_s + w.duration_s, w.start_s + w.duration_s + w.fault_lasts_s)
                  for w in self.scenario.wear if w.equipment == code]
        return spans + [(e.end_s, e.clear_s) for e in self.wear.by_equipment.get(code, ())]

    def _note_visit(self, device: Device, at_s: float) -> None:
        # A maintenance period runs from the first message reporting the technician's mode to the first one back
        # in normal service: what the monitor showed, which is what a rule can know.
        visit = self._visiting.get(device.code)
        if device.in_maintenance and visit is None:
            visit = {"equipment": device.code, "kind": "maintenance", "name": "maintenance", "start_s": at_s,
                     "end_s": None}
            self._visits.append(visit)
            self._visiting[device.code] = visit
        elif visit is not None and not device.in_maintenance:
            visit["end_s"] = at_s
            del self._visiting[device.code]

    def labels(self, started_at: datetime) -> list[dict[str, Any]]:
        """Ground truth so far on this shard's equipment: every fault injected, every wear episode begun and every
        maintenance period (scenarios with maintenance visits).

        Each is {"equipment", "kind": "fault"|"wear"|"maintenance", "name", "start", "end"} (ISO 8601 times; end
        is None while it lasts), plus "leads_to" (the fault it ends in) for wear; times are started_at + seconds
        simulated, in start order. Which monitors report faults and how far each one's clock is off are the
        monitors' (`monitors`), the same for the same seed.
        """
        def iso(at_s: float | None) -> str | None:
            if at_s is None:
                return None
            return (started_at + timedelta(seconds=at_s)).isoformat(timespec="milliseconds")

        rows: list[tuple[float, dict[str, Any]]] = []
        for visit in self._visits:
            rows.append((visit["start_s"], {"equipment": visit["equipment"], "kind": "maintenance",
                                            "name": visit["name"], "start": iso(visit["start_s"]),
                                            "end": iso(visit["end_s"])}))
        for fault in self._injected:
            rows.append((fault["start_s"], {"equipment": fault["equipment"], "kind": "fault", "name": fault["name"],
                                            "start": iso(fault["start_s"]), "end": iso(fault["end_s"])}))
        for episode in self.wear.begun(self._latest_s):
            if episode.equipment not in self.devices:
                continue
            # A wear episode ends when its fault is raised.
            end = episode.end_s if episode.end_s <= self._latest_s else None
            rows.append((episode.start_s, {"equipment": episode.equipment, "kind": "wear", "name": episode.kind,
                                           "start": iso(episode.start_s), "end": iso(end),
                                           "leads_to": episode.leads_to}))
        rows.sort(key=lambda row: (row[0], row[1]["equipment"], row[1]["kind"] != "wear"))
        return [row for _, row in rows]
