"""Wear benchmark: the wear models (models/wear/, docs/wear.md) and the z-score baseline against the simulators' ground
truth of gradual wear, and what the models cost.

    make bench-wear                    # starts TimescaleDB if needed, installs mosquitto, runs this
    .venv/bin/python bench/wear.py     # when TimescaleDB is up and mosquitto is installed

Fleet (phase `fleet`): BENCH_WEAR_SEEDS realisations of the `evaluation` scenario (seeds 7, 8, ...: every random
stream differs), each with BENCH_WEAR_WARMUP_DAYS of ordinary service (default wear_min_history_days) before the
scenario's BENCH_WEAR_DAYS: its scheduled wear and faults and its first random wear episode move that much later,
its random sudden faults and maintenance visits run throughout. Everything else is the scenario's: monitors that
drop out, repeat, reorder and run off the true time, noise, maintenance visits, sudden faults, its scripted wear
and, from its day 20, random wear (a random kind on random equipment every 4 days, growing to its fault in 7 to 14
days); the simulators' own rhythms (each kind of site's rush hours and weekends, the boilers' demand following
them and the heating season: docs/simulate.md) and nothing shaped to the models. Every monitor is telemetry-only
and reports every BENCH_WEAR_INTERVAL_S (30 s), its clock starting at a local midnight so that the data ends at
today's.
  The telemetry is made in-process as `semon simulate` makes it (FleetSimulation's schedule and what each monitor
  sends, bench/field.py's way) and stored straight into a fresh database as the ingester stores it: every message
  parsed by ingest/messages.py and written in batches by ingest/writer.py's BatchWriter (rules off: this is about
  wear), each seed's fleet registered through the registry CSV import with its codes suffixed `-s<seed>`. Then
  the rollup job (models/rollup.py) makes the hourly windows, and the wear jobs are replayed over the simulated
  days as the scheduler runs them: at each local midnight `wear_train` (every wear_train_interval_s) on the
  windows before it, then `wear_score` over the day's windows, while the maintenance firm's records of each
  maintenance visit and of each repair (a fault cleared) are written as the days pass (the job resolves an alert
  once a record follows it and the score is normal). Once with the configured detector (wear_detector), once with
  models/wear's z-score detector as the baseline: each feature's deviation from the equipment's own median of its
  trailing wear_baseline_days in units of its MAD (the fleet's median before it has wear_min_history_days of its
  own), calibrated on the healthy training days like the model, alerting after the same wear_alert_windows high
  windows in a row, the component that of its farthest feature.
  The 30 s interval (`semon simulate --interval`, 5 s by default) is a monitor's setting: the windows are built
  from the same simulators' physics (which steps every 0.5 s whatever the interval), from a sixth of the samples
  (`tests/test_rollup.py` shows each wear in hourly windows at 5 s). It halves the rows to store and roll up; the
  physics is what sets the run's length: about 0.4 CPU-seconds per equipment-day at any interval, so the 5,000 healthy
  equipment-days the false-alarm figure needs take some 30 minutes of both CPUs of the 2-CPU machine to make.

Scoring (pure, tested in tests/test_wear_bench.py), from the end of the first day (the first model) on, on the
types with wear models: an episode runs from its wear label's start to its fault; it is flagged before its fault
when a wear alert of its equipment opens (first_seen: the window end at which it qualified) between the two; its
lead is the fault's time less the first such alert's, also as a share of the episode's length; the component
matches when that alert's `wear:<component>` is the one the episode's kind wears (COMPONENT_OF_SIMULATED_WEAR). An
alert is put down to, in order: an episode of its equipment (before its fault: early; in the window of the fault
it ended in, up to its clear and bench/detection.py's 60 s after: late), a sudden fault (its window), a
maintenance visit or suspension, or nothing: false. False alerts are per 1,000 healthy equipment-days
(bench/scoring.py's exposure: in service, outside wear episodes, fault windows and maintenance visits), with the
one-sided 95 % upper bound; event precision is the share of alerts put down to an episode. Per wear kind, the
alerts are those naming its component, and the days those of its type.

Cost (phase `cost`): 10,000 equipment in the load scenario's mix of lifts, escalators and boilers, their windows
copied from the fleet's (real simulated windows) into days before the fleet's and removed afterwards. Training
the elevator model on 1,000 of them with wear_train_days of windows (and the days their baselines need before):
`wear_train`'s own train_type, reading included. Scoring the latest wear_recent_hours of all 10,000: wear_score's
own score_ends for one window end, once as the day's first run (which computes the day's own baselines, here of
the 1,000 with history) and once as every later run of the day (baselines cached): score_10k_equipment_s.

End to end (phase `e2e`): the first BENCH_WEAR_E2E_DAYS of seed 7's fleet again, published by `semon simulate`
(the same seed, interval and clock start) to a private Mosquitto and stored by `semon ingest` in a database of its
own, then rolled up: its windows are compared with those the direct path stored. The same windows give the same
scores, so the fleet's figures hold for the broker path.

Environment:
    BENCH_WEAR_SEEDS         fleet realisations (4)
    BENCH_WEAR_DAYS          the scenario's days simulated after the warm-up (46; its scripted wear ends by day 26)
    BENCH_WEAR_WARMUP_DAYS   days of service before them (wear_min_history_days)
    BENCH_WEAR_INTERVAL_S    seconds between a monitor's readings (30)
    BENCH_WEAR_PROCESSES     worker processes making the telemetry (one per CPU)
    BENCH_WEAR_PHASES        fleet,cost,e2e
    BENCH_WEAR_E2E_DAYS      simulated days of the end-to-end phase (1), published in 120 s
    BENCH_WEAR_DATABASE      keep the fleet's database under this name; a later run with the same settings reuses
                             its telemetry (to look into alerts, or replay the models again), or carries on with
                             it where a run was cut short (by a restart of the shared server, say)

Printed: progress, per detector the per-kind table, one line per episode missed and per false alert, the targets,
and as the last line one JSON object with the figures (the model's wear_*, the baseline's baseline_wear_*).
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

import bisect  # noqa: E402
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from collections.abc import Callable, Iterable, Mapping, Sequence  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from dataclasses import asdict, dataclass, field, replace  # noqa: E402
from datetime import UTC, date, datetime, timedelta, tzinfo  # noqa: E402
from typing import Any, TypeVar  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

import orjson  # noqa: E402
import psycopg  # noqa: E402
import yaml  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from bench.detection import _STOPPED as SIMULATION_STOPPED  # noqa: E402
from bench.detection import Child, Ingester, drop_patiently, semon_command, wait_ingested  # noqa: E402
from bench.field import Progress, clock_start, equipment_key, fleet_simulation, run_in_pool, shown  # noqa: E402
from bench.ingest import describe_machine  # noqa: E402
from bench.scoring import Label, exposure, per_1000_days, percentile, poisson_upper_95, read_labels  # noqa: E402
from bench.services import REPO, PrivateBroker  # noqa: E402
from ingest.messages import Equipment, FaultCode, Lookup, Parsed, Telemetry, parse_message  # noqa: E402
from ingest.writer import BatchWriter, WriteResult  # noqa: E402
from models.risk import WEAR_PREFIX  # noqa: E402
from models.rollup import FEATURES as ROLLUP_FEATURES  # noqa: E402
from models.rollup import rollup, rollup_table  # noqa: E402
from models.rollup import settings_from_config as rollup_settings  # noqa: E402
from models.wear.baseline import span_days  # noqa: E402
from models.wear.features import COMPONENT_OF_SIMULATED_WEAR, WEAR_TYPES  # noqa: E402
from models.wear.jobs import score_job, train_job, train_type  # noqa: E402
from models.wear.scoring import SOURCE as WEAR_SOURCE  # noqa: E402
from models.wear.scoring import score_ends  # noqa: E402
from models.wear.scoring import settings_from_config as wear_settings  # noqa: E402
from models.wear.store import ModelCache  # noqa: E402
from semon.config import Config, load_config  # noqa: E402
from semon.db import DatabaseUnavailable, connect, create_database, redact, with_database  # noqa: E402
from semon.migrate import migrate  # noqa: E402
from semon.registry.importer import import_registry_csv  # noqa: E402
from semon.vocabulary import EQUIPMENT_TYPES  # noqa: E402
from simulators.fleet import build_fleet, write_registry_csv  # noqa: E402
from simulators.scenario import SCENARIO_DIR, load_scenario  # noqa: E402
from simulators.simulation import FleetSimulation  # noqa: E402
from simulators.wear import seconds  # noqa: E402

T = TypeVar("T")
SCENARIO = "evaluation"
FIRST_SEED = 7  # bench/detection.py's seed: the first realisation is the fleet it runs
PHASES = ("fleet", "cost", "e2e")
# The baseline the fleet model is held against: models/wear's per-feature robust z-score detector.
BASELINE_DETECTOR = "zscore"
DAY_S = 86400.0
# How long after a fault's end an alert is still put down to it: bench/detection.py's default.
TOLERANCE_S = 60.0
# A false alert this soon after a worn part was repaired (its fault cleared) is counted apart as well: the models'
# trailing baselines still hold the worn weeks.
AFTER_REPAIR_S = 7 * DAY_S
# Units of telemetry to make per worker process: a run cut short resumes without the units it finished.
UNITS_PER_PROCESS = 4
# Attempts at a database step that the shared server's restart cut short.
RETRIES = 5
# Wall seconds the end-to-end phase publishes its day(s) in.
E2E_WALL_S = 120.0
# Missed episodes and false alerts are listed one a line, at most this many of each.
MAX_LISTED = 200
# What the wear models are held to.
TARGET_FLAGGED = 0.8
TARGET_LEAD_H = 24.0
TARGET_LEAD_SHARE = 0.25
TARGET_FALSE = 1.0  # per 1,000 healthy equipment-days
TARGET_PRECISION = 0.5
TARGET_SCORE_S = 1.0
TARGET_TRAIN_S = 60.0
HEADLINE = ("wear_flagged_before_fault", "wear_median_lead_h", "wear_median_lead_share",
            "wear_false_per_1000_equipment_days", "wear_precision", "wear_component_match",
            "baseline_wear_flagged_before_fault", "baseline_wear_median_lead_h",
            "baseline_wear_false_per_1000_equipment_days", "baseline_wear_precision", "score_10k_equipment_s",
            "train_1000_equipment_30d_s", "wear_healthy_equipment_days", "wear_episodes")


def log(message: str) -> None:
    print(message, flush=True)


# --- scoring: pure, no I/O -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WearAlert:
    """A wear alert as it opened: the equipment, the component it names (`wear:<component>`), when (epoch s)."""

    equipment: str
    component: str
    opened: float


@dataclass(frozen=True)
class Episode:
    """A wear episode of the ground truth: from its start until its fault is raised (None: still wearing at the
    end), and when that fault was cleared (None: not cleared, or no fault label found)."""

    equipment: str
    kind: str
    start: float
    fault: float | None
    cleared: float | None = None

    @property
    def length_s(self) -> float | None:
        return None if self.fault is None else self.fault - self.start


def episodes_of(labels: Iterable[Label]) -> list[Episode]:
    """The wear episodes among the labels, each with the clear of the fault it ended in (the fault label of the
    same equipment raised when the episode ended)."""
    labels = list(labels)
    faults: dict[str, list[Label]] = defaultdict(list)
    for label in labels:
        if label.kind == "fault":
            faults[label.equipment].append(label)
    episodes = []
    for label in labels:
        if label.kind != "wear":
            continue
        cleared = None
        if label.end is not None:
            ended_in = [f for f in faults[label.equipment] if abs(f.start - label.end) < 1.0]
            cleared = ended_in[0].end if ended_in else None
        episodes.append(Episode(label.equipment, label.name, label.start, label.end, cleared))
    return sorted(episodes, key=lambda e: (e.start, e.equipment))


@dataclass(frozen=True)
class Verdict:
    """Where one alert went: early (in an episode, before its fault), late (in the window of the fault the episode
    ended in), fault (in another fault's window), mode (maintenance, inspection or out of service) or false."""

    category: str
    episode: Episode | None = None
    after_repair: bool = False

    @property
    def matching(self) -> bool:
        return self.category in ("early", "late")


def judge(alert: WearAlert, episodes: Sequence[Episode], labels: Sequence[Label], horizon: float,
          tolerance_s: float = TOLERANCE_S, suspended: frozenset[str] = frozenset()) -> Verdict:
    """One alert's verdict. The wear comes first: an alert in an episode matches it even during a maintenance visit
    or a sudden fault, which are only the next explanations before `false`. `episodes` and `labels` are the
    alert's equipment's own."""
    t = alert.opened
    for episode in episodes:
        fault = horizon if episode.fault is None else episode.fault
        if episode.start <= t < fault:
            return Verdict("early", episode)
    for episode in episodes:
        if episode.fault is not None:
            end = episode.fault if episode.cleared is None else episode.cleared
            if episode.fault <= t <= end + tolerance_s:
                return Verdict("late", episode)
    for label in labels:
        end = horizon if label.end is None else label.end
        if label.kind == "fault" and label.start <= t <= end + tolerance_s:
            return Verdict("fault")
    if alert.equipment in suspended or any(
            label.kind == "maintenance" and label.start <= t <= (horizon if label.end is None else label.end)
            for label in labels):
        return Verdict("mode")
    repaired = [e.cleared for e in episodes if e.cleared is not None and e.cleared <= t]
    return Verdict("false", after_repair=bool(repaired) and t - max(repaired) <= AFTER_REPAIR_S)


@dataclass
class WearScore:
    """A detector's figures (for the JSON line, unprefixed), its per-kind table and the alerts to list."""

    figures: dict[str, Any]
    table: dict[str, dict[str, Any]]
    verdicts: list[tuple[WearAlert, Verdict]]
    missed: list[Episode] = field(default_factory=list)


def score_wear(alerts: Iterable[WearAlert], labels: Iterable[Label], spans: Mapping[str, tuple[str, float, float]],
               active_from: float, types: Iterable[str], components: Mapping[str, str], suspended: Iterable[str] = (),
               tolerance_s: float = TOLERANCE_S) -> WearScore:
    """Score a detector's wear alerts against the labels.

    `spans`: each equipment's observed telemetry (code -> (type, first, last), true clock). Only what happens from
    `active_from` (when the detector has what it needs to score) counts, on equipment of the `types` it scores:
    alerts opened before are left out, an episode counts when its fault comes after it, and the healthy
    equipment-days are those after it (bench/scoring.py's exposure: in service, outside every wear episode, fault
    window and maintenance period). `components` names the component each kind of wear wears (an alert names the
    component); the figures of a kind are of its episodes and of the alerts naming its component. Lead times and
    their medians are of the episodes flagged."""
    kind_of = {component: kind for kind, component in components.items()}
    alerts = [replace(a, component=kind_of.get(a.component, a.component)) for a in alerts]
    labels = list(labels)
    types = set(types)
    suspended = frozenset(suspended)
    scored = {code: (t, max(first, active_from), last) for code, (t, first, last) in spans.items()
              if t in types and last > max(first, active_from)}
    horizon = max((last for _, _, last in scored.values()), default=active_from)
    by_equipment: dict[str, list[Label]] = defaultdict(list)
    for label in labels:
        by_equipment[label.equipment].append(label)
    episodes = [e for e in episodes_of(labels) if e.equipment in scored]
    own_episodes: dict[str, list[Episode]] = defaultdict(list)
    for episode in episodes:
        own_episodes[episode.equipment].append(episode)
    verdicts = [(a, judge(a, own_episodes[a.equipment], by_equipment[a.equipment], horizon, tolerance_s, suspended))
                for a in sorted(alerts, key=lambda a: (a.opened, a.equipment, a.component))
                if a.equipment in scored and active_from <= a.opened <= horizon]
    first_alert: dict[Episode, WearAlert] = {}
    for alert, verdict in verdicts:
        if verdict.category == "early" and verdict.episode is not None:
            first_alert.setdefault(verdict.episode, alert)
    judged = [e for e in episodes if e.fault is not None and active_from < e.fault <= horizon]
    healthy = exposure(scored, labels, tolerance_s, suspended)
    type_of = {code: t for code, (t, _, _) in scored.items()}

    def figures_of(mine: list[Episode], alerts_of: list[tuple[WearAlert, Verdict]],
                   days: float) -> dict[str, Any]:
        flagged = [e for e in mine if e in first_alert]
        leads = [e.fault - first_alert[e].opened for e in flagged]  # type: ignore[operator]
        shares = [lead / e.length_s for lead, e in zip(leads, flagged, strict=True) if e.length_s]
        right = sum(1 for e in flagged if first_alert[e].component == e.kind)
        false = sum(1 for _, v in alerts_of if v.category == "false")
        matching = sum(1 for _, v in alerts_of if v.matching)
        median_lead = percentile(leads, 50)
        median_share = percentile(shares, 50)
        return {
            "episodes": len(mine), "flagged": len(flagged),
            "flagged_before_fault": _ratio(len(flagged), len(mine)),
            "median_lead_h": None if median_lead is None else round(median_lead / 3600, 1),
            "median_lead_share": None if median_share is None else round(median_share, 3),
            "component_match": _ratio(right, len(flagged)),
            "alerts": len(alerts_of), "matching_alerts": matching, "false_alerts": false,
            "false_per_1000_equipment_days": _rate(false, days),
            "false_per_1000_equipment_days_upper95": _rate(poisson_upper_95(false), days),
            "precision": _ratio(matching, len(alerts_of)),
        }

    overall = figures_of(judged, verdicts, healthy.healthy_total)
    categories = Counter(v.category for _, v in verdicts)
    figures = {f"wear_{key}": value for key, value in overall.items()}
    figures.update({
        "wear_late_alerts": categories["late"], "wear_fault_alerts": categories["fault"],
        "wear_mode_alerts": categories["mode"],
        "wear_false_after_repair": sum(1 for _, v in verdicts if v.after_repair),
        "wear_still_wearing_at_end": sum(1 for e in episodes if e.fault is None or e.fault > horizon),
        "wear_healthy_equipment_days": round(healthy.healthy_total, 1),
        "wear_healthy_days_by_type": {t: round(d, 1) for t, d in sorted(healthy.healthy_days.items())},
    })
    table: dict[str, dict[str, Any]] = {}
    kinds = sorted({e.kind for e in judged} | {a.component for a, _ in verdicts})
    for kind in kinds:
        mine = [e for e in judged if e.kind == kind]
        kind_types = {type_of[e.equipment] for e in mine}
        # The alerts that name this component, and the healthy days of the types it was raised on.
        named = [(a, v) for a, v in verdicts if a.component == kind]
        kind_types |= {type_of[a.equipment] for a, _ in named}
        days = sum(healthy.healthy_days.get(t, 0.0) for t in kind_types)
        table[kind] = {"type": "/".join(sorted(kind_types)), **figures_of(mine, named, days)}
    missed = [e for e in judged if e not in first_alert]
    return WearScore(figures, table, verdicts, missed)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def _rate(count: float, days: float) -> float | None:
    value = per_1000_days(count, days)  # type: ignore[arg-type]
    return None if value is None else round(value, 3)


def prefixed(figures: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The figures with `prefix` before each key (the baseline's are baseline_wear_...)."""
    return {f"{prefix}{key}": value for key, value in figures.items()}


# --- the fleet's telemetry, straight into the database ----------------------------------------------------------


def registry_code(code: str, seed: int) -> str:
    """An equipment's code in the benchmark's registry: each realisation's fleet is registered apart."""
    return f"{code}-s{seed}"


@dataclass(frozen=True)
class Unit:
    """A piece of work: shard k of n of one seed's fleet for `days` from the monitors' clock start (epoch s),
    stored in the database at db_url under the ids registered for that seed (code -> id)."""

    number: int
    seed: int
    shard: tuple[int, int]
    days: float
    clock_epoch: float
    interval_s: float
    scenario: str
    db_url: str
    ids: Mapping[str, int]
    run: str = ""  # the run's key (JSON): a unit done is noted under it, and a run cut short resumes without it
    today: str = ""  # the fleet's day (fleet_day), ISO; "" in a unit noted before there was one


@dataclass
class UnitResult:
    """What a unit stored: the simulation's labels, each equipment's stored ts span and skew, and the counts."""

    unit: Unit
    labels: list[dict[str, Any]]
    spans: dict[str, tuple[str, float, float]]  # code -> (type, first ts, last ts) on the monitor's clock
    skews: dict[str, float]
    suspended: list[str]
    counts: Counter[str] = field(default_factory=Counter)
    cpu_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The result as JSON (bench_wear_units)."""
        return {"unit": asdict(self.unit), "labels": self.labels, "spans": self.spans, "skews": self.skews,
                "suspended": self.suspended, "counts": dict(self.counts), "cpu_s": self.cpu_s}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UnitResult:
        """A result as noted by to_json."""
        unit = Unit(**{**data["unit"], "shard": tuple(data["unit"]["shard"])})
        return cls(unit, data["labels"], {code: tuple(span) for code, span in data["spans"].items()}, data["skews"],
                   data["suspended"], Counter(data["counts"]), data["cpu_s"])


class _Registry(Lookup):
    """The registry as the ingester sees it, for one seed's fleet: the monitor's code to its registered row."""

    def __init__(self, simulation: FleetSimulation, ids: Mapping[str, int]):
        self.known = {e.code: Equipment(ids[e.code], registry_code(e.code, simulation.seed), e.type)
                      for e in simulation.fleet_all if e.code in ids}

    def equipment(self, code: str) -> Equipment | None:
        return self.known.get(code)

    def fault_code(self, name_or_number: str | int) -> FaultCode | None:
        return None  # the monitors are telemetry-only: no event is parsed


_progress: Any = None  # a worker's queue to the parent
_parent = 0


def _init_worker(channel: Any) -> None:
    global _progress, _parent
    _progress, _parent = channel, os.getppid()


def run_unit(unit: Unit, batch_size: int = 20_000) -> UnitResult:
    """Simulate one unit's equipment for its days and store what the ingester would: every message parsed as it
    parses it (ingest/messages.py) and written in batches by its own writer (ingest/writer.py, rules off)."""
    started_cpu = time.process_time()
    simulation = fleet_simulation(unit.seed, unit.interval_s, unit.shard, unit.scenario,
                                  date.fromisoformat(unit.today) if unit.today else None)
    registry = _Registry(simulation, unit.ids)
    start = datetime.fromtimestamp(unit.clock_epoch, simulation.scenario.tz)
    end_s = unit.days * DAY_S
    counts: Counter[str] = Counter()
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    batch: list[Parsed] = []
    next_report = time.monotonic() + 5.0
    with contextlib.closing(_Store(unit.db_url)) as store:

        def flush() -> None:
            result = store.write(batch)
            counts["stored"] += result.stored
            counts["duplicates"] += result.duplicates
            counts["dead_letters"] += result.dead_lettered
            counts["fields_refused"] += result.fields_refused
            batch.clear()

        for due in simulation.schedule():
            if due.at_s >= end_s:
                break
            now = start + timedelta(seconds=due.at_s)
            try:
                messages = simulation.messages(due, now)
            except ValueError:
                counts["fault_actions_skipped"] += 1  # as `semon simulate`: a random fault during a maintenance visit
                continue
            for message in messages:
                counts["messages"] += 1
                # orjson instead of Message.encode()'s json: the same values, a tenth of the cost (bench/field.py).
                raw = orjson.dumps(message.payload) if isinstance(message.payload, dict) else message.encode()
                parsed = parse_message(message.topic, raw, registry, now)
                if isinstance(parsed, Telemetry):
                    ts = parsed.ts.timestamp()
                    code = parsed.equipment.code
                    first[code] = min(first.get(code, ts), ts)
                    last[code] = max(last.get(code, ts), ts)
                    counts["samples"] += 1
                batch.append(parsed)
            if len(batch) >= batch_size:
                flush()
                if time.monotonic() >= next_report:
                    next_report = time.monotonic() + 5.0
                    _report(unit.number, due.at_s, counts["samples"])
        if batch:
            flush()
    _report(unit.number, end_s, counts["samples"])
    codes = {registry_code(e.code, unit.seed): e.code for e in simulation.fleet}
    skews = {e.code: simulation.monitors[e.code].skew.total_seconds() for e in simulation.fleet}
    types = {e.code: e.type for e in simulation.fleet}
    spans = {codes[c]: (types[codes[c]], first[c], last[c]) for c in first}
    result = UnitResult(unit, simulation.labels(datetime.fromtimestamp(unit.clock_epoch, UTC)), spans, skews,
                        [c for c in simulation.scenario.suspended if c in simulation.devices], counts,
                        time.process_time() - started_cpu)
    if unit.run:
        with connect_patiently(unit.db_url, autocommit=True) as conn:
            conn.execute("INSERT INTO bench_wear_units (key, number, result) VALUES (%s::jsonb, %s, %s) "
                         "ON CONFLICT DO NOTHING", (unit.run, unit.number, Jsonb(result.to_json())))
    return result


class _Store:
    """The ingester's writer on a connection of its own, which comes back after the shared server restarts (as the
    ingester does): a batch is one transaction, so a batch cut short is written again whole."""

    def __init__(self, db_url: str):
        self.db_url = db_url
        self.conn = connect_patiently(db_url, autocommit=False)
        self.writer = BatchWriter(self.conn)

    def write(self, batch: Sequence[Parsed]) -> WriteResult:
        for attempt in range(1, RETRIES + 1):
            try:
                return self.writer.write(batch)
            except psycopg.OperationalError:
                if attempt == RETRIES:
                    raise
                with contextlib.suppress(psycopg.Error):
                    self.conn.close()
                self.conn = connect_patiently(self.db_url, autocommit=False)
                self.writer = BatchWriter(self.conn)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def connect_patiently(db_url: str, *, autocommit: bool, wait_s: float = 120.0) -> psycopg.Connection:
    """A connection to the benchmark's database, waiting out a restart of the shared server (other sessions' fault
    tests restart it)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return psycopg.connect(db_url, autocommit=autocommit, application_name="semon-bench-wear",
                                   connect_timeout=5)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def _report(number: int, at_s: float, samples: int) -> None:
    if _progress is None:
        return
    if os.getppid() != _parent:
        raise SystemExit("bench/wear.py: the parent process is gone")  # nobody will read what this unit makes
    _progress.put((number, at_s, samples))


def fleet_day(clock_epoch: float, total_days: float, tz: tzinfo) -> date:
    """The day a run's fleets are built for (their equipment's ages and records count back from it): the last day
    their telemetry covers. The direct path and `semon simulate --today` of the end-to-end phase both use it, so that
    a database kept and reused on a later day still meets the same fleet (a database kept from before was built for
    the day its run began, which is this day for a run begun in the evening, UTC)."""
    return datetime.fromtimestamp(clock_epoch + total_days * DAY_S - 1, tz).date()


def register_fleets(config: Config, db_url: str, scenario: str, seeds: Sequence[int], directory: Path,
                    today: date) -> dict[int, dict[str, int]]:
    """Every seed's fleet in the registry, through the registry CSV import, its codes suffixed with the seed;
    returns the ids per seed and monitor code."""
    fleet = []
    parsed = load_scenario(scenario)
    for seed in seeds:
        fleet += [replace(e, code=registry_code(e.code, seed)) for e in build_fleet(parsed, seed, today)]
    path = directory / "registry.csv"
    write_registry_csv(fleet, path, records=False)
    import_registry_csv(config.replace(database_url=db_url), path, create_districts=True)
    return registered_ids(db_url)


def registered_ids(db_url: str) -> dict[int, dict[str, int]]:
    """The registered fleets' ids per seed and monitor code."""
    ids: dict[int, dict[str, int]] = defaultdict(dict)
    with connect_patiently(db_url, autocommit=True) as conn:
        for equipment_id, code in conn.execute("SELECT id, code FROM equipment"):
            monitor, seed = code.rsplit("-s", 1)
            ids[int(seed)][monitor] = equipment_id
    return dict(ids)


def run_units(units: Sequence[Unit], processes: int, meanwhile: Callable[[], object] | None = None,
              every_s: float = 300.0) -> list[UnitResult]:
    """Run the units in `processes` spawned workers (in this process when 1), logging progress; `meanwhile` is
    called every every_s while they run."""
    if processes == 1:
        return [run_unit(unit) for unit in units]
    return run_in_pool(run_unit, units, processes, _init_worker, Progress(units, "samples stored"), meanwhile,
                       every_s)


def roll_up(config: Config, db_url: str) -> dict[str, int]:
    """The rollup job (models/rollup.py) over everything stored, as the scheduler runs it, settled at once."""
    settings = replace(rollup_settings(config), settle_s=0.0)

    def job(conn: psycopg.Connection) -> dict[str, int]:
        with conn.transaction():
            return rollup(conn, datetime.now(UTC), settings)

    with Patient(db_url, config.time_zone) as patient:
        return patient.run(job)


# --- the wear jobs over the simulated days ------------------------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    """A technician's visit the maintenance firm records (maintenance_records): a routine visit, or the repair that
    cleared a fault. The wear job resolves an alert once a visit follows it and the score is normal again."""

    equipment_id: int
    kind: str  # routine or repair
    at: float  # when it ended (epoch s, true clock)


def visits_of(labels: Iterable[Label], ids: Mapping[str, int]) -> list[Visit]:
    """Every maintenance period and every cleared fault of the labels (equipment key -> id), as the firm's records."""
    visits = [Visit(ids[label.equipment], "routine" if label.kind == "maintenance" else "repair", label.end)
              for label in labels if label.kind in ("maintenance", "fault") and label.end is not None
              and label.equipment in ids]
    return sorted(visits, key=lambda v: v.at)


def forget_alerts(conn: psycopg.Connection, which: str, params: Sequence[Any]) -> None:
    """Delete the alerts `which` (a WHERE clause on alerts) picks, with what refers to them: their steps, their
    notifications and those notifications' deliveries, and the mutes they set on others."""
    chosen = f"SELECT id FROM alerts WHERE {which}"
    notified = f"SELECT id FROM notifications WHERE alert_id IN ({chosen})"
    conn.execute(f"DELETE FROM deliveries WHERE notification_id IN ({notified})", params)
    conn.execute(f"DELETE FROM notifications WHERE alert_id IN ({chosen})", params)
    conn.execute(f"DELETE FROM alert_steps WHERE alert_id IN ({chosen})", params)
    conn.execute(f"UPDATE alerts SET muted_by = NULL WHERE muted_by IN ({chosen})", params)
    conn.execute(f"DELETE FROM alerts WHERE {which}", params)


def reset_wear_state(conn: psycopg.Connection) -> None:
    """Forget what a replay left: the wear alerts (and their notifications), scores, models, cursors and the records
    it wrote. The own baselines stay: they do not depend on the detector."""
    with conn.transaction():
        forget_alerts(conn, "source = %s", (WEAR_SOURCE,))
        conn.execute("DELETE FROM wear_scores")
        conn.execute("DELETE FROM wear_models")
        conn.execute("DELETE FROM job_cursors WHERE name LIKE 'wear_score:%'")
        conn.execute("DELETE FROM maintenance_records")


@dataclass
class Replay:
    """What one detector's replay left: its alerts (equipment id, kind, first_seen), and the time it took."""

    detector: str
    alerts: list[tuple[int, str, datetime]]
    train_s: float
    score_s: float
    trainings: int
    models: dict[str, dict[str, Any]]


def replay(config: Config, db_url: str, detector: str, first_day: date, end_day: date,
           visits: Sequence[Visit]) -> Replay:
    """The wear jobs as the scheduler runs them, over the simulated days [first_day, end_day): at each local
    midnight wear_train (every wear_train_interval_s) on the days before, then wear_score for each window of the
    day as it completes. The records of the visits are written as the days pass. `detector`: the fleet model's."""
    settings = replace(wear_settings(config), detector=detector)
    windows = rollup_settings(config)
    zone = ZoneInfo(config.time_zone)
    models = ModelCache()
    train_every = max(1, round(config.wear_train_interval_s / DAY_S))
    ends = [v.at for v in visits]
    timer: Counter[str] = Counter()

    def one_day(conn: psycopg.Connection, number: int, day: date) -> None:
        midnight = datetime.combine(day, datetime.min.time(), zone)
        following = midnight + timedelta(days=1)
        if number % train_every == 0:
            started = time.monotonic()
            trained = train_job(conn, midnight, settings)
            timer["train_s"] += time.monotonic() - started
            timer["trainings"] += sum(1 for v in trained.values() if v is not None)
        # The day's visits are on record by its end (the job reads records by day).
        due = visits[bisect.bisect_left(ends, midnight.timestamp()):bisect.bisect_left(ends, following.timestamp())]
        if due:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany("INSERT INTO maintenance_records (equipment_id, kind, performed_on, notes) "
                                "VALUES (%s, %s, %s, 'bench/wear.py') ON CONFLICT DO NOTHING",
                                [(v.equipment_id, v.kind, datetime.fromtimestamp(v.at, zone).date()) for v in due])
        started = time.monotonic()
        with conn.transaction():
            score_job(conn, following, settings, windows, models)
        timer["score_s"] += time.monotonic() - started

    with Patient(db_url, config.time_zone) as patient:
        patient.run(reset_wear_state)
        for number in range((end_day - first_day).days):
            patient.run(lambda conn, n=number: one_day(conn, n, first_day + timedelta(days=n)))
        alerts = patient.run(lambda conn: conn.execute(
            "SELECT equipment_id, kind, first_seen FROM alerts WHERE source = %s AND kind LIKE %s ORDER BY id",
            (WEAR_SOURCE, WEAR_PREFIX + "%")).fetchall())
        stored = patient.run(lambda conn: conn.execute(
            "SELECT equipment_type, version, equipment_count, sample_count FROM wear_models WHERE active").fetchall())
    return Replay(detector, [(a["equipment_id"], a["kind"], a["first_seen"]) for a in alerts], timer["train_s"],
                  timer["score_s"], int(timer["trainings"]), {m["equipment_type"]: dict(m) for m in stored})


class Patient:
    """An autocommit connection in the users' zone that comes back after the shared server restarts: each step it
    runs is repeated whole on a new connection when the server went away under it (a job's transaction is rolled
    back with it; a training saved twice is one more version)."""

    def __init__(self, db_url: str, time_zone: str):
        self.db_url = db_url
        self.time_zone = time_zone
        self.conn = self._connect()

    def _connect(self) -> psycopg.Connection:
        deadline = time.monotonic() + 120.0
        while True:
            try:
                return connect(self.db_url, autocommit=True, time_zone=self.time_zone)
            except DatabaseUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def run(self, step: Callable[[psycopg.Connection], T]) -> T:
        for attempt in range(1, RETRIES + 1):
            try:
                return step(self.conn)
            except psycopg.OperationalError:
                if attempt == RETRIES:
                    raise
                log(f"    the database went away ({attempt} of {RETRIES}); repeating the step on a new connection")
                with contextlib.suppress(psycopg.Error):
                    self.conn.close()
                self.conn = self._connect()
        raise AssertionError("unreachable")

    def __enter__(self) -> Patient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


# --- what the models cost -----------------------------------------------------------------------------------------


TIMING_EQUIPMENT = 10_000
TRAINING_EQUIPMENT = 1_000
TIMING_DISTRICT = "bench/wear.py timing"


def timing_mix(total: int = TIMING_EQUIPMENT) -> dict[str, int]:
    """How many of `total` equipment are of each type with a wear model: the load scenario's mix (its pressure
    vessels have no wear model), by largest remainder."""
    types = Counter(t for t in load_scenario("load").equipment_codes().values() if t in WEAR_TYPES)
    whole = sum(types.values())
    shares = {t: total * n / whole for t, n in types.items()}
    counts = {t: int(share) for t, share in shares.items()}
    for t in sorted(shares, key=lambda t: shares[t] - counts[t], reverse=True)[:total - sum(counts.values())]:
        counts[t] += 1
    return dict(sorted(counts.items(), key=lambda item: WEAR_TYPES.index(item[0])))


def _copy_windows(conn: psycopg.Connection, equipment_type: str, width_s: int,
                  pieces: Sequence[tuple[int, int, datetime, datetime, int]]) -> int:
    """Copy windows: each piece is (new id, source id, source from, source to, days moved)."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS bench_pieces (new_id integer, src_id integer, src_from timestamptz,"
                 " src_to timestamptz, moved integer)")
    conn.execute("TRUNCATE bench_pieces")
    with conn.cursor().copy("COPY bench_pieces FROM STDIN") as copy:
        for piece in pieces:
            copy.write_row(piece)
    columns = ", ".join(f.name for f in ROLLUP_FEATURES[equipment_type])
    return conn.execute(f"""
        INSERT INTO {rollup_table(equipment_type)} (equipment_id, width_s, bucket, {columns})
        SELECT p.new_id, r.width_s, r.bucket + make_interval(days => p.moved), {columns}
          FROM bench_pieces p JOIN {rollup_table(equipment_type)} r
            ON r.equipment_id = p.src_id AND r.width_s = %s AND r.bucket >= p.src_from AND r.bucket < p.src_to
        ON CONFLICT DO NOTHING""", (width_s,)).rowcount


def measure_cost(config: Config, db_url: str, fleet: Fleet, settings: WearBenchSettings) -> dict[str, Any]:
    """Time the jobs at scale on windows copied from the fleet's own (real simulated telemetry), placed before the
    fleet's days and removed afterwards: training the elevator model on TRAINING_EQUIPMENT elevators with
    wear_train_days of windows (and the days their baselines need before), and scoring the latest windows of
    TIMING_EQUIPMENT equipment, once as the first run of a day (own baselines computed) and once as the runs of
    every window after it (baselines cached)."""
    wear = wear_settings(config)
    zone = ZoneInfo(config.time_zone)
    first_day = datetime.fromtimestamp(fleet.clock_epoch, zone).date()
    fleet_days = int(settings.total_days)
    if fleet_days < 3:
        raise RuntimeError(f"the fleet's {settings.total_days:g} days are too few to copy windows from (3 at least)")
    history_days = wear.train_days + span_days(wear.baseline_days, wear.min_history_days)
    scored_day = first_day - timedelta(days=2)  # the day judged; its history before it; the fleet's days after
    midnight = datetime.combine(scored_day, datetime.min.time(), zone)
    mix = timing_mix()
    by_type: dict[str, list[int]] = defaultdict(list)
    for key, equipment_id in fleet.ids.items():
        equipment_type = fleet.spans.get(key, ("",))[0]
        if equipment_type in WEAR_TYPES and key not in fleet.suspended:
            by_type[equipment_type].append(equipment_id)
    figures: dict[str, Any] = {"timing_equipment": mix, "training_equipment": TRAINING_EQUIPMENT,
                               "training_days": wear.train_days, "training_history_days": history_days}
    ids: list[int] = []
    with connect(db_url, autocommit=True, time_zone=config.time_zone) as conn:
        try:
            with conn.transaction():
                district = conn.execute("INSERT INTO districts (name) VALUES (%s) ON CONFLICT (name) DO UPDATE SET "
                                        "name = EXCLUDED.name RETURNING id", (TIMING_DISTRICT,)).fetchone()["id"]
                made: dict[str, list[int]] = {}
                for equipment_type, count in mix.items():
                    made[equipment_type] = [r["id"] for r in conn.execute(
                        "INSERT INTO equipment (code, type, district_id, rated_speed_mps, floors) SELECT "
                        "'BENCH-' || %s || '-' || n, %s, %s, %s, %s FROM generate_series(1, %s) n RETURNING id",
                        (equipment_type.upper(), equipment_type, district,
                         1.75 if equipment_type == "elevator" else None,
                         18 if equipment_type == "elevator" else None, count))]
                    ids += made[equipment_type]
            started = time.monotonic()
            copied = 0
            last_day = first_day + timedelta(days=fleet_days)  # the fleet's days end before it
            for equipment_type, new_ids in made.items():
                sources = by_type[equipment_type]
                pieces = []
                for n, new_id in enumerate(new_ids):
                    source = sources[n % len(sources)]
                    # The latest day and hour of the fleet's, as the day judged and the hour after it.
                    latest = datetime.combine(last_day - timedelta(days=2), datetime.min.time(), zone)
                    pieces.append((new_id, source, latest, latest + timedelta(hours=25),
                                   (scored_day - latest.date()).days))
                    if equipment_type == "elevator" and n < TRAINING_EQUIPMENT:
                        # Its history: the fleet's days, repeated as often as it takes, ending before the day judged.
                        end = scored_day
                        while (scored_day - end).days < history_days:
                            take = min(fleet_days - 2, history_days - (scored_day - end).days)
                            src_to = last_day - timedelta(days=2)
                            src_from = src_to - timedelta(days=take)
                            pieces.append((new_id, source, datetime.combine(src_from, datetime.min.time(), zone),
                                           datetime.combine(src_to, datetime.min.time(), zone),
                                           (end - src_to).days))
                            end -= timedelta(days=take)
                with conn.transaction():
                    copied += _copy_windows(conn, equipment_type, wear.width_s, pieces)
            figures["timing_windows_copied"] = copied
            log(f"cost: {sum(mix.values()):,} equipment {mix} with windows copied from the fleet's ({copied:,} "
                f"windows, {time.monotonic() - started:.0f} s); the first {TRAINING_EQUIPMENT:,} elevators with "
                f"{history_days} days of history")
            started = time.monotonic()
            stored = train_type(conn, "elevator", scored_day, wear)
            figures["train_1000_equipment_30d_s"] = round(time.monotonic() - started, 2)
            figures["training_samples"] = stored.model.info.get("samples")
            log(f"cost: trained the elevator model on {stored.model.info.get('equipment_count')} elevators, "
                f"{stored.model.info.get('samples'):,} equipment-days, in {figures['train_1000_equipment_30d_s']} s")
            models = {"elevator": stored}
            for equipment_type in WEAR_TYPES:
                if equipment_type != "elevator":  # trained on the fleet's own days, not timed
                    models[equipment_type] = train_type(conn, equipment_type, last_day, wear)
            for name, end in (("score_first_of_day", midnight + timedelta(days=1)),
                              ("score_10k_equipment", midnight + timedelta(days=1, hours=1))):
                scored = 0
                started = time.monotonic()
                for equipment_type, model in models.items():
                    with conn.transaction():
                        scored += score_ends(conn, equipment_type, [end], model, wear)["scored"]
                figures[f"{name}_s"] = round(time.monotonic() - started, 3)
                figures[f"{name}_scored"] = scored
            log(f"cost: scored the latest {wear.recent_hours} h of {scored:,} equipment in "
                f"{figures['score_10k_equipment_s']} s with their baselines of the day cached; the day's first run, "
                f"which computes them ({TRAINING_EQUIPMENT:,} with history), took {figures['score_first_of_day_s']} s")
        finally:
            with Patient(db_url, config.time_zone) as patient:  # a fresh connection: this one may be what failed
                patient.run(lambda c: _remove_timing(c, ids))
    return figures


def _remove_timing(conn: psycopg.Connection, ids: list[int]) -> None:
    """Take the timing's equipment, windows, scores and alerts out again (a kept database is reused)."""
    with conn.transaction():
        for equipment_type in EQUIPMENT_TYPES:
            conn.execute(f"DELETE FROM {rollup_table(equipment_type)} WHERE equipment_id = ANY(%s)", (ids,))
        for table in ("wear_scores", "wear_baselines", "equipment_state"):
            conn.execute(f"DELETE FROM {table} WHERE equipment_id = ANY(%s)", (ids,))
        forget_alerts(conn, "equipment_id = ANY(%s)", (ids,))
        conn.execute("DELETE FROM equipment WHERE id = ANY(%s)", (ids,))


# --- end to end: the same telemetry through the broker and the ingester ------------------------------------------


def end_to_end(settings: WearBenchSettings, config: Config, name: str, fleet: Fleet, directory: Path,
               stack: ExitStack) -> dict[str, Any]:
    """The first e2e_days of the first seed's fleet again, published by `semon simulate` (the same seed, interval
    and clock start) to a private Mosquitto and stored by `semon ingest` in a database of their own, then rolled up:
    its windows are compared with the ones the direct path stored for that fleet. The same windows mean the same
    scores, so the fleet's figures hold for the broker path."""
    e2e_url = create_database(config.database_url, f"{name}_e2e")
    stack.callback(drop_patiently, config.database_url, f"{name}_e2e")
    migrate(e2e_url)
    scenario = bench_scenario(settings.warmup_days, directory)
    seed = settings.first_seed
    registry = directory / "registry-e2e.csv"
    parsed = load_scenario(scenario)
    today = fleet_day(fleet.clock_epoch, settings.total_days, parsed.tz)  # the direct path's fleet, not today's
    write_registry_csv(build_fleet(parsed, seed, today), registry, records=False)
    import_registry_csv(config.replace(database_url=e2e_url), registry, create_districts=True)
    broker = PrivateBroker(directory / "broker")
    broker.directory.mkdir()
    broker.start()
    stack.callback(broker.stop)
    ingester = Ingester({"SEMON_DATABASE_URL": e2e_url, "SEMON_MQTT_URL": broker.url,
                         "SEMON_MQTT_CLIENT_ID": f"semon-bench-wear-{secrets.token_hex(3)}"}, REPO)
    ingester.start()
    stack.callback(ingester.stop, 15)
    if not ingester.connected.wait(30):
        raise RuntimeError("the ingester did not connect within 30 s; its log:\n" + "\n".join(ingester.log))
    zone = ZoneInfo(config.time_zone)
    clock = datetime.fromtimestamp(fleet.clock_epoch, zone)
    speed = settings.e2e_days * DAY_S / E2E_WALL_S
    log(f"e2e: {settings.e2e_days:g} day(s) of seed {seed}'s fleet from {clock.isoformat()} through `semon "
        f"simulate` (x{speed:.0f}), Mosquitto and `semon ingest`")
    simulator = Child("simulator", semon_command(
        "simulate", "--scenario", scenario, "--seed", str(seed), "--interval", f"{settings.interval_s:g}",
        "--speed", f"{speed:.6g}", "--clock-start", clock.isoformat(), "--duration", f"{E2E_WALL_S:g}",
        "--reporting-share", "0", "--report-every", "10", "--today", today.isoformat()), {"SEMON_MQTT_URL": broker.url},
        REPO)
    stack.callback(simulator.stop, 30)
    started = time.monotonic()
    while simulator.running():
        time.sleep(0.5)
        if not ingester.running():
            raise RuntimeError("the ingester exited; its log:\n" + "\n".join(ingester.log))
        if time.monotonic() - started > E2E_WALL_S + 180:
            raise TimeoutError("the simulator did not stop within 3 minutes of its duration")
    stopped = simulator.lines(SIMULATION_STOPPED)
    if simulator.process.returncode != 0 or not stopped:
        tail = "\n".join(line for _, line in list(simulator.log)[-30:])
        raise RuntimeError(f"the simulator failed; its log:\n{tail}")
    wait_ingested(ingester, int(stopped[-1][1]))
    ingester.stop()
    roll_up(config, e2e_url)
    compared = identical = 0
    worst: tuple[float, str] = (0.0, "")
    with psycopg.connect(e2e_url) as e2e, psycopg.connect(fleet_url(config, name)) as direct:
        end = max(e2e.execute(f"SELECT max(ts) FROM telemetry_{t}").fetchone()[0] for t in WEAR_TYPES)
        # Whole windows only, an hour clear of the end: a monitor in a drop-out still holds readings from before it.
        until = end - timedelta(hours=1)
        for equipment_type in WEAR_TYPES:
            columns = ", ".join(f"r.{f.name}" for f in ROLLUP_FEATURES[equipment_type])
            query = (f"SELECT e.code, r.bucket, {columns} FROM {rollup_table(equipment_type)} r JOIN equipment e ON "
                     "e.id = r.equipment_id WHERE r.width_s = %s AND r.bucket + %s <= %s")
            params = (config.rollup_bucket_s, timedelta(seconds=config.rollup_bucket_s), until)
            theirs = {(code, bucket): values for code, bucket, *values in e2e.execute(query, params)}
            ours = {(code.removesuffix(f"-s{seed}"), bucket): values
                    for code, bucket, *values in direct.execute(query, params) if code.endswith(f"-s{seed}")}
            for key, values in theirs.items():
                compared += 1
                other = ours.get(key)
                if other is not None and all(_same(a, b) for a, b in zip(values, other, strict=True)):
                    identical += 1
                elif other is None:
                    worst = max(worst, (math.inf, f"{key[0]} {key[1]:%m-%d %H:%M}: no such window on the direct path"))
                else:
                    difference = max(abs(float(a or 0) - float(b or 0)) for a, b in zip(values, other, strict=True))
                    worst = max(worst, (difference, f"{key[0]} {key[1]:%m-%d %H:%M}"))
            compared += sum(1 for key in ours if key not in theirs)
        rows = sum(e2e.execute(f"SELECT count(*) FROM telemetry_{t}").fetchone()[0] for t in EQUIPMENT_TYPES)
    log(f"e2e: {rows:,} telemetry rows stored by the ingester; {identical:,} of {compared:,} windows up to "
        f"{until.astimezone(zone):%m-%d %H:%M} identical to the direct path's"
        + (f"; the farthest apart: {worst[1]} (by {worst[0]:g})" if identical < compared else ""))
    return {"e2e_telemetry_rows": rows, "e2e_windows_compared": compared, "e2e_windows_identical": identical,
            "e2e_days": settings.e2e_days, "e2e_published": stopped[-1][2],
            "e2e_simulator_skipped": int(stopped[-1][4])}


def fleet_url(config: Config, name: str) -> str:
    """The URL of the benchmark's database `name` on the configured server."""
    return with_database(config.database_url, name)


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


# --- the run -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WearBenchSettings:
    seeds: int = 4
    days: float = 46.0
    warmup_days: float = 14.0
    interval_s: float = 30.0
    processes: int = 2
    phases: tuple[str, ...] = PHASES
    e2e_days: float = 1.0
    database: str | None = None
    first_seed: int = FIRST_SEED

    @classmethod
    def from_env(cls, config: Config, env: Mapping[str, str] | None = None) -> WearBenchSettings:
        """The settings from BENCH_WEAR_* (the warm-up defaults to wear_min_history_days); a bad value exits
        naming it."""
        env = os.environ if env is None else env
        try:
            settings = cls(
                seeds=int(env.get("BENCH_WEAR_SEEDS", cls.seeds)), days=float(env.get("BENCH_WEAR_DAYS", cls.days)),
                warmup_days=float(env.get("BENCH_WEAR_WARMUP_DAYS", config.wear_min_history_days)),
                interval_s=float(env.get("BENCH_WEAR_INTERVAL_S", cls.interval_s)),
                processes=int(env.get("BENCH_WEAR_PROCESSES") or os.cpu_count() or 1),
                phases=tuple(p.strip() for p in env.get("BENCH_WEAR_PHASES", ",".join(PHASES)).split(",")
                             if p.strip()),
                e2e_days=float(env.get("BENCH_WEAR_E2E_DAYS", cls.e2e_days)),
                database=env.get("BENCH_WEAR_DATABASE") or None)
        except ValueError:
            raise SystemExit("bench/wear.py: BENCH_WEAR_SEEDS and BENCH_WEAR_PROCESSES must be whole numbers, "
                             "BENCH_WEAR_DAYS, BENCH_WEAR_WARMUP_DAYS, BENCH_WEAR_INTERVAL_S and BENCH_WEAR_E2E_DAYS "
                             "numbers") from None
        problems = []
        if settings.seeds < 1 or settings.processes < 1:
            problems.append("BENCH_WEAR_SEEDS and BENCH_WEAR_PROCESSES must be at least 1")
        if not 0 < settings.days <= 366 or not 0 <= settings.warmup_days <= 60:
            problems.append("BENCH_WEAR_DAYS must be in (0, 366] and BENCH_WEAR_WARMUP_DAYS in [0, 60]")
        if not 1 <= settings.interval_s <= config.rollup_max_gap_s:
            problems.append(f"BENCH_WEAR_INTERVAL_S must be in [1, {config.rollup_max_gap_s:g}] (rollup_max_gap_s: "
                            "samples further apart are a gap)")
        if not 0 < settings.e2e_days <= 7:
            problems.append("BENCH_WEAR_E2E_DAYS must be in (0, 7]")
        unknown = set(settings.phases) - set(PHASES)
        if unknown:
            problems.append(f"BENCH_WEAR_PHASES: unknown phase(s) {', '.join(sorted(unknown))} "
                            f"(known: {', '.join(PHASES)})")
        if problems:
            raise SystemExit("bench/wear.py: " + "; ".join(problems))
        return settings

    @property
    def total_days(self) -> float:
        return self.warmup_days + self.days

    def key(self) -> dict[str, Any]:
        """What a kept database's telemetry was generated with: a run with the same key reuses it."""
        return {"seeds": self.seeds, "first_seed": self.first_seed, "days": self.days,
                "warmup_days": self.warmup_days, "interval_s": self.interval_s,
                "scenario": hashlib.sha256((SCENARIO_DIR / f"{SCENARIO}.yaml").read_bytes()).hexdigest()[:16]}


def bench_scenario(warmup_days: float, directory: Path) -> str:
    """The evaluation scenario with warmup_days of ordinary service before it (a file in `directory`): its
    scheduled wear and faults, and the first random wear episode, move that much later; the random sudden faults
    and maintenance visits run throughout, as in service."""
    data = yaml.safe_load((SCENARIO_DIR / f"{SCENARIO}.yaml").read_text(encoding="utf-8"))
    shift = warmup_days * DAY_S
    for index, episode in enumerate(data.get("wear") or []):
        episode["start"] = seconds(episode["start"], f"wear[{index}].start") + shift
    for fault in data.get("faults") or []:
        fault["at_s"] += shift
        if fault.get("clear_at_s") is not None:
            fault["clear_at_s"] += shift
    random_wear = data.get("wear_repeat")
    if random_wear:
        every = seconds(random_wear["every"], "wear_repeat.every")
        random_wear["first"] = seconds(random_wear.get("first", every), "wear_repeat.first") + shift
    path = directory / f"{SCENARIO}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    load_scenario(str(path))  # the simulator's own checks
    return str(path)


@dataclass
class Fleet:
    """The generated fleets as scoring needs them, every equipment by its key (code/s<seed>, bench/field.py)."""

    clock_epoch: float
    labels: list[Label]
    spans: dict[str, tuple[str, float, float]]  # true clock
    suspended: list[str]
    ids: dict[str, int]
    counts: dict[str, int]
    generate_s: float
    rollup_s: float
    cpu_s: float
    resumed_units: int = 0  # units a run cut short had done (not in generate_s)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fleet:
        """A fleet as stored (dataclasses.asdict) in a kept database."""
        return cls(**{**data, "labels": [Label(**label) for label in data["labels"]],
                      "spans": {code: tuple(span) for code, span in data["spans"].items()}})


def generate(settings: WearBenchSettings, config: Config, db_url: str, directory: Path) -> Fleet:
    """Register every seed's fleet, simulate it into the database, roll it up; or, when the kept database already
    holds this run's telemetry, read back what was generated."""
    key = json.dumps(settings.key(), sort_keys=True)
    with connect_patiently(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_wear_run (key jsonb PRIMARY KEY, clock_epoch float8 NOT NULL,"
                     " fleet jsonb)")
        conn.execute("CREATE TABLE IF NOT EXISTS bench_wear_units (key jsonb, number integer, result jsonb NOT NULL,"
                     " PRIMARY KEY (key, number))")
        row = conn.execute("SELECT clock_epoch, fleet FROM bench_wear_run WHERE key = %s::jsonb", (key,)).fetchone()
        registered = conn.execute("SELECT count(*) FROM equipment").fetchone()[0]
        done = {number: UnitResult.from_json(result) for number, result in conn.execute(
            "SELECT number, result FROM bench_wear_units WHERE key = %s::jsonb", (key,))}
    if row is not None and row[1] is not None:
        log(f"fleet: reusing the telemetry, windows and labels already in the database ({settings.key()})")
        return Fleet.from_json(row[1])
    if row is None and registered:
        raise SystemExit(f"bench/wear.py: the database {settings.database} holds the telemetry of other settings; "
                         "drop it or name another one in BENCH_WEAR_DATABASE")
    scenario = bench_scenario(settings.warmup_days, directory)
    seeds = [settings.first_seed + s for s in range(settings.seeds)]
    tz = load_scenario(scenario).tz
    if row is None:
        epoch = clock_start(settings.total_days, time.time(), tz)
        ids = register_fleets(config, db_url, scenario, seeds, directory, fleet_day(epoch, settings.total_days, tz))
        with connect_patiently(db_url, autocommit=True) as conn:
            conn.execute("INSERT INTO bench_wear_run (key, clock_epoch) VALUES (%s::jsonb, %s)", (key, epoch))
    else:
        # A run cut short: its units not noted as done run again (what they stored already is not stored twice).
        ids, epoch = registered_ids(db_url), row[0]
    fleet_size = len(ids[seeds[0]])
    # Units small enough that a run cut short loses little, as many for each process.
    base = settings.processes // math.gcd(settings.seeds, settings.processes)
    shards = min(fleet_size, base * max(1, math.ceil(UNITS_PER_PROCESS * settings.processes / (settings.seeds * base))))
    today = fleet_day(epoch, settings.total_days, tz).isoformat()
    units = [Unit(number, seed, (k, shards), settings.total_days, epoch, settings.interval_s, scenario, db_url,
                  ids[seed], key, today)
             for number, (seed, k) in enumerate((s, k) for s in seeds for k in range(shards))]
    log(f"fleet: {settings.seeds} realisation(s) of the {SCENARIO} fleet ({fleet_size} equipment, seeds "
        f"{seeds[0]}..{seeds[-1]}), {settings.warmup_days:g} days of service before the scenario's "
        f"{settings.days:g}, every monitor every {settings.interval_s:g} s, the monitors' clock starting at "
        f"{datetime.fromtimestamp(epoch, tz).isoformat()}; {len(units)} units on {settings.processes} process(es)"
        + (f", resuming a run cut short: {len(done)} of them done already" if done else ""))
    # The rollup job runs meanwhile, every rollup_interval_s, as the scheduler runs it beside the ingester.
    rollups: Counter[str] = Counter()

    def rollup_job() -> None:
        started = time.monotonic()
        rollups.update(roll_up(config, db_url))
        rollups["seconds"] += round(time.monotonic() - started)

    started = time.monotonic()
    results = list(done.values()) + run_units([u for u in units if u.number not in done], settings.processes,
                                              rollup_job, config.rollup_interval_s)
    generate_s = time.monotonic() - started
    counts: Counter[str] = Counter()
    for result in results:
        counts.update(result.counts)
    log(f"fleet: stored {counts['stored']:,} telemetry rows ({counts['messages']:,} messages, "
        f"{counts['duplicates']:,} duplicates) in {generate_s:.0f} s, the rollup job running meanwhile")
    rollup_job()
    rollup_s = rollups.pop("seconds")
    log(f"fleet: the rollup job wrote {sum(rollups.values()):,} windows {dict(rollups)} in {rollup_s:.0f} s "
        "all told (a window recomputed by a later run counts again)")
    labels: list[Label] = []
    spans: dict[str, tuple[str, float, float]] = {}
    suspended: list[str] = []
    for result in results:
        seed = result.unit.seed
        for code, (equipment_type, first, last) in result.spans.items():
            skew = result.skews.get(code, 0.0)
            spans[equipment_key(seed, code)] = (equipment_type, first - skew, last - skew)
        labels += [replace(label, equipment=equipment_key(seed, label.equipment))
                   for label in read_labels(result.labels)]
        suspended += [equipment_key(seed, code) for code in result.suspended]
    fleet = Fleet(epoch, labels, spans, sorted(set(suspended)),
                  {equipment_key(seed, code): i for seed, codes in ids.items() for code, i in codes.items()},
                  dict(counts), round(generate_s, 1), round(rollup_s, 1), round(sum(r.cpu_s for r in results), 1),
                  len(done))
    with connect_patiently(db_url, autocommit=True) as conn:
        conn.execute("UPDATE bench_wear_run SET fleet = %s WHERE key = %s::jsonb", (Jsonb(asdict(fleet)), key))
    return fleet


def detectors(config: Config) -> list[tuple[str, str]]:
    """(figure prefix, detector): the configured fleet model, then the z-score baseline (models/wear/model.py)."""
    return [("", config.wear_detector), ("baseline_", BASELINE_DETECTOR)]


def evaluate(settings: WearBenchSettings, config: Config, db_url: str, fleet: Fleet) -> dict[str, Any]:
    """Replay the wear jobs with each detector and score its alerts; print each one's report; the figures."""
    zone = ZoneInfo(config.time_zone)
    first_day = datetime.fromtimestamp(fleet.clock_epoch, zone).date()
    end_day = first_day + timedelta(days=math.ceil(settings.total_days))
    # From the first model on, trained at the end of the first day: alerts on equipment still without its own
    # history (judged against the fleet's) are alerts the system raises, and count.
    active_from = fleet.clock_epoch + DAY_S
    key_of = {i: key for key, i in fleet.ids.items()}
    visits = visits_of(fleet.labels, fleet.ids)
    figures: dict[str, Any] = {}
    for prefix, detector in detectors(config):
        log(f"replay ({detector}): wear_train and wear_score over {first_day}..{end_day - timedelta(days=1)}, "
            f"{len(visits):,} maintenance visits and repairs on record as they happen")
        started = time.monotonic()
        run = replay(config, db_url, detector, first_day, end_day, visits)
        alerts = [WearAlert(key_of[equipment_id], kind.removeprefix(WEAR_PREFIX), first_seen.timestamp())
                  for equipment_id, kind, first_seen in run.alerts if equipment_id in key_of]
        scored = score_wear(alerts, fleet.labels, fleet.spans, active_from, WEAR_TYPES, COMPONENT_OF_SIMULATED_WEAR,
                            fleet.suspended)
        log(f"replay ({detector}): {len(run.alerts)} wear alerts in {time.monotonic() - started:.0f} s "
            f"(training {run.train_s:.0f} s, {run.trainings} models; scoring {run.score_s:.0f} s)")
        print_report(detector, scored, zone)
        figures.update(prefixed(scored.figures, prefix))
        figures[f"{prefix}wear_by_kind"] = scored.table
        figures[f"{prefix}wear_replay"] = {"detector": detector, "train_s": round(run.train_s, 1),
                                           "score_s": round(run.score_s, 1), "trainings": run.trainings,
                                           "models": {t: {k: m[k] for k in ("version", "equipment_count",
                                                                             "sample_count")}
                                                      for t, m in run.models.items()}}
    return figures


def print_report(detector: str, scored: WearScore, zone: ZoneInfo) -> None:
    """The per-kind table, then the episodes missed and the false alerts, one a line."""
    f = scored.figures
    log(f"{detector}: {f['wear_episodes']} episodes ended in their fault, {f['wear_flagged']} flagged before it "
        f"({_pct(f['wear_flagged_before_fault'])}); median lead {f['wear_median_lead_h']} h "
        f"({_pct(f['wear_median_lead_share'])} of the episode); {f['wear_alerts']} alerts, "
        f"{f['wear_matching_alerts']} on an episode ({f['wear_late_alerts']} after its fault), "
        f"{f['wear_false_alerts']} false "
        f"({f['wear_false_after_repair']} within {AFTER_REPAIR_S / DAY_S:.0f} days of a repair) over "
        f"{f['wear_healthy_equipment_days']:,} healthy equipment-days, {f['wear_fault_alerts']} in a sudden fault, "
        f"{f['wear_mode_alerts']} during maintenance; {f['wear_still_wearing_at_end']} episodes still wearing at "
        "the end")
    log(f"{'wear kind':<16}{'type':<11}{'eps':>5}{'flag':>5}{'share':>7}{'lead h':>8}{'lead %':>7}{'comp':>6}"
        f"{'alerts':>7}{'match':>6}{'false':>6}{'/1000d':>8}{'prec':>6}")
    overall = {"type": "", **{key.removeprefix("wear_"): value for key, value in f.items()}}
    for kind, row in {**scored.table, "all": overall}.items():
        log(f"{kind:<16}{row['type']:<11}{row['episodes']:>5}{row['flagged']:>5}{_pct(row['flagged_before_fault']):>7}"
            f"{_show(row['median_lead_h']):>8}{_pct(row['median_lead_share']):>7}{_pct(row['component_match']):>6}"
            f"{row['alerts']:>7}{row['matching_alerts']:>6}{row['false_alerts']:>6}"
            f"{_show(row['false_per_1000_equipment_days']):>8}{_pct(row['precision']):>6}")
    for episode in scored.missed[:MAX_LISTED]:
        began = datetime.fromtimestamp(episode.start, zone).isoformat(sep=" ", timespec="minutes")
        failed = datetime.fromtimestamp(episode.fault or 0, zone).isoformat(sep=" ", timespec="minutes")
        log(f"    missed: {episode.kind} on {shown(episode.equipment)}, wearing from {began}, failed {failed}")
    false = [(a, v) for a, v in scored.verdicts if v.category == "false"]
    for alert, verdict in false[:MAX_LISTED]:
        at = datetime.fromtimestamp(alert.opened, zone).isoformat(sep=" ", timespec="minutes")
        after = " (within a week of a repair)" if verdict.after_repair else ""
        log(f"    false: {alert.component} on {shown(alert.equipment)} at {at}{after}")
    if len(false) > MAX_LISTED:
        log(f"    ... and {len(false) - MAX_LISTED} more false alerts")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _show(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def check_targets(result: Mapping[str, Any]) -> dict[str, tuple[bool | None, str]]:
    """Each target: met (True), missed (False) or not shown (None), and why. A false-alarm rate is met only when its
    one-sided 95 % upper bound is within the target (bench/detection.py's rule)."""
    def at_least(key: str, limit: float, unit: str = "") -> tuple[bool | None, str]:
        value = result.get(key)
        return (None, "not measured") if value is None else (value >= limit, f"{value:g}{unit}")

    def below(key: str, limit: float) -> tuple[bool | None, str]:
        value = result.get(key)
        return (None, "not measured") if value is None else (value < limit, f"{value:g} s")

    value = result.get("wear_false_per_1000_equipment_days")
    bound = result.get("wear_false_per_1000_equipment_days_upper95")
    if value is None or bound is None:
        false: tuple[bool | None, str] = (None, "not measured")
    else:
        said = (f"{value:g} in {result.get('wear_healthy_equipment_days'):g} healthy equipment-days (95 % upper "
                f"bound {bound:g})")
        false = (False, said) if value > TARGET_FALSE else (True, said) if bound <= TARGET_FALSE else \
            (None, f"{said}: too few equipment-days to show it")
    return {
        f"flagged before the fault >= {TARGET_FLAGGED:.0%}": at_least("wear_flagged_before_fault", TARGET_FLAGGED),
        f"median lead >= {TARGET_LEAD_H:g} h": at_least("wear_median_lead_h", TARGET_LEAD_H, " h"),
        f"median lead >= {TARGET_LEAD_SHARE:.0%} of the episode": at_least("wear_median_lead_share", TARGET_LEAD_SHARE),
        f"false <= {TARGET_FALSE:g} per 1,000 healthy equipment-days": false,
        f"event precision >= {TARGET_PRECISION:.0%}": at_least("wear_precision", TARGET_PRECISION),
        f"scoring 10,000 equipment < {TARGET_SCORE_S:g} s": below("score_10k_equipment_s", TARGET_SCORE_S),
        f"training 1,000 equipment x 30 days < {TARGET_TRAIN_S:g} s": below("train_1000_equipment_30d_s",
                                                                            TARGET_TRAIN_S),
    }


def main() -> int:
    config = load_config()
    settings = WearBenchSettings.from_env(config)
    signal.signal(signal.SIGTERM, _interrupt)  # a SIGTERM unwinds like Ctrl-C: workers stopped, database dropped
    log(f"semon wear benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {describe_machine()}")
    started = time.monotonic()
    result: dict[str, Any] = {}
    with ExitStack() as stack:
        name = settings.database or f"semon_bench_wear_{os.getpid()}_{secrets.token_hex(3)}"
        db_url = create_database(config.database_url, name)
        if settings.database is None:
            stack.callback(drop_patiently, config.database_url, name)
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="semon-bench-wear-")))
        migrate(db_url)
        log(f"database: {redact(db_url)} ({'kept' if settings.database else 'dropped at the end'})")
        fleet = None
        if settings.phases:
            fleet = generate(settings, config, db_url, directory)
        if fleet is not None and "fleet" in settings.phases:
            result.update(evaluate(settings, config, db_url, fleet))
            result["fleet_run"] = {
                "seeds": settings.seeds, "days": settings.days, "warmup_days": settings.warmup_days,
                "interval_s": settings.interval_s, "processes": settings.processes,
                "equipment_days": round(sum(last - first for _, first, last in fleet.spans.values()) / DAY_S, 1),
                "telemetry_rows": fleet.counts.get("stored"), "messages": fleet.counts.get("messages"),
                "generate_s": fleet.generate_s, "generate_cpu_s": fleet.cpu_s, "rollup_s": fleet.rollup_s,
                "resumed_units": fleet.resumed_units}
        if fleet is not None and "cost" in settings.phases:
            result.update(phase("cost", lambda: measure_cost(config, db_url, fleet, settings)))
        if fleet is not None and "e2e" in settings.phases:
            result.update(phase("e2e", lambda: end_to_end(settings, config, name, fleet, directory, stack)))
    targets = check_targets(result)
    result["targets"] = {target: met for target, (met, _) in targets.items()}
    result["seconds"] = round(time.monotonic() - started)
    for target, (met, why) in targets.items():
        log(f"target {target}: {'not shown' if met is None else 'met' if met else 'MISSED'} ({why})")
    ordered = {key: result.get(key) for key in HEADLINE}
    ordered.update({key: value for key, value in result.items() if key not in ordered})
    log(json.dumps(ordered, ensure_ascii=False, default=str))
    return 0


def phase(name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A later phase's figures; one that fails says why in one line and in the figures, and the others stand."""
    try:
        return run()
    except (psycopg.Error, DatabaseUnavailable, RuntimeError, TimeoutError) as exc:
        why = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        log(f"{name}: failed ({why}); the other phases' figures stand")
        return {f"{name}_failed": why}


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
