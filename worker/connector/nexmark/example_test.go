package nexmark_test

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sabotdev/sabot/worker/connector/nexmark"
)

// A source subtask generating its share of a bounded stream as bid batches.
func ExampleGenerator_NextBids() {
	cfg := nexmark.Config{Seed: 7, NumEvents: 10_000, Instances: 2}
	g, err := nexmark.NewGenerator(cfg, 1, memory.NewGoAllocator())
	if err != nil {
		panic(err)
	}
	defer g.Release()
	var rows int64
	for {
		rec, done := g.NextBids(1024)
		rows += rec.NumRows()
		rec.Release()
		if done {
			break
		}
	}
	// Instance 1 of 2 generates the odd event numbers: half of the 9,200 bids.
	fmt.Println(rows, g.Offset())
	// Output: 4600 10001
}
