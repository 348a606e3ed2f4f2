// Example: apply an action, repeat it, read the state and lose a compare-and-set race.
//
//	go run ./example -addr localhost:50051
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

	purereducer "purereducer.dev/clients/go"
	pb "purereducer.dev/clients/go/gen/purereducer/v1"
)

func main() {
	addr := flag.String("addr", "localhost:50051", "reducerd gRPC address")
	key := flag.String("key", fmt.Sprintf("go-example-%d", time.Now().UnixNano()), "workflow key")
	flag.Parse()

	client, err := purereducer.Dial(*addr, purereducer.Options{Token: os.Getenv("PURE_REDUCER_TOKEN")})
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
