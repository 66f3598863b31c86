-- Leases that expired are found through the leased messages alone: without this index the
-- lookup walked every ready message of the topic (queue_messages_ready), so leasing cost
-- grew with the backlog.
CREATE INDEX queue_messages_leased ON queue_messages (topic, visible_at_ms) WHERE leased;
