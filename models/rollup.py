"""The telemetry rollup (docs/rollup.md): per-equipment windows of the features a wear model reads, kept in
rollup_<type> and recomputed whole for every window that rows received since the last run touched.

The Apache edition of TimescaleDB has no continuous aggregates, so the job keeps a watermark per equipment type in
job_cursors: the received_at up to which every stored row has been rolled up. A run reads the rows received after
it, recomputes each window they fall in (and the next window, whose first step they may shorten) from all of that
window's rows, and moves the watermark on, all in the scheduler's one transaction. The watermark row is locked, so a
second replica running at the same time waits and then finds the work done.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from semon.config import Config, ConfigError
from semon.vocabulary import EQUIPMENT_TYPES, telemetry_table

log = logging.getLogger(__name__)

# A run that finds a long history to roll up (a first run, a new window width) reads it a day of received_at per
# statement, so that no statement holds more than a day's rows.
CATCH_UP_STEP = timedelta(days=1)


@dataclass(frozen=True)
class RollupSettings:
    """The rollup's settings (docs/configuration.md)."""

    width_s: int  # window width; divides a day
    max_gap_s: float  # samples further apart are a gap: no covered time, no counter step across it
    settle_s: float  # rows are rolled up once their transaction began this long ago
    moving_speed_mps: float  # a car or escalator moves above this speed (the rules' rule_moving_speed_mps)
    time_zone: str  # windows of a day start at the users' midnight

    @property
    def width(self) -> timedelta:
        return timedelta(seconds=self.width_s)

    def cursor(self, equipment_type: str) -> str:
        """The job_cursors row of one type's watermark: a new width starts a series, and a watermark, of its own."""
        return f"rollup:{equipment_type}:{self.width_s}s"


def settings_from_config(config: Config) -> RollupSettings:
    """The rollup's settings from the configuration; a gap wider than a window is an error."""
    if config.rollup_max_gap_s > config.rollup_bucket_s:
        raise ConfigError(f"rollup_max_gap_s = {config.rollup_max_gap_s}: must not exceed rollup_bucket_s "
                          f"({config.rollup_bucket_s}): a late row may change only its own window and the next")
    return RollupSettings(width_s=config.rollup_bucket_s, max_gap_s=config.rollup_max_gap_s,
                          settle_s=config.rollup_settle_s, moving_speed_mps=config.rule_moving_speed_mps,
                          time_zone=config.time_zone)


@dataclass(frozen=True)
class Feature:
    """One column of a rollup table: its aggregate over the window's steps (see _STATEMENT), unit and meaning."""

    name: str
    sql: str
    unit: str
    how: str
    shows: str


def _held_s(condition: str) -> str:
    """Seconds of covered time after samples meeting `condition`: 0 when none did, NULL when none said."""
    return f"sum(dt * ({condition})::int)"


def _held_share(condition: str) -> str:
    """The share of the covered time after samples that said whether `condition` held, during which it did."""
    return f"{_held_s(condition)} / NULLIF(sum(dt) FILTER (WHERE ({condition}) IS NOT NULL), 0)"


_PREV_FIRING = "prev_flame AND prev_burner IN ('low', 'high')"

# Every step of the window: a sample and the interval since the sample before it, held at that sample's values.
# Columns the aggregates below may read: the sample's own fields, prev_<field> for the fields a type lags, `dt` (the
# seconds since the previous sample, NULL after a gap longer than rollup_max_gap_s or for the first sample) and the
# per-type helper columns of _DERIVED.
COMMON_FEATURES = (
    Feature("samples", "count(*)", "count", "telemetry rows with their ts in the window",
            "with covered_s, how much of the window the monitor reported: thin windows are for a model to skip"),
    Feature("covered_s", "COALESCE(sum(dt), 0)", "s",
            "sum over the window's samples of the time since the sample before, where that is at most "
            "rollup_max_gap_s; a window reported throughout covers its width",
            "idle against no data: an idle car covers its hour with no trips, a silent monitor leaves a short "
            "covered_s or no window at all"),
    Feature("resumed", "count(*) FILTER (WHERE dt IS NULL)", "count",
            "samples with no sample in the rollup_max_gap_s before them: a monitor's first, or its first after a "
            "silence", "monitor dropouts and restarts"),
)
_COUNTER_RESETS = Feature(
    "counter_resets", "count(*) FILTER (WHERE counter_reset)", "count",
    "steps in which a counter went down, or up by more than one a second (run_hours: more than the time elapsed); "
    "such a step counts nothing", "a monitor replaced or reset; its rates stay true")
# "moving" is a sample faster than rule_moving_speed_mps in normal service (inspection runs, maintenance and fire
# service are left out of the running figures: they are slow, short and not the wear's signature).
_ELEVATOR = COMMON_FEATURES + (
    _COUNTER_RESETS,
    Feature("trips", "sum(runs)", "count", "sum of the steps of run_count (see counter_resets)",
            "use; the denominator of the per-trip features"),
    Feature("trips_per_h", "sum(runs) * 3600.0 / NULLIF(sum(dt) FILTER (WHERE runs IS NOT NULL), 0)", "1/h",
            "trips per hour of the time the run_count steps cover", "traffic, to compare like with like"),
    Feature("door_cycles", "sum(doors)", "count", "sum of the steps of door_cycles", "door use"),
    Feature("door_cycles_per_h", "sum(doors) * 3600.0 / NULLIF(sum(dt) FILTER (WHERE doors IS NOT NULL), 0)",
            "1/h", "door cycles per hour of the time the door_cycles steps cover", "door use"),
    Feature("run_s", "sum(run_step_s)", "s", "sum of the steps of run_hours, in seconds", "motor duty"),
    Feature("run_share", "sum(run_step_s) / NULLIF(sum(dt) FILTER (WHERE run_step_s IS NOT NULL), 0)", "ratio",
            "run_s over the time the run_hours steps cover", "motor duty (heating of the motor)"),
    Feature("moving_s", _held_s("prev_moving"), "s",
            "covered time after a moving sample (a sample's values held until the next)",
            "duty where a monitor sends no run_hours"),
    Feature("door_cycles_per_trip", "sum(doors)::double precision / NULLIF(sum(runs), 0)", "ratio",
            "door_cycles over trips; about 1 in good order", "door operator: reopenings add cycles without trips"),
    Feature("door_reversals", "count(*) FILTER (WHERE dt IS NOT NULL AND prev_door = 'closing' "
            "AND door IN ('opening', 'open'))", "count",
            "steps from a closing door to an opening or open one: a reopening caught between two samples "
            "(sampling every few seconds sees only some)", "door operator: weak closing force, sills"),
    Feature("reopen_ratio", "count(*) FILTER (WHERE dt IS NOT NULL AND prev_door = 'closing' "
            "AND door IN ('opening', 'open'))::double precision / NULLIF(sum(doors), 0)", "ratio",
            "door_reversals over door_cycles", "door operator"),
    Feature("door_motion_s", _held_s("prev_door IN ('opening', 'closing')"), "s",
            "covered time after a sample with the door opening or closing", "door operator: slower door motion"),
    Feature("door_cycle_s", _held_s("prev_door IN ('opening', 'closing')") + " / NULLIF(sum(doors), 0)",
            "s", "door_motion_s per door cycle: the mean time a door takes to open and close (about 5 s in good "
                 "order)", "door operator: slower door motion and reopenings"),
    Feature("vibration_run_mean_g", "avg(vibration_rms_g) FILTER (WHERE moving)", "g",
            "mean vibration_rms_g of moving samples", "bearings, guide shoes, sheave: vibration while running"),
    Feature("vibration_run_peak_g", "max(vibration_rms_g) FILTER (WHERE moving)", "g",
            "largest vibration_rms_g of a moving sample", "the same, and knocks"),
    Feature("motor_current_run_mean_a", "avg(motor_current_a) FILTER (WHERE moving)", "A",
            "mean motor_current_a of moving samples", "drag: brake, bearings, guides"),
    Feature("motor_charge_per_trip_as",
            "sum(prev_motor_current_a * dt * prev_moving::int) / NULLIF(sum(runs), 0)", "A·s",
            "motor current integrated over moving time (held between samples), per trip",
            "drag per trip, whatever the trips' length mix"),
    Feature("motor_current_sq_mean_a2",
            "sum(prev_motor_current_a ^ 2 * dt) / NULLIF(sum(dt) FILTER (WHERE prev_motor_current_a IS NOT NULL), 0)",
            "A²", "time mean of the squared motor current over covered time (0 while stopped): the motor's heating",
            "the load that motor_temp_mean_c answers to: a model fits temperature against it"),
    Feature("motor_temp_mean_c", "avg(motor_temp_c)", "°C", "mean motor_temp_c",
            "motor overheating: hotter at the same motor_current_sq_mean_a2 (cooling fan, insulation)"),
    Feature("motor_temp_max_c", "max(motor_temp_c)", "°C", "largest motor_temp_c", "the same"),
    Feature("load_run_mean_pct", "avg(load_pct) FILTER (WHERE moving)", "%", "mean load_pct of moving samples",
            "load, to read current and temperature against"),
    Feature("stops_up", "count(*) FILTER (WHERE stop_direction = 'up')", "count",
            "stops seen after travelling up: a sample at rest in normal service after a moving one, or at another "
            "floor than the sample before", "how many levelling errors the up figures average"),
    Feature("stops_down", "count(*) FILTER (WHERE stop_direction = 'down')", "count", "the same, travelling down",
            "how many levelling errors the down figures average"),
    Feature("leveling_up_mean_mm", "avg(leveling_mm) FILTER (WHERE stop_direction = 'up')", "mm",
            "mean leveling_mm at stops after travelling up (positive: above the landing)",
            "brake: the car slides past the landing, upwards"),
    Feature("leveling_down_mean_mm", "avg(leveling_mm) FILTER (WHERE stop_direction = 'down')", "mm",
            "mean leveling_mm at stops after travelling down", "brake: the car slides past the landing, downwards"),
    Feature("leveling_overshoot_mm",
            "avg(CASE stop_direction WHEN 'up' THEN leveling_mm ELSE -leveling_mm END) "
            "FILTER (WHERE stop_direction IS NOT NULL)", "mm",
            "mean levelling error in the direction of travel (leveling_mm going up, minus it going down)",
            "brake: overshoot in the travel direction, whatever the mix of up and down trips"),
    Feature("leveling_abs_max_mm", "max(abs(leveling_mm)) FILTER (WHERE stop_direction IS NOT NULL)", "mm",
            "largest levelling error at a stop", "brake, and stops beyond the door-zone tolerance"),
)
_ESCALATOR = COMMON_FEATURES + (
    _COUNTER_RESETS,
    Feature("run_s", "sum(run_step_s)", "s", "sum of the steps of run_hours, in seconds", "duty"),
    Feature("run_share", "sum(run_step_s) / NULLIF(sum(dt) FILTER (WHERE run_step_s IS NOT NULL), 0)", "ratio",
            "run_s over the time the run_hours steps cover", "duty"),
    Feature("moving_s", _held_s("prev_moving"), "s", "covered time after a moving sample",
            "duty where a monitor sends no run_hours"),
    Feature("speed_run_mean_mps", "avg(speed_mps) FILTER (WHERE moving)", "m/s", "mean step speed of moving samples",
            "drive: the steps' own speed, the handrail ratios' reference"),
    Feature("handrail_left_ratio", "avg(handrail_left_mps / speed_mps) FILTER (WHERE moving)", "ratio",
            "mean of handrail_left_mps / speed_mps over moving samples (a little above 1 in good order)",
            "handrail: a slipping or worn left handrail falls behind the steps"),
    Feature("handrail_right_ratio", "avg(handrail_right_mps / speed_mps) FILTER (WHERE moving)", "ratio",
            "the same, right handrail", "handrail: the right one"),
    Feature("handrail_low_ratio", "avg(least(handrail_left_mps, handrail_right_mps) / speed_mps) "
            "FILTER (WHERE moving AND handrail_left_mps IS NOT NULL AND handrail_right_mps IS NOT NULL)", "ratio",
            "mean ratio of the slower handrail to the steps", "handrail, whichever side slips"),
    Feature("vibration_run_mean_g", "avg(vibration_rms_g) FILTER (WHERE moving)", "g",
            "mean vibration_rms_g of moving samples", "step chain, step rollers, bearings"),
    Feature("vibration_run_peak_g", "max(vibration_rms_g) FILTER (WHERE moving)", "g",
            "largest vibration_rms_g of a moving sample", "the same, and knocks"),
    Feature("motor_current_run_mean_a", "avg(motor_current_a) FILTER (WHERE moving)", "A",
            "mean motor_current_a of moving samples", "drag in the chain and drive; passengers load it too"),
)
# "Firing" is a sample whose flame is proven with the burner at a stage; the per-stage means take only samples at the
# same stage as the sample before, which leaves out most of the swing after a change of stage.
_BOILER = COMMON_FEATURES + (
    Feature("firing_s", _held_s(_PREV_FIRING), "s", "covered time after a firing sample", "burner duty"),
    Feature("firing_share", _held_share(_PREV_FIRING), "ratio", "firing_s over covered_s", "burner duty; heat demand"),
    Feature("high_fire_share", _held_share("prev_flame AND prev_burner = 'high'"), "ratio",
            "covered time after a sample firing at high, over covered_s", "the firing rate mix"),
    Feature("burner_starts", "count(*) FILTER (WHERE dt IS NOT NULL AND prev_burner = 'off' "
            "AND burner IN ('low', 'high'))", "count", "steps from burner off to a stage",
            "burner cycling: ignition wear, a burner oversized for the load"),
    Feature("load_firing_mean_pct", "avg(load_pct) FILTER (WHERE firing)", "%",
            "mean load_pct of firing samples (flame proven, burner at low or high)",
            "the firing rate the flue gas and O2 figures go with"),
    Feature("flue_gas_low_mean_c", "avg(flue_gas_temp_c) FILTER (WHERE steady AND burner = 'low')", "°C",
            "mean flue_gas_temp_c of steady samples at low fire (firing at the stage of the sample before)",
            "scaling and fouling: hotter flue gas at the same firing"),
    Feature("flue_gas_high_mean_c", "avg(flue_gas_temp_c) FILTER (WHERE steady AND burner = 'high')", "°C",
            "the same at high fire", "scaling and fouling"),
    Feature("o2_low_mean_pct", "avg(o2_pct) FILTER (WHERE steady AND burner = 'low')", "%",
            "mean o2_pct of steady samples at low fire", "burner drift: the air/fuel ratio, excess air rising"),
    Feature("o2_high_mean_pct", "avg(o2_pct) FILTER (WHERE steady AND burner = 'high')", "%",
            "the same at high fire", "burner drift"),
    Feature("pressure_mean_mpa", "avg(pressure_mpa)", "MPa", "mean pressure_mpa", "the operating point"),
    Feature("pressure_sd_mpa", "stddev_samp(pressure_mpa)", "MPa", "standard deviation of pressure_mpa",
            "pressure control: burner and load swings"),
    Feature("water_level_sd_mm", "stddev_samp(water_level_mm)", "mm", "standard deviation of water_level_mm",
            "feedwater control: a sticking valve, a failing pump, foaming"),
    Feature("water_level_min_mm", "min(water_level_mm)", "mm", "lowest water_level_mm", "the same; low-water margin"),
    Feature("water_level_max_mm", "max(water_level_mm)", "mm", "highest water_level_mm", "the same; carry-over"),
    Feature("feedwater_t", "sum(prev_feedwater_flow_tph * dt) / 3600", "t",
            "feedwater flow integrated over covered time (held between samples)", "the balance below"),
    Feature("steam_t", "sum(prev_steam_flow_tph * dt) / 3600", "t", "steam flow integrated over covered time",
            "output; the balance below"),
    Feature("feedwater_steam_ratio",
            "sum(prev_feedwater_flow_tph * dt) FILTER (WHERE prev_steam_flow_tph IS NOT NULL) "
            "/ NULLIF(sum(prev_steam_flow_tph * dt) FILTER (WHERE prev_feedwater_flow_tph IS NOT NULL), 0)", "ratio",
            "feedwater over steam over the same steps (1 plus blowdown in good order)",
            "leaks, excessive blowdown, a drifting flow meter"),
    Feature("hardness_mean_mmol_l", "avg(water_hardness_mmol_l)", "mmol/L", "mean water_hardness_mmol_l",
            "softener: resin exhausted, hardness rising"),
    Feature("hardness_max_mmol_l", "max(water_hardness_mmol_l)", "mmol/L", "largest water_hardness_mmol_l",
            "softener, against the GB/T 1576 limit"),
    Feature("ph_mean", "avg(ph)", "pH", "mean ph", "water treatment (dosing)"),
)
_PRESSURE_VESSEL = COMMON_FEATURES + (
    Feature("pressure_mean_mpa", "avg(pressure_mpa)", "MPa", "mean pressure_mpa", "the operating point"),
    Feature("pressure_sd_mpa", "stddev_samp(pressure_mpa)", "MPa", "standard deviation of pressure_mpa",
            "pressure cycling, the fatigue load; a failing unloader or regulator"),
    Feature("pressure_min_mpa", "min(pressure_mpa)", "MPa", "lowest pressure_mpa", "the cycle's range"),
    Feature("pressure_max_mpa", "max(pressure_mpa)", "MPa", "highest pressure_mpa",
            "the cycle's range; the margin to the safety valve"),
    Feature("temperature_mean_c", "avg(temperature_c)", "°C", "mean temperature_c", "the operating point"),
    Feature("temperature_sd_c", "stddev_samp(temperature_c)", "°C", "standard deviation of temperature_c",
            "thermal cycling"),
    Feature("temperature_max_c", "max(temperature_c)", "°C", "highest temperature_c", "the margin to design"),
    Feature("level_mean_pct", "avg(level_pct)", "%", "mean level_pct", "the operating point"),
    Feature("level_sd_pct", "stddev_samp(level_pct)", "%", "standard deviation of level_pct", "level control"),
    Feature("safety_valve_open_s", _held_s("prev_safety_valve_open"), "s",
            "covered time after a sample with the safety valve open", "lifts of the safety valve; a weeping valve"),
)
FEATURES: dict[str, tuple[Feature, ...]] = {"elevator": _ELEVATOR, "escalator": _ESCALATOR, "boiler": _BOILER,
                                            "pressure_vessel": _PRESSURE_VESSEL}

# What each type reads of a sample, and which of those it also reads from the sample before.
_FIELDS: dict[str, tuple[str, ...]] = {
    "elevator": ("mode", "speed_mps", "direction", "floor", "door", "run_count", "door_cycles", "run_hours",
                 "vibration_rms_g", "motor_current_a", "motor_temp_c", "load_pct", "leveling_mm"),
    "escalator": ("mode", "speed_mps", "handrail_left_mps", "handrail_right_mps", "vibration_rms_g",
                  "motor_current_a", "run_hours"),
    "boiler": ("burner", "flame", "flue_gas_temp_c", "o2_pct", "load_pct", "pressure_mpa", "water_level_mm",
               "feedwater_flow_tph", "steam_flow_tph", "water_hardness_mmol_l", "ph"),
    "pressure_vessel": ("pressure_mpa", "temperature_c", "level_pct", "safety_valve_open"),
}
_LAGGED: dict[str, tuple[str, ...]] = {
    "elevator": ("mode", "speed_mps", "direction", "floor", "door", "run_count", "door_cycles", "run_hours",
                 "motor_current_a"),
    "escalator": ("mode", "speed_mps", "run_hours"),
    "boiler": ("burner", "flame", "feedwater_flow_tph", "steam_flow_tph"),
    "pressure_vessel": ("safety_valve_open",),
}
# A counter's step counts when it is neither negative nor more than one a second (a trip or a door cycle takes
# seconds): anything else is a reset or a replaced monitor, and counts nothing.
_COUNTER_STEPS = """
    CASE WHEN run_count - prev_run_count BETWEEN 0 AND dt + 1 THEN run_count - prev_run_count END AS runs,
    CASE WHEN door_cycles - prev_door_cycles BETWEEN 0 AND dt + 1 THEN door_cycles - prev_door_cycles END AS doors,"""
_RUN_HOURS_STEP = """
    CASE WHEN (run_hours - prev_run_hours) * 3600 BETWEEN 0 AND dt + 1
         THEN (run_hours - prev_run_hours) * 3600 END AS run_step_s,"""
_MOVING = """
    COALESCE(mode, 'normal') = 'normal' AND speed_mps > %(moving)s AS moving,
    COALESCE(prev_mode, 'normal') = 'normal' AND prev_speed_mps > %(moving)s AS prev_moving,"""
_DERIVED: dict[str, str] = {
    "elevator": _COUNTER_STEPS + _RUN_HOURS_STEP + _MOVING + """
    dt IS NOT NULL AND (run_count - prev_run_count NOT BETWEEN 0 AND dt + 1
                        OR door_cycles - prev_door_cycles NOT BETWEEN 0 AND dt + 1
                        OR (run_hours - prev_run_hours) * 3600 NOT BETWEEN 0 AND dt + 1) IS TRUE AS counter_reset,
    -- A stop: at rest in normal service after moving, or at another floor than the sample before (a short trip
    -- between two samples); its direction is the one travelled, or else the way the floor changed.
    CASE WHEN dt IS NOT NULL AND COALESCE(mode, 'normal') = 'normal' AND speed_mps <= %(moving)s
              AND leveling_mm IS NOT NULL THEN
        CASE WHEN prev_speed_mps > %(moving)s AND prev_direction IN ('up', 'down') THEN prev_direction
             WHEN floor > prev_floor THEN 'up'
             WHEN floor < prev_floor THEN 'down' END
    END AS stop_direction""",
    "escalator": _RUN_HOURS_STEP + _MOVING + """
    dt IS NOT NULL AND ((run_hours - prev_run_hours) * 3600 NOT BETWEEN 0 AND dt + 1) IS TRUE AS counter_reset""",
    "boiler": """
    flame AND burner IN ('low', 'high') AS firing,
    flame AND burner IN ('low', 'high') AND burner = prev_burner AND dt IS NOT NULL AS steady""",
    "pressure_vessel": "",
}

# One statement per type and step of received_at. The windows to recompute are those holding a row received in
# (lower, upper], and the window after each such row's by rollup_max_gap_s (the row may now be the sample before
# that window's first). Runs of consecutive windows of an equipment are read as one range, from rollup_max_gap_s
# before it so that its first sample has the sample before it.
_STATEMENT = """
WITH received AS (
    SELECT DISTINCT t.equipment_id, b.bucket
      FROM {telemetry} t
     CROSS JOIN LATERAL (VALUES ({bucket_of_ts}), ({bucket_after_gap})) AS b (bucket)
     WHERE t.received_at > %(lower)s AND t.received_at <= %(upper)s
), ranges AS (
    SELECT equipment_id, min(bucket) AS first_bucket, max(bucket) + %(width)s AS range_end
      FROM (SELECT equipment_id, bucket,
                   bucket - %(width)s * row_number() OVER (PARTITION BY equipment_id ORDER BY bucket) AS run
              FROM received) AS r
     GROUP BY equipment_id, run
), raw AS (
    SELECT r.equipment_id, r.first_bucket, t.ts, {fields},
           extract(epoch FROM t.ts - lag(t.ts) OVER w) AS step_s,
           {lagged}
      FROM ranges r
      JOIN {telemetry} t ON t.equipment_id = r.equipment_id
                        AND t.ts >= r.first_bucket - %(max_gap)s AND t.ts < r.range_end
    WINDOW w AS (PARTITION BY r.equipment_id, r.first_bucket ORDER BY t.ts, t.seq)
), stepped AS (
    SELECT *, {bucket_of_sample} AS bucket,
           CASE WHEN step_s <= %(max_gap_s)s THEN step_s END AS dt
      FROM raw
     WHERE ts >= first_bucket
), steps AS (
    SELECT *{derived}
      FROM stepped
)
INSERT INTO {rollup} AS o (equipment_id, width_s, bucket, {columns})
SELECT equipment_id, %(width_s)s, bucket, {aggregates}
  FROM steps
 GROUP BY equipment_id, bucket
ON CONFLICT (equipment_id, width_s, bucket) DO UPDATE SET {updates}, computed_at = now()
"""


def features_markdown(equipment_type: str | None = None) -> str:
    """The table of one type's own features (or, for None, those of every window) as docs/rollup.md shows it."""
    features = COMMON_FEATURES if equipment_type is None else FEATURES[equipment_type][len(COMMON_FEATURES):]
    return "\n".join(["| feature | unit | how it is computed | what it shows |", "| --- | --- | --- | --- |",
                      *(f"| `{f.name}` | {f.unit} | {f.how} | {f.shows} |" for f in features)])


def rollup_table(equipment_type: str) -> str:
    """The table of one equipment type's windows."""
    return "rollup_" + telemetry_table(equipment_type).removeprefix("telemetry_")


def _statement(equipment_type: str, zoned: bool) -> str:
    features = FEATURES[equipment_type]
    bucket = "time_bucket(%(width)s, {}, %(zone)s)" if zoned else "time_bucket(%(width)s, {}, %(origin)s)"
    return _STATEMENT.format(
        bucket_of_ts=bucket.format("t.ts"), bucket_of_sample=bucket.format("ts"),
        bucket_after_gap=bucket.format("t.ts + %(max_gap)s"),
        telemetry=telemetry_table(equipment_type), rollup=rollup_table(equipment_type),
        fields=", ".join(f"t.{f}" for f in _FIELDS[equipment_type]),
        lagged=", ".join(f"lag(t.{f}) OVER w AS prev_{f}" for f in _LAGGED[equipment_type]),
        derived=",\n           " + _DERIVED[equipment_type].strip() if _DERIVED[equipment_type] else "",
        columns=", ".join(f.name for f in features),
        aggregates=",\n       ".join(f.sql for f in features),
        updates=", ".join(f"{f.name} = EXCLUDED.{f.name}" for f in features))


# A window that divides an hour starts at the same instants counted from any of the users' midnights (a zone's
# offset changes, if at all, by whole hours), so one fixed local midnight serves as time_bucket's origin. The
# zone-aware time_bucket, ten times the cost per row, is for longer windows, which must follow the zone's days.
STATEMENTS = {(t, zoned): _statement(t, zoned) for t in EQUIPMENT_TYPES for zoned in (False, True)}

# Rows are stored with received_at = now() of the storing transaction, which commits a moment later: a watermark
# at the current time would pass rows still to be committed. So it stops just before the oldest transaction still
# open in this database (the ingester's batch among them), and at rollup_settle_s ago if that is earlier; the margin
# also covers transactions of roles whose activity this one cannot see.
_HORIZON = """
SELECT LEAST(LEAST(%(now)s::timestamptz, clock_timestamp()) - %(settle)s,
             (SELECT min(xact_start) FROM pg_stat_activity
               WHERE datname = current_database() AND backend_type = 'client backend'
                 AND pid <> pg_backend_pid()) - interval '1 microsecond') AS horizon
"""


def rollup(conn: psycopg.Connection, now: datetime, settings: RollupSettings) -> dict[str, int]:
    """Recompute every window touched by telemetry received since the last run; returns windows written per type."""
    # All in the caller's transaction (the scheduler's run_locked): windows and watermarks move together.
    watermarks: dict[str, datetime] = {}
    for equipment_type in EQUIPMENT_TYPES:  # locked in one order, so that two runs cannot deadlock
        name = settings.cursor(equipment_type)
        conn.execute("INSERT INTO job_cursors (name, position) VALUES (%s, 'epoch') ON CONFLICT DO NOTHING",
                     (name,))
        row = conn.execute("SELECT position FROM job_cursors WHERE name = %s FOR UPDATE", (name,)).fetchone()
        watermarks[equipment_type] = _value(row)
    horizon = _value(conn.execute(_HORIZON, {"now": now, "settle": timedelta(seconds=settings.settle_s)}).fetchone())
    params = {"width": settings.width, "width_s": settings.width_s, "zone": settings.time_zone,
              "zoned": 3600 % settings.width_s != 0,
              "origin": datetime(2000, 1, 3, tzinfo=ZoneInfo(settings.time_zone)),
              "max_gap": timedelta(seconds=settings.max_gap_s), "max_gap_s": settings.max_gap_s,
              "moving": settings.moving_speed_mps}
    written = {}
    for equipment_type, watermark in watermarks.items():
        written[equipment_type] = _roll_up_type(conn, equipment_type, watermark, horizon, params)
        if horizon > watermark:
            conn.execute("UPDATE job_cursors SET position = %s WHERE name = %s",
                          (horizon, settings.cursor(equipment_type)))
    log.debug("rollup up to %s: %s", horizon, written)
    return written


def _roll_up_type(conn: psycopg.Connection, equipment_type: str, lower: datetime, horizon: datetime,
                  params: dict[str, Any]) -> int:
    # The first row received since the watermark: a first run starts at the oldest row, not at the watermark's epoch.
    first = _value(conn.execute(f"SELECT min(received_at) FROM {telemetry_table(equipment_type)}"
                                " WHERE received_at > %s AND received_at <= %s", (lower, horizon)).fetchone())
    if first is None:
        return 0
    written = 0
    upper = min(first + CATCH_UP_STEP, horizon)
    while True:
        written += conn.execute(STATEMENTS[equipment_type, params["zoned"]],
                                {**params, "lower": lower, "upper": upper}).rowcount
        if upper >= horizon:
            return written
        lower, upper = upper, min(upper + CATCH_UP_STEP, horizon)


def _value(row: Any) -> Any:
    """The one column of a row, whichever row factory the connection uses."""
    return next(iter(row.values())) if isinstance(row, dict) else row[0]
