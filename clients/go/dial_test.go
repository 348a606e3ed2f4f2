package purereducer_test

// Dial's options and HandleAction's retries, against an in-process stand-in for reducerd that
// fails on purpose (no live server needed).

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	purereducer "purereducer.dev/clients/go"
	pb "purereducer.dev/clients/go/gen/purereducer/v1"
)

// failingReducer answers the first HandleAction with first (when set), the next ones with a
// commit, and records every call.
type failingReducer struct {
	pb.UnimplementedReducerServiceServer
	first error

	mu    sync.Mutex
	calls []call
}

// call is what one HandleAction request carried.
type call struct {
	actionID, correlationID, authorization string
}

func (f *failingReducer) HandleAction(ctx context.Context, req *pb.HandleActionRequest) (*pb.HandleActionResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{req.Action.ActionId, req.Action.CorrelationId, strings.Join(md.Get("authorization"), ",")})
	if len(f.calls) == 1 && f.first != nil {
		return nil, f.first
	}
	return &pb.HandleActionResponse{Status: pb.ActionStatus_ACTION_STATUS_COMMITTED, Version: 1,
		ActionId: req.Action.ActionId}, nil
}

// serve runs reducer on a free port until the test ends and returns its address.
func serve(t *testing.T, reducer pb.ReducerServiceServer) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	server := grpc.NewServer()
	pb.RegisterReducerServiceServer(server, reducer)
	go server.Serve(listener)
	t.Cleanup(server.Stop)
	return listener.Addr().String()
}

func TestHandleActionRetriesUnavailableWithTheSameIDsAndSendsTheToken(t *testing.T) {
	reducer := &failingReducer{first: status.Error(codes.Unavailable, "restarting")}
	client, err := purereducer.Dial(serve(t, reducer), purereducer.Options{Token: "s3cret"})
	must(t, err)
	defer client.Close()

	reply, err := client.HandleAction(timeout(t), set("k-1", map[string]interface{}{"x": 1}))
	must(t, err)
	wantEqual(t, "outcome", reply.Status, pb.ActionStatus_ACTION_STATUS_COMMITTED)
	if len(reducer.calls) != 2 {
		t.Fatalf("want one retry, got %d calls", len(reducer.calls))
	}
	first, second := reducer.calls[0], reducer.calls[1]
	wantEqual(t, "retried action id", []string{first.actionID, second.actionID}, []string{reply.ActionId, reply.ActionId})
	wantEqual(t, "retried correlation id", second.correlationID, first.correlationID)
	wantEqual(t, "authorization", first.authorization, "Bearer s3cret")
}

func TestHandleActionDoesNotRetryOtherErrors(t *testing.T) {
	reducer := &failingReducer{first: status.Error(codes.FailedPrecondition, "no")}
	client, err := purereducer.Dial(serve(t, reducer), purereducer.Options{})
	must(t, err)
	defer client.Close()

	_, err = client.HandleAction(timeout(t), set("k-1", nil))
	wantCode(t, err, codes.FailedPrecondition)
	wantEqual(t, "calls", len(reducer.calls), 1)
}

func TestTLSOptionsAreRefusedWithoutTLS(t *testing.T) {
	_, err := purereducer.Dial("localhost:1", purereducer.Options{CAFile: "ca.pem"})
	if err == nil || !strings.Contains(err.Error(), "need TLS") {
		t.Fatalf("want an error saying the options need TLS, got %v", err)
	}
}

func TestClientCertAndKeyGoTogether(t *testing.T) {
	_, err := purereducer.Dial("localhost:1", purereducer.Options{TLS: true, ClientCertFile: "client.pem"})
	if err == nil || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("want an error saying cert and key go together, got %v", err)
	}
}

func TestAMissingOrEmptyCAFileIsAnErrorAtDial(t *testing.T) {
	dir := t.TempDir()
	_, err := purereducer.Dial("localhost:1", purereducer.Options{TLS: true, CAFile: filepath.Join(dir, "missing.pem")})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("want a missing-file error, got %v", err)
	}
	empty := filepath.Join(dir, "empty.pem")
	must(t, os.WriteFile(empty, nil, 0o600))
	_, err = purereducer.Dial("localhost:1", purereducer.Options{TLS: true, CAFile: empty})
	if err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Fatalf("want an error saying the file holds no certificate, got %v", err)
	}
}
