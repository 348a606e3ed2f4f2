package purereducer

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "purereducer.dev/clients/go/gen/purereducer/v1"
)

// HistoryPage picks the page GetHistory returns; the zero value is the first page, oldest
// first, of at most the server's default size (100).
type HistoryPage struct {
	// FromVersion is the first version to return (0: the oldest kept, or with Reverse the
	// latest).
	FromVersion uint64
	// Limit caps the entries of the page (0: 100; the server refuses more than 1000).
	Limit uint32
	// Reverse returns the newest first.
	Reverse bool
	// PageToken continues a listing: the NextPageToken of the previous page, asked for with
	// the same Reverse (the server refuses a token from the other direction).
	PageToken string
}

// GetHistory reads a page of what happened to a workflow: every commit, refusal and give-up
// that history retention keeps. NextPageToken is empty on the last page.
func (c *Client) GetHistory(ctx context.Context, workflowKey string, page HistoryPage,
	opts ...CallOption) (*pb.GetHistoryResponse, error) {
	o := collect(opts)
	return c.Store.GetHistory(ctx, &pb.GetHistoryRequest{WorkflowKey: workflowKey, Namespace: o.namespace,
		FromVersion: page.FromVersion, Limit: page.Limit, Reverse: page.Reverse, PageToken: page.PageToken})
}

// WorkflowFilter selects the workflows ListWorkflows returns; every field set must match, and
// the zero value lists every workflow of the namespace.
type WorkflowFilter struct {
	// WorkflowType keeps only workflows of this type.
	WorkflowType string
	// KeyPrefix keeps only workflow keys that start with it.
	KeyPrefix string
	// UpdatedAfter keeps only workflows last committed at or after it; the zero time does not
	// filter.
	UpdatedAfter time.Time
	// UpdatedBefore keeps only workflows last committed before it; the zero time does not
	// filter.
	UpdatedBefore time.Time
	// Tag keeps only workflows whose state's "status" is this (for FSM workflows, the state).
	Tag string
	// Limit caps the workflows of the page (0: 100; the server refuses more than 1000).
	Limit uint32
	// PageToken continues a listing: the NextPageToken of the previous page, with the same
	// filter.
	PageToken string
}

// ListWorkflows lists a page of the workflows of a namespace (InNamespace; "default" without
// it) that match filter, in workflow key order. NextPageToken is empty on the last page.
func (c *Client) ListWorkflows(ctx context.Context, filter WorkflowFilter, opts ...CallOption) (*pb.ListWorkflowsResponse, error) {
	o := collect(opts)
	return c.Store.ListWorkflows(ctx, &pb.ListWorkflowsRequest{Namespace: o.namespace,
		WorkflowType: filter.WorkflowType, KeyPrefix: filter.KeyPrefix, UpdatedAfter: timestamp(filter.UpdatedAfter),
		UpdatedBefore: timestamp(filter.UpdatedBefore), Tag: filter.Tag, Limit: filter.Limit,
		PageToken: filter.PageToken})
}

// timestamp is t as a protobuf Timestamp, nil (no bound) for the zero time.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
