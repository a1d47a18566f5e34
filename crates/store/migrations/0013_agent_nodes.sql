-- The node an agent runs on, in a cluster (`--cluster`): a starting node fails only its own agents
-- that were live when it died, and the node that finds another node dead fails that node's. NULL
-- for a node without a cluster, which owns every agent of its records.
ALTER TABLE agents ADD COLUMN node_id TEXT;
CREATE INDEX agents_live_by_node ON agents (node_id) WHERE status NOT IN ('STOPPED', 'FAILED');
