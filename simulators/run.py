"""`semon simulate`: write a scenario's registry CSV, or run its fleet of monitors against the broker.

The fleet runs in one or more shards (FleetSimulation(shard=(k, n))), each with its own MQTT connection: a
thread of this process when one shard is enough, otherwise one child process per shard (spawned) so that
device physics and MQTT framing use more than one core. A supervisor starts the shards on one common
timeline, logs the acknowledged publish rate and the backlog, stops them on a signal or after the duration,
and adds up what they did.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import queue
import secrets
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from semon.config import Config, ConfigError
from semon.tls import MqttEndpoint, endpoint
from simulators.fleet import build_fleet, write_registry_csv
from simulators.publisher import Publisher
from simulators.scenario import load_scenario
from simulators.simulation import FleetSimulation
from simulators.wear import seconds

log = logging.getLogger(__name__)

RATE_LOG_EVERY_S = 60.0
OFFLINE_ACK_TIMEOUT_S = 10.0
CONNECT_WARNING_S = 5.0
# Shards tell the supervisor how they are doing this often.
PROGRESS_EVERY_S = 1.0
# Items due within this much of now go out together: one wake-up per batch rather than per message, which
# halves what paho's network thread costs at 1,000 messages/s.
BATCH_S = 0.02
# What one shard sustains with room to spare on this kind of machine: about 180 µs of CPU per message for
# physics, JSON and paho, and paho's network thread tops out near 3,300 messages/s (docs/simulate.md). The
# default number of processes follows from it.
SHARD_MESSAGES_PER_S = 1200.0
# Messages handed to paho but not yet acknowledged beyond which a shard waits: past this, the broker or paho's
# network thread is the bottleneck, and the wait shows as backlog (and stale telemetry gets skipped) instead
# of a queue in paho that grows until it drops messages.
MAX_UNACKNOWLEDGED = 5000
# How often (in messages) a shard looks at that count, which takes the publisher's lock.
UNACKNOWLEDGED_CHECK_EVERY = 200
# Telemetry is skipped only when this many wall seconds late too (besides an interval of equipment time).
SKIP_AFTER_WALL_S = 1.0
# How long a stopping shard may take to say offline and hand in its totals before it is killed.
SHARD_STOP_TIMEOUT_S = OFFLINE_ACK_TIMEOUT_S + 20.0


class SimulationError(Exception):
    """A shard failed (its traceback is in the log); the simulation stopped."""


@dataclass
class SimulationStats:
    """Messages the broker acknowledged, per channel, plus those dropped or skipped; summed over shards."""

    published: dict[str, int] = field(default_factory=lambda: {"telemetry": 0, "event": 0, "status": 0})
    dropped: int = 0  # the outgoing queue was full while the broker was away
    skipped: int = 0  # telemetry not sent because the simulator fell more than an interval behind
    processes: int = 1
    max_behind_s: float = 0.0  # the worst backlog seen after backfill, in seconds behind schedule

    @property
    def total(self) -> int:
        """All acknowledged messages."""
        return sum(self.published.values())

    def add(self, progress: ShardProgress) -> None:
        """Count one shard's final figures in."""
        for channel, count in progress.acked.items():
            self.published[channel] = self.published.get(channel, 0) + count
        self.dropped += progress.dropped
        self.skipped += progress.skipped

    def __str__(self) -> str:
        channels = ", ".join(f"{name} {count}" for name, count in self.published.items())
        return f"{self.total} messages ({channels}); {self.dropped} dropped, {self.skipped} skipped"


@dataclass(frozen=True)
class TimeMode:
    """How the schedule's seconds map to the monitors' clock and to wall time.

    Real time: both advance together. Accelerated: the monitors' clock runs `speed` times faster. Backfill:
    the monitors' clock starts `history_s` ago; what is already past goes out as fast as the broker takes
    it, then the simulation carries on in real time. `clock_start_s` starts the monitors' clock that long ago
    (or `clock_epoch` at that moment, epoch seconds) without a backfill: everything still goes out on the
    (accelerated) schedule, so a fast run can cover days without its timestamps running more than a day ahead of
    the wall clock (which the ingester refuses).
    """

    speed: float = 1.0
    history_s: float = 0.0
    clock_start_s: float = 0.0
    clock_epoch: float | None = None

    def __post_init__(self) -> None:
        if not self.speed > 0 or not math.isfinite(self.speed):
            raise ValueError("speed must be a number greater than 0")
        if self.history_s < 0:
            raise ValueError("the backfill history cannot be negative")
        if self.history_s and self.speed != 1:
            raise ValueError("--speed and --from cannot be combined (backfill runs as fast as it can)")
        if not 0 <= self.clock_start_s < math.inf:
            raise ValueError("the clock start cannot be negative")
        if (self.clock_start_s or self.clock_epoch is not None) and self.history_s:
            raise ValueError("--clock-start and --from cannot be combined (a backfill starts its clock itself)")
        if self.clock_start_s and self.clock_epoch is not None:
            raise ValueError("the clock starts either some time ago or at a moment, not both")

    @property
    def name(self) -> str:
        if self.history_s:
            return f"backfill of {_human_s(self.history_s)}, then real time"
        pace = "real time" if self.speed == 1 else f"accelerated x{self.speed:g}"
        if self.clock_epoch is not None:
            began = datetime.fromtimestamp(self.clock_epoch, UTC).isoformat()
            return f"{pace}, the monitors' clock starting at {began}"
        return f"{pace}, the monitors' clock starting {_human_s(self.clock_start_s)} ago" if self.clock_start_s \
            else pace

    @property
    def realtime(self) -> bool:
        """Whether a monitor's ts is simply the wall clock when it sends."""
        return self.speed == 1 and not self.history_s and not self.clock_start_s and self.clock_epoch is None

    def sim_epoch(self, now: float) -> float:
        """The monitors' clock (epoch s) at a start at wall time `now`."""
        return self.clock_epoch if self.clock_epoch is not None else now - self.offset_s

    @property
    def offset_s(self) -> float:
        """How long before the start the monitors' clock begins."""
        return self.history_s + self.clock_start_s

    def wall_offset(self, at_s: float) -> float:
        """Seconds after the start at which an item due at_s into the simulation goes out (< 0: already late)."""
        return (at_s - self.history_s) / self.speed


def parse_clock_start(text: str) -> tuple[float, float | None]:
    """`--clock-start`: an age like --from's (seconds ago, None), or an RFC 3339 moment with its offset (0, epoch s)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return parse_history(text), None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} needs its UTC offset, like 2026-11-28T00:00:00+08:00")
    return 0.0, moment.timestamp()


def parse_history(text: str) -> float:
    """`--from` in seconds: a number of seconds, or with a unit w, d, h, m or s (30d, 12h, 90m), as in scenarios."""
    try:
        value = float(text)
    except ValueError:
        try:
            value = seconds(text, "--from")
        except ValueError:
            value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{text!r} is not a duration like 30d, 12h, 90m or 45s")
    return value


def default_processes(devices: int, interval_s: float, mode: TimeMode) -> int:
    """Enough shards for the fleet's message rate, at most one per CPU and never more than devices."""
    cpus = os.cpu_count() or 1
    # A backfill goes as fast as it can.
    wanted = cpus if mode.history_s else math.ceil(devices / interval_s * mode.speed / SHARD_MESSAGES_PER_S)
    return max(1, min(wanted, cpus, devices))


def write_scenario_registry(scenario: str, seed: int, path: Path, today: date | None = None) -> int:
    """Generate the fleet of a scenario and write its equipment registry CSV (and its records CSV next to it);
    return the number of rows. `today`: the day its ages and records count back from (default: today)."""
    today = today or date.today()
    return write_registry_csv(build_fleet(load_scenario(scenario), seed, today), path, today)


@dataclass(frozen=True)
class ShardSpec:
    """Everything a shard needs to run, picklable for a spawned process."""

    mqtt: MqttEndpoint
    scenario: str
    seed: int
    interval_s: float
    shard: tuple[int, int]
    mode: TimeMode
    duration_s: float | None
    labels: bool = False
    malformed_share: float = 0.0
    log_level: str | int = logging.INFO
    reporting_share: float | None = None  # overrides the scenario's monitors.reporting_share
    today: date | None = None  # the day the fleet's ages count back from (None: today)


@dataclass
class ShardProgress:
    """What a shard reports to the supervisor (every PROGRESS_EVERY_S, and once at the end)."""

    shard: int
    acked: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    skipped: int = 0
    behind_s: float = 0.0  # wall seconds behind schedule (during backfill: the history still to publish)
    behind_messages: int = 0  # messages due by now but not yet sent
    unacknowledged: int = 0  # sent, not yet acknowledged by the broker
    caught_up: bool = False  # past the backfill (always true without one)
    sim_time: str = ""  # the monitors' clock at the last item published


@dataclass(frozen=True)
class StartSignal:
    """The common timeline: the monotonic moment at_s = 0 goes out, and the monitors' clock then (epoch s)."""

    monotonic: float
    sim_epoch: float


class _Channel(Protocol):
    def put(self, item: Any) -> None: ...


def run_simulation(config: Config, scenario: str, *, seed: int, interval_s: float, duration_s: float | None,
                   stop_event: threading.Event | None = None, speed: float = 1.0, history_s: float = 0.0,
                   processes: int | None = None, labels_path: Path | None = None, malformed_share: float = 0.0,
                   report_every_s: float = RATE_LOG_EVERY_S, clock_start_s: float = 0.0,
                   clock_epoch: float | None = None, reporting_share: float | None = None,
                   today: date | None = None) -> SimulationStats:
    """Publish the fleet's status, telemetry and fault events until stopped, duration_s passes or a signal.

    reporting_share, when given, replaces the scenario's share of monitors that report their own faults
    (0: every monitor a retrofit terminal that sends telemetry only)."""
    try:
        mode = TimeMode(speed, history_s, clock_start_s, clock_epoch)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not 0 <= malformed_share <= 1:
        raise ConfigError("the malformed share must be between 0 and 1")
    if reporting_share is not None and not 0 <= reporting_share <= 1:
        raise ConfigError("the reporting share must be between 0 and 1")
    if interval_s <= 0:
        raise ConfigError("the interval must be greater than 0")
    # Its own account (simulate_mqtt_username) and TLS; a bad URL or file fails here, once, not in every shard.
    mqtt = endpoint(config, "simulator")
    fleet_size = len(load_scenario(scenario).equipment_codes())
    count = processes if processes is not None else default_processes(fleet_size, interval_s, mode)
    if not 1 <= count <= fleet_size:
        raise ConfigError(f"processes must be between 1 and the number of devices ({fleet_size})")
    specs = [ShardSpec(mqtt, scenario, seed, interval_s, (k, count), mode, duration_s,
                       labels=labels_path is not None, malformed_share=malformed_share,
                       log_level=logging.getLogger().level, reporting_share=reporting_share, today=today)
             for k in range(count)]
    stop = stop_event or threading.Event()
    restore_signals = _stop_on_signals(stop)
    log.info("simulating %d monitors of scenario %s (seed %d), one message each per %.3g s, %s, in %d %s, on %s",
             fleet_size, scenario, seed, interval_s, mode.name, count, "process" if count == 1 else "processes",
             mqtt.describe())
    try:
        supervisor = _Supervisor(specs, stop, fleet_size / interval_s, report_every_s)
        stats, shard_labels = supervisor.run()
    finally:
        restore_signals()
    if labels_path is not None:
        write_labels(labels_path, shard_labels)
        log.info("wrote %d labels to %s", len(merge_labels(shard_labels)), labels_path)
    log.info("simulation stopped: %s", stats)
    return stats


def merge_labels(shard_labels: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every shard's labels once each, sorted by start."""
    unique: dict[str, dict[str, Any]] = {}
    for labels in shard_labels:
        for label in labels:
            unique.setdefault(json.dumps(label, sort_keys=True, default=str), label)
    return sorted(unique.values(), key=lambda label: _sort_time(label.get("start")))


def write_labels(path: Path, shard_labels: list[list[dict[str, Any]]]) -> None:
    """The ground truth as JSON lines (datetimes in RFC 3339)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for label in merge_labels(shard_labels):
            out.write(json.dumps(label, ensure_ascii=False, default=_json_default) + "\n")


def _sort_time(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return math.inf
    if isinstance(value, int | float):
        return float(value)
    return math.inf


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


class _Supervisor:
    """Starts the shards, keeps their latest progress, logs rate and backlog, stops them and sums up."""

    def __init__(self, specs: list[ShardSpec], stop: threading.Event, offered_per_s: float,
                 report_every_s: float):
        self.specs = specs
        self.stop = stop
        self.offered_per_s = offered_per_s
        self.report_every_s = report_every_s
        self.threaded = len(specs) == 1
        if self.threaded:
            self.inbox: Any = queue.Queue()
            self.shard_stop = threading.Event()
            self.board: Any = [0.0, 0.0, 0.0]
        else:
            self.context = multiprocessing.get_context("spawn")
            self.inbox = self.context.Queue()
            # Polled, not waited on: multiprocessing's Event can hang in set() after waits that timed out.
            self.board = self.context.Array("d", 3)
        self.workers: list[Any] = []
        self.latest: dict[int, ShardProgress] = {}
        self.final: dict[int, ShardProgress] = {}
        self.labels: dict[int, list[dict[str, Any]]] = {}
        self.ready: set[int] = set()
        self.failed: list[int] = []
        self.max_behind_s = 0.0

    def run(self) -> tuple[SimulationStats, list[list[dict[str, Any]]]]:
        launched = time.monotonic()
        for spec in self.specs:
            self.workers.append(self._launch(spec))
        duration = self.specs[0].duration_s
        history_s = self.specs[0].mode.history_s
        started_at: float | None = None
        warned = False
        backfill_logged = history_s == 0
        next_report = math.inf
        last_acked, last_at = 0, time.monotonic()
        try:
            while True:
                self._drain(timeout=0.1)
                now = time.monotonic()
                if self.failed:
                    break
                if self.stop.is_set():
                    break
                if started_at is None:
                    if len(self.ready) == len(self.specs):
                        started_at = self._start()
                        last_at, next_report = started_at, started_at + self.report_every_s
                    elif duration is not None and now - launched >= duration:
                        break
                    elif not warned and now - launched > CONNECT_WARNING_S + 10:
                        log.warning("%d of %d shards connected so far; still waiting", len(self.ready),
                                    len(self.specs))
                        warned = True
                    continue
                if len(self.final) == len(self.specs):
                    break  # every shard ran its duration
                if not backfill_logged and len(self.latest) == len(self.specs) and all(
                        p.caught_up for p in self.latest.values()):
                    backfill_logged = True
                    log.info("backfill caught up: %s of history published in %.1f s; carrying on in real time",
                             _human_s(history_s), now - started_at)
                if now >= next_report:
                    acked = sum(sum(p.acked.values()) for p in self.latest.values())
                    self._report(acked - last_acked, now - last_at)
                    last_acked, last_at, next_report = acked, now, now + self.report_every_s
                if any(not self._alive(w) for i, w in enumerate(self.workers) if i not in self.final):
                    self._drain(timeout=0.5)
                    lost = [i for i, w in enumerate(self.workers) if i not in self.final and not self._alive(w)]
                    if lost:
                        log.error("shard(s) %s ended without reporting; stopping", ", ".join(map(str, lost)))
                        self.failed.extend(lost)
                        break
        finally:
            self._stop_all()
        stats = SimulationStats(processes=len(self.specs), max_behind_s=self.max_behind_s)
        for progress in self.final.values():
            stats.add(progress)
        if self.failed:
            raise SimulationError(f"shard(s) {', '.join(map(str, sorted(set(self.failed))))} failed; "
                                  f"published before stopping: {stats}")
        return stats, [self.labels[k] for k in sorted(self.labels)]

    def _launch(self, spec: ShardSpec) -> Any:
        if self.threaded:
            worker = threading.Thread(target=_run_shard, name=f"shard-{spec.shard[0]}", daemon=True,
                                      args=(spec, self.inbox, self.shard_stop, self.board))
        else:
            worker = self.context.Process(target=_shard_main_process, name=f"semon-sim-{spec.shard[0]}",
                                          args=(spec, self.inbox, self.board), daemon=True)
        worker.start()
        return worker

    @staticmethod
    def _alive(worker: Any) -> bool:
        return worker.is_alive()

    def _start(self) -> float:
        # A moment shortly ahead, so every shard begins on the same beat rather than as it wakes up.
        begin = time.monotonic() + 0.05
        sim_epoch = self.specs[0].mode.sim_epoch(time.time() + 0.05)
        self.board[2] = sim_epoch
        self.board[1] = begin  # last: a shard starts once this is set
        return begin

    def _drain(self, timeout: float) -> None:
        """Take in what the shards reported, waiting up to timeout for the first item."""
        try:
            item = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            self._take(item)
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return

    def _take(self, item: tuple[str, int, Any]) -> None:
        kind, shard, body = item
        if kind == "ready":
            self.ready.add(shard)
        elif kind == "progress":
            self.latest[shard] = body
            if body.caught_up:
                self.max_behind_s = max(self.max_behind_s, body.behind_s)
        elif kind == "done":
            progress, labels = body
            self.latest[shard] = self.final[shard] = progress
            if labels is not None:
                self.labels[shard] = labels
        elif kind == "failed":
            log.error("shard %d failed:\n%s", shard, body)
            self.failed.append(shard)

    def _report(self, acked: int, seconds: float) -> None:
        progress = list(self.latest.values())
        totals: dict[str, int] = {}
        for p in progress:
            for channel, count in p.acked.items():
                totals[channel] = totals.get(channel, 0) + count
        behind_s = max((p.behind_s for p in progress), default=0.0)
        behind_messages = sum(p.behind_messages for p in progress)
        unacked = sum(p.unacknowledged for p in progress)
        backfilling = not all(p.caught_up for p in progress)
        backlog = (f"backfill at {min(p.sim_time for p in progress)}, " if backfilling else "") + (
            f"backlog {behind_s:.1f} s, {behind_messages} messages due, {unacked} awaiting the broker")
        log.info("published %.1f messages/s over the last %.0f s (offered %.1f/s); %s; totals: %s; "
                 "%d dropped, %d skipped", acked / seconds if seconds > 0 else 0.0, seconds,
                 self.offered_per_s * self.specs[0].mode.speed, backlog,
                 ", ".join(f"{c} {n}" for c, n in sorted(totals.items())) or "none",
                 sum(p.dropped for p in progress), sum(p.skipped for p in progress))

    def _stop_all(self) -> None:
        if self.threaded:
            self.shard_stop.set()
        self.board[0] = 1.0
        deadline = time.monotonic() + SHARD_STOP_TIMEOUT_S
        while len(self.final) + len(set(self.failed)) < len(self.specs) and time.monotonic() < deadline:
            self._drain(timeout=0.1)
            if all(not self._alive(w) for w in self.workers):
                self._drain(timeout=0.2)
                break
        for index, worker in enumerate(self.workers):
            if self.threaded:
                worker.join(timeout=max(0.0, deadline - time.monotonic()))
                continue
            worker.join(timeout=max(0.1, deadline - time.monotonic()))
            if worker.is_alive():
                log.warning("shard %d did not stop in time; killing it", index)
                worker.kill()
                worker.join()
        if not self.threaded:
            self.inbox.close()
            self.inbox.join_thread()


def _shard_main_process(spec: ShardSpec, outbox: _Channel, board: Any) -> None:
    """A spawned shard: logs like the parent, leaves Ctrl-C to the parent, and stops if the parent dies."""
    logging.basicConfig(level=spec.log_level, format=f"%(asctime)s %(levelname)s %(name)s[{spec.shard[0]}]: "
                        "%(message)s")
    # Ctrl-C reaches the whole process group; the parent decides, so every shard says offline once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    parent = os.getppid()

    def watch() -> None:
        while not board[0] and not stop.wait(0.1):
            if os.getppid() != parent:
                log.warning("the simulator's main process is gone; stopping")
                break
        stop.set()

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()
    _run_shard(spec, outbox, stop, board)


def _run_shard(spec: ShardSpec, outbox: _Channel, stop: threading.Event, board: Any) -> None:
    """One shard: connect, wait for the common start, publish its part of the fleet, say offline, report.

    board: [stop requested, monotonic start (0 until started), monitors' clock at the start (epoch s)].
    """
    k = spec.shard[0]
    try:
        scenario = load_scenario(spec.scenario)
        if spec.reporting_share is not None:
            scenario = replace(scenario, monitors=replace(scenario.monitors, reporting_share=spec.reporting_share))
        simulation = FleetSimulation(scenario, spec.seed, spec.interval_s, today=spec.today, shard=spec.shard,
                                     malformed_share=spec.malformed_share)
        runner = _ShardRunner(spec, simulation, outbox, stop)
        runner.run(board)
        labels = None
        if spec.labels:
            started = datetime.fromtimestamp(runner.start.sim_epoch, UTC) if runner.start else datetime.now(UTC)
            labels = simulation.labels(started)
        outbox.put(("done", k, (runner.progress(), labels)))
    except Exception:  # noqa: BLE001 - whatever it is, the supervisor must hear of it to stop the rest
        outbox.put(("failed", k, traceback.format_exc()))


class _ShardRunner:
    """Publishes one shard's schedule on the common timeline."""

    def __init__(self, spec: ShardSpec, simulation: FleetSimulation, outbox: _Channel, stop: threading.Event):
        self.spec = spec
        self.simulation = simulation
        self.outbox = outbox
        self.stop = stop
        self.stopping = threading.Event()
        self.mode = spec.mode
        self.skipped = 0
        self.behind_s = 0.0
        self.caught_up = spec.mode.history_s == 0
        self.sim_now: datetime | None = None
        self.start: StartSignal | None = None
        # Telemetry items per wall second, for turning seconds behind into messages behind.
        self.items_per_s = len(simulation.devices) / spec.interval_s * spec.mode.speed
        client_id = f"semon-sim-{os.getpid()}-{spec.shard[0]}-{secrets.token_hex(3)}"
        self.publisher = Publisher(spec.mqtt, client_id, on_connected=self._announce_online)

    def _announce_online(self) -> None:
        # On every (re)connection: the broker may have lost retained messages, and nothing else says online.
        if not self.stopping.is_set():
            for message in self.simulation.statuses("online"):
                self.publisher.publish(message)

    def progress(self) -> ShardProgress:
        return ShardProgress(
            shard=self.spec.shard[0], acked=self.publisher.acked_counts(), dropped=self.publisher.dropped,
            skipped=self.skipped, behind_s=self.behind_s,
            behind_messages=int(self.behind_s * self.items_per_s), unacknowledged=self.publisher.unacknowledged(),
            caught_up=self.caught_up,
            sim_time=self.sim_now.isoformat(timespec="seconds") if self.sim_now else "")

    def run(self, board: Any) -> None:
        self.publisher.start()
        try:
            if not self._wait_for_connection():
                return
            self.outbox.put(("ready", self.spec.shard[0], None))
            while not board[1]:
                if self.stop.wait(0.02):
                    return
            self.start = StartSignal(board[1], board[2])
            self._publish_schedule(self.start)
        finally:
            self.stopping.set()
            self._go_offline()
            self.publisher.stop()

    def _wait_for_connection(self) -> bool:
        started = time.monotonic()
        warned = False
        while not self.publisher.connected.wait(0.1):
            if self.stop.is_set():
                return False
            if not warned and time.monotonic() - started > CONNECT_WARNING_S:
                log.warning("still waiting for the MQTT broker %s:%s", self.publisher.host, self.publisher.port)
                warned = True
        return True

    def _publish_schedule(self, start: StartSignal) -> None:
        simulation, publisher, mode, stop = self.simulation, self.publisher, self.mode, self.stop
        interval = simulation.interval_s
        end = math.inf if self.spec.duration_s is None else self.spec.duration_s
        sim_start = datetime.fromtimestamp(start.sim_epoch, UTC)
        realtime = mode.realtime
        next_progress = 0.0
        next_check = UNACKNOWLEDGED_CHECK_EVERY
        for due in simulation.schedule():
            target = mode.wall_offset(due.at_s)
            if publisher.published >= next_check:
                next_check = publisher.published + UNACKNOWLEDGED_CHECK_EVERY
                while publisher.unacknowledged() > MAX_UNACKNOWLEDGED and not stop.wait(0.005):
                    elapsed = time.monotonic() - start.monotonic
                    if elapsed >= end:
                        return  # a stalled broker must not outlast --duration
                    if elapsed >= next_progress:
                        next_progress = self._report(elapsed, target)
            elapsed = time.monotonic() - start.monotonic
            if elapsed >= next_progress:
                next_progress = self._report(elapsed, target)
            if target - elapsed > BATCH_S:
                # Ahead of schedule: wait for the next batch. Reaching this point ends a backfill.
                self.caught_up = True
                while target - elapsed > BATCH_S and elapsed < end and not stop.is_set():
                    stop.wait(min(target - elapsed, PROGRESS_EVERY_S))
                    elapsed = time.monotonic() - start.monotonic
                    if elapsed >= next_progress:
                        next_progress = self._report(elapsed, target)
            if elapsed >= end or stop.is_set():
                return
            if (due.action is None and self.caught_up and (elapsed - target) * mode.speed > interval
                    and elapsed - target > SKIP_AFTER_WALL_S):
                # Catching up a backlog would be a burst of stale readings; the next step covers the gap. A
                # backfill never skips: its history is the point. Nor does a fast run for a hiccup of milliseconds
                # (an interval at x864 is 6 ms), which would leave gaps in the readings that no monitor leaves.
                self.skipped += 1
                continue
            now = datetime.now(UTC) if realtime else sim_start + timedelta(seconds=due.at_s)
            try:
                messages = simulation.messages(due, now)
            except ValueError as exc:
                log.warning("skipping fault action %s: %s", due.action, exc)
                continue
            for message in messages:
                publisher.publish(message)
            self.sim_now = now

    def _report(self, elapsed: float, target: float) -> float:
        """Send the supervisor this shard's progress; returns when to next."""
        self.behind_s = max(0.0, elapsed - target)
        self.outbox.put(("progress", self.spec.shard[0], self.progress()))
        return elapsed + PROGRESS_EVERY_S

    def _go_offline(self) -> None:
        # One connection cannot carry a last will per monitor, so a clean stop says offline for each of them.
        if not self.publisher.ever_connected:
            return  # nothing was ever said to be online
        for message in self.simulation.statuses("offline"):
            self.publisher.publish(message)
        if not self.publisher.wait_for_acks(OFFLINE_ACK_TIMEOUT_S):
            log.warning("the broker did not acknowledge everything before stopping; "
                        "%d message(s) were not delivered", self.publisher.unacknowledged())


def _human_s(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """Make SIGINT and SIGTERM set `stop` (main thread only); returns a function restoring the handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            # None means a handler installed from C; the default is the closest we can put back.
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    def handle(signum: int, frame: object) -> None:
        log.info("received %s; publishing offline and stopping", signal.Signals(signum).name)
        stop.set()
        # A second signal gets the old behaviour, so a stop that hangs can still be interrupted.
        restore()

    for sig in previous:
        signal.signal(sig, handle)
    return restore

