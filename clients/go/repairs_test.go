package purereducer_test

// RetryAction, ListDeadLetters and ReplayDeadLetter against a live reducerd: what each answers
// when there is nothing to repair (a GAVE_UP action or a dead letter needs faults these tests
// cannot inject into a live server). DeleteWorkflow: a deletion, and what it refuses.

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	purereducer "purereducer.dev/clients/go"
	pb "purereducer.dev/clients/go/gen/purereducer/v1"
)

func TestRetryingACommittedActionSaysHowItEnded(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("retry")
	_, err := client.HandleAction(ctx, set(k, map[string]interface{}{"n": 0}))
	must(t, err)
	done, err := client.HandleAction(ctx, set(k, map[string]interface{}{"n": 1}))
	must(t, err)

	_, err = client.RetryAction(ctx, k, done.ActionId)
	wantEqual(t, "refusal", wantCode(t, err, codes.FailedPrecondition), fmt.Sprintf(
		"action %s did not give up: it ended COMMITTED at version 2; only a GAVE_UP action can be retried", done.ActionId))
}

func TestRetryingARejectedActionSaysHowItEnded(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("retry-rejected")
	_, err := client.HandleAction(ctx, fsm(k, "PENDING"))
	must(t, err)
	// PENDING -> COMPLETED is no transition.
	refused, err := client.HandleAction(ctx, fsm(k, "COMPLETED"))
	must(t, err)

	_, err = client.RetryAction(ctx, k, refused.ActionId)
	if msg := wantCode(t, err, codes.FailedPrecondition); !strings.Contains(msg, "it ended REJECTED at version 1") {
		t.Fatalf("the refusal says how the action ended: %q", msg)
	}
}

func TestRetryingAnActionHistoryNeverSawIsNotFound(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("retry-unknown")
	_, err := client.HandleAction(ctx, set(k, nil))
	must(t, err)
	unknown := "00000000-0000-4000-8000-000000000000"
	_, err = client.RetryAction(ctx, k, unknown)
	if msg := wantCode(t, err, codes.NotFound); !strings.Contains(msg, "has no history of action "+unknown) {
		t.Fatalf("the refusal names the action: %q", msg)
	}

	// The action exists, but in another namespace's workflow.
	elsewhere := set(k, nil)
	elsewhere.Namespace = "tenant-retry"
	done, err := client.HandleAction(ctx, elsewhere)
	must(t, err)
	_, err = client.RetryAction(ctx, k, done.ActionId)
	wantCode(t, err, codes.NotFound)
	_, err = client.RetryAction(ctx, k, done.ActionId, purereducer.InNamespace("tenant-retry"))
	wantCode(t, err, codes.FailedPrecondition)

	_, err = client.RetryAction(ctx, k, "not-a-uuid")
	wantCode(t, err, codes.InvalidArgument)
}

func TestAFreshServerHasNoDeadLettersToListOrReplay(t *testing.T) {
	client, ctx := fresh(t), timeout(t)
	_, err := client.HandleAction(ctx, set(key("lettered"), map[string]interface{}{"n": 1}))
	must(t, err)

	for _, limit := range []uint32{0, 1000} {
		letters, err := client.ListDeadLetters(ctx, limit)
		must(t, err)
		wantEqual(t, fmt.Sprintf("dead letters (limit %d)", limit), len(letters), 0)
	}
	_, err = client.ReplayDeadLetter(ctx, 1)
	wantEqual(t, "replay of an unknown letter", wantCode(t, err, codes.NotFound),
		"there is no dead letter 1; list dead letters to find their ids")
	_, err = client.ListDeadLetters(ctx, 1001)
	if msg := wantCode(t, err, codes.InvalidArgument); !strings.Contains(msg, "limit") {
		t.Fatalf("the message names the field: %q", msg)
	}
}

func TestDeleteWorkflowAtAStaleVersionIsRefusedThenDeletes(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("delete")
	for n := 0; n < 2; n++ {
		_, err := client.HandleAction(ctx, set(k, map[string]interface{}{"n": n}))
		must(t, err)
	}

	_, err := client.DeleteWorkflow(ctx, k, 1, "")
	if msg := wantCode(t, err, codes.FailedPrecondition); !strings.Contains(msg, "is at version 2, not 1; nothing was deleted") {
		t.Fatalf("the refusal says the version: %q", msg)
	}
	kept, err := client.GetState(ctx, k)
	must(t, err)
	wantEqual(t, "version after the refusal", kept.Version, uint64(2))

	version, err := client.DeleteWorkflow(ctx, k, 2, "customer asked")
	must(t, err)
	wantEqual(t, "version the deletion took", version, uint64(3))
	_, err = client.GetState(ctx, k)
	if msg := wantCode(t, err, codes.NotFound); !strings.Contains(msg, "deleted at version 3") {
		t.Fatalf("a read of a deleted workflow says so: %q", msg)
	}
	_, err = client.DeleteWorkflow(ctx, k, 0, "")
	if msg := wantCode(t, err, codes.NotFound); !strings.Contains(msg, "deleted at version 3") {
		t.Fatalf("a second deletion says when the first one was: %q", msg)
	}

	page, err := client.GetHistory(ctx, k, purereducer.HistoryPage{Reverse: true, Limit: 1})
	must(t, err)
	if len(page.Entries) != 1 {
		t.Fatalf("the deletion is in the history: %v", page.Entries)
	}
	e := page.Entries[0]
	wantEqual(t, "deletion entry", []interface{}{e.Version, e.Deleted, e.Status, e.ActionType, e.Reason, e.State == nil},
		[]interface{}{uint64(3), true, pb.ActionStatus_ACTION_STATUS_COMMITTED, "DeleteWorkflow", "customer asked", true})

	// Versions never go back: the next action starts the workflow again, from the initial
	// state, at the version after the deletion.
	reborn, err := client.HandleAction(ctx, set(k, map[string]interface{}{"c": 3}))
	must(t, err)
	wantEqual(t, "the workflow again", []interface{}{reborn.Version, reborn.State.AsMap()},
		[]interface{}{uint64(4), map[string]interface{}{"c": 3.0}})
}

func TestDeletingAWorkflowThatDoesNotExistIsNotFound(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("delete-missing")
	_, err := client.DeleteWorkflow(ctx, k, 0, "")
	if msg := wantCode(t, err, codes.NotFound); !strings.Contains(msg, "does not exist") {
		t.Fatalf("the refusal says why: %q", msg)
	}

	// The workflow exists, but in another namespace.
	elsewhere := set(k, nil)
	elsewhere.Namespace = "tenant-delete"
	_, err = client.HandleAction(ctx, elsewhere)
	must(t, err)
	_, err = client.DeleteWorkflow(ctx, k, 0, "")
	wantCode(t, err, codes.NotFound)
	// Expected version 0: whatever its version.
	version, err := client.DeleteWorkflow(ctx, k, 0, "", purereducer.InNamespace("tenant-delete"))
	must(t, err)
	wantEqual(t, "version the deletion took", version, uint64(2))
	_, err = client.GetState(ctx, k, purereducer.InNamespace("tenant-delete"))
	wantCode(t, err, codes.NotFound)

	_, err = client.DeleteWorkflow(ctx, "", 0, "")
	wantCode(t, err, codes.InvalidArgument)
}
