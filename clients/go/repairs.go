package purereducer

import (
	"context"

	pb "purereducer.dev/clients/go/gen/purereducer/v1"
)

// RetryAction applies again an action whose last attempt ended GAVE_UP (admin), with the id,
// type and payload history kept, so it still applies at most once, and returns its outcome as
// HandleAction would. FAILED_PRECONDITION when the action did not give up (the message says
// how it ended), NOT_FOUND when the workflow's history has no trace of it. Not retried on
// UNAVAILABLE, unlike HandleAction: after a lost reply a repeat would answer
// FAILED_PRECONDITION, so read GetHistory instead.
func (c *Client) RetryAction(ctx context.Context, workflowKey, actionID string, opts ...CallOption) (*pb.HandleActionResponse, error) {
	o := collect(opts)
	reply, err := c.Reducer.RetryAction(ctx, &pb.RetryActionRequest{Namespace: o.namespace, WorkflowKey: workflowKey,
		ActionId: actionID})
	return reply.GetOutcome(), err
}

// ListDeadLetters lists the events the pipeline could not apply, newest first (admin; a token
// sees only its namespaces' letters), at most limit of them (0: 100; the server refuses more
// than 1000).
func (c *Client) ListDeadLetters(ctx context.Context, limit uint32) ([]*pb.DeadLetter, error) {
	reply, err := c.Projection.ListDeadLetters(ctx, &pb.ListDeadLettersRequest{Limit: limit})
	return reply.GetDeadLetters(), err
}

// ReplayDeadLetter writes a dead-lettered StateCommitted event to its projection, unless the
// projection already has that version or a newer one, and marks the letter replayed (admin).
// NOT_FOUND for an unknown id, FAILED_PRECONDITION for a letter replayed before or one that
// cannot be decoded.
func (c *Client) ReplayDeadLetter(ctx context.Context, id int64) (*pb.ReplayDeadLetterResponse, error) {
	return c.Projection.ReplayDeadLetter(ctx, &pb.ReplayDeadLetterRequest{Id: id})
}

// DeleteWorkflow deletes a workflow (admin) and returns the version the deletion took, the
// last version plus one: its state is gone (GetState answers NOT_FOUND), its history stays as
// retention keeps it (an entry with Deleted set), and a WorkflowDeleted event goes to
// subscribers. Versions never go back: the next action on the key starts a new workflow from
// the initial state at the version after the deletion. expected is the version the workflow
// must be at (0: whatever its version); reason is kept in the history entry and the event.
// FAILED_PRECONDITION when it is at another version (nothing is deleted), NOT_FOUND when it
// does not exist or was deleted already. Not retried on UNAVAILABLE: after a lost reply a
// repeat would answer NOT_FOUND, so read GetState or GetHistory instead.
func (c *Client) DeleteWorkflow(ctx context.Context, workflowKey string, expected uint64, reason string,
	opts ...CallOption) (uint64, error) {
	o := collect(opts)
	reply, err := c.Store.DeleteWorkflow(ctx, &pb.DeleteWorkflowRequest{Namespace: o.namespace, WorkflowKey: workflowKey,
		ExpectedVersion: expected, Reason: reason})
	return reply.GetVersion(), err
}
