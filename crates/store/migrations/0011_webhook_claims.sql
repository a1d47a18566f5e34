-- A delivery is taken by one store (one node) at a time: `claimed_by` names it and `claim_until` is
-- when the claim runs out, after which any store may take the row (its holder died). A claim ends
-- when the delivery is made (the row is deleted) or fails (the row waits for its retry, unclaimed).
ALTER TABLE webhook_outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE webhook_outbox ADD COLUMN claim_until INTEGER;
