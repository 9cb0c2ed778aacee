-- Escalation and reminders (docs/escalation.md).
--
-- Escalation chains as data: a chain applies to alerts of its kinds and severities (NULL: any); when several apply,
-- the lowest `priority` wins. Each stage is reached `delay_s` seconds after the alert's first_seen unless the alert
-- has by then reached the state `stopped_by` (or a later one: open → acknowledged → on_site → resolved); reaching it
-- tells its recipients ('escalated' outbox rows naming the stage and the contact role) and, with `rescue_late`,
-- marks the rescue late (alerts.rescue_late).
CREATE TABLE escalation_chains (
    id          serial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name <> '' AND length(name) <= 200),
    kinds       text[] CHECK (cardinality(kinds) > 0),
    severities  text[] CHECK (severities <@ ARRAY['critical', 'high', 'medium', 'low']::text[]
                              AND cardinality(severities) > 0),
    priority    integer NOT NULL DEFAULT 100,
    enabled     boolean NOT NULL DEFAULT true,
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 2000)
);

CREATE TABLE escalation_stages (
    id          serial PRIMARY KEY,
    chain_id    integer NOT NULL REFERENCES escalation_chains (id) ON DELETE CASCADE,
    stage       integer NOT NULL CHECK (stage > 0),
    delay_s     integer NOT NULL CHECK (delay_s >= 0),
    stopped_by  text NOT NULL CHECK (stopped_by IN ('acknowledged', 'on_site', 'resolved')),
    rescue_late boolean NOT NULL DEFAULT false,
    UNIQUE (chain_id, stage)
);

-- Who a stage tells: a kind of party, resolved per equipment as the routes do (docs/alerts.md), and which of its
-- contacts (contact_role, such as 'supervisor'; NULL: the party's usual contacts).
CREATE TABLE escalation_recipients (
    id           serial PRIMARY KEY,
    stage_id     integer NOT NULL REFERENCES escalation_stages (id) ON DELETE CASCADE,
    recipient    text NOT NULL CHECK (recipient IN ('firm', 'use_unit', 'district')),
    contact_role text CHECK (contact_role ~ '^[a-z][a-z0-9_]{0,31}$')
);
CREATE UNIQUE INDEX escalation_recipients_one ON escalation_recipients (stage_id, recipient, COALESCE(contact_role, ''));

-- The entrapment chain: the use unit must alert the firm within 5 minutes, and the trapped must be reached within
-- 30 (TSG T5001/T5002). The other critical alerts: a firm that has not answered in 10 minutes has its supervisor
-- and the use unit told; nobody on site in 60 minutes, the district's inspectors.
INSERT INTO escalation_chains (name, kinds, severities, priority, description) VALUES
    ('entrapment', '{entrapment}', NULL, 10,
     '困人: not acknowledged in 5 minutes, the use unit and the firm''s supervisor; nobody on site in 30 minutes, '
     'the district''s inspectors, and the rescue is late'),
    ('critical', NULL, '{critical}', 100,
     'other critical alerts: not acknowledged in 10 minutes, the use unit and the firm''s supervisor; nobody on '
     'site in 60 minutes, the district''s inspectors');
INSERT INTO escalation_stages (chain_id, stage, delay_s, stopped_by, rescue_late)
SELECT c.id, s.stage, s.delay_s, s.stopped_by, s.rescue_late
  FROM escalation_chains c
  JOIN (VALUES ('entrapment', 1, 300, 'acknowledged', false), ('entrapment', 2, 1800, 'on_site', true),
               ('critical', 1, 600, 'acknowledged', false), ('critical', 2, 3600, 'on_site', false))
       AS s (chain, stage, delay_s, stopped_by, rescue_late) ON s.chain = c.name;
INSERT INTO escalation_recipients (stage_id, recipient, contact_role)
SELECT s.id, r.recipient, r.contact_role
  FROM escalation_stages s
  JOIN (VALUES (1, 1, 'use_unit', NULL), (1, 2, 'firm', 'supervisor'), (2, 1, 'district', NULL))
       AS r (stage, position, recipient, contact_role) ON r.stage = s.stage
 ORDER BY s.id, r.position;

-- Reminders of unacknowledged alerts (alerts/reminders.py): when the last one was queued, and how many were.
ALTER TABLE alerts
    ADD COLUMN reminded_at    timestamptz,
    ADD COLUMN reminder_count integer NOT NULL DEFAULT 0;
