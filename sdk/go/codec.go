package sabot

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"

	"google.golang.org/protobuf/proto"
)

// Codec turns a state's values (and a map's keys) into the bytes the worker
// stores, and back. The worker never looks inside: it stores, orders and
// returns the bytes. Map entries are ordered by their encoded key bytes, so a
// key codec decides the order Map.Entries returns.
//
// Encode must be deterministic (equal values give equal bytes) for codecs used
// as map keys; the codecs of this package are. A codec must be safe for
// concurrent use: a declaration is shared by every key of a function.
type Codec[T any] interface {
	Encode(v T) ([]byte, error)
	Decode(b []byte) (T, error)
}

// JSON is a Codec of T encoded with encoding/json. Decode allocates a new T
// and unmarshals into it. JSON of a map key is deterministic (encoding/json
// sorts map fields) but its byte order is rarely a useful key order: prefer
// String or Int64 for map keys.
func JSON[T any]() Codec[T] { return jsonCodec[T]{} }

type jsonCodec[T any] struct{}

func (jsonCodec[T]) Encode(v T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("sabot: json codec: %w", err)
	}
	return b, nil
}

func (jsonCodec[T]) Decode(b []byte) (T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("sabot: json codec: %w", err)
	}
	return v, nil
}

// Proto is a Codec of a generated message type T (a pointer, such as
// *pb.Order), in the protobuf binary format. Encode is deterministic (map
// fields sorted), so a message may be a map key. Decode allocates a new
// message of T's concrete type. A nil message encodes as empty bytes and so
// decodes as an empty message.
func Proto[T proto.Message]() Codec[T] {
	var zero T
	// ProtoReflect on a typed nil pointer still describes the type, which
	// is all New needs. An interface type for T (proto.Message itself)
	// has no concrete type to allocate: decode reports it.
	return protoCodec[T]{typed: reflect.TypeFor[T]().Kind() == reflect.Pointer && any(zero) != nil}
}

type protoCodec[T proto.Message] struct{ typed bool }

func (protoCodec[T]) Encode(v T) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("sabot: proto codec: %w", err)
	}
	return b, nil
}

func (c protoCodec[T]) Decode(b []byte) (T, error) {
	var zero T
	if !c.typed {
		return zero, fmt.Errorf("sabot: proto codec: %v is not a concrete message type", reflect.TypeFor[T]())
	}
	m, ok := zero.ProtoReflect().New().Interface().(T)
	if !ok {
		return zero, fmt.Errorf("sabot: proto codec: cannot allocate %v", reflect.TypeFor[T]())
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return zero, fmt.Errorf("sabot: proto codec: %w", err)
	}
	return m, nil
}

// String is a Codec of a string as its raw bytes. As a map key codec it
// orders entries bytewise (lexicographically for UTF-8).
func String() Codec[string] { return stringCodec{} }

type stringCodec struct{}

func (stringCodec) Encode(v string) ([]byte, error) { return []byte(v), nil }
func (stringCodec) Decode(b []byte) (string, error) { return string(b), nil }

// Bytes is a Codec of a byte slice as itself. Encode and Decode copy, so a
// caller may keep changing its slice after a Set or Put and a decoded slice
// is the caller's to change.
func Bytes() Codec[[]byte] { return bytesCodec{} }

type bytesCodec struct{}

func (bytesCodec) Encode(v []byte) ([]byte, error) { return bytes.Clone(v), nil }
func (bytesCodec) Decode(b []byte) ([]byte, error) {
	if b == nil {
		return []byte{}, nil
	}
	return bytes.Clone(b), nil
}

// Int64 is a Codec of an int64 as 8 bytes, big-endian with the sign bit
// flipped: the bytewise order of the encodings is the numeric order, so a
// Map keyed by Int64 lists its entries in ascending numeric order (plain
// two's complement would put negative numbers after positive ones). Decode
// rejects anything but 8 bytes.
func Int64() Codec[int64] { return int64Codec{} }

type int64Codec struct{}

const int64SignFlip = 1 << 63

func (int64Codec) Encode(v int64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(v)^int64SignFlip), nil
}

func (int64Codec) Decode(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("sabot: int64 codec: %d bytes, want 8", len(b))
	}
	return int64(binary.BigEndian.Uint64(b) ^ int64SignFlip), nil
}
