-- A deleted workflow keeps its row as a tombstone: its version (the deletion took the next
-- one) so a workflow started again on the key continues from it, never going back.
-- deleted_at is unix milliseconds; tools reading workflow_state should filter on it IS NULL.
ALTER TABLE workflow_state ADD COLUMN deleted_at INTEGER;

-- The projection keeps a tombstone too, so an event of the deleted workflow delivered again
-- cannot bring its row back.
ALTER TABLE workflow_projection ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
