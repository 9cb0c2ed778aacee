-- One home for each rule (docs/compliance.md, docs/alerts.md).
--
-- Due dates: the compliance rules compute them from the records; a stored copy drifted (a failed inspection
-- imported from CSV was stored as due a full interval later than its rectification deadline).
ALTER TABLE inspections DROP COLUMN next_due;
ALTER TABLE maintenance_records DROP COLUMN next_due;

-- Presence raises an alert of its own for a monitor that stopped reporting.
ALTER TABLE alerts DROP CONSTRAINT alerts_source_check,
    ADD CONSTRAINT alerts_source_check CHECK (source IN ('device', 'rule', 'anomaly', 'compliance', 'presence'));

-- Who is told about which alert, as data (alerts/routing.py). A route names a kind of recipient, resolved per
-- equipment: its maintenance firm, its use unit, or its district's inspectors. An alert change is queued for
-- a route when its event is in `events`, its source in `sources` (NULL: any) and its severity at least
-- `min_severity` (NULL: any), or, with `when_no_firm`, whenever the equipment has no maintenance firm (its
-- alerts must reach someone). Reminders have no severity and match routes without one.
CREATE TABLE alert_routes (
    id              serial PRIMARY KEY,
    recipient       text NOT NULL CHECK (recipient IN ('firm', 'use_unit', 'district')),
    events          text[] NOT NULL CHECK (events <@ ARRAY['raised', 'repeated', 'resolved', 'escalated',
                                                          'reminder']::text[] AND cardinality(events) > 0),
    sources         text[] CHECK (sources <@ ARRAY['device', 'rule', 'anomaly', 'compliance', 'presence']::text[]),
    min_severity    text CHECK (min_severity IN ('critical', 'high', 'medium', 'low')),
    when_no_firm    boolean NOT NULL DEFAULT false,
    description     text NOT NULL DEFAULT ''
);
INSERT INTO alert_routes (recipient, events, min_severity, when_no_firm, description) VALUES
    ('firm', '{raised,repeated,resolved,reminder}', NULL, false,
     'the maintenance firm (维保单位) hears of every alert, its repeats and its resolution'),
    ('use_unit', '{raised,resolved,reminder}', NULL, false,
     'the use unit (使用单位) hears of every alert and its resolution'),
    ('district', '{raised,resolved}', 'high', true,
     'the district''s inspectors hear of critical and high alerts, and of every alert on equipment no firm maintains');

-- The outbox names its recipient: one kind and the id of that party.
ALTER TABLE notifications
    ADD COLUMN recipient   text CHECK (recipient IN ('firm', 'use_unit', 'district')),
    ADD COLUMN use_unit_id integer REFERENCES use_units (id),
    ADD COLUMN district_id integer REFERENCES districts (id);
UPDATE notifications n SET recipient = CASE WHEN n.use_unit IS NULL THEN 'firm' ELSE 'use_unit' END,
                           use_unit_id = (SELECT u.id FROM use_units u WHERE u.name = n.use_unit);
-- Rows queued for an equipment without a firm reached nobody; they are kept, marked failed with the reason.
UPDATE notifications SET status = 'failed', last_error = 'no recipient: the equipment had no maintenance firm'
 WHERE status = 'pending' AND ((recipient = 'firm' AND firm_id IS NULL)
                               OR (recipient = 'use_unit' AND use_unit_id IS NULL));
ALTER TABLE notifications DROP COLUMN use_unit, ALTER COLUMN recipient SET NOT NULL;

-- Delivery will need an e-mail address for the use unit as well (districts and firms have one).
ALTER TABLE use_units ADD COLUMN email text NOT NULL DEFAULT '';
