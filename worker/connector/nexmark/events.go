package nexmark

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
)

// Kind is the type of an event: every event number has exactly one.
type Kind uint8

// The event kinds, by event number n: n%50 == 0 is a person, 1..3 an
// auction, 4..49 a bid.
const (
	KindPerson Kind = iota
	KindAuction
	KindBid
)

// String returns "person", "auction" or "bid".
func (k Kind) String() string {
	switch k {
	case KindPerson:
		return "person"
	case KindAuction:
		return "auction"
	case KindBid:
		return "bid"
	default:
		return "Kind(" + strconv.Itoa(int(k)) + ")"
	}
}

// KindOf returns the kind of event n (n ≥ 0). It does not depend on the
// config: person : auction : bid is always 1 : 3 : 46.
func KindOf(n int64) Kind {
	switch off := n % TotalProportion; {
	case off < PersonProportion:
		return KindPerson
	case off < PersonProportion+AuctionProportion:
		return KindAuction
	default:
		return KindBid
	}
}

// Person is a new user of the auction site (Flink-Nexmark's person row).
type Person struct {
	ID           int64
	Name         string
	EmailAddress string
	CreditCard   string
	City         string
	State        string
	// DateTime is the event time, ms since the Unix epoch (UTC).
	DateTime int64
	// Extra pads the record to Config.AvgPersonBytes on average.
	Extra []byte
}

// Auction is a new item put up for auction (Flink-Nexmark's auction row).
type Auction struct {
	ID          int64
	ItemName    string
	Description string
	// InitialBid and Reserve are in cents; Reserve = InitialBid + another
	// random price.
	InitialBid int64
	Reserve    int64
	// DateTime is the event time, Expires the end of the auction, both ms
	// since the Unix epoch (UTC).
	DateTime int64
	Expires  int64
	Seller   int64
	Category int64
	// Extra pads the record to Config.AvgAuctionBytes on average.
	Extra []byte
}

// Bid is a bid on an auction (Flink-Nexmark's bid row).
type Bid struct {
	Auction int64
	Bidder  int64
	// Price is in cents, in [100, 100_000_000].
	Price   int64
	Channel string
	URL     string
	// DateTime is the event time, ms since the Unix epoch (UTC).
	DateTime int64
	// Extra pads the record to Config.AvgBidBytes on average. In
	// [ForEachBid] and the reference queries it aliases a buffer reused for
	// the next bid; copy it to keep it.
	Extra []byte
}

// Event is one generated event: Kind says which of Person, Auction and Bid
// is set; the other two are nil.
type Event struct {
	Number  int64
	Kind    Kind
	Person  *Person
	Auction *Auction
	Bid     *Bid
}

// Events is the deterministic event space of one [Config]: event n is a
// pure function of (config, n). It holds read-only tables built once (the
// bid channels and their URLs), so it is safe for concurrent use and cheap
// to share.
type Events struct {
	cfg    Config // resolved: defaults filled in
	key    uint64 // per-event random streams derive from it
	baseMs int64
	rate   int64
	// horizonEvents is the number of events in which InFlightAuctions
	// auctions are created: an auction's length averages its span.
	horizonEvents int64

	// Channel c is hot channel c for c < numHotChannels, else
	// channel-(c-numHotChannels). Its name is chanBytes[off[2c]:off[2c+1]],
	// its URL chanBytes[off[2c+1]:off[2c+2]]; chanStr holds the same bytes
	// as a string so Bid's string fields need no allocation.
	chanBytes []byte
	chanStr   string
	chanOff   []int32

	firstNames, lastNames, cities, states [][]byte
}

// NewEvents validates cfg and builds its event space.
func NewEvents(cfg Config) (*Events, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	e := &Events{
		cfg:           cfg,
		key:           seedKey(cfg.Seed, 0x6e65786d61726b31), // "nexmark1"
		baseMs:        cfg.BaseTime.UnixMilli(),
		rate:          cfg.EventsPerSecond,
		horizonEvents: int64(cfg.InFlightAuctions) * TotalProportion / AuctionProportion,
		firstNames:    byteTable("Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"),
		lastNames:     byteTable("Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"),
		cities: byteTable("Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond",
			"Seattle", "Kent", "Cheyenne"),
		states: byteTable("AZ", "CA", "ID", "OR", "WA", "WY"),
	}
	e.buildChannels(cfg.Seed)
	return e, nil
}

func byteTable(s ...string) [][]byte {
	t := make([][]byte, len(s))
	for i, v := range s {
		t[i] = []byte(v)
	}
	return t
}

// buildChannels fills the channel table. The reference draws the four hot
// URLs and each channel's URL from an unseeded java.util.Random the first
// time it is used; here channel c's URL is drawn from (seed, c), so it is
// the same in every instance and every run with the seed.
func (e *Events) buildChannels(seed int64) {
	const total = numHotChannels + numChannels
	key := seedKey(seed, 0x6e65786d61726b32) // "nexmark2"
	buf := make([]byte, 0, total*80)
	off := make([]int32, 0, 2*total+1)
	hot := [numHotChannels]string{"Google", "Facebook", "Baidu", "Apple"}
	for c := range total {
		off = append(off, int32(len(buf)))
		if c < numHotChannels {
			buf = append(buf, hot[c]...)
		} else {
			buf = strconv.AppendInt(append(buf, "channel-"...), int64(c-numHotChannels), 10)
		}
		off = append(off, int32(len(buf)))
		r := newRNG(key, int64(c))
		buf = append(buf, "https://www.nexmark.com/"...)
		for range 3 {
			buf = appendRandString(buf, &r, 5, '_')
			buf = append(buf, '/')
		}
		buf = append(buf, "item.htm?query=1"...)
		// 9 in 10 non-hot channels carry their id, bit-reversed as the
		// reference does (Math.abs(Integer.reverse(k)), int32 wrap-around
		// included).
		if k := c - numHotChannels; k >= 0 && r.intn(10) > 0 {
			v := int32(bits.Reverse32(uint32(k)))
			if v < 0 {
				v = -v
			}
			buf = strconv.AppendInt(append(buf, "&channel_id="...), int64(v), 10)
		}
	}
	off = append(off, int32(len(buf)))
	e.chanBytes, e.chanStr, e.chanOff = buf, string(buf), off
}

func (e *Events) channelName(c int) string { return e.chanStr[e.chanOff[2*c]:e.chanOff[2*c+1]] }
func (e *Events) channelURL(c int) string  { return e.chanStr[e.chanOff[2*c+1]:e.chanOff[2*c+2]] }
func (e *Events) channelNameBytes(c int) []byte {
	return e.chanBytes[e.chanOff[2*c]:e.chanOff[2*c+1]]
}
func (e *Events) channelURLBytes(c int) []byte {
	return e.chanBytes[e.chanOff[2*c+1]:e.chanOff[2*c+2]]
}

// Config returns the resolved config: defaults filled in, BaseTime
// truncated to milliseconds.
func (e *Events) Config() Config { return e.cfg }

// DateTime returns the event time of event n in ms since the Unix epoch:
// BaseTime + ⌊n × 1e6 / EventsPerSecond⌋ µs, truncated to ms — computed
// exactly in integers as BaseTime + ⌊n × 1000 / EventsPerSecond⌋ ms.
func (e *Events) DateTime(n int64) int64 {
	q, r := n/e.rate, n%e.rate
	return e.baseMs + q*1000 + r*1000/e.rate
}

// Event returns event n (n ≥ 0). It allocates; generators use the
// allocation-free internals.
func (e *Events) Event(n int64) Event {
	ev := Event{Number: n, Kind: KindOf(n)}
	switch ev.Kind {
	case KindPerson:
		var row personRow
		e.personInto(n, &row)
		ev.Person = &Person{
			ID: row.id, Name: string(row.name), EmailAddress: string(row.email), CreditCard: string(row.card),
			City: string(row.city), State: string(row.state), DateTime: row.dateTime, Extra: row.extra,
		}
	case KindAuction:
		var row auctionRow
		e.auctionInto(n, &row)
		ev.Auction = &Auction{
			ID: row.id, ItemName: string(row.itemName), Description: string(row.description),
			InitialBid: row.initialBid, Reserve: row.reserve, DateTime: row.dateTime, Expires: row.expires,
			Seller: row.seller, Category: row.category, Extra: row.extra,
		}
	case KindBid:
		var row bidRow
		e.bidInto(n, &row)
		ev.Bid = &Bid{}
		e.fillBid(&row, ev.Bid)
	default:
		panic(fmt.Sprintf("nexmark: KindOf(%d) = %v", n, ev.Kind))
	}
	return ev
}

// fillBid copies row into b; Extra aliases row's buffer.
func (e *Events) fillBid(row *bidRow, b *Bid) {
	*b = Bid{
		Auction: row.auction, Bidder: row.bidder, Price: row.price,
		Channel: e.channelName(row.channel), URL: e.channelURL(row.channel),
		DateTime: row.dateTime, Extra: row.extra,
	}
}

// The rows below are the generator's scratch records. Their byte slices are
// reused from event to event (truncated and appended to), so generating
// into a row allocates nothing once the buffers have grown.

type personRow struct {
	id                int64
	name, email, card []byte
	city, state       []byte // alias Events tables
	dateTime          int64
	extra             []byte
}

type auctionRow struct {
	id                    int64
	itemName, description []byte
	initialBid, reserve   int64
	dateTime, expires     int64
	seller, category      int64
	extra                 []byte
}

type bidRow struct {
	auction, bidder, price int64
	channel                int // index into the channel table
	dateTime               int64
	extra                  []byte
}

// lastPerson returns the base-0 id of the latest person created at or
// before event n (the reference's lastBase0PersonId).
func lastPerson(n int64) int64 {
	epoch, off := n/TotalProportion, n%TotalProportion
	if off >= PersonProportion {
		off = PersonProportion - 1
	}
	return epoch*PersonProportion + off
}

// lastAuction returns the base-0 id of the latest auction created at or
// before event n (the reference's lastBase0AuctionId); -1 before the first.
func lastAuction(n int64) int64 {
	epoch, off := n/TotalProportion, n%TotalProportion
	switch {
	case off < PersonProportion:
		epoch--
		off = AuctionProportion - 1
	case off >= PersonProportion+AuctionProportion:
		off = AuctionProportion - 1
	default:
		off -= PersonProportion
	}
	return epoch*AuctionProportion + off
}

// randomPerson draws a base-0 person id among the latest ActivePeople and
// the personIDLead ids not yet created (the reference's nextBase0PersonId).
func (e *Events) randomPerson(n int64, r *rng) int64 {
	people := lastPerson(n) + 1
	active := min(people, int64(e.cfg.ActivePeople))
	return people - active + int64(r.intn(uint64(active+personIDLead)))
}

// randomAuction draws a base-0 auction id among the latest InFlightAuctions
// and the auctionIDLead ids not yet created (the reference's
// nextBase0AuctionId).
func (e *Events) randomAuction(n int64, r *rng) int64 {
	last := lastAuction(n)
	lo := max(last-int64(e.cfg.InFlightAuctions), 0)
	return lo + int64(r.intn(uint64(last-lo+1+auctionIDLead)))
}

// price draws round(10^(6u) × 100) cents for u uniform in [0, 1): log-uniform
// between 1 and 1,000,000 dollars. 10^x is computed as exp(x·ln 10).
func price(r *rng) int64 {
	return int64(math.Round(math.Exp(r.float64()*(6*math.Ln10)) * 100))
}

func (e *Events) personInto(n int64, p *personRow) {
	r := newRNG(e.key, n)
	p.id = lastPerson(n) + FirstPersonID
	p.name = append(p.name[:0], e.firstNames[r.intn(uint64(len(e.firstNames)))]...)
	p.name = append(p.name, ' ')
	p.name = append(p.name, e.lastNames[r.intn(uint64(len(e.lastNames)))]...)
	p.email = appendRandString(p.email[:0], &r, 7, ' ')
	p.email = append(p.email, '@')
	p.email = appendRandString(p.email, &r, 5, ' ')
	p.email = append(p.email, ".com"...)
	p.card = p.card[:0]
	for i := range 4 {
		if i > 0 {
			p.card = append(p.card, ' ')
		}
		v := r.intn(10000)
		p.card = append(p.card, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
	}
	p.city = e.cities[r.intn(uint64(len(e.cities)))]
	p.state = e.states[r.intn(uint64(len(e.states)))]
	p.dateTime = e.DateTime(n)
	size := 8 + len(p.name) + len(p.email) + len(p.card) + len(p.city) + len(p.state)
	p.extra = appendExtra(p.extra[:0], &r, size, e.cfg.AvgPersonBytes)
}

func (e *Events) auctionInto(n int64, a *auctionRow) {
	r := newRNG(e.key, n)
	a.id = lastAuction(n) + FirstAuctionID
	if r.intn(uint64(e.cfg.HotSellersRatio)) > 0 {
		// The hot seller: the first person of the latest block of hotGroup.
		a.seller = lastPerson(n) / hotGroup * hotGroup
	} else {
		a.seller = e.randomPerson(n, &r)
	}
	a.seller += FirstPersonID
	a.category = FirstCategoryID + int64(r.intn(NumCategories))
	a.initialBid = price(&r)
	a.dateTime = e.DateTime(n)
	// Length: 1 + uniform[0, 2 × horizon) ms, the horizon being the time
	// until InFlightAuctions more auctions exist, so about that many are
	// open at once.
	horizon := e.DateTime(n+e.horizonEvents) - a.dateTime
	a.expires = a.dateTime + 1 + int64(r.intn(uint64(max(2*horizon, 1))))
	a.itemName = appendRandString(a.itemName[:0], &r, 20, ' ')
	a.description = appendRandString(a.description[:0], &r, 100, ' ')
	a.reserve = a.initialBid + price(&r)
	size := 8 + len(a.itemName) + len(a.description) + 8 + 8 + 8 + 8 + 8
	a.extra = appendExtra(a.extra[:0], &r, size, e.cfg.AvgAuctionBytes)
}

func (e *Events) bidInto(n int64, b *bidRow) {
	r, size := e.bidHead(n, b)
	b.extra = slices.Grow(b.extra[:0], size)[:size]
	fillLetters(b.extra, &r)
}

// bidHead fills every field of bid n but extra, and returns the event's
// random stream positioned at extra's letters together with extra's
// length: bidInto appends the letters to its row, the generator writes
// them straight into the Arrow buffer. Either way the bid is the same.
func (e *Events) bidHead(n int64, b *bidRow) (rng, int) {
	r := newRNG(e.key, n)
	if r.intn(uint64(e.cfg.HotAuctionRatio)) > 0 {
		// The hot auction: the first of the latest block of hotGroup.
		b.auction = lastAuction(n) / hotGroup * hotGroup
	} else {
		b.auction = e.randomAuction(n, &r)
	}
	b.auction += FirstAuctionID
	if r.intn(uint64(e.cfg.HotBiddersRatio)) > 0 {
		// The hot bidder: the second person of the latest block, so hot
		// bidders and hot sellers differ.
		b.bidder = lastPerson(n)/hotGroup*hotGroup + 1
	} else {
		b.bidder = e.randomPerson(n, &r)
	}
	b.bidder += FirstPersonID
	b.price = price(&r)
	if r.intn(hotChannelsRatio) > 0 {
		b.channel = int(r.intn(numHotChannels))
	} else {
		b.channel = numHotChannels + int(r.intn(numChannels))
	}
	b.dateTime = e.DateTime(n)
	// The reference counts the four 8-byte fields only (not channel, url).
	size := extraLen(&r, 8+8+8+8, e.cfg.AvgBidBytes)
	return r, size
}

// appendRandString appends the reference's nextString(maxLen, special):
// 3 + uniform[0, maxLen-3) characters, each special with probability 1/13
// and otherwise a uniform lower-case letter; then, as Java's trim, leading
// and trailing spaces (only) are removed.
func appendRandString(dst []byte, r *rng, maxLen int, special byte) []byte {
	start := len(dst)
	n := 3 + int(r.intn(uint64(maxLen-3)))
	for range n {
		// One draw decides both: v < 26 (1 in 13) is the special
		// character, else v%26 is a uniform letter (312 = 12 × 26).
		v := r.intn(13 * 26)
		if v < 26 {
			dst = append(dst, special)
		} else {
			dst = append(dst, byte('a'+v%26))
		}
	}
	if special != ' ' {
		return dst
	}
	end := len(dst)
	for end > start && dst[end-1] == ' ' {
		end--
	}
	lead := start
	for lead < end && dst[lead] == ' ' {
		lead++
	}
	return append(dst[:start], dst[lead:end]...)
}

// appendExtra appends the reference's nextExtra: random letters such that
// currentSize plus their count averages avgSize (see extraLen).
func appendExtra(dst []byte, r *rng, currentSize, avgSize int) []byte {
	size := extraLen(r, currentSize, avgSize)
	start := len(dst)
	dst = slices.Grow(dst, size)[:start+size]
	fillLetters(dst[start:], r)
	return dst
}

// extraLen draws the length of the reference's nextExtra: uniform in
// [d - δ, d + δ) with d = avgSize - currentSize and δ = round(d/5); 0
// when currentSize already exceeds avgSize. The letters (fillLetters) are
// drawn from r after it.
func extraLen(r *rng, currentSize, avgSize int) int {
	if currentSize > avgSize {
		return 0
	}
	d := avgSize - currentSize
	delta := (2*d + 5) / 10 // round-half-up of d × 0.2
	size := d - delta
	if delta > 0 {
		size += int(r.intn(uint64(2 * delta)))
	}
	return size
}

// fillLetters overwrites out with random lower-case letters.
func fillLetters(out []byte, r *rng) {
	// Each 64-bit draw gives four letters, one per 16-bit chunk scaled to
	// [0, 26) by multiply-shift (bias below 1 in 2,500 per letter); the
	// four are independent, so the loop is not latency-bound.
	i := 0
	for ; i+4 <= len(out); i += 4 {
		x := r.next()
		out[i] = 'a' + byte((x&0xffff)*26>>16)
		out[i+1] = 'a' + byte((x>>16&0xffff)*26>>16)
		out[i+2] = 'a' + byte((x>>32&0xffff)*26>>16)
		out[i+3] = 'a' + byte((x>>48)*26>>16)
	}
	if i < len(out) {
		x := r.next()
		for ; i < len(out); i++ {
			out[i] = 'a' + byte((x&0xffff)*26>>16)
			x >>= 16
		}
	}
}
