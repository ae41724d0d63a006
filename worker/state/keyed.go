package state

import (
	"fmt"
	"strings"
)

// Keyed is one operator's view of a backend: the current key, key group
// and namespace that its state handles and timer services are scoped to,
// and the registry of its states (Flink's KeyedStateBackend as seen by one
// operator, plus its KeyContext). The operator sets the current key before
// processing a record; timer services set it before each firing.
//
// A Keyed, its handles and its timer services are used by the task's
// goroutine only; nothing here locks.
type Keyed struct {
	b   *base
	op  string
	kgs KeyGroupRange

	kg  uint16
	key []byte
	ns  []byte
	// row is appendPart(key) | appendPart(ns), the row of every access,
	// built on first use after the key or namespace changed (rowStale):
	// operators often set the key and then the namespace, or switch the
	// namespace several times before an access.
	row      []byte
	rowStale bool

	timers map[string]*TimerService
}

// NewKeyed returns the keyed context of operator operatorID on b. The
// current key starts as the empty key in the range's first key group, the
// namespace as empty (Flink's VoidNamespace).
func NewKeyed(b Backend, operatorID string) (*Keyed, error) {
	if operatorID == "" {
		return nil, fmt.Errorf("%w: empty operator id", ErrInvalidDescriptor)
	}
	c := b.core()
	if c.closed {
		return nil, ErrClosed
	}
	k := &Keyed{b: c, op: operatorID, kgs: c.cfg.KeyGroups, kg: c.cfg.KeyGroups.Start, rowStale: true,
		timers: make(map[string]*TimerService)}
	return k, nil
}

// SetCurrentKey makes key (its bytes as the key serializer wrote them) in
// key group kg the current key. The bytes are copied. It fails with
// ErrKeyGroupOutOfRange when the backend does not own kg.
func (k *Keyed) SetCurrentKey(key []byte, kg uint16) error {
	if !k.kgs.Contains(kg) {
		return fmt.Errorf("%w: key group %d not in [%d, %d)", ErrKeyGroupOutOfRange, kg, k.kgs.Start, k.kgs.End)
	}
	k.kg = kg
	k.key = append(k.key[:0], key...)
	k.rowStale = true
	return nil
}

// SetCurrentNamespace makes ns the current namespace (a window, say); nil
// or empty is the default namespace. The bytes are copied.
func (k *Keyed) SetCurrentNamespace(ns []byte) {
	k.ns = append(k.ns[:0], ns...)
	k.rowStale = true
}

// CurrentKey returns the current key; valid until the key changes.
func (k *Keyed) CurrentKey() []byte { return k.key }

// CurrentKeyGroup returns the current key's key group.
func (k *Keyed) CurrentKeyGroup() uint16 { return k.kg }

// CurrentNamespace returns the current namespace; valid until it changes.
func (k *Keyed) CurrentNamespace() []byte { return k.ns }

// OperatorID is the operator this context belongs to.
func (k *Keyed) OperatorID() string { return k.op }

// currentRow returns the current (key, namespace) row, valid until the key
// or namespace changes.
func (k *Keyed) currentRow() []byte {
	if k.rowStale {
		k.row = appendPart(appendPart(k.row[:0], k.key), k.ns)
		k.rowStale = false
	}
	return k.row
}

// setRow makes the (key, namespace) encoded in row current (timer firing).
func (k *Keyed) setRow(kg uint16, row []byte) error {
	key, ns, err := splitRow(row)
	if err != nil {
		return err
	}
	k.kg = kg
	k.key = append(k.key[:0], key...)
	k.ns = append(k.ns[:0], ns...)
	k.row = append(k.row[:0], row...)
	k.rowStale = false
	return nil
}

// timerPrefix is reserved for timer service tables.
const timerPrefix = "_timers/"

func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty state name", ErrInvalidDescriptor)
	}
	if strings.HasPrefix(name, timerPrefix) {
		return fmt.Errorf("%w: state name %q uses the reserved prefix %q", ErrInvalidDescriptor, name, timerPrefix)
	}
	return nil
}

// handle is the part shared by every state handle: the table, the spec
// and scratch space for encoding.
type handle struct {
	k    *Keyed
	t    table
	spec *tableSpec
	buf  []byte // encoded value being written
	tmp  []byte // list element body, map user key
}

func newHandle(k *Keyed, name string, kd kind, ttl TTLConfig) (handle, error) {
	if err := checkName(name); err != nil {
		return handle{}, err
	}
	p, err := ttl.params()
	if err != nil {
		return handle{}, fmt.Errorf("state %q: %w", name, err)
	}
	spec, t, err := k.b.register(k.op, name, kd, p)
	if err != nil {
		return handle{}, err
	}
	return handle{k: k, t: t, spec: spec, buf: make([]byte, 0, 64), tmp: make([]byte, 0, 32)}, nil
}

func (h *handle) now() int64 { return h.k.b.nowMs() }

// afterAccess runs incremental cleanup if the state asks for it; it passes
// err through first.
func (h *handle) afterAccess(err error) error {
	if err != nil || h.spec.ttl.incremental == 0 {
		return err
	}
	_, err = h.t.sweep(h.spec.ttl.incremental, h.spec.sweeper(h.now()))
	return err
}

// readSingle reads the single value at (current row, col) and applies TTL.
// internal reads (reducing and aggregating adds) see an expired value as
// absent and never refresh it, as Flink's TTL reduce/aggregate functions.
// The payload is valid until the next call on the handle.
func (h *handle) readSingle(col []byte, internal bool) ([]byte, bool, error) {
	row := h.k.currentRow()
	stored, ok, err := h.t.get(h.k.kg, row, col)
	if err != nil || !ok {
		return nil, false, err
	}
	p := &h.spec.ttl
	if p.ms == 0 {
		return stored, true, nil
	}
	ts, payload, err := p.splitHeader(stored)
	if err != nil {
		return nil, false, err
	}
	now := h.now()
	if p.expired(ts, now) {
		if p.onRead {
			// payload stays readable: the heap drops its reference, pebble
			// returned a copy.
			if err := h.t.del(h.k.kg, row, col); err != nil {
				return nil, false, err
			}
		}
		if internal || p.visibility == NeverReturnExpired {
			return nil, false, nil
		}
		return payload, true, nil
	}
	if !internal && p.update == OnReadAndWrite {
		h.buf = append(p.appendHeader(h.buf[:0], now), payload...)
		if err := h.t.set(h.k.kg, row, col, h.buf); err != nil {
			return nil, false, err
		}
		return h.buf[tsLen:], true, nil
	}
	return payload, true, nil
}

// begin returns the write buffer with the TTL header for now. The clock is
// read only when the state has a TTL: on the heap backend a clock read is
// a large part of a write.
func (h *handle) begin() []byte {
	if h.spec.ttl.ms == 0 {
		return h.buf[:0]
	}
	return h.spec.ttl.appendHeader(h.buf[:0], h.now())
}

// nowIfTTL is the clock's time when the state has a TTL, and 0 (unused)
// otherwise.
func (h *handle) nowIfTTL() int64 {
	if h.spec.ttl.ms == 0 {
		return 0
	}
	return h.now()
}

// set writes val at the current row and col, then runs incremental
// cleanup.
func (h *handle) set(col, val []byte) error {
	return h.afterAccess(h.t.set(h.k.kg, h.k.currentRow(), col, val))
}

// clear deletes the current row of the state.
func (h *handle) clear() error { return h.afterAccess(h.t.delRow(h.k.kg, h.k.currentRow())) }
