package sabot

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
)

// State is a declared piece of keyed state: a *Value, *List or *Map. A
// function lists the states it uses in Function.States; the worker keeps
// them per key, and the function process holds none between calls.
//
// State is sealed: only this package's declarations implement it.
type State interface {
	// Name is the state's name, unique within a function.
	Name() string
	// Spec is the declaration sent to the worker (Describe, deploy).
	Spec() *sabotv1.StateSpec

	decl() *stateDecl
}

// StateOption configures a state declaration.
type StateOption func(*stateDecl)

// WithTTL expires state d after it was written, measured by the worker's
// processing-time clock: a value d after its last Set, each list element d
// after it was appended (Replace writes all anew), each map entry d after
// its last Put. What expired reads as absent. TTL is kept in whole
// milliseconds, rounded up. The default, 0, keeps
// the state forever; a negative d makes the function invalid.
func WithTTL(d time.Duration) StateOption {
	return func(s *stateDecl) { s.ttl = d }
}

// Lazy declares state the worker does not send with every call. A handler
// reads it within the call, and each read is a round trip to the worker: a
// Value reads itself, a Map reads one key (Get) or pages through its entries
// (Entries), a List pages through its items (Get). Writes never read: an
// Append to a lazy list or a Put to a lazy map is only recorded. Use it for
// state that is large or seldom read. The default is eager: the whole state
// of the key comes with the call.
func Lazy() StateOption {
	return func(s *stateDecl) { s.lazy = true }
}

// stateDecl is what every declaration shares. Its address is the
// declaration's identity: a Context finds a state's slot by it.
type stateDecl struct {
	name    string
	kind    sabotv1.StateKind
	ttl     time.Duration
	lazy    bool
	noCodec bool // a nil codec: reported by Function.Validate
}

func newDecl(name string, kind sabotv1.StateKind, noCodec bool, opts []StateOption) stateDecl {
	d := stateDecl{name: name, kind: kind, noCodec: noCodec}
	for _, o := range opts {
		if o != nil {
			o(&d)
		}
	}
	return d
}

func (d *stateDecl) spec() *sabotv1.StateSpec {
	var ms int64
	if d.ttl > 0 {
		ms = ceilMillis(d.ttl) // a TTL never ends sooner than asked
	}
	return &sabotv1.StateSpec{Name: d.name, Kind: d.kind, TtlMs: ms, Lazy: d.lazy}
}

// Value is a state holding one value of T per key.
type Value[T any] struct {
	d     stateDecl
	codec Codec[T]
}

// NewValue declares a Value state. Declare it once (at package level) and
// list it in the Function.States of each function using it. A nil codec or
// an invalid name is reported when the function is validated.
func NewValue[T any](name string, codec Codec[T], opts ...StateOption) *Value[T] {
	return &Value[T]{d: newDecl(name, sabotv1.StateKind_STATE_KIND_VALUE, codec == nil, opts), codec: codec}
}

// Name implements State.
func (v *Value[T]) Name() string { return v.d.name }

// Spec implements State.
func (v *Value[T]) Spec() *sabotv1.StateSpec { return v.d.spec() }

func (v *Value[T]) decl() *stateDecl {
	if v == nil {
		return nil
	}
	return &v.d
}

// Codec is the value codec the state was declared with.
func (v *Value[T]) Codec() Codec[T] { return v.codec }

// Get returns the key's value and whether it has one, including the
// invocation's own earlier Set or Clear. A lazy value is read from the
// worker on the first Get of the invocation.
func (v *Value[T]) Get(ctx *Context) (T, bool, error) {
	var zero T
	s, err := ctx.slot(&v.d)
	if err != nil {
		return zero, false, err
	}
	b, ok, err := s.value(ctx)
	if err != nil || !ok {
		return zero, false, err
	}
	x, err := v.codec.Decode(b)
	if err != nil {
		return zero, false, fmt.Errorf("sabot: state %q: %w", v.d.name, err)
	}
	return x, true, nil
}

// Set replaces the key's value.
func (v *Value[T]) Set(ctx *Context, x T) error {
	s, err := ctx.slot(&v.d)
	if err != nil {
		return err
	}
	b, err := v.codec.Encode(x)
	if err != nil {
		return fmt.Errorf("sabot: state %q: %w", v.d.name, err)
	}
	s.setValue(b)
	return nil
}

// Clear removes the key's value.
func (v *Value[T]) Clear(ctx *Context) error {
	s, err := ctx.slot(&v.d)
	if err != nil {
		return err
	}
	s.clear()
	return nil
}

// List is a state holding an ordered list of T per key.
type List[T any] struct {
	d     stateDecl
	codec Codec[T]
}

// NewList declares a List state. See NewValue.
func NewList[T any](name string, codec Codec[T], opts ...StateOption) *List[T] {
	return &List[T]{d: newDecl(name, sabotv1.StateKind_STATE_KIND_LIST, codec == nil, opts), codec: codec}
}

// Name implements State.
func (l *List[T]) Name() string { return l.d.name }

// Spec implements State.
func (l *List[T]) Spec() *sabotv1.StateSpec { return l.d.spec() }

func (l *List[T]) decl() *stateDecl {
	if l == nil {
		return nil
	}
	return &l.d
}

// Codec is the item codec the state was declared with.
func (l *List[T]) Codec() Codec[T] { return l.codec }

// Get returns the key's items in order, including the invocation's own
// earlier writes; an empty list is nil. A lazy list is read from the worker
// page by page on the first Get of the invocation (unless a Replace or
// Clear made the read unnecessary).
func (l *List[T]) Get(ctx *Context) ([]T, error) {
	s, err := ctx.slot(&l.d)
	if err != nil {
		return nil, err
	}
	raw, err := s.list(ctx)
	if err != nil || len(raw) == 0 {
		return nil, err
	}
	out := make([]T, len(raw))
	for i, b := range raw {
		if out[i], err = l.codec.Decode(b); err != nil {
			return nil, fmt.Errorf("sabot: state %q: item %d: %w", l.d.name, i, err)
		}
	}
	return out, nil
}

// Append adds items to the end of the key's list without reading it.
func (l *List[T]) Append(ctx *Context, items ...T) error {
	s, err := ctx.slot(&l.d)
	if err != nil {
		return err
	}
	raw, err := l.encode(items)
	if err != nil || len(raw) == 0 {
		return err
	}
	s.appendList(raw)
	return nil
}

// Replace makes items the key's whole list.
func (l *List[T]) Replace(ctx *Context, items []T) error {
	s, err := ctx.slot(&l.d)
	if err != nil {
		return err
	}
	raw, err := l.encode(items)
	if err != nil {
		return err
	}
	if len(raw) == 0 {
		s.clear()
		return nil
	}
	s.replaceList(raw)
	return nil
}

// Clear empties the key's list.
func (l *List[T]) Clear(ctx *Context) error {
	s, err := ctx.slot(&l.d)
	if err != nil {
		return err
	}
	s.clear()
	return nil
}

func (l *List[T]) encode(items []T) ([][]byte, error) {
	raw := make([][]byte, len(items))
	for i, x := range items {
		b, err := l.codec.Encode(x)
		if err != nil {
			return nil, fmt.Errorf("sabot: state %q: item %d: %w", l.d.name, i, err)
		}
		raw[i] = b
	}
	return raw, nil
}

// Map is a state holding a map from K to V per key. Entries are ordered by
// the bytes of their encoded keys (see Codec).
type Map[K, V any] struct {
	d        stateDecl
	keyCodec Codec[K]
	valCodec Codec[V]
}

// Entry is one entry of a Map.
type Entry[K, V any] struct {
	Key   K
	Value V
}

// NewMap declares a Map state. See NewValue.
func NewMap[K, V any](name string, keyCodec Codec[K], valCodec Codec[V], opts ...StateOption) *Map[K, V] {
	return &Map[K, V]{
		d:        newDecl(name, sabotv1.StateKind_STATE_KIND_MAP, keyCodec == nil || valCodec == nil, opts),
		keyCodec: keyCodec,
		valCodec: valCodec,
	}
}

// Name implements State.
func (m *Map[K, V]) Name() string { return m.d.name }

// Spec implements State.
func (m *Map[K, V]) Spec() *sabotv1.StateSpec { return m.d.spec() }

func (m *Map[K, V]) decl() *stateDecl {
	if m == nil {
		return nil
	}
	return &m.d
}

// KeyCodec is the key codec the state was declared with.
func (m *Map[K, V]) KeyCodec() Codec[K] { return m.keyCodec }

// ValueCodec is the value codec the state was declared with.
func (m *Map[K, V]) ValueCodec() Codec[V] { return m.valCodec }

// Get returns the value at k and whether there is one, including the
// invocation's own earlier writes. On a lazy map, a key neither written nor
// read before in the invocation is read from the worker.
func (m *Map[K, V]) Get(ctx *Context, k K) (V, bool, error) {
	var zero V
	s, err := ctx.slot(&m.d)
	if err != nil {
		return zero, false, err
	}
	kb, err := m.keyCodec.Encode(k)
	if err != nil {
		return zero, false, fmt.Errorf("sabot: state %q: key: %w", m.d.name, err)
	}
	b, ok, err := s.mapGet(ctx, kb)
	if err != nil || !ok {
		return zero, false, err
	}
	v, err := m.valCodec.Decode(b)
	if err != nil {
		return zero, false, fmt.Errorf("sabot: state %q: %w", m.d.name, err)
	}
	return v, true, nil
}

// Put sets the value at k without reading the map.
func (m *Map[K, V]) Put(ctx *Context, k K, v V) error {
	s, err := ctx.slot(&m.d)
	if err != nil {
		return err
	}
	kb, err := m.keyCodec.Encode(k)
	if err != nil {
		return fmt.Errorf("sabot: state %q: key: %w", m.d.name, err)
	}
	vb, err := m.valCodec.Encode(v)
	if err != nil {
		return fmt.Errorf("sabot: state %q: %w", m.d.name, err)
	}
	s.mapPut(kb, vb, true)
	return nil
}

// Remove removes k (absent or not) without reading the map.
func (m *Map[K, V]) Remove(ctx *Context, k K) error {
	s, err := ctx.slot(&m.d)
	if err != nil {
		return err
	}
	kb, err := m.keyCodec.Encode(k)
	if err != nil {
		return fmt.Errorf("sabot: state %q: key: %w", m.d.name, err)
	}
	s.mapPut(kb, nil, false)
	return nil
}

// Clear empties the key's map.
func (m *Map[K, V]) Clear(ctx *Context) error {
	s, err := ctx.slot(&m.d)
	if err != nil {
		return err
	}
	s.clear()
	return nil
}

// Entries returns the map's entries in key order (by encoded key bytes),
// including the invocation's own earlier writes. A lazy map is read from the
// worker page by page on the first Entries of the invocation (unless a Clear
// made the read unnecessary); later Gets of the invocation need no read.
func (m *Map[K, V]) Entries(ctx *Context) ([]Entry[K, V], error) {
	s, err := ctx.slot(&m.d)
	if err != nil {
		return nil, err
	}
	raw, err := s.mapEntries(ctx)
	if err != nil || len(raw) == 0 {
		return nil, err
	}
	out := make([]Entry[K, V], len(raw))
	for i, e := range raw {
		if out[i].Key, err = m.keyCodec.Decode(e.key); err != nil {
			return nil, fmt.Errorf("sabot: state %q: key: %w", m.d.name, err)
		}
		if out[i].Value, err = m.valCodec.Decode(e.val); err != nil {
			return nil, fmt.Errorf("sabot: state %q: %w", m.d.name, err)
		}
	}
	return out, nil
}

// statePageLimit is how many list items or map entries one lazy read asks
// for.
const statePageLimit = 512

// stateSlot is one state of the key within one invocation: what is known of
// the stored state, overlaid with the invocation's writes, and the writes as
// mutations for the worker. Only the invocation's goroutine touches it.
type stateSlot struct {
	d *stateDecl
	// known: the fields below reflect the whole state of the key. Eager
	// state starts known; lazy state becomes known when read in full or
	// overwritten (Set, Replace, Clear).
	known bool
	// Value.
	present bool
	val     []byte
	// List: all items when known; else the items appended over a base not
	// read yet.
	items [][]byte
	// Map: all entries when known (absence means absent); else the keys read
	// or written, with removed keys kept as absent.
	entries map[string]slotEntry
	// muts are this state's mutations in order, compacted: a Set, Replace
	// or Clear drops the ones before it, appends merge, and a map key keeps
	// only its last Put or Remove (nil marks a dropped one).
	muts   []*sabotv1.StateMutation
	mapMut map[string]int // Map: index in muts of the key's last Put or Remove
}

type slotEntry struct {
	val     []byte
	present bool
}

type rawEntry struct{ key, val []byte }

// load sets an eagerly sent (or absent) state.
func (s *stateSlot) load(v *sabotv1.StateValue) error {
	s.known = true
	if v == nil {
		return nil
	}
	switch s.d.kind {
	case sabotv1.StateKind_STATE_KIND_VALUE:
		b, ok := v.GetValue().(*sabotv1.StateValue_Bytes)
		if !ok {
			return fmt.Errorf("sabot: state %q: worker sent a %T for a value", s.d.name, v.GetValue())
		}
		s.present, s.val = true, b.Bytes
	case sabotv1.StateKind_STATE_KIND_LIST:
		l, ok := v.GetValue().(*sabotv1.StateValue_List)
		if !ok {
			return fmt.Errorf("sabot: state %q: worker sent a %T for a list", s.d.name, v.GetValue())
		}
		s.items = slices.Clip(l.List.GetItems()) // appends must not write into the call
	case sabotv1.StateKind_STATE_KIND_MAP:
		m, ok := v.GetValue().(*sabotv1.StateValue_Map)
		if !ok {
			return fmt.Errorf("sabot: state %q: worker sent a %T for a map", s.d.name, v.GetValue())
		}
		es := m.Map.GetEntries()
		s.entries = make(map[string]slotEntry, len(es))
		for _, e := range es {
			s.entries[string(e.GetKey())] = slotEntry{val: e.GetValue(), present: true}
		}
	default:
		return fmt.Errorf("sabot: state %q: unknown kind %v", s.d.name, s.d.kind)
	}
	return nil
}

func (s *stateSlot) value(c *Context) ([]byte, bool, error) {
	if !s.known {
		r, err := c.read(s.d.name, &sabotv1.StateRead{What: &sabotv1.StateRead_Value{Value: true}})
		if err != nil {
			return nil, false, err
		}
		s.known, s.present, s.val = true, r.GetFound(), r.GetValue()
	}
	return s.val, s.present, nil
}

func (s *stateSlot) setValue(b []byte) {
	s.known, s.present, s.val = true, true, b
	s.muts = append(s.muts[:0], &sabotv1.StateMutation{State: s.d.name, Op: &sabotv1.StateMutation_Set{Set: b}})
}

// clear empties any kind of state.
func (s *stateSlot) clear() {
	s.known, s.present, s.val, s.items = true, false, nil, nil
	if s.entries != nil {
		clear(s.entries)
	}
	clear(s.mapMut)
	s.muts = append(s.muts[:0], &sabotv1.StateMutation{State: s.d.name, Op: &sabotv1.StateMutation_Clear{Clear: true}})
}

func (s *stateSlot) list(c *Context) ([][]byte, error) {
	if s.known {
		return s.items, nil
	}
	var base [][]byte
	for {
		page := &sabotv1.Page{Offset: int64(len(base)), Limit: statePageLimit}
		r, err := c.read(s.d.name, &sabotv1.StateRead{What: &sabotv1.StateRead_Page{Page: page}})
		if err != nil {
			return nil, err
		}
		base = append(base, r.GetItems()...)
		if !r.GetMore() {
			break
		}
		if len(r.GetItems()) == 0 {
			return nil, fmt.Errorf("%w: state %q: empty page with more to come", ErrStateRead, s.d.name)
		}
	}
	s.items, s.known = append(base, s.items...), true
	return s.items, nil
}

func (s *stateSlot) appendList(raw [][]byte) {
	s.items = append(s.items, raw...)
	if n := len(s.muts); n > 0 {
		switch op := s.muts[n-1].Op.(type) {
		case *sabotv1.StateMutation_Append:
			op.Append.Items = append(op.Append.Items, raw...)
			return
		case *sabotv1.StateMutation_Replace:
			op.Replace.Items = append(op.Replace.Items, raw...)
			return
		case *sabotv1.StateMutation_Clear:
			// Clear then append is a replace.
			s.muts[n-1] = &sabotv1.StateMutation{State: s.d.name, Op: &sabotv1.StateMutation_Replace{
				Replace: &sabotv1.ListValue{Items: slices.Clone(raw)},
			}}
			return
		}
	}
	s.muts = append(s.muts, &sabotv1.StateMutation{State: s.d.name, Op: &sabotv1.StateMutation_Append{
		Append: &sabotv1.ListValue{Items: slices.Clone(raw)},
	}})
}

func (s *stateSlot) replaceList(raw [][]byte) {
	s.known, s.items = true, raw
	s.muts = append(s.muts[:0], &sabotv1.StateMutation{State: s.d.name, Op: &sabotv1.StateMutation_Replace{
		Replace: &sabotv1.ListValue{Items: slices.Clone(raw)},
	}})
}

func (s *stateSlot) mapGet(c *Context, k []byte) ([]byte, bool, error) {
	if e, ok := s.entries[string(k)]; ok {
		return e.val, e.present, nil
	}
	if s.known {
		return nil, false, nil
	}
	r, err := c.read(s.d.name, &sabotv1.StateRead{What: &sabotv1.StateRead_MapKey{MapKey: k}})
	if err != nil {
		return nil, false, err
	}
	if s.entries == nil {
		s.entries = make(map[string]slotEntry)
	}
	s.entries[string(k)] = slotEntry{val: r.GetValue(), present: r.GetFound()}
	return r.GetValue(), r.GetFound(), nil
}

// mapPut records a Put (present) or a Remove.
func (s *stateSlot) mapPut(k, v []byte, present bool) {
	ks := string(k)
	switch {
	case present || !s.known:
		if s.entries == nil {
			s.entries = make(map[string]slotEntry)
		}
		s.entries[ks] = slotEntry{val: v, present: present}
	default:
		delete(s.entries, ks)
	}
	m := &sabotv1.StateMutation{State: s.d.name}
	if present {
		m.Op = &sabotv1.StateMutation_Put{Put: &sabotv1.MapEntry{Key: k, Value: v}}
	} else {
		m.Op = &sabotv1.StateMutation_Remove{Remove: k}
	}
	if s.mapMut == nil {
		s.mapMut = make(map[string]int)
	}
	if i, ok := s.mapMut[ks]; ok {
		s.muts[i] = nil
	}
	s.mapMut[ks] = len(s.muts)
	s.muts = append(s.muts, m)
}

func (s *stateSlot) mapEntries(c *Context) ([]rawEntry, error) {
	if !s.known {
		if s.entries == nil {
			s.entries = make(map[string]slotEntry)
		}
		var after []byte
		for {
			page := &sabotv1.Page{After: after, Limit: statePageLimit}
			r, err := c.read(s.d.name, &sabotv1.StateRead{What: &sabotv1.StateRead_Page{Page: page}})
			if err != nil {
				return nil, err
			}
			es := r.GetEntries()
			for _, e := range es {
				if _, ok := s.entries[string(e.GetKey())]; !ok { // the invocation's writes win
					s.entries[string(e.GetKey())] = slotEntry{val: e.GetValue(), present: true}
				}
			}
			if !r.GetMore() {
				break
			}
			if len(es) == 0 {
				return nil, fmt.Errorf("%w: state %q: empty page with more to come", ErrStateRead, s.d.name)
			}
			after = es[len(es)-1].GetKey()
		}
		s.known = true
		for k, e := range s.entries { // known maps keep no removed keys
			if !e.present {
				delete(s.entries, k)
			}
		}
	}
	out := make([]rawEntry, 0, len(s.entries))
	for k, e := range s.entries {
		out = append(out, rawEntry{key: []byte(k), val: e.val})
	}
	slices.SortFunc(out, func(a, b rawEntry) int { return bytes.Compare(a.key, b.key) })
	return out, nil
}
