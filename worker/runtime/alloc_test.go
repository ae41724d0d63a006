package runtime_test

import (
	goruntime "runtime"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sabotdev/sabot/examples"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/internal/manifest"
	"github.com/sabotdev/sabot/worker/runtime"
)

// peakAllocator records the highest number of bytes allocated at once.
type peakAllocator struct {
	*memory.CheckedAllocator
	max atomic.Int64
}

func (a *peakAllocator) note() {
	cur := int64(a.CurrentAlloc())
	for {
		m := a.max.Load()
		if cur <= m || a.max.CompareAndSwap(m, cur) {
			return
		}
	}
}

func (a *peakAllocator) Allocate(n int) []byte {
	b := a.CheckedAllocator.Allocate(n)
	a.note()
	return b
}

func (a *peakAllocator) Reallocate(n int, b []byte) []byte {
	b = a.CheckedAllocator.Reallocate(n, b)
	a.note()
	return b
}

func (a *peakAllocator) peak() int { return int(a.max.Load()) }

// TestNexmarkAllocations guards the source and map/filter hot paths
// against per-event allocation: the Nexmark q0–q2 pipelines, on the
// default (Go) allocator as `sabot bench nexmark` runs them, must
// allocate only a few bytes of Go heap per event (Arrow buffers are
// recycled through the operators' pools; what remains is the batch and
// array headers). They allocated about 240 B/event before the pools.
// Not parallel: it reads process-wide allocation counters.
func TestNexmarkAllocations(t *testing.T) {
	const (
		events      = 500_000
		maxPerEvent = 32 // bytes
	)
	for _, q := range []string{"q0", "q1", "q2"} {
		data, err := examples.FS.ReadFile("nexmark/" + q + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		spec, err := manifest.Parse(q+".yaml", data)
		if err != nil {
			t.Fatal(err)
		}
		spec.Parallelism = 1
		for _, v := range spec.GetGraph().GetVertices() {
			v.Parallelism = 0
			if nx := v.GetOperator().GetNexmark(); nx != nil {
				nx.Events = events
			}
		}
		g, err := jobgraph.Resolve(spec)
		if err != nil {
			t.Fatal(err)
		}
		var rows atomic.Int64
		var before, after goruntime.MemStats
		goruntime.ReadMemStats(&before)
		if err := runtime.Run(t.Context(), runtime.Config{Graph: g, SinkRows: &rows}); err != nil {
			t.Fatal(err)
		}
		goruntime.ReadMemStats(&after)
		perEvent := float64(after.TotalAlloc-before.TotalAlloc) / events
		t.Logf("%s: %.1f B/event allocated, %d rows", q, perEvent, rows.Load())
		if rows.Load() == 0 {
			t.Errorf("%s: no rows reached the sink", q)
		}
		if perEvent > maxPerEvent {
			t.Errorf("%s allocated %.1f B/event, want at most %d", q, perEvent, maxPerEvent)
		}
	}
}
