package runtime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/keygroup"
)

// Errors of Invocations.Invoke.
var (
	// ErrNotOwner: no function subtask on this worker owns the key now
	// (the job is restarting or rescaling, or the route is stale). The
	// caller refreshes its route and retries with the same idempotency key.
	ErrNotOwner = errors.New("runtime: no function subtask on this worker owns the key")
	// ErrInvokeOverloaded: the subtask's queue of invocations is full.
	ErrInvokeOverloaded = errors.New("runtime: too many invocations waiting for the function subtask")
)

// maxInbox bounds the invocations waiting for one function subtask.
const maxInbox = 4096

// Invocations routes Invoke requests to the function subtasks running on
// this worker, one registry per worker process shared by its jobs.
type Invocations struct {
	mu  sync.Mutex
	ops map[*functionOp]struct{}
	seq atomic.Uint64
}

// NewInvocations returns an empty registry.
func NewInvocations() *Invocations { return &Invocations{ops: map[*functionOp]struct{}{}} }

func (r *Invocations) register(f *functionOp) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops[f] = struct{}{}
}

func (r *Invocations) unregister(f *functionOp) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.ops, f)
}

// find returns the subtask of job running function that owns key: of the
// newest attempt if two overlap while one stops.
func (r *Invocations) find(job, function, key string) (*functionOp, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var (
		best *functionOp
		kg   int
	)
	for f := range r.ops {
		if f.name != function || (job != "" && f.info.JobID != job) {
			continue
		}
		g := keygroup.StringKeyGroup(key, f.maxP)
		if g < f.info.KeyGroupStart || g > f.info.KeyGroupEnd {
			continue
		}
		if best == nil || f.info.Attempt > best.info.Attempt {
			best, kg = f, g
		}
	}
	return best, kg
}

// Invoke runs req on the function subtask that owns its key and returns
// the reply: once the effect is in a completed checkpoint, or at once when
// req is uncommitted or the job has no checkpoints. ErrNotOwner when no
// subtask here owns the key; a *FunctionError when the function failed on
// it. A request abandoned by ctx may still take effect: retry it with the
// same idempotency key.
func (r *Invocations) Invoke(ctx context.Context, req *sabotv1.InvokeRequest) (*sabotv1.InvokeResponse, error) {
	f, kg := r.find(req.GetJobId(), req.GetFunction(), req.GetKey())
	if f == nil {
		return nil, fmt.Errorf("%w: function %q, key %q, job %q", ErrNotOwner, req.GetFunction(), req.GetKey(), req.GetJobId())
	}
	// A batch is one request per message, queued together (so in order),
	// answered when all are, with the first's reply.
	irs := []*invokeReq{{req: req, kg: kg, seq: r.seq.Add(1), done: make(chan invokeResult, 1)}}
	for _, m := range req.GetBatch() {
		one := &sabotv1.InvokeRequest{Function: req.GetFunction(), Key: req.GetKey(), Payload: m.GetPayload(),
			IdempotencyKey: m.GetIdempotencyKey(), JobId: req.GetJobId(), Uncommitted: req.GetUncommitted(), From: req.GetFrom()}
		irs = append(irs, &invokeReq{req: one, kg: kg, seq: r.seq.Add(1), done: make(chan invokeResult, 1)})
	}
	if err := f.inbox.put(irs...); err != nil {
		return nil, err
	}
	var first *sabotv1.InvokeResponse
	for i, ir := range irs {
		select {
		case res := <-ir.done:
			if res.err != nil {
				return nil, res.err
			}
			if i == 0 {
				first = res.resp
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return first, nil
}

// invokeReq is one Invoke request on its way through a function subtask.
type invokeReq struct {
	req  *sabotv1.InvokeRequest
	kg   int
	seq  uint64
	done chan invokeResult // capacity 1
	once sync.Once
	// followers carry the same idempotency key and arrived in the same
	// batch: they get the first one's reply.
	followers []*invokeReq
}

type invokeResult struct {
	resp *sabotv1.InvokeResponse
	err  error
}

func (r *invokeReq) finish(resp *sabotv1.InvokeResponse, err error) {
	r.once.Do(func() { r.done <- invokeResult{resp, err} })
}

// finishAll answers r and its followers (marked replayed).
func (r *invokeReq) finishAll(resp *sabotv1.InvokeResponse, err error) {
	r.finish(resp, err)
	for _, fo := range r.followers {
		fo.finish(replayed(resp), err)
	}
}

// fnInbox is a function subtask's queue of Invoke requests and its
// replies waiting for a checkpoint. put runs on request goroutines, the
// checkpoint calls on the coordinator's; the rest on the task's.
type fnInbox struct {
	mu     sync.Mutex
	queue  []*invokeReq
	closed error
	wake   func() // set before the task starts
	// waiting are the replies whose effect no completed checkpoint holds
	// yet.
	waiting untilCommitted[waitingReply]
}

type waitingReply struct {
	req  *invokeReq
	resp *sabotv1.InvokeResponse
}

func newFnInbox() *fnInbox { return &fnInbox{} }

func (in *fnInbox) put(rs ...*invokeReq) error {
	in.mu.Lock()
	if in.closed != nil {
		in.mu.Unlock()
		return in.closed
	}
	if len(in.queue)+len(rs) > maxInbox {
		in.mu.Unlock()
		return fmt.Errorf("%w (%d)", ErrInvokeOverloaded, maxInbox)
	}
	in.queue = append(in.queue, rs...)
	wake := in.wake
	in.mu.Unlock()
	if wake != nil {
		wake()
	}
	return nil
}

// poke wakes the task as a new request would.
func (in *fnInbox) poke() {
	in.mu.Lock()
	wake := in.wake
	in.mu.Unlock()
	if wake != nil {
		wake()
	}
}

func (in *fnInbox) take() []*invokeReq {
	in.mu.Lock()
	defer in.mu.Unlock()
	q := in.queue
	in.queue = nil
	return q
}

// await parks r's reply until a checkpoint holding its effect completes.
func (in *fnInbox) await(r *invokeReq, resp *sabotv1.InvokeResponse) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.waiting.add(waitingReply{req: r, resp: resp})
}

func (in *fnInbox) snapshotted(id int64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.waiting.snapshotted(id)
}

func (in *fnInbox) completed(id int64) {
	in.mu.Lock()
	done := in.waiting.completed(id)
	in.mu.Unlock()
	for _, w := range done {
		resp := w.resp
		if resp != nil {
			resp.Committed = true
		}
		w.req.finishAll(resp, nil)
	}
}

// failWaiting fails the replies still waiting: their effect may be lost
// with the attempt, so the callers retry.
func (in *fnInbox) failWaiting(err error) {
	in.mu.Lock()
	w := in.waiting.drain()
	in.mu.Unlock()
	for _, x := range w {
		x.req.finishAll(nil, err)
	}
}

// close refuses new requests and fails the queued ones with err.
func (in *fnInbox) close(err error) {
	in.mu.Lock()
	q := in.queue
	in.queue, in.closed = nil, err
	in.mu.Unlock()
	for _, r := range q {
		r.finishAll(nil, err)
	}
}

// invocationTick is how often an invocation source emits its
// processing-time watermark.
const invocationTick = 50 * time.Millisecond

// invocationSource feeds a function step that only takes Invoke requests:
// it emits no rows, only watermarks of the worker's clock (ingestion
// time: an invoked message's event time is when it reached the function,
// so event-time timers and delayed messages of an invoke-only function
// fire as its clock passes them). It never ends; a stop-with-savepoint
// ends it.
type invocationSource struct {
	clock clockwork.Clock
}

func newInvocationSource(e *env) *invocationSource { return &invocationSource{clock: e.clock} }

func (s *invocationSource) Open(context.Context) error { return nil }
func (s *invocationSource) Close() error               { return nil }

func (s *invocationSource) Next(ctx context.Context, out Output) (bool, error) {
	if err := out.EmitWatermark(ctx, nowMillis(s.clock)); err != nil {
		return false, err
	}
	t := s.clock.NewTimer(invocationTick)
	defer t.Stop()
	select {
	case <-t.Chan():
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// snapshotState implements snapshotter: the source has no position.
func (s *invocationSource) snapshotState(context.Context, int64) (*clusterv1.OperatorSnapshot, uploadFunc, error) {
	return nil, nil, nil
}

// untilCommitted holds items (replies, outgoing messages) whose effect is
// in the operator's state until a checkpoint holding that state completes:
// the next snapshot tags the items added before it with its id, and the
// completion of that checkpoint, or of a later one (state is cumulative),
// releases them. Not safe for concurrent use: its owner locks.
type untilCommitted[T any] struct {
	items []committedItem[T]
}

type committedItem[T any] struct {
	checkpoint int64 // -1 until a snapshot holds it
	v          T
}

func (u *untilCommitted[T]) add(v T) {
	u.items = append(u.items, committedItem[T]{checkpoint: -1, v: v})
}

// snapshotted tags the untagged items with checkpoint id.
func (u *untilCommitted[T]) snapshotted(id int64) {
	for i := range u.items {
		if u.items[i].checkpoint < 0 {
			u.items[i].checkpoint = id
		}
	}
}

// completed removes and returns the items checkpoint id holds.
func (u *untilCommitted[T]) completed(id int64) []T {
	var done []T
	keep := u.items[:0]
	for _, it := range u.items {
		if it.checkpoint >= 0 && it.checkpoint <= id {
			done = append(done, it.v)
		} else {
			keep = append(keep, it)
		}
	}
	clear(u.items[len(keep):])
	u.items = keep
	return done
}

// drain removes and returns every item.
func (u *untilCommitted[T]) drain() []T {
	out := make([]T, len(u.items))
	for i, it := range u.items {
		out[i] = it.v
	}
	u.items = nil
	return out
}
