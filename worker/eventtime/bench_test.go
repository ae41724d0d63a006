package eventtime_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sabotdev/sabot/worker/eventtime"
)

// batch returns n event times, mostly ascending with jitter (a fixed seed,
// so runs compare).
func batch(n int) []int64 {
	r := rand.New(rand.NewPCG(1, 2))
	ts := make([]int64, n)
	base := int64(1_700_000_000_000)
	for i := range ts {
		ts[i] = base + int64(i) - r.Int64N(50)
	}
	return ts
}

func reportEvents(b *testing.B, n int) {
	b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "events/s")
}

// sink keeps results alive so the compiler cannot drop the baseline loop.
var sink int64

// BenchmarkOnEvents measures the generator hot path over a 4096-row batch
// against a baseline: the plain max loop any generator must at least run.
func BenchmarkOnEvents(b *testing.B) {
	const rows = 4096
	ts := batch(rows)
	b.Run("baseline-max-loop", func(b *testing.B) {
		b.ReportAllocs()
		m := eventtime.MinWatermark
		for b.Loop() {
			for _, t := range ts {
				if t > m {
					m = t
				}
			}
		}
		sink = m
		reportEvents(b, rows)
	})
	b.Run("bounded", func(b *testing.B) {
		b.ReportAllocs()
		g := eventtime.NewBoundedOutOfOrderness(time.Second)
		for b.Loop() {
			g.OnEvents(ts)
		}
		reportEvents(b, rows)
	})
	b.Run("bounded-per-event", func(b *testing.B) {
		b.ReportAllocs()
		var g eventtime.Generator = eventtime.NewBoundedOutOfOrderness(time.Second)
		for b.Loop() {
			for _, t := range ts {
				g.OnEvent(t)
			}
		}
		reportEvents(b, rows)
	})
	b.Run("split-bounded", func(b *testing.B) {
		b.ReportAllocs()
		m := eventtime.NewMultiplexer(time.Minute)
		s, _ := m.AddSplit("p0", eventtime.NewBoundedOutOfOrderness(time.Second))
		for b.Loop() {
			s.OnEvents(ts)
		}
		reportEvents(b, rows)
	})
	b.Run("punctuated-column", func(b *testing.B) {
		b.ReportAllocs()
		mem := memory.NewGoAllocator()
		rec := record(mem, testSchema(), ts, make([]bool, rows))
		defer rec.Release()
		g := eventtime.NewColumnPunctuated("wm")
		for b.Loop() {
			_ = g.Bind(rec)
			g.OnEvents(ts)
		}
		reportEvents(b, rows)
	})
}

// BenchmarkMillis measures event-time extraction per unit against a plain
// copy of the values.
func BenchmarkMillis(b *testing.B) {
	const rows = 4096
	ts := batch(rows)
	mem := memory.NewGoAllocator()
	dst := make([]int64, rows)
	b.Run("baseline-copy", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			copy(dst, ts)
		}
		reportEvents(b, rows)
	})
	for _, unit := range []arrow.TimeUnit{arrow.Second, arrow.Millisecond, arrow.Microsecond, arrow.Nanosecond} {
		b.Run(unit.String(), func(b *testing.B) {
			b.ReportAllocs()
			col := tsColumn(mem, unit, ts, nil)
			defer col.Release()
			for b.Loop() {
				_, _ = eventtime.Millis(dst, col)
			}
			reportEvents(b, rows)
		})
	}
}

// BenchmarkInputMerger measures one watermark through a merger of 128
// channels (a fan-in at the default max parallelism).
func BenchmarkInputMerger(b *testing.B) {
	b.ReportAllocs()
	const n = 128
	v := eventtime.NewInputMerger(n)
	var i int64
	for b.Loop() {
		i++
		v.Update(int(i%n), i)
	}
}
