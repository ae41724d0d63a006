package state

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// Pebble is the on-disk backend: one pebble DB in a directory the caller
// owns, keys as in the package doc. Writes skip the WAL (durability comes
// from checkpoints, as with Flink's RocksDB backend), so a crash loses
// whatever was written since the last Checkpoint: restore always starts
// from a checkpoint, never from the directory a crashed task left.
//
// List state appends are pebble merges with pebble's concatenating merger;
// map state clear is a range deletion over the row; key-group cut-out is a
// range deletion over the 2-byte key-group prefixes.
type Pebble struct {
	*base
	db *pebble.DB

	// mu guards the full snapshots reading db (TakeFullSnapshot): Close
	// releases them before closing db, so an upload still running fails
	// with ErrReleased instead of reading a closed DB. Lock order:
	// Pebble.mu is never held while taking a FullSnapshot's mu.
	mu struct {
		sync.Mutex
		snaps map[*FullSnapshot]struct{}
	}
}

var _ Backend = (*Pebble)(nil)

// OpenPebble opens (creating if needed) a pebble DB in dir. Entries already
// in dir (a restored checkpoint) become visible to states and timer
// services registered under the same operator id and name.
func OpenPebble(dir string, cfg Config) (*Pebble, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	db, err := pebble.Open(dir, pebbleOptions(cfg))
	if err != nil {
		return nil, fmt.Errorf("state: open pebble in %s: %w", dir, err)
	}
	p := &Pebble{db: db}
	p.base = newBase(cfg, p)
	return p, nil
}

// pebbleOptions are the options of every DB the backend opens, read-only
// checkpoints (RestorePebbleInto) included: the merger's name is checked
// against the one the DB was written with.
// pebbleCacheSize is each DB's block cache (pebble's default is 8 MB, too
// small for keyed state: reads of a large state missed the cache and
// decompressed blocks on most Gets).
const pebbleCacheSize = 64 << 20

func pebbleOptions(cfg Config) *pebble.Options {
	o := &pebble.Options{
		DisableWAL: true,
		Merger:     pebble.DefaultMerger,
		Logger:     pebbleLogger{log: cfg.Logger},
		CacheSize:  pebbleCacheSize,
	}
	// Bloom filters on every level: state reads of new keys (every first
	// access of a key) stop at the filter instead of reading a block per
	// level.
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return o
}

// Checkpoint flushes the memtable and writes a pebble checkpoint (hard
// links to the SST files, plus MANIFEST and OPTIONS) into dir, which must
// not exist yet. The result opens with OpenPebble. TakeSnapshot builds
// incremental checkpoints on it (SST files are immutable and shared
// between checkpoints). Call it from the owning goroutine.
func (p *Pebble) Checkpoint(dir string) error {
	if p.closed {
		return ErrClosed
	}
	if err := p.db.Flush(); err != nil {
		return fmt.Errorf("state: flush before checkpoint: %w", err)
	}
	if err := p.db.Checkpoint(dir); err != nil {
		return fmt.Errorf("state: checkpoint into %s: %w", dir, err)
	}
	return nil
}

type pebbleTable struct {
	db     *pebble.DB
	spec   *tableSpec
	kgs    KeyGroupRange
	kbuf   []byte // point-operation keys
	vbuf   []byte // values returned by get
	sbuf   []byte // scan bounds
	cursor struct {
		kg   uint16
		last []byte // last key visited in kg; nil: start of kg
	}
}

func (p *Pebble) newTable(spec *tableSpec) table {
	t := &pebbleTable{db: p.db, spec: spec, kgs: p.cfg.KeyGroups}
	t.cursor.kg = t.kgs.Start
	return t
}

func (t *pebbleTable) key(kg uint16, row, col []byte) []byte {
	k := appendKeyGroup(t.kbuf[:0], kg)
	k = append(k, t.spec.prefix...)
	k = append(k, row...)
	k = append(k, col...)
	t.kbuf = k
	return k
}

func (t *pebbleTable) get(kg uint16, row, col []byte) ([]byte, bool, error) {
	v, closer, err := t.db.Get(t.key(kg, row, col))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("state: pebble get: %w", err)
	}
	t.vbuf = append(t.vbuf[:0], v...)
	if err := closer.Close(); err != nil {
		return nil, false, fmt.Errorf("state: pebble get: %w", err)
	}
	return t.vbuf, true, nil
}

func (t *pebbleTable) set(kg uint16, row, col, val []byte) error {
	return wrapPebble("set", t.db.Set(t.key(kg, row, col), val, pebble.NoSync))
}

func (t *pebbleTable) appendElem(kg uint16, row, elem []byte) error {
	return wrapPebble("merge", t.db.Merge(t.key(kg, row, nil), elem, pebble.NoSync))
}

func (t *pebbleTable) del(kg uint16, row, col []byte) error {
	return wrapPebble("delete", t.db.Delete(t.key(kg, row, col), pebble.NoSync))
}

func (t *pebbleTable) delRow(kg uint16, row []byte) error {
	lo := t.key(kg, row, nil)
	if t.spec.kind != kindMap && t.spec.kind != kindTimer {
		return wrapPebble("delete", t.db.Delete(lo, pebble.NoSync))
	}
	return wrapPebble("delete range", t.db.DeleteRange(lo, prefixEnd(lo), pebble.NoSync))
}

func wrapPebble(op string, err error) error {
	if err != nil {
		return fmt.Errorf("state: pebble %s: %w", op, err)
	}
	return nil
}

// scan calls fn for every entry in [lo, prefixEnd(lo)) with the key after
// lo. fn may write: a pebble iterator reads the DB as of its creation.
func (t *pebbleTable) scan(lo []byte, fn func(rest, val []byte) error) (err error) {
	it, err := t.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return wrapPebble("iterator", err)
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = wrapPebble("iterator", cerr)
		}
	}()
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return wrapPebble("iterator", err)
		}
		if err := fn(it.Key()[len(lo):], v); err != nil {
			return err
		}
	}
	return wrapPebble("iterator", it.Error())
}

func (t *pebbleTable) scanRow(kg uint16, row []byte, fn func(col, val []byte) error) error {
	t.sbuf = append(t.sbuf[:0], t.key(kg, row, nil)...)
	return t.scan(t.sbuf, fn)
}

func (t *pebbleTable) scanAll(fn func(kg uint16, row, col, val []byte) error) error {
	for kg := t.kgs.Start; kg < t.kgs.End; kg++ {
		t.sbuf = append(t.sbuf[:0], t.key(kg, nil, nil)...)
		err := t.scan(t.sbuf, func(rest, val []byte) error {
			_, rest2, err := readPart(rest)
			if err != nil {
				return err
			}
			_, colRest, err := readPart(rest2)
			if err != nil {
				return err
			}
			rn := len(rest) - len(colRest)
			return fn(kg, rest[:rn], colRest, val)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// sweep is the stand-in for a compaction filter: it walks the table key
// group by key group from a cursor and deletes or rewrites what fn says.
func (t *pebbleTable) sweep(n int, fn sweepFunc) (visited int, err error) {
	for groups := 0; visited < n && groups <= t.kgs.Len(); groups++ {
		t.sbuf = append(t.sbuf[:0], t.key(t.cursor.kg, nil, nil)...)
		lo := t.sbuf
		start := lo
		if t.cursor.last != nil {
			start = append(append([]byte(nil), t.cursor.last...), 0)
		}
		it, err := t.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: prefixEnd(lo)})
		if err != nil {
			return visited, wrapPebble("iterator", err)
		}
		ok := it.First()
		for ; ok && visited < n; ok = it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				_ = it.Close()
				return visited, wrapPebble("iterator", err)
			}
			visited++
			k := it.Key()
			switch out, act := fn(v); act {
			case remove:
				err = t.db.Delete(k, pebble.NoSync)
			case replace:
				err = t.db.Set(k, out, pebble.NoSync)
			case keep:
			}
			if err != nil {
				_ = it.Close()
				return visited, wrapPebble("sweep", err)
			}
			t.cursor.last = append(t.cursor.last[:0], k...)
		}
		exhausted := !ok
		if err := it.Close(); err != nil {
			return visited, wrapPebble("iterator", err)
		}
		if !exhausted {
			break // n reached inside this key group
		}
		// Next key group, wrapping around.
		t.cursor.last = nil
		t.cursor.kg++
		if t.cursor.kg >= t.kgs.End {
			t.cursor.kg = t.kgs.Start
		}
	}
	return visited, nil
}

func (p *Pebble) iterate(r KeyGroupRange, fn func(kg uint16, prefix, row, col, val []byte) error) (err error) {
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: keyGroupKey(r.Start), UpperBound: keyGroupKey(r.End)})
	if err != nil {
		return wrapPebble("iterator", err)
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = wrapPebble("iterator", cerr)
		}
	}()
	for ok := it.First(); ok; ok = it.Next() {
		kg, prefix, row, col, err := splitKey(it.Key())
		if err != nil {
			return err
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return wrapPebble("iterator", err)
		}
		if err := fn(kg, prefix, row, col, v); err != nil {
			return err
		}
	}
	return wrapPebble("iterator", it.Error())
}

func (p *Pebble) deleteRange(r KeyGroupRange) error {
	if r.Start == r.End {
		return nil
	}
	return wrapPebble("delete range", p.db.DeleteRange(keyGroupKey(r.Start), keyGroupKey(r.End), pebble.NoSync))
}

func (p *Pebble) close() error {
	p.mu.Lock()
	snaps := p.mu.snaps
	p.mu.snaps = nil
	p.mu.Unlock()
	var err error
	for s := range snaps {
		err = errors.Join(err, s.release())
	}
	return errors.Join(err, wrapPebble("close", p.db.Close()))
}

// pebbleLogger sends pebble's log lines to slog.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Info(fmt.Sprintf(format, args...), slog.String("component", "pebble"))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), slog.String("component", "pebble"))
}

// Fatalf logs and panics: pebble calls it for unrecoverable corruption and
// does not expect it to return.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg, slog.String("component", "pebble"))
	panic("state: pebble: " + msg)
}
