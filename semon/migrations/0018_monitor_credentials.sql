-- MQTT accounts (semon/monitors.py, docs/monitors.md): one per monitor, named by its equipment code and allowed to
-- publish only under that equipment's topics, and the accounts of the ingester and the simulators. Passwords are
-- kept as hashes in Mosquitto's PBKDF2-SHA512 form, from which the broker's password file is written.
CREATE TABLE mqtt_accounts (
    username        text PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9_.-]{1,64}$'),
    role            text NOT NULL CHECK (role IN ('monitor', 'ingester', 'simulator')),
    equipment_id    integer UNIQUE REFERENCES equipment (id) ON DELETE CASCADE,
    password_hash   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    password_set_at timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    CHECK ((role = 'monitor') = (equipment_id IS NOT NULL)),
    CHECK ((revoked_at IS NULL) = (password_hash IS NOT NULL))
);
