package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/internal/keygroup"
	"github.com/sabotdev/sabot/worker/connector/file"
	"github.com/sabotdev/sabot/worker/connector/jsonrow"
	"github.com/sabotdev/sabot/worker/state"
)

// FunctionHost reaches function processes (worker/function.Host behind an
// adapter): a child process run from a deployed artifact, or a URL.
type FunctionHost interface {
	OpenFunction(ctx context.Context, fn *sabotv1.Function) (FunctionConn, error)
}

// FunctionConn is one function's process (shared by the subtasks of a
// worker).
type FunctionConn interface {
	// Session opens a session: one subtask's stream of calls.
	Session(ctx context.Context) (FunctionSession, error)
	Close() error
}

// FunctionSession carries one call at a time. Call sends call and blocks
// until its result; it answers the process's state reads by calling read
// on the caller's goroutine (the task's, which owns the state). A failed
// Call leaves the session broken: the caller closes it and opens another.
type FunctionSession interface {
	Call(ctx context.Context, call *sabotv1.Call, read func(*sabotv1.StateRead) *sabotv1.StateReadResult) (*sabotv1.CallResult, error)
	Close() error
}

// Function step defaults.
const (
	defaultFunctionCallTimeout = 10 * time.Second
	defaultFunctionMaxBatch    = 256
	defaultFunctionAttempts    = 3
	// idempotencyTTL is how long an idempotency record (a stored reply)
	// lives after it was written.
	idempotencyTTL = 24 * time.Hour
	// maxLocalRounds bounds the rounds of zero-delay messages a function
	// sends itself while handling one input: a cycle fails the task.
	maxLocalRounds = 1000
	// maxCallRetries bounds the retries of a call that failed in transport
	// (the process crashed or timed out) before its invocations are tried
	// one by one.
	maxCallRetries = 5
)

// Internal state names of a function step (user state names cannot start
// with "sabot.": the SDK's pattern forbids the dot-prefixed namespace).
const (
	fnStateIdempotency = "sabot.idempotency"
	fnStateDelayedProc = "sabot.delayed.processing"
	fnStateDelayedEvt  = "sabot.delayed.event"
	fnTimersUser       = "function"
	fnTimersDelayed    = "function-delayed"
)

// functionOp runs a deployed function over a keyed input.
//
// Per input batch the rows are grouped by key, in order: one invocation
// per key with its messages (each row as a JSON object) and the values of
// the state the function reads eagerly; invocations go to the function
// process in calls of at most max_batch invocations. Invoke requests
// routed to this subtask join the next call (they wake the task when the
// input is quiet). The result of each invocation is applied atomically
// with the operator's keyed state: state mutations, timers, messages to
// outputs (rows of side outputs), messages to this function (delivered
// after their delay, or in the next round), replies. Nothing of an
// invocation is applied until its whole result is in, so a call that
// failed (the process crashed, the deadline passed) is simply made again:
// the function holds no state and the effect happens once. The
// checkpoint snapshots the keyed state as for any keyed operator.
//
// Replies to Invoke requests are released when the first checkpoint taken
// after their effect completes (committed), unless the request asked for
// an uncommitted reply, or the job has no checkpoints.
type functionOp struct {
	name   string
	step   *sabotv1.FunctionStep
	fn     *sabotv1.Function
	specs  map[string]*sabotv1.StateSpec
	eager  []*sabotv1.StateSpec
	info   TaskInfo
	logger *slog.Logger
	clock  clockwork.Clock
	mem    memory.Allocator
	host   FunctionHost
	inv    *Invocations
	maxP   int

	keys   *keySelector
	keyCol int
	tsCol  int
	enc    *jsonrow.Encoder
	st     *keyedState

	values  map[string]*state.ValueState[[]byte]
	lists   map[string]*state.ListState[[]byte]
	maps    map[string]*state.MapState[[]byte, []byte]
	idem    *state.MapState[string, []byte]
	delayed map[sabotv1.TimeDomain]*state.ListState[[]byte]
	timers  *state.TimerService
	dtimers *state.TimerService

	outs map[string]*fnOutput
	// outNames are outs' names, sorted: the order outputs are flushed in.
	outNames []string
	replies  *Collector
	dead     *fnOutput

	timeout     time.Duration
	maxBatch    int
	maxAttempts int
	cpOn        bool

	conn   FunctionConn
	sess   FunctionSession
	callID uint64
	wm     int64

	inbox *fnInbox

	// Messages to other functions and subtasks (function_mail.go).
	messenger  FunctionMessenger
	mail       *fnMail
	outbox     *state.ListState[[]byte]
	outseq     *state.ValueState[int64]
	mailCancel context.CancelFunc
	mailDone   chan struct{}

	// out is the Output of the current call into the operator.
	ctx context.Context
	out Output

	// fired collects the events of timers firing, by key.
	fired *fnBatch
	// staged are the output rows validate decoded, for apply.
	staged []file.StagedRow
}

func newFunctionOp(step *sabotv1.FunctionStep, v *jobgraph.Vertex, info TaskInfo, e *env) (*functionOp, error) {
	name := step.GetName()
	fn := step.GetFunction()
	if fn == nil {
		return nil, fmt.Errorf("runtime: function step %q carries no registration (deploy the function first)", name)
	}
	if e.functionHost == nil {
		return nil, fmt.Errorf("runtime: function %q: this worker runs no function processes (no function host configured)", name)
	}
	keys, err := newKeySelector(v, info, e.maxParallelism)
	if err != nil {
		return nil, err
	}
	tsCol, err := timestampColumn(v.InputSchema, "")
	if err != nil {
		return nil, err
	}
	f := &functionOp{
		name: name, step: step, fn: fn, info: info, logger: e.logger, clock: e.clock, mem: e.mem,
		host: e.functionHost, inv: e.invocations, maxP: e.maxParallelism,
		keys: keys, keyCol: v.Inputs[0].KeyIndices[0], tsCol: tsCol, enc: jsonrow.NewEncoder(v.InputSchema),
		st:       newKeyedState(v, info, e),
		specs:    map[string]*sabotv1.StateSpec{},
		values:   map[string]*state.ValueState[[]byte]{},
		lists:    map[string]*state.ListState[[]byte]{},
		maps:     map[string]*state.MapState[[]byte, []byte]{},
		delayed:  map[sabotv1.TimeDomain]*state.ListState[[]byte]{},
		outs:     map[string]*fnOutput{},
		replies:  newCollector(e.mem, v.Schema, e.batchSize),
		timeout:  time.Duration(fn.GetLimits().GetCallTimeoutMs()) * time.Millisecond,
		maxBatch: int(fn.GetLimits().GetMaxBatch()), maxAttempts: int(step.GetMaxAttempts()),
		cpOn: e.cp != nil, wm: MinWatermark,
		inbox:     newFnInbox(),
		messenger: e.messenger, mail: newFnMail(),
	}
	if f.timeout <= 0 {
		f.timeout = defaultFunctionCallTimeout
	}
	if f.maxBatch <= 0 {
		f.maxBatch = defaultFunctionMaxBatch
	}
	if f.maxAttempts <= 0 {
		f.maxAttempts = defaultFunctionAttempts
	}
	for _, s := range fn.GetSpec().GetStates() {
		f.specs[s.GetName()] = s
		if !s.GetLazy() {
			f.eager = append(f.eager, s)
		}
	}
	for _, so := range v.SideOutputs {
		o, err := newFnOutput(so.Name, so.Schema, e.mem)
		if err != nil {
			return nil, fmt.Errorf("function %q: output %q: %w", name, so.Name, err)
		}
		if so.Name == jobgraph.DeadLetterOutput && step.GetOnFailure() == sabotv1.FunctionFailurePolicy_FUNCTION_FAILURE_POLICY_DEAD_LETTER {
			f.dead = o
			continue
		}
		f.outs[so.Name] = o
		f.outNames = append(f.outNames, so.Name)
	}
	slices.Sort(f.outNames)
	return f, nil
}

// fnOutput builds the rows of one function output.
type fnOutput struct {
	name string
	b    *array.RecordBuilder
	dec  *file.RowDecoder // nil: raw (key, value)
	rows int
}

func newFnOutput(name string, schema *arrow.Schema, mem memory.Allocator) (*fnOutput, error) {
	o := &fnOutput{name: name, b: array.NewRecordBuilder(mem, schema)}
	raw := jobgraph.FunctionRawOutputSchema()
	if name == jobgraph.DeadLetterOutput || schema.Equal(raw) {
		return o, nil
	}
	dec, err := file.NewRowDecoder(schema)
	if err != nil {
		o.b.Release()
		return nil, err
	}
	o.dec = dec
	return o, nil
}

// decode decodes payload into a row without appending it (a malformed
// message is found before anything of its invocation is applied); a raw
// output has nothing to decode.
func (o *fnOutput) decode(payload []byte) (file.StagedRow, error) {
	if o.dec == nil {
		return file.StagedRow{}, nil
	}
	if err := o.dec.Stage(payload); err != nil {
		return file.StagedRow{}, err
	}
	return o.dec.Take(), nil
}

// add appends a message decode accepted.
func (o *fnOutput) add(key string, payload []byte, row file.StagedRow) {
	if o.dec == nil {
		o.b.Field(0).(*array.StringBuilder).Append(key)
		o.b.Field(1).(*array.StringBuilder).Append(string(payload))
	} else {
		file.CommitRow(o.b, row)
	}
	o.rows++
}

func (o *fnOutput) addDead(function, key string, payload []byte, msg string) {
	o.b.Field(0).(*array.StringBuilder).Append(function)
	o.b.Field(1).(*array.StringBuilder).Append(key)
	o.b.Field(2).(*array.StringBuilder).Append(string(payload))
	o.b.Field(3).(*array.StringBuilder).Append(msg)
	o.rows++
}

func (o *fnOutput) flush(ctx context.Context, out Output) error {
	if o.rows == 0 {
		return nil
	}
	rec := o.b.NewRecordBatch()
	o.rows = 0
	defer rec.Release()
	return SideOutputOf(out, o.name).Emit(ctx, rec)
}

func (f *functionOp) keyedStateOf() *keyedState { return f.st }

func (f *functionOp) Open(ctx context.Context) error {
	if err := f.st.open(ctx); err != nil {
		return err
	}
	k := f.st.keyed
	for _, s := range f.fn.GetSpec().GetStates() {
		ttl := state.TTLConfig{TTL: time.Duration(s.GetTtlMs()) * time.Millisecond, CleanupOnRead: true}
		var err error
		switch s.GetKind() {
		case sabotv1.StateKind_STATE_KIND_VALUE:
			f.values[s.GetName()], err = state.Value(k, state.ValueDescriptor[[]byte]{Name: s.GetName(), Codec: state.BytesCodec{}, TTL: ttl})
		case sabotv1.StateKind_STATE_KIND_LIST:
			f.lists[s.GetName()], err = state.List(k, state.ListDescriptor[[]byte]{Name: s.GetName(), Codec: state.BytesCodec{}, TTL: ttl})
		case sabotv1.StateKind_STATE_KIND_MAP:
			f.maps[s.GetName()], err = state.Map(k, state.MapDescriptor[[]byte, []byte]{Name: s.GetName(), KeyCodec: state.BytesCodec{}, ValueCodec: state.BytesCodec{}, TTL: ttl})
		default:
			err = fmt.Errorf("state %q has kind %s", s.GetName(), s.GetKind())
		}
		if err != nil {
			return fmt.Errorf("function %q: %w", f.name, err)
		}
	}
	var err error
	if f.idem, err = state.Map(k, state.MapDescriptor[string, []byte]{Name: fnStateIdempotency, KeyCodec: state.StringCodec{},
		ValueCodec: state.BytesCodec{}, TTL: state.TTLConfig{TTL: idempotencyTTL, CleanupOnRead: true}}); err != nil {
		return err
	}
	for d, name := range map[sabotv1.TimeDomain]string{sabotv1.TimeDomain_TIME_DOMAIN_PROCESSING: fnStateDelayedProc, sabotv1.TimeDomain_TIME_DOMAIN_EVENT: fnStateDelayedEvt} {
		if f.delayed[d], err = state.List(k, state.ListDescriptor[[]byte]{Name: name, Codec: state.BytesCodec{}}); err != nil {
			return err
		}
	}
	if f.timers, err = k.TimerService(fnTimersUser); err != nil {
		return err
	}
	if f.dtimers, err = k.TimerService(fnTimersDelayed); err != nil {
		return err
	}
	if err := f.outboxStates(k); err != nil {
		return err
	}
	if err := f.openOutboxes(); err != nil {
		return err
	}
	if f.conn, err = f.host.OpenFunction(ctx, f.fn); err != nil {
		return fmt.Errorf("function %q: %w", f.name, err)
	}
	if f.messenger != nil {
		ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f.mailCancel, f.mailDone = cancel, make(chan struct{})
		go func() { // owned by f: Close stops it and waits
			defer close(f.mailDone)
			f.mailer(ctx)
		}()
	}
	if f.inv != nil {
		f.inv.register(f)
	}
	return nil
}

func (f *functionOp) Close() error {
	if f.inv != nil {
		f.inv.unregister(f)
	}
	if f.mailCancel != nil {
		f.mailCancel()
		<-f.mailDone
	}
	f.inbox.close(fmt.Errorf("%w: the function subtask stopped", ErrNotOwner))
	f.failWaiting(fmt.Errorf("%w: the function subtask stopped before the checkpoint holding the effect completed; retry with the same idempotency key", ErrNotOwner))
	if f.sess != nil {
		_ = f.sess.Close()
	}
	if f.conn != nil {
		_ = f.conn.Close()
	}
	f.replies.release()
	for _, o := range f.outs {
		o.b.Release()
	}
	if f.dead != nil {
		f.dead.b.Release()
	}
	return f.st.close()
}

// setWaker implements waker: an invocation arriving wakes the task.
func (f *functionOp) setWaker(wake func()) { f.inbox.wake = wake }

func (f *functionOp) bind(ctx context.Context, out Output) {
	f.ctx, f.out = ctx, out
	f.replies.bind(ctx, out)
}

func (f *functionOp) unbind() {
	f.ctx, f.out = nil, nil
	f.replies.unbind()
}

func (f *functionOp) flush() error {
	if err := f.replies.flush(); err != nil {
		return err
	}
	for _, name := range f.outNames {
		if err := f.outs[name].flush(f.ctx, f.out); err != nil {
			return err
		}
	}
	if f.dead != nil {
		return f.dead.flush(f.ctx, f.out)
	}
	return nil
}

func (f *functionOp) ProcessBatch(ctx context.Context, rec arrow.RecordBatch, out Output) error {
	f.bind(ctx, out)
	defer f.unbind()
	b := newFnBatch()
	if err := f.fireProcessingTime(b); err != nil {
		return err
	}
	if err := f.st.cleanup(); err != nil {
		return err
	}
	if err := f.keys.prepare(rec); err != nil {
		return err
	}
	keys := rec.Column(f.keyCol).(*array.String)
	now := nowMillis(f.clock)
	f.enc.Reset(rec)
	// The rows' JSON in one buffer per batch: each payload is a slice of
	// it (a slice keeps its array when the buffer grows into another).
	buf := make([]byte, 0, 64*int(rec.NumRows()))
	for i := range int(rec.NumRows()) {
		start := len(buf)
		buf = f.enc.AppendRow(buf, i)
		m := &sabotv1.Message{Payload: buf[start:len(buf):len(buf)]}
		if f.tsCol >= 0 && !rec.Column(f.tsCol).IsNull(i) {
			ts := Row{rec: rec, i: i}.Timestamp(f.tsCol)
			m.EventTimeMs = &ts
		}
		b.add(keys.Value(i), uint16(f.keys.hashes[i]), &sabotv1.Event{Kind: &sabotv1.Event_Message{Message: m}})
	}
	if err := f.drainInbox(b, now); err != nil {
		return err
	}
	if err := f.run(b); err != nil {
		return err
	}
	return f.flush()
}

func (f *functionOp) ProcessWatermark(ctx context.Context, wm int64, out Output) error {
	f.bind(ctx, out)
	defer f.unbind()
	b := newFnBatch()
	if err := f.fireProcessingTime(b); err != nil {
		return err
	}
	if err := f.drainInbox(b, nowMillis(f.clock)); err != nil {
		return err
	}
	if err := f.advance(wm, b); err != nil {
		return err
	}
	return f.flush()
}

func (f *functionOp) Finish(ctx context.Context, out Output) error {
	f.bind(ctx, out)
	defer f.unbind()
	b := newFnBatch()
	if err := f.drainInbox(b, nowMillis(f.clock)); err != nil {
		return err
	}
	if err := f.advance(MaxWatermark, b); err != nil {
		return err
	}
	b = newFnBatch()
	if err := f.fireProcessingTime(b); err != nil {
		return err
	}
	if err := f.run(b); err != nil {
		return err
	}
	return f.flush()
}

// NextProcessingTime implements processingTimer.
func (f *functionOp) NextProcessingTime() (int64, bool) {
	a, okA := f.timers.NextProcessingTime()
	b, okB := f.dtimers.NextProcessingTime()
	switch {
	case okA && okB:
		return min(a, b), true
	case okA:
		return a, true
	default:
		return b, okB
	}
}

// OnProcessingTime implements processingTimer: due processing-time timers
// and delayed messages, and the invocations that woke the task.
func (f *functionOp) OnProcessingTime(ctx context.Context, out Output) error {
	f.bind(ctx, out)
	defer f.unbind()
	b := newFnBatch()
	if err := f.fireProcessingTime(b); err != nil {
		return err
	}
	if err := f.drainInbox(b, nowMillis(f.clock)); err != nil {
		return err
	}
	if err := f.run(b); err != nil {
		return err
	}
	return f.flush()
}

// advance moves the watermark to wm: event-time timers and delayed
// messages due fire, in rounds until none is due (a timer the function
// registers at or before wm fires in the next round).
func (f *functionOp) advance(wm int64, b *fnBatch) error {
	f.wm = max(f.wm, wm)
	for round := 0; ; round++ {
		if round > maxLocalRounds {
			return fmt.Errorf("function %q: timers at or before watermark %d keep being registered (%d rounds)", f.name, f.wm, maxLocalRounds)
		}
		f.fired = b
		err := f.timers.AdvanceWatermark(f.wm, f.onTimer(sabotv1.TimeDomain_TIME_DOMAIN_EVENT))
		if err == nil {
			err = f.dtimers.AdvanceWatermark(f.wm, f.onDelayed(sabotv1.TimeDomain_TIME_DOMAIN_EVENT))
		}
		f.fired = nil
		if err != nil {
			return err
		}
		if b.empty() {
			return nil
		}
		if err := f.run(b); err != nil {
			return err
		}
		b = newFnBatch()
	}
}

// fireProcessingTime adds the processing-time timers and delayed messages
// due by the clock to b.
func (f *functionOp) fireProcessingTime(b *fnBatch) error {
	next, ok := f.NextProcessingTime()
	now := nowMillis(f.clock)
	if !ok || next > now {
		return nil
	}
	f.fired = b
	defer func() { f.fired = nil }()
	if err := f.timers.AdvanceProcessingTime(now, f.onTimer(sabotv1.TimeDomain_TIME_DOMAIN_PROCESSING)); err != nil {
		return err
	}
	return f.dtimers.AdvanceProcessingTime(now, f.onDelayed(sabotv1.TimeDomain_TIME_DOMAIN_PROCESSING))
}

func (f *functionOp) onTimer(d sabotv1.TimeDomain) func(state.Timer) error {
	return func(t state.Timer) error {
		f.fired.add(string(t.Key), t.KeyGroup, &sabotv1.Event{Kind: &sabotv1.Event_Timer{Timer: &sabotv1.FiredTimer{
			Name: string(t.Namespace), TimestampMs: t.Timestamp, Domain: d}}})
		return nil
	}
}

// onDelayed delivers the key's delayed messages of domain d that are due
// at the timer's time; later ones stay.
func (f *functionOp) onDelayed(d sabotv1.TimeDomain) func(state.Timer) error {
	return func(t state.Timer) error {
		f.st.keyed.SetCurrentNamespace(nil)
		l := f.delayed[d]
		items, err := l.Get()
		if err != nil {
			return err
		}
		var keep [][]byte
		for _, it := range items {
			m := new(sabotv1.Message)
			if err := proto.Unmarshal(it, m); err != nil {
				return fmt.Errorf("function %q: stored delayed message: %w", f.name, err)
			}
			if m.GetEventTimeMs() <= t.Timestamp {
				if d == sabotv1.TimeDomain_TIME_DOMAIN_PROCESSING {
					m.EventTimeMs = nil
				}
				f.fired.add(string(t.Key), t.KeyGroup, &sabotv1.Event{Kind: &sabotv1.Event_Message{Message: m}})
			} else {
				keep = append(keep, it)
			}
		}
		if len(keep) == 0 {
			return l.Clear()
		}
		return l.Update(keep)
	}
}

// fnBatch is the work of one round: an invocation per key, in the order
// keys first appear.
type fnBatch struct {
	invs  []*sabotv1.Invocation
	kgs   []uint16
	byKey map[string]int
	// reqs are the Invoke requests whose messages are in the batch, by
	// reply id.
	reqs map[string]*invokeReq
}

func newFnBatch() *fnBatch { return &fnBatch{byKey: map[string]int{}} }

func (b *fnBatch) empty() bool { return len(b.invs) == 0 }

func (b *fnBatch) add(key string, kg uint16, ev *sabotv1.Event) {
	i, ok := b.byKey[key]
	if !ok {
		i = len(b.invs)
		b.byKey[key] = i
		b.invs = append(b.invs, &sabotv1.Invocation{Key: []byte(key)})
		b.kgs = append(b.kgs, kg)
	}
	b.invs[i].Events = append(b.invs[i].Events, ev)
}

// run calls the function for every invocation of b, applies the results,
// and runs the rounds of zero-delay messages the function sent itself.
func (f *functionOp) run(b *fnBatch) error {
	for round := 0; !b.empty(); round++ {
		if round > maxLocalRounds {
			return fmt.Errorf("function %q: messages to itself keep coming (%d rounds without delay)", f.name, maxLocalRounds)
		}
		next := newFnBatch()
		for lo := 0; lo < len(b.invs); lo += f.maxBatch {
			hi := min(lo+f.maxBatch, len(b.invs))
			if err := f.runChunk(b, lo, hi, next); err != nil {
				return err
			}
		}
		b = next
	}
	return nil
}

// runChunk runs invocations [lo, hi) of b: one call, retried as a whole
// while it fails in transport, then one invocation at a time; each
// invocation's own failures are retried up to max_attempts, then handled
// by the step's failure policy.
func (f *functionOp) runChunk(b *fnBatch, lo, hi int, next *fnBatch) error {
	idx := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		idx = append(idx, i)
	}
	attempts := make(map[int]int, len(idx))
	lastErr := make(map[int]string, len(idx))
	single := false
	transport := 0
	for len(idx) > 0 {
		group := idx
		if single {
			group = idx[:1]
		}
		results, err := f.call(b, group)
		if err != nil {
			if f.ctx.Err() != nil {
				return f.ctx.Err()
			}
			transport++
			f.logger.Warn("function call failed", "function", f.name, "subtask", f.info.Subtask,
				"invocations", len(group), "attempt", transport, "error", err)
			// A crashed or unreachable process is retried as is (the
			// worker restarts it); a call that ran out of time likely
			// holds the culprit: look for it at once.
			if !single && transport < maxCallRetries && !errors.Is(err, errCallDeadline) {
				if err := f.backoff(transport); err != nil {
					return err
				}
				continue
			}
			if !single {
				// Find the invocation that breaks the call: one at a time.
				single, transport = true, 0
				continue
			}
			// One invocation: it counts against its attempts.
			i := group[0]
			attempts[i]++
			lastErr[i] = err.Error()
			if attempts[i] < f.maxAttempts {
				if err := f.backoff(attempts[i]); err != nil {
					return err
				}
				continue
			}
			if err := f.failed(b, i, lastErr[i]); err != nil {
				return err
			}
			idx = idx[1:]
			transport = 0
			continue
		}
		transport = 0
		var again []int
		for j, i := range group {
			r := results[j]
			msg := r.GetError()
			if msg == "" {
				if err := f.validate(b, i, r); err != nil {
					msg = "malformed result: " + err.Error()
				}
			}
			if msg == "" {
				if err := f.apply(b, i, r, next); err != nil {
					return err
				}
				continue
			}
			attempts[i]++
			lastErr[i] = msg
			if attempts[i] < f.maxAttempts {
				again = append(again, i)
				continue
			}
			if err := f.failed(b, i, msg); err != nil {
				return err
			}
		}
		if single {
			idx = append(again, idx[len(group):]...)
		} else {
			idx = again
		}
	}
	return nil
}

func (f *functionOp) backoff(attempt int) error {
	d := min(50*time.Millisecond<<min(attempt, 6), 2*time.Second)
	t := f.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.Chan():
		return nil
	case <-f.ctx.Done():
		return f.ctx.Err()
	}
}

// call makes one call with the invocations idx of b, eager state filled
// in, and returns their results in order.
func (f *functionOp) call(b *fnBatch, idx []int) ([]*sabotv1.InvocationResult, error) {
	f.callID++
	call := &sabotv1.Call{Id: f.callID, WatermarkMs: f.wm, ProcessingTimeMs: nowMillis(f.clock)}
	for _, i := range idx {
		inv := b.invs[i]
		inv.Function = f.name
		st, err := f.eagerState(inv.Key, b.kgs[i])
		if err != nil {
			return nil, err
		}
		inv.State = st
		call.Invocations = append(call.Invocations, inv)
	}
	if f.sess == nil {
		s, err := f.conn.Session(f.ctx)
		if err != nil {
			return nil, err
		}
		f.sess = s
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.timeout)
	defer cancel()
	res, err := f.sess.Call(ctx, call, f.read)
	if err == nil && len(res.GetResults()) != len(idx) {
		err = fmt.Errorf("function %q answered call %d with %d results for %d invocations", f.name, call.Id, len(res.GetResults()), len(idx))
	}
	if err != nil {
		_ = f.sess.Close()
		f.sess = nil
		if ctx.Err() != nil && f.ctx.Err() == nil {
			err = fmt.Errorf("function %q: %w (%s): %w", f.name, errCallDeadline, f.timeout, err)
		}
		return nil, err
	}
	return res.GetResults(), nil
}

// eagerState reads the values of the function's eager states for key.
func (f *functionOp) eagerState(key []byte, kg uint16) ([]*sabotv1.StateValue, error) {
	if len(f.eager) == 0 {
		return nil, nil
	}
	if err := f.setKey(key, kg); err != nil {
		return nil, err
	}
	var out []*sabotv1.StateValue
	for _, s := range f.eager {
		sv, err := f.readAll(s)
		if err != nil {
			return nil, err
		}
		if sv != nil {
			out = append(out, sv)
		}
	}
	return out, nil
}

// readAll reads one state of the current key whole; nil when absent.
func (f *functionOp) readAll(s *sabotv1.StateSpec) (*sabotv1.StateValue, error) {
	name := s.GetName()
	switch s.GetKind() {
	case sabotv1.StateKind_STATE_KIND_VALUE:
		v, ok, err := f.values[name].Value()
		if err != nil || !ok {
			return nil, err
		}
		return &sabotv1.StateValue{State: name, Value: &sabotv1.StateValue_Bytes{Bytes: v}}, nil
	case sabotv1.StateKind_STATE_KIND_LIST:
		items, err := f.lists[name].Get()
		if err != nil || len(items) == 0 {
			return nil, err
		}
		return &sabotv1.StateValue{State: name, Value: &sabotv1.StateValue_List{List: &sabotv1.ListValue{Items: items}}}, nil
	default:
		entries, err := f.mapEntries(name)
		if err != nil || len(entries) == 0 {
			return nil, err
		}
		return &sabotv1.StateValue{State: name, Value: &sabotv1.StateValue_Map{Map: &sabotv1.MapValue{Entries: entries}}}, nil
	}
}

// mapEntries returns the current key's map entries in key order.
func (f *functionOp) mapEntries(name string) ([]*sabotv1.MapEntry, error) {
	var entries []*sabotv1.MapEntry
	err := f.maps[name].Iterate(func(k, v []byte) error {
		entries = append(entries, &sabotv1.MapEntry{Key: slices.Clone(k), Value: slices.Clone(v)})
		return nil
	})
	slices.SortFunc(entries, func(a, b *sabotv1.MapEntry) int { return strings.Compare(string(a.Key), string(b.Key)) })
	return entries, err
}

func (f *functionOp) setKey(key []byte, kg uint16) error {
	if err := f.st.keyed.SetCurrentKey(key, kg); err != nil {
		return err
	}
	f.st.keyed.SetCurrentNamespace(nil)
	return nil
}

// read answers a lazy state read of a running call.
func (f *functionOp) read(r *sabotv1.StateRead) *sabotv1.StateReadResult {
	res := &sabotv1.StateReadResult{Id: r.GetId()}
	s, ok := f.specs[r.GetState()]
	if !ok {
		res.Error = fmt.Sprintf("function %q declares no state %q", f.name, r.GetState())
		return res
	}
	kg := keygroup.StringKeyGroup(string(r.GetKey()), f.maxP)
	if kg < f.info.KeyGroupStart || kg > f.info.KeyGroupEnd {
		res.Error = fmt.Sprintf("key %q is not owned by this subtask", r.GetKey())
		return res
	}
	if err := f.setKey(r.GetKey(), uint16(kg)); err != nil {
		res.Error = err.Error()
		return res
	}
	if err := f.readInto(s, r, res); err != nil {
		res.Error = err.Error()
	}
	return res
}

func (f *functionOp) readInto(s *sabotv1.StateSpec, r *sabotv1.StateRead, res *sabotv1.StateReadResult) error {
	name := s.GetName()
	page := r.GetPage()
	limit := int(page.GetLimit())
	if limit <= 0 {
		limit = 1000
	}
	switch s.GetKind() {
	case sabotv1.StateKind_STATE_KIND_VALUE:
		v, found, err := f.values[name].Value()
		res.Found, res.Value = found, v
		return err
	case sabotv1.StateKind_STATE_KIND_LIST:
		items, err := f.lists[name].Get()
		if err != nil {
			return err
		}
		off := min(int(max(page.GetOffset(), 0)), len(items))
		end := min(off+limit, len(items))
		res.Items, res.More, res.Found = items[off:end], end < len(items), len(items) > 0
		return nil
	default:
		if _, isKey := r.GetWhat().(*sabotv1.StateRead_MapKey); isKey {
			v, found, err := f.maps[name].Get(r.GetMapKey())
			res.Found, res.Value = found, v
			return err
		}
		entries, err := f.mapEntries(name)
		if err != nil {
			return err
		}
		start := 0
		if after := page.GetAfter(); len(after) > 0 {
			start, _ = slices.BinarySearchFunc(entries, after, func(e *sabotv1.MapEntry, k []byte) int {
				return strings.Compare(string(e.Key), string(k))
			})
			if start < len(entries) && string(entries[start].Key) == string(after) {
				start++
			}
		}
		end := min(start+limit, len(entries))
		res.Entries, res.More, res.Found = entries[start:end], end < len(entries), len(entries) > 0
		return nil
	}
}

// validate checks an invocation's result before any of it is applied; it
// leaves the decoded output rows in f.staged for apply.
func (f *functionOp) validate(b *fnBatch, i int, r *sabotv1.InvocationResult) error {
	f.staged = f.staged[:0]
	for _, m := range r.GetMutations() {
		s, ok := f.specs[m.GetState()]
		if !ok {
			return fmt.Errorf("mutation of undeclared state %q", m.GetState())
		}
		var want sabotv1.StateKind
		switch m.GetOp().(type) {
		case *sabotv1.StateMutation_Set:
			want = sabotv1.StateKind_STATE_KIND_VALUE
		case *sabotv1.StateMutation_Clear:
			continue
		case *sabotv1.StateMutation_Append, *sabotv1.StateMutation_Replace:
			want = sabotv1.StateKind_STATE_KIND_LIST
		case *sabotv1.StateMutation_Put, *sabotv1.StateMutation_Remove:
			want = sabotv1.StateKind_STATE_KIND_MAP
		default:
			return fmt.Errorf("mutation of state %q has no operation", m.GetState())
		}
		if s.GetKind() != want {
			return fmt.Errorf("mutation %T does not apply to state %q of kind %s", m.GetOp(), m.GetState(), s.GetKind())
		}
	}
	for _, t := range r.GetTimers() {
		if t.GetDomain() != sabotv1.TimeDomain_TIME_DOMAIN_EVENT && t.GetDomain() != sabotv1.TimeDomain_TIME_DOMAIN_PROCESSING {
			return fmt.Errorf("timer %q has no time domain", t.GetName())
		}
	}
	for _, m := range r.GetMessages() {
		switch tgt := m.GetTarget().(type) {
		case *sabotv1.OutgoingMessage_Output:
			o, ok := f.outs[tgt.Output]
			if !ok {
				return fmt.Errorf("message to output %q, which the step does not bind (outputs: %v)", tgt.Output, f.outNames)
			}
			row, err := o.decode(m.GetPayload())
			if err != nil {
				return fmt.Errorf("message to output %q: %w", tgt.Output, err)
			}
			f.staged = append(f.staged, row)
		case *sabotv1.OutgoingMessage_Address:
			_, _, _, local, err := f.route(tgt.Address)
			if err != nil {
				return err
			}
			if m.GetDelayMs() < 0 {
				return fmt.Errorf("message to %q has a negative delay", tgt.Address)
			}
			if !local && f.messenger == nil {
				return fmt.Errorf("message to %q: this worker delivers no messages to other functions or subtasks", tgt.Address)
			}
			if !local && (m.GetDelayMs() > 0 || m.AtEventTimeMs != nil) {
				return fmt.Errorf("message to %q: delayed messages reach only the sending function's keys in its own subtask (not yet other functions or subtasks)", tgt.Address)
			}
		default:
			return errors.New("message without a target")
		}
	}
	for _, rep := range r.GetReplies() {
		if !slices.ContainsFunc(b.invs[i].GetEvents(), func(ev *sabotv1.Event) bool {
			return ev.GetMessage().GetReplyId() == rep.GetReplyId()
		}) {
			return fmt.Errorf("reply to %q, which is not a message of this invocation", rep.GetReplyId())
		}
	}
	return nil
}

// route parses "function/key": local is true for this function's keys
// owned by this subtask (delivered within the operator), false for the
// rest (delivered through the outbox).
func (f *functionOp) route(addr string) (fn, key string, kg uint16, local bool, err error) {
	fn, key, ok := strings.Cut(addr, "/")
	if !ok || fn == "" || key == "" {
		return "", "", 0, false, fmt.Errorf("address %q is not function/key", addr)
	}
	if fn != f.name {
		return fn, key, 0, false, nil
	}
	g := keygroup.StringKeyGroup(key, f.maxP)
	return fn, key, uint16(g), g >= f.info.KeyGroupStart && g <= f.info.KeyGroupEnd, nil
}

// apply applies a validated result of invocation i.
func (f *functionOp) apply(b *fnBatch, i int, r *sabotv1.InvocationResult, next *fnBatch) error {
	inv := b.invs[i]
	key := string(inv.Key)
	if err := f.setKey(inv.Key, b.kgs[i]); err != nil {
		return err
	}
	for _, m := range r.GetMutations() {
		if err := f.mutate(m); err != nil {
			return fmt.Errorf("function %q: key %q: %w", f.name, key, err)
		}
	}
	for _, t := range r.GetTimers() {
		f.st.keyed.SetCurrentNamespace([]byte(t.GetName()))
		var err error
		switch {
		case t.GetDomain() == sabotv1.TimeDomain_TIME_DOMAIN_EVENT && t.GetDelete():
			err = f.timers.DeleteEventTimeTimer(t.GetTimestampMs())
		case t.GetDomain() == sabotv1.TimeDomain_TIME_DOMAIN_EVENT:
			err = f.timers.RegisterEventTimeTimer(t.GetTimestampMs())
		case t.GetDelete():
			err = f.timers.DeleteProcessingTimeTimer(t.GetTimestampMs())
		default:
			err = f.timers.RegisterProcessingTimeTimer(t.GetTimestampMs())
		}
		f.st.keyed.SetCurrentNamespace(nil)
		if err != nil {
			return err
		}
	}
	staged := 0
	for _, m := range r.GetMessages() {
		switch tgt := m.GetTarget().(type) {
		case *sabotv1.OutgoingMessage_Output:
			f.outs[tgt.Output].add(key, m.GetPayload(), f.staged[staged])
			staged++
		case *sabotv1.OutgoingMessage_Address:
			if err := f.send(tgt.Address, inv.Key, b.kgs[i], m, next); err != nil {
				return err
			}
			if err := f.setKey(inv.Key, b.kgs[i]); err != nil {
				return err
			}
		}
	}
	replied := map[string][]byte{}
	for _, rep := range r.GetReplies() {
		replied[rep.GetReplyId()] = rep.GetPayload()
	}
	for _, ev := range inv.GetEvents() {
		id := ev.GetMessage().GetReplyId()
		if id == "" {
			continue
		}
		req := b.reqs[id]
		if req == nil {
			continue
		}
		payload := replied[id]
		if k := req.req.GetIdempotencyKey(); k != "" {
			if err := f.idem.Put(k, payload); err != nil {
				return err
			}
		}
		f.replies.SetString(0, key)
		f.replies.SetString(1, string(payload))
		if err := f.replies.Emit(); err != nil {
			return err
		}
		f.respond(req, &sabotv1.InvokeResponse{Payload: payload}, nil)
	}
	return nil
}

// send delivers a message from sender (of key group senderKG) to addr:
// to this subtask's keys now (next round) or after its delay, to the rest
// through the outbox.
func (f *functionOp) send(addr string, sender []byte, senderKG uint16, m *sabotv1.OutgoingMessage, next *fnBatch) error {
	fn, key, kg, local, err := f.route(addr)
	if err != nil {
		return err
	}
	if !local {
		return f.post(fn, key, m.GetPayload(), sender, senderKG)
	}
	msg := &sabotv1.Message{Payload: m.GetPayload(), From: f.name + "/" + string(sender)}
	if m.GetDelayMs() == 0 && m.AtEventTimeMs == nil {
		next.add(key, kg, &sabotv1.Event{Kind: &sabotv1.Event_Message{Message: msg}})
		return nil
	}
	if err := f.setKey([]byte(key), kg); err != nil {
		return err
	}
	d, due := sabotv1.TimeDomain_TIME_DOMAIN_PROCESSING, nowMillis(f.clock)+m.GetDelayMs()
	if m.AtEventTimeMs != nil {
		d, due = sabotv1.TimeDomain_TIME_DOMAIN_EVENT, m.GetAtEventTimeMs()
	}
	msg.EventTimeMs = &due // the due time while stored
	enc, err := proto.Marshal(msg)
	if err != nil {
		return err
	}
	if err := f.delayed[d].Add(enc); err != nil {
		return err
	}
	if d == sabotv1.TimeDomain_TIME_DOMAIN_EVENT {
		return f.dtimers.RegisterEventTimeTimer(due)
	}
	return f.dtimers.RegisterProcessingTimeTimer(due)
}

func (f *functionOp) mutate(m *sabotv1.StateMutation) error {
	name := m.GetState()
	switch op := m.GetOp().(type) {
	case *sabotv1.StateMutation_Set:
		return f.values[name].Update(op.Set)
	case *sabotv1.StateMutation_Clear:
		switch f.specs[name].GetKind() {
		case sabotv1.StateKind_STATE_KIND_VALUE:
			return f.values[name].Clear()
		case sabotv1.StateKind_STATE_KIND_LIST:
			return f.lists[name].Clear()
		default:
			return f.maps[name].Clear()
		}
	case *sabotv1.StateMutation_Append:
		return f.lists[name].AddAll(op.Append.GetItems())
	case *sabotv1.StateMutation_Replace:
		if len(op.Replace.GetItems()) == 0 {
			return f.lists[name].Clear()
		}
		return f.lists[name].Update(op.Replace.GetItems())
	case *sabotv1.StateMutation_Put:
		return f.maps[name].Put(op.Put.GetKey(), op.Put.GetValue())
	case *sabotv1.StateMutation_Remove:
		return f.maps[name].Remove(op.Remove)
	}
	return nil
}

// failed handles invocation i that failed for good: the step's policy
// fails the task, or dead-letters its messages and goes on.
func (f *functionOp) failed(b *fnBatch, i int, msg string) error {
	inv := b.invs[i]
	f.logger.Error("function invocation failed", "function", f.name, "subtask", f.info.Subtask,
		"key", string(inv.Key), "attempts", f.maxAttempts, "error", msg)
	reqErr := fmt.Errorf("function %q failed on key %q after %d attempts: %s", f.name, inv.Key, f.maxAttempts, msg)
	for _, ev := range inv.GetEvents() {
		if req := b.reqs[ev.GetMessage().GetReplyId()]; req != nil {
			f.respond(req, nil, &FunctionError{Msg: reqErr.Error()})
		}
	}
	if f.dead == nil {
		return fmt.Errorf("%w (policy: fail; set on_failure: dead_letter to go on)", reqErr)
	}
	for _, ev := range inv.GetEvents() {
		if m := ev.GetMessage(); m != nil {
			f.dead.addDead(f.name, string(inv.Key), m.GetPayload(), msg)
		} else if t := ev.GetTimer(); t != nil {
			f.dead.addDead(f.name, string(inv.Key), nil, fmt.Sprintf("timer %q at %d: %s", t.GetName(), t.GetTimestampMs(), msg))
		}
	}
	return nil
}

// errCallDeadline marks a call that ran out of its time.
var errCallDeadline = errors.New("call deadline exceeded")

// FunctionError is an invocation the function failed: its error, panic or
// malformed result, after the step's attempts.
type FunctionError struct{ Msg string }

func (e *FunctionError) Error() string { return e.Msg }

// snapshotState snapshots the keyed state and moves the replies waiting
// for a checkpoint to this one.
func (f *functionOp) snapshotState(ctx context.Context, id int64) (*clusterv1.OperatorSnapshot, uploadFunc, error) {
	f.inbox.snapshotted(id)
	f.mail.snapshotted(id)
	return f.st.snapshotState(ctx, id)
}

func (f *functionOp) savepointState(ctx context.Context, id int64, name string) (*clusterv1.OperatorSnapshot, uploadFunc, error) {
	f.inbox.snapshotted(id)
	f.mail.snapshotted(id)
	return f.st.savepointState(ctx, id, name)
}

// checkpointComplete releases the replies whose effect checkpoint id holds.
func (f *functionOp) checkpointComplete(ctx context.Context, id int64) error {
	f.inbox.completed(id)
	f.mail.completed(id)
	return f.st.checkpointComplete(ctx, id)
}

func (f *functionOp) failWaiting(err error) { f.inbox.failWaiting(err) }

// respond answers an Invoke request: at once when uncommitted or without
// checkpoints, else when the next checkpoint completes.
func (f *functionOp) respond(req *invokeReq, resp *sabotv1.InvokeResponse, err error) {
	if err != nil || req.req.GetUncommitted() || !f.cpOn {
		req.finishAll(resp, err)
		return
	}
	f.inbox.await(req, resp)
}

func replayed(resp *sabotv1.InvokeResponse) *sabotv1.InvokeResponse {
	if resp == nil {
		return nil
	}
	r := proto.Clone(resp).(*sabotv1.InvokeResponse)
	r.Replayed = true
	return r
}

// drainInbox moves the invocations routed here into b: an idempotency key
// seen before (stored, or earlier in this batch) is answered with the
// stored reply instead of running again.
func (f *functionOp) drainInbox(b *fnBatch, now int64) error {
	if err := f.removeDelivered(); err != nil {
		return err
	}
	reqs := f.inbox.take()
	if len(reqs) == 0 {
		return nil
	}
	if b.reqs == nil {
		b.reqs = map[string]*invokeReq{}
	}
	byIdem := map[string]*invokeReq{}
	for _, req := range reqs {
		key := req.req.GetKey()
		if k := req.req.GetIdempotencyKey(); k != "" {
			if first := byIdem[key+"\x00"+k]; first != nil {
				first.followers = append(first.followers, req)
				continue
			}
			if err := f.setKey([]byte(key), uint16(req.kg)); err != nil {
				req.finish(nil, err)
				continue
			}
			stored, found, err := f.idem.Get(k)
			if err != nil {
				req.finish(nil, err)
				continue
			}
			if found {
				f.respond(req, &sabotv1.InvokeResponse{Payload: stored, Replayed: true}, nil)
				continue
			}
			byIdem[key+"\x00"+k] = req
		}
		id := fmt.Sprintf("r%d", req.seq)
		b.reqs[id] = req
		ts := now
		b.add(key, uint16(req.kg), &sabotv1.Event{Kind: &sabotv1.Event_Message{Message: &sabotv1.Message{
			Payload: req.req.GetPayload(), ReplyId: id, EventTimeMs: &ts, From: req.req.GetFrom()}}})
	}
	return nil
}
