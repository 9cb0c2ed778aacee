"""Each equipment against its own normal (docs/wear.md): daily values on a grid, the median and spread of the days
before the period judged — working days and rest days each with their own level, as a mall's elevator is busier
and its motor warmer at weekends — the type's fleet baseline for equipment with too little history, and the signed
deviations a model reads. Pure numpy: a benchmark calls these on arrays without a database.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date

import numpy as np

from models.wear.features import Sums, features_of

# 1.4826 × MAD estimates the standard deviation of normally distributed values.
MAD_TO_SD = 1.4826
# A feature's own baseline needs at least this share of the baseline days known (else the fleet's is used).
MIN_KNOWN_SHARE = 0.5
# How far before the first day of history the grid reaches to tell an equipment's history (see own_baselines).
HISTORY_SLACK_DAYS = 7
# The days of rest (Saturday and Sunday: Monday is 0). A kind of day has its own level in a baseline that holds at
# least MIN_KIND_DAYS of it; otherwise the level of all the baseline's days stands for it.
REST_WEEKDAYS = (5, 6)
MIN_KIND_DAYS = 3


def rest_days(days: np.ndarray) -> np.ndarray:
    """Whether each local day (datetime64[D]) is a day of rest."""
    weekday = (np.asarray(days, dtype="datetime64[D]").astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    return np.isin(weekday, REST_WEEKDAYS)


@dataclass(frozen=True)
class DayTable:
    """One type's daily values on a dense grid: equipment × consecutive local days × features, NaN when unknown."""

    equipment_type: str
    equipment_ids: np.ndarray  # (n,)
    first_day: np.datetime64  # the grid's first day (datetime64[D])
    values: np.ndarray  # (n, days, f)
    den: np.ndarray  # (n, days, f): each value's denominator sum (how many door cycles, trips ... it counts)
    sample_s: np.ndarray  # (n, days): the mean seconds between the day's samples, NaN unknown

    @property
    def days(self) -> np.ndarray:
        """The grid's local days (datetime64[D])."""
        return self.first_day + np.arange(self.values.shape[1])

    def index_of(self, day: date | np.datetime64) -> int:
        """The grid index of a day."""
        return int((np.datetime64(day, "D") - self.first_day).astype(int))


def day_table(sums: Sums, first_day: date, end_day: date) -> DayTable:
    """Daily sums (features.daily_sums) laid on a grid of the days in [first_day, end_day)."""
    first = np.datetime64(first_day, "D")
    count = int((np.datetime64(end_day, "D") - first).astype(int))
    ids, row_of = np.unique(sums.equipment_ids, return_inverse=True)
    values = np.full((len(ids), count, len(features_of(sums.equipment_type))), np.nan)
    den = np.zeros_like(values)
    sample_s = np.full(values.shape[:2], np.nan)
    day_of = (sums.periods.astype("datetime64[D]") - first).astype(int)
    inside = (day_of >= 0) & (day_of < count)
    values[row_of[inside], day_of[inside]] = sums.values()[inside]
    den[row_of[inside], day_of[inside]] = sums.den[inside]
    sample_s[row_of[inside], day_of[inside]] = sums.sample_s()[inside]
    return DayTable(sums.equipment_type, ids, first, values, den, sample_s)


@dataclass(frozen=True)
class OwnBaseline:
    """Per equipment and target day: each feature's level on working days and on rest days over the baseline days
    before it, and its spread about them."""

    median: np.ndarray  # (n, k, f): the median of the working days
    rest_median: np.ndarray  # (n, k, f): the median of the rest days
    scale: np.ndarray  # (n, k, f): MAD_TO_SD × the median absolute deviation of the days from their kind's median
    known_days: np.ndarray  # (n, k, f)
    history: np.ndarray  # (n, k): the equipment has at least min_history_days of history before the day
    usable: np.ndarray  # (n, k, f): history, and enough known days of the feature


def span_days(baseline_days: int, min_history_days: int) -> int:
    """How many days before the first target day a grid must start for own_baselines."""
    return max(baseline_days, min_history_days) + HISTORY_SLACK_DAYS


def _nanmedian(values: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-unknown slice is NaN, as meant
        return np.nanmedian(values, axis=axis)


def own_baselines(table: DayTable, targets: np.ndarray, baseline_days: int,
                  min_history_days: int) -> OwnBaseline:
    """The own baseline of each equipment for each target day index: the baseline_days days before it.

    An equipment has its history from its first day with any feature known on the grid; the grid starts
    span_days() before the first target, so a first day on the grid's first days means "at least that long ago".
    """
    targets = np.asarray(targets, dtype=int)
    if targets.size and targets.min() < baseline_days:
        raise ValueError(f"the grid must start {baseline_days} days before the first day judged")
    windows = np.lib.stride_tricks.sliding_window_view(table.values, baseline_days, axis=1)  # (n, d-B+1, f, B)
    before = windows[:, targets - baseline_days]  # the B days before each target: (n, k, f, B)
    day_index = targets[:, None] - baseline_days + np.arange(baseline_days)[None, :]  # (k, B)
    rest = rest_days(table.days[day_index])[None, :, None, :]  # (1, k, 1, B)
    overall = _nanmedian(before, axis=-1)
    levels = []
    for kind in (~rest, rest):
        of_kind = np.where(kind, before, np.nan)
        enough = np.sum(~np.isnan(of_kind), axis=-1) >= MIN_KIND_DAYS
        levels.append(np.where(enough, _nanmedian(of_kind, axis=-1), overall))
    median, rest_median = levels
    level = np.where(rest, rest_median[..., None], median[..., None])
    scale = MAD_TO_SD * _nanmedian(np.abs(before - level), axis=-1)
    known_days = np.sum(~np.isnan(before), axis=-1)
    any_known = ~np.all(np.isnan(table.values), axis=2)  # (n, d)
    first = np.where(any_known.any(axis=1), np.argmax(any_known, axis=1), table.values.shape[1])
    history = first[:, None] <= targets[None, :] - min_history_days
    return OwnBaseline(median, rest_median, scale, known_days, history,
                       usable_mask(history, known_days, baseline_days))


def usable_mask(history: np.ndarray, known_days: np.ndarray, baseline_days: int) -> np.ndarray:
    """Where an own baseline is used: the equipment has the history, and the feature enough known days."""
    return history[..., None] & (known_days >= max(1, int(np.ceil(MIN_KNOWN_SHARE * baseline_days))))


@dataclass(frozen=True)
class FleetBaseline:
    """A type's normal across its fleet, learnt at training: for equipment without history of its own."""

    median: np.ndarray  # (f,)
    scale: np.ndarray  # (f,): the spread across the fleet's equipment and days
    floor: np.ndarray  # (f,): no scale, own or fleet, is smaller (a quiet week must not make noise a wear)


def reference(own: OwnBaseline, fleet: FleetBaseline, rest_share: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and scale each value is judged against: its own where usable — the levels of working and rest days
    mixed as the period judged is, `rest_share` (n, k) of it on rest days — else the fleet's; floored."""
    share = np.asarray(rest_share, dtype=float)[..., None]
    median = np.where(own.usable, (1.0 - share) * own.median + share * own.rest_median, fleet.median)
    scale = np.where(own.usable, own.scale, fleet.scale)
    return median, np.maximum(np.nan_to_num(scale, nan=0.0), fleet.floor)


def deviations(equipment_type: str, values: np.ndarray, den: np.ndarray, median: np.ndarray,
               scale: np.ndarray, sample_s: np.ndarray) -> np.ndarray:
    """Signed deviations in scales from the reference, positive in the direction wear moves each feature.

    The scale also holds the error of the period's own counts. For a ratio of counts: the Poisson error of the
    events beyond `counted_from` expected at the normal rate, at least one, over the period's denominator — a quiet
    period's two reopenings in fifty door cycles are no sign of wear; the same share of a busy day's thousand would
    be. For a sampled time (`sampled`): the Poisson error of its count of samples, each `sample_s` (shaped as
    values[..., 0]) long — a Sunday's 200 door cycles seen every 30 s tell a door's speed four times less surely
    than a Monday's 800."""
    features = features_of(equipment_type)
    sign = np.array([1.0 if f.rises else -1.0 for f in features])
    counted = np.array([f.counted_from is not None for f in features])
    sampled = np.array([f.sampled for f in features])
    base = np.array([f.counted_from or 0.0 for f in features])
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.where(den > 0, den, np.nan)
        events = np.maximum((np.nan_to_num(median) - base) * n, 1.0)
        step = np.nan_to_num(np.asarray(sample_s, dtype=float), nan=0.0)[..., None]
        held = np.sqrt(np.maximum(np.nan_to_num(median), 0.0) * step / n)
        counting = np.where(counted, np.sqrt(events) / n, np.where(sampled, held, 0.0))
    total = np.sqrt(scale ** 2 + np.nan_to_num(counting) ** 2)
    return (values - median) / total * sign
