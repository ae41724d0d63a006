package state

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// Restoring raw entries. A restore writes entries in the stored layout
// (key group, table prefix, row, column, value) before any operator has
// registered its states, so the backend does not know their kinds yet:
//
//   - pebble stores them as keys, as it stores everything; a state
//     registered later reads them, a timer service loads them;
//   - the heap keeps a table per prefix in Heap.restored, a timer queue
//     when the state name is a timer table's (timerPrefix), a heapTable
//     otherwise, and hands it to the state when it is registered
//     (Heap.newTable). Until then iterate lists it like a registered one.
//
// Restoring after a registration is refused (ErrRestoreAfterRegister):
// on pebble a timer service's in-memory index would miss restored timers.

// rawLoader writes restored entries into a backend. The slices are only
// valid during put.
type rawLoader interface {
	put(kg uint16, prefix, row, col, val []byte) error
	// finish completes the restore (ok) or drops what is still buffered.
	finish(ok bool) error
}

// beginRestore checks that b can take restored entries.
func beginRestore(b Backend) (*base, rawLoader, error) {
	c := b.core()
	if c.closed {
		return nil, nil, ErrClosed
	}
	if len(c.specs) > 0 {
		return nil, nil, fmt.Errorf("%w (%d registered)", ErrRestoreAfterRegister, len(c.specs))
	}
	return c, c.raw.loader(), nil
}

func (h *Heap) loader() rawLoader { return &heapLoader{h: h} }

// heapLoader puts restored entries into the heap's restored tables. It
// caches the table of the last prefix: entries arrive sorted by key group,
// then table, so consecutive entries mostly share one.
type heapLoader struct {
	h      *Heap
	prefix []byte
	t      heapStore
}

func (l *heapLoader) put(kg uint16, prefix, row, col, val []byte) error {
	if l.t == nil || !bytes.Equal(prefix, l.prefix) {
		t, err := l.h.restoredTable(prefix)
		if err != nil {
			return err
		}
		l.t, l.prefix = t, append(l.prefix[:0], prefix...)
	}
	if len(col) == 0 {
		// A value-like state's entry. A map entry whose user key encodes
		// to nothing looks the same; adopt moves those when the state
		// turns out to be a map.
		col = nil
	}
	return l.t.set(kg, row, col, val)
}

func (l *heapLoader) finish(bool) error { return nil }

// restoredTable returns the restored table of prefix, creating it.
func (h *Heap) restoredTable(prefix []byte) (heapStore, error) {
	if t, ok := h.restored[string(prefix)]; ok {
		return t, nil
	}
	op, rest, err := readPart(prefix)
	if err != nil {
		return nil, err
	}
	name, rest, err := readPart(rest)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 || len(op) == 0 || len(name) == 0 {
		return nil, fmt.Errorf("%w: table prefix %q", ErrCorrupt, prefix)
	}
	spec := &tableSpec{op: string(op), name: string(name), prefix: bytes.Clone(prefix)}
	var t heapStore
	if strings.HasPrefix(spec.name, timerPrefix) {
		spec.kind = kindTimer
		t = newHeapTimers(spec, h.cfg.KeyGroups)
	} else {
		t = newHeapTable(spec, h.cfg.KeyGroups)
	}
	if h.restored == nil {
		h.restored = make(map[string]heapStore)
	}
	h.restored[string(spec.prefix)] = t
	h.tables = append(h.tables, t)
	return t, nil
}

// adopt makes the restored table t the table of spec, which is being
// registered.
func adopt(t heapStore, spec *tableSpec) table {
	switch t := t.(type) {
	case *heapTimers:
		if spec.kind == kindTimer {
			t.spec = spec
			return t
		}
	case *heapTable:
		if spec.kind != kindTimer {
			t.spec = spec
			if spec.kind == kindMap {
				t.valuesToColumns()
			}
			return t
		}
	}
	// restoredTable and register apply the same name rule (checkName
	// keeps user states out of timerPrefix), so this cannot happen.
	panic(fmt.Sprintf("state: restored table %q cannot become a %s table", spec.prefix, spec.kind))
}

// valuesToColumns turns row values into map entries with the empty user
// key: on restore, an entry without a column was taken for a value, and
// in a map state it is the entry of a user key that encodes to nothing.
func (t *heapTable) valuesToColumns() {
	for i := range t.rows {
		r := &t.rows[i]
		if r.val == nil {
			continue
		}
		if r.cols == nil {
			r.cols = make(map[string][]byte, 1)
		}
		r.cols[""] = r.val
		r.val = nil
	}
	t.last.ok = false
}

// restoreBatchBytes is the size at which a pebble restore commits its
// batch: large enough to amortise commits, small enough to bound memory.
const restoreBatchBytes = 4 << 20

func (p *Pebble) loader() rawLoader { return &pebbleLoader{db: p.db} }

// pebbleLoader writes restored entries as keys, in batches committed
// without sync (as every pebble write here: durability comes from
// checkpoints).
type pebbleLoader struct {
	db  *pebble.DB
	b   *pebble.Batch
	key []byte
}

func (l *pebbleLoader) put(kg uint16, prefix, row, col, val []byte) error {
	if l.b == nil {
		l.b = l.db.NewBatch()
	}
	k := appendKeyGroup(l.key[:0], kg)
	k = append(k, prefix...)
	k = append(k, row...)
	k = append(k, col...)
	l.key = k
	if err := l.b.Set(k, val, nil); err != nil {
		return wrapPebble("restore batch", err)
	}
	if l.b.Len() >= restoreBatchBytes {
		return l.commit()
	}
	return nil
}

func (l *pebbleLoader) commit() error {
	err := l.b.Commit(pebble.NoSync)
	if cerr := l.b.Close(); err == nil {
		err = cerr
	}
	l.b = nil
	return wrapPebble("restore commit", err)
}

func (l *pebbleLoader) finish(ok bool) error {
	if l.b == nil {
		return nil
	}
	if !ok {
		err := l.b.Close()
		l.b = nil
		return wrapPebble("restore batch", err)
	}
	return l.commit()
}
