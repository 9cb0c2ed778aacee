-- Wear models (docs/wear.md): the fitted model of each equipment type, versioned, and what scoring keeps between
-- runs: each equipment's baseline for a day, and its score for every window judged.

-- One row per training of a type. The active row is the model in use; a newer one is made active only once its file
-- has been read back, so a failed training leaves the previous version in use. `model` is a skops file, never a
-- pickle: loading it builds only the types it is checked to hold.
CREATE TABLE wear_models (
    id                  serial PRIMARY KEY,
    equipment_type      text NOT NULL CHECK (equipment_type IN ('elevator', 'escalator', 'boiler', 'pressure_vessel')),
    version             integer NOT NULL CHECK (version > 0),
    trained_at          timestamptz NOT NULL DEFAULT now(),
    train_from          date NOT NULL,              -- the first day judged in training (the users' days)
    train_to            date NOT NULL,              -- the day after the last
    width_s             integer NOT NULL,           -- the rollup windows it read
    detector            text NOT NULL,
    equipment_count     integer NOT NULL,
    sample_count        integer NOT NULL,           -- equipment-days it learnt from
    features            text[] NOT NULL,
    library_versions    jsonb NOT NULL,
    settings            jsonb NOT NULL,
    validation          jsonb NOT NULL,
    model               bytea NOT NULL,
    active              boolean NOT NULL DEFAULT false,
    UNIQUE (equipment_type, version)
);
CREATE UNIQUE INDEX wear_models_one_active ON wear_models (equipment_type) WHERE active;

-- An equipment's own baseline for the periods judged from `day` on: each feature's median and scale over the days
-- before it, in the order of `features`. Computed once per day judged; NaN where unknown.
CREATE TABLE wear_baselines (
    equipment_id        integer NOT NULL,
    width_s             integer NOT NULL,
    day                 date NOT NULL,
    features            text[] NOT NULL,
    median              double precision[] NOT NULL,
    scale               double precision[] NOT NULL,
    known_days          integer[] NOT NULL,
    history             boolean NOT NULL,           -- at least wear_min_history_days of history before `day`
    computed_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (equipment_id, width_s, day)
);

-- The score of each equipment for the period judged that ends at `ends_at` (the end of a rollup window).
-- `deviations` are the wear-side deviations of the model's features, in its order; `streak` counts the
-- consecutive high scores up to this one, which open an alert at wear_alert_windows.
CREATE TABLE wear_scores (
    equipment_id        integer NOT NULL,
    width_s             integer NOT NULL,
    ends_at             timestamptz NOT NULL,
    model_id            integer NOT NULL REFERENCES wear_models (id),
    score               double precision NOT NULL,
    high                boolean NOT NULL,
    streak              integer NOT NULL,
    component           text NOT NULL,
    own_baseline        boolean NOT NULL,
    deviations          double precision[] NOT NULL,
    PRIMARY KEY (equipment_id, width_s, ends_at)
);
SELECT create_hypertable('wear_scores', by_range('ends_at', INTERVAL '30 days'));
