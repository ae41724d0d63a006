package state

import (
	"bytes"
	"fmt"
	"iter"
	"maps"
	"slices"
)

// Operator state: state of a non-keyed operator (a source's split offsets,
// a broadcast rule set), kept in memory as decoded values and snapshotted
// through its codecs. It does not use a Backend: it is small, and its
// redistribution on rescale (next milestone) works on whole lists, not key
// groups:
//
//   - list state, RoundRobin: the union of all subtasks' items is dealt
//     out round robin (Flink's getListState);
//   - list state, Union: every subtask gets all items (getUnionListState);
//   - broadcast state: every subtask snapshots the same map; one copy is
//     restored to all.

// Redistribution is how a list state's items move on rescale.
type Redistribution uint8

const (
	// RoundRobin splits the items among the new subtasks.
	RoundRobin Redistribution = iota
	// Union gives every new subtask all items.
	Union
	// Broadcast marks broadcast (map) state: identical on every subtask.
	Broadcast
)

// OperatorItem is one snapshotted item: Key is nil for list items.
type OperatorItem struct {
	Key, Value []byte
}

// OperatorSnapshot is one operator state's snapshot.
type OperatorSnapshot struct {
	Name           string
	Redistribution Redistribution
	Items          []OperatorItem
}

// OperatorStore holds the operator states of one operator subtask. Like
// Keyed, it is used from the task's goroutine only.
type OperatorStore struct {
	states   map[string]operatorState
	restored map[string]OperatorSnapshot
}

type operatorState interface {
	snapshot() (OperatorSnapshot, error)
	redistribution() Redistribution
}

// NewOperatorStore returns a store whose states start from snaps (nil for
// a fresh start): a state registered later under a snapshot's name is
// filled from it.
func NewOperatorStore(snaps []OperatorSnapshot) *OperatorStore {
	s := &OperatorStore{states: make(map[string]operatorState), restored: make(map[string]OperatorSnapshot)}
	for _, sn := range snaps {
		s.restored[sn.Name] = sn
	}
	return s
}

// Snapshot encodes every registered state, by name, plus restored states
// no one registered again (so they are not lost).
func (s *OperatorStore) Snapshot() ([]OperatorSnapshot, error) {
	out := make([]OperatorSnapshot, 0, len(s.states)+len(s.restored))
	for _, name := range slices.Sorted(maps.Keys(s.states)) {
		sn, err := s.states[name].snapshot()
		if err != nil {
			return nil, fmt.Errorf("state: snapshot operator state %q: %w", name, err)
		}
		out = append(out, sn)
	}
	for _, name := range slices.Sorted(maps.Keys(s.restored)) {
		out = append(out, s.restored[name])
	}
	return out, nil
}

// take registers name and returns its restored snapshot, if any.
func (s *OperatorStore) take(name string, r Redistribution, st operatorState) (OperatorSnapshot, bool, error) {
	if name == "" {
		return OperatorSnapshot{}, false, fmt.Errorf("%w: empty operator state name", ErrInvalidDescriptor)
	}
	if _, ok := s.states[name]; ok {
		return OperatorSnapshot{}, false, fmt.Errorf("%w: operator state %q registered twice", ErrStateConflict, name)
	}
	if sn, ok := s.restored[name]; ok && sn.Redistribution != r {
		return OperatorSnapshot{}, false, fmt.Errorf("%w: operator state %q restored with another redistribution", ErrStateConflict, name)
	}
	sn, ok := s.restored[name]
	delete(s.restored, name)
	s.states[name] = st
	return sn, ok, nil
}

// OperatorListState is a list of items of an operator subtask.
type OperatorListState[T any] struct {
	name  string
	mode  Redistribution
	codec Codec[T]
	items []T
}

// OperatorList registers the list state name in s. mode is RoundRobin or
// Union.
func OperatorList[T any](s *OperatorStore, name string, mode Redistribution, c Codec[T]) (*OperatorListState[T], error) {
	if c == nil || mode == Broadcast {
		return nil, fmt.Errorf("%w: operator list state %q needs a codec and a list redistribution", ErrInvalidDescriptor, name)
	}
	l := &OperatorListState[T]{name: name, mode: mode, codec: c}
	sn, ok, err := s.take(name, mode, l)
	if err != nil || !ok {
		return l, err
	}
	for _, it := range sn.Items {
		v, err := c.Decode(it.Value)
		if err != nil {
			return nil, fmt.Errorf("state: restore operator list %q: %w", name, err)
		}
		l.items = append(l.items, v)
	}
	return l, nil
}

// Get returns the items; the slice is the state's own (do not modify).
func (l *OperatorListState[T]) Get() []T { return l.items }

// Add appends v.
func (l *OperatorListState[T]) Add(v T) { l.items = append(l.items, v) }

// Update replaces the items by a copy of vs.
func (l *OperatorListState[T]) Update(vs []T) { l.items = append(l.items[:0:0], vs...) }

// Clear removes every item.
func (l *OperatorListState[T]) Clear() { l.items = nil }

func (l *OperatorListState[T]) redistribution() Redistribution { return l.mode }

func (l *OperatorListState[T]) snapshot() (OperatorSnapshot, error) {
	sn := OperatorSnapshot{Name: l.name, Redistribution: l.mode, Items: make([]OperatorItem, 0, len(l.items))}
	for _, v := range l.items {
		b, err := l.codec.Append(nil, v)
		if err != nil {
			return sn, err
		}
		sn.Items = append(sn.Items, OperatorItem{Value: b})
	}
	return sn, nil
}

// BroadcastState is a map that is the same on every subtask of an
// operator (the broadcast side of a broadcast connect writes it).
type BroadcastState[K comparable, V any] struct {
	name string
	kc   Codec[K]
	vc   Codec[V]
	m    map[K]V
}

// BroadcastMap registers the broadcast state name in s.
func BroadcastMap[K comparable, V any](s *OperatorStore, name string, kc Codec[K], vc Codec[V]) (*BroadcastState[K, V], error) {
	if kc == nil || vc == nil {
		return nil, fmt.Errorf("%w: broadcast state %q needs key and value codecs", ErrInvalidDescriptor, name)
	}
	b := &BroadcastState[K, V]{name: name, kc: kc, vc: vc, m: make(map[K]V)}
	sn, ok, err := s.take(name, Broadcast, b)
	if err != nil || !ok {
		return b, err
	}
	for _, it := range sn.Items {
		k, err := kc.Decode(it.Key)
		if err != nil {
			return nil, fmt.Errorf("state: restore broadcast state %q: %w", name, err)
		}
		v, err := vc.Decode(it.Value)
		if err != nil {
			return nil, fmt.Errorf("state: restore broadcast state %q: %w", name, err)
		}
		b.m[k] = v
	}
	return b, nil
}

// Get returns the value of k and whether it is present.
func (b *BroadcastState[K, V]) Get(k K) (V, bool) {
	v, ok := b.m[k]
	return v, ok
}

// Put sets k to v.
func (b *BroadcastState[K, V]) Put(k K, v V) { b.m[k] = v }

// Remove deletes k.
func (b *BroadcastState[K, V]) Remove(k K) { delete(b.m, k) }

// Len is the number of entries.
func (b *BroadcastState[K, V]) Len() int { return len(b.m) }

// All iterates the entries in unspecified order.
func (b *BroadcastState[K, V]) All() iter.Seq2[K, V] { return maps.All(b.m) }

// Clear removes every entry.
func (b *BroadcastState[K, V]) Clear() { clear(b.m) }

func (b *BroadcastState[K, V]) redistribution() Redistribution { return Broadcast }

// snapshot encodes the entries sorted by encoded key, so every subtask's
// snapshot of the same map is byte-identical.
func (b *BroadcastState[K, V]) snapshot() (OperatorSnapshot, error) {
	sn := OperatorSnapshot{Name: b.name, Redistribution: Broadcast, Items: make([]OperatorItem, 0, len(b.m))}
	for k, v := range b.m {
		kb, err := b.kc.Append(nil, k)
		if err != nil {
			return sn, err
		}
		vb, err := b.vc.Append(nil, v)
		if err != nil {
			return sn, err
		}
		sn.Items = append(sn.Items, OperatorItem{Key: kb, Value: vb})
	}
	slices.SortFunc(sn.Items, func(x, y OperatorItem) int { return bytes.Compare(x.Key, y.Key) })
	return sn, nil
}
