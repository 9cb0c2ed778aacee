-- A change to the registry takes effect for the ingester at once (docs/ingest.md, "Registering takes effect at
-- once"): every statement that changes equipment or fault codes notifies channel semon_registry when it commits.
-- The payload is empty on purpose: PostgreSQL folds identical notifications of one transaction into one, so a
-- CSV import of 10,000 rows wakes each ingester once.
CREATE FUNCTION semon_registry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('semon_registry', '');
    RETURN NULL;
END $$;

CREATE TRIGGER equipment_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON equipment
    FOR EACH STATEMENT EXECUTE FUNCTION semon_registry_changed();
CREATE TRIGGER fault_codes_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON fault_codes
    FOR EACH STATEMENT EXECUTE FUNCTION semon_registry_changed();

-- Dead letters can be replayed once their message is valid (`semon dead-letters replay`, docs/ingest.md): each
-- gets an id to be marked by, the short category the ingester's metrics count it under, and when it was replayed
-- and what became of it. A replayed dead letter is kept, not deleted: nothing a monitor sent disappears.
-- (A hypertable with chunks takes no identity column, so the id is a plain sequence.)
CREATE SEQUENCE dead_letter_id_seq;
ALTER TABLE dead_letter ADD COLUMN id bigint, ADD COLUMN category text,
    ADD COLUMN replayed_at timestamptz, ADD COLUMN replay_result text
        CHECK (replay_result IN ('replayed', 'skipped'));
UPDATE dead_letter SET id = nextval('dead_letter_id_seq'), category = CASE
    WHEN reason LIKE 'unknown topic%' OR reason LIKE 'unknown equipment type%' OR reason LIKE 'unknown channel%'
         OR reason LIKE 'invalid equipment code%' THEN 'bad_topic'
    WHEN reason LIKE 'unknown equipment %' THEN 'unknown_equipment'
    WHEN reason LIKE 'equipment % is registered as %' THEN 'wrong_type'
    WHEN reason LIKE 'payload %' THEN 'not_json'
    WHEN reason LIKE 'missing ts%' OR reason LIKE 'ts %' THEN 'bad_ts'
    WHEN reason LIKE 'missing seq%' OR reason LIKE 'seq %' THEN 'bad_seq'
    WHEN reason LIKE 'field %' THEN 'bad_field'
    WHEN reason LIKE 'status %' THEN 'bad_status'
    WHEN reason LIKE 'database refused%' THEN 'database_refused'
    ELSE 'bad_event' END;
ALTER TABLE dead_letter ALTER COLUMN id SET DEFAULT nextval('dead_letter_id_seq'), ALTER COLUMN id SET NOT NULL;
ALTER SEQUENCE dead_letter_id_seq OWNED BY dead_letter.id;
CREATE INDEX dead_letter_id ON dead_letter (id);
CREATE INDEX dead_letter_not_replayed ON dead_letter (received_at) WHERE replayed_at IS NULL;
