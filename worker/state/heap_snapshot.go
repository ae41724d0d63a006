package state

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
)

// Full snapshots of the heap. The take copies the entries of the range in
// whatever order the Go maps yield them: per key group and table one
// segment, the segments in key order. Sorting rows within a segment, most
// of the cost of the canonical order, is left to Upload, which runs in
// another goroutine, so the task pauses only for the copy. The canonical
// size and key-group offsets do not depend on the order, so they are
// known at the take.

// keepFunc applies CleanupFullSnapshot to a stored value: the value to
// keep (maybe rewritten, valid until the next call), or false to drop it.
type keepFunc func(val []byte) ([]byte, bool)

// heapCopy is the heap's state at a take. It is immutable once taken,
// except that Upload sorts each segment's refs (in place, once).
type heapCopy struct {
	r       KeyGroupRange
	tables  [][]byte // table prefixes, by table index (prefix order)
	buf     chunkBuf // row | column | value of every entry
	refs    []entryRef
	segs    []heapSeg
	sizes   []int64 // canonical bytes per key group (index kg - r.Start)
	count   uint64
	offsets []int64 // canonical offsets, r.Len()+1
	size    int64
}

// entryRef locates one copied entry in buf.
type entryRef struct {
	chunk, off     uint32
	rowLen, colLen uint32
	valLen         uint32
}

// heapSeg is the entries of one (key group, table): refs[lo:hi].
type heapSeg struct {
	kg     uint16
	table  int
	lo, hi int
	sorted bool
}

// takeFullSnapshot copies the entries of r.
func (h *Heap) takeFullSnapshot(r KeyGroupRange) *FullSnapshot {
	tables := h.allTables()
	c := &heapCopy{r: r, tables: make([][]byte, len(tables)), sizes: make([]int64, r.Len())}
	now := h.nowMs()
	var scratch []byte
	for i, nt := range tables {
		c.tables[i] = nt.prefix
		var keep keepFunc
		if nt.spec != nil && nt.spec.ttl.fullSnapshot {
			spec := nt.spec
			keep = func(val []byte) ([]byte, bool) { return spec.snapshotValue(val, now, &scratch) }
		}
		nt.t.copyTo(c, i, r, keep)
	}
	c.finish()
	s := &FullSnapshot{r: r}
	s.size.Store(c.size)
	s.mu.copy = c
	return s
}

// add copies one entry of key group kg, table t.
func (c *heapCopy) add(kg uint16, t int, row, col, val []byte) {
	c.sizes[kg-c.r.Start] += int64(entrySize(c.tables[t], row, col, val))
	c.count++
	n := len(row) + len(col) + len(val)
	c.buf.reserve(n)
	ref := entryRef{
		chunk: uint32(len(c.buf.chunks)), off: uint32(len(c.buf.cur)),
		rowLen: uint32(len(row)), colLen: uint32(len(col)), valLen: uint32(len(val)),
	}
	c.buf.cur = append(append(append(c.buf.cur, row...), col...), val...)
	c.refs = append(c.refs, ref)
}

// segment records refs[lo:] as the entries of (kg, t), if any.
func (c *heapCopy) segment(kg uint16, t, lo int) {
	if len(c.refs) > lo {
		c.segs = append(c.segs, heapSeg{kg: kg, table: t, lo: lo, hi: len(c.refs)})
	}
}

// finish orders the segments by key group, then table, and computes the
// canonical offsets.
func (c *heapCopy) finish() {
	c.buf.chunks = append(c.buf.chunks, c.buf.cur)
	c.buf.cur = nil
	slices.SortFunc(c.segs, func(x, y heapSeg) int {
		if x.kg != y.kg {
			return cmp.Compare(x.kg, y.kg)
		}
		return cmp.Compare(x.table, y.table)
	})
	c.offsets = make([]int64, 0, c.r.Len()+1)
	pos := int64(canonicalHeader)
	for _, n := range c.sizes {
		c.offsets = append(c.offsets, pos)
		pos += n
	}
	c.offsets = append(c.offsets, pos)
	c.size = pos + canonicalFooter
}

// entry returns the parts of ref.
func (c *heapCopy) entry(ref entryRef) (row, col, val []byte) {
	b := c.buf.chunks[ref.chunk][ref.off:]
	r, cl := ref.rowLen, ref.rowLen+ref.colLen
	return b[:r:r], b[r:cl:cl], b[cl : cl+ref.valLen : cl+ref.valLen]
}

// sort puts a segment's refs in key order: row, then column (raw bytes,
// as in the stored key; the row's parts are length-prefixed, so comparing
// rows compares keys, then namespaces).
func (c *heapCopy) sort(seg *heapSeg) {
	if seg.sorted {
		return
	}
	slices.SortFunc(c.refs[seg.lo:seg.hi], func(x, y entryRef) int {
		rx, cx, _ := c.entry(x)
		ry, cy, _ := c.entry(y)
		if d := bytes.Compare(rx, ry); d != 0 {
			return d
		}
		return bytes.Compare(cx, cy)
	})
	seg.sorted = true
}

func (t *heapTable) copyTo(c *heapCopy, table int, r KeyGroupRange, keep keepFunc) {
	emit := func(kg uint16, row, col, val []byte) {
		if keep != nil {
			var ok bool
			if val, ok = keep(val); !ok {
				return
			}
		}
		c.add(kg, table, row, col, val)
	}
	for i, g := range t.groups {
		kg := t.start + uint16(i)
		if !r.Contains(kg) || len(g) == 0 {
			continue
		}
		lo := len(c.refs)
		for rk, slot := range g {
			row := &t.rows[slot]
			if row.val != nil {
				emit(kg, view(rk), nil, row.val)
			}
			for col, v := range row.cols {
				emit(kg, view(rk), view(col), v)
			}
		}
		c.segment(kg, table, lo)
	}
}

// copyTo places the timers in key-group order with a counting sort: the
// queue's buckets are by timestamp.
func (t *heapTimers) copyTo(c *heapCopy, table int, r KeyGroupRange, _ keepFunc) {
	base := len(c.refs)
	var (
		kgs []uint16 // of refs[base:]
		col [tsLen]byte
	)
	_ = t.q.each(func(kg uint16, row []byte, ts int64) error {
		if r.Contains(kg) {
			c.add(kg, table, row, appendTimestamp(col[:0], ts), nil)
			kgs = append(kgs, kg)
		}
		return nil
	})
	if len(kgs) == 0 {
		return
	}
	counts := make([]int, r.Len())
	for _, kg := range kgs {
		counts[kg-r.Start]++
	}
	next := make([]int, r.Len()) // where the next ref of each key group goes
	at := base
	for i, n := range counts {
		next[i] = at
		if n > 0 {
			c.segs = append(c.segs, heapSeg{kg: r.Start + uint16(i), table: table, lo: at, hi: at + n})
		}
		at += n
	}
	copied := slices.Clone(c.refs[base:])
	for j, kg := range kgs {
		c.refs[next[kg-r.Start]] = copied[j]
		next[kg-r.Start]++
	}
}

// heapSource encodes a heapCopy in canonical order.
type heapSource struct {
	c     *heapCopy
	seg   int  // current segment
	inSeg bool // seg is sorted and i is in it
	i     int  // next ref
}

func (s *heapSource) fill(enc *fullEncoder, buf []byte) ([]byte, bool, error) {
	c := s.c
	for s.seg < len(c.segs) {
		seg := &c.segs[s.seg]
		if !s.inSeg {
			c.sort(seg)
			s.i, s.inSeg = seg.lo, true
		}
		prefix := c.tables[seg.table]
		for ; s.i < seg.hi; s.i++ {
			if len(buf) >= fillBytes {
				return buf, false, nil
			}
			row, col, val := c.entry(c.refs[s.i])
			buf = enc.entry(buf, seg.kg, prefix, row, col, val)
		}
		s.seg++
		s.inSeg = false
	}
	if enc.pos+canonicalFooter != c.size || enc.count != c.count {
		return nil, true, fmt.Errorf("state: heap snapshot encoded to %d bytes, %d entries; the take counted %d, %d",
			enc.pos+canonicalFooter, enc.count, c.size, c.count)
	}
	return buf, true, nil
}

func (s *heapSource) closeLocked() {}
