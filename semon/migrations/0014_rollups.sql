-- Telemetry rollups (docs/rollup.md): one row per equipment and window of each telemetry table, the features a wear
-- model and the charts read. models/rollup.py writes them and documents each column; a window is recomputed whole
-- whenever rows received since the last run fall in it (or just before it), so these tables hold no state of their
-- own beyond what telemetry gives.

-- Which rows arrived since the rollup's watermark (job_cursors): late and redelivered rows are found by when they
-- were stored, not by their ts. Rows are appended to a chunk in the order they are stored, so a BRIN index finds the
-- recent ones in each chunk at next to no cost to the ingester, where a B-tree would cost every row stored one more
-- index insert.
CREATE INDEX telemetry_elevator_received ON telemetry_elevator USING brin (received_at) WITH (autosummarize = on);
CREATE INDEX telemetry_escalator_received ON telemetry_escalator USING brin (received_at) WITH (autosummarize = on);
CREATE INDEX telemetry_boiler_received ON telemetry_boiler USING brin (received_at) WITH (autosummarize = on);
CREATE INDEX telemetry_pressure_vessel_received ON telemetry_pressure_vessel USING brin (received_at)
    WITH (autosummarize = on);

-- Columns common to every rollup table: the window (width_s seconds from bucket, in the users' time zone for a day),
-- how much telemetry it holds, and when it was last computed. No foreign key, as for telemetry. width_s is part of
-- the key: a new rollup_bucket_s starts a series of its own beside the old one.
CREATE TABLE rollup_elevator (
    equipment_id                integer NOT NULL,
    width_s                     integer NOT NULL CHECK (width_s > 0),
    bucket                      timestamptz NOT NULL,
    samples                     integer NOT NULL,
    covered_s                   double precision NOT NULL,
    resumed                     integer NOT NULL,
    counter_resets              integer NOT NULL,
    trips                       bigint,
    trips_per_h                 double precision,
    door_cycles                 bigint,
    door_cycles_per_h           double precision,
    run_s                       double precision,
    run_share                   double precision,
    moving_s                    double precision,
    door_cycles_per_trip        double precision,
    door_reversals              integer NOT NULL,
    reopen_ratio                double precision,
    door_motion_s               double precision,
    door_cycle_s                double precision,
    vibration_run_mean_g        double precision,
    vibration_run_peak_g        double precision,
    motor_current_run_mean_a    double precision,
    motor_charge_per_trip_as    double precision,
    motor_current_sq_mean_a2    double precision,
    motor_temp_mean_c           double precision,
    motor_temp_max_c            double precision,
    load_run_mean_pct           double precision,
    stops_up                    integer NOT NULL,
    stops_down                  integer NOT NULL,
    leveling_up_mean_mm         double precision,
    leveling_down_mean_mm       double precision,
    leveling_overshoot_mm       double precision,
    leveling_abs_max_mm         double precision,
    computed_at                 timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (equipment_id, width_s, bucket)
);
SELECT create_hypertable('rollup_elevator', by_range('bucket', INTERVAL '30 days'));

CREATE TABLE rollup_escalator (
    equipment_id                integer NOT NULL,
    width_s                     integer NOT NULL CHECK (width_s > 0),
    bucket                      timestamptz NOT NULL,
    samples                     integer NOT NULL,
    covered_s                   double precision NOT NULL,
    resumed                     integer NOT NULL,
    counter_resets              integer NOT NULL,
    run_s                       double precision,
    run_share                   double precision,
    moving_s                    double precision,
    speed_run_mean_mps          double precision,
    handrail_left_ratio         double precision,
    handrail_right_ratio        double precision,
    handrail_low_ratio          double precision,
    vibration_run_mean_g        double precision,
    vibration_run_peak_g        double precision,
    motor_current_run_mean_a    double precision,
    computed_at                 timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (equipment_id, width_s, bucket)
);
SELECT create_hypertable('rollup_escalator', by_range('bucket', INTERVAL '30 days'));

CREATE TABLE rollup_boiler (
    equipment_id                integer NOT NULL,
    width_s                     integer NOT NULL CHECK (width_s > 0),
    bucket                      timestamptz NOT NULL,
    samples                     integer NOT NULL,
    covered_s                   double precision NOT NULL,
    resumed                     integer NOT NULL,
    firing_s                    double precision,
    firing_share                double precision,
    high_fire_share             double precision,
    burner_starts               integer NOT NULL,
    load_firing_mean_pct        double precision,
    flue_gas_low_mean_c         double precision,
    flue_gas_high_mean_c        double precision,
    o2_low_mean_pct             double precision,
    o2_high_mean_pct            double precision,
    pressure_mean_mpa           double precision,
    pressure_sd_mpa             double precision,
    water_level_sd_mm           double precision,
    water_level_min_mm          double precision,
    water_level_max_mm          double precision,
    feedwater_t                 double precision,
    steam_t                     double precision,
    feedwater_steam_ratio       double precision,
    hardness_mean_mmol_l        double precision,
    hardness_max_mmol_l         double precision,
    ph_mean                     double precision,
    computed_at                 timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (equipment_id, width_s, bucket)
);
SELECT create_hypertable('rollup_boiler', by_range('bucket', INTERVAL '30 days'));

CREATE TABLE rollup_pressure_vessel (
    equipment_id                integer NOT NULL,
    width_s                     integer NOT NULL CHECK (width_s > 0),
    bucket                      timestamptz NOT NULL,
    samples                     integer NOT NULL,
    covered_s                   double precision NOT NULL,
    resumed                     integer NOT NULL,
    pressure_mean_mpa           double precision,
    pressure_sd_mpa             double precision,
    pressure_min_mpa            double precision,
    pressure_max_mpa            double precision,
    temperature_mean_c          double precision,
    temperature_sd_c            double precision,
    temperature_max_c           double precision,
    level_mean_pct              double precision,
    level_sd_pct                double precision,
    safety_valve_open_s         double precision,
    computed_at                 timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (equipment_id, width_s, bucket)
);
SELECT create_hypertable('rollup_pressure_vessel', by_range('bucket', INTERVAL '30 days'));
