package window_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/sabotdev/sabot/worker/state"
	"github.com/sabotdev/sabot/worker/window"
)

// The benchmarks count elements per key and window on the heap backend,
// in event time, with in-order timestamps and a watermark every
// benchWMEvery elements, as the runtime would drive the engine after each
// batch. Each has two runs over the same input:
//
//   - window: the engine (SetCurrentKey + ProcessElement per element,
//     AdvanceWatermark per batch), results to a counting sink;
//   - baseline-map: a hand-written loop over Go maps computing the same
//     counts and firing the same windows, with none of the engine's
//     guarantees (no state backend, no snapshots, no lateness, no
//     triggers).
//
// ns/element is reported for both; the ratio is the price of the engine.
const (
	benchKeys    = 1024
	benchWMEvery = 1024
)

// benchTS is the timestamp of element i: 8 elements per ms across all
// keys (each key every 128 ms), with a 5 s pause every 65536 elements so
// sessions (gap 1 s) close after about 64 elements per key.
func benchTS(i int) int64 { return int64(i/8) + int64(i/65536)*5000 }

type benchInput struct {
	keys  [][]byte
	skeys []string
	kgs   []uint16
}

func newBenchInput() *benchInput {
	in := &benchInput{}
	for i := range benchKeys {
		k := fmt.Sprintf("key-%06d", i)
		in.keys = append(in.keys, []byte(k))
		in.skeys = append(in.skeys, k)
		in.kgs = append(in.kgs, kgOf(k))
	}
	return in
}

func reportPerElement(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/element")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "elements/s")
}

// countFunction counts elements (an incremental aggregate that merges).
func countFunction() window.Function[int64, int64] {
	return window.Aggregate(window.AggregateFunction[int64, int64, int64]{
		Create: func() int64 { return 0 },
		Add:    func(acc, _ int64) int64 { return acc + 1 },
		Merge:  func(a, b int64) int64 { return a + b },
		Result: func(acc int64) int64 { return acc },
		Codec:  state.Int64Codec{},
	})
}

// benchEngine drives the engine with b.N elements.
func benchEngine(b *testing.B, a window.Assigner[int64]) {
	in := newBenchInput()
	be, err := state.NewHeap(state.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = be.Close() }()
	k, err := state.NewKeyed(be, "window")
	if err != nil {
		b.Fatal(err)
	}
	var fired, total int64
	op, err := window.New(k, window.Config[int64, int64]{
		Assigner: a,
		Function: countFunction(),
		Emit: func(_ []byte, _ window.Window, n int64) error {
			fired++
			total += n
			return nil
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ki := i % benchKeys
		if err := k.SetCurrentKey(in.keys[ki], in.kgs[ki]); err != nil {
			b.Fatal(err)
		}
		ts := benchTS(i)
		if err := op.ProcessElement(ts, 1); err != nil {
			b.Fatal(err)
		}
		if i%benchWMEvery == benchWMEvery-1 {
			if err := op.AdvanceWatermark(ts - 1); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportPerElement(b)
	b.ReportMetric(float64(fired), "windows")
	_ = total
}

// alignedBaseline counts per (window end, key) in nested maps and fires
// whole ends in order when the watermark passes them.
type alignedBaseline struct {
	counts map[int64]map[string]int64 // window end → key → count
	ends   []int64                    // pending window ends, sorted
	fired  int64
}

func (m *alignedBaseline) add(key string, end int64) {
	c := m.counts[end]
	if c == nil {
		c = make(map[string]int64)
		m.counts[end] = c
		if i, found := slices.BinarySearch(m.ends, end); !found {
			m.ends = slices.Insert(m.ends, i, end)
		}
	}
	c[key]++
}

func (m *alignedBaseline) watermark(wm int64) {
	for len(m.ends) > 0 && m.ends[0]-1 <= wm {
		for range m.counts[m.ends[0]] {
			m.fired++ // emit (key, window, count)
		}
		delete(m.counts, m.ends[0])
		m.ends = m.ends[1:]
	}
}

func benchAlignedBaseline(b *testing.B, size, slide int64) {
	in := newBenchInput()
	m := &alignedBaseline{counts: make(map[int64]map[string]int64)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ts := benchTS(i)
		key := in.skeys[i%benchKeys]
		for start := ts - ts%slide; start > ts-size; start -= slide {
			m.add(key, start+size)
		}
		if i%benchWMEvery == benchWMEvery-1 {
			m.watermark(ts - 1)
		}
	}
	reportPerElement(b)
	b.ReportMetric(float64(m.fired), "windows")
}

// BenchmarkTumblingCount: tumbling windows of 10 s.
func BenchmarkTumblingCount(b *testing.B) {
	b.Run("window", func(b *testing.B) {
		a, err := window.Tumbling[int64](window.EventTime, 10_000, 0)
		if err != nil {
			b.Fatal(err)
		}
		benchEngine(b, a)
	})
	b.Run("baseline-map", func(b *testing.B) { benchAlignedBaseline(b, 10_000, 10_000) })
}

// BenchmarkSlidingCount: sliding windows of 10 s every 2 s (5 windows per
// element).
func BenchmarkSlidingCount(b *testing.B) {
	b.Run("window", func(b *testing.B) {
		a, err := window.Sliding[int64](window.EventTime, 10_000, 2_000, 0)
		if err != nil {
			b.Fatal(err)
		}
		benchEngine(b, a)
	})
	b.Run("baseline-map", func(b *testing.B) { benchAlignedBaseline(b, 10_000, 2_000) })
}

// sessionBaseline keeps per key its open sessions and merges on insert;
// each watermark scans the keys with open sessions.
type sessionBaseline struct {
	gap   int64
	open  map[string][]benchSession
	fired int64
}

type benchSession struct{ start, end, n int64 }

func (m *sessionBaseline) add(key string, ts int64) {
	s := benchSession{start: ts, end: ts + m.gap, n: 1}
	ss := m.open[key]
	out := ss[:0]
	for _, o := range ss {
		if o.start <= s.end && o.end >= s.start {
			s = benchSession{start: min(s.start, o.start), end: max(s.end, o.end), n: s.n + o.n}
		} else {
			out = append(out, o)
		}
	}
	m.open[key] = append(out, s)
}

func (m *sessionBaseline) watermark(wm int64) {
	for key, ss := range m.open {
		out := ss[:0]
		for _, s := range ss {
			if s.end-1 <= wm {
				m.fired++ // emit
			} else {
				out = append(out, s)
			}
		}
		if len(out) == 0 {
			delete(m.open, key)
		} else {
			m.open[key] = out
		}
	}
}

// BenchmarkSessionCount: session windows with a 1 s gap; every element
// extends its key's session (each key sees an element every 128 ms) until
// a 5 s pause closes them all.
func BenchmarkSessionCount(b *testing.B) {
	b.Run("window", func(b *testing.B) {
		a, err := window.Session[int64](window.EventTime, 1_000)
		if err != nil {
			b.Fatal(err)
		}
		benchEngine(b, a)
	})
	b.Run("baseline-map", func(b *testing.B) {
		in := newBenchInput()
		m := &sessionBaseline{gap: 1_000, open: make(map[string][]benchSession)}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			ts := benchTS(i)
			m.add(in.skeys[i%benchKeys], ts)
			if i%benchWMEvery == benchWMEvery-1 {
				m.watermark(ts - 1)
			}
		}
		reportPerElement(b)
		b.ReportMetric(float64(m.fired), "windows")
	})
}
