package state

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"slices"
	"unsafe"
)

// Heap is the in-memory backend: per registered state a table, per key
// group a Go map from the encoded row (key, namespace) to the row's slot
// in the table's slab of rows (the value or, for map state, its columns).
// Values are stored encoded, in the same byte format as pebble (so
// snapshots of both backends are identical and one codec path serves
// both); the price is a decode per read, which for the fixed-size codecs
// is a few nanoseconds and no allocation.
//
// Memory per entry is also what the garbage collector scans, so rows are
// plain values in one slab per table (no object per row; a map entry is a
// string and an int32), and a timer table is its timer queue (heapTimers):
// pending timers in per-timestamp buckets with no object per timer.
//
// Copy-on-write snapshots (next milestone) follow the layout: a snapshot
// takes the per-key-group maps of every table and marks them shared with a
// version number; a write to a shared key group first copies that group's
// map (and writes a copied row, never the shared one), so the task keeps
// writing while the snapshot is serialised from the frozen maps. The unit
// of copying is a key group, which also bounds the pause. Timer queues are
// not split by key group: a snapshot copies their pending timers (as
// IterateKeyGroups does today, to sort them by key). Today rows are
// updated in place, and TakeFullSnapshot encodes the whole state at the
// take.
type Heap struct {
	*base
	tables []heapStore
	// restored holds the tables a restore filled that no operator has
	// registered yet, by string(prefix): the kind of a state is not stored,
	// so its table is adopted when the state is registered (newTable). A
	// table is a timer queue when its name has the timer prefix (the name
	// rule makes that unambiguous), a heapTable otherwise. They are in
	// tables too, so DeleteKeyGroups reaches them, and iterate lists them.
	restored map[string]heapStore
}

var _ Backend = (*Heap)(nil)

// NewHeap returns an empty heap backend.
func NewHeap(cfg Config) (*Heap, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &Heap{}
	h.base = newBase(cfg, h)
	return h, nil
}

// heapStore is a table of the heap backend.
type heapStore interface {
	table
	// sorted prepares a walk over key groups r in key order: the function
	// it returns calls fn for every entry of key group kg, sorted by row,
	// then column; it is called with ascending key groups of r.
	sorted(r KeyGroupRange) func(kg uint16, fn func(row, col, val []byte) error) error
	// dropKeyGroups deletes every entry of key groups r.
	dropKeyGroups(r KeyGroupRange)
	// copyTo copies the entries of key groups r into c, unsorted, for a
	// snapshot (heap_snapshot.go).
	copyTo(c *heapCopy, table int, r KeyGroupRange, keep keepFunc)
}

func (h *Heap) newTable(spec *tableSpec) table {
	if t, ok := h.restored[string(spec.prefix)]; ok {
		if adopted := adopt(t, spec); adopted != nil {
			delete(h.restored, string(spec.prefix))
			return adopted
		}
	}
	var t heapStore
	if spec.kind == kindTimer {
		t = newHeapTimers(spec, h.cfg.KeyGroups)
	} else {
		t = newHeapTable(spec, h.cfg.KeyGroups)
	}
	h.tables = append(h.tables, t)
	return t
}

// view returns s's bytes without copying; the result must not be modified.
func view(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// hrow is one row of a heap table: the value of a value-like state, or
// the entries of a map state row. A row exists while it has either.
type hrow struct {
	val  []byte            // nil: no value; an empty value is non-nil
	cols map[string][]byte // map state entries
}

func (r *hrow) empty() bool { return r.val == nil && len(r.cols) == 0 }

// heapTable is the table of a value, list, reducing, aggregating or map
// state.
type heapTable struct {
	spec   *tableSpec
	start  uint16
	groups []map[string]int32 // index kg - start; row → slot in rows
	rows   []hrow             // slab; free slots are zero
	free   []int32            // free slots of rows

	// last is the most recent row lookup: a handle reads a row and then
	// writes it (Value then Update, Add), and the second lookup is a
	// comparison instead of a hash and a probe. Every change to which
	// rows exist resets it.
	last struct {
		ok   bool
		kg   uint16
		row  []byte
		slot int32 // -1: absent
	}

	// incremental cleanup cursor: the group being swept and a copy of its
	// row keys taken when the sweep entered it.
	sweepGroup int
	sweepKeys  []string
	sweepPos   int
}

func newHeapTable(spec *tableSpec, r KeyGroupRange) *heapTable {
	t := &heapTable{spec: spec, start: r.Start, groups: make([]map[string]int32, r.Len())}
	t.sweepGroup = len(t.groups) - 1
	return t
}

func (t *heapTable) group(kg uint16) map[string]int32 {
	i := int(kg) - int(t.start)
	if i < 0 || i >= len(t.groups) {
		return nil
	}
	return t.groups[i]
}

// find returns the row's slot, or -1.
func (t *heapTable) find(kg uint16, row []byte) int32 {
	if t.last.ok && t.last.kg == kg && string(t.last.row) == string(row) {
		return t.last.slot
	}
	slot, ok := t.group(kg)[string(row)]
	if !ok {
		slot = -1
	}
	t.last.ok, t.last.kg, t.last.row, t.last.slot = true, kg, append(t.last.row[:0], row...), slot
	return slot
}

// lookup returns the row, or nil.
func (t *heapTable) lookup(kg uint16, row []byte) *hrow {
	if slot := t.find(kg, row); slot >= 0 {
		return &t.rows[slot]
	}
	return nil
}

// row returns the row's slot, creating the row. The pointer is valid until
// the next row is created.
func (t *heapTable) row(kg uint16, row []byte) (*hrow, error) {
	i := int(kg) - int(t.start)
	if i < 0 || i >= len(t.groups) {
		return nil, ErrKeyGroupOutOfRange
	}
	if slot := t.find(kg, row); slot >= 0 {
		return &t.rows[slot], nil
	}
	g := t.groups[i]
	if g == nil {
		g = make(map[string]int32)
		t.groups[i] = g
	}
	var slot int32
	if n := len(t.free); n > 0 {
		slot = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		slot = int32(len(t.rows))
		t.rows = append(t.rows, hrow{})
	}
	g[string(row)] = slot
	t.last.slot = slot // find just cached this row as absent
	return &t.rows[slot], nil
}

// release deletes row rk of group g, which is at slot.
func (t *heapTable) release(g map[string]int32, rk string, slot int32) {
	delete(g, rk)
	t.rows[slot] = hrow{}
	t.free = append(t.free, slot)
	t.last.ok = false
}

func (t *heapTable) get(kg uint16, row, col []byte) ([]byte, bool, error) {
	r := t.lookup(kg, row)
	if r == nil {
		return nil, false, nil
	}
	if col == nil {
		return r.val, r.val != nil, nil
	}
	v, ok := r.cols[string(col)]
	return v, ok, nil
}

func (t *heapTable) set(kg uint16, row, col, val []byte) error {
	r, err := t.row(kg, row)
	if err != nil {
		return err
	}
	if col == nil {
		r.val = nonNil(append(r.val[:0], val...))
		return nil
	}
	if r.cols == nil {
		r.cols = make(map[string][]byte)
	}
	old := r.cols[string(col)]
	r.cols[string(col)] = append(old[:0], val...)
	return nil
}

// nonNil returns b, or an empty non-nil slice for nil: a stored empty
// value must stay distinguishable from no value.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (t *heapTable) appendElem(kg uint16, row, elem []byte) error {
	r, err := t.row(kg, row)
	if err != nil {
		return err
	}
	r.val = nonNil(append(r.val, elem...))
	return nil
}

func (t *heapTable) del(kg uint16, row, col []byte) error {
	slot := t.find(kg, row)
	if slot < 0 {
		return nil
	}
	r := &t.rows[slot]
	if col == nil {
		r.val = nil
	} else {
		delete(r.cols, string(col))
	}
	if r.empty() {
		t.release(t.group(kg), string(row), slot)
	}
	return nil
}

func (t *heapTable) delRow(kg uint16, row []byte) error {
	if slot := t.find(kg, row); slot >= 0 {
		t.release(t.group(kg), string(row), slot)
	}
	return nil
}

func (t *heapTable) scanRow(kg uint16, row []byte, fn func(col, val []byte) error) error {
	r := t.lookup(kg, row)
	if r == nil {
		return nil
	}
	// fn may delete the row's last entry (freeing the slot) or create rows
	// (moving the slab): hold the map, not r.
	for c, v := range r.cols {
		if err := fn(view(c), v); err != nil {
			return err
		}
	}
	return nil
}

func (t *heapTable) scanAll(fn func(kg uint16, row, col, val []byte) error) error {
	for i, g := range t.groups {
		kg := t.start + uint16(i)
		for rk, slot := range g {
			r := t.rows[slot]
			if r.val != nil {
				if err := fn(kg, view(rk), nil, r.val); err != nil {
					return err
				}
			}
			for c, v := range r.cols {
				if err := fn(kg, view(rk), view(c), v); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (t *heapTable) sweep(n int, fn sweepFunc) (int, error) {
	visited, loaded := 0, 0
	for visited < n {
		if t.sweepPos >= len(t.sweepKeys) {
			if loaded == len(t.groups) {
				break // went round once
			}
			t.sweepGroup = (t.sweepGroup + 1) % len(t.groups)
			loaded++
			t.sweepKeys = slices.AppendSeq(t.sweepKeys[:0], maps.Keys(t.groups[t.sweepGroup]))
			t.sweepPos = 0
			continue
		}
		rk := t.sweepKeys[t.sweepPos]
		t.sweepPos++
		g := t.groups[t.sweepGroup]
		slot, ok := g[rk]
		if !ok {
			continue
		}
		r := &t.rows[slot]
		if r.val != nil {
			visited++
			switch out, act := fn(r.val); act {
			case remove:
				r.val = nil
			case replace:
				r.val = nonNil(out)
			case keep:
			}
		}
		for c, v := range r.cols {
			visited++
			switch out, act := fn(v); act {
			case remove:
				delete(r.cols, c)
			case replace:
				r.cols[c] = out
			case keep:
			}
		}
		if r.empty() {
			t.release(g, rk, slot)
		}
	}
	return visited, nil
}

func (t *heapTable) sorted(KeyGroupRange) func(kg uint16, fn func(row, col, val []byte) error) error {
	return t.eachSorted
}

func (t *heapTable) eachSorted(kg uint16, fn func(row, col, val []byte) error) error {
	g := t.group(kg)
	var cols []string
	for _, rk := range slices.Sorted(maps.Keys(g)) {
		r := t.rows[g[rk]]
		if r.val != nil {
			if err := fn(view(rk), nil, r.val); err != nil {
				return err
			}
		}
		cols = slices.AppendSeq(cols[:0], maps.Keys(r.cols))
		slices.Sort(cols)
		for _, c := range cols {
			if err := fn(view(rk), view(c), r.cols[c]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *heapTable) dropKeyGroups(r KeyGroupRange) {
	for i := range t.groups {
		if !r.Contains(t.start + uint16(i)) {
			continue
		}
		for _, slot := range t.groups[i] {
			t.rows[slot] = hrow{}
			t.free = append(t.free, slot)
		}
		t.groups[i] = nil
	}
	t.last.ok = false
}

// heapTimers is the table of a timer queue, and the queue itself: its
// entries are the pending timers of the queue's buckets (empty values),
// so the heap backend stores each timer once, as the index needs it, with
// no per-timer object. Every TimerService over the operator and name
// shares the queue.
type heapTimers struct {
	spec *tableSpec
	kgs  KeyGroupRange
	q    *timerQueue
}

func newHeapTimers(spec *tableSpec, r KeyGroupRange) *heapTimers {
	return &heapTimers{spec: spec, kgs: r, q: newTimerQueue(nil)}
}

// timerCol checks the column of a timer entry and returns its timestamp.
func (t *heapTimers) timerCol(col []byte) (int64, error) {
	if len(col) != tsLen {
		return 0, fmt.Errorf("%w: timer column of %d bytes", ErrCorrupt, len(col))
	}
	return readTimestamp(col), nil
}

func (t *heapTimers) get(kg uint16, row, col []byte) ([]byte, bool, error) {
	if len(col) != tsLen {
		return nil, false, nil
	}
	return nil, t.q.has(kg, row, readTimestamp(col)), nil
}

func (t *heapTimers) set(kg uint16, row, col, val []byte) error {
	ts, err := t.timerCol(col)
	if err != nil {
		return err
	}
	if len(val) != 0 {
		return fmt.Errorf("%w: timer entry with a %d-byte value", ErrCorrupt, len(val))
	}
	if !t.kgs.Contains(kg) {
		return ErrKeyGroupOutOfRange
	}
	return t.q.add(kg, row, ts)
}

func (t *heapTimers) appendElem(uint16, []byte, []byte) error {
	return fmt.Errorf("state: list append to timer table %q", t.spec.name)
}

func (t *heapTimers) del(kg uint16, row, col []byte) error {
	ts, err := t.timerCol(col)
	if err != nil {
		return nil // no such entry
	}
	return t.q.remove(kg, row, ts)
}

// rowTimers is the timestamps of row's pending timers. It walks every
// timer: timer queues never use delRow and scanRow (they address timers
// one by one).
func (t *heapTimers) rowTimers(kg uint16, row []byte) []int64 {
	var out []int64
	_ = t.q.each(func(k uint16, r []byte, ts int64) error {
		if k == kg && bytes.Equal(r, row) {
			out = append(out, ts)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

func (t *heapTimers) delRow(kg uint16, row []byte) error {
	for _, ts := range t.rowTimers(kg, row) {
		if err := t.q.remove(kg, row, ts); err != nil {
			return err
		}
	}
	return nil
}

func (t *heapTimers) scanRow(kg uint16, row []byte, fn func(col, val []byte) error) error {
	for _, ts := range t.rowTimers(kg, row) {
		if err := fn(appendTimestamp(nil, ts), nil); err != nil {
			return err
		}
	}
	return nil
}

func (t *heapTimers) scanAll(fn func(kg uint16, row, col, val []byte) error) error {
	var col [tsLen]byte
	return t.q.each(func(kg uint16, row []byte, ts int64) error {
		return fn(kg, row, appendTimestamp(col[:0], ts), nil)
	})
}

// sweep has nothing to do: timer entries carry no TTL.
func (t *heapTimers) sweep(int, sweepFunc) (int, error) { return 0, nil }

// sorted collects the pending timers of r and sorts them by (key group,
// row, timestamp): the buckets are by timestamp, snapshots by key.
func (t *heapTimers) sorted(r KeyGroupRange) func(kg uint16, fn func(row, col, val []byte) error) error {
	type timer struct {
		kg  uint16
		row []byte
		ts  int64
	}
	var all []timer
	_ = t.q.each(func(kg uint16, row []byte, ts int64) error {
		if r.Contains(kg) {
			all = append(all, timer{kg, row, ts})
		}
		return nil
	})
	slices.SortFunc(all, func(x, y timer) int {
		if x.kg != y.kg {
			return int(x.kg) - int(y.kg)
		}
		if c := bytes.Compare(x.row, y.row); c != 0 {
			return c
		}
		return cmp.Compare(x.ts, y.ts)
	})
	var col [tsLen]byte
	return func(kg uint16, fn func(row, col, val []byte) error) error {
		for len(all) > 0 && all[0].kg <= kg {
			tm := all[0]
			all = all[1:]
			if tm.kg < kg {
				continue
			}
			if err := fn(tm.row, appendTimestamp(col[:0], tm.ts), nil); err != nil {
				return err
			}
		}
		return nil
	}
}

func (t *heapTimers) dropKeyGroups(r KeyGroupRange) { t.q.dropKeyGroups(r) }

// iterate walks key groups in order, tables in prefix order, rows and
// columns sorted: pebble's key order.
func (h *Heap) iterate(r KeyGroupRange, fn func(kg uint16, prefix, row, col, val []byte) error) error {
	r = KeyGroupRange{Start: max(r.Start, h.cfg.KeyGroups.Start), End: min(r.End, h.cfg.KeyGroups.End)}
	if r.Start >= r.End {
		return nil
	}
	tables := h.allTables()
	walks := make([]func(kg uint16, fn func(row, col, val []byte) error) error, len(tables))
	for i, nt := range tables {
		walks[i] = nt.t.sorted(r)
	}
	for kg := r.Start; kg < r.End; kg++ {
		for i, nt := range tables {
			err := walks[i](kg, func(row, col, val []byte) error {
				return fn(kg, nt.prefix, row, col, val)
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// namedStore is a table with its prefix and, if registered, its spec.
type namedStore struct {
	prefix []byte
	spec   *tableSpec // nil: restored, not registered yet
	t      heapStore
}

// allTables returns the registered tables and the restored ones no
// operator has registered yet, in prefix order (the iteration order).
func (h *Heap) allTables() []namedStore {
	tables := make([]namedStore, 0, len(h.order)+len(h.restored))
	for _, reg := range h.order {
		t, _ := reg.t.(heapStore)
		tables = append(tables, namedStore{reg.spec.prefix, reg.spec, t})
	}
	for p, t := range h.restored {
		tables = append(tables, namedStore{view(p), nil, t})
	}
	slices.SortFunc(tables, func(x, y namedStore) int { return bytes.Compare(x.prefix, y.prefix) })
	return tables
}

func (h *Heap) deleteRange(r KeyGroupRange) error {
	for _, t := range h.tables {
		t.dropKeyGroups(r)
	}
	return nil
}

func (h *Heap) close() error {
	h.tables, h.restored = nil, nil
	return nil
}
