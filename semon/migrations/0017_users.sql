-- Who may use the web app and what they may see (docs/access.md): users with a role and the parties they belong
-- to, their API tokens, the failed logins that rate-limit signing in, the audit log of every change, and the web
-- app's signing key, shared by every web worker.

CREATE TABLE users (
    id                  serial PRIMARY KEY,
    username            text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9._@-]{1,64}$'),
    display_name        text NOT NULL DEFAULT '',
    role                text NOT NULL CHECK (role IN ('admin', 'inspector', 'firm', 'use_unit')),
    password_hash       text NOT NULL,
    -- A firm's user belongs to that firm, a use unit's to that use unit; nobody else to either.
    firm_id             integer REFERENCES maintenance_firms (id),
    use_unit_id         integer REFERENCES use_units (id),
    -- An inspector sees every district, or those in user_districts.
    all_districts       boolean NOT NULL DEFAULT false,
    disabled            boolean NOT NULL DEFAULT false,
    -- Part of every session's identity: raising it ends every session of the user (logout everywhere).
    session_generation  integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'firm') = (firm_id IS NOT NULL)),
    CHECK ((role = 'use_unit') = (use_unit_id IS NOT NULL)),
    CHECK (role = 'inspector' OR NOT all_districts)
);

CREATE TABLE user_districts (
    user_id      integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    district_id  integer NOT NULL REFERENCES districts (id),
    PRIMARY KEY (user_id, district_id)
);

-- Only the SHA-256 of a token is kept: the token itself is shown once, when it is made.
CREATE TABLE api_tokens (
    id            serial PRIMARY KEY,
    user_id       integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (name <> '' AND length(name) <= 200),
    token_sha256  text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- Failed logins, per name tried and per address, counted over a window by every web worker alike.
CREATE TABLE login_failures (
    id           bigserial PRIMARY KEY,
    username     text NOT NULL,
    remote_addr  text NOT NULL,
    failed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_username ON login_failures (username, failed_at);
CREATE INDEX login_failures_addr ON login_failures (remote_addr, failed_at);

-- Every change: who (the user's name is kept as it was), what, when, the row before and after.
CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    user_id      integer REFERENCES users (id) ON DELETE SET NULL,
    actor        text NOT NULL,
    action       text NOT NULL,
    target       text NOT NULL,
    before       jsonb,
    after        jsonb,
    remote_addr  text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at DESC, id DESC);

CREATE TABLE web_secrets (
    name        text PRIMARY KEY,
    value       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
