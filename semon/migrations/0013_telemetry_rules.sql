-- Fault rules derived from telemetry (docs/rules.md).
--
-- Each equipment's rule state (pending dwells, active faults, counters), written in the same transaction as the
-- telemetry that moved it, so that a restart or a second ingester continues exactly where the last batch left
-- it. The row is locked for the batch: two ingesters sharing the stream take turns on one equipment.
CREATE TABLE rule_state (
    equipment_id    integer PRIMARY KEY REFERENCES equipment (id),
    state           jsonb NOT NULL DEFAULT '{}',
    last_ts         timestamptz,            -- the monitor's ts of the last sample the rules took in
    pending         boolean NOT NULL DEFAULT false,   -- a dwell is running: the silence job looks at these only
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rule_state_pending ON rule_state (equipment_id) WHERE pending;

-- One alert per (equipment, kind) whoever saw the fault first: the monitor's own event and the rule derived
-- from its telemetry are one alert that records both.
ALTER TABLE alerts ADD COLUMN sources text[] NOT NULL DEFAULT '{}';
UPDATE alerts SET sources = ARRAY[source];
-- When the alert row was written (first_seen is the monitor's ts of the deciding message): the pipeline's latency.
ALTER TABLE alerts ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
