package state

import "fmt"

// ListDescriptor names a ListState.
type ListDescriptor[T any] struct {
	Name  string
	Codec Codec[T]
	// TTL applies per element.
	TTL TTLConfig
}

// ListState holds a list per (key, namespace). Add is an append that does
// not read the list (a pebble merge), so long lists stay cheap to grow;
// Get decodes the whole list.
type ListState[T any] struct {
	h     handle
	codec Codec[T]
}

// List registers (or finds) the list state d.Name.
func List[T any](k *Keyed, d ListDescriptor[T]) (*ListState[T], error) {
	if d.Codec == nil {
		return nil, fmt.Errorf("%w: list state %q has no codec", ErrInvalidDescriptor, d.Name)
	}
	h, err := newHandle(k, d.Name, kindList, d.TTL)
	if err != nil {
		return nil, err
	}
	return &ListState[T]{h: h, codec: d.Codec}, nil
}

// Get returns the elements in the order added; nil when the list is empty.
// With TTL, expired elements are left out (NeverReturnExpired) and removed
// (CleanupOnRead); OnReadAndWrite refreshes the returned elements.
func (s *ListState[T]) Get() ([]T, error) {
	h := &s.h
	row := h.k.currentRow()
	stored, ok, err := h.t.get(h.k.kg, row, nil)
	if err != nil || !ok {
		return nil, h.afterAccess(err)
	}
	p := &h.spec.ttl
	now := h.nowIfTTL()
	var (
		out     []T
		rewrite bool
		kept    = h.buf[:0]
	)
	for rest := stored; len(rest) > 0; {
		ts, payload, r, err := p.nextElem(rest)
		if err != nil {
			return nil, err
		}
		rest = r
		exp := p.ms != 0 && p.expired(ts, now)
		if !exp || p.visibility == ReturnExpiredIfNotCleanedUp {
			v, err := s.codec.Decode(payload)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		if p.ms == 0 {
			continue
		}
		switch {
		case exp && p.onRead:
			rewrite = true // dropped
			continue
		case !exp && p.update == OnReadAndWrite:
			rewrite = true
			ts = now
		}
		h.tmp = append(p.appendHeader(h.tmp[:0], ts), payload...)
		kept = appendPart(kept, h.tmp)
	}
	h.buf = kept
	if rewrite {
		if len(kept) == 0 {
			err = h.t.delRow(h.k.kg, row)
		} else {
			err = h.t.set(h.k.kg, row, nil, kept)
		}
	}
	return out, h.afterAccess(err)
}

// appendElem appends v as one element to dst.
func (s *ListState[T]) appendElem(dst []byte, v T, now int64) ([]byte, error) {
	body, err := s.codec.Append(s.h.spec.ttl.appendHeader(s.h.tmp[:0], now), v)
	if err != nil {
		return dst, err
	}
	s.h.tmp = body
	return appendPart(dst, body), nil
}

// Add appends v.
func (s *ListState[T]) Add(v T) error {
	buf, err := s.appendElem(s.h.buf[:0], v, s.h.nowIfTTL())
	if err != nil {
		return err
	}
	s.h.buf = buf
	return s.h.afterAccess(s.h.t.appendElem(s.h.k.kg, s.h.k.currentRow(), buf))
}

// AddAll appends vs in order.
func (s *ListState[T]) AddAll(vs []T) error {
	if len(vs) == 0 {
		return nil
	}
	buf, err := s.encode(vs)
	if err != nil {
		return err
	}
	return s.h.afterAccess(s.h.t.appendElem(s.h.k.kg, s.h.k.currentRow(), buf))
}

// Update replaces the list by vs; an empty vs clears it.
func (s *ListState[T]) Update(vs []T) error {
	if len(vs) == 0 {
		return s.Clear()
	}
	buf, err := s.encode(vs)
	if err != nil {
		return err
	}
	return s.h.set(nil, buf)
}

func (s *ListState[T]) encode(vs []T) ([]byte, error) {
	now := s.h.nowIfTTL()
	buf := s.h.buf[:0]
	for _, v := range vs {
		var err error
		if buf, err = s.appendElem(buf, v, now); err != nil {
			return nil, err
		}
	}
	s.h.buf = buf
	return buf, nil
}

// Clear removes the list.
func (s *ListState[T]) Clear() error { return s.h.clear() }
