-- A deleted workflow keeps its row as a tombstone: its version (the deletion took the next
-- one) so a workflow started again on the key continues from it, never going back. Tools
-- that read workflow_state directly should filter on deleted_at IS NULL.
ALTER TABLE workflow_state ADD COLUMN IF NOT EXISTS deleted_at timestamptz;

-- The projection keeps a tombstone too, so an event of the deleted workflow delivered again
-- (a relay's re-send) cannot bring its row back.
ALTER TABLE workflow_projection ADD COLUMN IF NOT EXISTS deleted boolean NOT NULL DEFAULT false;
