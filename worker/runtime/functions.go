package runtime

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/sabotdev/sabot/worker/state"
)

// Names of the built-in process functions (see the package doc).
const (
	CountPerKeyFunction    = "count-per-key"
	EventTimeAlertFunction = "event-time-alert"
)

// builtinFunction returns the factory of a built-in process function.
func builtinFunction(name string) (ProcessFunctionFactory, bool) {
	switch name {
	case CountPerKeyFunction:
		return newCountPerKey, true
	case EventTimeAlertFunction:
		return newEventTimeAlert, true
	case MaxRowsFunction:
		return newMaxRows, true
	default:
		return nil, false
	}
}

// keyColumn finds the output column name that receives the current key:
// a string column (the key rendered by Key.String, or the bytes of a
// single string or binary key column), or an int64 column when the key is
// one integer column.
func keyColumn(ctx *ProcessContext, name string) (col int, asInt bool, err error) {
	col, err = outputColumn(ctx, name, arrow.STRING, arrow.INT64)
	if err != nil {
		return -1, false, err
	}
	if ctx.OutputSchema().Field(col).Type.ID() == arrow.STRING {
		return col, false, nil
	}
	kf := ctx.KeyFields()
	if len(kf) != 1 || !arrow.IsInteger(kf[0].Type.ID()) {
		return -1, false, fmt.Errorf("output column %q is int64, but the key is not a single integer column; declare it a string", name)
	}
	return col, true, nil
}

// outputColumn finds the output column name, of one of the types.
func outputColumn(ctx *ProcessContext, name string, types ...arrow.Type) (int, error) {
	s := ctx.OutputSchema()
	idx := s.FieldIndices(name)
	if len(idx) == 0 {
		return -1, fmt.Errorf("declare an output column %q", name)
	}
	t := s.Field(idx[0]).Type
	for _, id := range types {
		if t.ID() == id {
			return idx[0], nil
		}
	}
	return -1, fmt.Errorf("output column %q is %s; want one of %v", name, t, types)
}

// setKey stages the current key in column col.
func setKey(ctx *ProcessContext, out *Collector, col int, asInt bool) {
	k := ctx.Key()
	switch {
	case asInt:
		out.SetInt64(col, k.Int64(0))
	case k.NumColumns() == 1 && k.kinds[0] == keyString:
		out.SetBytes(col, k.BytesAt(0)) // no string built
	default:
		out.SetString(col, k.String())
	}
}

// countPerKey is the built-in "count-per-key": for every element it emits
// the key and the number of elements of that key so far. Output columns:
// key (string, or int64 for a single integer key column) and count
// (int64); other declared columns are null. Config cost_us makes each
// element cost that many microseconds of CPU (a busy loop): load tests and
// autoscaling demos use it to give a subtask a known capacity.
type countPerKey struct {
	count            *state.ValueState[int64]
	keyCol, countCol int
	keyInt           bool
	cost             time.Duration
}

func newCountPerKey(cfg map[string]string) (ProcessFunction, error) {
	f := &countPerKey{}
	if v, ok := cfg["cost_us"]; ok {
		us, err := strconv.ParseInt(v, 10, 64)
		if err != nil || us < 0 || us > 1_000_000 {
			return nil, fmt.Errorf("count-per-key: config cost_us %q: want microseconds, 0 to 1000000", v)
		}
		f.cost = time.Duration(us) * time.Microsecond
	}
	return f, nil
}

// spin keeps the CPU busy for d.
func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

func (f *countPerKey) Open(ctx *ProcessContext) error {
	var err error
	if f.keyCol, f.keyInt, err = keyColumn(ctx, "key"); err != nil {
		return err
	}
	if f.countCol, err = outputColumn(ctx, "count", arrow.INT64); err != nil {
		return err
	}
	f.count, err = state.Value(ctx.Keyed(), state.ValueDescriptor[int64]{Name: "count", Codec: state.Int64Codec{}, TTL: state.TTLConfig{TTL: ctx.StateTTL()}})
	return err
}

func (f *countPerKey) ProcessElement(ctx *ProcessContext, _ Row, out *Collector) error {
	if f.cost > 0 {
		spin(f.cost)
	}
	n, _, err := f.count.Value()
	if err != nil {
		return err
	}
	n++
	if err := f.count.Update(n); err != nil {
		return err
	}
	setKey(ctx, out, f.keyCol, f.keyInt)
	out.SetInt64(f.countCol, n)
	return out.Emit()
}

func (f *countPerKey) OnTimer(*ProcessContext, TimerInfo, *Collector) error { return nil }

// eventTimeAlert is the built-in "event-time-alert": per key, it counts
// elements into event-time buckets of config delay_ms (default 0: one
// bucket per timestamp) — bucket end = ⌊ts/delay⌋·delay + delay — and
// registers an event-time timer at each bucket's end. When the watermark
// passes a bucket's end it emits the key, the bucket's count and the
// bucket end, and forgets the bucket. The output does not depend on how
// input is batched or when watermarks arrive, only on event times (an
// element arriving after its bucket fired starts the bucket again and
// fires at the next watermark, as a late re-firing). Elements with a null
// timestamp are skipped. Output columns: key (as count-per-key), count
// (int64), fired_at (timestamp).
type eventTimeAlert struct {
	delay                   int64
	counts                  *state.MapState[int64, int64] // bucket end → count
	keyCol, countCol, atCol int
	keyInt                  bool
}

func newEventTimeAlert(config map[string]string) (ProcessFunction, error) {
	f := &eventTimeAlert{}
	if s, ok := config["delay_ms"]; ok {
		d, err := strconv.ParseInt(s, 10, 64)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("delay_ms %q must be a non-negative integer of milliseconds", s)
		}
		f.delay = d
	}
	return f, nil
}

func (f *eventTimeAlert) Open(ctx *ProcessContext) error {
	if ctx.TimestampColumn() < 0 {
		return fmt.Errorf("the input has no timestamp column; add one or set config %q", TimestampFieldConfig)
	}
	var err error
	if f.keyCol, f.keyInt, err = keyColumn(ctx, "key"); err != nil {
		return err
	}
	if f.countCol, err = outputColumn(ctx, "count", arrow.INT64); err != nil {
		return err
	}
	if f.atCol, err = outputColumn(ctx, "fired_at", arrow.TIMESTAMP); err != nil {
		return err
	}
	f.counts, err = state.Map(ctx.Keyed(), state.MapDescriptor[int64, int64]{Name: "counts", KeyCodec: state.Int64Codec{}, ValueCodec: state.Int64Codec{}, TTL: state.TTLConfig{TTL: ctx.StateTTL()}})
	return err
}

// bucketEnd is the end of ts's bucket, saturating at MaxInt64.
func (f *eventTimeAlert) bucketEnd(ts int64) int64 {
	if f.delay == 0 {
		return ts
	}
	start := ts - ((ts%f.delay)+f.delay)%f.delay // floor, also for ts < 0
	if start > math.MaxInt64-f.delay {
		return math.MaxInt64
	}
	return start + f.delay
}

func (f *eventTimeAlert) ProcessElement(ctx *ProcessContext, _ Row, _ *Collector) error {
	ts, err := ctx.Timestamp()
	if errors.Is(err, ErrNoTimestamp) {
		return nil
	}
	if err != nil {
		return err
	}
	end := f.bucketEnd(ts)
	n, _, err := f.counts.Get(end)
	if err != nil {
		return err
	}
	if err := f.counts.Put(end, n+1); err != nil {
		return err
	}
	return ctx.RegisterEventTimeTimer(end)
}

func (f *eventTimeAlert) OnTimer(ctx *ProcessContext, t TimerInfo, out *Collector) error {
	n, ok, err := f.counts.Get(t.Timestamp)
	if err != nil || !ok || n == 0 {
		return err
	}
	setKey(ctx, out, f.keyCol, f.keyInt)
	out.SetInt64(f.countCol, n)
	out.SetTimestamp(f.atCol, t.Timestamp)
	if err := out.Emit(); err != nil {
		return err
	}
	return f.counts.Remove(t.Timestamp)
}
