package state

import (
	"encoding/binary"
	"fmt"
	"log/slog"

	"github.com/jonboulle/clockwork"
)

// MaxKeyGroups is the largest max_parallelism: key groups are 0..32767.
const MaxKeyGroups = 1 << 15

// KeyGroupRange is the half-open range of key groups [Start, End).
type KeyGroupRange struct {
	Start, End uint16
}

// Contains reports whether kg lies in r.
func (r KeyGroupRange) Contains(kg uint16) bool { return kg >= r.Start && kg < r.End }

// Len is the number of key groups in r.
func (r KeyGroupRange) Len() int { return int(r.End) - int(r.Start) }

// Config configures a backend. The zero value is usable: it owns key groups
// [0, 128) (the default max_parallelism) and reads the wall clock.
type Config struct {
	// KeyGroups is the range of key groups the subtask owns. Keys outside it
	// are rejected by SetCurrentKey. Default [0, 128); End ≤ MaxKeyGroups.
	KeyGroups KeyGroupRange
	// Clock is the processing-time clock TTL reads (as Flink, TTL is in
	// processing time). Default: the wall clock.
	Clock clockwork.Clock
	// Logger receives pebble's log lines (pebble backend only). Default:
	// discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.KeyGroups == (KeyGroupRange{}) {
		c.KeyGroups = KeyGroupRange{Start: 0, End: 128}
	}
	if c.KeyGroups.Start >= c.KeyGroups.End || c.KeyGroups.End > MaxKeyGroups {
		return c, fmt.Errorf("state: key group range [%d, %d) must be non-empty and end at most %d",
			c.KeyGroups.Start, c.KeyGroups.End, MaxKeyGroups)
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Entry is one stored entry as a snapshot sees it. Its slices are only
// valid during the callback that receives it.
type Entry struct {
	KeyGroup  uint16
	Operator  string
	State     string
	Key       []byte
	Namespace []byte
	// Column is the user key of a map entry, the 8-byte timestamp of a
	// timer (sign bit flipped, big-endian), and empty otherwise.
	Column []byte
	// Value is the stored value: with TTL it carries the last-access
	// timestamp header; list values are length-prefixed elements. The byte
	// format is the same on both backends.
	Value []byte
}

// Backend stores the keyed state and timers of one subtask (of one task: the
// chained operators of a task share a backend; the operator id is part of
// every key). Handles are created through a Keyed bound to an operator id.
//
// Two implementations: Heap (NewHeap) and Pebble (OpenPebble). All methods
// are for the goroutine that owns the backend (the task), except where
// documented.
type Backend interface {
	// KeyGroups is the range the backend owns.
	KeyGroups() KeyGroupRange
	// IterateKeyGroups calls fn for every stored entry in key groups r, in
	// key order (key group, operator, state, key, namespace, column; the
	// same order on both backends). Expired entries are included.
	IterateKeyGroups(r KeyGroupRange, fn func(e *Entry) error) error
	// SnapshotKeyGroups is IterateKeyGroups for snapshots and savepoints: for
	// states whose TTL has CleanupFullSnapshot, expired entries (and expired
	// list elements) are left out.
	SnapshotKeyGroups(r KeyGroupRange, fn func(e *Entry) error) error
	// DeleteKeyGroups deletes every entry in key groups r (rescale cut-out).
	// On pebble, timer services already created keep their in-memory index
	// (and would still fire the deleted timers): call it before creating
	// them. On the heap the index is the timer table, so it loses them too.
	DeleteKeyGroups(r KeyGroupRange) error
	// CleanupStep checks up to n entries of states with a TTL for expiry,
	// resuming where the previous step stopped, and deletes expired ones
	// (Flink's incremental cleanup; on pebble it stands in for the
	// compaction filter). It returns the number of entries checked.
	CleanupStep(n int) (int, error)
	// Close releases the backend; the pebble DB is closed, the heap dropped.
	// Idempotent. Handles must not be used afterwards.
	Close() error

	core() *base
}

// kind is what a registered state is; the layout follows from it.
type kind uint8

const (
	kindValue kind = iota + 1
	kindList
	kindMap
	kindReducing
	kindAggregating
	kindTimer
)

func (k kind) String() string {
	switch k {
	case kindValue:
		return "value"
	case kindList:
		return "list"
	case kindMap:
		return "map"
	case kindReducing:
		return "reducing"
	case kindAggregating:
		return "aggregating"
	case kindTimer:
		return "timer"
	default:
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
}

// tableSpec describes one registered state (or timer queue) of one operator.
type tableSpec struct {
	op, name string
	kind     kind
	ttl      ttlParams
	prefix   []byte // tablePrefix(op, name)
}

// action is what a TTL filter decided for one stored entry.
type action uint8

const (
	keep action = iota
	replace
	remove
)

// sweepFunc decides over one stored value; for replace it returns the new
// value.
type sweepFunc func(val []byte) ([]byte, action)

// table is the storage of one registered state. row is the encoded (key,
// namespace); col is nil for value-like states. Returned slices are valid
// until the next call on the table.
type table interface {
	get(kg uint16, row, col []byte) ([]byte, bool, error)
	set(kg uint16, row, col, val []byte) error
	appendElem(kg uint16, row, elem []byte) error
	del(kg uint16, row, col []byte) error
	// delRow deletes the row's value and every column of it.
	delRow(kg uint16, row []byte) error
	// scanRow calls fn for every column of the row; fn may delete or set
	// entries of the row.
	scanRow(kg uint16, row []byte, fn func(col, val []byte) error) error
	// scanAll calls fn for every entry of the table in the owned range.
	scanAll(fn func(kg uint16, row, col, val []byte) error) error
	// sweep visits up to n entries from a cursor kept by the table, wrapping
	// around once at most, and applies fn's decision.
	sweep(n int, fn sweepFunc) (int, error)
}

// rawBackend is what a backend implementation provides to base.
type rawBackend interface {
	newTable(spec *tableSpec) table
	iterate(r KeyGroupRange, fn func(kg uint16, prefix, row, col, val []byte) error) error
	deleteRange(r KeyGroupRange) error
	// loader returns a writer of raw entries for a restore (restore.go).
	loader() rawLoader
	close() error
}

type registered struct {
	spec *tableSpec
	t    table
}

// base is the backend-independent part of a backend: the registry of
// states, the snapshot iterators and the incremental cleanup.
type base struct {
	cfg     Config
	raw     rawBackend
	specs   map[string]*registered // by string(prefix)
	order   []*registered          // registration order, for CleanupStep
	sweepAt int
	closed  bool
}

func newBase(cfg Config, raw rawBackend) *base {
	return &base{cfg: cfg, raw: raw, specs: make(map[string]*registered)}
}

func (b *base) core() *base { return b }

func (b *base) nowMs() int64 { return b.cfg.Clock.Now().UnixMilli() }

// register returns the table of (op, name), creating it on first use.
func (b *base) register(op, name string, k kind, ttl ttlParams) (*tableSpec, table, error) {
	if b.closed {
		return nil, nil, ErrClosed
	}
	prefix := tablePrefix(op, name)
	if r, ok := b.specs[string(prefix)]; ok {
		if r.spec.kind != k {
			return nil, nil, fmt.Errorf("%w: operator %q state %q is %s, registered as %s",
				ErrStateConflict, op, name, r.spec.kind, k)
		}
		// A later registration may change the TTL (as a restore may in
		// Flink); timestamps are stored, not expiry times, so this is safe.
		r.spec.ttl = ttl
		return r.spec, r.t, nil
	}
	spec := &tableSpec{op: op, name: name, kind: k, ttl: ttl, prefix: prefix}
	r := &registered{spec: spec, t: b.raw.newTable(spec)}
	b.specs[string(prefix)] = r
	b.order = append(b.order, r)
	return spec, r.t, nil
}

// KeyGroups implements Backend.
func (b *base) KeyGroups() KeyGroupRange { return b.cfg.KeyGroups }

// IterateKeyGroups implements Backend.
func (b *base) IterateKeyGroups(r KeyGroupRange, fn func(e *Entry) error) error {
	return b.iterate(r, false, fn)
}

// SnapshotKeyGroups implements Backend.
func (b *base) SnapshotKeyGroups(r KeyGroupRange, fn func(e *Entry) error) error {
	return b.iterate(r, true, fn)
}

func (b *base) iterate(r KeyGroupRange, skipExpired bool, fn func(e *Entry) error) error {
	if b.closed {
		return ErrClosed
	}
	if r.Start > r.End {
		return fmt.Errorf("%w: [%d, %d)", ErrKeyGroupOutOfRange, r.Start, r.End)
	}
	now := b.nowMs()
	var (
		e       Entry
		scratch []byte
	)
	return b.raw.iterate(r, func(kg uint16, prefix, row, col, val []byte) error {
		var op, name string
		if reg, ok := b.specs[string(prefix)]; ok {
			op, name = reg.spec.op, reg.spec.name
			if skipExpired {
				var ok bool
				if val, ok = reg.spec.snapshotValue(val, now, &scratch); !ok {
					return nil
				}
			}
		} else {
			// Not registered since open (a restored state no operator has
			// asked for yet): decode the names, keep the value as is.
			o, rest, err := readPart(prefix)
			if err != nil {
				return err
			}
			n, _, err := readPart(rest)
			if err != nil {
				return err
			}
			op, name = string(o), string(n)
		}
		key, ns, err := splitRow(row)
		if err != nil {
			return err
		}
		e = Entry{KeyGroup: kg, Operator: op, State: name, Key: key, Namespace: ns, Column: col, Value: val}
		return fn(&e)
	})
}

// snapshotValue applies CleanupFullSnapshot to one stored entry of the
// spec: it returns the value a snapshot holds, or false to leave the entry
// out. A rewritten list is built in *scratch.
func (s *tableSpec) snapshotValue(val []byte, now int64, scratch *[]byte) ([]byte, bool) {
	if !s.ttl.fullSnapshot {
		return val, true
	}
	out, act := s.filter(val, now, (*scratch)[:0])
	switch act {
	case remove:
		return nil, false
	case replace:
		*scratch = out
		return out, true
	case keep:
	}
	return val, true
}

// DeleteKeyGroups implements Backend.
func (b *base) DeleteKeyGroups(r KeyGroupRange) error {
	if b.closed {
		return ErrClosed
	}
	if r.Start > r.End {
		return fmt.Errorf("%w: [%d, %d)", ErrKeyGroupOutOfRange, r.Start, r.End)
	}
	return b.raw.deleteRange(r)
}

// CleanupStep implements Backend.
func (b *base) CleanupStep(n int) (int, error) {
	if b.closed {
		return 0, ErrClosed
	}
	done := 0
	for range b.order {
		if done >= n {
			break
		}
		if b.sweepAt >= len(b.order) {
			b.sweepAt = 0
		}
		reg := b.order[b.sweepAt]
		if reg.spec.ttl.ms == 0 {
			b.sweepAt++
			continue
		}
		want := n - done
		c, err := reg.t.sweep(want, reg.spec.sweeper(b.nowMs()))
		done += c
		if err != nil {
			return done, err
		}
		if c < want { // the table went round once: the next one's turn
			b.sweepAt++
		}
	}
	return done, nil
}

// Close implements Backend.
func (b *base) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	return b.raw.close()
}

// keyGroupKey is the 2-byte key that starts key group kg (kg may be
// MaxKeyGroups, the end of everything).
func keyGroupKey(kg uint16) []byte { return binary.BigEndian.AppendUint16(nil, kg) }
