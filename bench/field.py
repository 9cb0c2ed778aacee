"""Field benchmark: the telemetry fault rules' false alarms over as many healthy equipment-days as CPU time allows,
engine-only.

    make bench-field                   # the defaults below
    .venv/bin/python bench/field.py

bench/detection.py scores the rules through the real broker, ingester and database, but its 3 simulated days give
about 81 healthy equipment-days: far too few to show the false-alarm targets (all rules at most 0.5 false alerts
per 1,000 healthy equipment-days, entrapment at most 0.05 per 1,000 elevator-days). This one leaves out the broker
and the database and runs many simulated months of the same telemetry through the rules alone:

- Telemetry: the simulators' `evaluation` scenario (simulators/scenarios/evaluation.yaml: noise, drop-outs,
  duplicates, reordering, clock skew, jitter, PIR misses, maintenance visits, lingering passengers, random faults,
  wear) made in-process as `semon simulate` makes it: FleetSimulation's schedule, and for each due item what the
  monitor actually sends (`messages(due, now)`, simulators/monitor.py), with every monitor telemetry-only like
  bench/detection.py's default. No wall clock: the monitors' clock starts at a local midnight (the scenario's
  +08:00, Asia/Shanghai) and the messages are made as fast as the CPU allows.
- Rules: each delivery of a monitor (what one `messages()` call returns: a reading, a flushed backlog, a duplicate,
  a held-back one) is parsed as the ingester parses it (ingest/messages.py) and its samples go to
  `Detector.evaluate` as one batch of the writer (models/rules/runtime.py) with that equipment's state, in the order
  the monitor delivers them. Before each delivery, and at the end, the scheduler's expiry job
  (models/rule_expiry.py) is emulated: an equipment whose state is pending gets `Detector.expire` with silent_since =
  when its previous message arrived and now = the job's last run before this one arrived (it runs every
  `rules_expiry_interval_s`), so a dwell that completes during a silence completes as the job would make it.
  Settings: `settings_from_config(load_config())` (SEMON_RULE_* variables change them); each fault code's
  severity and wording as the migrations seed the fault_codes table.
- Alerts: one per raise until its clear, as alerts/store.py keeps one open alert per (equipment, kind): a raise
  while it is open is a repeat, counted on it, not a new alert. first_seen is the change's `at`: the deciding
  sample's ts on the monitor's clock, with the monitor's skew taken off as bench/detection.py does; a dwell
  completed while the monitor was silent is dated on the server's clock, which is the true one, so nothing is
  taken off it.
- Scoring: bench/scoring.py against the simulation's own labels (FleetSimulation.labels), each equipment's span
  being its first to last stored ts less its skew, with bench/detection.py's 60 s tolerance: false alerts (by kind)
  per 1,000 healthy equipment-days (entrapment per 1,000 healthy elevator-days) with the one-sided 95 % upper
  bound, alerts in maintenance/inspection/out-of-service periods, and, as a side figure, the recall of the faults
  injected (the scenario's scheduled ones, its random repeating ones and those wear ends in).

Many independent fleet realisations make the equipment-days: the same scenario with different seeds (a seed
changes every random stream), 7, 8, 9 and so on, all starting on the same clock. Each seed's fleet is split into
shards (FleetSimulation(shard=...): a device behaves the same in any shard) so that every process has work, one
process per CPU by default. A seed of 30 days is 900 equipment-days (about 700 healthy, 460 of them elevator-days)
and 15.6 million samples, about 1,000 CPU-seconds: 8 to 9 minutes on 2 free CPUs. To show a rate within a target
with no false alert at all takes 3 / target equipment-days: 6,000 healthy equipment-days for all rules (9 seeds),
60,000 healthy elevator-days for entrapment (about 130 seeds, some 36 CPU-hours).

Environment:
    BENCH_FIELD_DAYS       simulated days per seed (30)
    BENCH_FIELD_SEEDS      fleet realisations (enough for about 1,000 equipment-days: 1 of 30 days)
    BENCH_FIELD_PROCESSES  worker processes (one per CPU)

Printed: progress, the per-kind table, one line per injected fault missed, per false alert and per alert in a mode
period (equipment and seed, kind, local time on the true clock, the alert's message), the targets, and as the last
line one JSON object with the figures (field_samples_per_s: samples made and judged per wall second, all processes).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, where bench/ingest.py would shadow the `ingest`
# package. Put the repository there instead (children started with spawn inherit it).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import contextlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import queue  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable, Iterable, Mapping, Sequence  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402
from datetime import UTC, date, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

import orjson  # noqa: E402

from bench.scoring import (  # noqa: E402
    Alert,
    Label,
    classify,
    exposure,
    per_1000_days,
    poisson_upper_95,
    read_labels,
)
from ingest.messages import Lookup, Rejected, Telemetry, parse_message  # noqa: E402
from models.rules.engine import REGISTRY, Change, Detector, EquipmentInfo, Sample  # noqa: E402
from models.rules.settings import RuleSettings, settings_from_config  # noqa: E402
from semon.config import load_config  # noqa: E402
from semon.vocabulary import fault_label  # noqa: E402
from simulators.lookup import FleetLookup  # noqa: E402
from simulators.scenario import Scenario, load_scenario  # noqa: E402
from simulators.simulation import FleetSimulation, Message  # noqa: E402

SCENARIO = "evaluation"
FIRST_SEED = 7  # bench/detection.py's seed: the first realisation is the fleet it runs
DEFAULT_EQUIPMENT_DAYS = 1000.0
# How long after a fault's end an alert still matches it: bench/detection.py's default (BENCH_DETECTION_TOLERANCE_S).
TOLERANCE_S = 60.0
PROGRESS_EVERY_S = 30.0
# False alerts and mode alerts listed one per line, at most this many of each (a bad setting may make thousands).
MAX_LISTED = 1000
MIGRATIONS = _HERE.parent / "semon" / "migrations"
# Rows of the migrations that seed fault_codes: (name, gbt_code, severity, equipment_types, description), and the
# Chinese names (name, name_zh).
_FAULT_CODE_ROW = re.compile(r"\('(\w+)',\s*(?:\d+|NULL),\s*'(\w+)',\s*'[^']*',\s*'([^']*)'\)")
_NAME_ZH_ROW = re.compile(r"\('(\w+)',\s*'([^'\x00-\x7f]+)'\)")


def log(message: str) -> None:
    print(message, flush=True)


def detector(rules: RuleSettings) -> Detector:
    """The rules with each fault code's severity and how it reads, as the migrations seed the fault_codes table
    (no database here)."""
    rows = _FAULT_CODE_ROW.findall((MIGRATIONS / "0002_fault_codes.sql").read_text(encoding="utf-8"))
    names = dict(_NAME_ZH_ROW.findall((MIGRATIONS / "0015_fault_code_names.sql").read_text(encoding="utf-8")))
    return Detector(rules, {code: severity for code, severity, _ in rows},
                    {code: fault_label(description, names.get(code, "")) for code, _, description in rows})


@dataclass(frozen=True)
class FieldSettings:
    days: float
    seeds: int
    processes: int
    rules: RuleSettings
    interval_s: float = 5.0
    expiry_interval_s: float = 1.0
    time_zone: str = "Asia/Shanghai"
    tolerance_s: float = TOLERANCE_S
    first_seed: int = FIRST_SEED

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FieldSettings:
        """The settings from BENCH_FIELD_* and semon's own configuration; a bad value exits naming it."""
        env = os.environ if env is None else env
        config = load_config()
        fleet = len(load_scenario(SCENARIO).equipment_codes())
        try:
            days = float(env.get("BENCH_FIELD_DAYS", 30))
            seeds = int(env.get("BENCH_FIELD_SEEDS") or 0)
            processes = int(env.get("BENCH_FIELD_PROCESSES") or os.cpu_count() or 1)
        except ValueError:
            raise SystemExit("bench/field.py: BENCH_FIELD_DAYS must be a number, BENCH_FIELD_SEEDS and "
                             "BENCH_FIELD_PROCESSES whole numbers") from None
        if not 0 < days <= 366:
            raise SystemExit("bench/field.py: BENCH_FIELD_DAYS must be in (0, 366]")
        if not env.get("BENCH_FIELD_SEEDS"):
            seeds = max(1, round(DEFAULT_EQUIPMENT_DAYS / (fleet * days)))
        if seeds < 1 or processes < 1:
            raise SystemExit("bench/field.py: BENCH_FIELD_SEEDS and BENCH_FIELD_PROCESSES must be at least 1")
        return cls(days=days, seeds=seeds, processes=processes, rules=settings_from_config(config),
                   interval_s=config.simulate_interval_s, expiry_interval_s=config.rules_expiry_interval_s,
                   time_zone=config.time_zone)


# --- one shard of one seed's fleet, in a worker ----------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """A piece of work: shard k of n of one seed's fleet, for `days` from the monitors' clock start (epoch s)."""

    number: int
    seed: int
    shard: tuple[int, int]
    days: float
    clock_epoch: float
    rules: RuleSettings
    interval_s: float = 5.0
    expiry_interval_s: float = 1.0


@dataclass(frozen=True)
class RawAlert:
    """One alert as alerts/store.py would keep it: raised once, repeats counted until it is resolved."""

    equipment: str
    kind: str
    first_seen: float   # epoch s on the true clock
    shown_at: datetime  # first_seen as the alert row says it (the monitor's clock, or the server's when silent)
    message: str
    detail: Mapping[str, Any]
    silent: bool        # completed while the monitor was silent (the expiry job raised it)
    repeats: int = 0


@dataclass
class UnitResult:
    """What a unit saw: its alerts, the simulation's labels, each equipment's stored ts span and the counts."""

    unit: Unit
    alerts: list[RawAlert]
    labels: list[dict[str, Any]]
    spans: dict[str, tuple[str, float, float]]  # code -> (type, first ts, last ts) on the monitor's clock
    skews: dict[str, float]
    suspended: list[str]
    counts: Counter[str] = field(default_factory=Counter)
    cpu_s: float = 0.0


class AlertBook:
    """The open alert per (equipment, kind), as alerts/store.py keeps it: a raise opens one or counts a repeat of
    the open one, a clear resolves it."""

    def __init__(self) -> None:
        self.alerts: list[RawAlert] = []
        self.open: dict[tuple[str, str], int] = {}

    def apply(self, equipment: str, changes: Iterable[Change], skew_s: float) -> None:
        """Take one equipment's rule changes, in order; skew_s: how far its monitor's clock is ahead of the truth."""
        for change in changes:
            key = (equipment, change.kind)
            if change.event != "raised":
                self.open.pop(key, None)
                continue
            index = self.open.get(key)
            if index is not None:
                self.alerts[index] = replace(self.alerts[index], repeats=self.alerts[index].repeats + 1)
                continue
            silent = bool(change.detail.get("completed_while_silent"))
            # Times are to the millisecond (ts, skews and labels alike).
            true_at = round(change.at.timestamp() - (0.0 if silent else skew_s), 3)
            self.open[key] = len(self.alerts)
            self.alerts.append(RawAlert(equipment, change.kind, true_at, change.at, change.message,
                                         dict(change.detail), silent))


class Feed:
    """One equipment's telemetry through the rules as the writer and the expiry job would put it."""

    def __init__(self, code: str, info: EquipmentInfo, detector: Detector, book: AlertBook, skew_s: float,
                 expiry_interval_s: float):
        self.code = code
        self.info = info
        self.detector = detector
        self.book = book
        self.skew_s = skew_s
        self.expiry_interval_s = expiry_interval_s
        self.state: dict[str, Any] | None = None
        self.pending = False
        self.last_received: datetime | None = None
        self.first_ts: float | None = None
        self.last_ts: float | None = None

    def expire_until(self, arrival: datetime) -> None:
        """The expiry job's last run before `arrival` (it runs on the multiples of its interval), if pending."""
        if not self.pending or self.last_received is None:
            return
        period = self.expiry_interval_s
        run = (math.ceil(arrival.timestamp() / period) - 1) * period
        if run <= self.last_received.timestamp():
            return
        self.state, changes = self.detector.expire(self.info, self.state, self.last_received,
                                                   datetime.fromtimestamp(run, UTC))
        self.pending = self.detector.pending(self.state)
        self.book.apply(self.code, changes, self.skew_s)

    def deliver(self, samples: Sequence[Sample], arrival: datetime) -> None:
        """A delivery that arrived at `arrival` (any message: telemetry, heartbeat, last will) with its samples."""
        self.expire_until(arrival)
        self.last_received = arrival
        if not samples:
            return
        self.state, changes = self.detector.evaluate(self.info, self.state, samples)
        self.pending = self.detector.pending(self.state)
        self.book.apply(self.code, changes, self.skew_s)
        for sample in samples:
            ts = sample.ts.timestamp()
            if self.first_ts is None or ts < self.first_ts:
                self.first_ts = ts
            if self.last_ts is None or ts > self.last_ts:
                self.last_ts = ts


def fleet_simulation(seed: int, interval_s: float, shard: tuple[int, int] = (0, 1),
                     scenario: str = SCENARIO, today: date | None = None) -> FleetSimulation:
    """A scenario's fleet (the evaluation fleet by default) as `semon simulate --scenario S --reporting-share 0
    [--today DAY]` runs it."""
    parsed = load_scenario(scenario)
    parsed = replace(parsed, monitors=replace(parsed.monitors, reporting_share=0.0))
    return FleetSimulation(parsed, seed, interval_s, today=today, shard=shard)


_progress: Any = None  # a worker's queue to the parent
_parent = 0


def _init_worker(channel: Any) -> None:
    global _progress, _parent
    _progress, _parent = channel, os.getppid()


def _send_progress(number: int, at_s: float, samples: int) -> None:
    if os.getppid() != _parent:
        # The parent was killed: nobody will read what this unit makes.
        raise SystemExit("bench/field.py: the parent process is gone")
    _progress.put((number, at_s, samples))


def run_unit(unit: Unit, progress: Callable[[int, float, int], None] | None = None) -> UnitResult:
    """Simulate one unit's equipment for its days, feeding the rules as they go; returns what it saw."""
    started_cpu = time.process_time()
    report = progress or (_send_progress if _progress is not None else None)
    simulation = fleet_simulation(unit.seed, unit.interval_s, unit.shard)
    rules = detector(unit.rules)
    lookup = FleetLookup(simulation)
    book = AlertBook()
    feeds: dict[str, Feed] = {}
    for number, equipment in enumerate(simulation.fleet_all, 1):
        if equipment.code in simulation.devices:
            info = EquipmentInfo(number, equipment.type, equipment.rated_speed_mps, equipment.floors,
                                 equipment.rated_pressure_mpa)
            skew_s = simulation.monitors[equipment.code].skew.total_seconds()
            feeds[equipment.code] = Feed(equipment.code, info, rules, book, skew_s, unit.expiry_interval_s)
    start = datetime.fromtimestamp(unit.clock_epoch, simulation.scenario.tz)
    end_s = unit.days * 86400
    counts: Counter[str] = Counter()
    next_report = time.monotonic() + 5.0
    for due in simulation.schedule():
        if due.at_s >= end_s:
            break
        counts["due"] += 1
        now = start + timedelta(seconds=due.at_s)
        try:
            messages = simulation.messages(due, now)
        except ValueError:
            counts["fault_actions_skipped"] += 1  # as `semon simulate`: a random fault during a maintenance visit
            continue
        if not messages:
            continue
        counts["messages"] += len(messages)
        samples = _samples(messages, lookup, now, counts)
        feeds[due.equipment].deliver(samples, now)
        if counts["due"] % 4096 == 0 and report is not None and time.monotonic() >= next_report:
            next_report = time.monotonic() + 5.0
            report(unit.number, due.at_s, counts["samples"])
    end = start + timedelta(seconds=end_s)
    for feed in feeds.values():
        feed.expire_until(end)
    if report is not None:
        report(unit.number, end_s, counts["samples"])
    labels = simulation.labels(datetime.fromtimestamp(unit.clock_epoch, UTC))
    spans = {code: (feed.info.type, feed.first_ts, feed.last_ts) for code, feed in feeds.items()
             if feed.first_ts is not None and feed.last_ts is not None}
    return UnitResult(unit, book.alerts, labels, spans, {code: feed.skew_s for code, feed in feeds.items()},
                      [code for code in simulation.scenario.suspended if code in feeds], counts,
                      time.process_time() - started_cpu)


def _samples(messages: Sequence[Message], lookup: Lookup, now: datetime, counts: Counter[str]) -> list[Sample]:
    """The delivery's telemetry as the ingester stores it and hands it to the rules."""
    samples = []
    for message in messages:
        if message.channel != "telemetry":
            continue
        # orjson instead of Message.encode()'s json: the same values, a tenth of the cost.
        parsed = parse_message(message.topic, orjson.dumps(message.payload), lookup, now)
        if isinstance(parsed, Rejected):
            counts["dead_letters"] += 1
            continue
        assert isinstance(parsed, Telemetry)
        if parsed.problems:
            counts["fields_refused"] += sum(1 for p in parsed.problems if not p.stored)
        samples.append(Sample(parsed.ts, parsed.seq, parsed.values))
    counts["samples"] += len(samples)
    return samples


# --- many units in parallel -------------------------------------------------------------------------------------


def clock_start(days: float, now: float, tz: Any) -> float:
    """Where the monitors' clock starts (epoch s): the local midnight `days` before today, as bench/detection.py's
    --clock-start, so every run sees the same hours of the day."""
    latest = datetime.fromtimestamp(now - days * 86400, tz)
    return latest.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def units_of(settings: FieldSettings, clock_epoch: float) -> list[Unit]:
    """Every seed's fleet split into shards so that the units share out evenly over the processes."""
    fleet = len(load_scenario(SCENARIO).equipment_codes())
    shards = min(fleet, settings.processes // math.gcd(settings.seeds, settings.processes))
    units = []
    for s in range(settings.seeds):
        for k in range(shards):
            units.append(Unit(len(units), settings.first_seed + s, (k, shards), settings.days, clock_epoch,
                              settings.rules, settings.interval_s, settings.expiry_interval_s))
    return units


class Progress:
    """Logs how far simulation units have got, every PROGRESS_EVERY_S: the share of their equipment-weighted
    simulated time done and the samples made; called as note(unit number, simulated s, samples) by the units."""

    def __init__(self, units: Sequence[Any], samples_are: str = "samples"):
        self.total_s = sum(u.days * 86400 / u.shard[1] for u in units)
        self.shards = {u.number: u.shard[1] for u in units}
        self.samples_are = samples_are
        self.done_s: dict[int, float] = {}
        self.samples: dict[int, int] = {}
        self.started = time.monotonic()
        self.next_log = self.started + PROGRESS_EVERY_S

    def __call__(self, number: int, at_s: float, count: int) -> None:
        self.done_s[number] = at_s / self.shards[number]
        self.samples[number] = count
        if time.monotonic() >= self.next_log:
            self.next_log += PROGRESS_EVERY_S
            elapsed = time.monotonic() - self.started
            made = sum(self.samples.values())
            log(f"    {elapsed:5.0f} s: {sum(self.done_s.values()) / self.total_s:6.1%} simulated, "
                f"{made:,} {self.samples_are} ({made / elapsed:,.0f}/s)")


def run_in_pool(run_unit: Callable[[Any], Any], units: Sequence[Any], processes: int,
                init_worker: Callable[[Any], None], note: Progress, meanwhile: Callable[[], object] | None = None,
                every_s: float = 300.0) -> list[Any]:
    """run_unit over the units in `processes` spawned workers, each started with init_worker(channel) and
    reporting progress on the channel to `note`; `meanwhile` is called every every_s while they run."""
    context = multiprocessing.get_context("spawn")
    channel = context.Queue()
    next_call = time.monotonic() + every_s
    with context.Pool(processes, initializer=init_worker, initargs=(channel,)) as pool:
        pending = [pool.apply_async(run_unit, (unit,)) for unit in units]
        while not all(result.ready() for result in pending):
            with contextlib.suppress(queue.Empty):
                note(*channel.get(timeout=1.0))
            if meanwhile is not None and time.monotonic() >= next_call:
                meanwhile()
                next_call = time.monotonic() + every_s
        return [result.get() for result in pending]


def run_units(units: list[Unit], processes: int) -> list[UnitResult]:
    """Run the units in `processes` spawned workers (in this process when 1), logging progress."""
    note = Progress(units)
    if processes == 1:
        return [run_unit(unit, note) for unit in units]
    return run_in_pool(run_unit, units, processes, _init_worker, note)


# --- scoring ----------------------------------------------------------------------------------------------------


def rule_kinds() -> dict[str, tuple[str, ...]]:
    """The fault codes the rules derive, per equipment type."""
    return {kind: tuple(rule.code for rule in type_rules.rules) for kind, type_rules in REGISTRY.items()}


def equipment_key(seed: int, code: str) -> str:
    """Each realisation's equipment apart: the same code in two seeds is two pieces of equipment."""
    return f"{code}/s{seed}"


@dataclass
class Scored:
    """The figures (for the JSON line), the per-kind table and the alerts to list."""

    figures: dict[str, Any]
    table: dict[str, dict[str, Any]]
    false: list[tuple[str, RawAlert]]
    mode: list[tuple[str, RawAlert]]
    missed: list[Label]


def score(results: Sequence[UnitResult], tolerance_s: float = TOLERANCE_S) -> Scored:
    """Classify every alert against its realisation's labels (bench/scoring.py) and count the exposure."""
    labels, alerts, raw = [], [], {}
    spans: dict[str, tuple[str, float, float]] = {}
    suspended: list[str] = []
    counts: Counter[str] = Counter()
    for result in results:
        seed = result.unit.seed
        for code, (equipment_type, first, last) in result.spans.items():
            skew = result.skews.get(code, 0.0)
            spans[equipment_key(seed, code)] = (equipment_type, first - skew, last - skew)
        labels += [replace(label, equipment=equipment_key(seed, label.equipment))
                   for label in read_labels(result.labels)]
        suspended += [equipment_key(seed, code) for code in result.suspended]
        for alert in result.alerts:
            number = len(raw) + 1
            raw[number] = (equipment_key(seed, alert.equipment), alert)
            alerts.append(Alert(number, equipment_key(seed, alert.equipment), alert.kind, alert.first_seen))
        counts.update(result.counts)
    observed_end = max((last for _, _, last in spans.values()), default=0.0)
    classified = classify(alerts, labels, tolerance_s, suspended, horizon=observed_end)
    exposed = exposure(spans, labels, tolerance_s, suspended)
    kinds = rule_kinds()
    types = {key: equipment_type for key, (equipment_type, _, _) in spans.items()}

    def eligible(label: Label) -> bool:
        # A fault the rules can know about, that began early enough to be decided within the run.
        return (label.kind == "fault" and label.equipment in types and label.start <= observed_end - tolerance_s
                and label.name in kinds.get(types[label.equipment], ()))

    injected = [label for label in labels if eligible(label)]
    table: dict[str, dict[str, Any]] = {}
    for name in sorted({label.name for label in injected} | {a.kind for a in alerts}):
        mine = [label for label in injected if label.name == name]
        detected = sum(1 for label in mine if label in classified.detection)
        categories = Counter(classified.category[a.id] for a in alerts if a.kind == name)
        table[name] = {"injected": len(mine), "detected": detected,
                       "recall": round(detected / len(mine), 3) if mine else None,
                       "alerts": sum(categories.values()), **{c: categories[c] for c in
                                                               ("matched", "secondary", "mode", "wear", "false")}}
    false = [a for a in alerts if classified.category[a.id] == "false"]
    mode = [a for a in alerts if classified.category[a.id] == "mode"]
    entrapment_false = sum(1 for a in false if a.kind == "entrapment")
    elevator_days = exposed.healthy_days.get("elevator", 0.0)
    detected_all = sum(1 for label in injected if label in classified.detection)
    observed: Counter[str] = Counter()
    for equipment_type, first, last in spans.values():
        observed[equipment_type] += (last - first) / 86400

    def rate(count: int, days: float) -> float | None:
        value = per_1000_days(count, days)
        return None if value is None else round(value, 3)

    figures = {
        "field_equipment_days": round(sum(observed.values()), 2),
        "field_healthy_equipment_days": round(exposed.healthy_total, 2),
        "field_healthy_elevator_days": round(elevator_days, 2),
        "field_false_alerts": len(false),
        "field_false_per_1000_equipment_days": rate(len(false), exposed.healthy_total),
        "field_false_per_1000_equipment_days_upper95": rate(poisson_upper_95(len(false)), exposed.healthy_total),
        "field_entrapment_false_alerts": entrapment_false,
        "field_entrapment_false_per_1000_elevator_days": rate(entrapment_false, elevator_days),
        "field_entrapment_false_per_1000_elevator_days_upper95": rate(poisson_upper_95(entrapment_false),
                                                                      elevator_days),
        "field_mode_alerts": len(mode),
        "field_mode_equipment_days": round(exposed.mode_total, 2),
        "field_false_by_kind": dict(sorted(Counter(a.kind for a in false).items())),
        "field_mode_by_kind": dict(sorted(Counter(a.kind for a in mode).items())),
        "field_wear_alerts": sum(1 for a in alerts if classified.category[a.id] == "wear"),
        "field_secondary_alerts": sum(1 for a in alerts if classified.category[a.id] == "secondary"),
        "field_alerts": len(alerts),
        "field_alert_repeats": sum(alert.repeats for _, alert in raw.values()),
        "field_completed_while_silent": sum(1 for _, alert in raw.values() if alert.silent),
        "field_recall": round(detected_all / len(injected), 3) if injected else None,
        "field_injected": len(injected),
        "field_detected": detected_all,
        "field_equipment_days_by_type": {t: round(d, 2) for t, d in sorted(observed.items())},
        "field_healthy_days_by_type": {t: round(d, 2) for t, d in sorted(exposed.healthy_days.items())},
        "field_samples": counts["samples"],
        "field_messages": counts["messages"],
        "field_dead_letters": counts["dead_letters"],
        "field_fields_refused": counts["fields_refused"],
        "field_fault_actions_skipped": counts["fault_actions_skipped"],
    }
    missed = [label for label in injected if label not in classified.detection]
    return Scored(figures, table, [raw[a.id] for a in false], [raw[a.id] for a in mode], missed)


def targets(figures: Mapping[str, Any]) -> dict[str, tuple[bool | None, str]]:
    """The false-alarm targets (bench/detection.py's): met only when the rate's 95 % upper bound is within."""
    from bench.detection import TARGET_ALL_FALSE, TARGET_ENTRAPMENT_FALSE, TARGET_MODE_FALSE

    def rate(key: str, days_key: str, limit: float) -> tuple[bool | None, str]:
        value, bound, days = figures[key], figures[f"{key}_upper95"], figures[days_key]
        if value is None or bound is None:
            return None, "no healthy days observed"
        said = f"{value:g} in {days:g} equipment-days (95 % upper bound {bound:g})"
        if value > limit:
            return False, said
        return (True, said) if bound <= limit else (None, f"{said}: too few equipment-days to show it")

    mode = figures["field_mode_alerts"]
    return {
        f"entrapment false <= {TARGET_ENTRAPMENT_FALSE} per 1,000 elevator-days":
            rate("field_entrapment_false_per_1000_elevator_days", "field_healthy_elevator_days",
                 TARGET_ENTRAPMENT_FALSE),
        f"all rules false <= {TARGET_ALL_FALSE} per 1,000 equipment-days":
            rate("field_false_per_1000_equipment_days", "field_healthy_equipment_days", TARGET_ALL_FALSE),
        "0 alerts in maintenance/inspection mode": (mode <= TARGET_MODE_FALSE, f"{mode}"),
    }


# --- report -----------------------------------------------------------------------------------------------------


def describe(key: str, alert: RawAlert, tz: ZoneInfo) -> str:
    """One alert on one line: equipment and seed, kind, local time on the true clock, its message."""
    local = datetime.fromtimestamp(alert.first_seen, tz).isoformat(sep=" ", timespec="seconds")
    extra = f"; repeated {alert.repeats} times" if alert.repeats else ""
    return f"{shown(key)}  {alert.kind}  {local}  {alert.message}{extra}"


def shown(key: str) -> str:
    code, seed = key.rsplit("/s", 1)
    return f"{code} (seed {seed})"


def print_report(scored: Scored, tz: ZoneInfo) -> None:
    f = scored.figures
    log(f"observed: {f['field_equipment_days']:,.1f} equipment-days, {f['field_healthy_equipment_days']:,.1f} "
        f"healthy {f['field_healthy_days_by_type']}, {f['field_mode_equipment_days']:,.1f} in a maintenance, "
        f"inspection or out-of-service mode; {f['field_alerts']} alerts ({f['field_false_alerts']} false, "
        f"{f['field_mode_alerts']} in a mode period, {f['field_wear_alerts']} in a wear episode, "
        f"{f['field_secondary_alerts']} explained by another fault; {f['field_alert_repeats']} repeats counted on "
        f"open alerts; {f['field_completed_while_silent']} completed while the monitor was silent)")
    log(f"{'fault kind':<26}{'inj':>5}{'det':>5}{'recall':>7}{'alerts':>7}{'match':>6}{'2nd':>5}{'mode':>5}"
        f"{'wear':>5}{'false':>6}")
    for name, row in scored.table.items():
        recall = "-" if row["recall"] is None else f"{row['recall']:g}"
        log(f"{name:<26}{row['injected']:>5}{row['detected']:>5}{recall:>7}{row['alerts']:>7}{row['matched']:>6}"
            f"{row['secondary']:>5}{row['mode']:>5}{row['wear']:>5}{row['false']:>6}")
    for label in scored.missed[:MAX_LISTED]:
        began = datetime.fromtimestamp(label.start, tz).isoformat(sep=" ", timespec="seconds")
        lasted = "until the end" if label.end is None else f"for {label.end - label.start:.0f} s"
        log(f"    missed: {label.name} on {shown(label.equipment)} at {began} {lasted}")
    for title, listed in (("false alert", scored.false), ("alert in a maintenance/out-of-service period",
                                                          scored.mode)):
        for key, alert in listed[:MAX_LISTED]:
            log(f"    {title}: {describe(key, alert, tz)}")
        if len(listed) > MAX_LISTED:
            log(f"    ... and {len(listed) - MAX_LISTED} more of them")


def run(settings: FieldSettings, now: float | None = None) -> dict[str, Any]:
    """Generate, evaluate and score; print the report; return the figures (the JSON line's)."""
    tz = ZoneInfo(settings.time_zone)
    scenario: Scenario = load_scenario(SCENARIO)
    clock_epoch = clock_start(settings.days, time.time() if now is None else now, scenario.tz)
    units = units_of(settings, clock_epoch)
    log(f"field: {settings.seeds} realisation(s) of the {SCENARIO} fleet ({len(scenario.equipment_codes())} "
        f"equipment, seeds {settings.first_seed}..{settings.first_seed + settings.seeds - 1}) for "
        f"{settings.days:g} simulated days each, the monitors' clock starting at "
        f"{datetime.fromtimestamp(clock_epoch, scenario.tz).isoformat()}; {len(units)} units on "
        f"{settings.processes} process(es)")
    started = time.monotonic()
    results = run_units(units, settings.processes)
    seconds = time.monotonic() - started
    scored = score(results, settings.tolerance_s)
    figures = scored.figures
    cpu_s = sum(r.cpu_s for r in results)
    figures.update({
        "field_seconds": round(seconds, 1),
        "field_samples_per_s": round(figures["field_samples"] / seconds) if seconds > 0 else None,
        "field_samples_per_cpu_s": round(figures["field_samples"] / cpu_s) if cpu_s > 0 else None,
        "field_seeds": settings.seeds, "field_days": settings.days, "field_processes": settings.processes,
    })
    log(f"generated and evaluated {figures['field_samples']:,} samples ({figures['field_messages']:,} messages) "
        f"in {seconds:.0f} s: {figures['field_samples_per_s']:,} samples/s, "
        f"{figures['field_samples_per_cpu_s']:,} per CPU-second")
    print_report(scored, tz)
    verdicts = targets(figures)
    figures["field_targets"] = {target: met for target, (met, _) in verdicts.items()}
    for target, (met, why) in verdicts.items():
        log(f"target {target}: {'not shown' if met is None else 'met' if met else 'MISSED'} ({why})")
    return figures


def main() -> int:
    from bench.ingest import describe_machine

    settings = FieldSettings.from_env()
    # A SIGTERM unwinds like Ctrl-C, so that the pool's workers are stopped with the run.
    signal.signal(signal.SIGTERM, _interrupt)
    log(f"semon field benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}")
    figures = run(settings)
    headline = ["field_false_per_1000_equipment_days", "field_false_per_1000_equipment_days_upper95",
                "field_entrapment_false_per_1000_elevator_days",
                "field_entrapment_false_per_1000_elevator_days_upper95", "field_healthy_equipment_days",
                "field_healthy_elevator_days"]
    ordered = {key: figures[key] for key in headline}
    ordered.update({key: value for key, value in figures.items() if key not in ordered})
    log(json.dumps(ordered, ensure_ascii=False))
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
