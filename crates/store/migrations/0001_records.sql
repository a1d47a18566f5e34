-- Agents: one row per agent ever started, with its configuration (secrets redacted) and its current
-- lifecycle state. `seq` orders agents by creation and makes list cursors stable.
CREATE TABLE agents (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT    NOT NULL UNIQUE,
    app_id        TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    channel       TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    reason_code   TEXT,
    reason_detail TEXT,
    spec          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    stopped_at    INTEGER
);

-- A name is unique among the live agents of an app; stopped agents free their name. The store
-- enforces this, so two concurrent starts with one name cannot both win.
CREATE UNIQUE INDEX agents_live_name ON agents (app_id, name)
    WHERE status NOT IN ('STOPPED', 'FAILED');
CREATE INDEX agents_by_app ON agents (app_id, seq);
CREATE INDEX agents_by_channel ON agents (app_id, channel, seq);
CREATE INDEX agents_by_status ON agents (app_id, status, seq);

-- Every state an agent went through, with the reason for STOPPING, STOPPED and FAILED.
CREATE TABLE agent_state_changes (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id      TEXT    NOT NULL REFERENCES agents (id),
    at            INTEGER NOT NULL,
    status        TEXT    NOT NULL,
    reason_code   TEXT,
    reason_detail TEXT
);
CREATE INDEX agent_state_changes_by_agent ON agent_state_changes (agent_id, seq);

-- The conversation as the LLM sees it: user messages and what the user actually heard of the agent.
CREATE TABLE history (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id    TEXT    NOT NULL REFERENCES agents (id),
    turn_id     INTEGER NOT NULL,
    speaker     TEXT    NOT NULL,
    content     TEXT    NOT NULL,
    interrupted INTEGER NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX history_by_agent ON history (agent_id, seq);

-- One row per turn, with its latency breakdown (a JSON object of milliseconds).
CREATE TABLE turns (
    agent_id    TEXT    NOT NULL REFERENCES agents (id),
    turn_id     INTEGER NOT NULL,
    start_kind  TEXT    NOT NULL,
    end_kind    TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER NOT NULL,
    metrics     TEXT    NOT NULL,
    PRIMARY KEY (agent_id, turn_id)
);
