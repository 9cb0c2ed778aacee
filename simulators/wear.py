"""Gradual wear: episodes that move a device's signals for days or weeks and end in the fault they lead to.

An episode's severity is a function of simulated elapsed time only (seconds since the simulation start), so
wear looks the same in real time, accelerated and backfill runs. It rises from 0 at `start_s` to 1 at
`end_s`, when its fault is raised; it stays 1 while that fault is active and drops to 0 when the fault is
cleared (the technician who cleared it repaired the worn part).
"""

from __future__ import annotations

import bisect
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulators.fleet import Equipment
    from simulators.scenario import Scenario

# Wear kinds per equipment type and the fault each ends in unless the scenario says otherwise.
WEAR_KINDS: dict[str, dict[str, str]] = {
    "elevator": {
        "door_operator": "door_close_failure",  # slower door cycles, more reopenings
        "bearing": "safety_circuit_open",  # guide shoes / sheave bearing: vibration rising while running
        "brake": "unintended_movement",  # levelling error rising, the car overshoots its landings
        "motor_overheat": "rerun_prevention",  # motor temperature rising until its thermal protection trips
    },
    "escalator": {
        "handrail": "handrail_speed_deviation",  # one handrail slipping further behind the steps
        "step_chain": "safety_circuit_open",  # step chain / bearings: vibration rising while running
    },
    "boiler": {
        "scaling": "high_flue_gas_temp",  # scale on the heating surfaces: hotter flue gas at the same firing
        "softener": "water_quality",  # softener resin exhausted: feedwater hardness rising
        "burner_drift": "flame_failure",  # air/fuel ratio drifting: O2 rising
    },
}
DEFAULT_FAULT_LASTS_S = 3600.0
# Episodes and faults on one equipment are kept this far apart (as timeline.GAP_S).
GAP_S = 5.0
# Wear accelerates towards failure (the P-F curve): severity = progress ** SHAPE.
SHAPE = 1.5
_NO_WEAR: Mapping[str, float] = {}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class ScheduledWear:
    """A wear episode the scenario places on one equipment."""

    equipment: str
    kind: str
    start_s: float
    duration_s: float
    leads_to: str
    fault_lasts_s: float


@dataclass(frozen=True)
class RepeatingWear:
    """Every every_s from first_s, a wear episode of a random kind on random in-use equipment."""

    first_s: float
    every_s: float
    duration_s: tuple[float, float]
    fault_lasts_s: float
    kinds: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class WearEpisode:
    """One wear episode as simulated: it begins at start_s, its fault is raised at end_s and cleared at clear_s."""

    equipment: str
    kind: str
    start_s: float
    end_s: float
    clear_s: float
    leads_to: str

    def severity(self, at_s: float) -> float:
        """0 (as new) to 1 (failed) at at_s seconds after the simulation start."""
        if at_s < self.start_s or at_s >= self.clear_s:
            return 0.0
        if at_s >= self.end_s:
            return 1.0
        return ((at_s - self.start_s) / (self.end_s - self.start_s)) ** SHAPE


def seconds(value: Any, where: str) -> float:
    """A duration from the scenario: a number of seconds, or a number with a unit: 90s, 30m, 6h, 14d, 2w."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: {value!r} is not a duration")
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(value))
    if not match:
        raise ValueError(f"{where}: {value!r} is not a duration (seconds, or a number with s, m, h, d or w)")
    return float(match[1]) * _UNITS[match[2]]


def parse_wear(data: Any, codes: Mapping[str, str]) -> tuple[ScheduledWear, ...]:
    """The scenario's `wear:` list, checked against the fleet's codes (code -> equipment type)."""
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ValueError("wear must be a list")
    episodes = []
    for index, item in enumerate(data):
        where = f"wear[{index}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where} must be a mapping")
        unknown = set(item) - {"equipment", "kind", "start", "duration", "leads_to", "fault_lasts"}
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        for key in ("equipment", "kind", "start", "duration"):
            if key not in item:
                raise ValueError(f"{where}: missing key {key!r}")
        code = str(item["equipment"])
        equipment_type = codes.get(code)
        if equipment_type is None:
            raise ValueError(f"{where}: no equipment {code} in the fleet")
        kind = _kind(equipment_type, str(item["kind"]), where)
        start = seconds(item["start"], f"{where}.start")
        duration = seconds(item["duration"], f"{where}.duration")
        lasts = seconds(item.get("fault_lasts", DEFAULT_FAULT_LASTS_S), f"{where}.fault_lasts")
        if start < 0 or duration <= 0 or lasts <= 0:
            raise ValueError(f"{where}: needs start >= 0, duration > 0 and fault_lasts > 0")
        leads_to = str(item.get("leads_to") or WEAR_KINDS[equipment_type][kind])
        _check_fault(equipment_type, leads_to, f"{where}.leads_to")
        episodes.append(ScheduledWear(code, kind, start, duration, leads_to, lasts))
    return tuple(episodes)


def parse_wear_repeat(data: Any) -> RepeatingWear | None:
    """The scenario's `wear_repeat:` mapping (random wear episodes), or None when absent."""
    if not data:
        return None
    if not isinstance(data, Mapping):
        raise ValueError("wear_repeat must be a mapping")
    unknown = set(data) - {"first", "every", "duration", "fault_lasts", "kinds"}
    if unknown:
        raise ValueError(f"wear_repeat: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    if "every" not in data or "kinds" not in data:
        raise ValueError("wear_repeat: needs `every` and `kinds`")
    every = seconds(data["every"], "wear_repeat.every")
    duration = data.get("duration", ("7d", "21d"))
    if not isinstance(duration, list | tuple) or len(duration) != 2:
        raise ValueError("wear_repeat.duration must be [shortest, longest]")
    low, high = (seconds(v, "wear_repeat.duration") for v in duration)
    lasts = seconds(data.get("fault_lasts", DEFAULT_FAULT_LASTS_S), "wear_repeat.fault_lasts")
    if every <= 0 or not 0 < low <= high or lasts <= 0:
        raise ValueError("wear_repeat: needs every > 0, 0 < duration[0] <= duration[1] and fault_lasts > 0")
    if not isinstance(data["kinds"], Mapping):
        raise ValueError("wear_repeat.kinds must map equipment types to lists of wear kinds")
    kinds = {}
    for equipment_type, names in data["kinds"].items():
        where = f"wear_repeat.kinds.{equipment_type}"
        if equipment_type not in WEAR_KINDS:
            raise ValueError(f"{where}: no wear kinds for {equipment_type!r} "
                             f"(types with wear: {', '.join(WEAR_KINDS)})")
        if not isinstance(names, list) or not names:
            raise ValueError(f"{where} must be a non-empty list")
        kinds[str(equipment_type)] = tuple(_kind(equipment_type, str(n), where) for n in names)
    first = seconds(data.get("first", every), "wear_repeat.first")
    return RepeatingWear(first_s=first, every_s=every, duration_s=(low, high), fault_lasts_s=lasts, kinds=kinds)


def check_wear(wear: Iterable[ScheduledWear], faults: Iterable[Any], suspended: Iterable[str]) -> None:
    """Refuse scheduled wear on suspended equipment, overlapping episodes, or a wear fault overlapping a fault."""
    suspended = set(suspended)
    busy: dict[str, list[tuple[float, float, str]]] = {}
    for fault in faults:
        end = float("inf") if fault.clear_at_s is None else fault.clear_at_s
        busy.setdefault(fault.equipment, []).append((fault.at_s, end, f"fault {fault.fault}"))
    spans: dict[str, list[tuple[float, float]]] = {}
    for episode in wear:
        if episode.equipment in suspended:
            raise ValueError(f"wear: {episode.equipment} is suspended and does not run")
        end = episode.start_s + episode.duration_s
        clear = end + episode.fault_lasts_s
        for start, stop in spans.get(episode.equipment, ()):
            if episode.start_s <= stop + GAP_S and start <= clear + GAP_S:
                raise ValueError(f"wear: two wear episodes overlap on {episode.equipment} (one at a time)")
        for start, stop, what in busy.get(episode.equipment, ()):
            if end <= stop + GAP_S and start <= clear + GAP_S:
                raise ValueError(f"wear: the {episode.leads_to} that {episode.kind} wear on {episode.equipment} "
                                 f"leads to overlaps its {what} (one fault at a time)")
        spans.setdefault(episode.equipment, []).append((episode.start_s, clear))


def _kind(equipment_type: str, kind: str, where: str) -> str:
    known = WEAR_KINDS.get(equipment_type, {})
    if kind not in known:
        raise ValueError(f"{where}: {equipment_type} has no wear kind {kind!r} "
                         f"(known: {', '.join(known) or 'none'})")
    return kind


def _check_fault(equipment_type: str, fault: str, where: str) -> None:
    # Imported here: devices imports the models, which must not depend on the scenario parser.
    from simulators.devices import supported_faults

    if fault not in supported_faults(equipment_type):
        raise ValueError(f"{where}: {equipment_type} cannot simulate {fault!r}")


class WearPlan:
    """Every wear episode of a scenario, scheduled and random, drawn lazily in start order.

    Depends only on the scenario, the whole fleet and the seed, so the fault timeline and each shard of a
    simulation build identical plans independently.
    """

    # Random draws that found no free equipment, in a row, before the plan is taken as finished.
    MAX_MISSES = 10_000

    def __init__(self, scenario: Scenario, fleet: list[Equipment], seed: int):
        self.rng = random.Random(f"{seed}/wear")
        self._scheduled = sorted(
            (WearEpisode(w.equipment, w.kind, w.start_s, w.start_s + w.duration_s,
                         w.start_s + w.duration_s + w.fault_lasts_s, w.leads_to) for w in scenario.wear),
            key=lambda e: (e.start_s, e.equipment))
        self._next_scheduled = 0
        self.repeat = scenario.wear_repeat
        repeat = self.repeat
        self._candidates = [e for e in fleet if e.status == "in_use" and repeat and repeat.kinds.get(e.type)]
        self._draw_at = repeat.first_s if repeat and self._candidates else float("inf")
        self._faults: dict[str, list[tuple[float, float]]] = {}
        for fault in scenario.faults:
            end = float("inf") if fault.clear_at_s is None else fault.clear_at_s
            self._faults.setdefault(fault.equipment, []).append((fault.at_s, end))
        # Whole spans (start to clear) of every episode known, scheduled ones from the outset.
        self._spans: dict[str, list[tuple[float, float]]] = {}
        for episode in self._scheduled:
            self._spans.setdefault(episode.equipment, []).append((episode.start_s, episode.clear_s))
        self._pending: WearEpisode | None = None
        self.episodes: list[WearEpisode] = []  # begun episodes handed out so far, in start order
        self.by_equipment: dict[str, list[WearEpisode]] = {}
        self._starts: list[float] = []

    def next_start(self) -> float:
        """When the next episode not yet handed out begins (inf when there is none)."""
        self._fill()
        return float("inf") if self._pending is None else self._pending.start_s

    def pop(self) -> WearEpisode:
        """Hand out the next episode (call only when next_start() is finite)."""
        self._fill()
        episode = self._pending
        assert episode is not None
        self._pending = None
        self.episodes.append(episode)
        self._starts.append(episode.start_s)
        self.by_equipment.setdefault(episode.equipment, []).append(episode)
        return episode

    def advance_to(self, at_s: float) -> None:
        """Hand out every episode that begins by at_s."""
        while self.next_start() <= at_s:
            self.pop()

    def begun(self, at_s: float) -> list[WearEpisode]:
        """The episodes that begin by at_s, in start order."""
        self.advance_to(at_s)
        return self.episodes[:bisect.bisect_right(self._starts, at_s)]

    def severity(self, equipment: str, at_s: float) -> Mapping[str, float]:
        """Wear severity by kind on one equipment at at_s (empty when it is not wearing)."""
        self.advance_to(at_s)
        episodes = self.by_equipment.get(equipment)
        if not episodes:
            return _NO_WEAR
        levels = {e.kind: e.severity(at_s) for e in episodes if e.start_s <= at_s < e.clear_s}
        return levels or _NO_WEAR

    def _fill(self) -> None:
        misses = 0
        while self._pending is None:
            scheduled = self._scheduled[self._next_scheduled] if self._next_scheduled < len(self._scheduled) else None
            if scheduled is not None and scheduled.start_s <= self._draw_at:
                self._next_scheduled += 1
                self._pending = scheduled
                return
            if self._draw_at == float("inf"):
                return
            self._pending = self._draw(self._draw_at)
            assert self.repeat is not None
            self._draw_at += self.repeat.every_s
            misses = 0 if self._pending else misses + 1
            if misses >= self.MAX_MISSES:
                self._draw_at = float("inf")

    def _draw(self, start: float) -> WearEpisode | None:
        repeat = self.repeat
        assert repeat is not None
        duration = round(self.rng.uniform(*repeat.duration_s))
        end, clear = start + duration, start + duration + repeat.fault_lasts_s
        free = [e for e in self._candidates if self._free(e.code, start, end, clear)]
        if not free:
            return None
        equipment = self.rng.choice(free)
        kind = self.rng.choice(repeat.kinds[equipment.type])
        self._spans.setdefault(equipment.code, []).append((start, clear))
        return WearEpisode(equipment.code, kind, start, end, clear, WEAR_KINDS[equipment.type][kind])

    def _free(self, code: str, start: float, end: float, clear: float) -> bool:
        # No other wear on the equipment meanwhile, and no scheduled fault while its own fault is active.
        return (all(clear + GAP_S < s or e + GAP_S < start for s, e in self._spans.get(code, ()))
                and all(clear + GAP_S < s or e + GAP_S < end for s, e in self._faults.get(code, ())))
