-- Twin of SQLite's 0011: the store (node) holding a delivery, and when its claim runs out.
ALTER TABLE webhook_outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE webhook_outbox ADD COLUMN claim_until BIGINT;
