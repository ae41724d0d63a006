package nexmark

import (
	"fmt"
	"time"
)

// Defaults of the knobs in [Config]. They are the reference generator's
// (nexmark/nexmark NexmarkConfiguration, with Flink-Nexmark's nexmark.yaml
// rate of 10 M events/s) and the values NEXMARK.md restates.
const (
	DefaultEventsPerSecond  = 10_000_000
	DefaultInstances        = 1
	DefaultActivePeople     = 1000
	DefaultInFlightAuctions = 100
	DefaultHotSellersRatio  = 4
	DefaultHotAuctionRatio  = 2
	DefaultHotBiddersRatio  = 4
	DefaultAvgPersonBytes   = 200
	DefaultAvgAuctionBytes  = 500
	DefaultAvgBidBytes      = 100
)

// Fixed rules of the reference generator that this package does not make
// configurable (NEXMARK.md "Events").
const (
	// FirstPersonID is the id of the first person; person ids are dense
	// from it.
	FirstPersonID = 1000
	// FirstAuctionID is the id of the first auction; auction ids are dense
	// from it.
	FirstAuctionID = 1000
	// FirstCategoryID is the lowest auction category; categories are
	// FirstCategoryID .. FirstCategoryID+NumCategories-1 (10..14).
	FirstCategoryID = 10
	// NumCategories is the number of auction categories.
	NumCategories = 5

	// PersonProportion, AuctionProportion and BidProportion split every
	// block of TotalProportion consecutive event numbers: offset 0 is a
	// person, 1..3 auctions, 4..49 bids.
	PersonProportion  = 1
	AuctionProportion = 3
	BidProportion     = 46
	TotalProportion   = PersonProportion + AuctionProportion + BidProportion

	// WatermarkDelay is the reference watermark's lag behind dateTime
	// (Flink-Nexmark's DDL: WATERMARK FOR dateTime AS dateTime - 4 s). The
	// generator itself is in order; the constant is here for sources.
	WatermarkDelay = 4 * time.Second

	// Ids handed out ahead of the last created person/auction, so that a
	// bid or auction may refer to one "about to be" created (the
	// reference's PERSON_ID_LEAD / AUCTION_ID_LEAD).
	personIDLead  = 10
	auctionIDLead = 10
	// Hot sellers/bidders/auctions are the round multiples of these of the
	// latest id (the reference's HOT_*_RATIO constants, not the ratios in
	// Config, which set how often a hot one is picked).
	hotGroup = 100

	// Bid channels: 1 in hotChannelsRatio bids use one of the hot
	// channels, the rest channel-<k> with k < numChannels.
	hotChannelsRatio = 2
	numHotChannels   = 4
	numChannels      = 10_000

	// maxEventsPerSecond keeps (n mod rate) × 1000 within int64 in the
	// event-time formula.
	maxEventsPerSecond = 1_000_000_000_000
)

// DefaultBaseTime returns the event time of event 0 when Config.BaseTime is
// zero: 2026-01-01T00:00:00Z. The reference uses the wall clock at start-up;
// a fixed epoch makes runs and their query results reproducible.
func DefaultBaseTime() time.Time { return time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC) }

// Config parameterises the generator. Zero fields take the documented
// default (Seed 0 is a seed like any other); [Config.Validate] rejects
// negative values. Two generators with equal resolved configs produce the
// same events.
type Config struct {
	// Seed selects the stream: every event's random draws come from a
	// generator seeded by (Seed, event number) only, so the event set does
	// not depend on how the stream is split among instances, batch sizes or
	// the order in which events are generated. Equal seeds give equal
	// streams; different seeds give unrelated ones.
	Seed int64
	// EventsPerSecond is the reference's first_event_rate: the overall event
	// rate of the whole (possibly parallel) source in event time. Event n
	// has dateTime BaseTime + n × 1e6/EventsPerSecond µs, truncated to ms.
	// Default DefaultEventsPerSecond (10 M/s: 100 M events span 10 s).
	EventsPerSecond int64
	// BaseTime is the event time of event 0, truncated to milliseconds.
	// Default DefaultBaseTime().
	BaseTime time.Time
	// NumEvents bounds the stream to events 0 .. NumEvents-1 over all
	// instances; 0 means unbounded.
	NumEvents int64
	// Instances is the number of parallel generator instances of the
	// source; instance i generates events i, i+Instances, i+2×Instances, …
	// Default 1.
	Instances int

	// ActivePeople bounds the people a random seller or bidder is drawn
	// from: the latest ActivePeople ids (plus a lead of 10). Default 1000.
	ActivePeople int
	// InFlightAuctions is the number of auctions a random bid is drawn
	// from (the latest ones, plus a lead of 10), and sets the auction
	// length. Default 100.
	InFlightAuctions int
	// HotSellersRatio: all but 1 in HotSellersRatio auctions go to the hot
	// seller. Default 4 (3 in 4).
	HotSellersRatio int
	// HotAuctionRatio: all but 1 in HotAuctionRatio bids go to the hot
	// auction. Default 2 (1 in 2).
	HotAuctionRatio int
	// HotBiddersRatio: all but 1 in HotBiddersRatio bids come from the hot
	// bidder. Default 4 (3 in 4).
	HotBiddersRatio int
	// AvgPersonBytes, AvgAuctionBytes and AvgBidBytes are the average
	// record sizes the extra column pads to, in the reference's accounting
	// (see the package doc). Defaults 200, 500, 100.
	AvgPersonBytes  int
	AvgAuctionBytes int
	AvgBidBytes     int
}

// withDefaults returns c with zero fields replaced by their defaults and
// BaseTime truncated to milliseconds.
func (c Config) withDefaults() Config {
	setInt64 := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	setInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	setInt64(&c.EventsPerSecond, DefaultEventsPerSecond)
	if c.BaseTime.IsZero() {
		c.BaseTime = DefaultBaseTime()
	}
	c.BaseTime = c.BaseTime.Truncate(time.Millisecond)
	setInt(&c.Instances, DefaultInstances)
	setInt(&c.ActivePeople, DefaultActivePeople)
	setInt(&c.InFlightAuctions, DefaultInFlightAuctions)
	setInt(&c.HotSellersRatio, DefaultHotSellersRatio)
	setInt(&c.HotAuctionRatio, DefaultHotAuctionRatio)
	setInt(&c.HotBiddersRatio, DefaultHotBiddersRatio)
	setInt(&c.AvgPersonBytes, DefaultAvgPersonBytes)
	setInt(&c.AvgAuctionBytes, DefaultAvgAuctionBytes)
	setInt(&c.AvgBidBytes, DefaultAvgBidBytes)
	return c
}

// Validate reports the first contradiction in c, wrapping
// [ErrInvalidConfig]. Zero fields are valid (they mean the default).
func (c Config) Validate() error {
	bad := func(field string, v any) error {
		return fmt.Errorf("%w: %s must not be negative, got %v", ErrInvalidConfig, field, v)
	}
	switch {
	case c.EventsPerSecond < 0:
		return bad("EventsPerSecond", c.EventsPerSecond)
	case c.EventsPerSecond > maxEventsPerSecond:
		return fmt.Errorf("%w: EventsPerSecond must be at most %d, got %d", ErrInvalidConfig, int64(maxEventsPerSecond), c.EventsPerSecond)
	case c.NumEvents < 0:
		return bad("NumEvents", c.NumEvents)
	case c.Instances < 0:
		return bad("Instances", c.Instances)
	case c.ActivePeople < 0:
		return bad("ActivePeople", c.ActivePeople)
	case c.InFlightAuctions < 0:
		return bad("InFlightAuctions", c.InFlightAuctions)
	case c.HotSellersRatio < 0:
		return bad("HotSellersRatio", c.HotSellersRatio)
	case c.HotAuctionRatio < 0:
		return bad("HotAuctionRatio", c.HotAuctionRatio)
	case c.HotBiddersRatio < 0:
		return bad("HotBiddersRatio", c.HotBiddersRatio)
	case c.AvgPersonBytes < 0:
		return bad("AvgPersonBytes", c.AvgPersonBytes)
	case c.AvgAuctionBytes < 0:
		return bad("AvgAuctionBytes", c.AvgAuctionBytes)
	case c.AvgBidBytes < 0:
		return bad("AvgBidBytes", c.AvgBidBytes)
	}
	return nil
}

// String describes the resolved config (defaults filled in). Nothing in it
// is secret.
func (c Config) String() string {
	r := c.withDefaults()
	return fmt.Sprintf("nexmark.Config{Seed: %d, EventsPerSecond: %d, BaseTime: %s, NumEvents: %d, Instances: %d, "+
		"ActivePeople: %d, InFlightAuctions: %d, HotRatios(seller/auction/bidder): %d/%d/%d, AvgBytes(person/auction/bid): %d/%d/%d}",
		r.Seed, r.EventsPerSecond, r.BaseTime.UTC().Format(time.RFC3339Nano), r.NumEvents, r.Instances,
		r.ActivePeople, r.InFlightAuctions, r.HotSellersRatio, r.HotAuctionRatio, r.HotBiddersRatio,
		r.AvgPersonBytes, r.AvgAuctionBytes, r.AvgBidBytes)
}
