package nexmark_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sabotdev/sabot/worker/connector/nexmark"
)

func checkedAlloc(t *testing.T) *memory.CheckedAllocator {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

func mustGenerator(t *testing.T, cfg nexmark.Config, instance int, mem memory.Allocator) *nexmark.Generator {
	t.Helper()
	g, err := nexmark.NewGenerator(cfg, instance, mem)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// bidRows converts a BidSchema batch into Bids (owning their Extra).
func bidRows(t *testing.T, rec arrow.RecordBatch) []nexmark.Bid {
	t.Helper()
	if !rec.Schema().Equal(nexmark.BidSchema()) {
		t.Fatalf("schema %v, want %v", rec.Schema(), nexmark.BidSchema())
	}
	auction := rec.Column(0).(*array.Int64)
	bidder := rec.Column(1).(*array.Int64)
	price := rec.Column(2).(*array.Int64)
	channel := rec.Column(3).(*array.String)
	url := rec.Column(4).(*array.String)
	dateTime := rec.Column(5).(*array.Timestamp)
	extra := rec.Column(6).(*array.String)
	out := make([]nexmark.Bid, rec.NumRows())
	for i := range out {
		out[i] = nexmark.Bid{
			Auction: auction.Value(i), Bidder: bidder.Value(i), Price: price.Value(i),
			Channel: channel.Value(i), URL: url.Value(i), DateTime: int64(dateTime.Value(i)),
			Extra: []byte(extra.Value(i)),
		}
	}
	return out
}

func personRows(t *testing.T, rec arrow.RecordBatch) []nexmark.Person {
	t.Helper()
	if !rec.Schema().Equal(nexmark.PersonSchema()) {
		t.Fatalf("schema %v, want %v", rec.Schema(), nexmark.PersonSchema())
	}
	str := func(c, i int) string { return rec.Column(c).(*array.String).Value(i) }
	out := make([]nexmark.Person, rec.NumRows())
	for i := range out {
		out[i] = nexmark.Person{
			ID: rec.Column(0).(*array.Int64).Value(i), Name: str(1, i), EmailAddress: str(2, i),
			CreditCard: str(3, i), City: str(4, i), State: str(5, i),
			DateTime: int64(rec.Column(6).(*array.Timestamp).Value(i)), Extra: []byte(str(7, i)),
		}
	}
	return out
}

func auctionRows(t *testing.T, rec arrow.RecordBatch) []nexmark.Auction {
	t.Helper()
	if !rec.Schema().Equal(nexmark.AuctionSchema()) {
		t.Fatalf("schema %v, want %v", rec.Schema(), nexmark.AuctionSchema())
	}
	i64 := func(c, i int) int64 { return rec.Column(c).(*array.Int64).Value(i) }
	ts := func(c, i int) int64 { return int64(rec.Column(c).(*array.Timestamp).Value(i)) }
	str := func(c, i int) string { return rec.Column(c).(*array.String).Value(i) }
	out := make([]nexmark.Auction, rec.NumRows())
	for i := range out {
		out[i] = nexmark.Auction{
			ID: i64(0, i), ItemName: str(1, i), Description: str(2, i), InitialBid: i64(3, i), Reserve: i64(4, i),
			DateTime: ts(5, i), Expires: ts(6, i), Seller: i64(7, i), Category: i64(8, i), Extra: []byte(str(9, i)),
		}
	}
	return out
}

// TestNextBidsMatchesEvents checks Arrow bid batches against the scalar
// event function, batch sizes and the done flag, with a checked allocator.
func TestNextBidsMatchesEvents(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name      string
		numEvents int64
		batch     int
	}{
		{"batch 1", 500, 1},
		{"batch 7", 2_000, 7},
		{"batch 1024", 10_000, 1024},
		{"one batch", 1_000, 100_000},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			mem := checkedAlloc(t)
			cfg := nexmark.Config{Seed: testSeed, NumEvents: c.numEvents}
			g := mustGenerator(t, cfg, 0, mem)
			defer g.Release()
			var got []nexmark.Bid
			for {
				rec, done := g.NextBids(c.batch)
				if !done && rec.NumRows() != int64(c.batch) {
					t.Fatalf("batch of %d rows before done, want %d", rec.NumRows(), c.batch)
				}
				got = append(got, bidRows(t, rec)...)
				rec.Release()
				if done {
					break
				}
			}
			if !g.Done() || g.Offset() < c.numEvents {
				t.Fatalf("done with offset %d of %d", g.Offset(), c.numEvents)
			}
			var want []nexmark.Bid
			for n := range c.numEvents {
				if ev := g.Events().Event(n); ev.Kind == nexmark.KindBid {
					want = append(want, *ev.Bid)
				}
			}
			if int64(len(want)) != c.numEvents*46/50 || !reflect.DeepEqual(got, want) {
				t.Fatalf("got %d bids, want %d (equal: %v)", len(got), len(want), reflect.DeepEqual(got, want))
			}
		})
	}
}

// TestNextMatchesEvents checks the all-kinds batches against the scalar
// event function.
func TestNextMatchesEvents(t *testing.T) {
	t.Parallel()
	mem := checkedAlloc(t)
	const numEvents = 10_000
	g := mustGenerator(t, nexmark.Config{Seed: testSeed, NumEvents: numEvents}, 0, mem)
	defer g.Release()
	var persons []nexmark.Person
	var auctions []nexmark.Auction
	var bids []nexmark.Bid
	for {
		b, done := g.Next(777)
		if !done && b.Rows() != 777 {
			t.Fatalf("%d rows before done", b.Rows())
		}
		persons = append(persons, personRows(t, b.Persons)...)
		auctions = append(auctions, auctionRows(t, b.Auctions)...)
		bids = append(bids, bidRows(t, b.Bids)...)
		b.Release()
		if done {
			break
		}
	}
	var wantP []nexmark.Person
	var wantA []nexmark.Auction
	var wantB []nexmark.Bid
	for n := range int64(numEvents) {
		ev := g.Events().Event(n)
		switch ev.Kind {
		case nexmark.KindPerson:
			wantP = append(wantP, *ev.Person)
		case nexmark.KindAuction:
			wantA = append(wantA, *ev.Auction)
		case nexmark.KindBid:
			wantB = append(wantB, *ev.Bid)
		}
	}
	if !reflect.DeepEqual(persons, wantP) || !reflect.DeepEqual(auctions, wantA) || !reflect.DeepEqual(bids, wantB) {
		t.Fatalf("batches differ from events: %d/%d/%d rows, want %d/%d/%d",
			len(persons), len(auctions), len(bids), len(wantP), len(wantA), len(wantB))
	}
}

// TestParallelUnion checks that P instances together generate exactly the
// single instance's events: instance i's k-th event is event i + k×P, and
// every event of the stream is generated once.
func TestParallelUnion(t *testing.T) {
	t.Parallel()
	const numEvents = 10_000
	// collect returns the stream's events by event number, from the given
	// number of instances.
	collect := func(t *testing.T, instances int) []any {
		mem := checkedAlloc(t)
		cfg := nexmark.Config{Seed: testSeed, NumEvents: numEvents, Instances: instances}
		events := make([]any, numEvents)
		for i := range instances {
			g := mustGenerator(t, cfg, i, mem)
			var persons []nexmark.Person
			var auctions []nexmark.Auction
			var bids []nexmark.Bid
			for {
				b, done := g.Next(1000)
				persons = append(persons, personRows(t, b.Persons)...)
				auctions = append(auctions, auctionRows(t, b.Auctions)...)
				bids = append(bids, bidRows(t, b.Bids)...)
				b.Release()
				if done {
					break
				}
			}
			g.Release()
			for n := int64(i); n < numEvents; n += int64(instances) {
				if events[n] != nil {
					t.Fatalf("event %d generated twice", n)
				}
				switch nexmark.KindOf(n) {
				case nexmark.KindPerson:
					events[n], persons = persons[0], persons[1:]
				case nexmark.KindAuction:
					events[n], auctions = auctions[0], auctions[1:]
				case nexmark.KindBid:
					events[n], bids = bids[0], bids[1:]
				}
			}
			if len(persons)+len(auctions)+len(bids) != 0 {
				t.Fatalf("instance %d generated %d extra rows", i, len(persons)+len(auctions)+len(bids))
			}
		}
		return events
	}
	single := collect(t, 1)
	for _, p := range []int{2, 3, 7} {
		t.Run(fmt.Sprintf("P=%d", p), func(t *testing.T) {
			t.Parallel()
			got := collect(t, p)
			for n := range got {
				if !reflect.DeepEqual(got[n], single[n]) {
					t.Fatalf("event %d from %d instances:\n%+v\none instance:\n%+v", n, p, got[n], single[n])
				}
			}
		})
	}
}

// TestOffsetResume checks that a generator restored at a checkpointed
// offset continues exactly where the original left off.
func TestOffsetResume(t *testing.T) {
	t.Parallel()
	mem := checkedAlloc(t)
	cfg := nexmark.Config{Seed: testSeed, NumEvents: 5_000, Instances: 3}
	for inst := range 3 {
		g := mustGenerator(t, cfg, inst, mem)
		rec, _ := g.NextBids(100)
		rec.Release()
		off := g.Offset()
		if off%3 != int64(inst) {
			t.Fatalf("instance %d at offset %d", inst, off)
		}
		want, _ := g.NextBids(500)
		g.Release()

		r := mustGenerator(t, cfg, inst, mem)
		for _, seek := range []int64{off - 2, off - 1, off} { // rounds up to the instance's next event
			r.SetOffset(seek)
			if r.Offset() != off {
				t.Fatalf("SetOffset(%d) on instance %d: offset %d, want %d", seek, inst, r.Offset(), off)
			}
		}
		got, _ := r.NextBids(500)
		if !slices.EqualFunc(bidRows(t, got), bidRows(t, want), func(a, b nexmark.Bid) bool { return reflect.DeepEqual(a, b) }) {
			t.Fatalf("instance %d: resumed generator differs", inst)
		}
		got.Release()
		want.Release()
		r.SetOffset(-5)
		if r.Offset() != int64(inst) {
			t.Fatalf("SetOffset(-5): offset %d, want %d", r.Offset(), inst)
		}
		r.Release()
	}
}

func TestNewGeneratorErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		cfg      nexmark.Config
		instance int
	}{
		{"negative instance", nexmark.Config{}, -1},
		{"instance past default 1", nexmark.Config{}, 1},
		{"instance past 4", nexmark.Config{Instances: 4}, 4},
		{"invalid config", nexmark.Config{NumEvents: -1}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if _, err := nexmark.NewGenerator(c.cfg, c.instance, nil); !errors.Is(err, nexmark.ErrInvalidConfig) {
				t.Fatalf("NewGenerator = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// TestEmptyBatchWhenDone checks the contract at the end of a bounded stream
// whose last events are not bids.
func TestEmptyBatchWhenDone(t *testing.T) {
	t.Parallel()
	mem := checkedAlloc(t)
	// Events 0..53: 46 bids (4..49), then person 50 and auctions 51..53.
	g := mustGenerator(t, nexmark.Config{NumEvents: 54}, 0, mem)
	defer g.Release()
	rec, done := g.NextBids(46)
	if rec.NumRows() != 46 || done {
		t.Fatalf("first batch: %d rows, done %v", rec.NumRows(), done)
	}
	rec.Release()
	rec, done = g.NextBids(46)
	if rec.NumRows() != 0 || !done {
		t.Fatalf("second batch: %d rows, done %v", rec.NumRows(), done)
	}
	rec.Release()
}
