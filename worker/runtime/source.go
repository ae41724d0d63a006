package runtime

import (
	"context"
	"math"
	"math/bits"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jonboulle/clockwork"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// pacingGranularity is the shortest wait between two batches of a paced
// source: at high rates each batch holds the rows due in this time (capped
// at the batch size); at low rates every row is its own batch, so output is
// smooth rather than bursty.
const pacingGranularity = 10 * time.Millisecond

// sequence is the SequenceSource.
//
// Split: with a bounded range [start, end] of n values, subtask i of p
// emits the contiguous slice of offsets [⌊i·n/p⌋, ⌊(i+1)·n/p⌋). Without an
// end, subtask i emits start+i, start+i+p, start+i+2p, … (a stride: an
// infinite range has no contiguous split) and ends, like a bounded source,
// when the next value would overflow int64.
//
// Pacing: rows_per_second is the total; each subtask emits rate/p rows per
// second on its own schedule, row k due at t0 + k·p/rate, and never runs
// ahead of it. A subtask that falls behind (backpressure) catches up in
// full batches.
type sequence struct {
	mem       memory.Allocator
	clock     clockwork.Clock
	batchSize int

	next      int64  // next value
	stride    int64  // 1 (bounded) or p (unbounded)
	remaining uint64 // values left; for unbounded, until int64 overflow
	unbounded bool

	rate    float64 // rows per second of this subtask; 0 = unpaced
	t0      time.Time
	emitted int64 // rows emitted, for pacing

	subtask, parallelism int
}

func newSequence(spec *sabotv1.SequenceSource, info TaskInfo, env *env) *sequence {
	p, i := uint64(info.Parallelism), uint64(info.Subtask)
	s := &sequence{mem: env.mem, clock: env.clock, batchSize: env.batchSize, subtask: info.Subtask, parallelism: info.Parallelism}
	if spec.End != nil {
		// n = end-start+1 may be 2^64: then hi:lo = i·2^64 exactly.
		n := uint64(spec.GetEnd()) - uint64(spec.GetStart()) + 1
		lo := func(i uint64) uint64 {
			hi, low := bits.Mul64(i, n)
			if n == 0 { // overflowed: the range is all of int64
				hi, low = i, 0
			}
			q, _ := bits.Div64(hi, low, p)
			return q
		}
		first, last := lo(i), lo(i+1)
		if i+1 == p {
			last = n // == lo(p), which Div64 cannot compute when n wrapped
		}
		s.next = spec.GetStart() + int64(first)
		s.remaining = last - first
		s.stride = 1
	} else {
		s.unbounded = true
		s.stride = int64(p)
		start := spec.GetStart() + int64(i)
		if start < spec.GetStart() { // overflow
			s.remaining = 0
		} else {
			s.next = start
			s.remaining = uint64(math.MaxInt64-start)/p + 1
		}
	}
	if r := spec.GetRowsPerSecond(); r > 0 {
		s.rate = float64(r) / float64(p)
	}
	return s
}

func (s *sequence) Open(context.Context) error {
	// Pacing resumes where a restored position left off.
	s.t0 = s.rowTimeOrigin()
	return nil
}

func (s *sequence) Close() error { return nil }

// rowTimeOrigin is t0 such that the rows already emitted (a restored
// position) were due by now.
func (s *sequence) rowTimeOrigin() time.Time {
	now := s.clock.Now()
	if s.rate == 0 || s.emitted == 0 {
		return now
	}
	return now.Add(-time.Duration(float64(s.emitted) / s.rate * float64(time.Second)))
}

// rowTime is when row k of this subtask is due.
func (s *sequence) rowTime(k int64) time.Time {
	return s.t0.Add(time.Duration(float64(k) / s.rate * float64(time.Second)))
}

func (s *sequence) Next(ctx context.Context, out Output) (bool, error) {
	if s.remaining == 0 {
		return true, nil
	}
	n := uint64(s.batchSize)
	if s.rate > 0 {
		// Rows due by now, at least one: wait for the first row of a
		// batch of the pacing granularity's worth.
		want := max(1, min(int64(s.rate*pacingGranularity.Seconds()), int64(s.batchSize)))
		if wait := s.rowTime(s.emitted + want - 1).Sub(s.clock.Now()); wait > 0 {
			if err := s.sleep(ctx, wait); err != nil {
				return false, err
			}
		}
		due := int64(float64(s.clock.Now().Sub(s.t0))/float64(time.Second)*s.rate) + 1 - s.emitted
		n = uint64(max(1, min(due, int64(s.batchSize))))
	}
	n = min(n, s.remaining)
	// Fill a values buffer directly: the column has no nulls, so no
	// validity bitmap and no builder bookkeeping.
	buf := memory.NewResizableBuffer(s.mem)
	buf.Resize(int(n) * arrow.Int64SizeBytes)
	vals := arrow.Int64Traits.CastFromBytes(buf.Bytes())
	v := s.next
	for i := range vals {
		vals[i] = v
		v += s.stride
	}
	s.next = v
	s.remaining -= n
	s.emitted += int64(n)
	data := array.NewData(arrow.PrimitiveTypes.Int64, int(n), []*memory.Buffer{nil, buf}, nil, 0, 0)
	buf.Release()
	arr := array.NewInt64Data(data)
	data.Release()
	rec := array.NewRecordBatch(jobgraph.SequenceSchema(), []arrow.Array{arr}, int64(n))
	arr.Release()
	err := out.Emit(ctx, rec)
	rec.Release()
	return s.remaining == 0, err
}

func (s *sequence) sleep(ctx context.Context, d time.Duration) error {
	t := s.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.Chan():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
