"""Scoring derived alerts against the simulator's ground truth (bench/detection.py); pure, no I/O.

Times are epoch seconds on the true clock: the simulator's labels are in it, and an alert's first_seen (the
monitor's ts of the deciding sample) is brought to it by taking off that monitor's clock skew.

An alert of equipment E and kind K *matches* a fault label of E and K when its first_seen falls within
[label start, label end + tolerance]. Any other alert is put in the first of these that holds at its first_seen:
- `secondary`: within [start, end + tolerance] of another fault injected on E (a stopped car that also stands
  outside the door zone, an open safety circuit during a power failure): explained by a real fault;
- `mode`: E is in a maintenance or inspection period (a maintenance label) or out of service (suspended);
- `wear`: within a wear episode of E (degrading, not yet failed);
- `false`: E was healthy.
False-alarm rates are over the matching exposure: healthy equipment-days (in service, outside every fault window,
wear episode and maintenance period), and mode equipment-days (maintenance periods and suspended equipment).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DAY_S = 86400.0


@dataclass(frozen=True)
class Label:
    """One ground-truth row of `semon simulate --labels`: a fault, a wear episode or a maintenance period."""

    equipment: str
    kind: str              # fault, wear or maintenance
    name: str              # the fault code, the wear kind, or "maintenance"
    start: float
    end: float | None      # None: still going when the simulation stopped


@dataclass(frozen=True)
class Alert:
    """One alert row, its first_seen on the true clock."""

    id: int
    equipment: str
    kind: str
    first_seen: float


@dataclass
class Classified:
    """Where each alert went, and which labels were detected (by their first matching alert)."""

    category: dict[int, str] = field(default_factory=dict)             # alert id -> matched/secondary/mode/wear/false
    matched_label: dict[int, Label] = field(default_factory=dict)      # alert id -> the label it matched
    detection: dict[Label, Alert] = field(default_factory=dict)        # label -> its first matching alert


def read_labels(rows: Iterable[Mapping[str, Any]]) -> list[Label]:
    """Labels from the parsed JSON lines of a labels file (ISO 8601 times)."""
    labels = []
    for row in rows:
        end = row.get("end")
        labels.append(Label(str(row["equipment"]), str(row["kind"]), str(row["name"]),
                            datetime.fromisoformat(row["start"]).timestamp(),
                            None if end is None else datetime.fromisoformat(end).timestamp()))
    return labels


def _within(t: float, label: Label, tolerance_s: float, horizon: float) -> bool:
    end = horizon if label.end is None else label.end
    return label.start <= t <= end + tolerance_s


def classify(alerts: Iterable[Alert], labels: Iterable[Label], tolerance_s: float,
             suspended: Iterable[str] = (), horizon: float = math.inf) -> Classified:
    """Put every alert in its category (module docstring); `horizon` ends labels still open."""
    by_equipment: dict[str, list[Label]] = defaultdict(list)
    for label in labels:
        by_equipment[label.equipment].append(label)
    out_of_service = set(suspended)
    result = Classified()
    for alert in sorted(alerts, key=lambda a: (a.first_seen, a.id)):
        own = by_equipment.get(alert.equipment, [])
        t = alert.first_seen
        faults = [x for x in own if x.kind == "fault" and _within(t, x, tolerance_s, horizon)]
        same = [x for x in faults if x.name == alert.kind]
        if same:
            label = min(same, key=lambda x: x.start)
            result.category[alert.id] = "matched"
            result.matched_label[alert.id] = label
            result.detection.setdefault(label, alert)
        elif faults:
            result.category[alert.id] = "secondary"
        elif alert.equipment in out_of_service or any(
                x.kind == "maintenance" and _within(t, x, 0.0, horizon) for x in own):
            result.category[alert.id] = "mode"
        elif any(x.kind == "wear" and _within(t, x, 0.0, horizon) for x in own):
            result.category[alert.id] = "wear"
        else:
            result.category[alert.id] = "false"
    return result


def _merged(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _length(intervals: Iterable[tuple[float, float]], within: tuple[float, float]) -> float:
    low, high = within
    return sum(max(0.0, min(e, high) - max(s, low)) for s, e in _merged(intervals))


@dataclass(frozen=True)
class Exposure:
    """Equipment-days observed, by equipment type: healthy, and in a maintenance/inspection or out-of-service mode."""

    healthy_days: Mapping[str, float]
    mode_days: Mapping[str, float]

    @property
    def healthy_total(self) -> float:
        return sum(self.healthy_days.values())

    @property
    def mode_total(self) -> float:
        return sum(self.mode_days.values())


def exposure(spans: Mapping[str, tuple[str, float, float]], labels: Iterable[Label], tolerance_s: float,
             suspended: Iterable[str] = ()) -> Exposure:
    """Healthy and mode equipment-days from each equipment's observed span (code -> (type, first, last))."""
    by_equipment: dict[str, list[Label]] = defaultdict(list)
    for label in labels:
        by_equipment[label.equipment].append(label)
    out_of_service = set(suspended)
    healthy: dict[str, float] = defaultdict(float)
    mode: dict[str, float] = defaultdict(float)
    for code, (equipment_type, first, last) in spans.items():
        span = (first, last)
        if code in out_of_service:
            mode[equipment_type] += (last - first) / DAY_S
            continue
        own = by_equipment.get(code, [])
        faults = [(x.start, (last if x.end is None else x.end) + tolerance_s) for x in own if x.kind == "fault"]
        visits = [(x.start, last if x.end is None else x.end) for x in own if x.kind == "maintenance"]
        wear = [(x.start, last if x.end is None else x.end) for x in own if x.kind == "wear"]
        busy = _length(faults + visits + wear, span)
        healthy[equipment_type] += (last - first - busy) / DAY_S
        # A maintenance period is mode time; a fault window within it (none is injected there) is not.
        mode[equipment_type] += (_length(visits + faults, span) - _length(faults, span)) / DAY_S
    return Exposure(dict(healthy), dict(mode))


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile with linear interpolation between the closest ranks (numpy's default); None if empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def per_1000_days(count: int, days: float) -> float | None:
    """A count per 1,000 equipment-days; None when nothing was observed."""
    return None if days <= 0 else count / days * 1000


def poisson_upper_95(count: int) -> float:
    """The one-sided 95 % upper confidence bound on the mean of a Poisson count (0 seen: 2.996)."""

    def at_most(mean: float) -> float:
        term = total = math.exp(-mean)
        for i in range(1, count + 1):
            term *= mean / i
            total += term
        return total

    low, high = float(count), float(count) + 10 * math.sqrt(count + 1) + 10
    for _ in range(200):
        middle = (low + high) / 2
        if at_most(middle) > 0.05:
            low = middle
        else:
            high = middle
    return (low + high) / 2
