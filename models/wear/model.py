"""The fleet model of one equipment type (docs/wear.md): it learns what the deviations of healthy equipment from
their own normal look like across the fleet, and scores how far a new deviation vector lies from that.

Pure numpy and scikit-learn: `fit` takes a DayTable, `WearModel.score` and `explain` take deviation arrays; the
database side (models/wear/store.py, jobs.py) and a benchmark call the same functions. Saved with skops, loaded
with its check of the types a file may build, so a model file cannot run code of its own.
"""

from __future__ import annotations

import platform
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import numpy as np
import skops.io as sio
from sklearn.covariance import MinCovDet
from sklearn.ensemble import IsolationForest

from models.wear.baseline import (
    MAD_TO_SD,
    DayTable,
    FleetBaseline,
    deviations,
    own_baselines,
    reference,
    rest_days,
)
from models.wear.features import features_of
from semon.vocabulary import WEAR_DETECTORS

DETECTORS = WEAR_DETECTORS
# Deviations are cut at this many spreads: beyond it a feature is simply far off, and a feature that divided by a
# near zero scale must not swamp the others.
CLIP = 50.0
# A fleet floor of each feature's scale: this share of the typical day-to-day spread of the fleet's own baselines.
FLOOR_SHARE = 0.5
# The fleet's spread of a feature's deviations (in scales) is taken as at least this: it may widen a feature's scale
# (a feature that wanders more than its own baseline says), never narrow it. A feature whose deviations spread less
# than 1 is one whose scale is mostly its floor, the smallest change that means anything (a flue gas 1 °C hotter is
# no wear, however steady the boiler): narrowing it would undo the floor, and turn a steady brake's first half
# millimetre into an alert. Learnt from fewer than SPREAD_SAMPLES known deviations it is not learnt: 1.
MIN_SPREAD = 1.0
SPREAD_SAMPLES = 30
# Training days with a feature this many fleet spreads off are not taken as healthy when the threshold is calibrated
# (nor fitted on): a fleet's history holds wear nobody has flagged yet.
TRIM = 6.0
# A day judged needs this share of its type's features known to be a training sample.
MIN_KNOWN_FEATURES = 0.5
# The calibrated threshold: healthy training days score above it at this rate (docs/wear.md, "Thresholds").
CALIBRATION_RATE = 0.001
# The share of the training days (the latest ones) held out to validate the model fitted on the others.
VALIDATION_SHARE = 0.2
# A score is high only if some feature is at least MIN_DEVIATION spreads off: an alert must have something to tell a
# technician (and in 8 features of normal days, one 4 spreads off is a 1-in-4,000-days event). An alert names its
# component's features at least EXPLAIN_MIN spreads off, farthest first.
MIN_DEVIATION = 4.0
EXPLAIN_MIN = 3.0
EXPLAIN_MAX_FEATURES = 3
FORMAT = 1
# The only types a saved model may build beyond skops' own defaults: the trees of an isolation forest.
TRUSTED_TYPES = ("sklearn.tree._tree.Tree",)


class ModelRefused(Exception):
    """A stored model that cannot be used: unreadable, of unknown types, or for another feature list."""


@dataclass(frozen=True)
class TrainingSet:
    """The deviation vectors of the days judged in a training range, and where each comes from."""

    z: np.ndarray  # (m, f) signed deviations, NaN unknown
    own: np.ndarray  # (m, f) judged against the equipment's own baseline (else the fleet's)
    equipment_ids: np.ndarray  # (m,)
    days: np.ndarray  # (m,) datetime64[D]
    fleet: FleetBaseline


def model_input(u: np.ndarray, *, wear_side_only: bool) -> np.ndarray:
    """What a detector reads of signed deviations: unknown as normal (0), cut at CLIP; for scoring, only the side
    wear moves a feature to (a feature back below its normal after a repair is no wear)."""
    x = np.clip(np.nan_to_num(u, nan=0.0), -CLIP, CLIP)
    return np.maximum(x, 0.0) if wear_side_only else x


def training_set(table: DayTable, first_target: int, baseline_days: int, min_history_days: int,
                 excluded: np.ndarray | None = None) -> TrainingSet:
    """Deviation vectors of every equipment-day from grid index first_target on, against its own baseline or,
    lacking history, the fleet's; `excluded` (n, days) marks days that are no healthy sample (known wear)."""
    features = features_of(table.equipment_type)
    targets = np.arange(first_target, table.values.shape[1])
    own = own_baselines(table, targets, baseline_days, min_history_days)
    values = table.values[:, targets]
    known = ~np.isnan(values)
    healthy = np.ones(values.shape[:2], dtype=bool) if excluded is None else ~excluded[:, targets]
    resolution = np.array([f.resolution for f in features])
    own_scales = np.where(own.usable & known & healthy[..., None], own.scale, np.nan).reshape(-1, len(features))
    floor = np.maximum(resolution, FLOOR_SHARE * np.nan_to_num(_nanmedian(own_scales)))
    pooled = np.where(known & healthy[..., None], values, np.nan).reshape(-1, len(features))
    median = _nanmedian(pooled)
    spread = MAD_TO_SD * _nanmedian(np.abs(pooled - median))
    fleet = FleetBaseline(np.nan_to_num(median), np.maximum(np.nan_to_num(spread), floor), floor)
    ref_median, ref_scale = reference(own, fleet, rest_days(table.days[targets])[None, :])
    z = deviations(table.equipment_type, values, table.den[:, targets], ref_median, ref_scale,
                   table.sample_s[:, targets])
    rows, cols = np.nonzero(healthy & (known.mean(axis=2) >= MIN_KNOWN_FEATURES))
    return TrainingSet(z[rows, cols], own.usable[rows, cols], table.equipment_ids[rows], table.days[targets][cols],
                       fleet)


def _nanmedian(values: np.ndarray) -> np.ndarray:
    """Column medians, NaN for a column with nothing known."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(values, axis=0) if len(values) else np.full(values.shape[1:], np.nan)


def _estimator(detector: str, seed: int) -> Any:
    if detector == "isolation_forest":
        return IsolationForest(n_estimators=100, max_samples="auto", random_state=seed)
    if detector == "robust_covariance":
        return MinCovDet(random_state=seed)
    if detector in ("fleet_zscore", "zscore"):
        return None
    raise ValueError(f"unknown wear detector {detector!r} (known: {', '.join(DETECTORS)})")


def fit_estimator(detector: str, x: np.ndarray, seed: int = 0) -> Any:
    """Fit a detector's estimator on model inputs (both sides); the z-score detectors have none."""
    estimator = _estimator(detector, seed)
    return None if estimator is None else estimator.fit(x)


def raw_scores(detector: str, estimator: Any, x: np.ndarray) -> np.ndarray:
    """How far from normal each row lies, higher is farther, in the detector's own unit."""
    if len(x) == 0:
        return np.zeros(0)
    if detector == "isolation_forest":
        return -estimator.score_samples(x)
    if detector == "robust_covariance":
        return np.sqrt(estimator.mahalanobis(x))
    return x.max(axis=1)


def _calibrate(raw: np.ndarray) -> float:
    """The raw score that healthy training days exceed at CALIBRATION_RATE."""
    if len(raw) == 0:
        raise ValueError("no training sample to calibrate on")
    return float(np.quantile(raw, 1 - CALIBRATION_RATE))


def fleet_spread(z: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Each feature's normal deviation across the fleet's days, (2, f): judged against their own baselines (row 0)
    and against the fleet's (row 1). A robust standard deviation: the median absolute deviation resists the worn
    days among them."""
    rows = []
    for mask in (own, ~own):
        part = np.where(mask, z, np.nan)
        spread = MAD_TO_SD * _nanmedian(np.abs(part - _nanmedian(part)))
        enough = np.sum(~np.isnan(part), axis=0) >= SPREAD_SAMPLES
        rows.append(np.where(enough, np.maximum(np.nan_to_num(spread), MIN_SPREAD), 1.0))
    return np.array(rows)


@dataclass(frozen=True)
class WearModel:
    """One type's fitted model: its features, fleet baseline, detector and calibrated threshold."""

    equipment_type: str
    features: tuple[str, ...]
    detector: str
    estimator: Any
    fleet: FleetBaseline
    spread: np.ndarray  # (2, f) the fleet's normal deviations (fleet_spread); all 1 for the z-score detector
    threshold: float  # raw score that scores 1.0
    info: Mapping[str, Any] = field(default_factory=dict)  # training range, counts, settings

    def normalised(self, z: np.ndarray, own: np.ndarray) -> np.ndarray:
        """Signed deviations in the fleet's normal spreads (own: (m, f), judged against the own baseline)."""
        return z / np.where(own, self.spread[0], self.spread[1])

    def score(self, z: np.ndarray, own: np.ndarray) -> np.ndarray:
        """Scores of signed deviation vectors (m, f): 1.0 is the calibrated threshold, higher is farther off."""
        x = model_input(self.normalised(z, own), wear_side_only=True)
        return raw_scores(self.detector, self.estimator, x) / self.threshold


def high(scores: np.ndarray, u: np.ndarray, threshold: float) -> np.ndarray:
    """Which scores are high: at least `threshold` (wear_score_threshold), with a feature at least MIN_DEVIATION
    spreads off on the wear side."""
    return (scores >= threshold) & (model_input(u, wear_side_only=True).max(axis=1, initial=0.0) >= MIN_DEVIATION)


def _fit_detector(detector: str, z: np.ndarray, own: np.ndarray,
                  seed: int) -> tuple[np.ndarray, Any, float, np.ndarray]:
    """Spread, estimator and threshold fitted on deviation vectors; and which of them counted as healthy."""
    learnt = fleet_spread(z, own)
    spread = np.ones_like(learnt) if detector == "zscore" else learnt
    u = model_input(z / np.where(own, spread[0], spread[1]), wear_side_only=False)
    # Trimmed with the fleet's spreads whatever the detector, so that every detector is calibrated on the same days
    # (the z-score baseline of the validation figures included).
    far = np.abs(model_input(z / np.where(own, learnt[0], learnt[1]), wear_side_only=False))
    healthy = np.all(far <= TRIM, axis=1)
    estimator = fit_estimator(detector, u[healthy], seed)
    threshold = _calibrate(raw_scores(detector, estimator, np.maximum(u[healthy], 0.0)))
    return spread, estimator, threshold, healthy


def fit(table: DayTable, first_target: int, *, baseline_days: int, min_history_days: int, detector: str,
        excluded: np.ndarray | None = None, seed: int = 0) -> tuple[WearModel, dict[str, Any]]:
    """Fit a type's model on the days of the grid from first_target on; returns it and its validation figures."""
    data = training_set(table, first_target, baseline_days, min_history_days, excluded)
    if len(data.z) < 10 or len(np.unique(data.equipment_ids)) < 2:
        raise ValueError(f"{table.equipment_type}: too little to train on ({len(data.z)} equipment-days of "
                         f"{len(np.unique(data.equipment_ids))} equipment; at least 10 of 2 are needed)")
    validation = _validate(data, detector, seed)
    spread, estimator, threshold, healthy = _fit_detector(detector, data.z, data.own, seed)
    info = {"equipment_count": int(len(np.unique(data.equipment_ids))), "samples": int(len(data.z)),
            "trimmed": int((~healthy).sum()), "own_baseline_share": round(float(data.own.any(axis=1).mean()), 4),
            "first_day": str(data.days.min()), "last_day": str(data.days.max()),
            "baseline_days": baseline_days, "min_history_days": min_history_days}
    model = WearModel(table.equipment_type, tuple(f.name for f in features_of(table.equipment_type)), detector,
                      estimator, data.fleet, spread, threshold, info)
    return model, validation


def _validate(data: TrainingSet, detector: str, seed: int) -> dict[str, Any]:
    """Fit on the earlier days, score the latest VALIDATION_SHARE: how often days the model has not seen score
    high (all of them, and those within TRIM of normal), for this detector and for the z-score baseline."""
    days = np.unique(data.days)
    figures: dict[str, Any] = {"method": "the latest days held out", "detector": detector, "held_out_days": 0}
    if len(days) < 5:
        return figures
    late = data.days >= days[int(len(days) * (1 - VALIDATION_SHARE))]
    figures["held_out_days"] = int(late.sum())
    learnt = fleet_spread(data.z[~late], data.own[~late])
    far = np.abs(model_input(data.z[late] / np.where(data.own[late], learnt[0], learnt[1]), wear_side_only=False))
    normal = np.all(far <= TRIM, axis=1)
    for name in dict.fromkeys((detector, "zscore")):
        spread, estimator, threshold, _ = _fit_detector(name, data.z[~late], data.own[~late], seed)
        u = data.z[late] / np.where(data.own[late], spread[0], spread[1])
        held = high(raw_scores(name, estimator, model_input(u, wear_side_only=True)) / threshold, u, 1.0)
        figures[f"{name}_high_share"] = round(float(held.mean()), 5)
        figures[f"{name}_high_share_of_normal_days"] = round(float(held[normal].mean()), 5) if normal.any() else None
    return figures


@dataclass(frozen=True)
class Explanation:
    """Which component a deviation vector points at, and its features that moved, farthest first."""

    component: str
    features: tuple[tuple[str, float], ...]  # (feature, deviation in the fleet's normal spreads)


def explain(equipment_type: str, u: np.ndarray) -> Explanation:
    """The component whose feature deviates farthest on the wear side (u: deviations in the fleet's normal
    spreads, WearModel.normalised), and its features at least EXPLAIN_MIN off, at most EXPLAIN_MAX_FEATURES."""
    features = features_of(equipment_type)
    x = model_input(u, wear_side_only=True)
    component = features[int(np.argmax(x))].component
    mine = sorted(((float(x[i]), f.name) for i, f in enumerate(features) if f.component == component), reverse=True)
    named = [(name, dev) for dev, name in mine if dev >= EXPLAIN_MIN][:EXPLAIN_MAX_FEATURES]
    return Explanation(component, tuple(named) or ((mine[0][1], mine[0][0]),))


def library_versions() -> dict[str, str]:
    """The versions a model was fitted with (a model is refused by no version, but a change is worth knowing)."""
    return {"python": platform.python_version(),
            **{name: version(name) for name in ("scikit-learn", "numpy", "scipy", "skops")}}


def dumps(model: WearModel) -> bytes:
    """The model as skops bytes."""
    return sio.dumps({
        "format": FORMAT, "equipment_type": model.equipment_type, "features": list(model.features),
        "detector": model.detector, "estimator": model.estimator, "threshold": model.threshold,
        "spread": model.spread, "fleet_median": model.fleet.median, "fleet_scale": model.fleet.scale,
        "fleet_floor": model.fleet.floor,
    })


def loads(blob: bytes, equipment_type: str, where: str) -> WearModel:
    """A model from skops bytes, refused (ModelRefused, one line naming `where`) if unreadable, if it would build
    a type skops does not trust and TRUSTED_TYPES does not name, or if its features are not this code's."""
    try:
        untrusted = sorted(set(sio.get_untrusted_types(data=blob)) - set(TRUSTED_TYPES))
    except Exception as exc:  # noqa: BLE001 - whatever is wrong with the bytes, the model is refused
        raise ModelRefused(f"{where}: not a readable model file ({type(exc).__name__}: {exc})") from None
    if untrusted:
        raise ModelRefused(f"{where}: refused, it would build types not trusted: {', '.join(untrusted)}")
    try:
        data = sio.loads(blob, trusted=list(TRUSTED_TYPES))
    except Exception as exc:  # noqa: BLE001
        raise ModelRefused(f"{where}: not a readable model file ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelRefused(f"{where}: not a wear model of format {FORMAT}")
    expected = [f.name for f in features_of(equipment_type)]
    if data.get("equipment_type") != equipment_type or list(data.get("features", [])) != expected:
        raise ModelRefused(f"{where}: trained on other features ({', '.join(data.get('features', []))}) than this "
                           f"code's for {equipment_type} ({', '.join(expected)}); train again")
    if data.get("detector") not in DETECTORS:
        raise ModelRefused(f"{where}: unknown detector {data.get('detector')!r}")
    fleet = [np.asarray(data.get(k), dtype=float) for k in ("fleet_median", "fleet_scale", "fleet_floor")]
    spread = np.asarray(data.get("spread"), dtype=float)
    if any(a.shape != (len(expected),) for a in fleet) or spread.shape != (2, len(expected)):
        raise ModelRefused(f"{where}: its fleet baseline does not have one value per feature")
    return WearModel(equipment_type, tuple(expected), data["detector"], data["estimator"], FleetBaseline(*fleet),
                     spread, float(data["threshold"]))
