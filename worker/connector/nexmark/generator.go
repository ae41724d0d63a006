package nexmark

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Generator produces one instance's share of the event stream as Arrow
// record batches: instance i of Config.Instances generates events i,
// i+Instances, i+2×Instances, … below Config.NumEvents (if bounded), in
// order. The union over all instances is exactly the single-instance stream.
//
// A Generator is not safe for concurrent use; run one per source subtask.
// Its builders are reused from batch to batch, and generating allocates
// nothing beyond the Arrow buffers themselves (bids are written straight
// into them, with no builder). Batches it returns are owned by the caller,
// who must Release them; Release the Generator when done. Every buffer
// comes from the allocator given to NewGenerator, so one that recycles
// freed buffers makes steady-state generation allocation-free.
type Generator struct {
	ev       *Events
	instance int64
	step     int64 // Config.Instances
	next     int64 // the next event number this instance generates
	end      int64 // no event number ≥ end is generated

	// Writers, builders and scratch rows, created on first use of each
	// kind.
	mem      memory.Allocator
	bids     *bidWriter
	persons  *personBuilder
	auctions *auctionBuilder
	bid      bidRow
	person   personRow
	auction  auctionRow
}

// NewGenerator returns the generator of the given instance (0 ≤ instance <
// Config.Instances, after defaults) of cfg's stream, positioned at its first
// event. Arrow buffers come from mem (memory.DefaultAllocator if nil). It
// fails, wrapping [ErrInvalidConfig], if cfg is invalid or instance out of
// range.
func NewGenerator(cfg Config, instance int, mem memory.Allocator) (*Generator, error) {
	ev, err := NewEvents(cfg)
	if err != nil {
		return nil, err
	}
	return ev.NewGenerator(instance, mem)
}

// NewGenerator is [NewGenerator] sharing e's tables (generators of one
// source can share one Events).
func (e *Events) NewGenerator(instance int, mem memory.Allocator) (*Generator, error) {
	if instance < 0 || instance >= e.cfg.Instances {
		return nil, fmt.Errorf("%w: instance %d out of range [0, %d)", ErrInvalidConfig, instance, e.cfg.Instances)
	}
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	g := &Generator{
		ev:       e,
		instance: int64(instance),
		step:     int64(e.cfg.Instances),
		next:     int64(instance),
		end:      e.cfg.NumEvents,
		mem:      mem,
	}
	if g.end == 0 {
		// Unbounded: stop short of int64 overflow (after ~29,000 years of
		// event time at 10 M/s).
		g.end = math.MaxInt64 - g.step
	}
	return g, nil
}

// Events returns the event space the generator draws from.
func (g *Generator) Events() *Events { return g.ev }

// Offset returns the number of the next event the generator will produce
// (of any kind); every event of this instance below it has been produced.
// It is the generator's whole state: checkpoint it and [Generator.SetOffset] to
// it on restore.
func (g *Generator) Offset() int64 { return g.next }

// SetOffset positions the generator at the first event of this instance whose
// number is ≥ n (n < 0 counts as 0).
func (g *Generator) SetOffset(n int64) {
	if n <= g.instance {
		g.next = g.instance
		return
	}
	// Round up to the next number ≡ instance (mod step).
	if r := (n - g.instance) % g.step; r != 0 {
		n += g.step - r
	}
	g.next = n
}

// Done reports whether the generator has produced all its events (never,
// for an unbounded stream).
func (g *Generator) Done() bool { return g.next >= g.end }

// NextBids returns a batch of up to maxRows bids ([BidSchema]), generating
// events in order and skipping (but counting) persons and auctions, and
// whether the instance is done. A batch has fewer than maxRows rows only
// when done; it may then be empty. Batches are never nil. maxRows < 1 is
// treated as 1.
func (g *Generator) NextBids(maxRows int) (arrow.RecordBatch, bool) {
	maxRows = max(maxRows, 1)
	if g.bids == nil {
		g.bids = newBidWriter(g.mem, g.ev)
	}
	w := g.bids
	w.start(maxRows)
	for w.rows < maxRows && g.next < g.end {
		n := g.next
		g.next += g.step
		if KindOf(n) != KindBid {
			continue
		}
		r, extra := g.ev.bidHead(n, &g.bid)
		w.append(&g.bid, &r, extra)
	}
	return w.finish(), g.next >= g.end
}

// Batches holds the events of one [Generator.Next] call, one batch per
// kind (any may be empty, none is nil).
type Batches struct {
	Persons  arrow.RecordBatch // PersonSchema
	Auctions arrow.RecordBatch // AuctionSchema
	Bids     arrow.RecordBatch // BidSchema
}

// Release releases the three batches.
func (b Batches) Release() {
	b.Persons.Release()
	b.Auctions.Release()
	b.Bids.Release()
}

// Rows returns the total number of rows of the three batches.
func (b Batches) Rows() int64 { return b.Persons.NumRows() + b.Auctions.NumRows() + b.Bids.NumRows() }

// Next generates the next maxEvents events of this instance (fewer only
// when done; maxEvents < 1 is treated as 1) into one batch per kind, and
// reports whether the instance is done. Within each batch rows are in event
// order; across kinds, order is by DateTime then kind as in the stream.
func (g *Generator) Next(maxEvents int) (Batches, bool) {
	maxEvents = max(maxEvents, 1)
	if g.bids == nil {
		g.bids = newBidWriter(g.mem, g.ev)
	}
	if g.persons == nil {
		g.persons = newPersonBuilder(g.mem)
		g.auctions = newAuctionBuilder(g.mem)
	}
	// Reserve for the expected share; appends below grow as needed.
	g.bids.start(maxEvents*BidProportion/TotalProportion + 1)
	for i := 0; i < maxEvents && g.next < g.end; i++ {
		n := g.next
		g.next += g.step
		switch KindOf(n) {
		case KindPerson:
			g.ev.personInto(n, &g.person)
			g.persons.append(&g.person)
		case KindAuction:
			g.ev.auctionInto(n, &g.auction)
			g.auctions.append(&g.auction)
		case KindBid:
			r, extra := g.ev.bidHead(n, &g.bid)
			g.bids.append(&g.bid, &r, extra)
		}
	}
	return Batches{
		Persons:  g.persons.rb.NewRecordBatch(),
		Auctions: g.auctions.rb.NewRecordBatch(),
		Bids:     g.bids.finish(),
	}, g.next >= g.end
}

// Release releases the generator's builders. Batches already returned stay
// valid. The generator must not be used afterwards.
func (g *Generator) Release() {
	g.bids = nil // holds no buffers between calls
	if g.persons != nil {
		g.persons.rb.Release()
		g.auctions.rb.Release()
		g.persons, g.auctions = nil, nil
	}
}

type personBuilder struct {
	rb                                          *array.RecordBuilder
	id                                          *array.Int64Builder
	name, email, creditCard, city, state, extra *array.StringBuilder
	dateTime                                    *array.TimestampBuilder
}

func newPersonBuilder(mem memory.Allocator) *personBuilder {
	rb := array.NewRecordBuilder(mem, PersonSchema())
	return &personBuilder{
		rb:         rb,
		id:         rb.Field(personID).(*array.Int64Builder),
		name:       rb.Field(personName).(*array.StringBuilder),
		email:      rb.Field(personEmail).(*array.StringBuilder),
		creditCard: rb.Field(personCreditCard).(*array.StringBuilder),
		city:       rb.Field(personCity).(*array.StringBuilder),
		state:      rb.Field(personState).(*array.StringBuilder),
		dateTime:   rb.Field(personDateTime).(*array.TimestampBuilder),
		extra:      rb.Field(personExtra).(*array.StringBuilder),
	}
}

func (b *personBuilder) append(r *personRow) {
	b.id.Append(r.id)
	b.name.BinaryBuilder.Append(r.name)
	b.email.BinaryBuilder.Append(r.email)
	b.creditCard.BinaryBuilder.Append(r.card)
	b.city.BinaryBuilder.Append(r.city)
	b.state.BinaryBuilder.Append(r.state)
	b.dateTime.Append(arrow.Timestamp(r.dateTime))
	b.extra.BinaryBuilder.Append(r.extra)
}

type auctionBuilder struct {
	rb                                        *array.RecordBuilder
	id, initialBid, reserve, seller, category *array.Int64Builder
	itemName, description, extra              *array.StringBuilder
	dateTime, expires                         *array.TimestampBuilder
}

func newAuctionBuilder(mem memory.Allocator) *auctionBuilder {
	rb := array.NewRecordBuilder(mem, AuctionSchema())
	return &auctionBuilder{
		rb:          rb,
		id:          rb.Field(auctionID).(*array.Int64Builder),
		itemName:    rb.Field(auctionItemName).(*array.StringBuilder),
		description: rb.Field(auctionDescription).(*array.StringBuilder),
		initialBid:  rb.Field(auctionInitialBid).(*array.Int64Builder),
		reserve:     rb.Field(auctionReserve).(*array.Int64Builder),
		dateTime:    rb.Field(auctionDateTime).(*array.TimestampBuilder),
		expires:     rb.Field(auctionExpires).(*array.TimestampBuilder),
		seller:      rb.Field(auctionSeller).(*array.Int64Builder),
		category:    rb.Field(auctionCategory).(*array.Int64Builder),
		extra:       rb.Field(auctionExtra).(*array.StringBuilder),
	}
}

func (b *auctionBuilder) append(r *auctionRow) {
	b.id.Append(r.id)
	b.itemName.BinaryBuilder.Append(r.itemName)
	b.description.BinaryBuilder.Append(r.description)
	b.initialBid.Append(r.initialBid)
	b.reserve.Append(r.reserve)
	b.dateTime.Append(arrow.Timestamp(r.dateTime))
	b.expires.Append(arrow.Timestamp(r.expires))
	b.seller.Append(r.seller)
	b.category.Append(r.category)
	b.extra.BinaryBuilder.Append(r.extra)
}
