package purereducer_test

// GetHistory and ListWorkflows against a live reducerd.

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	purereducer "purereducer.dev/clients/go"
	pb "purereducer.dev/clients/go/gen/purereducer/v1"
)

// entry is what a test compares of a history entry.
type entry struct {
	version  uint64
	status   pb.ActionStatus
	actionID string
}

func entries(page *pb.GetHistoryResponse) []entry {
	var brief []entry
	for _, e := range page.Entries {
		brief = append(brief, entry{e.Version, e.Status, e.ActionId})
	}
	return brief
}

func TestHistoryOfTwoCommitsAndARefusalPagesForwardAndInReverse(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("history")
	var outcomes []*pb.HandleActionResponse
	// PROCESSING -> PENDING is no transition: the third action is refused.
	for _, to := range []string{"PENDING", "PROCESSING", "PENDING"} {
		done, err := client.HandleAction(ctx, fsm(k, to))
		must(t, err)
		outcomes = append(outcomes, done)
	}
	created, started, refused := outcomes[0], outcomes[1], outcomes[2]
	wantEqual(t, "outcomes", []pb.ActionStatus{created.Status, started.Status, refused.Status},
		[]pb.ActionStatus{pb.ActionStatus_ACTION_STATUS_COMMITTED, pb.ActionStatus_ACTION_STATUS_COMMITTED,
			pb.ActionStatus_ACTION_STATUS_REJECTED})
	committed, rejected := pb.ActionStatus_ACTION_STATUS_COMMITTED, pb.ActionStatus_ACTION_STATUS_REJECTED

	first, err := client.GetHistory(ctx, k, purereducer.HistoryPage{Limit: 2})
	must(t, err)
	wantEqual(t, "history of", []string{first.WorkflowKey, first.Namespace}, []string{k, "default"})
	wantEqual(t, "first page", entries(first), []entry{{1, committed, created.ActionId}, {2, committed, started.ActionId}})
	if first.NextPageToken == "" {
		t.Fatal("a page with more to come has a next page token")
	}
	rest, err := client.GetHistory(ctx, k, purereducer.HistoryPage{Limit: 2, PageToken: first.NextPageToken})
	must(t, err)
	wantEqual(t, "last page", entries(rest), []entry{{2, rejected, refused.ActionId}})
	wantEqual(t, "token of the last page", rest.NextPageToken, "")

	commit, refusal := first.Entries[1], rest.Entries[0]
	wantEqual(t, "commit entry", []interface{}{commit.ActionType, commit.CorrelationId, commit.ResultHash, commit.Actor,
		commit.WorkflowType}, []interface{}{"PROCESSING", started.CorrelationId, started.ResultHash, "reducer-service", "fsm"})
	wantEqual(t, "committed state", commit.State.AsMap(), started.State.AsMap())
	if commit.RecordedAt == nil {
		t.Fatal("an entry says when it was recorded")
	}
	// A refusal changed nothing, so it has no state.
	wantEqual(t, "refusal entry", []interface{}{refusal.State == nil, refusal.ActionType, refusal.Reason},
		[]interface{}{true, "PENDING", refused.RejectionReason})

	newest, err := client.GetHistory(ctx, k, purereducer.HistoryPage{Limit: 2, Reverse: true})
	must(t, err)
	wantEqual(t, "newest page", entries(newest), []entry{{2, rejected, refused.ActionId}, {2, committed, started.ActionId}})
	oldest, err := client.GetHistory(ctx, k, purereducer.HistoryPage{Limit: 2, Reverse: true, PageToken: newest.NextPageToken})
	must(t, err)
	wantEqual(t, "oldest page", entries(oldest), []entry{{1, committed, created.ActionId}})
	wantEqual(t, "token of the oldest page", oldest.NextPageToken, "")
}

func TestHistoryFromAVersion(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("from")
	for n := 0; n < 3; n++ {
		_, err := client.HandleAction(ctx, set(k, map[string]interface{}{"n": n}))
		must(t, err)
	}
	versions := func(page purereducer.HistoryPage) []uint64 {
		got, err := client.GetHistory(ctx, k, page)
		must(t, err)
		var vs []uint64
		for _, e := range got.Entries {
			vs = append(vs, e.Version)
		}
		return vs
	}
	wantEqual(t, "forward from 2", versions(purereducer.HistoryPage{FromVersion: 2}), []uint64{2, 3})
	wantEqual(t, "back from 2", versions(purereducer.HistoryPage{FromVersion: 2, Reverse: true}), []uint64{2, 1})
}

func TestAHistoryTokenIsRefusedInTheOtherDirection(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("token")
	for n := 0; n < 2; n++ {
		_, err := client.HandleAction(ctx, set(k, map[string]interface{}{"n": n}))
		must(t, err)
	}
	forward, err := client.GetHistory(ctx, k, purereducer.HistoryPage{Limit: 1})
	must(t, err)
	_, err = client.GetHistory(ctx, k, purereducer.HistoryPage{Limit: 1, Reverse: true, PageToken: forward.NextPageToken})
	if msg := wantCode(t, err, codes.InvalidArgument); !strings.Contains(msg, "page_token") {
		t.Fatalf("the message names the field: %q", msg)
	}
}

func TestGetHistoryInANamespace(t *testing.T) {
	client, ctx, k := live(t), timeout(t), key("ns-history")
	action := set(k, map[string]interface{}{"n": 1})
	action.Namespace = "tenant-history"
	done, err := client.HandleAction(ctx, action)
	must(t, err)

	page, err := client.GetHistory(ctx, k, purereducer.HistoryPage{}, purereducer.InNamespace("tenant-history"))
	must(t, err)
	wantEqual(t, "history in the namespace", []interface{}{page.Namespace, entries(page)},
		[]interface{}{"tenant-history", []entry{{1, pb.ActionStatus_ACTION_STATUS_COMMITTED, done.ActionId}}})
	// The default namespace has no such workflow, so no history of it.
	other, err := client.GetHistory(ctx, k, purereducer.HistoryPage{})
	must(t, err)
	wantEqual(t, "history in the default namespace", []interface{}{other.Namespace, len(other.Entries)},
		[]interface{}{"default", 0})
}

func TestListWorkflowsByPrefixAPageAtATime(t *testing.T) {
	client, ctx := live(t), timeout(t)
	prefix := key("list") + "/"
	keys := []string{prefix + "a", prefix + "b", prefix + "c"}
	since := time.Now().Add(-time.Second)
	// Listed in key order, not in commit order.
	for i := len(keys) - 1; i >= 0; i-- {
		_, err := client.HandleAction(ctx, set(keys[i], map[string]interface{}{"status": "open"}))
		must(t, err)
	}
	// Shares the start of the prefix, not the prefix.
	_, err := client.HandleAction(ctx, set(strings.TrimSuffix(prefix, "/"), nil))
	must(t, err)
	elsewhere := set(prefix+"elsewhere", nil)
	elsewhere.Namespace = "tenant-list"
	_, err = client.HandleAction(ctx, elsewhere)
	must(t, err)

	first, err := client.ListWorkflows(ctx, purereducer.WorkflowFilter{KeyPrefix: prefix, Limit: 2})
	must(t, err)
	wantEqual(t, "first page", workflowKeys(first), keys[:2])
	if first.NextPageToken == "" {
		t.Fatal("a page with more to come has a next page token")
	}
	rest, err := client.ListWorkflows(ctx, purereducer.WorkflowFilter{KeyPrefix: prefix, Limit: 2,
		PageToken: first.NextPageToken})
	must(t, err)
	wantEqual(t, "last page", workflowKeys(rest), keys[2:])
	wantEqual(t, "token of the last page", rest.NextPageToken, "")

	summary := first.Workflows[0]
	wantEqual(t, "summary", []interface{}{summary.Namespace, summary.WorkflowType, summary.Version, summary.Tag},
		[]interface{}{"default", "merge", uint64(1), "open"})
	if summary.UpdatedAt.AsTime().Before(since) {
		t.Fatalf("updated_at %v is before the commit", summary.UpdatedAt.AsTime())
	}
}

func TestListWorkflowsFiltersCombine(t *testing.T) {
	client, ctx := live(t), timeout(t)
	prefix := key("filter") + "/"
	since := time.Now().Add(-time.Second)
	for _, action := range []purereducer.Action{set(prefix+"open", map[string]interface{}{"status": "open"}),
		set(prefix+"closed", map[string]interface{}{"status": "closed"}), fsm(prefix+"job", "PENDING")} {
		_, err := client.HandleAction(ctx, action)
		must(t, err)
	}
	otherNamespace := set(prefix+"other-ns", nil)
	otherNamespace.Namespace = "tenant-filter"
	_, err := client.HandleAction(ctx, otherNamespace)
	must(t, err)

	listed := func(filter purereducer.WorkflowFilter, opts ...purereducer.CallOption) []string {
		filter.KeyPrefix = prefix
		page, err := client.ListWorkflows(ctx, filter, opts...)
		must(t, err)
		return workflowKeys(page)
	}
	all := []string{prefix + "closed", prefix + "job", prefix + "open"}
	wantEqual(t, "no filter", listed(purereducer.WorkflowFilter{}), all)
	wantEqual(t, "by tag", listed(purereducer.WorkflowFilter{Tag: "closed"}), []string{prefix + "closed"})
	wantEqual(t, "by type", listed(purereducer.WorkflowFilter{WorkflowType: "fsm"}), []string{prefix + "job"})
	wantEqual(t, "updated after", listed(purereducer.WorkflowFilter{UpdatedAfter: since}), all)
	wantEqual(t, "updated before", listed(purereducer.WorkflowFilter{UpdatedBefore: since}), []string(nil))
	wantEqual(t, "in a namespace", listed(purereducer.WorkflowFilter{}, purereducer.InNamespace("tenant-filter")),
		[]string{prefix + "other-ns"})
}

func workflowKeys(page *pb.ListWorkflowsResponse) []string {
	var keys []string
	for _, w := range page.Workflows {
		keys = append(keys, w.WorkflowKey)
	}
	return keys
}
