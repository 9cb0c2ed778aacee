-- Handling an alert (docs/alert-handling.md): open → acknowledged → on site (faults that need someone there)
-- → resolved, each step with who, when and a comment; assignment to a technician; reopening instead of a new
-- alert; inhibition (an offline monitor mutes its telemetry-derived alerts) and maintenance windows (silences:
-- recorded, not notified). Escalation and delivery read the same columns.

ALTER TABLE alerts DROP CONSTRAINT alerts_state_check,
    ADD CONSTRAINT alerts_state_check CHECK (state IN ('open', 'acknowledged', 'on_site', 'resolved'));
ALTER TABLE alerts
    ADD COLUMN acknowledged_by  integer REFERENCES users (id),
    ADD COLUMN on_site_at       timestamptz,
    ADD COLUMN on_site_by       integer REFERENCES users (id),
    ADD COLUMN resolved_by      integer REFERENCES users (id),
    ADD COLUMN assigned_to      integer REFERENCES users (id),
    ADD COLUMN assigned_at      timestamptz,
    ADD COLUMN reopened_count   integer NOT NULL DEFAULT 0,
    ADD COLUMN reopened_at      timestamptz,
    -- The open alert that explains this one (the monitor is offline): recorded, not notified while it stands.
    ADD COLUMN muted_by         bigint REFERENCES alerts (id),
    -- The maintenance window it was raised in: recorded, not notified.
    ADD COLUMN silence_id       bigint,
    -- Escalation: the last stage reached, and for an entrapment whether the rescue came too late.
    ADD COLUMN escalation_stage integer NOT NULL DEFAULT 0,
    ADD COLUMN rescue_late      boolean NOT NULL DEFAULT false;
CREATE INDEX alerts_unacknowledged ON alerts (first_seen) WHERE state = 'open';
CREATE INDEX alerts_firm_created ON alerts (firm_id, created_at);

-- The timeline of an alert: every step anyone (or semon) took. Notifications have their own rows in the outbox;
-- the timeline shown joins both. Kept at least 5 years: nothing deletes from it.
CREATE TABLE alert_steps (
    id          bigserial PRIMARY KEY,
    alert_id    bigint NOT NULL REFERENCES alerts (id),
    at          timestamptz NOT NULL DEFAULT now(),
    step        text NOT NULL CHECK (step IN ('raised', 'acknowledged', 'on_site', 'resolved', 'reopened',
                                              'assigned', 'commented', 'escalated', 'muted', 'unmuted',
                                              'silenced')),
    user_id     integer REFERENCES users (id),
    actor       text NOT NULL DEFAULT 'semon',     -- the user's name as it was, or 'semon' for automatic steps
    comment     text NOT NULL DEFAULT '' CHECK (length(comment) <= 2000),
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alert_steps_alert ON alert_steps (alert_id, at);

-- Maintenance windows: alerts on the equipment (or on every equipment of the use unit's site) raised between
-- starts_at and ends_at are recorded but not notified. A window expires by itself at ends_at.
CREATE TABLE silences (
    id            bigserial PRIMARY KEY,
    equipment_id  integer REFERENCES equipment (id),
    use_unit_id   integer REFERENCES use_units (id),
    reason        text NOT NULL CHECK (reason <> '' AND length(reason) <= 500),
    starts_at     timestamptz NOT NULL DEFAULT now(),
    ends_at       timestamptz NOT NULL,
    created_by    integer REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    cancelled_at  timestamptz,
    CHECK ((equipment_id IS NULL) <> (use_unit_id IS NULL)),
    CHECK (ends_at > starts_at)
);
CREATE INDEX silences_equipment ON silences (equipment_id, ends_at);
CREATE INDEX silences_use_unit ON silences (use_unit_id, ends_at);
ALTER TABLE alerts ADD CONSTRAINT alerts_silence FOREIGN KEY (silence_id) REFERENCES silences (id);

-- The outbox row may name which of the party's contacts it is for (an escalation to the firm's supervisor), and
-- the escalation stage that queued it; the notification events include reopening and the unacknowledged reminder.
ALTER TABLE notifications
    ADD COLUMN contact_role     text,
    ADD COLUMN escalation_stage integer,
    DROP CONSTRAINT notifications_event_check,
    ADD CONSTRAINT notifications_event_check
        CHECK (event IN ('raised', 'repeated', 'resolved', 'escalated', 'reminder', 'reopened', 'acknowledged',
                         'on_site', 'unacknowledged'));
ALTER TABLE alert_routes DROP CONSTRAINT alert_routes_events_check,
    ADD CONSTRAINT alert_routes_events_check
        CHECK (events <@ ARRAY['raised', 'repeated', 'resolved', 'escalated', 'reminder', 'reopened', 'acknowledged',
                               'on_site', 'unacknowledged']::text[] AND cardinality(events) > 0);
-- A reopened alert and an unacknowledged reminder reach whoever hears of the alert being raised.
UPDATE alert_routes SET events = events || '{reopened}'::text[] WHERE 'raised' = ANY (events);
UPDATE alert_routes SET events = events || '{unacknowledged}'::text[] WHERE recipient = 'firm';

-- Inhibition as data (docs/alert-handling.md): while an open alert of `source_kind` (LIKE pattern, and of
-- `source_source` when given) stands, new alerts of `target_kind` (LIKE) from `target_sources` (NULL: any) on the
-- same equipment, the same use unit's site or the same district are recorded with muted_by = that alert and not
-- notified; when it resolves, those still open are unmuted and notified then.
CREATE TABLE inhibition_rules (
    id              serial PRIMARY KEY,
    source_kind     text NOT NULL CHECK (source_kind <> ''),
    source_source   text,
    target_kind     text NOT NULL DEFAULT '%' CHECK (target_kind <> ''),
    target_sources  text[],
    scope           text NOT NULL CHECK (scope IN ('equipment', 'use_unit', 'district')),
    description     text NOT NULL DEFAULT ''
);
INSERT INTO inhibition_rules (source_kind, source_source, target_kind, target_sources, scope, description) VALUES
    ('offline', 'presence', '%', '{rule,anomaly}', 'equipment',
     'an offline monitor stands for the alerts its missing telemetry would derive (监测离线)');

-- Reopening looks up the alerts resolved lately; unmuting finds the alerts one muted.
CREATE INDEX alerts_resolved_at ON alerts (resolved_at) WHERE state = 'resolved';
CREATE INDEX alerts_muted_by ON alerts (muted_by) WHERE muted_by IS NOT NULL;
CREATE INDEX alerts_silence ON alerts (silence_id) WHERE silence_id IS NOT NULL;
