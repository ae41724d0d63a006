package state

import (
	"bytes"
	"testing"
)

// FuzzCanonicalDecode feeds arbitrary objects and offsets to the canonical
// decoder and restores what it yields into a heap: neither may panic, and
// every entry handed on must be in the requested key groups with a table
// prefix and row that parse.
func FuzzCanonicalDecode(f *testing.F) {
	hr := KeyGroupRange{Start: 3, End: 6}
	row := func(key, ns string) []byte { return appendPart(appendPart(nil, []byte(key)), []byte(ns)) }
	enc := newFullEncoder(hr)
	b := enc.header(nil)
	b = enc.entry(b, 3, tablePrefix("op", "v"), row("k", ""), nil, []byte("val"))
	b = enc.entry(b, 5, tablePrefix("op", "m"), row("k", "w"), []byte("c"), []byte("x"))
	b = enc.entry(b, 5, tablePrefix("op", timerPrefix+"t/event"), row("k", "w"), appendTimestamp(nil, 7), nil)
	b = enc.footer(b)
	f.Add(b, enc.offsets[1], enc.offsets[2], uint16(3), uint16(6))
	f.Add(b, enc.offsets[1], enc.offsets[2], uint16(4), uint16(5))
	f.Fuzz(func(t *testing.T, data []byte, o1, o2 int64, ws, we uint16) {
		offs := []int64{int64(canonicalHeader), o1, o2, int64(len(data)) - canonicalFooter}
		if checkOffsets(offs, hr, int64(len(data))) != nil {
			return
		}
		want := KeyGroupRange{Start: max(ws, hr.Start), End: min(we, hr.End)}
		if want.Start >= want.End {
			return
		}
		h, err := NewHeap(Config{KeyGroups: hr})
		if err != nil {
			t.Fatal(err)
		}
		ld := h.loader()
		_ = decodeCanonical(bytes.NewReader(data), hr, want, offs, func(kg uint16, prefix, row, col, val []byte) error {
			if !want.Contains(kg) {
				t.Fatalf("entry of key group %d outside [%d, %d)", kg, want.Start, want.End)
			}
			if n, err := splitPrefix(prefix); err != nil || n != len(prefix) {
				t.Fatalf("prefix %q does not parse", prefix)
			}
			if _, _, err := splitRow(row); err != nil {
				t.Fatalf("row %q does not parse", row)
			}
			return ld.put(kg, prefix, row, col, val)
		})
		_ = h.IterateKeyGroups(hr, func(*Entry) error { return nil })
	})
}
