-- The regulator's figures as a daily history (docs/compliance-figures.md): one row per day, district and equipment type.
-- Kept rather than recomputed because statuses and records change: a past day's overdue rate must stay what it
-- was that day, so that its trend can be shown. models/figures.py fills it; re-running a day replaces that day.
CREATE TABLE compliance_daily (
    day             date NOT NULL,
    district_id     integer NOT NULL REFERENCES districts (id),
    type            text NOT NULL CHECK (type IN ('elevator', 'escalator', 'boiler', 'pressure_vessel')),
    in_use          integer NOT NULL CHECK (in_use >= 0),
    overdue         integer NOT NULL CHECK (overdue >= 0),          -- in-use equipment with any check overdue
    never_recorded  integer NOT NULL CHECK (never_recorded >= 0),   -- in-use equipment with a check never recorded
    monitored       integer NOT NULL CHECK (monitored >= 0),        -- reported in the 24 h before recorded_at
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, district_id, type)
);
