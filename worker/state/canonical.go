package state

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Canonical snapshot format (the savepoint format, and the heap backend's
// checkpoint format). One object holds the entries of a key-group range:
//
//	header   magic "SABOTKGS" | version (1 byte, 1) | start, end (uint16 BE each)
//	entries  sorted by key group, then stored key; each
//	         key group (uint16 BE)
//	         | uvarint len | operator | uvarint len | state name
//	         | uvarint len | key      | uvarint len | namespace
//	         | uvarint len | column   | uvarint len | value
//	footer   0xFFFF | entry count (uint64 BE)
//
// Lengths are minimal uvarints. The four parts after the key group are
// exactly the stored key's table prefix and row (keys.go), so both
// backends write them as stored, and a restore into pebble rebuilds the
// stored key by concatenation. Values are the stored bytes: TTL headers
// and list framing are kept byte for byte. The same state gives the same
// bytes whichever backend wrote it.
//
// The handle (clusterv1.FullStateHandle) carries key_group_offsets:
// r.Len()+1 offsets, the i-th the object offset of the first entry of key
// group start+i (the offset of the next entry if the group has none), the
// last one the footer's offset. A restore of a sub-range decodes only the
// bytes of its key groups. The blob store has no ranged read and its
// checksum covers the whole object, so the other bytes are still streamed
// (and discarded) to verify it. A ranged read would need checksums per
// range, and the store has neither.
//
// Version 1 is the only version. A new version gets a new number; readers
// refuse versions they do not know.

const (
	canonicalMagic   = "SABOTKGS"
	canonicalVersion = 1
	canonicalHeader  = len(canonicalMagic) + 1 + 2 + 2
	canonicalFooter  = 2 + 8
	// footerMark stands where a key group would: key groups are below
	// MaxKeyGroups, so it cannot start an entry.
	footerMark = 0xFFFF
)

// fullEncoder writes the canonical format and records the key-group
// offsets. It appends to a caller's buffer so that the heap (one pass into
// memory) and pebble (streamed) share it.
type fullEncoder struct {
	r       KeyGroupRange
	offsets []int64 // r.Len()+1 once finished
	pos     int64   // bytes emitted so far
	count   uint64
	lastKG  int // key group of the last entry, -1 before the first
}

func newFullEncoder(r KeyGroupRange) *fullEncoder {
	return &fullEncoder{r: r, offsets: make([]int64, 0, r.Len()+1), lastKG: -1}
}

func (e *fullEncoder) header(dst []byte) []byte {
	n := len(dst)
	dst = append(dst, canonicalMagic...)
	dst = append(dst, canonicalVersion)
	dst = binary.BigEndian.AppendUint16(dst, e.r.Start)
	dst = binary.BigEndian.AppendUint16(dst, e.r.End)
	e.pos += int64(len(dst) - n)
	return dst
}

// markUpTo records the current offset for every key group up to and
// including index i (relative to r.Start) that has none yet.
func (e *fullEncoder) markUpTo(i int) {
	for len(e.offsets) <= i {
		e.offsets = append(e.offsets, e.pos)
	}
}

// entrySize is the encoded size of an entry.
func entrySize(prefix, row, col, val []byte) int {
	return 2 + len(prefix) + len(row) + uvarintLen(len(col)) + len(col) + uvarintLen(len(val)) + len(val)
}

func uvarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}

// entry appends one entry. prefix and row are the stored layout's (their
// parts already length-prefixed). Entries must come in key-group order
// within r; the caller guarantees it (both backends iterate in order).
func (e *fullEncoder) entry(dst []byte, kg uint16, prefix, row, col, val []byte) []byte {
	if !e.r.Contains(kg) || int(kg) < e.lastKG {
		panic(fmt.Sprintf("state: snapshot entry of key group %d out of order (last %d, range [%d, %d))",
			kg, e.lastKG, e.r.Start, e.r.End))
	}
	e.lastKG = int(kg)
	e.markUpTo(int(kg - e.r.Start))
	n := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, kg)
	dst = append(dst, prefix...)
	dst = append(dst, row...)
	dst = appendPart(dst, col)
	dst = appendPart(dst, val)
	e.pos += int64(len(dst) - n)
	e.count++
	return dst
}

// footer appends the footer and completes the offsets.
func (e *fullEncoder) footer(dst []byte) []byte {
	e.markUpTo(e.r.Len())
	n := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, footerMark)
	dst = binary.BigEndian.AppendUint64(dst, e.count)
	e.pos += int64(len(dst) - n)
	return dst
}

// size is the object's size once the footer is written.
func (e *fullEncoder) size() int64 { return e.pos }

// fullDecoder reads the canonical format from a stream, counting its
// position so that it can check entries against the handle's offsets.
type fullDecoder struct {
	br  *bufio.Reader
	pos int64
	buf []byte // the current entry: kg | prefix | row | col | val
}

// decodeBufSize is the read buffer of a restore.
const decodeBufSize = 256 << 10

func newFullDecoder(r io.Reader) *fullDecoder {
	return &fullDecoder{br: bufio.NewReaderSize(r, decodeBufSize)}
}

// corruptf reports a format error at the decoder's position.
func (d *fullDecoder) corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrCorrupt, d.pos, fmt.Sprintf(format, args...))
}

// readErr turns a read error into a format error (a truncated object) or
// passes it through (the store's own errors: corrupt, cancelled).
func (d *fullDecoder) readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return d.corruptf("truncated")
	}
	return err
}

func (d *fullDecoder) readFull(dst []byte) error {
	n, err := io.ReadFull(d.br, dst)
	d.pos += int64(n)
	if err != nil {
		return d.readErr(err)
	}
	return nil
}

func (d *fullDecoder) skipTo(off int64) error {
	if off < d.pos {
		return d.corruptf("offset %d goes back", off)
	}
	n, err := d.br.Discard(int(off - d.pos))
	d.pos += int64(n)
	if err != nil {
		return d.readErr(err)
	}
	return nil
}

// header reads and checks the header against the handle's range.
func (d *fullDecoder) header(want KeyGroupRange) error {
	var h [canonicalHeader]byte
	if err := d.readFull(h[:]); err != nil {
		return err
	}
	if string(h[:len(canonicalMagic)]) != canonicalMagic {
		return fmt.Errorf("%w: not a canonical snapshot (magic %q)", ErrCorrupt, h[:len(canonicalMagic)])
	}
	if v := h[len(canonicalMagic)]; v != canonicalVersion {
		return fmt.Errorf("%w: canonical snapshot of unknown version %d", ErrCorrupt, v)
	}
	got := KeyGroupRange{
		Start: binary.BigEndian.Uint16(h[len(canonicalMagic)+1:]),
		End:   binary.BigEndian.Uint16(h[len(canonicalMagic)+3:]),
	}
	if got != want {
		return fmt.Errorf("%w: snapshot of key groups [%d, %d), the handle's range is [%d, %d)",
			ErrCorrupt, got.Start, got.End, want.Start, want.End)
	}
	return nil
}

// part reads one length-prefixed part, appending it to d.buf with its
// length prefix (keep) or without, and returns the part's length. limit
// is the offset the part must end by.
func (d *fullDecoder) part(keep bool, limit int64) (int, error) {
	var n uint64
	var pre [binary.MaxVarintLen64]byte
	w := 0
	for shift := uint(0); ; shift += 7 {
		if w == len(pre) {
			return 0, d.corruptf("length prefix too long")
		}
		c, err := d.br.ReadByte()
		if err != nil {
			return 0, d.readErr(err)
		}
		d.pos++
		pre[w] = c
		w++
		n |= uint64(c&0x7f) << shift
		if c < 0x80 {
			break
		}
	}
	if n > uint64(limit-d.pos) || uvarintLen(int(n)) != w {
		return 0, d.corruptf("bad length %d", n)
	}
	if keep {
		d.buf = append(d.buf, pre[:w]...)
	}
	start := len(d.buf)
	d.buf = slices.Grow(d.buf, int(n))[:start+int(n)]
	if err := d.readFull(d.buf[start:]); err != nil {
		return 0, err
	}
	return int(n), nil
}

// entry reads one entry that must end by limit. prefix and row are in the
// stored layout; the slices are valid until the next call.
func (d *fullDecoder) entry(limit int64) (kg uint16, prefix, row, col, val []byte, err error) {
	d.buf = d.buf[:0]
	if limit-d.pos < 2 {
		return 0, nil, nil, nil, nil, d.corruptf("entry crosses its key group's end")
	}
	var k [2]byte
	if err := d.readFull(k[:]); err != nil {
		return 0, nil, nil, nil, nil, err
	}
	kg = binary.BigEndian.Uint16(k[:])
	// operator, state, key and namespace keep their length prefixes (the
	// stored layout); column and value are raw.
	var ends [6]int
	for i := range ends {
		n, err := d.part(i < 4, limit)
		if err != nil {
			return 0, nil, nil, nil, nil, err
		}
		if n == 0 && i < 2 {
			return 0, nil, nil, nil, nil, d.corruptf("empty operator or state name")
		}
		ends[i] = len(d.buf)
	}
	b := d.buf
	return kg, b[:ends[1]], b[ends[1]:ends[3]], b[ends[3]:ends[4]], b[ends[4]:ends[5]], nil
}

// footer reads the footer and returns the entry count.
func (d *fullDecoder) footer() (uint64, error) {
	var f [canonicalFooter]byte
	if err := d.readFull(f[:]); err != nil {
		return 0, err
	}
	if binary.BigEndian.Uint16(f[:]) != footerMark {
		return 0, d.corruptf("no footer where the offsets put it")
	}
	return binary.BigEndian.Uint64(f[2:]), nil
}

// end checks that the object ends after the footer. The blob reader
// verifies its checksum on the read that reaches the end, so this is also
// where a corrupt object is reported.
func (d *fullDecoder) end() error {
	if _, err := d.br.ReadByte(); err == nil {
		return d.corruptf("trailing bytes after the footer")
	} else if !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
