package nexmark_test

import (
	"errors"
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sabotdev/sabot/worker/connector/nexmark"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testSeed is logged by tests that draw statistics, so a failure replays.
const testSeed = 42

func mustEvents(t testing.TB, cfg nexmark.Config) *nexmark.Events {
	t.Helper()
	e, err := nexmark.NewEvents(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Independent restatement of the reference's id arithmetic (NEXMARK.md
// "Ids", "Active sets"; GeneratorConfig / PersonGenerator /
// AuctionGenerator) for 1:3:46.
func lastPerson(n int64) int64 { return n / 50 }

func lastAuction(n int64) int64 {
	switch off := n % 50; {
	case off == 0:
		return (n/50-1)*3 + 2
	case off <= 3:
		return (n/50)*3 + off - 1
	default:
		return (n/50)*3 + 2
	}
}

func TestKindMix(t *testing.T) {
	t.Parallel()
	for _, k := range []int64{1, 7, 2000} {
		var counts [3]int64
		for n := range 50 * k {
			counts[nexmark.KindOf(n)]++
		}
		if want := [3]int64{k, 3 * k, 46 * k}; counts != want {
			t.Errorf("over %d events: person/auction/bid = %v, want %v", 50*k, counts, want)
		}
	}
	for n, want := range map[int64]nexmark.Kind{
		0: nexmark.KindPerson, 1: nexmark.KindAuction, 3: nexmark.KindAuction, 4: nexmark.KindBid,
		49: nexmark.KindBid, 50: nexmark.KindPerson, 53: nexmark.KindAuction, 54: nexmark.KindBid,
	} {
		if got := nexmark.KindOf(n); got != want {
			t.Errorf("KindOf(%d) = %v, want %v", n, got, want)
		}
	}
}

// TestIDs checks that ids start at 1000 and are dense, and that every
// reference (seller, bid auction, bidder) falls in the reference's window:
// the active set plus a lead of 10 not-yet-created ids.
func TestIDs(t *testing.T) {
	t.Parallel()
	e := mustEvents(t, nexmark.Config{Seed: testSeed})
	for n := range int64(50_000) {
		ev := e.Event(n)
		lp, la := lastPerson(n), lastAuction(n)
		switch ev.Kind {
		case nexmark.KindPerson:
			if want := 1000 + n/50; ev.Person.ID != want {
				t.Fatalf("event %d: person id %d, want %d", n, ev.Person.ID, want)
			}
		case nexmark.KindAuction:
			a := ev.Auction
			if want := 1000 + la; a.ID != want {
				t.Fatalf("event %d: auction id %d, want %d", n, a.ID, want)
			}
			if s := a.Seller - 1000; s < max(lp+1-1000, 0) || s > lp+10 {
				t.Fatalf("event %d: seller %d outside [%d, %d]", n, a.Seller, 1000+max(lp+1-1000, 0), 1000+lp+10)
			}
			if a.Category < 10 || a.Category > 14 {
				t.Fatalf("event %d: category %d", n, a.Category)
			}
			if a.Expires <= a.DateTime || a.Reserve <= a.InitialBid {
				t.Fatalf("event %d: auction %+v", n, a)
			}
		case nexmark.KindBid:
			b := ev.Bid
			if x := b.Auction - 1000; x < max(la-100, 0) || x > la+10 {
				t.Fatalf("event %d: auction %d outside [%d, %d]", n, b.Auction, 1000+max(la-100, 0), 1000+la+10)
			}
			if x := b.Bidder - 1000; x < max(lp+1-1000, 0) || x > lp+10 {
				t.Fatalf("event %d: bidder %d outside [%d, %d]", n, b.Bidder, 1000+max(lp+1-1000, 0), 1000+lp+10)
			}
		}
	}
}

func TestHotKeys(t *testing.T) {
	t.Parallel()
	t.Logf("seed %d", testSeed)
	e := mustEvents(t, nexmark.Config{Seed: testSeed})
	var auctions, hotSellers, bids, hotAuctions, hotBidders int
	for n := range int64(100_000) {
		ev := e.Event(n)
		switch ev.Kind {
		case nexmark.KindAuction:
			auctions++
			if ev.Auction.Seller == 1000+lastPerson(n)/100*100 {
				hotSellers++
			}
		case nexmark.KindBid:
			bids++
			if ev.Bid.Auction == 1000+lastAuction(n)/100*100 {
				hotAuctions++
			}
			if ev.Bid.Bidder == 1000+lastPerson(n)/100*100+1 {
				hotBidders++
			}
		case nexmark.KindPerson:
		}
	}
	for _, c := range []struct {
		name      string
		hits, of  int
		want, tol float64
	}{
		{"hot sellers", hotSellers, auctions, 0.75, 0.03},
		{"hot auctions", hotAuctions, bids, 0.5, 0.01},
		{"hot bidders", hotBidders, bids, 0.75, 0.01},
	} {
		if got := float64(c.hits) / float64(c.of); math.Abs(got-c.want) > c.tol {
			t.Errorf("%s: %.4f of %d, want %.2f ± %.2f", c.name, got, c.of, c.want, c.tol)
		}
	}
}

func TestPrices(t *testing.T) {
	t.Parallel()
	t.Logf("seed %d", testSeed)
	e := mustEvents(t, nexmark.Config{Seed: testSeed})
	var decades [6]int
	count := 0 // 46,000 bids: a decade's share has a standard deviation of 0.0017
	check := func(n, p int64) {
		if p < 100 || p > 100_000_000 {
			t.Fatalf("event %d: price %d outside [100, 100000000]", n, p)
		}
	}
	for n := range int64(50_000) {
		ev := e.Event(n)
		switch ev.Kind {
		case nexmark.KindBid:
			p := ev.Bid.Price
			check(n, p)
			d := int(math.Floor(math.Log10(float64(p) / 100)))
			decades[min(d, 5)]++
			count++
		case nexmark.KindAuction:
			check(n, ev.Auction.InitialBid)
			check(n, ev.Auction.Reserve-ev.Auction.InitialBid)
		case nexmark.KindPerson:
		}
	}
	// Log-uniform over 6 decades: each holds about 1/6 of the bids.
	for d, c := range decades {
		if got := float64(c) / float64(count); math.Abs(got-1.0/6) > 0.01 {
			t.Errorf("decade [$%g, $%g): %.4f of bids, want 1/6 ± 0.01 (all: %v)",
				math.Pow(10, float64(d)), math.Pow(10, float64(d+1)), got, decades)
		}
	}
}

// TestAverageSizes checks the reference's size accounting: 8 bytes per
// number, strings by length, with channel and url not counted for bids and
// dateTime not counted for people (as the reference does).
func TestAverageSizes(t *testing.T) {
	t.Parallel()
	e := mustEvents(t, nexmark.Config{Seed: testSeed})
	var sum, cnt [3]int
	for n := range int64(100_000) {
		ev := e.Event(n)
		var size int
		switch ev.Kind {
		case nexmark.KindPerson:
			p := ev.Person
			size = 8 + len(p.Name) + len(p.EmailAddress) + len(p.CreditCard) + len(p.City) + len(p.State) + len(p.Extra)
		case nexmark.KindAuction:
			a := ev.Auction
			size = 8 + len(a.ItemName) + len(a.Description) + 5*8 + len(a.Extra)
		case nexmark.KindBid:
			size = 4*8 + len(ev.Bid.Extra)
		}
		sum[ev.Kind] += size
		cnt[ev.Kind]++
	}
	for k, want := range [3]float64{200, 500, 100} {
		if got := float64(sum[k]) / float64(cnt[k]); math.Abs(got-want) > want/10 {
			t.Errorf("%v: average size %.1f bytes, want %v ± 10%%", nexmark.Kind(k), got, want)
		}
	}
}

func TestEventTimes(t *testing.T) {
	t.Parallel()
	base := time.Date(2030, 5, 6, 7, 8, 9, 10_000_000, time.UTC)
	for _, c := range []struct {
		name string
		cfg  nexmark.Config
	}{
		{"default", nexmark.Config{}},
		{"10M/s parallel", nexmark.Config{BaseTime: base, Instances: 3}},
		{"1/s", nexmark.Config{BaseTime: base, EventsPerSecond: 1}},
		{"3/s", nexmark.Config{BaseTime: base, EventsPerSecond: 3}},
		{"7919/s", nexmark.Config{BaseTime: base, EventsPerSecond: 7919}},
		{"1e12/s", nexmark.Config{BaseTime: base, EventsPerSecond: 1e12}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := mustEvents(t, c.cfg)
			cfg := e.Config()
			baseMs := cfg.BaseTime.UnixMilli()
			for _, n := range []int64{0, 1, 2, 9_999, 10_000, 12_345_678, 99_999_999, 1 << 40, 1 << 53, math.MaxInt64 / 1024} {
				// BaseTime + n × 1e6/rate µs, truncated to ms, exactly.
				us := new(big.Int).Div(new(big.Int).Mul(big.NewInt(n), big.NewInt(1_000_000)), big.NewInt(cfg.EventsPerSecond))
				want := new(big.Int).Add(big.NewInt(baseMs), us.Div(us, big.NewInt(1000)))
				if !want.IsInt64() {
					continue
				}
				if got := e.DateTime(n); got != want.Int64() {
					t.Errorf("DateTime(%d) = %d, want %d", n, got, want.Int64())
				}
			}
			for n := range int64(200) {
				ev := e.Event(n)
				var got int64
				switch ev.Kind {
				case nexmark.KindPerson:
					got = ev.Person.DateTime
				case nexmark.KindAuction:
					got = ev.Auction.DateTime
				case nexmark.KindBid:
					got = ev.Bid.DateTime
				}
				if got != e.DateTime(n) {
					t.Fatalf("event %d: dateTime %d, want %d", n, got, e.DateTime(n))
				}
			}
		})
	}
	// NEXMARK.md: 100 M events at 10 M/s span 10 s of event time.
	e := mustEvents(t, nexmark.Config{})
	if span := e.DateTime(100_000_000) - e.DateTime(0); span != 10_000 {
		t.Errorf("100 M events span %d ms, want 10000", span)
	}
	if got, want := e.DateTime(0), nexmark.DefaultBaseTime().UnixMilli(); got != want {
		t.Errorf("DateTime(0) = %d, want the default base time %d", got, want)
	}
}

func TestDeterminism(t *testing.T) {
	t.Parallel()
	t.Logf("seed %d", testSeed)
	a := mustEvents(t, nexmark.Config{Seed: testSeed})
	b := mustEvents(t, nexmark.Config{Seed: testSeed})
	other := mustEvents(t, nexmark.Config{Seed: testSeed + 1})
	const events = 5000
	// Generate b in reverse order: an event depends on (seed, n) only.
	fromB := make([]nexmark.Event, events)
	for n := int64(events - 1); n >= 0; n-- {
		fromB[n] = b.Event(n)
	}
	differ := 0
	for n := range int64(events) {
		ev := a.Event(n)
		if !reflect.DeepEqual(ev, fromB[n]) {
			t.Fatalf("event %d differs between two generators with seed %d:\n%+v\n%+v", n, testSeed, ev, fromB[n])
		}
		if !reflect.DeepEqual(ev, other.Event(n)) {
			differ++
		}
	}
	// Persons with a different seed differ in name, email, card...; bids in
	// price and extra: essentially all events differ.
	if differ < events*99/100 {
		t.Errorf("only %d of %d events differ between seeds %d and %d", differ, events, testSeed, testSeed+1)
	}
}

func TestChannels(t *testing.T) {
	t.Parallel()
	e := mustEvents(t, nexmark.Config{Seed: testSeed})
	hot := map[string]string{"Google": "", "Facebook": "", "Baidu": "", "Apple": ""}
	var bids, hotBids, withID int
	for n := range int64(50_000) {
		ev := e.Event(n)
		if ev.Kind != nexmark.KindBid {
			continue
		}
		bids++
		b := ev.Bid
		if !strings.HasPrefix(b.URL, "https://www.nexmark.com/") || !strings.Contains(b.URL, "/item.htm?query=1") {
			t.Fatalf("event %d: url %q", n, b.URL)
		}
		if url, ok := hot[b.Channel]; ok {
			hotBids++
			if url != "" && url != b.URL {
				t.Fatalf("hot channel %s has urls %q and %q", b.Channel, url, b.URL)
			}
			hot[b.Channel] = b.URL
			continue
		}
		if !strings.HasPrefix(b.Channel, "channel-") {
			t.Fatalf("event %d: channel %q", n, b.Channel)
		}
		if strings.Contains(b.URL, "&channel_id=") {
			withID++
		}
	}
	if got := float64(hotBids) / float64(bids); math.Abs(got-0.5) > 0.02 {
		t.Errorf("%.3f of bids on hot channels, want 1/2", got)
	}
	if got := float64(withID) / float64(bids-hotBids); math.Abs(got-0.9) > 0.03 {
		t.Errorf("%.3f of channel urls carry a channel_id, want 9/10", got)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		cfg  nexmark.Config
		ok   bool
	}{
		{"zero is all defaults", nexmark.Config{}, true},
		{"negative seed is a seed", nexmark.Config{Seed: -5}, true},
		{"negative rate", nexmark.Config{EventsPerSecond: -1}, false},
		{"rate too high", nexmark.Config{EventsPerSecond: 1e13}, false},
		{"negative events", nexmark.Config{NumEvents: -1}, false},
		{"negative instances", nexmark.Config{Instances: -2}, false},
		{"negative active people", nexmark.Config{ActivePeople: -1}, false},
		{"negative in-flight auctions", nexmark.Config{InFlightAuctions: -1}, false},
		{"negative hot ratio", nexmark.Config{HotBiddersRatio: -1}, false},
		{"negative size", nexmark.Config{AvgBidBytes: -1}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := c.cfg.Validate()
			if c.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok=%v", err, c.ok)
			}
			if err != nil && !errors.Is(err, nexmark.ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, not ErrInvalidConfig", err)
			}
			if _, err2 := nexmark.NewEvents(c.cfg); (err2 == nil) != c.ok {
				t.Fatalf("NewEvents: %v", err2)
			}
		})
	}
	if s := (nexmark.Config{}).String(); !strings.Contains(s, "EventsPerSecond: 10000000") ||
		!strings.Contains(s, "2026-01-01T00:00:00Z") {
		t.Errorf("String() = %s, want the defaults", s)
	}
}
