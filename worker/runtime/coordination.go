package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	"github.com/sabotdev/sabot/gen/sabot/cluster/v1/clusterv1connect"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// Checkpoint coordination of an attempt spread over workers.
//
// Each worker runs its share of the attempt (Config.Subtasks). One share
// hosts the checkpoint coordinator (Config.Coordinator, chosen by the
// scheduler): it triggers checkpoints at its own sources directly and at
// the other shares' sources through CoordinationService.Trigger, receives
// the other shares' acknowledgements and finished subtasks through
// Acknowledge and Finished, and once a checkpoint is committed tells
// every other share to commit its sinks (Complete). A stop-with-savepoint
// ends every share (Stop). Flink's JobMaster plays this part; hosting it in
// a worker of the attempt keeps checkpoints running while the scheduler
// fails over, and a coordinator that dies takes its attempt with it (the
// job restarts from its latest checkpoint, as after any worker loss).

// Coordination serves and makes coordination calls for every distributed
// attempt of one worker process. Make one with NewCoordination, mount
// Handler on the worker's HTTP/2 server and pass it in Config.Coordination.
type Coordination struct {
	logger *slog.Logger
	client *http.Client

	mu struct {
		sync.Mutex
		shares  map[attemptID]*share
		clients map[string]clusterv1connect.CoordinationServiceClient // by base URL
	}
}

// Networker is a worker process's network exchange: *Network.
type Networker interface {
	// exchange returns the Exchange of one distributed attempt: gates for
	// the receiving subtasks local reports true for, senders to every
	// subtask (in process when local, else to the worker at addr).
	exchange(g *jobgraph.Graph, capacity int, jobID string, attempt int64,
		local func(vertexID string, subtask int) bool, addr func(vertexID string, subtask int) string) distExchange
}

// distExchange is a distributed attempt's exchange.
type distExchange interface {
	Exchange
	// drain releases what is buffered; after every task stopped.
	drain()
	// close ends the attempt's incoming streams; idempotent.
	close()
}

// attemptID names one job attempt.
type attemptID struct {
	job     string
	attempt int64
}

// share is this worker's part of one distributed attempt, as coordination
// calls see it.
type share struct {
	coord     *coordinator // on the coordinator share only
	sources   []*task
	listeners []completeListener
	stop      func()
	stopping  func() // marks the attempt as stopping (no cancel)
	fail      func(error)

	mu struct {
		sync.Mutex
		done map[subtaskKey]bool // local subtasks that finished
	}
}

// NewCoordination returns a Coordination calling peers with client (an
// HTTP/2-capable client; nil means one made for h2c).
func NewCoordination(logger *slog.Logger, client *http.Client) *Coordination {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if client == nil {
		client = h2cClient()
	}
	c := &Coordination{logger: logger, client: client}
	c.mu.shares = map[attemptID]*share{}
	c.mu.clients = map[string]clusterv1connect.CoordinationServiceClient{}
	return c
}

// h2cClient is an HTTP client speaking HTTP/2 without TLS, reusing one
// connection per peer.
func h2cClient() *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: p, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second}}
}

// Handler returns the path and handler of the coordination service.
func (c *Coordination) Handler() (string, http.Handler) {
	return clusterv1connect.NewCoordinationServiceHandler(coordinationServer{c})
}

func (c *Coordination) register(id attemptID, s *share) func() {
	s.mu.done = map[subtaskKey]bool{}
	c.mu.Lock()
	c.mu.shares[id] = s
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		if c.mu.shares[id] == s {
			delete(c.mu.shares, id)
		}
		c.mu.Unlock()
	}
}

func (c *Coordination) lookup(ref *clusterv1.AttemptRef) (*share, error) {
	c.mu.Lock()
	s := c.mu.shares[attemptID{ref.GetJobId(), ref.GetAttempt()}]
	c.mu.Unlock()
	if s == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition,
			fmt.Errorf("runtime: attempt %d of job %s does not run here", ref.GetAttempt(), ref.GetJobId()))
	}
	return s, nil
}

func (c *Coordination) peer(addr string) clusterv1connect.CoordinationServiceClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.mu.clients[addr]
	if cl == nil {
		cl = clusterv1connect.NewCoordinationServiceClient(c.client, addr, connect.WithGRPC())
		c.mu.clients[addr] = cl
	}
	return cl
}

// rpcTimeout bounds one coordination call.
const rpcTimeout = 10 * time.Second

// coordinationServer implements the service over a Coordination.
type coordinationServer struct{ c *Coordination }

func (s coordinationServer) Trigger(_ context.Context, req *connect.Request[clusterv1.TriggerRequest]) (*connect.Response[clusterv1.TriggerResponse], error) {
	sh, err := s.c.lookup(req.Msg.GetAttempt())
	if err != nil {
		return nil, err
	}
	m := req.Msg
	tr := trigger{barrier: barrier{id: m.GetCheckpointId(), savepoint: m.GetSavepoint(), unaligned: m.GetUnaligned()}, stop: m.GetStop(), drain: m.GetDrain()}
	if err := sh.trigger(tr); err != nil {
		return nil, connect.NewError(connect.CodeResourceExhausted, err)
	}
	return connect.NewResponse(&clusterv1.TriggerResponse{}), nil
}

func (s coordinationServer) Acknowledge(ctx context.Context, req *connect.Request[clusterv1.AcknowledgeRequest]) (*connect.Response[clusterv1.AcknowledgeResponse], error) {
	sh, err := s.c.lookup(req.Msg.GetAttempt())
	if err != nil {
		return nil, err
	}
	if sh.coord == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("runtime: this share does not coordinate the attempt"))
	}
	m := req.Msg
	a := ack{id: m.GetCheckpointId(), key: subtaskKey{m.GetVertexId(), int(m.GetSubtask())}, snap: m.GetSnapshot(),
		duration: time.Duration(m.GetDurationMs()) * time.Millisecond}
	if m.GetError() != "" {
		a.err = errors.New(m.GetError())
	}
	select {
	case sh.coord.acks <- a:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return connect.NewResponse(&clusterv1.AcknowledgeResponse{}), nil
}

func (s coordinationServer) Finished(ctx context.Context, req *connect.Request[clusterv1.FinishedRequest]) (*connect.Response[clusterv1.FinishedResponse], error) {
	sh, err := s.c.lookup(req.Msg.GetAttempt())
	if err != nil {
		return nil, err
	}
	if sh.coord == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("runtime: this share does not coordinate the attempt"))
	}
	keys := make([]subtaskKey, 0, len(req.Msg.GetSubtasks()))
	for _, st := range req.Msg.GetSubtasks() {
		keys = append(keys, subtaskKey{st.GetVertexId(), int(st.GetSubtask())})
	}
	select {
	case sh.coord.finished <- keys:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return connect.NewResponse(&clusterv1.FinishedResponse{}), nil
}

func (s coordinationServer) Complete(ctx context.Context, req *connect.Request[clusterv1.CompleteRequest]) (*connect.Response[clusterv1.CompleteResponse], error) {
	sh, err := s.c.lookup(req.Msg.GetAttempt())
	if err != nil {
		return nil, err
	}
	for _, l := range sh.listeners {
		if err := l.checkpointComplete(ctx, req.Msg.GetCheckpointId()); err != nil {
			err = fmt.Errorf("checkpoint %d completed, but a sink could not commit its output: %w", req.Msg.GetCheckpointId(), err)
			sh.fail(err)
			return nil, connect.NewError(connect.CodeInternal, err)
		}
	}
	if req.Msg.GetStopping() {
		sh.stopping()
	}
	return connect.NewResponse(&clusterv1.CompleteResponse{}), nil
}

func (s coordinationServer) Stop(_ context.Context, req *connect.Request[clusterv1.StopRequest]) (*connect.Response[clusterv1.StopResponse], error) {
	sh, err := s.c.lookup(req.Msg.GetAttempt())
	if err != nil {
		return nil, err
	}
	sh.stop()
	return connect.NewResponse(&clusterv1.StopResponse{}), nil
}

// trigger hands tr to every local source that has not finished.
func (s *share) trigger(tr trigger) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.sources {
		if s.mu.done[subtaskKey{t.info.VertexID, t.info.Subtask}] {
			continue
		}
		select {
		case t.triggers <- tr:
		default:
			return fmt.Errorf("source %s[%d] has %d untaken triggers", t.info.VertexID, t.info.Subtask, cap(t.triggers))
		}
	}
	return nil
}

func (s *share) finished(keys []subtaskKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.mu.done[k] = true
	}
}

// remoteShare is another worker's share, as the coordinator calls it.
type remoteShare struct {
	addr     string
	subtasks []subtaskKey
	sources  []subtaskKey
}

// forwarder sends a non-coordinator share's acknowledgements and finished
// subtasks to the coordinator, in order, until ctx ends. A call that keeps
// failing fails the share (its attempt restarts).
func (c *Coordination) forward(ctx context.Context, id attemptID, coordAddr string, sh *share, acks <-chan ack, finished <-chan []subtaskKey) error {
	ref := &clusterv1.AttemptRef{JobId: id.job, Attempt: id.attempt}
	cl := c.peer(coordAddr)
	gone := false // the coordinator's share ended
	for {
		var call func(context.Context) error
		select {
		case <-ctx.Done():
			// The tasks here ended: subtasks that finished still tell the
			// coordinator, so its checkpoints stop waiting for them.
			c.flushFinished(ref, cl, sh, finished)
			return nil
		case a := <-acks:
			req := &clusterv1.AcknowledgeRequest{Attempt: ref, CheckpointId: a.id, VertexId: a.key.vertex, Subtask: int32(a.key.subtask),
				Snapshot: a.snap, DurationMs: a.duration.Milliseconds()}
			if a.err != nil {
				req.Error = a.err.Error()
			}
			call = func(ctx context.Context) error { _, err := cl.Acknowledge(ctx, connect.NewRequest(req)); return err }
		case keys := <-finished:
			sh.finished(keys)
			req := &clusterv1.FinishedRequest{Attempt: ref}
			addFinished(req, keys)
			call = func(ctx context.Context) error { _, err := cl.Finished(ctx, connect.NewRequest(req)); return err }
		}
		if gone {
			continue // drained: the coordinator share ended
		}
		if err := retryCall(ctx, call); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if connect.CodeOf(err) == connect.CodeFailedPrecondition {
				// The coordinator's share no longer runs the attempt: it
				// finished (a bounded job whose share there ended first)
				// or failed (then the scheduler restarts the job). No
				// checkpoint can complete any more; what is left here
				// runs to its end and its sinks commit at end of input.
				c.logger.Info("runtime: the checkpoint coordinator's share ended; later acknowledgements are dropped",
					"job", id.job, "attempt", id.attempt, "coordinator", coordAddr)
				gone = true
				continue
			}
			return fmt.Errorf("runtime: reach the checkpoint coordinator at %s: %w", coordAddr, err)
		}
	}
}

// addFinished adds keys to a Finished request.
func addFinished(req *clusterv1.FinishedRequest, keys []subtaskKey) {
	for _, k := range keys {
		req.Subtasks = append(req.Subtasks, &clusterv1.FinishedSubtask{VertexId: k.vertex, Subtask: int32(k.subtask)})
	}
}

// flushFinished sends the finished subtasks still queued, best effort,
// within a short time of its own.
func (c *Coordination) flushFinished(ref *clusterv1.AttemptRef, cl clusterv1connect.CoordinationServiceClient, sh *share, finished <-chan []subtaskKey) {
	req := &clusterv1.FinishedRequest{Attempt: ref}
queued:
	for {
		select {
		case keys := <-finished:
			sh.finished(keys)
			addFinished(req, keys)
		default:
			break queued
		}
	}
	if len(req.Subtasks) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cl.Finished(ctx, connect.NewRequest(req)); err != nil {
		c.logger.Debug("tell the coordinator about finished subtasks", "job", ref.GetJobId(), "err", err)
	}
}

// retryCall makes call, retrying a few times with backoff on errors that
// may pass (the peer not reachable for a moment).
func retryCall(ctx context.Context, call func(context.Context) error) error {
	backoff := 50 * time.Millisecond
	var err error
	for range 6 {
		cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
		err = call(cctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		if code := connect.CodeOf(err); code == connect.CodeFailedPrecondition || code == connect.CodeInternal || code == connect.CodeResourceExhausted {
			return err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, time.Second)
	}
	return err
}
