package nexmark_test

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/sabotdev/sabot/worker/connector/nexmark"
)

func TestReferenceQueries(t *testing.T) {
	t.Parallel()
	cfg := nexmark.Config{Seed: testSeed, NumEvents: 50_000}
	var bids []nexmark.Bid
	if err := nexmark.ForEachBid(cfg, func(n int64, b *nexmark.Bid) {
		if nexmark.KindOf(n) != nexmark.KindBid {
			t.Fatalf("ForEachBid passed event %d, a %v", n, nexmark.KindOf(n))
		}
		c := *b
		c.Extra = slices.Clone(b.Extra) // b.Extra is reused
		bids = append(bids, c)
	}); err != nil {
		t.Fatal(err)
	}
	if len(bids) != 46_000 {
		t.Fatalf("%d bids, want 46000", len(bids))
	}

	i := 0
	if err := nexmark.ReferenceQ0(cfg, func(r *nexmark.Q0Row) {
		b := bids[i]
		if r.Auction != b.Auction || r.Bidder != b.Bidder || r.Price != b.Price || r.DateTime != b.DateTime ||
			string(r.Extra) != string(b.Extra) {
			t.Fatalf("q0 row %d = %+v, bid %+v", i, r, b)
		}
		i++
	}); err != nil || i != len(bids) {
		t.Fatalf("q0: %d rows, err %v", i, err)
	}

	i = 0
	if err := nexmark.ReferenceQ1(cfg, func(r *nexmark.Q1Row) {
		b := bids[i]
		// Flink's exact DECIMAL result is price × 908 / 1000.
		exact := float64(b.Price*908) / 1000
		if r.Auction != b.Auction || math.Abs(r.Price-exact) > exact*1e-15 || r.DateTime != b.DateTime {
			t.Fatalf("q1 row %d = %+v, bid %+v", i, r, b)
		}
		i++
	}); err != nil || i != len(bids) {
		t.Fatalf("q1: %d rows, err %v", i, err)
	}

	var want, got []nexmark.Q2Row
	for _, b := range bids {
		if b.Auction%123 == 0 {
			want = append(want, nexmark.Q2Row{Auction: b.Auction, Price: b.Price})
		}
	}
	if err := nexmark.ReferenceQ2(cfg, func(r nexmark.Q2Row) { got = append(got, r) }); err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Fatalf("q2: %d rows, want %d", len(got), len(want))
	}
}

func TestReferenceQueriesNeedBoundedStream(t *testing.T) {
	t.Parallel()
	if err := nexmark.ReferenceQ0(nexmark.Config{}, func(*nexmark.Q0Row) {}); !errors.Is(err, nexmark.ErrUnbounded) {
		t.Errorf("unbounded q0: %v, want ErrUnbounded", err)
	}
	if err := nexmark.ReferenceQ2(nexmark.Config{NumEvents: -1}, func(nexmark.Q2Row) {}); !errors.Is(err, nexmark.ErrInvalidConfig) {
		t.Errorf("invalid q2: %v, want ErrInvalidConfig", err)
	}
}
