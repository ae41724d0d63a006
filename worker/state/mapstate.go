package state

import (
	"errors"
	"fmt"
)

// MapDescriptor names a MapState.
type MapDescriptor[K, V any] struct {
	Name       string
	KeyCodec   Codec[K]
	ValueCodec Codec[V]
	// TTL applies per map entry.
	TTL TTLConfig
}

// MapState holds a map per (key, namespace). Each entry is its own stored
// entry (the user key is the column), so Get and Put touch one entry, not
// the map. Iteration order is unspecified (pebble: by encoded user key;
// heap: Go map order).
type MapState[K, V any] struct {
	h  handle
	kc Codec[K]
	vc Codec[V]
}

// Map registers (or finds) the map state d.Name.
func Map[K, V any](k *Keyed, d MapDescriptor[K, V]) (*MapState[K, V], error) {
	if d.KeyCodec == nil || d.ValueCodec == nil {
		return nil, fmt.Errorf("%w: map state %q needs a key and a value codec", ErrInvalidDescriptor, d.Name)
	}
	h, err := newHandle(k, d.Name, kindMap, d.TTL)
	if err != nil {
		return nil, err
	}
	return &MapState[K, V]{h: h, kc: d.KeyCodec, vc: d.ValueCodec}, nil
}

// col encodes the user key into h.tmp; never nil (nil means "no column").
func (s *MapState[K, V]) col(key K) ([]byte, error) {
	c, err := s.kc.Append(s.h.tmp[:0], key)
	if err != nil {
		return nil, err
	}
	if c == nil {
		c = []byte{}
	}
	s.h.tmp = c
	return c, nil
}

// Get returns the value of key and whether it is present.
func (s *MapState[K, V]) Get(key K) (V, bool, error) {
	var zero V
	c, err := s.col(key)
	if err != nil {
		return zero, false, err
	}
	p, ok, err := s.h.readSingle(c, false)
	if err != nil || !ok {
		return zero, false, s.h.afterAccess(err)
	}
	v, err := s.vc.Decode(p)
	if err != nil {
		return zero, false, err
	}
	return v, true, s.h.afterAccess(nil)
}

// Contains reports whether key is present (and visible under TTL).
func (s *MapState[K, V]) Contains(key K) (bool, error) {
	c, err := s.col(key)
	if err != nil {
		return false, err
	}
	_, ok, err := s.h.readSingle(c, false)
	return ok, s.h.afterAccess(err)
}

// Put sets key to v.
func (s *MapState[K, V]) Put(key K, v V) error {
	c, err := s.col(key)
	if err != nil {
		return err
	}
	buf, err := s.vc.Append(s.h.begin(), v)
	if err != nil {
		return err
	}
	s.h.buf = buf
	return s.h.set(c, buf)
}

// Remove deletes key.
func (s *MapState[K, V]) Remove(key K) error {
	c, err := s.col(key)
	if err != nil {
		return err
	}
	return s.h.afterAccess(s.h.t.del(s.h.k.kg, s.h.k.currentRow(), c))
}

// errStop ends a scan early; never returned to callers.
var errStop = errors.New("state: stop")

// Iterate calls fn for every visible entry until fn returns an error, which
// Iterate returns. fn must not modify this map state. TTL applies per entry
// as in Get.
func (s *MapState[K, V]) Iterate(fn func(key K, v V) error) error {
	h := &s.h
	p := &h.spec.ttl
	now := h.nowIfTTL()
	row := h.k.currentRow()
	err := h.t.scanRow(h.k.kg, row, func(col, stored []byte) error {
		ts, payload, err := p.splitHeader(stored)
		if err != nil {
			return err
		}
		if p.ms != 0 {
			if p.expired(ts, now) {
				if p.onRead {
					if err := h.t.del(h.k.kg, row, col); err != nil {
						return err
					}
				}
				if p.visibility == NeverReturnExpired {
					return nil
				}
			} else if p.update == OnReadAndWrite {
				h.buf = append(p.appendHeader(h.buf[:0], now), payload...)
				if err := h.t.set(h.k.kg, row, col, h.buf); err != nil {
					return err
				}
				payload = h.buf[tsLen:]
			}
		}
		k, err := s.kc.Decode(col)
		if err != nil {
			return err
		}
		v, err := s.vc.Decode(payload)
		if err != nil {
			return err
		}
		return fn(k, v)
	})
	return h.afterAccess(err)
}

// IsEmpty reports whether the map has no visible entry.
func (s *MapState[K, V]) IsEmpty() (bool, error) {
	empty := true
	err := s.Iterate(func(K, V) error { empty = false; return errStop })
	if errors.Is(err, errStop) {
		err = nil
	}
	return empty, err
}

// Clear removes every entry.
func (s *MapState[K, V]) Clear() error { return s.h.clear() }
