// Example: apply an action, repeat it, read the state, lose a compare-and-set race, watch
// a commit arrive on a subscription and keep one key apart in two namespaces.
//
//	go run ./example -addr localhost:50051
//	go run ./example -addr reducer.internal:50051 -tls -ca-file ca.pem -token "$TOKEN"
//
// Exits non-zero when the server does not answer as documented (the client tests run it).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	purereducer "purereducer.dev/clients/go"
	pb "purereducer.dev/clients/go/gen/purereducer/v1"
)

func main() {
	addr := flag.String("addr", "localhost:50051", "reducerd gRPC address")
	key := flag.String("key", fmt.Sprintf("go-example-%d", time.Now().UnixNano()), "workflow key")
	useTLS := flag.Bool("tls", false, "connect with TLS")
	caFile := flag.String("ca-file", "", "PEM file of the CAs that sign the server's certificate (default: the system roots)")
	clientCert := flag.String("client-cert", "", "PEM file of a client certificate, for mutual TLS")
	clientKey := flag.String("client-key", "", "PEM file of the client certificate's key")
	token := flag.String("token", os.Getenv("PURE_REDUCER_TOKEN"), "bearer token (default: $PURE_REDUCER_TOKEN)")
	flag.Parse()

	client, err := purereducer.Dial(*addr, purereducer.Options{TLS: *useTLS, CAFile: *caFile,
		ClientCertFile: *clientCert, ClientKeyFile: *clientKey, Token: *token})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	action := purereducer.Action{WorkflowKey: *key, WorkflowType: "merge", ActionType: "set",
		Payload: map[string]interface{}{"customer": "ana", "total": 42}}
	first, err := client.HandleAction(ctx, action)
	check(err)
	fmt.Printf("handle-action: %s version %d\n", first.Status, first.Version)
	expect(first.Status == pb.ActionStatus_ACTION_STATUS_COMMITTED && first.Version == 1, "first action commits version 1")

	// The same action id again is not applied again.
	action.ActionID = first.ActionId
	again, err := client.HandleAction(ctx, action)
	check(err)
	fmt.Printf("repeat: %s version %d\n", again.Status, again.Version)
	expect(again.Status == pb.ActionStatus_ACTION_STATUS_DUPLICATE && again.ResultHash == first.ResultHash,
		"a repeated action id is a DUPLICATE with the same result hash")

	state, err := client.GetState(ctx, *key)
	check(err)
	fmt.Printf("get-state: version %d state %v\n", state.Version, state.State.AsMap())
	expect(state.State.AsMap()["total"] == 42.0, "the state holds the payload")

	committed, version, err := client.TryCommit(ctx, *key, 0, map[string]interface{}{"late": true})
	check(err)
	fmt.Printf("try-commit with a stale version: committed=%v current version %d\n", committed, version)
	expect(!committed && version == 1, "a stale expected_version is a conflict carrying the current version")

	// Subscribe, wait for the server's response headers (sent once the subscription is in
	// place), then commit: the commit arrives on the stream. Events reach subscribers a little
	// after their commit, so earlier commits of the key may come first, in version order.
	subCtx, unsubscribe := context.WithCancel(ctx)
	defer unsubscribe()
	events, err := client.Subscribe(subCtx, &pb.SubscriptionFilter{WorkflowKeys: []string{*key}})
	check(err)
	_, err = events.Header()
	check(err)
	action.ActionID = ""
	action.Payload = map[string]interface{}{"total": 43}
	next, err := client.HandleAction(ctx, action)
	check(err)
	expect(next.Status == pb.ActionStatus_ACTION_STATUS_COMMITTED && next.Version == 2, "the next action commits version 2")
	var last uint64
	for {
		event, err := events.Recv()
		check(err)
		commit := event.GetEvent().GetStateCommitted()
		if commit == nil {
			continue
		}
		fmt.Printf("subscribe: state committed at version %d\n", commit.Version)
		expect(commit.WorkflowKey == *key && commit.Version > last && commit.Version <= next.Version,
			"the subscription sees its key's commits, in version order")
		last = commit.Version
		if commit.Version == next.Version {
			break
		}
	}

	// A workflow is (namespace, key): the same key in two namespaces is two workflows, and
	// the default namespace has neither.
	tenantKey := *key + "-tenant"
	for _, ns := range []string{"tenant-a", "tenant-b"} {
		done, err := client.HandleAction(ctx, purereducer.Action{WorkflowKey: tenantKey, WorkflowType: "merge",
			ActionType: "set", Payload: map[string]interface{}{"owner": ns}, Namespace: ns})
		check(err)
		expect(done.Status == pb.ActionStatus_ACTION_STATUS_COMMITTED && done.Version == 1,
			"the first action in each namespace commits version 1")
	}
	for _, ns := range []string{"tenant-a", "tenant-b"} {
		got, err := client.GetState(ctx, tenantKey, purereducer.InNamespace(ns))
		check(err)
		fmt.Printf("get-state in %s: version %d state %v\n", ns, got.Version, got.State.AsMap())
		expect(got.Version == 1 && got.State.AsMap()["owner"] == ns && got.Namespace == ns,
			"each namespace sees its own state at version 1")
	}
	_, err = client.GetState(ctx, tenantKey)
	expect(status.Code(err) == codes.NotFound, "the default namespace does not see the tenants' workflow")
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func expect(ok bool, what string) {
	if !ok {
		log.Fatalf("unexpected answer: %s", what)
	}
}
