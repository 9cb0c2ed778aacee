"""The wear models' scheduler jobs (docs/wear.md): `wear_train` fits each type's model on stored windows, holding no
transaction while it fits; `wear_score` judges every window the rollup has completed since its last run."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import tuple_row

from models.risk import WEAR_PREFIX
from models.rollup import RollupSettings
from models.wear.baseline import DayTable, day_table, span_days
from models.wear.features import WEAR_TYPES, daily_sums
from models.wear.model import ModelRefused, fit
from models.wear.scoring import (
    MAX_CATCH_UP,
    SOURCE,
    WearSettings,
    forget_old_baselines,
    score_ends,
    window_end,
)
from models.wear.store import ModelCache, StoredModel, save_model
from semon.clock import today as local_today

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def training_table(conn: psycopg.Connection, equipment_type: str, today: date,
                   settings: WearSettings) -> tuple[DayTable, int, np.ndarray]:
    """The grid a type trains on (the wear_train_days days before today, and the span their baselines need), the
    index of its first day judged, and the days excluded as worn: from wear_baseline_days before each wear alert
    opened until it resolved (the wear began before it was seen)."""
    span = span_days(settings.baseline_days, settings.min_history_days)
    first_day = today - timedelta(days=settings.train_days + span)
    table = day_table(daily_sums(conn, equipment_type, first_day, today, width_s=settings.width_s,
                                 time_zone=settings.time_zone, trim=settings.trim_windows), first_day, today)
    worn = conn.cursor(row_factory=tuple_row).execute("""
        SELECT a.equipment_id, (a.first_seen AT TIME ZONE %(zone)s)::date - %(before)s,
               (COALESCE(a.resolved_at, now()) AT TIME ZONE %(zone)s)::date
          FROM alerts a JOIN equipment e ON e.id = a.equipment_id
         WHERE e.type = %(type)s AND a.source = %(source)s AND a.kind LIKE %(kinds)s
           AND (a.resolved_at IS NULL OR a.resolved_at >= %(first)s::date)""",
        {"zone": settings.time_zone, "before": settings.baseline_days, "type": equipment_type, "source": SOURCE,
         "kinds": WEAR_PREFIX + "%", "first": first_day}).fetchall()
    excluded = np.zeros(table.values.shape[:2], dtype=bool)
    row_of = {int(e): i for i, e in enumerate(table.equipment_ids)}
    for equipment_id, start, end in worn:
        if equipment_id in row_of:
            a, b = max(0, (start - first_day).days), min(table.values.shape[1], (end - first_day).days + 1)
            excluded[row_of[equipment_id], a:b] = True
    return table, span, excluded


def train_type(conn: psycopg.Connection, equipment_type: str, today: date, settings: WearSettings) -> StoredModel:
    """Train one type's model on the days before `today` and make it the active version. Reads in one short
    transaction and writes in another; the fit in between holds none, so no other job waits on it."""
    with conn.transaction():
        table, first_target, excluded = training_table(conn, equipment_type, today, settings)
    model, validation = fit(table, first_target, baseline_days=settings.baseline_days,
                            min_history_days=settings.min_history_days, detector=settings.detector, excluded=excluded)
    return save_model(conn, model, train_from=today - timedelta(days=settings.train_days), train_to=today,
                      width_s=settings.width_s, validation=validation,
                      settings={"detector": settings.detector, "recent_hours": settings.recent_hours})


def train_job(conn: psycopg.Connection, now: datetime, settings: WearSettings) -> dict[str, int | None]:
    """Train every type with wear features; the version saved per type (None where there was too little data)."""
    if not conn.autocommit:
        raise RuntimeError("wear_train needs an autocommit connection: it must hold no transaction while it fits")
    today = local_today(conn, now)
    versions: dict[str, int | None] = {}
    for equipment_type in WEAR_TYPES:
        try:
            versions[equipment_type] = train_type(conn, equipment_type, today, settings).version
        except ValueError as exc:  # too little to train on: the previous version stays in use
            log.info("wear_train: %s", exc)
            versions[equipment_type] = None
        except ModelRefused as exc:  # the new file did not read back: the previous version stays in use
            log.warning("wear_train: %s", exc)
            versions[equipment_type] = None
    return versions


def score_job(conn: psycopg.Connection, now: datetime, settings: WearSettings, rollup: RollupSettings,
              models: ModelCache) -> dict[str, dict[str, int]]:
    """Judge, per type, every window end the rollup has completed since the last run (at most MAX_CATCH_UP)."""
    results: dict[str, dict[str, int]] = {}
    for equipment_type in WEAR_TYPES:
        stored = models.active(conn, equipment_type)
        if stored is None:
            results[equipment_type] = {"scored": 0, "raised": 0, "resolved": 0}
            continue
        cursor = f"wear_score:{equipment_type}:{settings.width_s}s"
        conn.execute("INSERT INTO job_cursors (name, position) VALUES (%s, 'epoch') ON CONFLICT DO NOTHING",
                     (cursor,))
        position = _position(conn, cursor, lock=True)
        rolled_up = _position(conn, rollup.cursor(equipment_type), lock=False) or EPOCH
        last = window_end(min(now, rolled_up), settings)
        first = position + settings.width if position and position > EPOCH else last
        first = max(first, last - MAX_CATCH_UP + settings.width)
        ends = [first + i * settings.width for i in range((last - first) // settings.width + 1)] \
            if first <= last and rolled_up > EPOCH else []
        results[equipment_type] = score_ends(conn, equipment_type, ends, stored, settings)
        if ends:
            conn.execute("UPDATE job_cursors SET position = %s WHERE name = %s", (last, cursor))
    forget_old_baselines(conn, local_today(conn, now))
    return results


def _position(conn: psycopg.Connection, name: str, *, lock: bool) -> Any:
    row = conn.cursor(row_factory=tuple_row).execute(
        "SELECT position FROM job_cursors WHERE name = %s" + (" FOR UPDATE" if lock else ""), (name,)).fetchone()
    return row[0] if row else None
