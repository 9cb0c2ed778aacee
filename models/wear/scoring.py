"""Scoring (docs/wear.md): every window end, each equipment's last `wear_recent_hours` against its own baseline (or
its type's fleet baseline), scored by the type's model; `wear_alert_windows` high scores in a row open a
wear:<component> alert through alerts/store.py, which resolves once a maintenance record follows it and the score is
back to normal.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
from psycopg.rows import tuple_row

from alerts.store import AlertInput, raise_alerts, resolve_alert
from models.risk import WEAR_PREFIX
from models.wear.baseline import (
    DayTable,
    OwnBaseline,
    day_table,
    deviations,
    own_baselines,
    reference,
    rest_days,
    span_days,
    usable_mask,
)
from models.wear.features import COMPONENTS, Sums, daily_sums, features_of, recent_sums
from models.wear.model import explain, high, model_input
from models.wear.store import StoredModel
from semon.config import Config, ConfigError

log = logging.getLogger(__name__)

SOURCE = "anomaly"  # the alert source of models (semon/vocabulary.py ALERT_SOURCES): "Wear model (磨损预警)"
SEVERITY = "medium"
# Baselines of days judged this long ago are dropped: scoring only judges recent windows.
BASELINES_KEPT_DAYS = 3
# After a pause, at most this many windows are judged at once (the latest ones).
MAX_CATCH_UP = timedelta(days=7)
_NOUNS = {"elevator": ("elevator", "电梯", "梯"), "escalator": ("escalator", "自动扶梯", "梯"),
          "boiler": ("boiler", "锅炉", "台")}


@dataclass(frozen=True)
class WearSettings:
    """The wear models' settings (docs/configuration.md)."""

    width_s: int  # the rollup windows read (rollup_bucket_s)
    time_zone: str  # days are the users' days
    baseline_days: int
    min_history_days: int
    recent_hours: int
    trim_windows: int  # each feature's windows of most excess left out of a day or period (features._period_sums)
    alert_windows: int
    score_threshold: float  # a score at least this is high (1.0: the model's calibrated threshold)
    train_days: int
    detector: str

    @property
    def width(self) -> timedelta:
        return timedelta(seconds=self.width_s)


def settings_from_config(config: Config) -> WearSettings:
    """The wear settings from the configuration; a period judged shorter than a window is an error."""
    if config.wear_recent_hours * 3600 < config.rollup_bucket_s:
        raise ConfigError(f"wear_recent_hours = {config.wear_recent_hours}: must cover at least one rollup window "
                          f"(rollup_bucket_s = {config.rollup_bucket_s})")
    return WearSettings(width_s=config.rollup_bucket_s, time_zone=config.time_zone,
                        baseline_days=config.wear_baseline_days, min_history_days=config.wear_min_history_days,
                        recent_hours=config.wear_recent_hours, trim_windows=config.wear_trim_windows,
                        alert_windows=config.wear_alert_windows,
                        score_threshold=config.wear_score_threshold, train_days=config.wear_train_days,
                        detector=config.wear_detector)


def window_end(at: datetime, settings: WearSettings) -> datetime:
    """The end of the last window complete at `at`: windows start on the users' midnight (docs/rollup.md)."""
    origin = datetime(2000, 1, 3, tzinfo=ZoneInfo(settings.time_zone))
    return origin + (at - origin) // settings.width * settings.width


def judged_day(ends_at: datetime, settings: WearSettings) -> date:
    """The day a period ending at ends_at starts on, in the users' zone: its baseline is the days before it."""
    return (ends_at - timedelta(hours=settings.recent_hours)).astimezone(ZoneInfo(settings.time_zone)).date()


def rest_share(ends_at: datetime, settings: WearSettings) -> float:
    """The share of the period judged that ends at ends_at which falls on rest days, in the users' zone."""
    zone = ZoneInfo(settings.time_zone)
    hours = [(ends_at - timedelta(hours=h + 0.5)).astimezone(zone).date() for h in range(settings.recent_hours)]
    return float(np.mean(rest_days(np.array(hours, dtype="datetime64[D]"))))


@dataclass(frozen=True)
class Judged:
    """Every (equipment, window end) judged in one run, in equipment then time order."""

    equipment_ids: np.ndarray  # (m,)
    ends: list[datetime]  # (m,)
    values: np.ndarray  # (m, f)
    normal: np.ndarray  # (m, f) the reference median
    z: np.ndarray  # (m, f) signed deviations, in scales of the reference
    u: np.ndarray  # (m, f) the same in the fleet's normal spreads (WearModel.normalised)
    own: np.ndarray  # (m, f) judged against its own baseline (else the fleet's)
    scores: np.ndarray  # (m,)
    high: np.ndarray  # (m,) the score is high (model.high)


def judge(conn: psycopg.Connection, equipment_type: str, ends: Sequence[datetime], stored: StoredModel,
          settings: WearSettings) -> Judged:
    """Score every equipment with windows in the hours before each end in `ends`; the own baselines it needs and
    finds none of in wear_baselines are computed and stored there.

    The periods are summed whole first; those that score high are summed again without each feature's
    wear_trim_windows windows of most excess, and judged by that. Leaving them out only moves a feature away from
    wear, so a period not high whole is not high trimmed: only the few high ones pay for the trimming."""
    sums = recent_sums(conn, equipment_type, ends, width_s=settings.width_s, hours=settings.recent_hours, trim=0)
    judged = _judge_sums(conn, sums, stored, settings)
    if not settings.trim_windows or not judged.high.any():
        return judged
    again = np.nonzero(judged.high)[0]
    trimmed = _judge_sums(conn, recent_sums(
        conn, equipment_type, sorted({judged.ends[k] for k in again}), width_s=settings.width_s,
        hours=settings.recent_hours, trim=settings.trim_windows,
        equipment_ids=np.unique(judged.equipment_ids[again]).tolist()),
        stored, settings)
    row_of = {(int(e), t): k for k, (e, t) in enumerate(zip(trimmed.equipment_ids, trimmed.ends, strict=True))}
    arrays = {name: getattr(judged, name).copy() for name in ("values", "normal", "z", "u", "own", "scores", "high")}
    for k in again:
        t = row_of.get((int(judged.equipment_ids[k]), judged.ends[k]))
        if t is None:  # nothing left once trimmed (a period of one window)
            arrays["high"][k] = False
            continue
        for name, array in arrays.items():
            array[k] = getattr(trimmed, name)[t]
    return Judged(judged.equipment_ids, judged.ends, **arrays)


def _judge_sums(conn: psycopg.Connection, sums: Sums, stored: StoredModel, settings: WearSettings) -> Judged:
    values = sums.values()
    keep = ~np.all(np.isnan(values), axis=1)
    ids, den, sample_s = sums.equipment_ids[keep], sums.den[keep], sums.sample_s()[keep]
    # A run judges a few window ends for many equipment: each end's time, day and rest share are worked out once.
    ends, end_of = np.unique(sums.periods[keep].astype("datetime64[s]").astype("int64"), return_inverse=True)
    zone = ZoneInfo(settings.time_zone)
    end_at = [datetime.fromtimestamp(int(s), zone) for s in ends]
    at = [end_at[k] for k in end_of.tolist()]
    values = values[keep]
    days = np.array([judged_day(t, settings) for t in end_at], dtype="datetime64[D]")[end_of]
    own = cached_baselines(conn, sums.equipment_type, ids, days, settings)
    shares = np.array([rest_share(t, settings) for t in end_at])[end_of]
    median, scale = reference(own, stored.model.fleet, shares.reshape(-1, 1))
    z = deviations(sums.equipment_type, values, den, median[:, 0], scale[:, 0], sample_s)
    usable = own.usable[:, 0]
    u, scores = stored.model.normalised(z, usable), stored.model.score(z, usable)
    return Judged(ids, at, values, median[:, 0], z, u, usable, scores, high(scores, u, settings.score_threshold))


def cached_baselines(conn: psycopg.Connection, equipment_type: str, equipment_ids: np.ndarray, days: np.ndarray,
                     settings: WearSettings) -> OwnBaseline:
    """Own baselines of (equipment, day) pairs as (m, 1, f) arrays, from wear_baselines or computed and stored."""
    names = [f.name for f in features_of(equipment_type)]
    pairs = sorted(set(zip(equipment_ids.tolist(), days.astype(object).tolist(), strict=True)))
    found: dict[tuple[int, date], tuple] = {}
    if pairs:
        rows = conn.cursor(row_factory=tuple_row).execute("""
            SELECT equipment_id, day, median, rest_median, scale, known_days, history FROM wear_baselines
             WHERE width_s = %(width_s)s AND day = ANY(%(days)s) AND equipment_id = ANY(%(ids)s)
               AND features = %(features)s""",
            {"ids": sorted({p[0] for p in pairs}), "days": sorted({p[1] for p in pairs}),
             "width_s": settings.width_s, "features": names}).fetchall()
        wanted = set(pairs)
        found = {(r[0], r[1]): r[2:] for r in rows if (r[0], r[1]) in wanted}
    missing = [p for p in pairs if p not in found]
    if missing:
        found |= _compute_baselines(conn, equipment_type, missing, settings)
    f = len(names)
    rows = [found[(int(i), d)] for i, d in zip(equipment_ids.tolist(), days.astype(object).tolist(), strict=True)]
    median = np.array([r[0] for r in rows], dtype=float).reshape(-1, 1, f)
    rest_median = np.array([r[1] for r in rows], dtype=float).reshape(-1, 1, f)
    scale = np.array([r[2] for r in rows], dtype=float).reshape(-1, 1, f)
    known = np.array([r[3] for r in rows], dtype=int).reshape(-1, 1, f)
    history = np.array([r[4] for r in rows], dtype=bool).reshape(-1, 1)
    return OwnBaseline(median, rest_median, scale, known, history, usable_mask(history, known, settings.baseline_days))


def _compute_baselines(conn: psycopg.Connection, equipment_type: str, pairs: list[tuple[int, date]],
                       settings: WearSettings) -> dict[tuple[int, date], tuple]:
    """Compute and store the own baselines of (equipment, day) pairs; one read of the daily sums they need."""
    span = span_days(settings.baseline_days, settings.min_history_days)
    ids = sorted({p[0] for p in pairs})
    first_day = min(p[1] for p in pairs) - timedelta(days=span)
    end_day = max(p[1] for p in pairs)
    sums = daily_sums(conn, equipment_type, first_day, end_day, width_s=settings.width_s,
                      time_zone=settings.time_zone, trim=settings.trim_windows, equipment_ids=ids)
    table = day_table(sums, first_day, end_day)
    # Equipment without a single day known yet still gets a row on the grid (all unknown: no history).
    table = _with_rows(table, np.array(ids, dtype=np.int64))
    targets = sorted({p[1] for p in pairs})
    own = own_baselines(table, np.array([(d - first_day).days for d in targets]), settings.baseline_days,
                        settings.min_history_days)
    row_of = {int(e): i for i, e in enumerate(table.equipment_ids)}
    col_of = {d: j for j, d in enumerate(targets)}
    names = [f.name for f in features_of(equipment_type)]
    # Rows of these days computed for another feature list (before the code changed) are replaced.
    conn.execute("DELETE FROM wear_baselines WHERE width_s = %s AND day = ANY(%s) AND equipment_id = ANY(%s)",
                 (settings.width_s, targets, ids))
    result = {}
    with conn.cursor().copy("COPY wear_baselines (equipment_id, width_s, day, features, median, rest_median, scale,"
                            " known_days, history) FROM STDIN") as copy:
        for equipment_id, day in pairs:
            i, j = row_of[equipment_id], col_of[day]
            entry = (own.median[i, j].tolist(), own.rest_median[i, j].tolist(), own.scale[i, j].tolist(),
                     own.known_days[i, j].tolist(), bool(own.history[i, j]))
            result[(equipment_id, day)] = entry
            copy.write_row((equipment_id, settings.width_s, day, names, *entry))
    return result


def _with_rows(table: DayTable, ids: np.ndarray) -> DayTable:
    extra = np.setdiff1d(ids, table.equipment_ids)
    if not len(extra):
        return table
    blank = np.full((len(extra), *table.values.shape[1:]), np.nan)
    return DayTable(table.equipment_type, np.concatenate([table.equipment_ids, extra]), table.first_day,
                    np.concatenate([table.values, blank]), np.concatenate([table.den, np.zeros_like(blank)]),
                    np.concatenate([table.sample_s, np.full((len(extra), table.sample_s.shape[1]), np.nan)]))


def score_ends(conn: psycopg.Connection, equipment_type: str, ends: Sequence[datetime], stored: StoredModel,
               settings: WearSettings) -> dict[str, int]:
    """Judge each window end in `ends` (in order), store the scores, open and resolve wear alerts; the counts."""
    ends = sorted(ends)
    if not ends:
        return {"scored": 0, "raised": 0, "resolved": 0}
    judged = judge(conn, equipment_type, ends, stored, settings)
    streaks = _streaks(conn, judged, judged.high, ends[0], settings)
    features = features_of(equipment_type)
    wear_side = model_input(judged.u, wear_side_only=True)
    components = [features[i].component for i in np.argmax(wear_side, axis=1)] if len(wear_side) else []
    # The rows as COPY text, made here: psycopg's per-row dumping of the deviation arrays took a fifth of a run.
    ends_text = {t: t.isoformat() for t in set(judged.ends)}
    flag = {True: "t", False: "f"}
    lines = [f"{int(judged.equipment_ids[k])}\t{settings.width_s}\t{ends_text[judged.ends[k]]}\t{stored.id}\t"
             f"{float(judged.scores[k])!r}\t{flag[bool(judged.high[k])]}\t{int(streaks[k])}\t{components[k]}\t"
             f"{flag[bool(judged.own[k].any())]}\t{{{','.join(map(repr, wear_side[k].round(3).tolist()))}}}\n"
             for k in range(len(judged.ends))]
    with conn.cursor().copy("COPY wear_scores (equipment_id, width_s, ends_at, model_id, score, high, streak,"
                            " component, own_baseline, deviations) FROM STDIN") as copy:
        copy.write("".join(lines))
    raised = _raise(conn, equipment_type, judged, streaks, stored, settings)
    resolved = _resolve(conn, equipment_type, judged, settings)
    return {"scored": len(judged.ends), "raised": raised, "resolved": resolved}


def _streaks(conn: psycopg.Connection, judged: Judged, high: np.ndarray, first_end: datetime,
             settings: WearSettings) -> np.ndarray:
    """Consecutive high scores up to each judged window, carried on from the windows judged before."""
    before = dict(conn.cursor(row_factory=tuple_row).execute("""
        SELECT DISTINCT ON (equipment_id) equipment_id, streak FROM wear_scores
         WHERE width_s = %s AND equipment_id = ANY(%s) AND ends_at < %s AND ends_at >= %s
         ORDER BY equipment_id, ends_at DESC""", (settings.width_s, np.unique(judged.equipment_ids).tolist(),
                                                  first_end, first_end - MAX_CATCH_UP)).fetchall())
    streaks = np.zeros(len(high), dtype=int)
    previous, last = None, 0
    for k, equipment_id in enumerate(judged.equipment_ids.tolist()):
        if equipment_id != previous:
            previous, last = equipment_id, before.get(equipment_id, 0)
        last = last + 1 if high[k] else 0
        streaks[k] = last
    return streaks


def _raise(conn: psycopg.Connection, equipment_type: str, judged: Judged, streaks: np.ndarray, stored: StoredModel,
           settings: WearSettings) -> int:
    alerts: dict[tuple[int, str], AlertInput] = {}
    for k in np.nonzero(streaks >= settings.alert_windows)[0]:
        why = explain(equipment_type, judged.u[k])
        key = (int(judged.equipment_ids[k]), WEAR_PREFIX + why.component)
        if key not in alerts:  # the first window of the run that qualifies: when the alert opens
            alerts[key] = AlertInput(key[0], key[1], SEVERITY, message(equipment_type, judged, k, settings),
                                     judged.ends[k], detail(equipment_type, judged, k, stored, settings))
    if not alerts:
        return 0
    return raise_alerts(conn, SOURCE, alerts.values(), repeat=False).raised


def message(equipment_type: str, judged: Judged, k: int, settings: WearSettings) -> str:
    """What a technician reads: the component, its features that moved and by how much, over which period."""
    why = explain(equipment_type, judged.u[k])
    index = {f.name: (i, f) for i, f in enumerate(features_of(equipment_type))}
    phrases = []
    for name, _ in why.features:
        i, feature = index[name]
        en, zh = feature.phrase(float(judged.values[k, i]), float(judged.normal[k, i]))
        phrases.append(f"{en} ({zh})")
    noun, noun_zh, measure = _NOUNS[equipment_type]
    if _own(equipment_type, judged, k):
        against = f"this {noun}'s own normal of the {settings.baseline_days} days before " \
                  f"(与本{measure}前{settings.baseline_days}天相比)"
    else:
        against = f"the normal of the fleet's {noun}s, as it has less than {settings.min_history_days} days of " \
                  f"history (与同类{noun_zh}相比，本{measure}数据不足{settings.min_history_days}天)"
    return f"{COMPONENTS[why.component]}: {'; '.join(phrases)}; over the last {settings.recent_hours} h " \
           f"(近{settings.recent_hours}小时), against {against}"


def _own(equipment_type: str, judged: Judged, k: int) -> bool:
    """Whether the features an alert names were judged against the equipment's own baseline."""
    index = {f.name: i for i, f in enumerate(features_of(equipment_type))}
    return all(judged.own[k, index[name]] for name, _ in explain(equipment_type, judged.u[k]).features)


def detail(equipment_type: str, judged: Judged, k: int, stored: StoredModel, settings: WearSettings) -> dict[str, Any]:
    """The figures behind an alert: score, component and each named feature's value, normal and deviation."""
    why = explain(equipment_type, judged.u[k])
    index = {f.name: i for i, f in enumerate(features_of(equipment_type))}
    return {"component": why.component, "score": round(float(judged.scores[k]), 3),
            "model_version": stored.version, "baseline": "own" if _own(equipment_type, judged, k) else "fleet",
            "period_hours": settings.recent_hours,
            "features": {name: {"value": round(float(judged.values[k, index[name]]), 4),
                                "normal": round(float(judged.normal[k, index[name]]), 4),
                                "deviation": round(dev, 2)} for name, dev in why.features}}


def _resolve(conn: psycopg.Connection, equipment_type: str, judged: Judged, settings: WearSettings) -> int:
    """Resolve the open wear alerts of equipment maintained since the alert opened whose latest score is normal."""
    latest: dict[int, int] = {}
    for k, equipment_id in enumerate(judged.equipment_ids.tolist()):
        latest[equipment_id] = k  # rows are in time order per equipment
    rows = conn.cursor(row_factory=tuple_row).execute("""
        SELECT a.equipment_id, a.kind FROM alerts a
         WHERE a.state <> 'resolved' AND a.source = %(source)s AND a.kind LIKE %(kinds)s
           AND a.equipment_id = ANY(%(ids)s)
           AND EXISTS (SELECT FROM maintenance_records m
                        WHERE m.equipment_id = a.equipment_id
                          AND m.performed_on >= (a.first_seen AT TIME ZONE %(zone)s)::date)""",
        {"source": SOURCE, "kinds": WEAR_PREFIX + "%", "ids": list(latest), "zone": settings.time_zone}).fetchall()
    resolved = 0
    for equipment_id, kind in rows:
        k = latest[equipment_id]
        if not judged.high[k] and resolve_alert(conn, equipment_id=equipment_id, kind=kind, resolved_at=judged.ends[k]):
            resolved += 1
    return resolved


def forget_old_baselines(conn: psycopg.Connection, today: date) -> int:
    """Drop baselines of days no longer judged."""
    return conn.execute("DELETE FROM wear_baselines WHERE day < %s",
                        (today - timedelta(days=BASELINES_KEPT_DAYS + 1),)).rowcount
