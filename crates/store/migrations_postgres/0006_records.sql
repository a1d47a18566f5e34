-- The records in PostgreSQL, as SQLite's migrations 0001 to 0006 leave them (read those for what
-- each table and column means). From here on, each SQLite migration has its twin here under the same
-- number, so both engines hold the same records.
CREATE TABLE agents (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            TEXT    NOT NULL UNIQUE,
    app_id        TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    channel       TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    reason_code   TEXT,
    reason_detail TEXT,
    spec          TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    stopped_at    BIGINT
);
CREATE UNIQUE INDEX agents_live_name ON agents (app_id, name)
    WHERE status NOT IN ('STOPPED', 'FAILED');
CREATE INDEX agents_by_app ON agents (app_id, seq);
CREATE INDEX agents_by_channel ON agents (app_id, channel, seq);
CREATE INDEX agents_by_status ON agents (app_id, status, seq);

CREATE TABLE agent_state_changes (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id      TEXT    NOT NULL REFERENCES agents (id),
    at            BIGINT  NOT NULL,
    status        TEXT    NOT NULL,
    reason_code   TEXT,
    reason_detail TEXT
);
CREATE INDEX agent_state_changes_by_agent ON agent_state_changes (agent_id, seq);

CREATE TABLE history (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id    TEXT    NOT NULL REFERENCES agents (id),
    turn_id     BIGINT  NOT NULL,
    speaker     TEXT    NOT NULL,
    content     TEXT    NOT NULL,
    interrupted BOOLEAN NOT NULL,
    at          BIGINT  NOT NULL
);
CREATE INDEX history_by_agent ON history (agent_id, seq);

CREATE TABLE turns (
    agent_id    TEXT    NOT NULL REFERENCES agents (id),
    turn_id     BIGINT  NOT NULL,
    start_kind  TEXT    NOT NULL,
    end_kind    TEXT    NOT NULL,
    started_at  BIGINT  NOT NULL,
    ended_at    BIGINT  NOT NULL,
    metrics     TEXT    NOT NULL,
    detail      TEXT,
    PRIMARY KEY (agent_id, turn_id)
);

CREATE TABLE webhook_outbox (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id        TEXT    NOT NULL,
    app_id          TEXT    NOT NULL DEFAULT '',
    url             TEXT    NOT NULL,
    headers         TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending',
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    last_error      TEXT,
    created_at      BIGINT  NOT NULL
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (state, next_attempt_at, seq);
CREATE INDEX webhook_outbox_by_url ON webhook_outbox (url, state, seq);
CREATE INDEX webhook_outbox_by_agent ON webhook_outbox (agent_id, state);
CREATE INDEX webhook_outbox_by_app ON webhook_outbox (state, app_id, next_attempt_at, seq);
CREATE INDEX webhook_outbox_by_url_in_order ON webhook_outbox (url, state, created_at, seq);

CREATE TABLE templates (
    app_id      TEXT    NOT NULL,
    dialect     TEXT    NOT NULL,
    template_id TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (app_id, dialect, template_id)
);

CREATE TABLE used_nonces (
    scope      TEXT    NOT NULL,
    nonce      TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL,
    PRIMARY KEY (scope, nonce)
);
CREATE INDEX used_nonces_by_expiry ON used_nonces (expires_at);
