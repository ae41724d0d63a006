package state

import "fmt"

// ValueDescriptor names a ValueState and says how to encode it.
type ValueDescriptor[T any] struct {
	Name  string
	Codec Codec[T]
	TTL   TTLConfig
}

// ValueState holds one value per (key, namespace).
type ValueState[T any] struct {
	h     handle
	codec Codec[T]
}

// Value registers (or finds) the value state d.Name of k's operator.
func Value[T any](k *Keyed, d ValueDescriptor[T]) (*ValueState[T], error) {
	if d.Codec == nil {
		return nil, fmt.Errorf("%w: value state %q has no codec", ErrInvalidDescriptor, d.Name)
	}
	h, err := newHandle(k, d.Name, kindValue, d.TTL)
	if err != nil {
		return nil, err
	}
	return &ValueState[T]{h: h, codec: d.Codec}, nil
}

// Value returns the current value and whether there is one.
func (s *ValueState[T]) Value() (T, bool, error) {
	var zero T
	p, ok, err := s.h.readSingle(nil, false)
	if err != nil || !ok {
		return zero, false, s.h.afterAccess(err)
	}
	v, err := s.codec.Decode(p)
	if err != nil {
		return zero, false, err
	}
	return v, true, s.h.afterAccess(nil)
}

// Update sets the current value.
func (s *ValueState[T]) Update(v T) error {
	buf, err := s.codec.Append(s.h.begin(), v)
	if err != nil {
		return err
	}
	s.h.buf = buf
	return s.h.set(nil, buf)
}

// Clear removes the current value.
func (s *ValueState[T]) Clear() error { return s.h.clear() }

// ReducingDescriptor names a ReducingState; Reduce combines the stored
// value with an added one.
type ReducingDescriptor[T any] struct {
	Name   string
	Codec  Codec[T]
	Reduce func(acc, v T) T
	TTL    TTLConfig
}

// ReducingState keeps one value per (key, namespace) that Add folds new
// values into.
type ReducingState[T any] struct {
	h      handle
	codec  Codec[T]
	reduce func(acc, v T) T
}

// Reducing registers (or finds) the reducing state d.Name.
func Reducing[T any](k *Keyed, d ReducingDescriptor[T]) (*ReducingState[T], error) {
	if d.Codec == nil || d.Reduce == nil {
		return nil, fmt.Errorf("%w: reducing state %q needs a codec and a reduce function", ErrInvalidDescriptor, d.Name)
	}
	h, err := newHandle(k, d.Name, kindReducing, d.TTL)
	if err != nil {
		return nil, err
	}
	return &ReducingState[T]{h: h, codec: d.Codec, reduce: d.Reduce}, nil
}

// Get returns the reduced value and whether there is one.
func (s *ReducingState[T]) Get() (T, bool, error) {
	var zero T
	p, ok, err := s.h.readSingle(nil, false)
	if err != nil || !ok {
		return zero, false, s.h.afterAccess(err)
	}
	v, err := s.codec.Decode(p)
	if err != nil {
		return zero, false, err
	}
	return v, true, s.h.afterAccess(nil)
}

// Add folds v into the value (an expired value counts as absent).
func (s *ReducingState[T]) Add(v T) error {
	p, ok, err := s.h.readSingle(nil, true)
	if err != nil {
		return err
	}
	if ok {
		old, err := s.codec.Decode(p)
		if err != nil {
			return err
		}
		v = s.reduce(old, v)
	}
	buf, err := s.codec.Append(s.h.begin(), v)
	if err != nil {
		return err
	}
	s.h.buf = buf
	return s.h.set(nil, buf)
}

// Clear removes the value.
func (s *ReducingState[T]) Clear() error { return s.h.clear() }

// AggregateFunction is Flink's AggregateFunction: an accumulator created
// per (key, namespace), inputs added to it, and a result read from it.
type AggregateFunction[IN, ACC, OUT any] interface {
	CreateAccumulator() ACC
	Add(in IN, acc ACC) ACC
	Result(acc ACC) OUT
}

// AggregatingDescriptor names an AggregatingState; Codec encodes the
// accumulator.
type AggregatingDescriptor[IN, ACC, OUT any] struct {
	Name      string
	Codec     Codec[ACC]
	Aggregate AggregateFunction[IN, ACC, OUT]
	TTL       TTLConfig
}

// AggregatingState keeps one accumulator per (key, namespace).
type AggregatingState[IN, ACC, OUT any] struct {
	h     handle
	codec Codec[ACC]
	agg   AggregateFunction[IN, ACC, OUT]
}

// Aggregating registers (or finds) the aggregating state d.Name.
func Aggregating[IN, ACC, OUT any](k *Keyed, d AggregatingDescriptor[IN, ACC, OUT]) (*AggregatingState[IN, ACC, OUT], error) {
	if d.Codec == nil || d.Aggregate == nil {
		return nil, fmt.Errorf("%w: aggregating state %q needs a codec and an aggregate function", ErrInvalidDescriptor, d.Name)
	}
	h, err := newHandle(k, d.Name, kindAggregating, d.TTL)
	if err != nil {
		return nil, err
	}
	return &AggregatingState[IN, ACC, OUT]{h: h, codec: d.Codec, agg: d.Aggregate}, nil
}

// Get returns the result of the accumulator and whether there is one.
func (s *AggregatingState[IN, ACC, OUT]) Get() (OUT, bool, error) {
	var zero OUT
	p, ok, err := s.h.readSingle(nil, false)
	if err != nil || !ok {
		return zero, false, s.h.afterAccess(err)
	}
	acc, err := s.codec.Decode(p)
	if err != nil {
		return zero, false, err
	}
	return s.agg.Result(acc), true, s.h.afterAccess(nil)
}

// Add adds in to the accumulator, creating it first if there is none (or
// it expired).
func (s *AggregatingState[IN, ACC, OUT]) Add(in IN) error {
	p, ok, err := s.h.readSingle(nil, true)
	if err != nil {
		return err
	}
	var acc ACC
	if ok {
		if acc, err = s.codec.Decode(p); err != nil {
			return err
		}
	} else {
		acc = s.agg.CreateAccumulator()
	}
	buf, err := s.codec.Append(s.h.begin(), s.agg.Add(in, acc))
	if err != nil {
		return err
	}
	s.h.buf = buf
	return s.h.set(nil, buf)
}

// Clear removes the accumulator.
func (s *AggregatingState[IN, ACC, OUT]) Clear() error { return s.h.clear() }
