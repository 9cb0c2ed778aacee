"""Ingest benchmark: drain and live throughput, publish-to-commit latency, loss, duplicates, memory.

    make bench                        # starts TimescaleDB and installs Mosquitto if needed, then runs this
    .venv/bin/python bench/ingest.py  # when TimescaleDB is up and mosquitto is installed

Everything runs against a fresh database on the configured server (dropped at the end) and a private
Mosquitto started from scripts/mosquitto.conf.in (stopped at the end). The ingester is the real
`python -m semon.cli ingest`, in its own process, with config.yaml's settings (SEMON_* variables apply).

Environment:
    BENCH_DRAIN_MESSAGES  messages in the drain backlog (500000)
    BENCH_LIVE_SECONDS    seconds per live phase (60)
    BENCH_LIVE_RATES      live phases' rates in messages/s (2000,10000)
    BENCH_DEVICES         registered elevators that publish (10000)
    BENCH_PUBLISHERS      publisher processes (2)
    BENCH_INGESTER_COMMAND  the ingester's command line, for trying a variant (python -m semon.cli ingest)
    BENCH_PROFILE         1: record py-spy profiles of the ingester (drain and fastest live phase) under
                          bench/profiles/ and print where its time goes; gil: sample only the thread holding
                          the GIL (needs `.venv/bin/pip install py-spy`)

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, where this very file would shadow the
# `ingest` package it measures. Put the repository there instead (children started with spawn inherit it).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import queue  # noqa: E402
import secrets  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from contextlib import ExitStack, suppress  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

from bench.fleet import SEQ_PHASE, equipment_code, register_fleet  # noqa: E402
from bench.services import (  # noqa: E402
    IngestCounters,
    IngesterProcess,
    PrivateBroker,
    cpu_seconds,
    peak_rss_kb,
)
from bench.workers import DrainReport, PublishJob, PublishReport, paho_drain_main, publish_main, raw_drain_main  # noqa: E402
from semon.config import Config, load_config  # noqa: E402

TOPIC_FILTER = "sem/v1/#"
PROGRESS_EVERY_S = 5.0
STALL_TIMEOUT_S = 60.0  # no progress for this long is a failure, however long the whole wait is
PROFILE_DIR = _HERE / "profiles"
# The headline figures (bench/RESULTS.md).
TARGET_DRAIN_PER_S = 25_000
TARGET_DRAIN_RATIO = 0.60
TARGET_P99_MS_AT_2000 = 300
TARGET_RSS_MB = 300
TARGET_LIVE_RATE = 10_000


@dataclass(frozen=True)
class Settings:
    drain_messages: int = 500_000
    live_seconds: float = 60.0
    live_rates: tuple[int, ...] = (2000, 10000)
    devices: int = 10_000
    publishers: int = 2
    profile: str = ""               # "", "1" (busy threads) or "gil" (the GIL holder)
    ingester_command: tuple[str, ...] = (sys.executable, "-m", "semon.cli", "ingest")

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        rates = tuple(int(r) for r in env.get("BENCH_LIVE_RATES", "2000,10000").split(",") if r.strip())
        settings = cls(int(env.get("BENCH_DRAIN_MESSAGES", 500_000)), float(env.get("BENCH_LIVE_SECONDS", 60)),
                       rates, int(env.get("BENCH_DEVICES", 10_000)), int(env.get("BENCH_PUBLISHERS", 2)),
                       {"1": "1", "true": "1", "yes": "1", "gil": "gil"}.get(env.get("BENCH_PROFILE", ""), ""),
                       tuple(shlex.split(env["BENCH_INGESTER_COMMAND"])) if env.get("BENCH_INGESTER_COMMAND")
                       else cls.ingester_command)
        if settings.devices <= 0 or settings.publishers <= 0 or settings.drain_messages < settings.devices:
            raise SystemExit("BENCH_DEVICES and BENCH_PUBLISHERS must be > 0 and BENCH_DRAIN_MESSAGES >= devices")
        return settings


@dataclass
class Published:
    """What the publishers of one phase sent and the broker acknowledged."""

    messages: int
    started: float
    last_sent: float
    finished: float
    counts: dict[int, int]      # device index -> messages
    cpu: dict[str, float]       # cores used from the common start until the last PUBACK (live phases)


@dataclass
class PhaseCpu:
    """CPU seconds of the processes that matter, and of the whole machine, at a point in time."""

    at: float
    ingester: float
    broker: float
    database_backend: float
    machine_busy: float

    def cores_since(self, earlier: PhaseCpu) -> dict[str, float]:
        """Average cores each used between `earlier` and this one."""
        wall = max(self.at - earlier.at, 1e-9)
        return {"ingester": round((self.ingester - earlier.ingester) / wall, 2),
                "mosquitto": round((self.broker - earlier.broker) / wall, 2),
                "postgres_backend": round((self.database_backend - earlier.database_backend) / wall, 2),
                "machine": round((self.machine_busy - earlier.machine_busy) / wall, 2)}


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(message, flush=True)


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


class Bench:
    """One benchmark run against a fresh database and a private broker."""

    def __init__(self, config: Config, settings: Settings, db_url: str, broker: PrivateBroker):
        self.config = config
        self.settings = settings
        self.db_url = db_url
        self.broker = broker
        self.host, self.port = "127.0.0.1", broker.port
        tag = secrets.token_hex(3)
        self.ingester_id = f"semon-bench-ingest-{tag}"
        self.paho_id = f"semon-bench-paho-{tag}"
        self.raw_id = f"semon-bench-raw-{tag}"
        self.window = min(int(config.ingest_buffer_size), 65535)  # the ingester's Receive Maximum
        self.mp = multiprocessing.get_context("spawn")
        self.children: list[Any] = []
        self.ingester: IngesterProcess | None = None
        self.samples: list[IngestCounters] = []
        self._sampling = threading.Event()
        self._sampler: threading.Thread | None = None
        self.backend_pid = 0
        self.profilers: list[tuple[Path, float, subprocess.Popen[bytes]]] = []
        self.profile_seconds: dict[Path, float] = {}
        self.per_device = settings.drain_messages // settings.devices
        self.drain_total = self.per_device * settings.devices
        self.published: dict[str, Published] = {}

    # --- orchestration -------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        from bench.commits import CommitWatcher

        results: dict[str, Any] = {"drain_messages": self.drain_total}
        self.prime_sessions()
        log(f"drain: publishing {self.drain_total:,} messages ({self.per_device} from each of "
            f"{self.settings.devices:,} elevators) at QoS 1 from {self.settings.publishers} processes into 3 "
            "offline persistent sessions (ingester, bare paho subscriber, raw subscriber)")
        drain = self.publish("drain", 0, per_device=self.per_device)
        accept_s = drain.finished - drain.started
        results["broker_accept_per_s"] = round(rate(drain.messages, accept_s))
        log(f"drain: the broker acknowledged all {drain.messages:,} in {accept_s:.1f} s "
            f"({results['broker_accept_per_s']:,}/s)")

        raw = self.drain_reference(raw_drain_main, (self.host, self.port, self.raw_id, self.drain_total, 600))
        results["raw_subscriber_per_s"] = round(rate(raw.received, raw.done_at - raw.connected_at))
        log(f"drain: raw socket subscriber (what Mosquitto can deliver): {raw.received:,} in "
            f"{raw.done_at - raw.connected_at:.1f} s = {results['raw_subscriber_per_s']:,}/s")
        bare = self.drain_reference(paho_drain_main, (self.host, self.port, self.paho_id, self.window,
                                                      self.drain_total, 900))
        bare_s = bare.done_at - bare.connected_at
        results["bare_subscriber_per_s"] = round(rate(bare.received, bare_s))
        log(f"drain: bare paho subscriber (MQTT 5, QoS 1, receive maximum {self.window}, auto-ack, no parsing, "
            f"no database): {bare.received:,} in {bare_s:.1f} s = {results['bare_subscriber_per_s']:,}/s, "
            f"peak RSS {bare.peak_rss_kb / 1024:.0f} MB")

        watcher = CommitWatcher(self.db_url)
        watcher.start()
        try:
            cpu_before = self.start_ingester()
            drain_profile = self.start_profile("drain")
            self.wait_stored(self.drain_total, "drain")
            drain_done_coarse = self.first_sample_at(self.drain_total)
            self.stop_profiles()
            cpu_drain = self.cpu_now().cores_since(cpu_before)
            assert self.ingester is not None
            log(f"drain: CPU cores used while draining: {cpu_drain}")

            live_cpu: dict[int, dict[str, float]] = {}
            live_profile: Path | None = None
            for index, live_rate in enumerate(self.settings.live_rates, start=1):
                profile = (self.start_profile(f"live_{live_rate}")
                           if live_rate == max(self.settings.live_rates) else None)
                live_profile = profile or live_profile
                live = self.publish(f"live_{live_rate}", index, rate_per_s=live_rate,
                                    duration_s=self.settings.live_seconds)
                live_cpu[live_rate] = live.cpu
                self.stop_profiles()
                self.wait_stored(self.expected_total(), f"live_{live_rate} catching up")
            peak_kb = peak_rss_kb(self.ingester.pid)  # VmHWM: the peak over the whole run, read before it stops
            final = self.stop_ingester()
        finally:
            watcher.stop()
        # Nothing here should break a connection; if one broke, say which side gave up and when.
        disconnects = [line for line in self.ingester.log if "disconnected from the broker" in line]
        results["ingester_disconnects"] = len(disconnects)
        if disconnects:
            about_ingester = [line for line in self.broker.log_tail(10_000).splitlines() if self.ingester_id in line]
            log(f"warning: the ingester's connection broke {len(disconnects)} time(s); its log:\n  "
                + "\n  ".join(disconnects) + "\nthe broker's log about it:\n  "
                + ("\n  ".join(about_ingester[-20:]) or "(nothing)"))

        if watcher.gaps:
            results["commit_watcher_gaps"] = [[round(a, 1), round(b, 1)] for a, b in watcher.gaps]
            log(f"warning: the database could not be reached for {sum(b - a for a, b in watcher.gaps):.1f} s "
                "(restarted by someone?); commits in that time are timed late and the figures are disturbed")
        results.update(self.analyse(watcher, drain_done_coarse, live_cpu))
        results["drain_ratio"] = round(results["drain_per_s"] / max(results["bare_subscriber_per_s"], 1), 3)
        results["drain_cpu_cores"] = cpu_drain
        results["redeliveries"] = int(final.duplicates)
        results["dead_lettered"] = int(final.dead_lettered)
        results["ingester_peak_rss_mb"] = round(peak_kb / 1024, 1)
        if drain_profile is not None or live_profile is not None:
            from bench.profile import summarise

            for path in (drain_profile, live_profile):
                if path is not None and path.exists():
                    log(summarise(path, self.profile_seconds.get(path)))
        return results

    def expected_total(self) -> int:
        return self.drain_total + sum(p.messages for name, p in self.published.items() if name != "drain")

    # --- sessions and publishers ---------------------------------------------------------------------

    def prime_sessions(self) -> None:
        """Create the three persistent sessions before anything is published, so that each queues it all."""
        from bench.rawmqtt import prime_session
        from ingest.service import Ingester

        # The ingester itself, with the fixed client id it will resume with: its own session settings.
        ingester = Ingester(self.ingester_config())
        ingester.start()
        try:
            # True once the broker acknowledged the subscription: from then on the session queues for it.
            if not ingester.wait_connected(15):
                raise RuntimeError("the ingester did not connect to the benchmark's broker")
        finally:
            ingester.stop()
        self.prime_paho_session()
        prime_session(self.host, self.port, self.raw_id, TOPIC_FILTER)
        log("sessions: ingester, bare paho and raw subscriber sessions subscribed to sem/v1/# at QoS 1, offline")

    def ingester_config(self) -> Config:
        return self.config.replace(database_url=self.db_url, mqtt_url=self.broker.url,
                                   mqtt_client_id=self.ingester_id, ingest_metrics_port=0)

    def prime_paho_session(self) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        subscribed = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.paho_id, protocol=mqtt.MQTTv5)
        client.on_subscribe = lambda *args: subscribed.set()
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        client.connect(self.host, self.port, clean_start=True, properties=properties)
        client.loop_start()
        try:
            client.subscribe(TOPIC_FILTER, qos=1)
            if not subscribed.wait(10):
                raise RuntimeError("the bare subscriber's subscription was not acknowledged")
        finally:
            client.disconnect()
            client.loop_stop()

    def publish(self, name: str, phase: int, *, per_device: int = 0, rate_per_s: float = 0,
                duration_s: float = 0) -> Published:
        """Run the publisher processes of one phase to the end: every message acknowledged by the broker."""
        settings = self.settings
        live = rate_per_s > 0
        # Spawned interpreters take a moment to start; a common start time keeps the offered rate honest.
        start_at = time.time() + 2.0 if live else 0.0
        results = self.mp.Queue()
        slices = _split(settings.devices, settings.publishers)
        processes = []
        for number, (first, count) in enumerate(slices):
            job = PublishJob(self.host, self.port, f"semon-bench-pub-{name}-{number}", first, count, phase,
                             messages_per_device=per_device, rate_per_s=rate_per_s * count / settings.devices,
                             duration_s=duration_s, start_at=start_at, stamp_sent_at=live, seed=phase * 100 + number)
            process = self.mp.Process(target=publish_main, args=(job, results), name=job.client_id, daemon=True)
            process.start()
            processes.append(process)
            self.children.append(process)
        cpu_start = None
        if live:
            log(f"{name}: publishing {rate_per_s:,.0f} messages/s for {duration_s:.0f} s from "
                f"{len(processes)} processes while the ingester runs")
            time.sleep(max(0.0, start_at - time.time()))
            cpu_start = self.cpu_now()
        reports: list[PublishReport] = []
        deadline = time.monotonic() + (duration_s or 0) + 600
        last_progress = time.monotonic()
        while len(reports) < len(processes):
            try:
                reports.append(results.get(timeout=1))
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name}: publishers did not finish") from None
                if not any(p.is_alive() for p in processes) and results.empty():
                    raise RuntimeError(f"{name}: a publisher process died without a report") from None
            if live and time.monotonic() - last_progress >= PROGRESS_EVERY_S:
                last_progress = time.monotonic()
                self.progress(name)
        for process in processes:
            process.join(timeout=10)
        errors = [r.error for r in reports if r.error]
        if errors:
            raise RuntimeError(f"{name}: a publisher failed:\n{errors[0]}")
        counts: dict[int, int] = {}
        for report in reports:
            counts.update({report.first_device + j: n for j, n in enumerate(report.counts)})
        published = Published(sum(r.acked for r in reports), min(r.started for r in reports),
                              max(r.last_sent for r in reports), max(r.finished for r in reports), counts,
                              self.cpu_now().cores_since(cpu_start) if cpu_start else {})
        if sum(counts.values()) != published.messages:
            raise RuntimeError(f"{name}: publishers counted {sum(counts.values())} but the broker acknowledged "
                               f"{published.messages}")
        self.published[name] = published
        if live:
            span = published.last_sent - published.started
            log(f"{name}: the broker acknowledged {published.messages:,} messages sent over {span:.1f} s "
                f"({rate(published.messages, span):,.0f}/s offered)")
        return published

    def drain_reference(self, target: Any, args: tuple[Any, ...]) -> DrainReport:
        """Run one reference subscriber in a process of its own and return its report."""
        results = self.mp.Queue()
        process = self.mp.Process(target=target, args=(*args, results), daemon=True)
        process.start()
        self.children.append(process)
        report: DrainReport = results.get(timeout=args[-1] + 60)
        process.join(timeout=10)
        if report.error:
            raise RuntimeError(f"the {report.name} subscriber failed:\n{report.error}")
        return report

    # --- the ingester --------------------------------------------------------------------------------

    def start_ingester(self) -> PhaseCpu:
        settings = {"SEMON_DATABASE_URL": self.db_url, "SEMON_MQTT_URL": self.broker.url,
                    "SEMON_MQTT_CLIENT_ID": self.ingester_id}
        self.ingester = IngesterProcess(settings, self.settings.ingester_command)
        started = time.time()
        self.ingester.start()
        if not self.ingester.connected.wait(30):
            raise RuntimeError("the ingester did not connect within 30 s; its log:\n" + "\n".join(self.ingester.log))
        connected_line = next((line for line in self.ingester.log if "connected to" in line), "")
        if "session present: False" in connected_line:
            raise RuntimeError(f"the broker did not keep the ingester's session: {connected_line}")
        cpu = self.cpu_now()
        log(f"drain: ingester (pid {self.ingester.pid}: {shlex.join(self.settings.ingester_command)}, "
            f"batch {self.config.ingest_batch_size}, batch_ms "
            f"{self.config.ingest_batch_ms}, receive maximum {self.window}) resumed its session "
            f"{self.ingester.connected_at - started:.1f} s after its process started")
        self._sampling.set()
        self._sampler = threading.Thread(target=self._sample, name="ingester-sampler", daemon=True)
        self._sampler.start()
        return cpu

    def _sample(self) -> None:
        # Scrapes /metrics 4 times a second: cheap for the ingester (a few counters) and fine enough a clock
        # for progress; the drain's end time comes from commit times (bench/commits.py), not from this.
        assert self.ingester is not None
        while self._sampling.is_set() and self.ingester.running():
            with suppress(OSError):  # the endpoint starts a moment after the process
                self.samples.append(self.ingester.counters())
            if not self.backend_pid and self.samples and self.samples[-1].stored > 0:
                self.backend_pid = self.find_backend()
            time.sleep(0.25)

    def find_backend(self) -> int:
        """The PostgreSQL backend serving the ingester's writer (the one connection without our name)."""
        import psycopg

        with psycopg.connect(self.db_url, autocommit=True, application_name="semon-bench") as conn:
            row = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND "
                               "application_name = '' AND backend_type = 'client backend' ORDER BY backend_start "
                               "DESC LIMIT 1").fetchone()
        return row[0] if row else 0

    def cpu_now(self) -> PhaseCpu:
        assert self.broker.process is not None
        return PhaseCpu(time.time(), cpu_seconds(self.ingester.pid) if self.ingester else 0.0,
                        cpu_seconds(self.broker.process.pid), cpu_seconds(self.backend_pid) if self.backend_pid
                        else 0.0, machine_busy_seconds())

    def wait_stored(self, target: int, name: str) -> None:
        """Wait until the ingester reports `target` rows stored in all; fail if it stops making progress."""
        assert self.ingester is not None
        last_stored, last_change, last_progress = -1.0, time.monotonic(), time.monotonic()
        while True:
            sample = self.samples[-1] if self.samples else IngestCounters()
            if sample.stored >= target:
                return
            now = time.monotonic()
            if sample.stored != last_stored:
                last_stored, last_change = sample.stored, now
            if not self.ingester.running():
                raise RuntimeError(f"{name}: the ingester exited; its log:\n" + "\n".join(self.ingester.log))
            if now - last_change > STALL_TIMEOUT_S:
                raise TimeoutError(f"{name}: no progress for {STALL_TIMEOUT_S:.0f} s at {sample.stored:,.0f} of "
                                   f"{target:,} stored; mosquitto log:\n{self.broker.log_tail()}")
            if now - last_progress >= PROGRESS_EVERY_S:
                last_progress = now
                self.progress(name)
            time.sleep(0.1)

    def progress(self, name: str) -> None:
        if len(self.samples) < 2:
            return
        now = self.samples[-1]
        earlier = next((s for s in reversed(self.samples) if now.at - s.at >= PROGRESS_EVERY_S), self.samples[0])
        span = max(now.at - earlier.at, 1e-9)
        log(f"    {name}: stored {now.stored:,.0f} ({(now.stored - earlier.stored) / span:,.0f}/s), received "
            f"{now.received:,.0f} ({(now.received - earlier.received) / span:,.0f}/s), buffer "
            f"{now.buffer_depth:,.0f}, redeliveries {now.duplicates:,.0f}")

    def first_sample_at(self, stored: int) -> float:
        return next((s.at for s in self.samples if s.stored >= stored), 0.0)

    def stop_ingester(self) -> IngestCounters:
        assert self.ingester is not None
        self._sampling.clear()
        if self._sampler is not None:
            self._sampler.join(timeout=5)
        final = self.ingester.counters()
        status = self.ingester.stop()
        if status not in (0, -signal.SIGTERM):
            log(f"warning: the ingester exited with status {status}")
        return final

    # --- profiling (BENCH_PROFILE=1) -----------------------------------------------------------------

    def start_profile(self, name: str) -> Path | None:
        if not self.settings.profile or self.ingester is None:
            return None
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(py_spy).exists():
            log("profile: py-spy is not installed (.venv/bin/pip install py-spy); not profiling")
            return None
        PROFILE_DIR.mkdir(exist_ok=True)
        suffix = "-gil" if self.settings.profile == "gil" else ""
        path = PROFILE_DIR / f"ingester-{name}{suffix}.txt"
        # Raw (collapsed) stacks per thread. --nonblocking does not pause the ingester to sample it; py-spy
        # cannot tell the GIL holder that way, so --gil samples with brief pauses.
        mode = ["--gil"] if self.settings.profile == "gil" else ["--nonblocking"]
        self.profilers.append((path, time.monotonic(), subprocess.Popen(
            [py_spy, "record", "--pid", str(self.ingester.pid), "--rate", "100", "--format", "raw", "--threads",
             *mode, "--output", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        return path

    def stop_profiles(self) -> None:
        for path, started, profiler in self.profilers:
            self.profile_seconds[path] = time.monotonic() - started
            profiler.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            try:
                profiler.wait(timeout=30)
            except subprocess.TimeoutExpired:
                profiler.kill()
                profiler.wait()
        self.profilers.clear()

    # --- figures from the database -------------------------------------------------------------------

    def analyse(self, watcher: Any, drain_done_coarse: float, live_cpu: dict[int, dict[str, float]]) -> dict[str, Any]:
        import numpy as np
        import psycopg

        assert self.ingester is not None
        figures: dict[str, Any] = {}
        with psycopg.connect(self.db_url, autocommit=True, application_name="semon-bench") as conn:
            figures.update(self.check_delivery(conn))

            drain_xids = [r[0] for r in conn.execute(
                "SELECT DISTINCT xmin::text::bigint FROM telemetry_elevator WHERE seq < %s", (SEQ_PHASE,))]
            commits = watcher.commit_times(drain_xids)
            if len(commits) == len(drain_xids):
                drain_done = max(commits.values()) / 1e9
                how = "commit of the last batch, seen by the commit watcher"
            else:  # should not happen; fall back to the coarser metrics scrape
                drain_done = drain_done_coarse
                how = "first metrics scrape showing all stored"
            drain_s = drain_done - self.ingester.connected_at
            figures["drain_seconds"] = round(drain_s, 2)
            figures["drain_per_s"] = round(rate(self.drain_total, drain_s))
            figures["drain_batches"] = len(drain_xids)
            log(f"drain: the ingester stored {self.drain_total:,} rows in {drain_s:.1f} s from resuming its "
                f"session to the {how} = {figures['drain_per_s']:,}/s in {len(drain_xids):,} transactions "
                f"(mean {self.drain_total / max(len(drain_xids), 1):,.0f} rows each)")

            for index, live_rate in enumerate(self.settings.live_rates, start=1):
                name = f"live_{live_rate}"
                published = self.published[name]
                rows = conn.execute("""
                    SELECT xmin::text::bigint, (extra->>'sent_at_ns')::bigint,
                           (extract(epoch FROM received_at) * 1e9)::bigint
                    FROM telemetry_elevator WHERE seq >= %s AND seq < %s
                """, (index * SEQ_PHASE, (index + 1) * SEQ_PHASE)).fetchall()
                data = np.array(rows, dtype=np.int64).reshape(-1, 3)
                xids = np.unique(data[:, 0]).tolist()
                commits = watcher.commit_times(xids)
                committed = np.array([commits.get(x, -1) for x in data[:, 0].tolist()], dtype=np.int64)
                known = committed > 0
                latency_ms = (committed[known] - data[known, 1]) / 1e6
                start_latency_ms = (data[:, 2] - data[:, 1]) / 1e6
                span = published.last_sent - published.started
                stored_in_window = int(np.count_nonzero(committed[known] <= published.last_sent * 1e9))
                caught_up = (committed[known].max() / 1e9 - published.last_sent) if known.any() else float("nan")
                phase = {
                    "offered_per_s": round(rate(published.messages, span)),
                    "stored_per_s": round(rate(stored_in_window, span)),
                    "p50_ms": _percentile(latency_ms, 50),
                    "p99_ms": _percentile(latency_ms, 99),
                    "max_ms": _percentile(latency_ms, 100),
                    "p50_ms_txn_start": _percentile(start_latency_ms, 50),
                    "p99_ms_txn_start": _percentile(start_latency_ms, 99),
                    "last_commit_after_publishing_s": round(caught_up, 2),
                    "transactions": len(xids),
                    "cpu_cores": live_cpu.get(live_rate, {}),
                }
                if not known.all():
                    phase["rows_without_commit_time"] = int((~known).sum())
                figures[name] = phase
                log(f"{name}: offered {phase['offered_per_s']:,}/s, stored {phase['stored_per_s']:,}/s while "
                    f"publishing (rows committed by the time publishing stopped / publishing time); "
                    f"publish-to-commit p50 {phase['p50_ms']} ms, p99 {phase['p99_ms']} ms, max {phase['max_ms']} ms "
                    f"(from received_at, the transaction's start: p50 {phase['p50_ms_txn_start']} ms, "
                    f"p99 {phase['p99_ms_txn_start']} ms); last commit {caught_up:.2f} s after publishing stopped; "
                    f"{len(xids):,} transactions; CPU cores {phase['cpu_cores']}")
        return figures

    def check_delivery(self, conn: Any) -> dict[str, int]:
        """Lost and duplicated messages: every (device, seq) sent must be stored exactly once."""
        conn.execute("CREATE TEMP TABLE expected (code text, phase int, n int)")
        with conn.cursor() as cursor, cursor.copy("COPY expected (code, phase, n) FROM STDIN") as copy:
            for index, name in enumerate(["drain", *(f"live_{r}" for r in self.settings.live_rates)]):
                for device, n in self.published[name].counts.items():
                    copy.write_row((equipment_code(device), index, n))
        sent, stored, distinct, matched, unexpected = conn.execute(f"""
            WITH e AS (SELECT q.id AS equipment_id, x.phase, x.n FROM expected x JOIN equipment q USING (code))
            SELECT (SELECT sum(n) FROM expected)::bigint,
                   count(*),
                   count(DISTINCT (t.equipment_id, t.seq)),
                   count(DISTINCT (t.equipment_id, t.seq)) FILTER (WHERE t.seq % {SEQ_PHASE} < e.n),
                   count(*) FILTER (WHERE e.n IS NULL OR t.seq % {SEQ_PHASE} >= e.n)
            FROM telemetry_elevator t
            LEFT JOIN e ON e.equipment_id = t.equipment_id AND e.phase = t.seq / {SEQ_PHASE}
        """).fetchone()
        dead = conn.execute("SELECT count(*) FROM dead_letter").fetchone()[0]
        figures = {"sent": int(sent), "stored": int(stored), "lost": int(sent) - int(matched),
                   "duplicated": int(stored) - int(distinct), "unexpected": int(unexpected),
                   "dead_letter_rows": int(dead)}
        log(f"delivery: sent {figures['sent']:,} (all acknowledged by the broker), stored {figures['stored']:,}; "
            f"lost {figures['lost']}, duplicated {figures['duplicated']}, rows nobody sent {figures['unexpected']}, "
            f"dead letters {figures['dead_letter_rows']}")
        return figures


def _split(total: int, parts: int) -> list[tuple[int, int]]:
    """(first, count) slices of range(total) into `parts` nearly equal parts."""
    size, extra = divmod(total, parts)
    slices, first = [], 0
    for number in range(parts):
        count = size + (1 if number < extra else 0)
        slices.append((first, count))
        first += count
    return slices


def _percentile(values: Any, q: float) -> float | None:
    import numpy as np

    return round(float(np.percentile(values, q)), 1) if len(values) else None


def setup_database(config: Config, settings: Settings, stack: ExitStack) -> str:
    """A fresh, migrated database with the fleet registered; dropped when the stack closes."""
    import psycopg

    from semon.db import create_database, drop_database, redact
    from semon.migrate import migrate

    name = f"semon_bench_{os.getpid()}_{secrets.token_hex(3)}"
    started = time.monotonic()
    url = create_database(config.database_url, name)
    stack.callback(drop_database, config.database_url, name)
    migrate(url)
    with psycopg.connect(url) as conn:
        register_fleet(conn, settings.devices)
        conn.execute("ANALYZE equipment")
    log(f"database: {redact(url)} created, migrated, {settings.devices:,} elevators registered "
        f"({time.monotonic() - started:.1f} s); dropped at the end")
    return url


def describe_machine() -> str:
    cpu = "unknown CPU"
    with suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"{os.cpu_count()} CPUs ({cpu}), {memory_gb:.0f} GiB RAM, Python {platform.python_version()}, "
            f"load average {load}")


def check_targets(results: dict[str, Any], settings: Settings) -> dict[str, bool]:
    """Each target the run measured, met or not; a target whose phase did not run is left out."""
    live_2000 = results.get("live_2000", {})
    live_max = results.get(f"live_{max(settings.live_rates)}", {}) if settings.live_rates else {}
    targets = {
        f"drain_per_s >= {TARGET_DRAIN_PER_S}": results["drain_per_s"] >= TARGET_DRAIN_PER_S,
        f"drain_ratio >= {TARGET_DRAIN_RATIO}": results["drain_ratio"] >= TARGET_DRAIN_RATIO,
        "0 lost": results["lost"] == 0,
        "0 duplicated": results["duplicated"] == 0,
        f"RSS < {TARGET_RSS_MB} MB": results["ingester_peak_rss_mb"] < TARGET_RSS_MB,
    }
    if live_max and max(settings.live_rates) >= TARGET_LIVE_RATE:
        # Sustained: the ingester committed (nearly) everything offered while it was offered.
        targets[f"live {TARGET_LIVE_RATE}/s sustained"] = live_max["stored_per_s"] >= 0.97 * TARGET_LIVE_RATE
    if live_2000.get("p99_ms") is not None:
        targets[f"p99 < {TARGET_P99_MS_AT_2000} ms at 2000/s"] = live_2000["p99_ms"] < TARGET_P99_MS_AT_2000
    return targets


def main() -> int:
    settings = Settings.from_env()
    config = load_config()
    started = time.monotonic()
    log(f"semon ingest benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    log(f"machine: {describe_machine()}")
    # SIGTERM must unwind like Ctrl-C so that the database is dropped and the broker stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    with ExitStack() as stack:
        db_url = setup_database(config, settings, stack)
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="semon-bench-")))
        broker = PrivateBroker(directory)
        broker.start()
        stack.callback(broker.stop)
        log(f"broker: mosquitto on {broker.url} with scripts/mosquitto.conf.in, persistence in {directory}")
        bench = Bench(config, settings, db_url, broker)
        stack.callback(_cleanup, bench)
        results = bench.run()
    results["targets"] = check_targets(results, settings)
    results["seconds"] = round(time.monotonic() - started)
    for target, met in results["targets"].items():
        log(f"target {target}: {'met' if met else 'MISSED'}")
    # The headline figures first, then the context that explains them.
    headline = ["drain_per_s", "bare_subscriber_per_s", "drain_ratio",
                *(f"live_{r}" for r in settings.live_rates), "lost", "duplicated", "ingester_peak_rss_mb"]
    ordered = {key: results[key] for key in headline if key in results}
    ordered.update({key: value for key, value in results.items() if key not in ordered})
    log(json.dumps(ordered))
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _cleanup(bench: Bench) -> None:
    """Stop whatever the run started and is still running (on success this finds nothing to do)."""
    bench._sampling.clear()
    bench.stop_profiles()
    if bench.ingester is not None and bench.ingester.running():
        bench.ingester.stop(timeout_s=15)
    for child in bench.children:
        if child.is_alive():
            child.terminate()
            child.join(timeout=5)


if __name__ == "__main__":
    sys.exit(main())
