package state

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Codec turns values of T into bytes and back. State handles encode on
// every write and decode on every read, on both backends, so codecs sit on
// the hot path: Append must append to dst without allocating when dst has
// room, and Decode must not keep src (it is only valid during the call).
type Codec[T any] interface {
	// Append appends the encoding of v to dst and returns the extended slice.
	Append(dst []byte, v T) ([]byte, error)
	// Decode decodes a value encoded by Append. src is exactly what Append
	// produced; Decode must copy whatever it keeps.
	Decode(src []byte) (T, error)
}

// Int64Codec encodes an int64 as 8 bytes big-endian. Allocation-free.
type Int64Codec struct{}

// Append implements Codec.
func (Int64Codec) Append(dst []byte, v int64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(dst, uint64(v)), nil
}

// Decode implements Codec; it fails with ErrCorrupt unless src is 8 bytes.
func (Int64Codec) Decode(src []byte) (int64, error) {
	if len(src) != 8 {
		return 0, fmt.Errorf("%w: int64 of %d bytes", ErrCorrupt, len(src))
	}
	return int64(binary.BigEndian.Uint64(src)), nil
}

// Float64Codec encodes a float64 as its IEEE-754 bits, 8 bytes big-endian.
// Allocation-free.
type Float64Codec struct{}

// Append implements Codec.
func (Float64Codec) Append(dst []byte, v float64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(v)), nil
}

// Decode implements Codec; it fails with ErrCorrupt unless src is 8 bytes.
func (Float64Codec) Decode(src []byte) (float64, error) {
	if len(src) != 8 {
		return 0, fmt.Errorf("%w: float64 of %d bytes", ErrCorrupt, len(src))
	}
	return math.Float64frombits(binary.BigEndian.Uint64(src)), nil
}

// StringCodec encodes a string as its bytes. Decode allocates the string
// (except for "").
type StringCodec struct{}

// Append implements Codec.
func (StringCodec) Append(dst []byte, v string) ([]byte, error) { return append(dst, v...), nil }

// Decode implements Codec.
func (StringCodec) Decode(src []byte) (string, error) { return string(src), nil }

// BytesCodec stores a byte slice as is. Decode returns a copy (nil for an
// empty value), so the result may be kept.
type BytesCodec struct{}

// Append implements Codec.
func (BytesCodec) Append(dst, v []byte) ([]byte, error) { return append(dst, v...), nil }

// Decode implements Codec.
func (BytesCodec) Decode(src []byte) ([]byte, error) {
	if len(src) == 0 {
		return nil, nil
	}
	return append([]byte(nil), src...), nil
}

// BinaryCodec encodes fixed-size values (numbers, bools, arrays and
// structs of them, no slices, strings or pointers) with encoding/binary,
// big-endian. It uses reflection for structs: fine for prototypes and
// running aggregates, but a hand-written Codec is several times faster on
// a hot path. Append fails for a type without a fixed size.
type BinaryCodec[T any] struct{}

// Append implements Codec.
func (BinaryCodec[T]) Append(dst []byte, v T) ([]byte, error) {
	out, err := binary.Append(dst, binary.BigEndian, v)
	if err != nil {
		return dst, fmt.Errorf("state: binary codec: %w", err)
	}
	return out, nil
}

// Decode implements Codec.
func (BinaryCodec[T]) Decode(src []byte) (T, error) {
	var v T
	n, err := binary.Decode(src, binary.BigEndian, &v)
	if err != nil {
		return v, fmt.Errorf("%w: binary codec: %w", ErrCorrupt, err)
	}
	if n != len(src) {
		return v, fmt.Errorf("%w: binary codec: %d trailing bytes", ErrCorrupt, len(src)-n)
	}
	return v, nil
}
