package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jonboulle/clockwork"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/state"
)

// ProcessFunction is a keyed process function (Flink's
// KeyedProcessFunction) registered by name in Config.Functions. One
// instance runs per subtask, called from the task's goroutine only:
//
//	Open → (ProcessElement | OnTimer)*
//
// Before each ProcessElement and OnTimer the current key is set: keyed
// state handles created in Open (on ctx.Keyed()) read and write that
// key's state, and timers registered belong to it. An error returned from
// any method fails the task.
type ProcessFunction interface {
	// Open is called once before the first element: create state handles
	// here and check the output schema (ctx.OutputSchema()).
	Open(ctx *ProcessContext) error
	// ProcessElement handles one input row for the current key. Rows of a
	// batch are processed in order.
	ProcessElement(ctx *ProcessContext, row Row, out *Collector) error
	// OnTimer handles a timer of the current key that fired.
	OnTimer(ctx *ProcessContext, t TimerInfo, out *Collector) error
}

// ProcessFunctionFactory creates a subtask's instance of a process
// function from the operator's config (ProcessFunction.config in the job
// spec). It is called when the task is built: it should check config and
// acquire nothing (Open does).
type ProcessFunctionFactory func(config map[string]string) (ProcessFunction, error)

// TimeDomain is the clock a timer is in.
type TimeDomain uint8

// Time domains.
const (
	// EventTime timers fire when the watermark reaches them.
	EventTime TimeDomain = iota + 1
	// ProcessingTime timers fire when the worker's clock reaches them.
	ProcessingTime
)

func (d TimeDomain) String() string {
	switch d {
	case EventTime:
		return "event-time"
	case ProcessingTime:
		return "processing-time"
	default:
		return fmt.Sprintf("TimeDomain(%d)", uint8(d))
	}
}

// TimerInfo is a firing timer: its timestamp (ms) and domain.
type TimerInfo struct {
	Timestamp int64
	Domain    TimeDomain
}

// ErrNoTimestamp is returned by ProcessContext.Timestamp when the current
// element has no event time: the input has no timestamp column, or the
// row's value is null.
var ErrNoTimestamp = errors.New("runtime: element has no timestamp")

// TimestampFieldConfig is the ProcessFunction config key naming the input
// column ProcessContext.Timestamp reads (a timestamp, or an int64 of
// milliseconds). Without it, the first timestamp column of the input is
// the event time.
const TimestampFieldConfig = "timestamp_field"

// processTimers is the name of the timer service process functions use.
const processTimers = "process"

// ProcessContext is what a process function sees of its operator: the
// current key and element, event and processing time, keyed state and
// timers. One ProcessContext serves every call of a subtask; what it
// returns about the current key, element or timer is valid during the
// call only.
type ProcessContext struct {
	op    *processOp
	row   Row
	inRow bool
	timer TimerInfo // set during OnTimer
}

// TaskInfo identifies the subtask.
func (c *ProcessContext) TaskInfo() TaskInfo { return c.op.info }

// Logger is the job's logger.
func (c *ProcessContext) Logger() *slog.Logger { return c.op.logger }

// InputSchema is the schema of the rows ProcessElement receives.
func (c *ProcessContext) InputSchema() *arrow.Schema { return c.op.in }

// OutputSchema is the schema of the rows the Collector builds: the
// operator's declared output columns.
func (c *ProcessContext) OutputSchema() *arrow.Schema { return c.op.out.schema }

// KeyFields are the key columns of the input, in key order.
func (c *ProcessContext) KeyFields() []arrow.Field { return c.op.keys.fields }

// Output returns the Collector of the side output name, one of the
// operator's declared side_outputs (Flink's ctx.output(tag, value)): rows
// collected there go to the edges that read the side output, in the side
// output's columns (SideOutputSchema). An undeclared name is an error.
func (c *ProcessContext) Output(name string) (*Collector, error) {
	for _, s := range c.op.sides {
		if s.name == name {
			return s.c, nil
		}
	}
	names := make([]string, 0, len(c.op.sides))
	for _, s := range c.op.sides {
		names = append(names, s.name)
	}
	return nil, fmt.Errorf("runtime: process function %q has no side output %q (declared: %v)", c.op.name, name, names)
}

// StateTTL is the time-to-live the job spec sets for the function's keyed
// state (ProcessFunction.state_ttl_ms), 0 for none. Functions apply it to
// the state they create: state.TTLConfig{TTL: ctx.StateTTL()}.
func (c *ProcessContext) StateTTL() time.Duration { return c.op.ttl }

// Keyed is the operator's keyed state context: create state handles on it
// in Open (state.Value(ctx.Keyed(), ...)); they follow the current key.
func (c *ProcessContext) Keyed() *state.Keyed { return c.op.st.keyed }

// Key is the current key, decoded; valid until the key changes.
func (c *ProcessContext) Key() Key {
	return Key{b: c.op.st.keyed.CurrentKey(), kinds: c.op.keys.kinds}
}

// Watermark is the operator's current event-time watermark (MinWatermark
// before the first). During OnTimer for an event-time timer it is the
// watermark that fired it.
func (c *ProcessContext) Watermark() int64 { return c.op.wm }

// ProcessingTime is the worker clock's time in milliseconds.
func (c *ProcessContext) ProcessingTime() int64 { return nowMillis(c.op.clock) }

// TimestampColumn is the input column ProcessElement's event time is read
// from, or -1 when the input has none (see TimestampFieldConfig).
func (c *ProcessContext) TimestampColumn() int { return c.op.tsCol }

// Timestamp is the current element's event time in milliseconds: in
// ProcessElement, the value of the timestamp column (ErrNoTimestamp if
// there is none or it is null); in OnTimer, the timer's timestamp (as
// Flink).
func (c *ProcessContext) Timestamp() (int64, error) {
	if !c.inRow {
		if c.timer.Domain != 0 {
			return c.timer.Timestamp, nil
		}
		return 0, fmt.Errorf("%w: not processing an element or timer", ErrNoTimestamp)
	}
	if c.op.tsCol < 0 {
		return 0, fmt.Errorf("%w: the input has no timestamp column (set config %q)", ErrNoTimestamp, TimestampFieldConfig)
	}
	if c.row.IsNull(c.op.tsCol) {
		return 0, fmt.Errorf("%w: column %q is null", ErrNoTimestamp, c.op.in.Field(c.op.tsCol).Name)
	}
	return c.row.Timestamp(c.op.tsCol), nil
}

// RegisterEventTimeTimer registers a timer of the current key at ts (ms);
// it fires once the watermark reaches ts (at the next watermark if ts is
// already behind it). Registering the same timestamp twice gives one timer.
func (c *ProcessContext) RegisterEventTimeTimer(ts int64) error {
	return c.op.timers.RegisterEventTimeTimer(ts)
}

// DeleteEventTimeTimer deletes the current key's event-time timer at ts,
// if any.
func (c *ProcessContext) DeleteEventTimeTimer(ts int64) error {
	return c.op.timers.DeleteEventTimeTimer(ts)
}

// RegisterProcessingTimeTimer registers a timer of the current key at
// processing time ts (ms). It fires when the worker's clock reaches ts:
// the task wakes for it even when no input arrives.
func (c *ProcessContext) RegisterProcessingTimeTimer(ts int64) error {
	return c.op.timers.RegisterProcessingTimeTimer(ts)
}

// DeleteProcessingTimeTimer deletes the current key's processing-time
// timer at ts, if any.
func (c *ProcessContext) DeleteProcessingTimeTimer(ts int64) error {
	return c.op.timers.DeleteProcessingTimeTimer(ts)
}

// processOp runs a ProcessFunction over a hash-partitioned input.
//
// Per batch: due processing-time timers fire first, then every row in
// order (current key set, ProcessElement); what the function collected is
// emitted as batches of at most the job's batch size, at the latest when
// the call ends. Per watermark: due processing-time timers, then
// event-time timers up to the watermark (TimerService.AdvanceWatermark,
// which also fires timers OnTimer registers at or before it), all emitted
// before the task forwards the watermark. Finish fires every remaining
// event-time timer (the MaxWatermark of a bounded input; Flink does the
// same) and the processing-time timers due by then; processing-time timers
// in the future are dropped with the task.
type processOp struct {
	name   string
	fn     ProcessFunction
	info   TaskInfo
	logger *slog.Logger
	clock  clockwork.Clock
	in     *arrow.Schema
	keys   *keySelector
	st     *keyedState
	tsCol  int

	timers *state.TimerService
	wm     int64
	ctx    ProcessContext
	out    *Collector
	sides  []*sideCollector
	ttl    time.Duration

	onEvent, onProc func(state.Timer) error
}

func newProcessOp(spec *sabotv1.ProcessFunction, v *jobgraph.Vertex, info TaskInfo, e *env) (*processOp, error) {
	name := spec.GetName()
	factory, ok := e.functions[name]
	if !ok {
		factory, ok = builtinFunction(name)
	}
	if !ok {
		return nil, fmt.Errorf("runtime: process function %q is not registered on this worker (built-ins: %s, %s, %s)",
			name, CountPerKeyFunction, EventTimeAlertFunction, MaxRowsFunction)
	}
	keys, err := newKeySelector(v, info, e.maxParallelism)
	if err != nil {
		return nil, err
	}
	tsCol, err := timestampColumn(v.InputSchema, spec.GetConfig()[TimestampFieldConfig])
	if err != nil {
		return nil, fmt.Errorf("process function %q: %w", name, err)
	}
	fn, err := factory(spec.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("process function %q: %w", name, err)
	}
	p := &processOp{
		name: name, fn: fn, info: info, logger: e.logger, clock: e.clock, in: v.InputSchema,
		keys: keys, st: newKeyedState(v, info, e), tsCol: tsCol, wm: MinWatermark,
		out: newCollector(e.mem, v.Schema, e.batchSize),
		ttl: time.Duration(spec.GetStateTtlMs()) * time.Millisecond,
	}
	for _, so := range v.SideOutputs {
		p.sides = append(p.sides, &sideCollector{name: so.Name, c: newCollector(e.mem, so.Schema, e.batchSize)})
	}
	p.ctx.op = p
	p.onEvent = func(t state.Timer) error { return p.fire(t, EventTime) }
	p.onProc = func(t state.Timer) error { return p.fire(t, ProcessingTime) }
	return p, nil
}

// timestampColumn picks the event-time column: the named one (a timestamp
// or int64 of ms), else the first timestamp column, else -1.
func timestampColumn(in *arrow.Schema, name string) (int, error) {
	if name != "" {
		idx := in.FieldIndices(name)
		if len(idx) == 0 {
			return -1, fmt.Errorf("%s %q is not an input column", TimestampFieldConfig, name)
		}
		if t := in.Field(idx[0]).Type.ID(); t != arrow.TIMESTAMP && t != arrow.INT64 {
			return -1, fmt.Errorf("%s %q is %s, not a timestamp or int64 of milliseconds", TimestampFieldConfig, name, in.Field(idx[0]).Type)
		}
		return idx[0], nil
	}
	for i, f := range in.Fields() {
		if f.Type.ID() == arrow.TIMESTAMP {
			return i, nil
		}
	}
	return -1, nil
}

func (p *processOp) Open(ctx context.Context) error {
	if err := p.st.open(ctx); err != nil {
		return err
	}
	var err error
	if p.timers, err = p.st.keyed.TimerService(processTimers); err != nil {
		return err
	}
	if err := p.fn.Open(&p.ctx); err != nil {
		return fmt.Errorf("process function %q: open: %w", p.name, err)
	}
	return nil
}

func (p *processOp) Close() error {
	p.out.release()
	for _, s := range p.sides {
		s.c.release()
	}
	return p.st.close()
}

// sideCollector collects the rows of one declared side output.
type sideCollector struct {
	name string
	c    *Collector
}

// bind points the main and side collectors at out for one call.
func (p *processOp) bind(ctx context.Context, out Output) {
	p.out.bind(ctx, out)
	for _, s := range p.sides {
		s.c.bind(ctx, SideOutputOf(out, s.name))
	}
}

func (p *processOp) unbind() {
	p.out.unbind()
	for _, s := range p.sides {
		s.c.unbind()
	}
}

// flush sends what the call collected: main output first, then the side
// outputs in declaration order.
func (p *processOp) flush() error {
	if err := p.out.flush(); err != nil {
		return err
	}
	for _, s := range p.sides {
		if err := s.c.flush(); err != nil {
			return err
		}
	}
	return nil
}

func (p *processOp) ProcessBatch(ctx context.Context, rec arrow.RecordBatch, out Output) error {
	p.bind(ctx, out)
	defer p.unbind()
	if err := p.fireProcessingTime(); err != nil {
		return err
	}
	if err := p.st.cleanup(); err != nil {
		return err
	}
	if err := p.keys.prepare(rec); err != nil {
		return err
	}
	p.ctx.inRow = true
	defer func() { p.ctx.inRow, p.ctx.row = false, Row{} }()
	for i := range int(rec.NumRows()) {
		if err := p.st.keyed.SetCurrentKey(p.keys.key(i), p.keys.group(i)); err != nil {
			return err
		}
		p.ctx.row = Row{rec: rec, i: i}
		if err := p.fn.ProcessElement(&p.ctx, p.ctx.row, p.out); err != nil {
			return fmt.Errorf("process function %q: %w", p.name, err)
		}
	}
	return p.flush()
}

func (p *processOp) ProcessWatermark(ctx context.Context, wm int64, out Output) error {
	p.bind(ctx, out)
	defer p.unbind()
	if err := p.fireProcessingTime(); err != nil {
		return err
	}
	if err := p.advance(wm); err != nil {
		return err
	}
	return p.flush()
}

func (p *processOp) Finish(ctx context.Context, out Output) error {
	p.bind(ctx, out)
	defer p.unbind()
	if err := p.advance(MaxWatermark); err != nil {
		return err
	}
	if err := p.fireProcessingTime(); err != nil {
		return err
	}
	return p.flush()
}

// NextProcessingTime implements processingTimer.
func (p *processOp) NextProcessingTime() (int64, bool) { return p.timers.NextProcessingTime() }

// OnProcessingTime implements processingTimer.
func (p *processOp) OnProcessingTime(ctx context.Context, out Output) error {
	p.bind(ctx, out)
	defer p.unbind()
	if err := p.fireProcessingTime(); err != nil {
		return err
	}
	return p.flush()
}

// advance moves the watermark to wm and fires the event-time timers due.
func (p *processOp) advance(wm int64) error {
	p.wm = max(p.wm, wm)
	return p.timers.AdvanceWatermark(p.wm, p.onEvent)
}

// fireProcessingTime fires the processing-time timers due by the clock.
func (p *processOp) fireProcessingTime() error {
	next, ok := p.timers.NextProcessingTime()
	if !ok {
		return nil
	}
	now := nowMillis(p.clock)
	if next > now {
		return nil
	}
	return p.timers.AdvanceProcessingTime(now, p.onProc)
}

func (p *processOp) fire(t state.Timer, d TimeDomain) error {
	p.ctx.timer = TimerInfo{Timestamp: t.Timestamp, Domain: d}
	err := p.fn.OnTimer(&p.ctx, p.ctx.timer, p.out)
	p.ctx.timer = TimerInfo{}
	if err != nil {
		return fmt.Errorf("process function %q: on %s timer %d: %w", p.name, d, t.Timestamp, err)
	}
	return nil
}

// Row is one input row of a process function: column values by index
// (Column finds an index by name; look it up once, in Open). Getters panic
// when the column's type does not fit (a bug in the function; the task
// fails), and return the zero value for null. Strings and bytes are views
// of the batch, valid during the call: copy what you keep.
type Row struct {
	rec arrow.RecordBatch
	i   int
}

// Index is the row's position in its batch.
func (r Row) Index() int { return r.i }

// Batch is the batch the row belongs to, borrowed for the call.
func (r Row) Batch() arrow.RecordBatch { return r.rec }

// NumColumns is the number of columns.
func (r Row) NumColumns() int { return int(r.rec.NumCols()) }

// Column returns the index of the column named name, or -1.
func (r Row) Column(name string) int {
	idx := r.rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return -1
	}
	return idx[0]
}

// IsNull reports whether column col is null.
func (r Row) IsNull(col int) bool { return r.rec.Column(col).IsNull(r.i) }

func (r Row) mismatch(col int, want string) string {
	return fmt.Sprintf("runtime: Row.%s: column %d (%s) is %s", want, col, r.rec.ColumnName(col), r.rec.Column(col).DataType())
}

// Int64 returns an integer column's value (unsigned wrapping above
// MaxInt64) or a temporal column's raw value in its unit.
func (r Row) Int64(col int) int64 {
	c := r.rec.Column(col)
	if k, err := keyKindOf(c.DataType()); err != nil || (k != keyInt && k != keyUint) {
		panic(r.mismatch(col, "Int64"))
	}
	if c.IsNull(r.i) {
		return 0
	}
	return intValue(c, r.i)
}

// Float64 returns a floating or integer column's value as a float64.
func (r Row) Float64(col int) float64 {
	c := r.rec.Column(col)
	id := c.DataType().ID()
	if !arrow.IsFloating(id) && !arrow.IsInteger(id) {
		panic(r.mismatch(col, "Float64"))
	}
	if c.IsNull(r.i) {
		return 0
	}
	if k, _ := keyKindOf(c.DataType()); k == keyUint {
		return float64(uintValue(c, r.i))
	}
	return floatValue(c, r.i)
}

// String returns a string column's value.
func (r Row) String(col int) string {
	switch a := r.rec.Column(col).(type) {
	case *array.String:
		return a.Value(r.i)
	case *array.LargeString:
		return a.Value(r.i)
	default:
		panic(r.mismatch(col, "String"))
	}
}

// Bytes returns a binary or string column's bytes.
func (r Row) Bytes(col int) []byte {
	c := r.rec.Column(col)
	if !arrow.IsBaseBinary(c.DataType().ID()) {
		panic(r.mismatch(col, "Bytes"))
	}
	return bytesValue(c, r.i)
}

// Bool returns a boolean column's value.
func (r Row) Bool(col int) bool {
	a, ok := r.rec.Column(col).(*array.Boolean)
	if !ok {
		panic(r.mismatch(col, "Bool"))
	}
	return a.Value(r.i)
}

// Timestamp returns a timestamp column's value in milliseconds since the
// epoch (other units converted, rounding down), or an int64 column's value
// taken as milliseconds.
func (r Row) Timestamp(col int) int64 {
	switch a := r.rec.Column(col).(type) {
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		return toMillis(int64(a.Value(r.i)), unit)
	case *array.Int64:
		return a.Value(r.i)
	default:
		panic(r.mismatch(col, "Timestamp"))
	}
}

// toMillis converts v in unit to milliseconds, rounding down.
func toMillis(v int64, unit arrow.TimeUnit) int64 {
	var d int64
	switch unit {
	case arrow.Second:
		if v > math.MaxInt64/1000 || v < math.MinInt64/1000 {
			if v > 0 {
				return math.MaxInt64
			}
			return math.MinInt64
		}
		return v * 1000
	case arrow.Millisecond:
		return v
	case arrow.Microsecond:
		d = 1000
	default: // arrow.Nanosecond
		d = 1000000
	}
	q := v / d
	if v%d < 0 {
		q--
	}
	return q
}

// Collector builds the output rows of a process function, in the
// operator's output schema: stage a row's values with the Set methods
// (unset columns are null) and append it with Emit, or do both with
// Collect. A value of the wrong type for its column makes Emit fail. Rows
// are sent downstream in batches once the call that collected them
// returns (or when a batch is full).
type Collector struct {
	mem       memory.Allocator
	schema    *arrow.Schema
	batchSize int
	bs        []array.Builder
	cols      []arrow.Array // reused by flush
	slots     []slot
	rows      int
	err       error

	ctx context.Context
	out Output
}

type slotKind uint8

const (
	slotNull slotKind = iota
	slotInt
	slotFloat
	slotString
	slotBytes
	slotBool
)

type slot struct {
	kind slotKind
	i    int64
	f    float64
	s    string
	b    []byte
}

func newCollector(mem memory.Allocator, schema *arrow.Schema, batchSize int) *Collector {
	if batchSize <= 0 {
		batchSize = DefaultBatchSize
	}
	return &Collector{mem: mem, schema: schema, batchSize: batchSize, slots: make([]slot, schema.NumFields())}
}

// Schema is the schema of the rows collected.
func (c *Collector) Schema() *arrow.Schema { return c.schema }

func (c *Collector) set(col int, s slot, ok bool, what string) {
	if col < 0 || col >= len(c.slots) {
		if c.err == nil {
			c.err = fmt.Errorf("runtime: collector: column %d out of range (%d columns)", col, len(c.slots))
		}
		return
	}
	if !ok {
		if c.err == nil {
			c.err = fmt.Errorf("runtime: collector: column %d (%s) is %s, cannot hold %s",
				col, c.schema.Field(col).Name, c.schema.Field(col).Type, what)
		}
		return
	}
	c.slots[col] = s
}

func (c *Collector) typeID(col int) arrow.Type {
	if col < 0 || col >= len(c.slots) {
		return arrow.NULL
	}
	return c.schema.Field(col).Type.ID()
}

// SetInt64 stages an int64 (or timestamp, as ms; or float64, converted)
// column value.
func (c *Collector) SetInt64(col int, v int64) {
	switch c.typeID(col) {
	case arrow.FLOAT64:
		c.set(col, slot{kind: slotFloat, f: float64(v)}, true, "")
	default:
		t := c.typeID(col)
		c.set(col, slot{kind: slotInt, i: v}, t == arrow.INT64 || t == arrow.TIMESTAMP, "an int64")
	}
}

// SetTimestamp stages a timestamp column value in milliseconds since the
// epoch.
func (c *Collector) SetTimestamp(col int, ms int64) {
	c.set(col, slot{kind: slotInt, i: ms}, c.typeID(col) == arrow.TIMESTAMP, "a timestamp")
}

// SetFloat64 stages a float64 column value.
func (c *Collector) SetFloat64(col int, v float64) {
	c.set(col, slot{kind: slotFloat, f: v}, c.typeID(col) == arrow.FLOAT64, "a float64")
}

// SetString stages a string (or binary) column value.
func (c *Collector) SetString(col int, v string) {
	t := c.typeID(col)
	c.set(col, slot{kind: slotString, s: v}, t == arrow.STRING || t == arrow.BINARY, "a string")
}

// SetBytes stages a binary (or string) column value; v is copied by Emit.
func (c *Collector) SetBytes(col int, v []byte) {
	t := c.typeID(col)
	c.set(col, slot{kind: slotBytes, b: v}, t == arrow.STRING || t == arrow.BINARY, "bytes")
}

// SetBool stages a boolean column value.
func (c *Collector) SetBool(col int, v bool) {
	var i int64
	if v {
		i = 1
	}
	c.set(col, slot{kind: slotBool, i: i}, c.typeID(col) == arrow.BOOL, "a bool")
}

// SetNull stages a null (the default of a column not set).
func (c *Collector) SetNull(col int) { c.set(col, slot{}, true, "null") }

// Emit appends the staged row and clears the stage. It returns the first
// error of the row's Set calls, or a failure to send a full batch.
func (c *Collector) Emit() error {
	if err := c.err; err != nil {
		c.err = nil
		clear(c.slots)
		return err
	}
	if c.bs == nil {
		for _, f := range c.schema.Fields() {
			c.bs = append(c.bs, array.NewBuilder(c.mem, f.Type))
		}
	}
	for col, s := range c.slots {
		appendSlot(c.bs[col], s)
	}
	clear(c.slots)
	c.rows++
	if c.rows >= c.batchSize {
		return c.flush()
	}
	return nil
}

func appendSlot(b array.Builder, s slot) {
	if s.kind == slotNull {
		b.AppendNull()
		return
	}
	switch bb := b.(type) {
	case *array.Int64Builder:
		bb.Append(s.i)
	case *array.TimestampBuilder:
		bb.Append(arrow.Timestamp(s.i))
	case *array.Float64Builder:
		bb.Append(s.f)
	case *array.BooleanBuilder:
		bb.Append(s.i != 0)
	case *array.StringBuilder:
		if s.kind == slotBytes {
			bb.BinaryBuilder.Append(s.b)
		} else {
			bb.Append(s.s)
		}
	case *array.BinaryBuilder:
		if s.kind == slotBytes {
			bb.Append(s.b)
		} else {
			bb.AppendString(s.s)
		}
	default:
		b.AppendNull() // declared columns have only the types above
	}
}

// Collect stages values, one per column in order, and emits the row. Each
// value is nil (null), an int, int32 or int64, a float32 or float64, a
// string, a []byte, a bool, or a time.Time (for a timestamp column). It
// boxes its arguments; the Set methods do not allocate.
func (c *Collector) Collect(values ...any) error {
	if len(values) != len(c.slots) {
		clear(c.slots)
		return fmt.Errorf("runtime: collector: %d values for %d columns", len(values), len(c.slots))
	}
	for col, v := range values {
		switch x := v.(type) {
		case nil:
			c.SetNull(col)
		case int:
			c.SetInt64(col, int64(x))
		case int32:
			c.SetInt64(col, int64(x))
		case int64:
			c.SetInt64(col, x)
		case float32:
			c.SetFloat64(col, float64(x))
		case float64:
			c.SetFloat64(col, x)
		case string:
			c.SetString(col, x)
		case []byte:
			c.SetBytes(col, x)
		case bool:
			c.SetBool(col, x)
		case interface{ UnixMilli() int64 }: // time.Time
			c.SetTimestamp(col, x.UnixMilli())
		default:
			c.set(col, slot{}, false, fmt.Sprintf("a %T", v))
		}
	}
	return c.Emit()
}

func (c *Collector) bind(ctx context.Context, out Output) { c.ctx, c.out = ctx, out }
func (c *Collector) unbind()                              { c.ctx, c.out = nil, nil }

// flush sends the rows collected so far as one batch.
func (c *Collector) flush() error {
	if c.rows == 0 {
		return nil
	}
	cols := c.cols[:0]
	for _, b := range c.bs {
		cols = append(cols, b.NewArray())
	}
	rec := array.NewRecordBatch(c.schema, cols, int64(c.rows))
	for i, a := range cols {
		a.Release()
		cols[i] = nil
	}
	c.cols = cols
	c.rows = 0
	defer rec.Release()
	if c.out == nil {
		return errors.New("runtime: collector: emitted outside a call")
	}
	return c.out.Emit(c.ctx, rec)
}

// release frees the builders.
func (c *Collector) release() {
	for _, b := range c.bs {
		b.Release()
	}
	c.bs = nil
	c.rows = 0
}

func (p *processOp) keyedStateOf() *keyedState { return p.st }
