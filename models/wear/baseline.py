"""Each equipment against its own normal (docs/wear.md): daily values on a grid, the median and spread of the days
before the period judged, the type's fleet baseline for equipment with too little history, and the signed
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


@dataclass(frozen=True)
class DayTable:
    """One type's daily values on a dense grid: equipment × consecutive local days × features, NaN when unknown."""

    equipment_type: str
    equipment_ids: np.ndarray  # (n,)
    first_day: np.datetime64  # the grid's first day (datetime64[D])
    values: np.ndarray  # (n, days, f)
    den: np.ndarray  # (n, days, f): each value's denominator sum (how many door cycles, trips ... it counts)

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
    day_of = (sums.periods.astype("datetime64[D]") - first).astype(int)
    inside = (day_of >= 0) & (day_of < count)
    values[row_of[inside], day_of[inside]] = sums.values()[inside]
    den[row_of[inside], day_of[inside]] = sums.den[inside]
    return DayTable(sums.equipment_type, ids, first, values, den)


@dataclass(frozen=True)
class OwnBaseline:
    """Per equipment and target day: each feature's median and spread over the baseline days before it."""

    median: np.ndarray  # (n, k, f)
    scale: np.ndarray  # (n, k, f): MAD_TO_SD × the median absolute deviation
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
    median = _nanmedian(before, axis=-1)
    scale = MAD_TO_SD * _nanmedian(np.abs(before - median[..., None]), axis=-1)
    known_days = np.sum(~np.isnan(before), axis=-1)
    any_known = ~np.all(np.isnan(table.values), axis=2)  # (n, d)
    first = np.where(any_known.any(axis=1), np.argmax(any_known, axis=1), table.values.shape[1])
    history = first[:, None] <= targets[None, :] - min_history_days
    return OwnBaseline(median, scale, known_days, history, usable_mask(history, known_days, baseline_days))


def usable_mask(history: np.ndarray, known_days: np.ndarray, baseline_days: int) -> np.ndarray:
    """Where an own baseline is used: the equipment has the history, and the feature enough known days."""
    return history[..., None] & (known_days >= max(1, int(np.ceil(MIN_KNOWN_SHARE * baseline_days))))


@dataclass(frozen=True)
class FleetBaseline:
    """A type's normal across its fleet, learnt at training: for equipment without history of its own."""

    median: np.ndarray  # (f,)
    scale: np.ndarray  # (f,): the spread across the fleet's equipment and days
    floor: np.ndarray  # (f,): no scale, own or fleet, is smaller (a quiet week must not make noise a wear)


def reference(own: OwnBaseline, fleet: FleetBaseline) -> tuple[np.ndarray, np.ndarray]:
    """Median and scale each value is judged against: its own where usable, else the fleet's; floored."""
    median = np.where(own.usable, own.median, fleet.median)
    scale = np.where(own.usable, own.scale, fleet.scale)
    return median, np.maximum(np.nan_to_num(scale, nan=0.0), fleet.floor)


def deviations(equipment_type: str, values: np.ndarray, den: np.ndarray, median: np.ndarray,
               scale: np.ndarray) -> np.ndarray:
    """Signed deviations in scales from the reference, positive in the direction wear moves each feature.

    For a ratio of counts the scale also holds the Poisson error of the period's own counts: the events beyond
    `counted_from` expected at the normal rate, at least one, over the period's denominator. A quiet period's
    two reopenings in fifty door cycles are no sign of wear; the same share of a busy day's thousand would be."""
    features = features_of(equipment_type)
    sign = np.array([1.0 if f.rises else -1.0 for f in features])
    counted = np.array([f.counted_from is not None for f in features])
    base = np.array([f.counted_from or 0.0 for f in features])
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.where(den > 0, den, np.nan)
        events = np.maximum((np.nan_to_num(median) - base) * n, 1.0)
        counting = np.where(counted, np.sqrt(events) / n, 0.0)
    total = np.sqrt(scale ** 2 + np.nan_to_num(counting) ** 2)
    return (values - median) / total * sign
