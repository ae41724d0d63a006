package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
)

// timerQueue is one time domain's timers: a bucket of timers per
// timestamp, and a min-heap of the timestamps that have a bucket.
//
// A bucket keeps its timers' rows in one byte slice, a pointer-free entry
// per registration (end of the row, key group, tombstone flag) and an
// open-addressing hash set of entry numbers, so a million timers at a
// window end are a handful of large objects that the garbage collector
// does not scan, and no timer has an allocation of its own.
//
// Firing visits a bucket in key order (key group, then row: the order of
// the stored keys), sorting its entries once when it starts to fire
// unless they were registered in that order; entries added while it fires
// go to a small heap merged with the sorted run. So the next timer fired
// is always the smallest pending (timestamp, key group, row), exactly as
// with one heap of all timers, at the cost of a sort per bucket instead
// of a heap operation per timer.
type timerQueue struct {
	// t persists the timers (pebble); nil when the queue is the table
	// (heapTimers).
	t       table
	seed    maphash.Seed
	heap    []heapSlot      // min-heap by ts
	byTS    map[int64]int32 // timestamp → bucket
	buckets []timerBucket   // slab; free slots are listed in free
	free    []int32

	// the bucket of the last lookup (consecutive registrations are mostly
	// at one timestamp), or lastB = -1
	lastTS int64
	lastB  int32

	colBuf [tsLen]byte
}

type heapSlot struct {
	ts int64
	b  int32 // bucket
}

// timerBucket holds the timers of one timestamp. Every registration
// appends an entry; the entries of fired and deleted timers become
// tombstones (dead), left out of the set when it is rebuilt.
type timerBucket struct {
	ts   int64
	rows []byte     // the entries' rows, concatenated
	ents []timerEnt // in registration order
	set  []setSlot  // open addressing, linear probing; len is 0 or a power of two
	used int        // set slots in use
	live int        // entries not dead
	hidx int        // position in the heap

	// sorted: ents are in key order (so far, before the bucket starts).
	sorted bool
	// Once started (firing began), the entries present then are the main
	// run, visited in key order: ents[order[pos]], or ents[pos] when
	// sorted. Later entries wait in late, a min-heap in key order.
	started bool
	main    int
	pos     int
	order   []uint32
	late    []uint32
}

// timerEnt is a bucket entry: its row is rows[previous entry's end:end].
type timerEnt struct {
	end  uint32
	kg   uint16
	dead bool
}

// setSlot is a slot of a bucket's set: the entry's hash and its number
// plus one (0: empty).
type setSlot struct {
	h uint32
	e uint32
}

// entry returns entry i and its row (valid until the bucket changes).
func (b *timerBucket) entry(i int) (timerEnt, []byte) {
	start := uint32(0)
	if i > 0 {
		start = b.ents[i-1].end
	}
	e := b.ents[i]
	return e, b.rows[start:e.end]
}

// less orders entries i and j by key group, then row.
func (b *timerBucket) less(i, j int) bool {
	ei, ri := b.entry(i)
	ej, rj := b.entry(j)
	if ei.kg != ej.kg {
		return ei.kg < ej.kg
	}
	return bytes.Compare(ri, rj) < 0
}

// find returns the live entry for (kg, row) with hash h, or -1.
func (b *timerBucket) find(kg uint16, row []byte, h uint32) int {
	if len(b.set) == 0 {
		return -1
	}
	mask := uint32(len(b.set) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := b.set[i]
		if s.e == 0 {
			return -1
		}
		if s.h != h {
			continue
		}
		// A dead entry may share the key of a live one registered later:
		// keep probing past it.
		e, r := b.entry(int(s.e - 1))
		if !e.dead && e.kg == kg && bytes.Equal(r, row) {
			return int(s.e - 1)
		}
	}
}

// insert adds entry e with hash h to the set, growing it to keep the load
// at most 3/4.
func (b *timerBucket) insert(e int, h uint32) {
	if (b.used+1)*4 > len(b.set)*3 {
		b.rehash(max(8, 2*b.live+2))
	}
	mask := uint32(len(b.set) - 1)
	i := h & mask
	for b.set[i].e != 0 {
		i = (i + 1) & mask
	}
	b.set[i] = setSlot{h: h, e: uint32(e) + 1}
	b.used++
}

// rehash rebuilds the set with room for n live entries, dropping the
// dead ones.
func (b *timerBucket) rehash(n int) {
	size := 8
	for size*3 < n*4 {
		size *= 2
	}
	old := b.set
	if len(old) == 0 && cap(old) >= size {
		b.set = old[:size] // a reused bucket's cleared set
	} else {
		b.set = make([]setSlot, size)
	}
	b.used = 0
	mask := uint32(size - 1)
	for _, s := range old {
		if s.e == 0 || b.ents[s.e-1].dead {
			continue
		}
		i := s.h & mask
		for b.set[i].e != 0 {
			i = (i + 1) & mask
		}
		b.set[i] = s
		b.used++
	}
}

// keepBucketCap is the largest bucket (in entries) whose slices a
// released bucket keeps for reuse: buckets of a few timers come and go
// all the time (one timer per timestamp), while a window end's bucket of
// a million keys is better returned to the allocator.
const keepBucketCap = 1024

func newTimerQueue(t table) *timerQueue {
	return &timerQueue{t: t, seed: maphash.MakeSeed(), byTS: make(map[int64]int32), lastB: -1}
}

// loadTimerQueue indexes the timers stored in t (restore).
func loadTimerQueue(t table) (*timerQueue, error) {
	q := newTimerQueue(t)
	err := t.scanAll(func(kg uint16, row, col, _ []byte) error {
		if len(col) != tsLen {
			return fmt.Errorf("%w: timer column of %d bytes", ErrCorrupt, len(col))
		}
		_, err := q.index(kg, row, readTimestamp(col))
		return err
	})
	return q, err
}

func (q *timerQueue) hash(kg uint16, row []byte) uint32 {
	h := maphash.Bytes(q.seed, row) ^ uint64(kg)*0x9e3779b97f4a7c15
	return uint32(h ^ h>>32)
}

func (q *timerQueue) next() (int64, bool) {
	if len(q.heap) == 0 {
		return 0, false
	}
	return q.heap[0].ts, true
}

// lookup returns the bucket of ts, or -1.
func (q *timerQueue) lookup(ts int64) int32 {
	if q.lastB >= 0 && q.lastTS == ts {
		return q.lastB
	}
	bi, ok := q.byTS[ts]
	if !ok {
		return -1
	}
	q.lastTS, q.lastB = ts, bi
	return bi
}

// bucket returns the bucket of ts, creating it.
func (q *timerQueue) bucket(ts int64) int32 {
	if bi := q.lookup(ts); bi >= 0 {
		return bi
	}
	var bi int32
	if n := len(q.free); n > 0 {
		bi = q.free[n-1]
		q.free = q.free[:n-1]
	} else {
		bi = int32(len(q.buckets))
		q.buckets = append(q.buckets, timerBucket{})
	}
	b := &q.buckets[bi]
	b.ts, b.sorted = ts, true
	q.byTS[ts] = bi
	q.push(bi)
	q.lastTS, q.lastB = ts, bi
	return bi
}

// has reports whether the timer is pending.
func (q *timerQueue) has(kg uint16, row []byte, ts int64) bool {
	bi := q.lookup(ts)
	return bi >= 0 && q.buckets[bi].find(kg, row, q.hash(kg, row)) >= 0
}

// index adds the timer to the index unless it is there; it reports
// whether it was absent.
func (q *timerQueue) index(kg uint16, row []byte, ts int64) (bool, error) {
	h := q.hash(kg, row)
	bi := q.bucket(ts)
	b := &q.buckets[bi]
	if b.find(kg, row, h) >= 0 {
		return false, nil
	}
	end := len(b.rows) + len(row)
	if end > math.MaxUint32 {
		if b.live == 0 {
			q.release(bi) // just created
		}
		return false, fmt.Errorf("state: more than 4 GiB of timer keys at timestamp %d", ts)
	}
	b.rows = append(b.rows, row...)
	b.ents = append(b.ents, timerEnt{end: uint32(end), kg: kg})
	b.live++
	i := len(b.ents) - 1
	b.insert(i, h)
	switch {
	case b.started:
		b.pushLate(uint32(i))
	case b.sorted && i > 0:
		b.sorted = !b.less(i, i-1)
	}
	return true, nil
}

// add registers a timer: indexed, and stored when the queue has a table.
func (q *timerQueue) add(kg uint16, row []byte, ts int64) error {
	if q.t != nil && q.has(kg, row, ts) {
		return nil
	}
	if q.t != nil {
		if err := q.t.set(kg, row, appendTimestamp(q.colBuf[:0], ts), nil); err != nil {
			return err
		}
	}
	_, err := q.index(kg, row, ts)
	return err
}

// remove deletes a timer if it is pending; its entry becomes a tombstone.
func (q *timerQueue) remove(kg uint16, row []byte, ts int64) error {
	bi := q.lookup(ts)
	if bi < 0 {
		return nil
	}
	i := q.buckets[bi].find(kg, row, q.hash(kg, row))
	if i < 0 {
		return nil
	}
	return q.kill(bi, i)
}

// kill deletes the timer of live entry i of bucket bi: from the table,
// then from the index, releasing the bucket when it was its last.
func (q *timerQueue) kill(bi int32, i int) error {
	b := &q.buckets[bi]
	if q.t != nil {
		e, row := b.entry(i)
		if err := q.t.del(e.kg, row, appendTimestamp(q.colBuf[:0], b.ts)); err != nil {
			return err
		}
	}
	b.ents[i].dead = true
	if b.live--; b.live == 0 {
		q.release(bi)
	}
	return nil
}

// pop returns the smallest pending (timestamp, key group, row) at or
// before upTo: its bucket and entry, which stays live. ok is false when
// there is none.
func (q *timerQueue) pop(upTo int64) (bi int32, i int, ok bool) {
	for len(q.heap) > 0 {
		bi = q.heap[0].b
		b := &q.buckets[bi]
		if b.ts > upTo {
			return 0, 0, false
		}
		if !b.started {
			b.start()
		}
		for {
			i, ok = b.take()
			if !ok {
				break
			}
			if !b.ents[i].dead {
				return bi, i, true
			}
		}
		// A bucket is released with its last live entry; here only
		// tombstones were left (dropKeyGroups keeps the count right, so
		// this is defensive).
		q.release(bi)
	}
	return 0, 0, false
}

// start makes the bucket's entries its main run, in key order.
func (b *timerBucket) start() {
	b.started, b.main, b.pos = true, len(b.ents), 0
	if b.sorted {
		return
	}
	// Sort 16-byte prefixes of key group | row (zero-padded: the order of
	// two different prefixes is the order of the full keys) and compare
	// rows only on ties: a million entries sort in a tenth of a second,
	// without touching the rows at random.
	type sortKey struct {
		hi, lo uint64
		i      uint32
	}
	keys := make([]sortKey, 0, b.live)
	var p [16]byte
	for i := range b.ents {
		e, row := b.entry(i)
		if e.dead {
			continue
		}
		clear(p[:])
		binary.BigEndian.PutUint16(p[:], e.kg)
		copy(p[2:], row)
		keys = append(keys, sortKey{binary.BigEndian.Uint64(p[:8]), binary.BigEndian.Uint64(p[8:]), uint32(i)})
	}
	slices.SortFunc(keys, func(x, y sortKey) int {
		switch {
		case x.hi != y.hi:
			return cmpUint64(x.hi, y.hi)
		case x.lo != y.lo:
			return cmpUint64(x.lo, y.lo)
		}
		_, rx := b.entry(int(x.i))
		_, ry := b.entry(int(y.i))
		return bytes.Compare(rx, ry)
	})
	b.order = slices.Grow(b.order[:0], len(keys))
	for _, k := range keys {
		b.order = append(b.order, k.i)
	}
	b.main = len(b.order)
}

func cmpUint64(x, y uint64) int {
	if x < y {
		return -1
	}
	return 1
}

// take consumes the next entry of a started bucket in key order (it may
// be dead).
func (b *timerBucket) take() (int, bool) {
	next := -1
	if b.pos < b.main {
		next = b.pos
		if !b.sorted {
			next = int(b.order[b.pos])
		}
	}
	if len(b.late) > 0 && (next < 0 || b.less(int(b.late[0]), next)) {
		return int(b.popLate()), true
	}
	if next < 0 {
		return 0, false
	}
	b.pos++
	return next, true
}

func (b *timerBucket) pushLate(i uint32) {
	b.late = append(b.late, i)
	for j := len(b.late) - 1; j > 0; {
		p := (j - 1) / 2
		if !b.less(int(b.late[j]), int(b.late[p])) {
			break
		}
		b.late[j], b.late[p] = b.late[p], b.late[j]
		j = p
	}
}

func (b *timerBucket) popLate() uint32 {
	top := b.late[0]
	n := len(b.late) - 1
	b.late[0] = b.late[n]
	b.late = b.late[:n]
	for j := 0; ; {
		c := 2*j + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && b.less(int(b.late[r]), int(b.late[c])) {
			c = r
		}
		if !b.less(int(b.late[c]), int(b.late[j])) {
			break
		}
		b.late[j], b.late[c] = b.late[c], b.late[j]
		j = c
	}
	return top
}

// release drops bucket bi: out of the heap and the index, its slot freed.
func (q *timerQueue) release(bi int32) {
	b := &q.buckets[bi]
	q.removeAt(b.hidx)
	delete(q.byTS, b.ts)
	if q.lastB == bi {
		q.lastB = -1
	}
	if cap(b.ents) <= keepBucketCap {
		clear(b.set)
		*b = timerBucket{rows: b.rows[:0], ents: b.ents[:0], set: b.set[:0], order: b.order[:0], late: b.late[:0]}
	} else {
		*b = timerBucket{}
	}
	q.free = append(q.free, bi)
}

// each calls fn for every pending timer, bucket by bucket in no
// particular order.
func (q *timerQueue) each(fn func(kg uint16, row []byte, ts int64) error) error {
	for _, s := range q.heap {
		b := &q.buckets[s.b]
		for i := range b.ents {
			if e, row := b.entry(i); !e.dead {
				if err := fn(e.kg, row, b.ts); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// dropKeyGroups deletes the pending timers in key groups r from the index
// (not from q.t).
func (q *timerQueue) dropKeyGroups(r KeyGroupRange) {
	var empty []int32
	for _, s := range q.heap {
		b := &q.buckets[s.b]
		for i := range b.ents {
			if e := &b.ents[i]; !e.dead && r.Contains(e.kg) {
				e.dead = true
				b.live--
			}
		}
		if b.live == 0 {
			empty = append(empty, s.b)
		}
	}
	for _, bi := range empty {
		q.release(bi)
	}
}

// The heap of timestamps: a binary min-heap of slots, each bucket knowing
// its position (hidx) so that a bucket emptied by deletions leaves at
// once.

func (q *timerQueue) push(bi int32) {
	q.heap = append(q.heap, heapSlot{ts: q.buckets[bi].ts, b: bi})
	i := len(q.heap) - 1
	q.buckets[bi].hidx = i
	q.up(i)
}

func (q *timerQueue) removeAt(i int) {
	n := len(q.heap) - 1
	if i != n {
		q.swap(i, n)
	}
	q.heap = q.heap[:n]
	if i != n {
		q.down(i)
		q.up(i)
	}
}

func (q *timerQueue) swap(i, j int) {
	h := q.heap
	h[i], h[j] = h[j], h[i]
	q.buckets[h[i].b].hidx = i
	q.buckets[h[j].b].hidx = j
}

func (q *timerQueue) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if q.heap[p].ts <= q.heap[i].ts {
			return
		}
		q.swap(i, p)
		i = p
	}
}

func (q *timerQueue) down(i int) {
	n := len(q.heap)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if r := c + 1; r < n && q.heap[r].ts < q.heap[c].ts {
			c = r
		}
		if q.heap[i].ts <= q.heap[c].ts {
			return
		}
		q.swap(i, c)
		i = c
	}
}
