-- semon schema, version 1: registry, compliance records, telemetry, events, dead letters, alerts.
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE districts (
    id          serial PRIMARY KEY,
    name        text NOT NULL UNIQUE
);

CREATE TABLE maintenance_firms (
    id          serial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    phone       text NOT NULL DEFAULT '',   -- TSG T5002: a 24 h on-duty phone
    email       text NOT NULL DEFAULT ''
);

CREATE TABLE equipment (
    id                  serial PRIMARY KEY,
    code                text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9_-]{1,64}$'),
    type                text NOT NULL CHECK (type IN ('elevator', 'escalator', 'boiler', 'pressure_vessel')),
    district_id         integer NOT NULL REFERENCES districts (id),
    address             text NOT NULL DEFAULT '',
    use_unit            text NOT NULL DEFAULT '',
    firm_id             integer REFERENCES maintenance_firms (id),
    install_date        date,
    status              text NOT NULL DEFAULT 'in_use' CHECK (status IN ('in_use', 'suspended', 'scrapped')),
    rated_speed_mps     double precision CHECK (rated_speed_mps > 0),
    rated_load_kg       integer CHECK (rated_load_kg > 0),
    floors              integer CHECK (floors > 0),
    rated_pressure_mpa  double precision CHECK (rated_pressure_mpa > 0),
    rated_capacity_tph  double precision CHECK (rated_capacity_tph > 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX equipment_district ON equipment (district_id);
CREATE INDEX equipment_firm ON equipment (firm_id);

-- Inspections, tests and calibrations; next_due is when the next one of the same kind falls due.
CREATE TABLE inspections (
    id              bigserial PRIMARY KEY,
    equipment_id    integer NOT NULL REFERENCES equipment (id),
    kind            text NOT NULL DEFAULT 'periodic_inspection',
    performed_on    date NOT NULL,
    result          text NOT NULL DEFAULT 'pass' CHECK (result IN ('pass', 'pass_after_rectification', 'fail')),
    next_due        date NOT NULL,
    organisation    text NOT NULL DEFAULT '',
    report_no       text NOT NULL DEFAULT '',
    UNIQUE (equipment_id, kind, performed_on)
);

CREATE TABLE maintenance_records (
    id              bigserial PRIMARY KEY,
    equipment_id    integer NOT NULL REFERENCES equipment (id),
    kind            text NOT NULL DEFAULT 'routine',
    performed_on    date NOT NULL,
    firm_id         integer REFERENCES maintenance_firms (id),
    next_due        date NOT NULL,
    notes           text NOT NULL DEFAULT '',
    UNIQUE (equipment_id, kind, performed_on)
);

-- Fault codes are data: a new code is a new row (docs/mqtt.md).
CREATE TABLE fault_codes (
    name            text PRIMARY KEY,
    gbt_code        integer UNIQUE,           -- GB/T 24476-2017 number, where the standard gives one
    severity        text NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    equipment_types text[] NOT NULL,
    description     text NOT NULL DEFAULT ''
);

-- Telemetry hypertables carry no foreign key: the ingester checks the equipment, and a per-row
-- FK check would cost every insert.
CREATE TABLE telemetry_elevator (
    ts                     timestamptz NOT NULL,
    equipment_id           integer NOT NULL,
    seq                    bigint NOT NULL,
    floor                  bigint,
    direction              text,
    speed_mps              double precision,
    door                   text,
    door_zone              boolean,
    load_pct               double precision,
    occupied               boolean,
    mode                   text,
    safety_circuit_ok      boolean,
    door_lock_ok           boolean,
    run_count              bigint,
    door_cycles            bigint,
    run_hours              double precision,
    vibration_rms_g        double precision,
    motor_current_a        double precision,
    motor_temp_c           double precision,
    leveling_mm            double precision,
    extra                  jsonb,
    received_at            timestamptz NOT NULL DEFAULT now()
);
SELECT create_hypertable('telemetry_elevator', by_range('ts', INTERVAL '1 day'));
-- (equipment, ts, seq) identifies a message: a redelivery must not add a second row.
CREATE UNIQUE INDEX telemetry_elevator_message ON telemetry_elevator (equipment_id, ts, seq);

CREATE TABLE telemetry_escalator (
    ts                     timestamptz NOT NULL,
    equipment_id           integer NOT NULL,
    seq                    bigint NOT NULL,
    running                boolean,
    direction              text,
    speed_mps              double precision,
    handrail_left_mps      double precision,
    handrail_right_mps     double precision,
    mode                   text,
    safety_circuit_ok      boolean,
    brake_ok               boolean,
    motor_current_a        double precision,
    vibration_rms_g        double precision,
    run_hours              double precision,
    extra                  jsonb,
    received_at            timestamptz NOT NULL DEFAULT now()
);
SELECT create_hypertable('telemetry_escalator', by_range('ts', INTERVAL '1 day'));
-- (equipment, ts, seq) identifies a message: a redelivery must not add a second row.
CREATE UNIQUE INDEX telemetry_escalator_message ON telemetry_escalator (equipment_id, ts, seq);

CREATE TABLE telemetry_boiler (
    ts                     timestamptz NOT NULL,
    equipment_id           integer NOT NULL,
    seq                    bigint NOT NULL,
    pressure_mpa           double precision,
    water_level_mm         double precision,
    steam_temp_c           double precision,
    feedwater_temp_c       double precision,
    flue_gas_temp_c        double precision,
    o2_pct                 double precision,
    burner                 text,
    flame                  boolean,
    feedwater_flow_tph     double precision,
    steam_flow_tph         double precision,
    load_pct               double precision,
    water_hardness_mmol_l  double precision,
    ph                     double precision,
    extra                  jsonb,
    received_at            timestamptz NOT NULL DEFAULT now()
);
SELECT create_hypertable('telemetry_boiler', by_range('ts', INTERVAL '1 day'));
-- (equipment, ts, seq) identifies a message: a redelivery must not add a second row.
CREATE UNIQUE INDEX telemetry_boiler_message ON telemetry_boiler (equipment_id, ts, seq);

CREATE TABLE telemetry_pressure_vessel (
    ts                     timestamptz NOT NULL,
    equipment_id           integer NOT NULL,
    seq                    bigint NOT NULL,
    pressure_mpa           double precision,
    temperature_c          double precision,
    level_pct              double precision,
    safety_valve_open      boolean,
    extra                  jsonb,
    received_at            timestamptz NOT NULL DEFAULT now()
);
SELECT create_hypertable('telemetry_pressure_vessel', by_range('ts', INTERVAL '1 day'));
-- (equipment, ts, seq) identifies a message: a redelivery must not add a second row.
CREATE UNIQUE INDEX telemetry_pressure_vessel_message ON telemetry_pressure_vessel (equipment_id, ts, seq);

CREATE TABLE events (
    ts              timestamptz NOT NULL,
    equipment_id    integer NOT NULL,
    seq             bigint NOT NULL,
    code            text NOT NULL,
    state           text NOT NULL CHECK (state IN ('raised', 'cleared')),
    detail          jsonb,
    received_at     timestamptz NOT NULL DEFAULT now()
);
SELECT create_hypertable('events', by_range('ts', INTERVAL '7 days'));
CREATE UNIQUE INDEX events_message ON events (equipment_id, ts, seq);
CREATE INDEX events_received ON events (received_at);

-- Nothing is dropped silently: whatever cannot be stored as valid is kept here with its reason.
CREATE TABLE dead_letter (
    received_at     timestamptz NOT NULL DEFAULT now(),
    topic           text NOT NULL,
    payload         bytea NOT NULL,
    reason          text NOT NULL
);
SELECT create_hypertable('dead_letter', by_range('received_at', INTERVAL '7 days'));

-- Latest state per equipment, so the UI and rules need not scan telemetry.
CREATE TABLE equipment_state (
    equipment_id        integer PRIMARY KEY REFERENCES equipment (id),
    status              text CHECK (status IN ('online', 'offline')),
    status_changed_at   timestamptz,
    last_seen           timestamptz,              -- server time of the last message of any kind
    last_ts             timestamptz,              -- the monitor's ts of the values in last_values
    last_values         jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE alerts (
    id              bigserial PRIMARY KEY,
    equipment_id    integer NOT NULL REFERENCES equipment (id),
    kind            text NOT NULL,
    source          text NOT NULL CHECK (source IN ('device', 'rule', 'anomaly', 'compliance')),
    severity        text NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    state           text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acknowledged', 'resolved')),
    firm_id         integer REFERENCES maintenance_firms (id),
    message         text NOT NULL DEFAULT '',
    detail          jsonb NOT NULL DEFAULT '{}',
    count           integer NOT NULL DEFAULT 1,
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    resolved_at     timestamptz
);
-- One open alert per (equipment, kind), enforced here so that two racing raises cannot both open one.
CREATE UNIQUE INDEX alerts_one_open ON alerts (equipment_id, kind) WHERE state <> 'resolved';
CREATE INDEX alerts_state ON alerts (state, severity);

-- Outbox: delivery retries from here, so an unreachable channel delays a notification but never loses it.
CREATE TABLE notifications (
    id              bigserial PRIMARY KEY,
    alert_id        bigint NOT NULL REFERENCES alerts (id),
    firm_id         integer REFERENCES maintenance_firms (id),
    event           text NOT NULL CHECK (event IN ('raised', 'repeated', 'resolved', 'escalated')),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    last_error      text
);
CREATE INDEX notifications_pending ON notifications (next_attempt_at) WHERE status = 'pending';

-- Where each incremental job got to.
CREATE TABLE job_cursors (
    name        text PRIMARY KEY,
    position    timestamptz NOT NULL
);
