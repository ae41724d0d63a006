package nexmark_test

import (
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sabotdev/sabot/worker/connector/nexmark"
)

// BenchmarkGenerateBids measures the Arrow bid source: one instance, fixed
// seed, unbounded stream. events/s counts every event number the generator
// advanced over (persons and auctions are skipped but counted, as the
// Nexmark suite counts source events); bids/s counts rows produced.
func BenchmarkGenerateBids(b *testing.B) {
	for _, batch := range []int{1024, 8192} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			g, err := nexmark.NewGenerator(nexmark.Config{Seed: 1}, 0, memory.NewGoAllocator())
			if err != nil {
				b.Fatal(err)
			}
			defer g.Release()
			b.ReportAllocs()
			var rows int64
			for b.Loop() {
				rec, _ := g.NextBids(batch)
				rows += rec.NumRows()
				rec.Release()
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(g.Offset())/sec, "events/s")
			b.ReportMetric(float64(rows)/sec, "bids/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkGenerateAll measures Next: all three kinds into Arrow batches.
func BenchmarkGenerateAll(b *testing.B) {
	g, err := nexmark.NewGenerator(nexmark.Config{Seed: 1}, 0, memory.NewGoAllocator())
	if err != nil {
		b.Fatal(err)
	}
	defer g.Release()
	b.ReportAllocs()
	for b.Loop() {
		bs, _ := g.Next(8192)
		bs.Release()
	}
	b.ReportMetric(float64(g.Offset())/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkReference measures the single-threaded reference loops (the
// baseline without Arrow) over 1 M events per iteration.
func BenchmarkReference(b *testing.B) {
	const events = 1_000_000
	cfg := nexmark.Config{Seed: 1, NumEvents: events}
	var sink int64
	for _, q := range []struct {
		name string
		run  func() error
	}{
		{"q0", func() error { return nexmark.ReferenceQ0(cfg, func(r *nexmark.Q0Row) { sink += r.Price }) }},
		{"q1", func() error {
			return nexmark.ReferenceQ1(cfg, func(r *nexmark.Q1Row) { sink += int64(r.Price) })
		}},
		{"q2", func() error { return nexmark.ReferenceQ2(cfg, func(r nexmark.Q2Row) { sink += r.Price }) }},
	} {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := q.run(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
	_ = sink
}
