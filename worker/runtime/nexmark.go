package runtime

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/worker/connector/nexmark"
)

// nexmarkSource is the NexmarkSource: subtask i of p is generator instance i
// of p, so the union over subtasks is the same event set at any
// parallelism. It emits as fast as downstream takes batches (backpressure
// paces it) and, after each batch, the reference watermark: the batch's
// last event time minus nexmark.WatermarkDelay (the generator is in order).
//
// The generator allocates from a bufferPool over the job's allocator: the
// buffers of batches released downstream come back to the source for the
// next batches, so a steady stream allocates nothing and leaves the
// garbage collector nothing to do.
type nexmarkSource struct {
	table     sabotv1.NexmarkTable
	pool      *bufferPool
	gen       *nexmark.Generator
	batchSize int
	lastWM    int64
	// timeCol is the index of the dateTime column of the table's schema.
	timeCol int
}

func newNexmarkSource(spec *sabotv1.NexmarkSource, info TaskInfo, e *env) (*nexmarkSource, error) {
	cfg := nexmark.Config{
		Seed:            spec.GetSeed(),
		EventsPerSecond: spec.GetEventsPerSecond(),
		NumEvents:       spec.GetEvents(),
		Instances:       info.Parallelism,
	}
	pool := newBufferPool(e.mem, 0)
	gen, err := nexmark.NewGenerator(cfg, info.Subtask, pool)
	if err != nil {
		return nil, fmt.Errorf("nexmark source: %w", err)
	}
	schema := nexmark.BidSchema()
	switch spec.GetTable() {
	case sabotv1.NexmarkTable_NEXMARK_TABLE_PERSON:
		schema = nexmark.PersonSchema()
	case sabotv1.NexmarkTable_NEXMARK_TABLE_AUCTION:
		schema = nexmark.AuctionSchema()
	default:
		// Bids.
	}
	timeCol := -1
	if idx := schema.FieldIndices("dateTime"); len(idx) == 1 {
		timeCol = idx[0]
	}
	return &nexmarkSource{
		table: spec.GetTable(), pool: pool, gen: gen, batchSize: e.batchSize,
		lastWM: MinWatermark, timeCol: timeCol,
	}, nil
}

func (s *nexmarkSource) Open(context.Context) error { return nil }

// Close releases the generator and empties the pool; buffers of batches
// still held downstream go straight back to the job's allocator when
// released. Idempotent.
func (s *nexmarkSource) Close() error {
	s.gen.Release()
	s.pool.Close()
	return nil
}

func (s *nexmarkSource) Next(ctx context.Context, out Output) (bool, error) {
	var rec arrow.RecordBatch
	var done bool
	switch s.table {
	case sabotv1.NexmarkTable_NEXMARK_TABLE_PERSON, sabotv1.NexmarkTable_NEXMARK_TABLE_AUCTION:
		// One call covers batchSize events of every kind; keep the asked
		// table's batch.
		b, d := s.gen.Next(s.batchSize)
		done = d
		if s.table == sabotv1.NexmarkTable_NEXMARK_TABLE_PERSON {
			rec = b.Persons
			b.Persons = nil
		} else {
			rec = b.Auctions
			b.Auctions = nil
		}
		releaseBatches(b)
	default:
		rec, done = s.gen.NextBids(s.batchSize)
	}
	defer rec.Release()
	if rec.NumRows() == 0 {
		return done, nil
	}
	if err := out.Emit(ctx, rec); err != nil {
		return false, err
	}
	// dateTime is the event-time column of every table; rows are in event
	// order, so the last row holds the batch's maximum.
	if s.timeCol >= 0 {
		ts := rec.Column(s.timeCol).(*array.Timestamp).Value(int(rec.NumRows()) - 1)
		if wm := int64(ts) - nexmark.WatermarkDelay.Milliseconds(); wm > s.lastWM {
			s.lastWM = wm
			if err := out.EmitWatermark(ctx, wm); err != nil {
				return false, err
			}
		}
	}
	return done, nil
}

// releaseBatches releases whichever of b's batches are still set.
func releaseBatches(b nexmark.Batches) {
	for _, r := range []arrow.RecordBatch{b.Persons, b.Auctions, b.Bids} {
		if r != nil {
			r.Release()
		}
	}
}
