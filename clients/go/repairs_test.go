package purereducer_test

// RetryAction, ListDeadLetters and ReplayDeadLetter against a live reducerd: what each answers
// when there is nothing to repair (a GAVE_UP action or a dead letter needs faults these tests
// cannot inject into a live server).

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	purereducer "purereducer.dev/clients/go"
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
