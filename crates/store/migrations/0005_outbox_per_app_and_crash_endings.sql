-- Deliveries are shared fairly between apps: each row knows its agent's app.
ALTER TABLE webhook_outbox ADD COLUMN app_id TEXT NOT NULL DEFAULT '';
UPDATE webhook_outbox SET app_id = COALESCE((SELECT app_id FROM agents WHERE agents.id = webhook_outbox.agent_id), '');
-- A live agent's ending as it would read if the node died now (FAILED, node_restarted) waits in the
-- state 'reserved': never due. The agent's real ending deletes it in the transaction that records
-- the final state; the next start after a crash makes it 'pending' in the transaction that marks
-- the agent FAILED. So every agent's ending is delivered exactly once, however it ends.
CREATE INDEX webhook_outbox_by_agent ON webhook_outbox (agent_id, state);
CREATE INDEX webhook_outbox_by_app ON webhook_outbox (state, app_id, next_attempt_at, seq);
-- One URL's deliveries go in the order of their events' times (then of their rows).
CREATE INDEX webhook_outbox_by_url_in_order ON webhook_outbox (url, state, created_at, seq);
