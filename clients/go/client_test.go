package purereducer_test

// The wrapper in client.go against a live reducerd: actions, state, compare-and-set, dedup,
// the event bus and projections.

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	purereducer "purereducer.dev/clients/go"
	pb "purereducer.dev/clients/go/gen/purereducer/v1"
)

// set is a "merge" workflow's "set" action on workflow k.
func set(k string, payload map[string]interface{}) purereducer.Action {
	return purereducer.Action{WorkflowKey: k, WorkflowType: "merge", ActionType: "set", Payload: payload}
}

// fsm is an "fsm" workflow's move of workflow k to state to.
func fsm(k, to string) purereducer.Action {
	return purereducer.Action{WorkflowKey: k, WorkflowType: "fsm", ActionType: to}
}

// wantCode fails the test unless err is a status with code want, and returns its message.
func wantCode(t *testing.T, err error, want codes.Code) string {
	t.Helper()
	got, ok := status.FromError(err)
	if err == nil || !ok || got.Code() != want {
		t.Fatalf("want a %v status, got %v", want, err)
	}
	return got.Message()
}

func wantEqual(t *testing.T, what string, got, want interface{}) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: got %#v, want %#v", what, got, want)
	}
}

func TestHandleActionCommitsThenRepeatsAsDuplicate(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("order")
	action := set(k, map[string]interface{}{"customer": "ana", "total": 42})
	first, err := client.HandleAction(ctx, action)
	must(t, err)
	wantEqual(t, "first outcome", []interface{}{first.Status, first.Version, first.WorkflowKey},
		[]interface{}{pb.ActionStatus_ACTION_STATUS_COMMITTED, uint64(1), k})
	wantEqual(t, "state", first.State.AsMap(), map[string]interface{}{"customer": "ana", "total": 42.0})
	if first.ResultHash == "" || first.ActionId == "" || first.CorrelationId == "" {
		t.Fatalf("a commit names its result hash, action and correlation: %v", first)
	}

	action.ActionID, action.CorrelationID = first.ActionId, first.CorrelationId
	again, err := client.HandleAction(ctx, action)
	must(t, err)
	wantEqual(t, "repeat", []interface{}{again.Status, again.Version, again.ResultHash, again.Attempts},
		[]interface{}{pb.ActionStatus_ACTION_STATUS_DUPLICATE, uint64(1), first.ResultHash, uint32(0)})
}

func TestSameActionIDWithAnotherPayloadIsAlreadyExists(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("reuse")
	first, err := client.HandleAction(ctx, set(k, map[string]interface{}{"n": 1}))
	must(t, err)
	reused := set(k, map[string]interface{}{"n": 2})
	reused.ActionID = first.ActionId
	_, err = client.HandleAction(ctx, reused)
	wantCode(t, err, codes.AlreadyExists)
}

func TestGetStateReadsWhatWasCommitted(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("state")
	_, err := client.HandleAction(ctx, set(k, map[string]interface{}{"a": 1, "nested": map[string]interface{}{
		"b": []interface{}{1, 2.5, nil}}}))
	must(t, err)
	_, err = client.HandleAction(ctx, set(k, map[string]interface{}{"a": nil, "c": "x"}))
	must(t, err)

	got, err := client.GetState(ctx, k)
	must(t, err)
	wantEqual(t, "version, type, namespace", []interface{}{got.Version, got.WorkflowType, got.Namespace},
		[]interface{}{uint64(2), "merge", "default"})
	// A merge with null removes the key.
	wantEqual(t, "state", got.State.AsMap(), map[string]interface{}{
		"nested": map[string]interface{}{"b": []interface{}{1.0, 2.5, nil}}, "c": "x"})
	if got.UpdatedAt == nil {
		t.Fatal("a state says when it was committed")
	}
}

func TestGetStateOfAnUnknownKeyIsNotFound(t *testing.T) {
	client, ctx := live(t), timeout(t)
	_, err := client.GetState(ctx, key("missing"))
	wantCode(t, err, codes.NotFound)
}

func TestAnEmptyWorkflowKeyIsInvalidArgument(t *testing.T) {
	client, ctx := live(t), timeout(t)
	_, err := client.HandleAction(ctx, set("", map[string]interface{}{"n": 1}))
	if msg := wantCode(t, err, codes.InvalidArgument); !strings.Contains(msg, "workflow_key") {
		t.Fatalf("the message names the field: %q", msg)
	}
	_, err = client.GetState(ctx, "")
	wantCode(t, err, codes.InvalidArgument)
}

func TestTheSameKeyInTwoNamespacesIsTwoWorkflows(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("tenant")
	for _, ns := range []string{"tenant-a", "tenant-b"} {
		action := set(k, map[string]interface{}{"owner": ns})
		action.Namespace = ns
		done, err := client.HandleAction(ctx, action)
		must(t, err)
		wantEqual(t, "first commit in "+ns, done.Version, uint64(1))
	}
	for _, ns := range []string{"tenant-a", "tenant-b"} {
		got, err := client.GetState(ctx, k, purereducer.InNamespace(ns))
		must(t, err)
		wantEqual(t, "state in "+ns, []interface{}{got.Version, got.Namespace, got.State.AsMap()},
			[]interface{}{uint64(1), ns, map[string]interface{}{"owner": ns}})
	}
	_, err := client.GetState(ctx, k)
	wantCode(t, err, codes.NotFound)
}

func TestTryCommitConflictIsAResultWithTheCurrentVersion(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("cas")
	_, err := client.HandleAction(ctx, set(k, map[string]interface{}{"v": 1}))
	must(t, err)

	committed, version, err := client.TryCommit(ctx, k, 1, map[string]interface{}{"v": 2})
	must(t, err)
	wantEqual(t, "commit at the read version", []interface{}{committed, version}, []interface{}{true, uint64(2)})

	committed, version, err = client.TryCommit(ctx, k, 1, map[string]interface{}{"v": "late"})
	must(t, err)
	wantEqual(t, "commit at a stale version", []interface{}{committed, version}, []interface{}{false, uint64(2)})
	committed, version, err = client.TryCommit(ctx, k, 0, map[string]interface{}{"v": "create"})
	must(t, err)
	wantEqual(t, "create over an existing workflow", []interface{}{committed, version}, []interface{}{false, uint64(2)})

	got, err := client.GetState(ctx, k)
	must(t, err)
	wantEqual(t, "state after the conflicts", got.State.AsMap(), map[string]interface{}{"v": 2.0})
}

func TestTryCommitInANamespaceWithATypeAndProvenance(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("cas-ns")
	ns := purereducer.InNamespace("tenant-cas")
	by := purereducer.Provenance{ActionID: "00000000-0000-4000-8000-00000000ca5e",
		CorrelationID: "00000000-0000-4000-8000-0000000000c0", Actor: "go-test", Reason: "backfill"}
	committed, version, err := client.TryCommit(ctx, k, 0, map[string]interface{}{"v": 1}, ns,
		purereducer.WithWorkflowType("merge"), purereducer.WithProvenance(by))
	must(t, err)
	wantEqual(t, "create in the namespace", []interface{}{committed, version}, []interface{}{true, uint64(1)})

	got, err := client.GetState(ctx, k, ns)
	must(t, err)
	// Without a workflow type the server would have created it as "default".
	wantEqual(t, "state in the namespace", []interface{}{got.Version, got.Namespace, got.WorkflowType, got.State.AsMap()},
		[]interface{}{uint64(1), "tenant-cas", "merge", map[string]interface{}{"v": 1.0}})
	_, err = client.GetState(ctx, k)
	wantCode(t, err, codes.NotFound)
	// The default namespace has no such workflow: a commit there at version 1 conflicts with 0.
	committed, version, err = client.TryCommit(ctx, k, 1, map[string]interface{}{"v": "elsewhere"})
	must(t, err)
	wantEqual(t, "commit in the default namespace", []interface{}{committed, version}, []interface{}{false, uint64(0)})

	page, err := client.GetHistory(ctx, k, purereducer.HistoryPage{}, ns)
	must(t, err)
	if len(page.Entries) != 1 {
		t.Fatalf("one commit, one history entry: %v", page.Entries)
	}
	e := page.Entries[0]
	wantEqual(t, "provenance in the history", []interface{}{e.ActionType, e.ActionId, e.CorrelationId, e.Actor, e.Reason,
		e.WorkflowType}, []interface{}{"TryCommit", by.ActionID, by.CorrelationID, by.Actor, by.Reason, "merge"})

	// The type is set on creation: a later commit that names another one is refused.
	_, _, err = client.TryCommit(ctx, k, 1, map[string]interface{}{"v": 2}, ns, purereducer.WithWorkflowType("fsm"))
	if msg := wantCode(t, err, codes.FailedPrecondition); !strings.Contains(msg, "has type merge, not fsm") {
		t.Fatalf("the refusal names both types: %q", msg)
	}
	committed, version, err = client.TryCommit(ctx, k, 1, map[string]interface{}{"v": 2}, ns,
		purereducer.WithWorkflowType("merge"))
	must(t, err)
	wantEqual(t, "commit with the same type", []interface{}{committed, version}, []interface{}{true, uint64(2)})
}

func TestShouldProcessKnowsHandledActionsAndCleanupExpiredAnswers(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("dedup")
	done, err := client.HandleAction(ctx, set(k, map[string]interface{}{"x": 1}))
	must(t, err)

	unseen, _, err := client.ShouldProcess(ctx, k, "00000000-0000-4000-8000-000000000000")
	must(t, err)
	seen, previous, err := client.ShouldProcess(ctx, k, done.ActionId)
	must(t, err)
	wantEqual(t, "should process a new id, a handled one", []interface{}{unseen, seen}, []interface{}{true, false})
	wantEqual(t, "previous outcome", []interface{}{previous.GetStatus(), previous.GetResultHash()},
		[]interface{}{pb.ActionStatus_ACTION_STATUS_COMMITTED, done.ResultHash})

	_, err = client.CleanupExpired(ctx)
	must(t, err)
}

func TestPublishActionThenWaitForCompletion(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("bus")
	published, err := client.PublishAction(ctx, set(k, map[string]interface{}{"queued": true}))
	must(t, err)
	done, err := client.WaitForCompletion(ctx, published.CorrelationId, 10000, "")
	must(t, err)
	wantEqual(t, "completion", []interface{}{done.Status, done.WorkflowKey, done.Version, done.ActionId},
		[]interface{}{pb.ActionStatus_ACTION_STATUS_COMMITTED, k, uint64(1), published.ActionId})

	// Waiting again after it finished gives the same outcome.
	again, err := client.WaitForCompletion(ctx, published.CorrelationId, 1000, published.ActionId)
	must(t, err)
	wantEqual(t, "second wait", []interface{}{again.Status, again.Version, again.ResultHash},
		[]interface{}{done.Status, done.Version, done.ResultHash})

	_, err = client.WaitForCompletion(ctx, "00000000-0000-4000-8000-000000000000", 200, "")
	wantCode(t, err, codes.DeadlineExceeded)
}

func TestSubscribeReceivesTheCommitsOfItsKeysOnly(t *testing.T) {
	client, ctx := live(t), timeout(t)
	k, decoy := key("sub"), key("decoy")
	subCtx, unsubscribe := context.WithCancel(ctx)
	defer unsubscribe()
	events, err := client.Subscribe(subCtx, &pb.SubscriptionFilter{WorkflowKeys: []string{k}})
	must(t, err)
	// The response headers come once the subscription is in place: commits after them arrive.
	_, err = events.Header()
	must(t, err)

	for i := 0; i < 3; i++ {
		_, err = client.HandleAction(ctx, set(decoy, map[string]interface{}{"i": i}))
		must(t, err)
		_, err = client.HandleAction(ctx, set(k, map[string]interface{}{"i": i}))
		must(t, err)
	}
	wantEqual(t, "versions in order", commits(t, events, k, 3), []uint64{1, 2, 3})
}

// commits receives the next n StateCommitted events of events (skipping other kinds) and
// returns their versions, failing the test unless each is of workflow k with the "i" that
// set(k, {"i": version - 1}) committed.
func commits(t *testing.T, events pb.EventBusService_SubscribeClient, k string, n int) []uint64 {
	t.Helper()
	var versions []uint64
	for len(versions) < n {
		event, err := events.Recv()
		must(t, err)
		commit := event.GetEvent().GetStateCommitted()
		if commit == nil {
			continue
		}
		if commit.WorkflowKey != k {
			t.Fatalf("the filter let through a commit of %s", commit.WorkflowKey)
		}
		wantEqual(t, "committed state", commit.State.AsMap()["i"], float64(commit.Version-1))
		versions = append(versions, commit.Version)
	}
	return versions
}

func TestSubscribeReplayFromAVersionThenFollowsLive(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("replay")
	for i := 0; i < 3; i++ {
		_, err := client.HandleAction(ctx, set(k, map[string]interface{}{"i": i}))
		must(t, err)
	}
	subCtx, unsubscribe := context.WithCancel(ctx)
	defer unsubscribe()
	events, err := client.Subscribe(subCtx, &pb.SubscriptionFilter{WorkflowKeys: []string{k}}, purereducer.ReplayFrom(1))
	must(t, err)
	wantEqual(t, "replayed versions", commits(t, events, k, 3), []uint64{1, 2, 3})

	// Then live, with no repeat at the seam: the next commit is the next event.
	_, err = client.HandleAction(ctx, set(k, map[string]interface{}{"i": 3}))
	must(t, err)
	wantEqual(t, "live version after the replay", commits(t, events, k, 1), []uint64{4})
}

func TestSubscribeReplayInANamespaceAndWithoutKeys(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("replay-ns")
	for i := 0; i < 3; i++ {
		action := set(k, map[string]interface{}{"i": i})
		action.Namespace = "tenant-replay"
		_, err := client.HandleAction(ctx, action)
		must(t, err)
	}
	subCtx, unsubscribe := context.WithCancel(ctx)
	defer unsubscribe()
	events, err := client.Subscribe(subCtx, &pb.SubscriptionFilter{Namespaces: []string{"tenant-replay"},
		WorkflowKeys: []string{k}}, purereducer.ReplayFrom(2))
	must(t, err)
	wantEqual(t, "replayed versions from 2", commits(t, events, k, 2), []uint64{2, 3})

	// A replay needs the keys to read the history of.
	refused, err := client.Subscribe(subCtx, &pb.SubscriptionFilter{}, purereducer.ReplayFrom(1))
	must(t, err)
	_, err = refused.Recv()
	if msg := wantCode(t, err, codes.InvalidArgument); !strings.Contains(msg, "from_version") {
		t.Fatalf("the message names the field: %q", msg)
	}
}

func TestGetProjectionWaitsForMinVersionThenFallsBackToCanonical(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("proj")
	for _, to := range []string{"PENDING", "PROCESSING"} {
		_, err := client.HandleAction(ctx, fsm(k, to))
		must(t, err)
	}
	caught, err := client.GetProjection(ctx, k, 2, 5000)
	must(t, err)
	wantEqual(t, "projection at version 2", []interface{}{caught.FromCanonical, caught.Projection.GetVersion(),
		caught.Projection.GetLastAction()}, []interface{}{false, uint64(2), "PROCESSING"})

	// A version that never comes: after max_wait_ms the answer is built from canonical state.
	late, err := client.GetProjection(ctx, k, 99, 300)
	must(t, err)
	wantEqual(t, "projection of a version never reached", []interface{}{late.FromCanonical, late.Projection.GetVersion()},
		[]interface{}{true, uint64(2)})
}

func TestListWatermarksShowsTheMaterializerPastACommit(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("watermark")
	_, err := client.HandleAction(ctx, set(k, map[string]interface{}{"n": 1}))
	must(t, err)
	// The projection and its watermark commit together: once the projection has the commit,
	// a watermark covers it.
	caught, err := client.GetProjection(ctx, k, 1, 5000)
	must(t, err)
	wantEqual(t, "projection from the materializer", caught.FromCanonical, false)

	watermarks, err := client.ListWatermarks(ctx)
	must(t, err)
	if len(watermarks) == 0 {
		t.Fatal("no watermark after the materializer applied a commit")
	}
	for _, w := range watermarks {
		if w.Topic == "" || w.Offset < 1 || w.UpdatedAt == nil {
			t.Fatalf("a watermark names its topic, a position past the commit and when it moved: %v", w)
		}
	}
}
