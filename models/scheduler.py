"""The scheduler: periodic jobs, each run under a PostgreSQL advisory lock so replicas never overlap."""

from __future__ import annotations

import logging
import signal
import zlib
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from apscheduler.schedulers.background import BackgroundScheduler

from alerts.channels import channels_from_config
from alerts.delivery import deliver
from alerts.delivery import settings_from_config as delivery_settings
from alerts.escalation import escalate
from alerts.reminders import remind_unacknowledged
from alerts.reminders import settings_from_config as reminder_settings
from models.compliance import rules_from_config, scan_compliance
from models.fault_events import fault_labels, fault_severities
from models.figures import record_daily_figures
from models.presence import offline_after, presence_job
from models.rollup import rollup
from models.rollup import settings_from_config as rollup_settings
from models.rule_expiry import expire_pending
from models.rules.engine import Detector
from models.rules.settings import settings_from_config
from models.wear.jobs import score_job, train_job
from models.wear.scoring import settings_from_config as wear_settings
from models.wear.store import ModelCache
from semon.clock import today
from semon.config import Config
from semon.db import DatabaseUnavailable, connect

log = logging.getLogger(__name__)

Job = Callable[[psycopg.Connection, datetime], object]


def own_transactions(job: Job) -> Job:
    """Mark a job that opens its own short transactions (a long computation between them): run_locked gives it an
    autocommit connection and holds its lock on the session, so it keeps no transaction open meanwhile."""
    job.own_transactions = True  # type: ignore[attr-defined]
    return job


def run_locked(config: Config, name: str, job: Job, now: datetime | None = None) -> object | None:
    """Run `job` in one transaction if no other replica holds its lock; None when skipped. A job marked
    own_transactions runs on an autocommit connection under a session lock instead."""
    key = zlib.crc32(name.encode())  # a stable lock key per job name
    try:
        if getattr(job, "own_transactions", False):
            with connect(config.database_url, autocommit=True, time_zone=config.time_zone) as conn:
                if not conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,)).fetchone()["ok"]:
                    log.debug("%s: another replica is running it", name)
                    return None
                try:
                    return job(conn, now or datetime.now(UTC))
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        with connect(config.database_url, time_zone=config.time_zone) as conn, conn.transaction():
            locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok", (key,)).fetchone()["ok"]
            if not locked:
                log.debug("%s: another replica is running it", name)
                return None
            return job(conn, now or datetime.now(UTC))
    except (DatabaseUnavailable, psycopg.OperationalError) as exc:
        log.warning("%s: database unavailable (%s); will retry on the next run", name, str(exc).strip()[:200])
        return None


def _rule_expiry(config: Config) -> Job:
    detector: list[Detector] = []  # built on the first run: the severities are the database's fault_codes

    def run(conn: psycopg.Connection, now: datetime) -> int:
        if not detector:
            detector.append(Detector(settings_from_config(config), fault_severities(conn), fault_labels(conn)))
        return expire_pending(conn, now, detector[0])

    return run


def job_table(config: Config) -> dict[str, tuple[Job, float]]:
    """Each job with its interval in seconds."""
    rules = rules_from_config(config)
    silence = offline_after(config)
    windows = rollup_settings(config)
    wear = wear_settings(config)
    wear_models = ModelCache()  # each model version is read from the database once
    delivery, delivery_channels = delivery_settings(config), channels_from_config(config)
    reminders = reminder_settings(config)
    return {
        "presence": (lambda conn, now: presence_job(conn, now, silence), config.scheduler_interval_s),
        # Dwells of the telemetry rules that a quiet monitor leaves running (docs/rules.md).
        **({"rule_expiry": (_rule_expiry(config), config.rules_expiry_interval_s)} if config.rules_enabled else {}),
        # Every check of the rule table (docs/compliance.md): overdue alerts, resolutions and due-soon reminders,
        # judged on the same "today" as the web pages.
        "compliance": (lambda conn, now: scan_compliance(conn, today(conn, now), now, rules,
                                                           config.compliance_registration_grace_days),
                       config.compliance_interval_s),
        # Re-running a day replaces its rows, so hourly keeps today's figures fresh and catches a missed midnight.
        "compliance_daily": (lambda conn, now: record_daily_figures(conn, today(conn, now), now=now), 3600.0),
        # Telemetry into per-equipment windows of wear features (docs/rollup.md).
        "rollup": (lambda conn, now: rollup(conn, now, windows), config.rollup_interval_s),
        # The wear models (docs/wear.md): trained on stored windows holding no transaction while fitting, and
        # scoring each window the rollup completes.
        "wear_train": (own_transactions(lambda conn, now: train_job(conn, now, wear)), config.wear_train_interval_s),
        "wear_score": (lambda conn, now: score_job(conn, now, wear, windows, wear_models),
                       config.wear_score_interval_s),
        # The notifications outbox to contacts (docs/delivery.md): sends outside its claiming transactions.
        "delivery": (own_transactions(lambda conn, now: deliver(conn, now, delivery, delivery_channels)),
                     config.delivery_interval_s),
        # Escalation stages and reminders of unacknowledged alerts fall due with time alone (docs/escalation.md).
        "escalation": (escalate, config.scheduler_interval_s),
        "alert_reminders": (lambda conn, now: remind_unacknowledged(conn, now, reminders), config.scheduler_interval_s),
    }


def make_scheduler(config: Config) -> BackgroundScheduler:
    """A scheduler with every job registered; not started."""
    scheduler = BackgroundScheduler(timezone=UTC)
    for name, (job, interval) in job_table(config).items():
        scheduler.add_job(run_locked, "interval", seconds=interval, args=(config, name, job), id=name,
                          name=name, next_run_time=datetime.now(UTC), max_instances=1, coalesce=True)
    return scheduler


def run_scheduler(config: Config) -> None:
    """Run the jobs until SIGINT or SIGTERM."""
    connect(config.database_url).close()  # fail fast with a readable line if the database is not there
    scheduler = make_scheduler(config)
    stopped = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.append(True))
    scheduler.start()
    log.info("scheduler running: %s", ", ".join(j.id for j in scheduler.get_jobs()))
    try:
        while not stopped:
            signal.pause()
    finally:
        scheduler.shutdown(wait=True)
