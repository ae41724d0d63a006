package runtime

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/jonboulle/clockwork"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/eventtime"
)

// node is one vertex of a task's chain. A chain is a tree: a vertex may
// have several chained outputs (forward edges into single-input vertices)
// next to exchange edges.
type node struct {
	vertex *jobgraph.Vertex
	op     Operator // nil for a source head; the task drives its Source
	out    fanout
}

// fanout is a node's Output: chained children are called directly, in
// the same goroutine, and exchange edges are written to their channels.
// A node's side outputs are fanouts of their own (sides), one per side
// output some edge reads; they get the node's watermarks, watermark
// statuses and end of input as the main output does (Flink forwards
// watermarks to side outputs too).
type fanout struct {
	chained []*node
	edges   []*edgeWriter
	sides   []*sideFanout
	idle    bool // watermark status last sent
	// count, if set, adds the rows emitted (a source task's head: its
	// records in).
	count *atomic.Int64
}

// sideFanout is one named side output of a node.
type sideFanout struct {
	name string
	fanout
}

// side returns the side output name, creating it.
func (f *fanout) side(name string) *fanout {
	for _, s := range f.sides {
		if s.name == name {
			return &s.fanout
		}
	}
	s := &sideFanout{name: name}
	f.sides = append(f.sides, s)
	return &s.fanout
}

// Side returns the Output of side output name; rows emitted to a side
// output no edge reads are dropped (as Flink's unconsumed OutputTag).
func (f *fanout) Side(name string) Output {
	for _, s := range f.sides {
		if s.name == name {
			return &s.fanout
		}
	}
	return discardOutput{}
}

// SideOutputOf returns the side output name of out: what an operator emits
// rows of a side output to. An Output without side outputs (a test's
// collector) yields one that drops.
func SideOutputOf(out Output, name string) Output {
	if so, ok := out.(interface{ Side(name string) Output }); ok {
		return so.Side(name)
	}
	return discardOutput{}
}

// discardOutput drops everything.
type discardOutput struct{}

func (discardOutput) Emit(context.Context, arrow.RecordBatch) error { return nil }
func (discardOutput) EmitWatermark(context.Context, int64) error    { return nil }
func (discardOutput) EmitIdle(context.Context, bool) error          { return nil }

func (f *fanout) Emit(ctx context.Context, rec arrow.RecordBatch) error {
	if f.count != nil {
		f.count.Add(rec.NumRows())
	}
	for _, c := range f.chained {
		if err := c.op.ProcessBatch(ctx, rec, &c.out); err != nil {
			return tagVertex(c.vertex.ID, err)
		}
	}
	for _, e := range f.edges {
		if err := e.Emit(ctx, rec); err != nil {
			return tagVertex(e.edge.From.ID, err)
		}
	}
	return nil
}

func (f *fanout) EmitWatermark(ctx context.Context, wm int64) error {
	for _, c := range f.chained {
		if err := c.processWatermark(ctx, wm); err != nil {
			return err
		}
	}
	for _, e := range f.edges {
		if err := e.EmitWatermark(ctx, wm); err != nil {
			return tagVertex(e.edge.From.ID, err)
		}
	}
	for _, s := range f.sides {
		if err := s.EmitWatermark(ctx, wm); err != nil {
			return err
		}
	}
	return nil
}

// EmitIdle forwards a watermark status change through the chain (operators
// are not told: they see only the watermarks) and to every receiver of
// every exchange edge. A repeated status is dropped.
func (f *fanout) EmitIdle(ctx context.Context, idle bool) error {
	if idle == f.idle {
		return nil
	}
	f.idle = idle
	for _, c := range f.chained {
		if err := c.out.EmitIdle(ctx, idle); err != nil {
			return err
		}
	}
	for _, e := range f.edges {
		if err := e.EmitIdle(ctx, idle); err != nil {
			return tagVertex(e.edge.From.ID, err)
		}
	}
	for _, s := range f.sides {
		if err := s.EmitIdle(ctx, idle); err != nil {
			return err
		}
	}
	return nil
}

// processWatermark lets the operator react to wm, then forwards it.
func (n *node) processWatermark(ctx context.Context, wm int64) error {
	if err := n.op.ProcessWatermark(ctx, wm, &n.out); err != nil {
		return tagVertex(n.vertex.ID, err)
	}
	return n.out.EmitWatermark(ctx, wm)
}

// finish ends the node's input: its operator flushes, then its chained
// children finish, then its exchange edges get end-of-input.
func (n *node) finish(ctx context.Context) error {
	if n.op != nil {
		if err := n.op.Finish(ctx, &n.out); err != nil {
			return tagVertex(n.vertex.ID, err)
		}
	}
	return n.out.finish(ctx, n.vertex.ID)
}

// finish ends the input of everything downstream of f.
func (f *fanout) finish(ctx context.Context, vertexID string) error {
	for _, c := range f.chained {
		if err := c.finish(ctx); err != nil {
			return err
		}
	}
	for _, e := range f.edges {
		if err := e.endOfInput(ctx); err != nil {
			return tagVertex(vertexID, err)
		}
	}
	for _, s := range f.sides {
		if err := s.finish(ctx, vertexID); err != nil {
			return err
		}
	}
	return nil
}

// task is one goroutine: a chain of operators for one subtask, fed by a
// Source or by an input Gate.
type task struct {
	info   TaskInfo // of the head vertex
	source Source   // set when the head is a source
	gate   Gate     // set otherwise
	head   *node
	nodes  []*node // every node, head first (chain order)

	onState func(vertexID string, subtask int32, state sabotv1.TaskState)
	clock   clockwork.Clock

	// Checkpoints (cp nil: none). A source task takes triggers between
	// Next calls; an input task aligns barriers.
	cp       *checkpointing
	triggers chan trigger
	align    alignment
	ua       *unalignedCheckpoint // unaligned checkpoint in progress

	// metrics are the task's counters (always kept; reported when
	// Config.Metrics is set).
	metrics *taskMetrics
	// stopping is the attempt's stop-with-savepoint flag (set once every
	// sink committed the savepoint); nil in tasks built by hand.
	stopping *atomic.Bool

	// wake interrupts the task's wait for input: an operator with work
	// from outside its input (a function's invocations) calls poke.
	wake struct {
		sync.Mutex
		cancel  context.CancelCauseFunc // the running recv's, if any
		pending bool                    // poked while not receiving
		used    bool                    // an operator can poke
	}

	// origin is when the source began producing the batch being processed
	// (Element.Origin): set per source Next call in a source task, per
	// received batch otherwise; read by the task's edge writers and sinks.
	origin int64
}

func (t *task) report(s sabotv1.TaskState) {
	if t.onState == nil {
		return
	}
	for _, n := range t.nodes {
		t.onState(n.vertex.ID, int32(t.info.Subtask), s)
	}
}

// exec runs the task and turns a failure into a *TaskError.
func (t *task) exec(ctx context.Context) error {
	err := t.run(ctx)
	if err == nil && t.cp != nil {
		// Later checkpoints no longer wait for this task's subtasks.
		keys := make([]subtaskKey, len(t.nodes))
		for i, n := range t.nodes {
			keys[i] = subtaskKey{n.vertex.ID, t.info.Subtask}
		}
		t.cp.finished <- keys // buffered for every task
	}
	if err == nil || (ctx.Err() != nil && errors.Is(err, ctx.Err())) {
		return err
	}
	return t.taskError(err)
}

// taskError names the vertex of the chain that failed (the head unless an
// operator further down tagged the error).
func (t *task) taskError(err error) *TaskError {
	vertex := t.info.VertexID
	var ve *vertexError
	if errors.As(err, &ve) {
		vertex, err = ve.vertex, ve.err
	}
	return &TaskError{JobID: t.info.JobID, Attempt: t.info.Attempt, Vertex: vertex, Subtask: t.info.Subtask, Err: err}
}

// run runs the task to its end. It returns nil when the input ended and
// everything was flushed and closed, a context error when cancelled, or
// the failure otherwise (tagged with the failing vertex).
func (t *task) run(ctx context.Context) (err error) {
	t.report(sabotv1.TaskState_TASK_STATE_DEPLOYING)
	defer func() {
		// A panicking operator fails its task, not the worker.
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
		if cerr := t.close(); err == nil {
			err = cerr
		}
		switch {
		case err == nil, t.stopping != nil && t.stopping.Load():
			// Finished, or ended by a completed stop-with-savepoint (a
			// failure then is the teardown's: another share stopped
			// first).
			t.report(sabotv1.TaskState_TASK_STATE_FINISHED)
		case ctx.Err() != nil && errors.Is(err, ctx.Err()):
			t.report(sabotv1.TaskState_TASK_STATE_CANCELED)
		default:
			t.report(sabotv1.TaskState_TASK_STATE_FAILED)
		}
	}()
	if err := t.open(ctx); err != nil {
		return err
	}
	t.report(sabotv1.TaskState_TASK_STATE_RUNNING)
	if t.source != nil {
		return t.runSource(ctx)
	}
	return t.runInput(ctx)
}

// open opens operators tail first, so that a downstream operator is ready
// before anything upstream can emit (as Flink).
func (t *task) open(ctx context.Context) error {
	if err := t.restoreOperators(ctx); err != nil {
		return err
	}
	for i := len(t.nodes) - 1; i >= 0; i-- {
		n := t.nodes[i]
		if n.op == nil {
			continue
		}
		if err := n.op.Open(ctx); err != nil {
			return tagVertex(n.vertex.ID, fmt.Errorf("open: %w", err))
		}
	}
	if t.source != nil {
		if err := t.source.Open(ctx); err != nil {
			return tagVertex(t.head.vertex.ID, fmt.Errorf("open: %w", err))
		}
	}
	return nil
}

// close closes every operator, head first, and returns the first error.
func (t *task) close() error {
	var first error
	if t.source != nil {
		first = tagVertex(t.head.vertex.ID, t.source.Close())
	}
	for _, n := range t.nodes {
		if n.op == nil {
			continue
		}
		if err := n.op.Close(); err != nil && first == nil {
			first = tagVertex(n.vertex.ID, fmt.Errorf("close: %w", err))
		}
	}
	return first
}

func (t *task) runSource(ctx context.Context) error {
	if t.metrics == nil {
		t.metrics = &taskMetrics{} // a task built by hand (tests)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		select {
		case tr := <-t.triggers:
			if err := t.sourceCheckpoint(ctx, tr); err != nil {
				return err
			}
		default:
		}
		t.origin = time.Now().UnixNano()
		before := t.metrics.in.Load()
		done, err := t.source.Next(ctx, &t.head.out)
		switch src := t.source.(type) {
		case interface{ takeIdle() time.Duration }:
			// The source knows how long it waited for input.
			t.metrics.idle.Add(int64(src.takeIdle()))
		default:
			if t.metrics.in.Load() == before {
				// Nothing to read: waiting for input, not busy.
				t.metrics.idle.Add(time.Now().UnixNano() - t.origin)
			}
		}
		if err != nil {
			return tagVertex(t.head.vertex.ID, err)
		}
		if done {
			break
		}
	}
	// A bounded source's event time is complete: the final watermark must
	// reach downstream, so an idle source turns active first.
	if err := t.head.out.EmitIdle(ctx, false); err != nil {
		return err
	}
	if err := t.head.out.EmitWatermark(ctx, MaxWatermark); err != nil {
		return err
	}
	return t.head.finish(ctx)
}

func (t *task) runInput(ctx context.Context) error {
	if t.metrics == nil {
		t.metrics = &taskMetrics{} // a task built by hand (tests)
	}
	v := newValve(t.gate.NumChannels())
	if err := t.replayChannelState(ctx); err != nil {
		return err
	}
	defer func() {
		if t.ua != nil {
			t.ua.release()
		}
	}()
	for v.open > 0 {
		waitStart := time.Now()
		ch, el, err := t.recv(ctx)
		t.metrics.idle.Add(int64(time.Since(waitStart)))
		if errors.Is(err, errWake) {
			if err := t.onProcessingTime(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		switch el.Kind {
		case KindBatch:
			t.origin = el.Origin
			t.metrics.in.Add(el.Batch.NumRows())
			if t.ua != nil && t.ua.recording[ch] {
				t.ua.record(ch, el.Batch)
			}
			err := t.head.op.ProcessBatch(ctx, el.Batch, &t.head.out)
			el.Batch.Release()
			if err != nil {
				return tagVertex(t.head.vertex.ID, err)
			}
		case KindWatermark:
			if err := t.forward(ctx, v.watermark(ch, el.Watermark)); err != nil {
				return err
			}
		case KindWatermarkStatus:
			if err := t.forward(ctx, v.status(ch, el.Idle)); err != nil {
				return err
			}
		case KindEndOfInput:
			if err := t.forward(ctx, v.end(ch)); err != nil {
				return err
			}
			// An ended channel no longer holds back an alignment.
			if t.cp != nil && v.open > 0 {
				if t.ua != nil {
					t.ua.recording[ch] = false
				}
				if err := t.maybeAligned(ctx, v); err != nil {
					return err
				}
				if err := t.maybeUnalignedDone(ctx, v); err != nil {
					return err
				}
			}
		case KindBarrier:
			if t.cp == nil {
				return fmt.Errorf("runtime: checkpoint barrier %d on channel %d, but checkpointing is off", el.Checkpoint, ch)
			}
			if el.Unaligned {
				if err := t.onUnalignedBarrier(ctx, ch, el, v); err != nil {
					return err
				}
				continue
			}
			if err := t.onBarrier(ctx, ch, el, v); err != nil {
				return err
			}
		default:
			el.release()
			return fmt.Errorf("runtime: unknown element kind %s on channel %d", el.Kind, ch)
		}
	}
	return t.head.finish(ctx)
}

// processingTimer is an operator with processing-time timers. Operators
// check their due timers whenever input arrives; an idle input would
// leave them waiting, so the task also wakes the chain when the earliest
// timer of any of its operators is due (Flink's processing-time service
// fires on the wall clock).
type processingTimer interface {
	// NextProcessingTime is the earliest pending processing-time timer
	// (ms), if any.
	NextProcessingTime() (int64, bool)
	// OnProcessingTime fires the timers due by the clock and emits.
	OnProcessingTime(ctx context.Context, out Output) error
}

// errWake ends a receive when a processing-time timer is due.
var errWake = errors.New("runtime: processing-time timer due")

// waker is an operator with work arriving from outside its input: it
// calls wake when there is some, and the task, woken from its wait for
// input, calls its OnProcessingTime (it is a processingTimer too).
type waker interface {
	setWaker(wake func())
}

// poke wakes the task's wait for input (or its next one). Any goroutine.
func (t *task) poke() {
	t.wake.Lock()
	defer t.wake.Unlock()
	if t.wake.cancel != nil {
		t.wake.cancel(errWake)
		return
	}
	t.wake.pending = true
}

// recvWakeable receives like recv, returning errWake as soon as poke is
// called.
func (t *task) recvWakeable(ctx context.Context) (int, Element, error) {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t.wake.Lock()
	if t.wake.pending {
		t.wake.pending = false
		t.wake.Unlock()
		return 0, Element{}, errWake
	}
	t.wake.cancel = cancel
	t.wake.Unlock()
	ch, el, err := t.recvTimed(wctx)
	t.wake.Lock()
	t.wake.cancel = nil
	t.wake.Unlock()
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(wctx), errWake) {
		return 0, Element{}, errWake
	}
	return ch, el, err
}

// recv receives the next element, or returns errWake once the earliest
// processing-time timer of the chain is due or an operator pokes.
func (t *task) recv(ctx context.Context) (int, Element, error) {
	if t.wake.used {
		return t.recvWakeable(ctx)
	}
	return t.recvTimed(ctx)
}

// recvTimed receives the next element, or returns errWake once the
// earliest processing-time timer of the chain is due.
func (t *task) recvTimed(ctx context.Context) (int, Element, error) {
	next, ok := int64(0), false
	for _, n := range t.nodes {
		if pt, is := n.op.(processingTimer); is {
			if ts, has := pt.NextProcessingTime(); has && (!ok || ts < next) {
				next, ok = ts, true
			}
		}
	}
	if !ok || t.clock == nil {
		return t.gate.Recv(ctx)
	}
	d := time.Duration(next-nowMillis(t.clock)) * time.Millisecond
	if d <= 0 {
		return 0, Element{}, errWake
	}
	wctx, cancel := context.WithCancelCause(ctx)
	timer := t.clock.AfterFunc(d, func() { cancel(errWake) })
	ch, el, err := t.gate.Recv(wctx)
	timer.Stop()
	cancel(nil)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(wctx), errWake) {
		return 0, Element{}, errWake
	}
	return ch, el, err
}

// onProcessingTime lets every operator of the chain fire its due
// processing-time timers, head first.
func (t *task) onProcessingTime(ctx context.Context) error {
	for _, n := range t.nodes {
		if pt, is := n.op.(processingTimer); is {
			if err := pt.OnProcessingTime(ctx, &n.out); err != nil {
				return tagVertex(n.vertex.ID, err)
			}
		}
	}
	return nil
}

// forward sends what the valve produced down the head's chain.
func (t *task) forward(ctx context.Context, r valveOutput) error {
	if r.active {
		if err := t.head.out.EmitIdle(ctx, false); err != nil {
			return err
		}
	}
	if r.advanced {
		if err := t.head.processWatermark(ctx, r.wm); err != nil {
			return err
		}
	}
	if r.idle {
		return t.head.out.EmitIdle(ctx, true)
	}
	return nil
}

// valve merges the watermarks and watermark statuses of a gate's channels
// with eventtime.InputMerger, as Flink's StatusWatermarkValve: the output
// watermark is the minimum over the active channels (an ended channel
// counts as MaxWatermark) and only ever advances; an idle channel is left
// out of the minimum, and one that returns behind the output rejoins once
// it has caught up. The output is idle when every channel is idle. valve
// also tracks which channels are still open and the status last sent
// downstream.
type valve struct {
	m     *eventtime.InputMerger
	ended []bool
	open  int
	idle  bool // status last sent downstream
}

// valveOutput is what one input element makes the task send downstream,
// in this order: an active status, the watermark, an idle status (an
// active status goes before a watermark, an idle one after it).
type valveOutput struct {
	active   bool // send ACTIVE first
	wm       int64
	advanced bool // send wm
	idle     bool // send IDLE last
}

func newValve(channels int) *valve {
	return &valve{m: eventtime.NewInputMerger(channels), ended: make([]bool, channels), open: channels}
}

// watermark records wm on channel ch.
func (v *valve) watermark(ch int, wm int64) valveOutput {
	return v.result(v.m.Update(ch, wm))
}

// status records channel ch's watermark status: idle or active.
func (v *valve) status(ch int, idle bool) valveOutput {
	return v.result(v.m.SetIdle(ch, idle))
}

// end marks channel ch ended. Once every channel has ended nothing more is
// sent: the task finishes.
func (v *valve) end(ch int) valveOutput {
	if v.ended[ch] {
		return valveOutput{}
	}
	v.ended[ch] = true
	v.open--
	r := v.result(v.m.EndOfInput(ch))
	if v.open == 0 {
		return valveOutput{}
	}
	return r
}

func (v *valve) result(wm int64, advanced bool) valveOutput {
	r := valveOutput{wm: wm, advanced: advanced}
	if idle := v.m.Idle(); idle != v.idle {
		v.idle = idle
		r.active, r.idle = !idle, idle
	}
	return r
}
