// Package purereducer is a thin client over the generated gRPC stubs in gen/purereducer/v1.
//
// Layout:
//   - client.go: Dial and its options; actions, state, dedup, the event bus and projections
//   - history.go: GetHistory and ListWorkflows, a page at a time
//   - repairs.go: RetryAction, ListDeadLetters, ReplayDeadLetter and DeleteWorkflow (admin)
package purereducer

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	mathrand "math/rand"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	pb "purereducer.dev/clients/go/gen/purereducer/v1"
)

// Options configure Dial.
type Options struct {
	// TLS connects with TLS, verifying the server's certificate against RootCAs or CAFile, or
	// the system roots when neither is set. The other TLS options need it.
	TLS bool
	// RootCAs are the CAs trusted to sign the server's certificate.
	RootCAs *x509.CertPool
	// CAFile is a PEM file of those CAs, instead of RootCAs.
	CAFile string
	// ClientCertFile and ClientKeyFile are PEM files of a client certificate (chain, leaf
	// first) and its key, for a server that requires client certificates (mutual TLS). Both
	// or neither.
	ClientCertFile, ClientKeyFile string
	// Token is sent as "authorization: Bearer <token>" on every call, streams included. It is
	// sent without TLS too, for a reducerd behind a TLS-terminating proxy or sidecar on the
	// same host; across a network, a token on a plaintext connection can be read off the wire.
	Token string
	// Retries of UNAVAILABLE and DEADLINE_EXCEEDED for HandleAction and PublishAction.
	Retries int
}

// Client talks to reducerd. The generated clients are exported for calls not wrapped here.
type Client struct {
	conn       *grpc.ClientConn
	retries    int
	Reducer    pb.ReducerServiceClient
	Store      pb.CanonicalStoreServiceClient
	Dedup      pb.ActionDedupServiceClient
	Bus        pb.EventBusServiceClient
	Projection pb.ProjectionServiceClient
}

// Dial connects to target ("host:port"). Files named in opts are read now: a missing or
// malformed one is an error here, not at the first call.
func Dial(target string, opts Options) (*Client, error) {
	dialOpts := []grpc.DialOption{grpc.WithInsecure()}
	if opts.TLS {
		transport, err := tlsCredentials(opts)
		if err != nil {
			return nil, err
		}
		dialOpts = []grpc.DialOption{grpc.WithTransportCredentials(transport)}
	} else if opts.RootCAs != nil || opts.CAFile != "" || opts.ClientCertFile != "" || opts.ClientKeyFile != "" {
		return nil, errors.New("purereducer: RootCAs, CAFile, ClientCertFile and ClientKeyFile need TLS")
	}
	if opts.Token != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearer{header: "Bearer " + opts.Token, tls: opts.TLS}))
	}
	conn, err := grpc.Dial(target, dialOpts...)
	if err != nil {
		return nil, err
	}
	retries := opts.Retries
	if retries == 0 {
		retries = 3
	}
	return &Client{
		conn:       conn,
		retries:    retries,
		Reducer:    pb.NewReducerServiceClient(conn),
		Store:      pb.NewCanonicalStoreServiceClient(conn),
		Dedup:      pb.NewActionDedupServiceClient(conn),
		Bus:        pb.NewEventBusServiceClient(conn),
		Projection: pb.NewProjectionServiceClient(conn),
	}, nil
}

// tlsCredentials is TLS as opts ask for it.
func tlsCredentials(opts Options) (credentials.TransportCredentials, error) {
	config := &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12}
	if opts.CAFile != "" {
		if opts.RootCAs != nil {
			return nil, errors.New("purereducer: set CAFile or RootCAs, not both")
		}
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("purereducer: CA file: %w", err)
		}
		config.RootCAs = x509.NewCertPool()
		if !config.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("purereducer: CA file %s holds no PEM certificate", opts.CAFile)
		}
	}
	if (opts.ClientCertFile == "") != (opts.ClientKeyFile == "") {
		return nil, errors.New("purereducer: ClientCertFile and ClientKeyFile go together")
	}
	if opts.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.ClientCertFile, opts.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("purereducer: client certificate: %w", err)
		}
		config.Certificates = []tls.Certificate{cert}
	}
	// NewTLS offers ALPN "h2", which reducerd requires.
	return credentials.NewTLS(config), nil
}

// bearer sends the token as per-RPC credentials.
type bearer struct {
	header string
	tls    bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": b.header}, nil
}

// RequireTransportSecurity is true on TLS connections, so grpc never sends the token on a
// connection without transport security. On a plaintext connection (Options.TLS false) it is
// false, or grpc would refuse to send the token at all: that is the case of a reducerd behind
// a TLS-terminating proxy or sidecar on the same host, where the hop in the clear is local.
func (b bearer) RequireTransportSecurity() bool { return b.tls }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Action is an action to apply; empty ActionID and CorrelationID get new UUIDs.
type Action struct {
	WorkflowKey, WorkflowType, ActionType string
	Payload                               map[string]interface{}
	ActionID, CorrelationID, Namespace    string
}

func (a Action) proto() (*pb.Action, error) {
	payload, err := structpb.NewStruct(a.Payload)
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	// Ids are fixed here, once, so that every retry sends the very same action.
	if a.ActionID == "" {
		a.ActionID = newUUID()
	}
	if a.CorrelationID == "" {
		a.CorrelationID = newUUID()
	}
	return &pb.Action{ActionId: a.ActionID, WorkflowKey: a.WorkflowKey, WorkflowType: a.WorkflowType,
		ActionType: a.ActionType, Payload: payload, CorrelationId: a.CorrelationID, Namespace: a.Namespace}, nil
}

// CallOption adjusts one call: GetState, TryCommit, ShouldProcess, WaitForCompletion,
// Subscribe, GetProjection, GetHistory, ListWorkflows, RetryAction and DeleteWorkflow take any
// number of them after their arguments. Each option says which calls use it; the others
// ignore it.
type CallOption func(*callOptions)

type callOptions struct {
	namespace    string
	workflowType string
	provenance   *pb.Provenance
	fromVersion  uint64
}

// InNamespace addresses the workflow in namespace ns; without it (or with "") the server
// uses "default". A workflow is (namespace, workflow key): the same key in two namespaces is
// two workflows, and a completion is only found in the namespace its action was published in.
// Every call that takes CallOptions uses it, but Subscribe: its filter names the namespaces.
func InNamespace(ns string) CallOption {
	return func(o *callOptions) { o.namespace = ns }
}

// WithWorkflowType gives TryCommit the workflow type: the type a commit that creates the
// workflow gives it (without it, "default"), and one a later commit must match
// (FAILED_PRECONDITION when it does not). Only TryCommit uses it.
func WithWorkflowType(workflowType string) CallOption {
	return func(o *callOptions) { o.workflowType = workflowType }
}

// Provenance says who or what made the change a TryCommit writes; the server keeps it with
// the version and in the history entry (GetHistory: ActionId, CorrelationId, Actor, Reason).
type Provenance struct {
	// ActionID is the action that produced the change, when there is one.
	ActionID string
	// CorrelationID of the request that produced the change; a new UUID when empty.
	CorrelationID string
	// Actor is a free-form name of the writer (service, user or job).
	Actor string
	// Reason is a free-form reason for the change.
	Reason string
}

// WithProvenance gives TryCommit the provenance of its change. Only TryCommit uses it.
func WithProvenance(p Provenance) CallOption {
	return func(o *callOptions) {
		o.provenance = &pb.Provenance{ActionId: p.ActionID, CorrelationId: p.CorrelationID, Actor: p.Actor,
			Reason: p.Reason}
	}
}

// ReplayFrom makes Subscribe replay from history the events of each workflow its filter's
// WorkflowKeys name, from version v on, then follow live events with no gap and no repeat at
// the seam. The keys are those of the filter's namespace: Namespaces names at most one
// ("default" when empty). Without WorkflowKeys, or with more namespaces, the stream fails with
// INVALID_ARGUMENT; when history retention already removed a version asked for, with
// OUT_OF_RANGE (both from the stream's Recv). 0, or no ReplayFrom, follows live events only.
// Only Subscribe uses it.
func ReplayFrom(v uint64) CallOption {
	return func(o *callOptions) { o.fromVersion = v }
}

func collect(opts []CallOption) callOptions {
	var o callOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// HandleAction applies an action. UNAVAILABLE and DEADLINE_EXCEEDED are retried with the same
// action id, so it applies once; a retry after a lost reply comes back as DUPLICATE.
func (c *Client) HandleAction(ctx context.Context, a Action) (*pb.HandleActionResponse, error) {
	action, err := a.proto()
	if err != nil {
		return nil, err
	}
	var reply *pb.HandleActionResponse
	err = c.retrying(ctx, func(ctx context.Context) (err error) {
		reply, err = c.Reducer.HandleAction(ctx, &pb.HandleActionRequest{Action: action})
		return err
	})
	return reply, err
}

// GetState reads the current state; a NOT_FOUND status for an unknown key.
func (c *Client) GetState(ctx context.Context, workflowKey string, opts ...CallOption) (*pb.GetStateResponse, error) {
	o := collect(opts)
	return c.Store.GetState(ctx, &pb.GetStateRequest{WorkflowKey: workflowKey, Namespace: o.namespace})
}

// TryCommit commits state if the stored version is expected (0: create, the workflow must not
// exist yet). On a conflict committed is false and version is the stored version (0 when the
// workflow does not exist); a conflict is not an error. It takes InNamespace, WithWorkflowType
// and WithProvenance; the namespace and type are set on creation and must match afterwards.
func (c *Client) TryCommit(ctx context.Context, workflowKey string, expected uint64,
	state map[string]interface{}, opts ...CallOption) (committed bool, version uint64, err error) {
	s, err := structpb.NewStruct(state)
	if err != nil {
		return false, 0, fmt.Errorf("state: %w", err)
	}
	o := collect(opts)
	reply, err := c.Store.TryCommit(ctx, &pb.TryCommitRequest{WorkflowKey: workflowKey, ExpectedVersion: expected, State: s,
		Provenance: o.provenance, WorkflowType: o.workflowType, Namespace: o.namespace})
	if err != nil {
		return false, 0, err
	}
	if done := reply.GetCommitted(); done != nil {
		return true, done.Version, nil
	}
	return false, reply.GetConflict().GetCurrentVersion(), nil
}

// ShouldProcess reports whether an action id is new, with the earlier outcome when not.
func (c *Client) ShouldProcess(ctx context.Context, workflowKey, actionID string, opts ...CallOption) (bool, *pb.ProcessedAction, error) {
	o := collect(opts)
	reply, err := c.Dedup.ShouldProcess(ctx, &pb.ShouldProcessRequest{WorkflowKey: workflowKey, ActionId: actionID,
		Namespace: o.namespace})
	if err != nil {
		return false, nil, err
	}
	return reply.ShouldProcess, reply.Previous, nil
}

// CleanupExpired deletes expired dedup records and returns how many.
func (c *Client) CleanupExpired(ctx context.Context) (uint64, error) {
	reply, err := c.Dedup.CleanupExpired(ctx, &pb.CleanupExpiredRequest{})
	return reply.GetDeleted(), err
}

// PublishAction queues an action; WaitForCompletion(reply.CorrelationId) gives its outcome.
func (c *Client) PublishAction(ctx context.Context, a Action) (*pb.PublishActionResponse, error) {
	action, err := a.proto()
	if err != nil {
		return nil, err
	}
	var reply *pb.PublishActionResponse
	err = c.retrying(ctx, func(ctx context.Context) (err error) {
		reply, err = c.Bus.PublishAction(ctx, &pb.PublishActionRequest{Action: action})
		return err
	})
	return reply, err
}

// WaitForCompletion waits up to timeoutMs (the server default when 0) for a published action.
// With several actions under one correlation id, actionID picks one ("" for the first to
// complete; the reply names its action).
func (c *Client) WaitForCompletion(ctx context.Context, correlationID string, timeoutMs uint32, actionID string,
	opts ...CallOption) (*pb.WaitForCompletionResponse, error) {
	o := collect(opts)
	return c.Bus.WaitForCompletion(ctx, &pb.WaitForCompletionRequest{CorrelationId: correlationID, TimeoutMs: timeoutMs,
		ActionId: actionID, Namespace: o.namespace})
}

// Subscribe streams matching events, in version order per key, until ctx is cancelled. With
// ReplayFrom(v) it first replays each key of filter.WorkflowKeys from version v out of
// history, then follows live.
func (c *Client) Subscribe(ctx context.Context, filter *pb.SubscriptionFilter,
	opts ...CallOption) (pb.EventBusService_SubscribeClient, error) {
	o := collect(opts)
	return c.Bus.Subscribe(ctx, &pb.SubscribeRequest{Filter: filter, FromVersion: o.fromVersion})
}

// GetProjection reads a projection, waiting up to maxWaitMs for it to reach minVersion.
func (c *Client) GetProjection(ctx context.Context, workflowKey string, minVersion uint64, maxWaitMs uint32,
	opts ...CallOption) (*pb.GetProjectionResponse, error) {
	o := collect(opts)
	return c.Projection.GetProjection(ctx, &pb.GetProjectionRequest{WorkflowKey: workflowKey, MinVersion: minVersion,
		MaxWaitMs: maxWaitMs, Namespace: o.namespace})
}

// ListWatermarks lists how far the materializer has applied each topic partition.
func (c *Client) ListWatermarks(ctx context.Context) ([]*pb.Watermark, error) {
	reply, err := c.Projection.ListWatermarks(ctx, &pb.ListWatermarksRequest{})
	return reply.GetWatermarks(), err
}

func (c *Client) retrying(ctx context.Context, call func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		err := call(ctx)
		code := status.Code(err)
		if err == nil || attempt >= c.retries || ctx.Err() != nil ||
			(code != codes.Unavailable && code != codes.DeadlineExceeded) {
			return err
		}
		// Full jitter, 50 ms doubling up to 1 s, so retrying clients spread out.
		ceiling := 50 * time.Millisecond << attempt
		if ceiling > time.Second {
			ceiling = time.Second
		}
		time.Sleep(time.Duration(mathrand.Int63n(int64(ceiling))))
	}
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
