-- Twin of SQLite's 0013: the node an agent runs on, in a cluster.
ALTER TABLE agents ADD COLUMN node_id TEXT;
CREATE INDEX agents_live_by_node ON agents (node_id) WHERE status NOT IN ('STOPPED', 'FAILED');
