package nexmark

// The reference queries below are straightforward single-threaded loops
// over the generated bids, with no Arrow and no framework: the oracle the
// engine's q0–q2 results are checked against, and the baseline the
// benchmarks compare with. They generate events 0 .. NumEvents-1 (all
// instances' events, in order) and call fn once per output row, in event
// order. The row passed to fn, and its Extra, are reused for the next row:
// copy what must outlive the call. They allocate nothing per event.

// Q0Row is a row of q0 and, with Price in euros, the columns of q1: Flink's
// SELECT auction, bidder, price, dateTime, extra FROM bid.
type Q0Row struct {
	Auction  int64
	Bidder   int64
	Price    int64 // cents
	DateTime int64 // ms since the Unix epoch
	Extra    []byte
}

// Q1Row is a row of q1: the bid with its price converted by × 0.908.
type Q1Row struct {
	Auction int64
	Bidder  int64
	// Price is 0.908 × price as float64 (see [ReferenceQ1] on rounding).
	Price    float64
	DateTime int64
	Extra    []byte
}

// Q2Row is a row of q2: SELECT auction, price FROM bid WHERE
// MOD(auction, 123) = 0.
type Q2Row struct {
	Auction int64
	Price   int64
}

// ForEachBid calls fn for every bid among events 0 .. cfg.NumEvents-1 with
// its event number, in order, ignoring cfg.Instances (the union of all
// instances). b is reused (see the note above). It fails with
// [ErrInvalidConfig] or, for an unbounded cfg, [ErrUnbounded].
func ForEachBid(cfg Config, fn func(n int64, b *Bid)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.NumEvents == 0 {
		return ErrUnbounded
	}
	e, err := NewEvents(cfg)
	if err != nil {
		return err
	}
	var (
		row bidRow
		b   Bid
	)
	for n := range cfg.NumEvents {
		if KindOf(n) != KindBid {
			continue
		}
		e.bidInto(n, &row)
		e.fillBid(&row, &b)
		fn(n, &b)
	}
	return nil
}

// ReferenceQ0 is Nexmark q0, the pass-through: every bid's (auction,
// bidder, price, dateTime, extra). Errors as [ForEachBid].
func ReferenceQ0(cfg Config, fn func(*Q0Row)) error {
	var r Q0Row
	return ForEachBid(cfg, func(_ int64, b *Bid) {
		r = Q0Row{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, DateTime: b.DateTime, Extra: b.Extra}
		fn(&r)
	})
}

// ReferenceQ1 is Nexmark q1, currency conversion: every bid with price
// × 0.908. Flink's q1 multiplies the BIGINT price by the DECIMAL(4, 3)
// literal 0.908, an exact DECIMAL equal to price × 908 / 1000; here the
// result is the float64 product 0.908 × float64(price), which is within one
// ulp of that decimal (prices < 2^53 are exact in float64). Compare with a
// relative tolerance of 1e-15, or compare price × 908 exactly. Errors as
// [ForEachBid].
func ReferenceQ1(cfg Config, fn func(*Q1Row)) error {
	var r Q1Row
	return ForEachBid(cfg, func(_ int64, b *Bid) {
		r = Q1Row{Auction: b.Auction, Bidder: b.Bidder, Price: Q1Price(b.Price), DateTime: b.DateTime, Extra: b.Extra}
		fn(&r)
	})
}

// Q1Price is q1's conversion of a price: 0.908 × price as float64.
func Q1Price(price int64) float64 { return 0.908 * float64(price) }

// ReferenceQ2 is Nexmark q2, selection: the (auction, price) of every bid
// whose auction id is a multiple of 123. Errors as [ForEachBid].
func ReferenceQ2(cfg Config, fn func(Q2Row)) error {
	return ForEachBid(cfg, func(_ int64, b *Bid) {
		if b.Auction%123 == 0 {
			fn(Q2Row{Auction: b.Auction, Price: b.Price})
		}
	})
}
