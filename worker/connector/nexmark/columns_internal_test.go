package nexmark

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestBidWriterGrows writes far more bids than start reserved room for,
// so every column regrows (rows and string data) through the allocator,
// and checks the batch is valid Arrow holding exactly the events' bids.
func TestBidWriterGrows(t *testing.T) {
	t.Parallel()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ev, err := NewEvents(Config{Seed: 9, NumEvents: 1})
	if err != nil {
		t.Fatal(err)
	}
	w := newBidWriter(mem, ev)
	for _, rows := range []int{1, 0, 3000} {
		w.start(1)
		var nums []int64
		for n := int64(0); len(nums) < rows; n++ {
			if KindOf(n) != KindBid {
				continue
			}
			var row bidRow
			r, extra := ev.bidHead(n, &row)
			w.append(&row, &r, extra)
			nums = append(nums, n)
		}
		rec := w.finish()
		if !rec.Schema().Equal(BidSchema()) || rec.NumRows() != int64(rows) {
			t.Fatalf("batch of %d rows with schema %v, want %d bids", rec.NumRows(), rec.Schema(), rows)
		}
		for c := range int(rec.NumCols()) {
			if s, ok := rec.Column(c).(*array.String); ok {
				if err := s.ValidateFull(); err != nil {
					t.Errorf("column %s: %v", rec.ColumnName(c), err)
				}
			}
			if rec.Column(c).NullN() != 0 || rec.Column(c).Len() != rows {
				t.Errorf("column %s: %d rows, %d nulls", rec.ColumnName(c), rec.Column(c).Len(), rec.Column(c).NullN())
			}
		}
		extra := rec.Column(bidExtra).(*array.String)
		url := rec.Column(bidURL).(*array.String)
		price := rec.Column(bidPrice).(*array.Int64)
		for i, n := range nums {
			want := ev.Event(n).Bid
			if extra.Value(i) != string(want.Extra) || url.Value(i) != want.URL || price.Value(i) != want.Price {
				t.Fatalf("row %d (event %d) differs from Events.Event", i, n)
			}
		}
		rec.Release()
	}
}
