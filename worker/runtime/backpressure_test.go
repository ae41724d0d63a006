package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// seenValues records which values a sink received, shared by all sink
// subtasks: a bitmap catches duplicates and gaps, count and sum double-check.
type seenValues struct {
	mu    sync.Mutex
	bits  []uint64 // bit v-1 is value v
	count int64
	sum   int64
	dups  int64
	out   int64 // values outside the expected range
}

func newSeenValues(n int64) *seenValues {
	return &seenValues{bits: make([]uint64, (n+63)/64)}
}

func (s *seenValues) add(vals []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range vals {
		s.count++
		s.sum += v
		i := v - 1
		if i < 0 || i >= int64(len(s.bits))*64 {
			s.out++
			continue
		}
		w, b := i/64, uint64(1)<<(i%64)
		if s.bits[w]&b != 0 {
			s.dups++
		}
		s.bits[w] |= b
	}
}

// missing returns the first few values in 1..n never seen.
func (s *seenValues) missing(n int64) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var m []int64
	for v := int64(1); v <= n && len(m) < 10; v++ {
		i := v - 1
		if s.bits[i/64]&(uint64(1)<<(i%64)) == 0 {
			m = append(m, v)
		}
	}
	return m
}

// slowSink sleeps per batch, records the values (halved: the map doubles
// them) and samples the allocator after the sleep, when the upstream has
// had the most time to fill the queues.
type slowSink struct {
	baseOperator
	delay time.Duration
	mem   *memory.CheckedAllocator
	peak  *atomic.Int64
	seen  *seenValues
	vals  []int64 // reused
}

func (s *slowSink) ProcessBatch(ctx context.Context, rec arrow.RecordBatch, _ Output) error {
	t := time.NewTimer(s.delay) // simulated slowness, not an assertion
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	}
	s.vals = s.vals[:0]
	for _, v := range rec.Column(0).(*array.Int64).Int64Values() {
		if v%2 != 0 {
			return fmt.Errorf("slow sink: value %d is odd; the map doubles", v)
		}
		s.vals = append(s.vals, v/2)
	}
	s.seen.add(s.vals)
	cur := int64(s.mem.CurrentAlloc())
	for {
		p := s.peak.Load()
		if cur <= p || s.peak.CompareAndSwap(p, cur) {
			break
		}
	}
	return nil
}

// TestSlowSinkBoundsMemoryAndLosesNothing runs a bounded sequence → map →
// rebalance → a sink much slower than the source: backpressure must keep
// the Arrow memory within what the bounded queues allow, and every value
// must arrive exactly once.
func TestSlowSinkBoundsMemoryAndLosesNothing(t *testing.T) {
	t.Parallel()
	const (
		n         = 200_000
		batchSize = 256 // 782 batches in all
		capacity  = 4
		// The sink sleeps a fixed time per batch so that, whatever the
		// parallelism, the run takes about runTime: 3.2 ms per batch at p=1,
		// 6.4 ms per sink subtask at p=2. Unthrottled, this pipeline moves
		// a batch of 256 rows end to end in ~12 µs (measured once, without
		// -race; ~70 µs with it), so the sink is ~250× slower per batch
		// (~45× under -race): ample for the queues to stay full.
		runTime = 2500 * time.Millisecond
		batches = (n + batchSize - 1) / batchSize
	)
	for _, p := range []int32{1, 2} {
		t.Run(fmt.Sprintf("p%d", p), func(t *testing.T) {
			t.Parallel()
			g, err := jobgraph.Resolve(&sabotv1.JobSpec{Name: "slow-sink", Graph: &sabotv1.JobGraph{
				Vertices: []*sabotv1.Vertex{
					{Id: "seq", Parallelism: p, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{
						Sequence: &sabotv1.SequenceSource{Start: 1, End: ptrTo[int64](n)},
					}}},
					{Id: "double", Parallelism: p, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Map{Map: &sabotv1.MapOperator{
						Columns: []*sabotv1.NamedExpression{{Name: "value", Expr: "value * 2"}},
					}}}},
					{Id: "sink", Parallelism: p, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Print{Print: &sabotv1.PrintSink{}}}},
				},
				Edges: []*sabotv1.Edge{
					{From: "seq", To: "double", Partitioning: sabotv1.Partitioning_PARTITIONING_FORWARD},
					{From: "double", To: "sink", Partitioning: sabotv1.Partitioning_PARTITIONING_REBALANCE},
				},
			}})
			if err != nil {
				t.Fatalf("resolve: %v", err)
			}
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			var peak atomic.Int64
			seen := newSeenValues(n)
			delay := runTime * time.Duration(p) / batches
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err = Run(ctx, Config{
				Graph: g, Allocator: mem, PrintOut: io.Discard,
				BatchSize: batchSize, QueueCapacity: capacity,
				operatorHook: func(v *jobgraph.Vertex, _ TaskInfo) Operator {
					if v.ID == "sink" {
						return &slowSink{delay: delay, mem: mem, peak: &peak, seen: seen}
					}
					return nil
				},
			})
			elapsed := time.Since(start)
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Run did not finish within 30s: %v", err)
				}
				t.Fatal(err)
			}

			// (a) Every value exactly once.
			var wantSum int64 = n * (n + 1) / 2
			if seen.count != n || seen.sum != wantSum || seen.dups != 0 || seen.out != 0 {
				t.Errorf("sink got %d values summing to %d (%d duplicates, %d out of range), want %d summing to %d",
					seen.count, seen.sum, seen.dups, seen.out, int64(n), wantSum)
			}
			if m := seen.missing(n); len(m) > 0 {
				t.Errorf("values never received (first few): %v", m)
			}

			// (b) Peak memory bounded by the queues. Tasks: p source tasks
			// (sequence and map chained) and p sink tasks. A batch is one
			// int64 column: BatchSize×8 bytes of values, plus up to 64
			// bytes for a validity bitmap the map's output may carry
			// (arrow pads buffers to 64 bytes). The constant 3 is the
			// batches a task may hold outside the queues: a source task
			// holds the sequence's batch, the map's output (held while its
			// send blocks on a full queue) and an expression temporary; a
			// sink task holds the batch it is processing.
			// QueueCapacity per task over-counts (only the p sink gates
			// have queues), so the bound is loose but still two orders of
			// magnitude below the 1.6 MB the whole input takes: unbounded
			// queues would blow through it.
			const inFlightPerTask = 3
			bytesPerBatch := int64(batchSize*arrow.Int64SizeBytes + 64)
			tasks := int64(2 * p)
			bound := (capacity + inFlightPerTask) * bytesPerBatch * tasks
			if got := peak.Load(); got > bound {
				t.Errorf("peak Arrow memory %d bytes, want at most %d ((%d queued + %d in flight) × %d bytes × %d tasks)",
					got, bound, capacity, inFlightPerTask, bytesPerBatch, tasks)
			}
			t.Logf("p=%d: peak %d bytes, bound %d bytes, sink delay %s/batch, run %s", p, peak.Load(), bound, delay, elapsed)

			// (c) Everything released.
			if cur := mem.CurrentAlloc(); cur != 0 {
				t.Errorf("allocator holds %d bytes after Run", cur)
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }
