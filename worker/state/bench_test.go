package state_test

import (
	"container/heap"
	"fmt"
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
