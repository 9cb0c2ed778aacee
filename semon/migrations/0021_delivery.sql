-- Delivery (docs/delivery.md): the contacts of firms, use units and districts, and the messages that carry the
-- notifications outbox to them. A notification is resolved into one delivery per contact; deliveries for one
-- contact are grouped into messages (critical ones one by one); each message is sent, retried and accounted for.

CREATE TABLE contacts (
    id            serial PRIMARY KEY,
    firm_id       integer REFERENCES maintenance_firms (id),
    use_unit_id   integer REFERENCES use_units (id),
    district_id   integer REFERENCES districts (id),
    name          text NOT NULL CHECK (name <> '' AND length(name) <= 200),
    -- duty, supervisor, inspector, ...: an escalation names the role it wants (notifications.contact_role).
    role          text NOT NULL DEFAULT 'duty' CHECK (role ~ '^[a-z_]{1,32}$'),
    channel       text NOT NULL CHECK (channel IN ('webhook', 'email', 'dingtalk', 'wecom', 'sms', 'mqtt')),
    -- A URL (webhook, robots), an e-mail address, a phone number (sms); empty for mqtt (the party's topic).
    address       text NOT NULL DEFAULT '' CHECK (length(address) <= 2000),
    -- The webhook's signing key, or the DingTalk robot's 加签 secret; never shown once saved.
    secret        text NOT NULL DEFAULT '' CHECK (length(secret) <= 500),
    -- On duty on these ISO weekdays (1 Monday .. 7 Sunday) from duty_start to duty_end, local time; a start after
    -- the end is a night shift across midnight.
    duty_days     integer[] NOT NULL DEFAULT '{1,2,3,4,5,6,7}' CHECK (duty_days <@ '{1,2,3,4,5,6,7}'::integer[]),
    duty_start    time NOT NULL DEFAULT '00:00',
    duty_end      time NOT NULL DEFAULT '24:00',
    min_severity  text NOT NULL DEFAULT 'low' CHECK (min_severity IN ('critical', 'high', 'medium', 'low')),
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (num_nonnulls(firm_id, use_unit_id, district_id) = 1),
    CHECK (channel = 'mqtt' OR address <> '')
);
CREATE INDEX contacts_firm ON contacts (firm_id) WHERE firm_id IS NOT NULL;
CREATE INDEX contacts_use_unit ON contacts (use_unit_id) WHERE use_unit_id IS NOT NULL;
CREATE INDEX contacts_district ON contacts (district_id) WHERE district_id IS NOT NULL;

-- One message to one address: what was rendered (sent again unchanged on every retry), its idempotency key (stable
-- across retries and restarts; receivers dedupe on it), and where its sending stands. 'sending' while a sender
-- holds it until claimed_until; 'unknown' when a non-idempotent channel (SMS) gave an ambiguous answer and the
-- message is not sent again until someone checks.
CREATE TABLE delivery_messages (
    id               bigserial PRIMARY KEY,
    idempotency_key  text NOT NULL UNIQUE DEFAULT gen_random_uuid()::text,
    contact_id       integer REFERENCES contacts (id),
    channel          text NOT NULL,
    address          text NOT NULL,
    urgent           boolean NOT NULL,
    body             jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'unknown')),
    attempts         integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL,
    next_attempt_at  timestamptz NOT NULL,
    claimed_until    timestamptz,
    claim            uuid,
    sent_at          timestamptz,
    last_error       text
);
CREATE INDEX delivery_messages_due ON delivery_messages (next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX delivery_messages_address ON delivery_messages (address, created_at);
CREATE INDEX delivery_messages_contact ON delivery_messages (contact_id, created_at);
-- Grouping reads the last few minutes of messages (group interval, robots' rate); kept 5 years, so by time.
CREATE INDEX delivery_messages_created ON delivery_messages (created_at);
CREATE INDEX delivery_messages_attention ON delivery_messages (created_at) WHERE status IN ('failed', 'unknown');

-- One notification for one contact; message_id is set when a message carries it. contact_id NULL: the party's
-- registry e-mail, used when the party has no contact (docs/delivery.md).
CREATE TABLE deliveries (
    id               bigserial PRIMARY KEY,
    notification_id  bigint NOT NULL REFERENCES notifications (id),
    contact_id       integer REFERENCES contacts (id),
    channel          text NOT NULL,
    address          text NOT NULL,
    urgent           boolean NOT NULL,
    created_at       timestamptz NOT NULL,
    message_id       bigint REFERENCES delivery_messages (id),
    UNIQUE NULLS NOT DISTINCT (notification_id, contact_id)
);
CREATE INDEX deliveries_waiting ON deliveries (channel, address, created_at) WHERE message_id IS NULL;
CREATE INDEX deliveries_message ON deliveries (message_id);

-- A notification is expanded into deliveries once; it is sent when every delivery's message is, failed (or
-- unknown) when one of them is, and failed at once when its party has nobody to tell.
ALTER TABLE notifications
    ADD COLUMN expanded_at timestamptz,
    DROP CONSTRAINT notifications_status_check,
    ADD CONSTRAINT notifications_status_check CHECK (status IN ('pending', 'sent', 'failed', 'unknown'));
CREATE INDEX notifications_unexpanded ON notifications (next_attempt_at) WHERE status = 'pending' AND expanded_at IS NULL;
