package state

import (
	"encoding/binary"
	"fmt"
)

// Key layout (see the package doc). Every stored entry's key is
//
//	key group (2 bytes, big-endian)
//	| uvarint len(operator) | operator
//	| uvarint len(state name) | state name
//	| uvarint len(key) | key
//	| uvarint len(namespace) | namespace
//	| column
//
// The first three parts form a table's prefix (without the key group),
// computed once per registered state; key and namespace form the row,
// rebuilt when the operator sets its current key or namespace; the column
// is the user key of a map entry, the 8-byte timestamp of a timer, and
// empty otherwise. Every length-prefixed part is prefix-free, so
//
//   - all entries of one key group are one contiguous range, and a range of
//     key groups [a, b) is the byte range [a, b) of 2-byte prefixes;
//   - all entries of one (key group, table) and of one (key group, table,
//     row) are contiguous too (used by map iteration and map clear);
//   - byte order of full keys equals the order of the tuples, which is why
//     the heap backend, sorting the parts, iterates in pebble's order.

// appendKeyGroup appends kg big-endian.
func appendKeyGroup(dst []byte, kg uint16) []byte {
	return binary.BigEndian.AppendUint16(dst, kg)
}

// appendPart appends a length-prefixed part.
func appendPart(dst, part []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(part)))
	return append(dst, part...)
}

// tablePrefix is the (operator, state name) part of the layout.
func tablePrefix(op, name string) []byte {
	p := binary.AppendUvarint(nil, uint64(len(op)))
	p = append(p, op...)
	p = binary.AppendUvarint(p, uint64(len(name)))
	return append(p, name...)
}

// readPart reads one length-prefixed part from b and returns it and the rest.
func readPart(b []byte) (part, rest []byte, err error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n {
		return nil, nil, fmt.Errorf("%w: bad length prefix", ErrCorrupt)
	}
	end := w + int(n)
	return b[w:end:end], b[end:], nil
}

// splitPrefix returns the length of the table prefix at the start of b
// (which starts after the key group).
func splitPrefix(b []byte) (int, error) {
	_, rest, err := readPart(b)
	if err != nil {
		return 0, err
	}
	_, rest, err = readPart(rest)
	if err != nil {
		return 0, err
	}
	return len(b) - len(rest), nil
}

// splitKey splits a full stored key into its layout parts.
func splitKey(full []byte) (kg uint16, prefix, row, col []byte, err error) {
	if len(full) < 2 {
		return 0, nil, nil, nil, fmt.Errorf("%w: key of %d bytes", ErrCorrupt, len(full))
	}
	kg = binary.BigEndian.Uint16(full)
	b := full[2:]
	pn, err := splitPrefix(b)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	prefix, b = b[:pn], b[pn:]
	_, rest, err := readPart(b)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	_, rest, err = readPart(rest)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	rn := len(b) - len(rest)
	return kg, prefix, b[:rn], b[rn:], nil
}

// splitRow splits a row into key and namespace.
func splitRow(row []byte) (key, ns []byte, err error) {
	key, rest, err := readPart(row)
	if err != nil {
		return nil, nil, err
	}
	ns, rest, err = readPart(rest)
	if err != nil {
		return nil, nil, err
	}
	if len(rest) != 0 {
		return nil, nil, fmt.Errorf("%w: trailing bytes after namespace", ErrCorrupt)
	}
	return key, ns, nil
}

// prefixEnd returns the smallest key greater than every key with prefix p,
// or nil if there is none (p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// appendTimestamp appends ts so that byte order is numeric order (sign bit
// flipped, big-endian): timer columns sort by time within a row.
func appendTimestamp(dst []byte, ts int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(ts)^(1<<63))
}

// readTimestamp reverses appendTimestamp.
func readTimestamp(b []byte) int64 {
	return int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
}
