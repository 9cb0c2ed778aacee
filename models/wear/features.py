"""The wear features (docs/wear.md): what the wear models read of the hourly rollup windows, which component each
points at, and how a technician is told that it moved.

Each feature is a ratio of two sums over the hourly windows of a period (a day, or the trailing hours being judged):
a weighted mean (vibration weighted by moving time) or a ratio of counts (door motion time per door cycle). Summing
numerators and denominators first, then dividing, gives the same figure whatever the period's hours and however
busy each was; a period whose denominator stays below `min_den` is too thin to tell, and its value is unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import psycopg
from psycopg.rows import tuple_row

from models.rollup import rollup_table

# A period (a day, or the hours judged) with less covered telemetry than this tells nothing: its values are unknown.
MIN_COVERED_S = 3600.0
# The sums of a run group some 10,000 (equipment, period) pairs: their hash table needs about 17 MB, and at the
# server's default work_mem (4 MB) it spills to disk and takes half as long again. Set for the transaction only.
WORK_MEM = "64MB"
# A period's windows of most excess are left out of it only when it has this many times as many known (a boiler
# that fires two hours a day is judged on both).
TRIM_MIN_SHARE = 4


@dataclass(frozen=True)
class WearFeature:
    """One wear feature: the sums it is the ratio of, the component it points at and the words that say it moved."""

    name: str
    component: str
    num: str  # SQL over one rollup window's columns
    den: str
    min_den: float  # a period whose denominator sums to less is unknown
    rises: bool  # wear moves it up (False: down)
    resolution: float  # the smallest change that means anything, in its unit: the floor of its scale
    digits: int  # decimals shown
    share: bool  # a share (0-1), shown in %
    say_en: str  # {now} {normal} {pct} (relative change, %) {delta} (absolute change) are filled in
    say_zh: str
    # A ratio of counts (events per door cycle, per trip) is no surer than its counts: the events beyond
    # `counted_from` per unit of denominator are taken as Poisson counts (baseline.deviations). None: not counted.
    counted_from: float | None = None
    # A time measured by sampling (the door's motion seen in the samples of a monitor reporting every Δ seconds)
    # is a count of samples: its error is that of a Poisson count of numerator / Δ (baseline.deviations).
    sampled: bool = False

    def phrase(self, now: float, normal: float) -> tuple[str, str]:
        """What the feature says, English and Chinese: its value over the period against the normal one."""
        scale = 100.0 if self.share else 1.0
        pct = abs(now - normal) / abs(normal) * 100 if normal else float("inf")
        fields = {"now": f"{now * scale:.{self.digits}f}", "normal": f"{normal * scale:.{self.digits}f}",
                  "pct": "∞" if pct == float("inf") else f"{pct:.0f}",
                  "delta": f"{abs(now - normal) * scale:.{self.digits}f}"}
        return self.say_en.format(**fields), self.say_zh.format(**fields)


def _per_hour(column: str) -> tuple[str, str]:
    """An hourly figure (a peak, a worst case) averaged over the hours that had one."""
    return column, "1.0"


def _vibration(component: str) -> tuple[WearFeature, WearFeature]:
    return (
        WearFeature("vibration_run_mean_g", component, "vibration_run_mean_g * moving_s", "moving_s", 300.0, True,
                    0.001, 3, False,
                    "vibration while running is {pct} % higher than normal: {now} g against {normal} g",
                    "运行振动比平时高{pct}%"),
        WearFeature("vibration_run_peak_g", component, *_per_hour("vibration_run_peak_g"), 2.0, True, 0.002, 3,
                    False, "peak vibration while running is {pct} % higher than normal: {now} g against {normal} g",
                    "运行振动峰值比平时高{pct}%"),
    )


_ELEVATOR = (
    WearFeature("door_cycle_s", "door_operator", "door_motion_s", "door_cycles", 20.0, True, 0.2, 1, False,
                "a door cycle (opening and closing) takes {pct} % longer than normal: {now} s against {normal} s",
                "开关门时间比平时长{pct}%", sampled=True),
    WearFeature("door_cycles_per_trip", "door_operator", "door_cycles", "trips", 20.0, True, 0.01, 2, False,
                "{pct} % more door cycles per trip than normal: {now} against {normal}",
                "每次运行开关门次数比平时多{pct}%", counted_from=1.0),
    WearFeature("reopen_ratio", "door_operator", "door_reversals", "door_cycles", 20.0, True, 0.005, 0, True,
                "the closing door reopens in {now} % of door cycles against {normal} % normally",
                "关门时重开比例{now}%（平时{normal}%）", counted_from=0.0),
    *_vibration("bearing"),
    WearFeature("leveling_overshoot_mm", "brake", "leveling_overshoot_mm * (stops_up + stops_down)",
                "stops_up + stops_down", 10.0, True, 0.5, 1, False,
                "the car stops {now} mm past its landing in the direction of travel, against {normal} mm normally",
                "停层超调{now}毫米（平时{normal}毫米）"),
    WearFeature("leveling_abs_max_mm", "brake", *_per_hour("leveling_abs_max_mm"), 2.0, True, 1.0, 0, False,
                "the worst levelling error of an hour is {now} mm against {normal} mm normally",
                "每小时最大平层误差{now}毫米（平时{normal}毫米）"),
    WearFeature("motor_temp_mean_c", "motor", "motor_temp_mean_c * covered_s", "covered_s", MIN_COVERED_S, True,
                1.0, 0, False, "the motor runs {delta} °C hotter than normal: {now} °C against {normal} °C",
                "电动机温度比平时高{delta}°C"),
)
_ESCALATOR = (
    WearFeature("handrail_low_ratio", "handrail", "handrail_low_ratio * moving_s", "moving_s", 600.0, False, 0.005,
                1, True, "the slower handrail runs at {now} % of the step speed against {normal} % normally",
                "扶手带速度为梯级速度的{now}%（平时{normal}%）"),
    *_vibration("step_chain"),
)
_HIGH_FIRE = "high_fire_share * covered_s"
_LOW_FIRE = "(firing_share - high_fire_share) * covered_s"
_BOILER = (
    WearFeature("flue_gas_high_mean_c", "boiler_fouling", f"flue_gas_high_mean_c * {_HIGH_FIRE}", _HIGH_FIRE, 900.0,
                True, 3.0, 0, False,
                "flue gas at high fire is {delta} °C hotter than normal: {now} °C against {normal} °C",
                "大火排烟温度比平时高{delta}°C"),
    WearFeature("flue_gas_low_mean_c", "boiler_fouling", f"flue_gas_low_mean_c * {_LOW_FIRE}", _LOW_FIRE, 900.0,
                True, 3.0, 0, False,
                "flue gas at low fire is {delta} °C hotter than normal: {now} °C against {normal} °C",
                "小火排烟温度比平时高{delta}°C"),
    WearFeature("hardness_mean_mmol_l", "softener", "hardness_mean_mmol_l * covered_s", "covered_s", MIN_COVERED_S,
                True, 0.002, 3, False, "feedwater hardness is {now} mmol/L against {normal} mmol/L normally",
                "给水硬度{now} mmol/L（平时{normal} mmol/L）"),
    WearFeature("o2_high_mean_pct", "burner", f"o2_high_mean_pct * {_HIGH_FIRE}", _HIGH_FIRE, 900.0, True, 0.3, 1,
                False, "O2 in the flue gas at high fire is {now} % against {normal} % normally",
                "大火烟气含氧量{now}%（平时{normal}%）"),
    WearFeature("o2_low_mean_pct", "burner", f"o2_low_mean_pct * {_LOW_FIRE}", _LOW_FIRE, 900.0, True, 0.3, 1,
                False, "O2 in the flue gas at low fire is {now} % against {normal} % normally",
                "小火烟气含氧量{now}%（平时{normal}%）"),
)
# Pressure vessels have no wear model: their windows show the operating point, not a component wearing out.
WEAR_FEATURES: dict[str, tuple[WearFeature, ...]] = {"elevator": _ELEVATOR, "escalator": _ESCALATOR,
                                                     "boiler": _BOILER}
WEAR_TYPES = tuple(WEAR_FEATURES)

# The components an alert names (its kind is wear:<component>), as technicians call them.
COMPONENTS: dict[str, str] = {
    "door_operator": "Door operator (门机)",
    "bearing": "Bearings and guide shoes (轴承/导靴)",
    "brake": "Brake (制动器)",
    "motor": "Traction motor (曳引电动机)",
    "handrail": "Handrail (扶手带)",
    "step_chain": "Step chain (梯级链)",
    "boiler_fouling": "Heating-surface scale (受热面结垢)",
    "softener": "Water softener (软水器)",
    "burner": "Burner (燃烧器)",
}
# The component each kind of simulated wear (simulators/wear.py) wears: how a benchmark matches alerts to episodes.
COMPONENT_OF_SIMULATED_WEAR: dict[str, str] = {
    "door_operator": "door_operator", "bearing": "bearing", "brake": "brake", "motor_overheat": "motor",
    "handrail": "handrail", "step_chain": "step_chain",
    "scaling": "boiler_fouling", "softener": "softener", "burner_drift": "burner",
}


def feature_names(equipment_type: str) -> tuple[str, ...]:
    """The names of one type's wear features, in model order."""
    return tuple(f.name for f in features_of(equipment_type))


def features_of(equipment_type: str) -> tuple[WearFeature, ...]:
    """One type's wear features; a type without any is an error."""
    try:
        return WEAR_FEATURES[equipment_type]
    except KeyError:
        raise ValueError(f"no wear features for {equipment_type!r} (types with wear: {', '.join(WEAR_TYPES)})") \
            from None


def _period_sums(equipment_type: str, trim: int, windows: str) -> str:
    """A query of the sums per (equipment_id, period) of `windows` (a query of rollup windows with the rollup
    table's columns and `period`): covered seconds, samples and, per feature, the sums of its numerator and
    denominator over the period's windows less the `trim` windows with the most excess in the direction wear moves
    the feature, if it is known in at least TRIM_MIN_SHARE × `trim` of them. A door held open at a landing for half an
    hour is no wear of the door operator: wear moves every hour, and one hour's burst must not make the period."""
    features = features_of(equipment_type)
    # Each feature's numerator and denominator in a window, NULL where the window does not know it.
    parts = [(f"CASE WHEN ({f.num}) IS NOT NULL AND ({f.den}) > 0 THEN ({part}) END")
             for f in features for part in (f.num, f.den)]
    if not trim:  # one aggregate over the windows, as fast as it gets
        whole = ", ".join(f"COALESCE(sum({part}), 0)" for part in parts)
        return f"""
        SELECT equipment_id, period, sum(covered_s)::float8, sum(samples)::float8, ARRAY[{whole}]::float8[]
          FROM ({windows}) a GROUP BY 1, 2 ORDER BY 1, 2"""
    values = ", ".join(f"{part} AS {'nd'[k % 2]}{k // 2}" for k, part in enumerate(parts))
    ratios, ranks, sums = [], [], []
    for i, f in enumerate(features):
        ratios.append(f"sum(n{i}) OVER g / NULLIF(sum(d{i}) OVER g, 0) AS q{i}, count(n{i}) OVER g AS c{i}")
        excess = f"{'' if f.rises else '-'}(n{i} - d{i} * q{i})"
        ranks.append(f"row_number() OVER (g ORDER BY {excess} DESC NULLS LAST) AS r{i}")
        kept = f"FILTER (WHERE r{i} > {trim} OR c{i} < {TRIM_MIN_SHARE * trim})"
        sums += [f"COALESCE(sum(n{i}) {kept}, 0)", f"COALESCE(sum(d{i}) {kept}, 0)"]
    return f"""
        SELECT equipment_id, period, sum(covered_s)::float8, sum(samples)::float8,
               ARRAY[{", ".join(sums)}]::float8[]
          FROM (SELECT *, {", ".join(ranks)}
                  FROM (SELECT *, {", ".join(ratios)}
                          FROM (SELECT equipment_id, period, covered_s, samples, {values} FROM ({windows}) a) v
                        WINDOW g AS (PARTITION BY equipment_id, period)) q
                WINDOW g AS (PARTITION BY equipment_id, period)) r
         GROUP BY 1, 2 ORDER BY 1, 2"""


@dataclass(frozen=True)
class Sums:
    """Per (equipment, period): its covered seconds and each feature's numerator and denominator sums."""

    equipment_type: str
    equipment_ids: np.ndarray  # (n,) int
    periods: np.ndarray  # (n,) datetime64: the local day (D), or the end of the hours judged (s, UTC)
    covered_s: np.ndarray  # (n,)
    samples: np.ndarray  # (n,)
    num: np.ndarray  # (n, f)
    den: np.ndarray  # (n, f)

    def values(self) -> np.ndarray:
        """Each feature's value per row, NaN where the period is too thin to tell (see MIN_COVERED_S, min_den)."""
        features = features_of(self.equipment_type)
        min_den = np.array([f.min_den for f in features])
        known = (self.den >= min_den) & (self.covered_s[:, None] >= MIN_COVERED_S)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(known, self.num / np.where(known, self.den, 1.0), np.nan)

    def sample_s(self) -> np.ndarray:
        """The mean seconds between a row's samples (its covered time over its samples), NaN without samples."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.samples > 0, self.covered_s / self.samples, np.nan)


def _to_sums(equipment_type: str, rows: Sequence[tuple], unit: str) -> Sums:
    count = len(features_of(equipment_type))
    if not rows:
        empty = np.zeros((0, count))
        return Sums(equipment_type, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=f"datetime64[{unit}]"),
                    np.zeros(0), np.zeros(0), empty, empty.copy())
    ids, periods, covered, samples, arrays = zip(*rows, strict=True)
    sums = np.asarray(arrays, dtype=float).reshape(len(rows), count, 2)
    if unit == "s":
        periods = [p.timestamp() for p in periods]
        stamps = np.asarray(periods, dtype="float64").astype("int64").astype("datetime64[s]")
    else:
        stamps = np.asarray(periods, dtype="datetime64[D]")
    return Sums(equipment_type, np.asarray(ids, dtype=np.int64), stamps, np.asarray(covered, dtype=float),
                np.asarray(samples, dtype=float), sums[:, :, 0].copy(), sums[:, :, 1].copy())


def _roomy(conn: psycopg.Connection) -> None:
    """Give the sums of this transaction WORK_MEM (the jobs run in one; outside a transaction it changes nothing)."""
    conn.execute("SELECT set_config('work_mem', %s, true)", (WORK_MEM,))


def daily_sums(conn: psycopg.Connection, equipment_type: str, first_day: date, end_day: date, *, width_s: int,
               time_zone: str, trim: int, equipment_ids: Sequence[int] | None = None) -> Sums:
    """Per equipment and local day in [first_day, end_day): the sums of its windows of width width_s, less each
    feature's `trim` windows of most excess (see _period_sums)."""
    only = "AND equipment_id = ANY(%(ids)s)" if equipment_ids is not None else ""
    _roomy(conn)
    rows = conn.cursor(row_factory=tuple_row).execute(_period_sums(equipment_type, trim, f"""
        SELECT *, (bucket AT TIME ZONE %(zone)s)::date AS period FROM {rollup_table(equipment_type)}
         WHERE width_s = %(width_s)s AND bucket >= (%(first)s::date::timestamp AT TIME ZONE %(zone)s)
           AND bucket < (%(end)s::date::timestamp AT TIME ZONE %(zone)s) {only}"""),
        {"zone": time_zone, "width_s": width_s, "first": first_day, "end": end_day,
         "ids": list(equipment_ids or [])}).fetchall()
    return _to_sums(equipment_type, rows, "D")


def recent_sums(conn: psycopg.Connection, equipment_type: str, ends: Sequence[datetime], *, width_s: int,
                hours: int, trim: int, equipment_ids: Sequence[int] | None = None) -> Sums:
    """Per equipment and end in `ends`: the sums of its windows of the `hours` hours before that end, less
    each feature's `trim` windows of most excess (see _period_sums)."""
    if not ends:
        return _to_sums(equipment_type, [], "s")
    only = "AND r.equipment_id = ANY(%(ids)s)" if equipment_ids is not None else ""
    span = timedelta(hours=hours)
    _roomy(conn)
    # The bounds of all the ends in the WHERE clause, so that the planner reads only those chunks, by their index.
    rows = conn.cursor(row_factory=tuple_row).execute(_period_sums(equipment_type, trim, f"""
        SELECT r.*, e.end_at AS period FROM {rollup_table(equipment_type)} r
          JOIN unnest(%(ends)s::timestamptz[]) AS e (end_at)
            ON r.bucket >= e.end_at - %(span)s AND r.bucket < e.end_at
         WHERE r.width_s = %(width_s)s AND r.bucket >= %(first)s AND r.bucket < %(last)s {only}"""),
        {"ends": list(ends), "width_s": width_s, "span": span, "first": min(ends) - span,
         "last": max(ends), "ids": list(equipment_ids or [])}).fetchall()
    return _to_sums(equipment_type, rows, "s")


def features_markdown() -> str:
    """The table of every wear feature as docs/wear.md shows it."""
    rows = ["| type | feature | component | wear moves it | value of a period | smallest change | counted |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for equipment_type, features in WEAR_FEATURES.items():
        for f in features:
            counted = ("in samples" if f.sampled else "—") if f.counted_from is None else f"beyond {f.counted_from:g}"
            rows.append(f"| {equipment_type} | `{f.name}` | `{f.component}` | {'up' if f.rises else 'down'} | "
                        f"sum of `{f.num}` / sum of `{f.den}` (at least {f.min_den:g}) | {f.resolution:g} | "
                        f"{counted} |")
    return "\n".join(rows)
