-- Webhook deliveries waiting to be made, in order per URL. A row is written when its event happens (already formatted
-- and signed, so no secret is kept here), retried with backoff while the receiver fails, deleted once
-- delivered, and kept as 'dead' when it gives up. Rows survive restarts: nothing is lost while a
-- receiver is down.
CREATE TABLE webhook_outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id        TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    headers         TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (state, next_attempt_at, seq);
-- Deliveries to one URL go in order: the oldest pending one first.
CREATE INDEX webhook_outbox_by_url ON webhook_outbox (url, state, seq);
