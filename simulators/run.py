"""`semon simulate`: write a scenario's registry CSV, or run its fleet of monitors against the broker."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from semon.config import Config, ConfigError
from simulators.fleet import build_fleet, write_registry_csv
from simulators.publisher import Publisher
from simulators.scenario import load_scenario
from simulators.simulation import FleetSimulation

log = logging.getLogger(__name__)

RATE_LOG_EVERY_S = 60.0
OFFLINE_ACK_TIMEOUT_S = 10.0
CONNECT_WARNING_S = 5.0


@dataclass
class SimulationStats:
    """Messages the broker acknowledged, per channel, plus those dropped or skipped."""

    published: dict[str, int] = field(default_factory=lambda: {"telemetry": 0, "event": 0, "status": 0})
    dropped: int = 0  # the outgoing queue was full while the broker was away
    skipped: int = 0  # telemetry not sent because the simulator fell more than an interval behind

    @property
    def total(self) -> int:
        """All acknowledged messages."""
        return sum(self.published.values())

    def __str__(self) -> str:
        channels = ", ".join(f"{name} {count}" for name, count in self.published.items())
        return f"{self.total} messages ({channels}); {self.dropped} dropped, {self.skipped} skipped"


def write_scenario_registry(scenario: str, seed: int, path: Path) -> int:
    """Generate the fleet of a scenario and write its equipment registry CSV; return the number of rows."""
    return write_registry_csv(build_fleet(load_scenario(scenario), seed, date.today()), path)


def run_simulation(config: Config, scenario: str, *, seed: int, interval_s: float, duration_s: float | None,
                   stop_event: threading.Event | None = None) -> SimulationStats:
    """Publish the fleet's status, telemetry and fault events until stopped, duration_s passes or a signal."""
    simulation = FleetSimulation(load_scenario(scenario), seed, interval_s)
    stop = stop_event or threading.Event()
    stopping = threading.Event()
    stats = SimulationStats()

    def announce_online() -> None:
        # On every (re)connection: the broker may have lost retained messages, and nothing else says online.
        if not stopping.is_set():
            for message in simulation.statuses("online"):
                publisher.publish(message)

    client_id = f"semon-sim-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        publisher = Publisher(config.mqtt_url, client_id, on_connected=announce_online)
    except ValueError as exc:
        raise ConfigError(f"mqtt_url: {exc}") from None
    restore_signals = _stop_on_signals(stop)
    log.info("simulating %d monitors of scenario %s (seed %d), one message each per %.3g s, on %s",
             len(simulation.devices), simulation.scenario.name, seed, interval_s, config.mqtt_url)
    publisher.start()
    try:
        if _wait_for_connection(publisher, stop, duration_s):
            _publish_schedule(simulation, publisher, stats, stop, duration_s)
    except KeyboardInterrupt:
        log.info("interrupted; stopping")
    finally:
        restore_signals()
        stopping.set()
        _go_offline(simulation, publisher)
        publisher.stop()
        stats.published.update(publisher.acked_counts())
        stats.dropped += publisher.dropped
        log.info("simulation stopped: %s", stats)
    return stats


def _wait_for_connection(publisher: Publisher, stop: threading.Event, duration_s: float | None) -> bool:
    started = time.monotonic()
    warned = False
    while not publisher.connected.wait(0.1):
        elapsed = time.monotonic() - started
        if stop.is_set() or (duration_s is not None and elapsed >= duration_s):
            return False
        if not warned and elapsed > CONNECT_WARNING_S:
            log.warning("still waiting for the MQTT broker %s:%s", publisher.host, publisher.port)
            warned = True
    return True


def _publish_schedule(simulation: FleetSimulation, publisher: Publisher, stats: SimulationStats,
                      stop: threading.Event, duration_s: float | None) -> None:
    started = time.monotonic()
    end = float("inf") if duration_s is None else duration_s
    rate = _RateLog(publisher)
    for due in simulation.schedule():
        while True:
            elapsed = time.monotonic() - started
            wait = min(due.at_s, end) - elapsed
            if wait <= 0 or stop.is_set():
                break
            # Wake at least once a second to log the rate and notice a stop promptly.
            stop.wait(min(wait, 1.0))
            rate.maybe_log()
        if stop.is_set() or elapsed >= end:
            return
        if due.action is None and elapsed - due.at_s > simulation.interval_s:
            # Catching up a backlog would be a burst of stale readings; the next step covers the gap.
            stats.skipped += 1
            continue
        try:
            message = simulation.message(due, datetime.now(UTC))
        except ValueError as exc:
            log.warning("skipping fault action %s: %s", due.action, exc)
            continue
        publisher.publish(message)
        rate.maybe_log()


def _go_offline(simulation: FleetSimulation, publisher: Publisher) -> None:
    # One connection cannot carry a last will per monitor, so a clean stop says offline for each of them.
    if not publisher.ever_connected:
        return  # nothing was ever said to be online
    for message in simulation.statuses("offline"):
        publisher.publish(message)
    if not publisher.wait_for_acks(OFFLINE_ACK_TIMEOUT_S):
        log.warning("the broker did not acknowledge everything before stopping; "
                    "%d message(s) were not delivered", publisher.unacknowledged())


class _RateLog:
    """Logs how many messages the broker acknowledged over the last minute."""

    def __init__(self, publisher: Publisher):
        self.publisher = publisher
        self.next_at = time.monotonic() + RATE_LOG_EVERY_S
        self.last_at = time.monotonic()
        self.last_total = 0

    def maybe_log(self) -> None:
        now = time.monotonic()
        if now < self.next_at:
            return
        acked = self.publisher.acked_counts()
        total = sum(acked.values())
        per_s = (total - self.last_total) / (now - self.last_at)
        log.info("published %.1f messages/s over the last minute; totals: %s", per_s,
                 ", ".join(f"{channel} {count}" for channel, count in sorted(acked.items())) or "none")
        self.last_at, self.last_total, self.next_at = now, total, now + RATE_LOG_EVERY_S


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
