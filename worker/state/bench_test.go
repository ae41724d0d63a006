package state_test

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"

	"github.com/sabotdev/sabot/worker/state"
)

const benchKeys = 1024

func benchBackends(b *testing.B, fn func(b *testing.B, be state.Backend)) {
	b.Run("heap", func(b *testing.B) {
		be, err := state.NewHeap(state.Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = be.Close() }()
		fn(b, be)
	})
	b.Run("pebble", func(b *testing.B) {
		be, err := state.OpenPebble(b.TempDir(), state.Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = be.Close() }()
		fn(b, be)
	})
}

func reportOps(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func benchKeyBytes() [][]byte {
	keys := make([][]byte, benchKeys)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%06d", i)
	}
	return keys
}

// BenchmarkValueStateUpdate: per op, set the current key, read the value,
// write value+1 (a running count). baseline-map does the same on a Go map.
func BenchmarkValueStateUpdate(b *testing.B) {
	keys := benchKeyBytes()
	b.Run("baseline-map", func(b *testing.B) {
		m := make(map[string]int64)
		b.ReportAllocs()
		for i := range b.N {
			k := keys[i%benchKeys]
			m[string(k)]++
		}
		reportOps(b)
	})
	benchBackends(b, func(b *testing.B, be state.Backend) {
		k, err := state.NewKeyed(be, "op")
		if err != nil {
			b.Fatal(err)
		}
		v, err := state.Value(k, state.ValueDescriptor[int64]{Name: "count", Codec: state.Int64Codec{}})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			key := keys[i%benchKeys]
			if err := k.SetCurrentKey(key, uint16(i%benchKeys%128)); err != nil {
				b.Fatal(err)
			}
			n, _, err := v.Value()
			if err != nil {
				b.Fatal(err)
			}
			if err := v.Update(n + 1); err != nil {
				b.Fatal(err)
			}
		}
		reportOps(b)
	})
}

// int64Heap is the baseline timer queue: a bare container/heap of
// timestamps and a map for deduplication.
type int64Heap []int64

func (h int64Heap) Len() int           { return len(h) }
func (h int64Heap) Less(i, j int) bool { return h[i] < h[j] }
func (h int64Heap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *int64Heap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *int64Heap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// BenchmarkTimers: per op, register one event-time timer (key i, time i)
// and, every 1024 ops, advance the watermark and fire them all. One op is
// one register plus one firing.
func BenchmarkTimers(b *testing.B) {
	keys := benchKeyBytes()
	b.Run("baseline-heap", func(b *testing.B) {
		var h int64Heap
		dedup := make(map[int64]struct{})
		b.ReportAllocs()
		for i := range b.N {
			ts := int64(i)
			if _, ok := dedup[ts]; !ok {
				dedup[ts] = struct{}{}
				heap.Push(&h, ts)
			}
			if i%benchKeys == benchKeys-1 {
				for h.Len() > 0 && h[0] <= ts {
					delete(dedup, heap.Pop(&h).(int64))
				}
			}
		}
		reportOps(b)
	})
	benchBackends(b, func(b *testing.B, be state.Backend) {
		k, err := state.NewKeyed(be, "op")
		if err != nil {
			b.Fatal(err)
		}
		ts, err := k.TimerService("bench")
		if err != nil {
			b.Fatal(err)
		}
		fired := 0
		onTimer := func(state.Timer) error { fired++; return nil }
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if err := k.SetCurrentKey(keys[i%benchKeys], uint16(i%128)); err != nil {
				b.Fatal(err)
			}
			if err := ts.RegisterEventTimeTimer(int64(i)); err != nil {
				b.Fatal(err)
			}
			if i%benchKeys == benchKeys-1 {
				if err := ts.AdvanceWatermark(int64(i), onTimer); err != nil {
					b.Fatal(err)
				}
			}
		}
		reportOps(b)
	})
}

// manyTimers is the number of timers BenchmarkTimersManyPerTimestamp keeps
// pending at once, and manyTimestamps the number of distinct timestamps
// they share: the shape of a window operator at a window end (one timer
// per key, all at the window's max timestamp).
const (
	manyTimers     = 1 << 20
	manyTimestamps = 4
)

// manyKeys returns n distinct keys and their key groups.
func manyKeys(n int) ([][]byte, []uint16) {
	keys := make([][]byte, n)
	kgs := make([]uint16, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "k%07d", i)
		kgs[i] = uint16(i * 31 % 128)
	}
	return keys, kgs
}

// BenchmarkTimersManyPerTimestamp: rounds of manyTimers registrations
// (key j at timestamp base + j%manyTimestamps), each round fired by one
// AdvanceWatermark. One op is one registration plus its firing.
// baseline-map keeps the same timers in a Go map for deduplication and
// one slice of key indices per timestamp, fired in timestamp order.
func BenchmarkTimersManyPerTimestamp(b *testing.B) {
	keys, kgs := manyKeys(manyTimers)
	rounds := func(b *testing.B, round func(n int, base int64)) {
		base := int64(0)
		for done := 0; done < b.N; done += manyTimers {
			round(min(manyTimers, b.N-done), base)
			base += manyTimestamps
		}
	}
	b.Run("baseline-map", func(b *testing.B) {
		type id struct {
			key int32
			ts  int64
		}
		dedup := make(map[id]struct{})
		buckets := make(map[int64][]int32)
		fired := 0
		b.ReportAllocs()
		rounds(b, func(n int, base int64) {
			for j := range n {
				t := id{int32(j), base + int64(j%manyTimestamps)}
				if _, ok := dedup[t]; ok {
					continue
				}
				dedup[t] = struct{}{}
				buckets[t.ts] = append(buckets[t.ts], t.key)
			}
			for ts := base; ts < base+manyTimestamps; ts++ {
				for _, key := range buckets[ts] {
					delete(dedup, id{key, ts})
					fired++
				}
				delete(buckets, ts)
			}
		})
		reportOps(b)
	})
	b.Run("heap", func(b *testing.B) {
		be, err := state.NewHeap(state.Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = be.Close() }()
		k, err := state.NewKeyed(be, "op")
		if err != nil {
			b.Fatal(err)
		}
		ts, err := k.TimerService("bench")
		if err != nil {
			b.Fatal(err)
		}
		fired := 0
		onTimer := func(state.Timer) error { fired++; return nil }
		b.ReportAllocs()
		b.ResetTimer()
		rounds(b, func(n int, base int64) {
			for j := range n {
				if err := k.SetCurrentKey(keys[j], kgs[j]); err != nil {
					b.Fatal(err)
				}
				if err := ts.RegisterEventTimeTimer(base + int64(j%manyTimestamps)); err != nil {
					b.Fatal(err)
				}
			}
			if err := ts.AdvanceWatermark(base+manyTimestamps, onTimer); err != nil {
				b.Fatal(err)
			}
		})
		if fired != b.N {
			b.Fatalf("fired %d timers, want %d", fired, b.N)
		}
		reportOps(b)
	})
}

// windowBench is the per-record work of a tumbling-window count (the
// shape of the runtime's window aggregate): set the key and the window's
// namespace, fold the record into a reducing state, register a timer at
// the window's max timestamp in the default namespace. Its timer callback
// reads and clears the window's state.
type windowBench struct {
	k      *state.Keyed
	sum    *state.ReducingState[int64]
	timers *state.TimerService
	ns     []byte
	fired  int
}

func newWindowBench(b *testing.B, be state.Backend) *windowBench {
	b.Helper()
	k, err := state.NewKeyed(be, "op")
	if err != nil {
		b.Fatal(err)
	}
	sum, err := state.Reducing(k, state.ReducingDescriptor[int64]{
		Name: "sum", Codec: state.Int64Codec{}, Reduce: func(a, v int64) int64 { return a + v },
	})
	if err != nil {
		b.Fatal(err)
	}
	timers, err := k.TimerService("window")
	if err != nil {
		b.Fatal(err)
	}
	return &windowBench{k: k, sum: sum, timers: timers}
}

func (w *windowBench) add(key []byte, kg uint16, end int64) error {
	if err := w.k.SetCurrentKey(key, kg); err != nil {
		return err
	}
	w.ns = binary.BigEndian.AppendUint64(w.ns[:0], uint64(end))
	w.k.SetCurrentNamespace(w.ns)
	if err := w.sum.Add(1); err != nil {
		return err
	}
	w.k.SetCurrentNamespace(nil)
	return w.timers.RegisterEventTimeTimer(end - 1)
}

func (w *windowBench) fire(t state.Timer) error {
	w.ns = binary.BigEndian.AppendUint64(w.ns[:0], uint64(t.Timestamp+1))
	w.k.SetCurrentNamespace(w.ns)
	if _, _, err := w.sum.Get(); err != nil {
		return err
	}
	w.fired++
	return w.sum.Clear()
}

// BenchmarkWindowAggregate: a tumbling-window count over benchKeys keys,
// 16 records per key and window, the watermark advanced at each window
// end. One op is one record; baseline-map counts in a map per window.
func BenchmarkWindowAggregate(b *testing.B) {
	keys := benchKeyBytes()
	const perWindow = benchKeys * 16
	b.Run("baseline-map", func(b *testing.B) {
		counts := make(map[string]int64)
		fired := 0
		b.ReportAllocs()
		for i := range b.N {
			counts[string(keys[i%benchKeys])]++
			if i%perWindow == perWindow-1 {
				for k := range counts {
					fired++
					delete(counts, k)
				}
			}
		}
		reportOps(b)
	})
	benchBackends(b, func(b *testing.B, be state.Backend) {
		w := newWindowBench(b, be)
		onTimer := w.fire
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			end := int64(i/perWindow+1) * 1000
			if err := w.add(keys[i%benchKeys], uint16(i%benchKeys%128), end); err != nil {
				b.Fatal(err)
			}
			if i%perWindow == perWindow-1 {
				if err := w.timers.AdvanceWatermark(end-1, onTimer); err != nil {
					b.Fatal(err)
				}
			}
		}
		reportOps(b)
	})
}

// BenchmarkWindowStateMemory measures the live Go heap of the q5 shape on
// the heap backend: manyTimers keys, each with one reducing value in its
// window's namespace and one event-time timer. It reports heap bytes per
// key after a GC (run it with -benchtime=1x; one op is one key).
func BenchmarkWindowStateMemory(b *testing.B) {
	keys, kgs := manyKeys(manyTimers)
	var before, after runtime.MemStats
	for b.Loop() {
		be, err := state.NewHeap(state.Config{})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&before)
		w := newWindowBench(b, be)
		for j := range keys {
			if err := w.add(keys[j], kgs[j], 1000); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/manyTimers, "heap-B/key")
		b.ReportMetric(float64(after.HeapObjects-before.HeapObjects)/manyTimers, "objects/key")
		if err := w.timers.AdvanceWatermark(1000, w.fire); err != nil {
			b.Fatal(err)
		}
		if w.fired != manyTimers {
			b.Fatalf("fired %d, want %d", w.fired, manyTimers)
		}
		runtime.KeepAlive(w)
		_ = be.Close()
	}
}
