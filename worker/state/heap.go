package state

import (
	"maps"
	"slices"
	"unsafe"
)

// Heap is the in-memory backend: per registered state a table, per key
// group a Go map from the encoded row (key, namespace) to the row's value
// or, for map state, its columns. Values are stored encoded, in the same
// byte format as pebble (so snapshots of both backends are identical and
// one codec path serves both); the price is a decode per read, which for
// the fixed-size codecs is a few nanoseconds and no allocation.
//
// Copy-on-write snapshots (next milestone) follow the layout: a snapshot
// takes the per-key-group maps of every table and marks them shared with a
// version number; a write to a shared key group first copies that group's
// map (and writes a copied row, never the shared one), so the task keeps
// writing while the snapshot is serialised from the frozen maps. The unit
// of copying is a key group, which also bounds the pause. Today rows are
// updated in place.
type Heap struct {
	*base
	tables []*heapTable
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

type hrow struct {
	has  bool // val is set (value-like states)
	val  []byte
	cols map[string][]byte // map state entries, timers
}

type heapTable struct {
	spec   *tableSpec
	start  uint16
	groups []map[string]*hrow // index kg - start

	// incremental cleanup cursor: the group being swept and a copy of its
	// row keys taken when the sweep entered it.
	sweepGroup int
	sweepKeys  []string
	sweepPos   int
}

func (h *Heap) newTable(spec *tableSpec) table {
	r := h.cfg.KeyGroups
	t := &heapTable{spec: spec, start: r.Start, groups: make([]map[string]*hrow, r.Len())}
	t.sweepGroup = len(t.groups) - 1
	h.tables = append(h.tables, t)
	return t
}

// view returns s's bytes without copying; the result must not be modified.
func view(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func (t *heapTable) group(kg uint16, create bool) map[string]*hrow {
	i := int(kg) - int(t.start)
	if i < 0 || i >= len(t.groups) {
		return nil
	}
	g := t.groups[i]
	if g == nil && create {
		g = make(map[string]*hrow)
		t.groups[i] = g
	}
	return g
}

func (t *heapTable) get(kg uint16, row, col []byte) ([]byte, bool, error) {
	r := t.group(kg, false)[string(row)]
	if r == nil {
		return nil, false, nil
	}
	if col == nil {
		return r.val, r.has, nil
	}
	v, ok := r.cols[string(col)]
	return v, ok, nil
}

func (t *heapTable) row(kg uint16, row []byte) (*hrow, error) {
	g := t.group(kg, true)
	if g == nil {
		return nil, ErrKeyGroupOutOfRange
	}
	r := g[string(row)]
	if r == nil {
		r = &hrow{}
		g[string(row)] = r
	}
	return r, nil
}

func (t *heapTable) set(kg uint16, row, col, val []byte) error {
	r, err := t.row(kg, row)
	if err != nil {
		return err
	}
	if col == nil {
		r.val, r.has = append(r.val[:0], val...), true
		return nil
	}
	if r.cols == nil {
		r.cols = make(map[string][]byte)
	}
	old := r.cols[string(col)]
	r.cols[string(col)] = append(old[:0], val...)
	return nil
}

func (t *heapTable) appendElem(kg uint16, row, elem []byte) error {
	r, err := t.row(kg, row)
	if err != nil {
		return err
	}
	r.val, r.has = append(r.val, elem...), true
	return nil
}

func (t *heapTable) del(kg uint16, row, col []byte) error {
	g := t.group(kg, false)
	r := g[string(row)]
	if r == nil {
		return nil
	}
	if col == nil {
		r.has, r.val = false, nil
	} else {
		delete(r.cols, string(col))
	}
	if !r.has && len(r.cols) == 0 {
		delete(g, string(row))
	}
	return nil
}

func (t *heapTable) delRow(kg uint16, row []byte) error {
	delete(t.group(kg, false), string(row))
	return nil
}

func (t *heapTable) scanRow(kg uint16, row []byte, fn func(col, val []byte) error) error {
	r := t.group(kg, false)[string(row)]
	if r == nil {
		return nil
	}
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
		for rk, r := range g {
			if r.has {
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
		r := g[rk]
		if r == nil {
			continue
		}
		if r.has {
			visited++
			switch out, act := fn(r.val); act {
			case remove:
				r.has, r.val = false, nil
			case replace:
				r.val = out
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
		if !r.has && len(r.cols) == 0 {
			delete(g, rk)
		}
	}
	return visited, nil
}

// iterate walks key groups in order, tables in prefix order, rows and
// columns sorted: pebble's key order.
func (h *Heap) iterate(r KeyGroupRange, fn func(kg uint16, prefix, row, col, val []byte) error) error {
	tables := h.sortedTables()
	var rows, cols []string
	for kg := max(r.Start, h.cfg.KeyGroups.Start); kg < min(r.End, h.cfg.KeyGroups.End); kg++ {
		for _, reg := range tables {
			t, _ := reg.t.(*heapTable)
			g := t.group(kg, false)
			rows = slices.Sorted(maps.Keys(g))
			for _, rk := range rows {
				hr := g[rk]
				if hr.has {
					if err := fn(kg, reg.spec.prefix, view(rk), nil, hr.val); err != nil {
						return err
					}
				}
				cols = slices.AppendSeq(cols[:0], maps.Keys(hr.cols))
				slices.Sort(cols)
				for _, c := range cols {
					if err := fn(kg, reg.spec.prefix, view(rk), view(c), hr.cols[c]); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

func (h *Heap) deleteRange(r KeyGroupRange) error {
	for _, t := range h.tables {
		for kg := max(r.Start, h.cfg.KeyGroups.Start); kg < min(r.End, h.cfg.KeyGroups.End); kg++ {
			t.groups[kg-t.start] = nil
		}
	}
	return nil
}

func (h *Heap) close() error {
	h.tables = nil
	return nil
}
