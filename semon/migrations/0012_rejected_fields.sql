-- Telemetry fields a vendor must look at, next to dead_letter (docs/mqtt.md, "What is refused"): a value that cannot
-- be true, refused while the message's other fields are stored (stored = false), or an unknown field whose name is
-- close to a contract field's, kept in `extra` as sent (stored = true). One row per field of a message.
CREATE TABLE rejected_fields (
    ts              timestamptz NOT NULL,      -- the message's ts
    equipment_id    integer NOT NULL,          -- no foreign key, as for telemetry (0001_schema.sql)
    topic           text NOT NULL,
    seq             bigint NOT NULL,
    field           text NOT NULL,
    value           jsonb NOT NULL,            -- as sent
    reason          text NOT NULL,
    stored          boolean NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
SELECT create_hypertable('rejected_fields', by_range('ts', INTERVAL '7 days'));
-- A redelivered message must not report its fields twice: (equipment, ts, seq) identifies it, as in telemetry. The
-- index also serves "one equipment's latest"; no other index, so that a flood of bad values costs one index update.
CREATE UNIQUE INDEX rejected_fields_message ON rejected_fields (equipment_id, ts, seq, field);
