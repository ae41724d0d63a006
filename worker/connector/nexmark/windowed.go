package nexmark

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// The windowed reference queries q5, q7 and q11. Like q0–q2 (queries.go)
// they are plain single-threaded loops over [ForEachBid], with no Arrow and
// no framework: the oracle the engine's results are checked against and the
// baseline of `sabot bench nexmark`.
//
// # Time and windows
//
// Windows are over the bid's DateTime (ms since the Unix epoch) and aligned
// to the epoch, as Flink's window TVFs and group windows with offset 0: the
// window of size s containing t starts at ⌊t/s⌋·s. Division is floored, so a
// BaseTime before 1970 gets windows like any other. Windows are half-open,
// [start, end), and a window with no bids produces no rows (as in Flink).
//
// # Closing windows (the out-of-orderness bound)
//
// The generator emits bids in DateTime order: event n's time BaseTime +
// ⌊n·1000/EventsPerSecond⌋ ms never decreases with n, so neither the whole
// stream ([ForEachBid]) nor any one generator instance (events i, i+P, …)
// ever goes back in time. The out-of-orderness bound is therefore 0, and the
// reference's watermark is simply the latest DateTime seen: a window is
// emitted as soon as a bid at (or, where the end is inclusive, past) its end
// arrives, and the end of the stream closes everything still open (Flink's
// final watermark on bounded input). State holds only the open windows, so
// memory does not grow with the length of the run: at the default 10 M
// events/s, about 1.2 M auction counts per 2 s pane for q5 (5 panes live),
// a few rows for q7, and one entry per bidder seen in the last 10 s for q11.
// If the generator ever produced a bid earlier than one before it, these
// results would be wrong, so the references panic instead ("nexmark: bids
// out of order").
//
// # Reuse
//
// Rows are passed to fn in the documented order. Q7Row is passed by pointer
// and, with its Extra, reused for the next row: copy what must outlive the
// call. Nothing is allocated per event; maps and buffers grow to the size of
// the open windows and are reused after that.

// Window shapes of the queries, as in Flink-Nexmark's SQL.
const (
	// Q5WindowSize and Q5WindowSlide are q5's HOP window: 10 s long, one
	// starting every 2 s, so each bid is in 5 windows.
	Q5WindowSize  = 10 * time.Second
	Q5WindowSlide = 2 * time.Second
	// Q7WindowSize is q7's TUMBLE window.
	Q7WindowSize = 10 * time.Second
	// Q11SessionGap is q11's SESSION window gap.
	Q11SessionGap = 10 * time.Second
)

const (
	q5SlideMs = int64(Q5WindowSlide / time.Millisecond)
	// q5Panes is the number of slides (panes) per q5 window.
	q5Panes  = int64(Q5WindowSize / Q5WindowSlide)
	q7SizeMs = int64(Q7WindowSize / time.Millisecond)
	q11GapMs = int64(Q11SessionGap / time.Millisecond)
)

// Q5Row is a row of q5, hot items: an auction with the most bids in a HOP
// window. Flink's q5 selects (auction, num); the window bounds are included
// so that rows of different windows can be told apart.
type Q5Row struct {
	Auction int64
	// Num is the auction's bid count in the window, which is the maximum
	// count of any auction in that window.
	Num int64
	// WindowStart and WindowEnd bound the window [WindowStart, WindowEnd),
	// in ms since the Unix epoch: multiples of 2 s, 10 s apart.
	WindowStart int64
	WindowEnd   int64
}

// Q7Row is a row of q7, highest bid: Flink's SELECT B.auction, B.price,
// B.bidder, B.dateTime, B.extra, plus the end of the window whose maximum
// price the bid matched (the join's B1.dateTime, which Flink does not
// project; see [ReferenceQ7] for why one bid can match two windows).
type Q7Row struct {
	Auction  int64
	Price    int64 // cents
	Bidder   int64
	DateTime int64 // ms since the Unix epoch
	// Extra aliases a buffer reused for the next row: copy it to keep it.
	Extra []byte
	// WindowEnd is the (exclusive) end of the TUMBLE window, ms since the
	// Unix epoch.
	WindowEnd int64
}

// Q11Row is a row of q11, user sessions: Flink's SELECT bidder, count(*),
// SESSION_START, SESSION_END ... GROUP BY bidder, SESSION(dateTime, 10 s).
type Q11Row struct {
	Bidder   int64
	BidCount int64
	// SessionStart is the time of the session's first bid; SessionEnd that
	// of its last bid plus 10 s (Flink's exclusive session window end). Both
	// ms since the Unix epoch.
	SessionStart int64
	SessionEnd   int64
}

// ReferenceQ5 is Nexmark q5, hot items: for every HOP window of 10 s
// sliding by 2 s (a bid at t is in the five windows [s, s+10 s) with s a
// multiple of 2 s and s ≤ t < s+10 s), the auctions whose bid count in the
// window equals the window's maximum count — Flink's join of AuctionBids
// with MaxBids on the window and num >= maxn. Rows come in order of window
// end, then auction id. Errors as [ForEachBid].
func ReferenceQ5(cfg Config, fn func(Q5Row)) error {
	q := newHotItems(fn)
	if err := ForEachBid(cfg, func(_ int64, b *Bid) { q.add(b.DateTime, b.Auction) }); err != nil {
		return err
	}
	q.flush()
	return nil
}

// ReferenceQ7 is Nexmark q7, highest bid, with Flink-Nexmark's join
// exactly: the maximum price of each TUMBLE 10 s window [end-10 s, end) is
// joined back to the bids with that price and end-10 s ≤ dateTime ≤ end —
// both ends inclusive, as the SQL's BETWEEN says. So the rows of a window
// are its own bids at its maximum price and, after them, any bid placed at
// exactly its end (the first instant of the next window) at that same
// price; such a bid is also a row of its own window if it is that window's
// maximum. Rows come in order of window end, then event order; WindowEnd
// tells the windows apart. Errors as [ForEachBid].
func ReferenceQ7(cfg Config, fn func(*Q7Row)) error {
	q := newHighestBid(fn)
	if err := ForEachBid(cfg, func(_ int64, b *Bid) { q.add(b) }); err != nil {
		return err
	}
	q.flush()
	return nil
}

// ReferenceQ11 is Nexmark q11, user sessions: per bidder, SESSION windows
// with a 10 s gap. As in Flink, each bid makes a window [t, t+10 s) and a
// bidder's windows merge when they intersect, where Flink's
// TimeWindow.intersects counts windows that merely touch (a.start ≤ b.end
// and a.end ≥ b.start): two consecutive bids of a bidder are in one session
// if the later is at most 10 s after the earlier (t' ≤ t + 10 s, not <).
// A row per session; rows come in order of session end, then bidder.
// Errors as [ForEachBid].
func ReferenceQ11(cfg Config, fn func(Q11Row)) error {
	q := newSessions(fn)
	if err := ForEachBid(cfg, func(_ int64, b *Bid) { q.add(b.DateTime, b.Bidder) }); err != nil {
		return err
	}
	q.flush()
	return nil
}

// floorDiv returns ⌊a/b⌋ for b > 0 (Go's / truncates towards zero).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// checkOrder panics if t is earlier than *last, the latest time seen, and
// records t. Every reference relies on bids arriving in DateTime order
// (see the note on the out-of-orderness bound above).
func checkOrder(last *int64, t int64) {
	if t < *last {
		panic(fmt.Sprintf("nexmark: bids out of order: dateTime %d after %d; the windowed references assume in-order bids", t, *last))
	}
	*last = t
}

// hotItems computes q5 incrementally. Counts are kept per pane (one 2 s
// slide) rather than per window, so each bid updates one map instead of
// five; a window's count for an auction is the sum over its five panes.
// Pane p is [p·2 s, (p+1)·2 s), and window e (named by its end pane) is
// panes e-5 .. e-1, i.e. [(e-5)·2 s, e·2 s).
type hotItems struct {
	emit func(Q5Row)
	last int64 // the latest DateTime seen
	any  bool  // some bid has been seen
	cur  int64 // the latest pane with bids, if any
	// Pane p lives in panes[p mod q5Panes]; a slot whose idx is not p holds
	// a dead pane (counts are cleared when the slot is taken over).
	panes [q5Panes]q5Pane
	top   []int64 // scratch: the auctions at the maximum count
}

type q5Pane struct {
	idx    int64
	counts map[int64]int64 // auction → bids in the pane
}

func newHotItems(emit func(Q5Row)) *hotItems {
	h := &hotItems{emit: emit, last: math.MinInt64}
	for i := range h.panes {
		h.panes[i] = q5Pane{idx: math.MinInt64, counts: make(map[int64]int64)}
	}
	return h
}

func (h *hotItems) slot(p int64) *q5Pane { return &h.panes[p-floorDiv(p, q5Panes)*q5Panes] }

// pane returns pane p's counts, or nil if it has no bids (or is no longer
// held).
func (h *hotItems) pane(p int64) map[int64]int64 {
	if s := h.slot(p); s.idx == p {
		return s.counts
	}
	return nil
}

func (h *hotItems) add(t, auction int64) {
	checkOrder(&h.last, t)
	p := floorDiv(t, q5SlideMs)
	switch {
	case !h.any:
		h.any, h.cur = true, p
	case p > h.cur:
		// A bid in pane p means no more bids before p·2 s: every window
		// ending by then is complete.
		h.closeThrough(p)
		h.cur = p
	}
	s := h.slot(p)
	if s.idx != p {
		// The slot's pane p-5 (or older) is in no open window any more.
		clear(s.counts)
		s.idx = p
	}
	s.counts[auction]++
}

// closeThrough emits, in order, the windows not yet emitted that end by
// pane e's start (e·2 s): windows h.cur+1 .. e (windows up to h.cur were
// emitted when h.cur became current). Windows past h.cur+q5Panes hold only
// panes after h.cur, which are empty, so the loop stops there.
func (h *hotItems) closeThrough(e int64) {
	for w := h.cur + 1; w <= min(e, h.cur+q5Panes); w++ {
		h.emitWindow(w)
	}
}

// flush emits every window still open: all windows holding pane h.cur.
func (h *hotItems) flush() {
	if h.any {
		h.closeThrough(h.cur + q5Panes)
		h.any = false
	}
}

// emitWindow emits window e's auctions at its maximum count, by auction id.
func (h *hotItems) emitWindow(e int64) {
	var ps [q5Panes]map[int64]int64 // nil for an empty pane: lookups give 0
	for i := range ps {
		ps[i] = h.pane(e - q5Panes + int64(i))
	}
	var best int64
	h.top = h.top[:0]
	for i, m := range ps {
	auctions:
		for a, n := range m {
			// Count each auction once, at the first pane that has it.
			for _, earlier := range ps[:i] {
				if _, ok := earlier[a]; ok {
					continue auctions
				}
			}
			for _, later := range ps[i+1:] {
				n += later[a]
			}
			if n > best {
				best, h.top = n, h.top[:0]
			}
			if n == best {
				h.top = append(h.top, a)
			}
		}
	}
	if best == 0 {
		return
	}
	slices.Sort(h.top)
	end := e * q5SlideMs
	for _, a := range h.top {
		h.emit(Q5Row{Auction: a, Num: best, WindowStart: end - q5Panes*q5SlideMs, WindowEnd: end})
	}
}

// highestBid computes q7 incrementally. cur is the window of the latest
// bid; prev the window before it, complete but still waiting for bids at
// exactly its end (which the inclusive join matches too). A window is
// emitted once a bid later than its end arrives, or at the end of the
// stream.
type highestBid struct {
	emit      func(*Q7Row)
	last      int64 // the latest DateTime seen
	cur, prev q7Window
	row       Q7Row // the row passed to emit
}

type q7Window struct {
	open bool
	end  int64 // exclusive end, ms
	top  int64 // the highest price in the window so far
	// rows are the window's bids at price top, in event order, then (once
	// complete) the bids at exactly end with that price. Their Extra
	// buffers are owned and reused.
	rows []Q7Row
}

func newHighestBid(emit func(*Q7Row)) *highestBid {
	return &highestBid{emit: emit, last: math.MinInt64}
}

func (h *highestBid) add(b *Bid) {
	t := b.DateTime
	checkOrder(&h.last, t)
	if h.prev.open && t > h.prev.end {
		h.emitWindow(&h.prev)
	}
	if h.cur.open && t >= h.cur.end {
		// cur is complete. prev is closed: its end is at least 10 s before
		// cur's, so before t. Swap (keeping both row buffers).
		h.cur, h.prev = h.prev, h.cur
		if t > h.prev.end {
			h.emitWindow(&h.prev)
		}
	}
	if h.prev.open && t == h.prev.end && b.Price == h.prev.top {
		h.prev.push(b)
	}
	w := &h.cur
	if !w.open {
		w.open, w.end, w.top, w.rows = true, (floorDiv(t, q7SizeMs)+1)*q7SizeMs, math.MinInt64, w.rows[:0]
	}
	if b.Price > w.top {
		w.top, w.rows = b.Price, w.rows[:0]
	}
	if b.Price == w.top {
		w.push(b)
	}
}

func (h *highestBid) flush() {
	if h.prev.open {
		h.emitWindow(&h.prev)
	}
	if h.cur.open {
		h.emitWindow(&h.cur)
	}
}

func (h *highestBid) emitWindow(w *q7Window) {
	for i := range w.rows {
		h.row = w.rows[i]
		h.emit(&h.row)
	}
	w.open, w.rows = false, w.rows[:0]
}

// push appends b to w's rows, reusing a slot's Extra buffer when it can.
func (w *q7Window) push(b *Bid) {
	n := len(w.rows)
	if n < cap(w.rows) {
		w.rows = w.rows[:n+1]
	} else {
		w.rows = append(w.rows, Q7Row{})
	}
	r := &w.rows[n]
	*r = Q7Row{
		Auction: b.Auction, Price: b.Price, Bidder: b.Bidder, DateTime: b.DateTime,
		Extra: append(r.Extra[:0], b.Extra...), WindowEnd: w.end,
	}
}

// sessions computes q11 incrementally. Each bidder has at most one open
// session (bids are in order, so a bid either extends it or comes after it
// has closed). A session can take no more bids once a bid later than its
// end is seen; it is then emitted. To find those in order of (end, bidder)
// without touching a heap per bid, each open session has one timer in a
// min-heap, keyed by the session's end when the timer was set: a timer that
// comes due while its session has since been extended is re-armed at the
// new end, so most sessions are re-armed about once however many bids they
// take.
type sessions struct {
	emit   func(Q11Row)
	last   int64         // the latest DateTime seen
	open   map[int64]int // bidder → index in slab
	slab   []q11Session
	free   []int      // free slab indexes
	timers []q11Timer // min-heap on (end, bidder)
}

type q11Session struct {
	bidder, start, last, count int64
}

type q11Timer struct {
	end, bidder int64
}

func newSessions(emit func(Q11Row)) *sessions {
	return &sessions{emit: emit, last: math.MinInt64, open: make(map[int64]int)}
}

func (s *sessions) add(t, bidder int64) {
	checkOrder(&s.last, t)
	s.fire(t)
	if i, ok := s.open[bidder]; ok {
		// Not fired, so the session's end (last + gap) ≥ t: the windows
		// touch or overlap and merge.
		ss := &s.slab[i]
		ss.last = t
		ss.count++
		return
	}
	var i int
	if n := len(s.free); n > 0 {
		i, s.free = s.free[n-1], s.free[:n-1]
	} else {
		i = len(s.slab)
		s.slab = append(s.slab, q11Session{})
	}
	s.slab[i] = q11Session{bidder: bidder, start: t, last: t, count: 1}
	s.open[bidder] = i
	s.push(q11Timer{end: t + q11GapMs, bidder: bidder})
}

// fire emits, in order of (end, bidder), every session ending before t.
func (s *sessions) fire(t int64) {
	for len(s.timers) > 0 && s.timers[0].end < t {
		top := s.timers[0]
		i := s.open[top.bidder]
		ss := &s.slab[i]
		if end := ss.last + q11GapMs; end != top.end {
			// Extended since the timer was set: re-arm. The new end is
			// later, so the heap's order of what is emitted still holds.
			s.timers[0].end = end
			s.down(0)
			continue
		}
		s.emit(Q11Row{Bidder: ss.bidder, BidCount: ss.count, SessionStart: ss.start, SessionEnd: top.end})
		delete(s.open, top.bidder)
		s.free = append(s.free, i)
		s.pop()
	}
}

func (s *sessions) flush() { s.fire(math.MaxInt64) }

// The timer heap, by hand: container/heap would box every timer in an
// interface.

func (a q11Timer) before(b q11Timer) bool {
	return a.end < b.end || a.end == b.end && a.bidder < b.bidder
}

func (s *sessions) push(x q11Timer) {
	s.timers = append(s.timers, x)
	h := s.timers
	for i := len(h) - 1; i > 0; {
		parent := (i - 1) / 2
		if !h[i].before(h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func (s *sessions) pop() {
	n := len(s.timers) - 1
	s.timers[0] = s.timers[n]
	s.timers = s.timers[:n]
	s.down(0)
}

func (s *sessions) down(i int) {
	h := s.timers
	for {
		least := i
		if l := 2*i + 1; l < len(h) && h[l].before(h[least]) {
			least = l
		}
		if r := 2*i + 2; r < len(h) && h[r].before(h[least]) {
			least = r
		}
		if least == i {
			return
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
}
