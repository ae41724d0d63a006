package sabot_test

import (
	"bytes"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	sabot "github.com/sabotdev/sabot/sdk/go"
)

type point struct {
	X, Y int
	Tags map[string]string
}

func roundTrip[T any](t *testing.T, c sabot.Codec[T], v T, eq func(a, b T) bool) {
	t.Helper()
	b, err := c.Encode(v)
	if err != nil {
		t.Fatalf("encode %v: %v", v, err)
	}
	got, err := c.Decode(b)
	if err != nil {
		t.Fatalf("decode %v: %v", v, err)
	}
	if !eq(got, v) {
		t.Fatalf("round trip: got %v, want %v", got, v)
	}
	again, err := c.Encode(v)
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("encode is not deterministic: %x then %x (%v)", b, again, err)
	}
}

func TestCodecsRoundTrip(t *testing.T) {
	t.Parallel()
	t.Run("json", func(t *testing.T) {
		t.Parallel()
		eq := func(a, b point) bool {
			return a.X == b.X && a.Y == b.Y && len(a.Tags) == len(b.Tags) && a.Tags["k"] == b.Tags["k"]
		}
		roundTrip(t, sabot.JSON[point](), point{X: 1, Y: -2, Tags: map[string]string{"k": "v", "a": "b"}}, eq)
		roundTrip(t, sabot.JSON[point](), point{}, eq)
	})
	t.Run("proto", func(t *testing.T) {
		t.Parallel()
		c := sabot.Proto[*sabotv1.StateSpec]()
		eq := func(a, b *sabotv1.StateSpec) bool { return proto.Equal(a, b) }
		roundTrip(t, c, &sabotv1.StateSpec{Name: "n", Kind: sabotv1.StateKind_STATE_KIND_MAP, TtlMs: 7, Lazy: true}, eq)
		got, err := c.Decode(nil) // empty bytes: an empty message, freshly allocated
		if err != nil || got == nil || got.GetName() != "" {
			t.Fatalf("decode empty: %v, %v", got, err)
		}
		if _, err := c.Decode([]byte{0xff}); err == nil {
			t.Fatal("decode of garbage: no error")
		}
		if _, err := sabot.Proto[proto.Message]().Decode(nil); err == nil {
			t.Fatal("decode into an interface type: no error")
		}
	})
	t.Run("string", func(t *testing.T) {
		t.Parallel()
		for _, s := range []string{"", "hello", "ünïcode", "a\x00b"} {
			roundTrip(t, sabot.String(), s, func(a, b string) bool { return a == b })
		}
	})
	t.Run("bytes", func(t *testing.T) {
		t.Parallel()
		c := sabot.Bytes()
		roundTrip(t, c, []byte{1, 2, 3}, bytes.Equal)
		src := []byte("abc")
		enc, _ := c.Encode(src)
		src[0] = 'X' // the caller's slice is the caller's
		if string(enc) != "abc" {
			t.Fatalf("encode aliases its input: %q", enc)
		}
	})
	t.Run("int64", func(t *testing.T) {
		t.Parallel()
		c := sabot.Int64()
		nums := []int64{-1 << 63, -1000, -1, 0, 1, 255, 256, 1 << 40, 1<<63 - 1}
		var encs [][]byte
		for _, n := range nums {
			roundTrip(t, c, n, func(a, b int64) bool { return a == b })
			b, _ := c.Encode(n)
			if len(b) != 8 {
				t.Fatalf("%d encodes to %d bytes", n, len(b))
			}
			encs = append(encs, b)
		}
		// Byte order is numeric order: maps keyed by Int64 list in order.
		if !slices.IsSortedFunc(encs, bytes.Compare) {
			t.Fatalf("encodings of ascending numbers are not ascending: %x", encs)
		}
		if _, err := c.Decode([]byte{1, 2, 3}); err == nil {
			t.Fatal("decode of 3 bytes: no error")
		}
	})
}

func FuzzInt64Codec(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c := sabot.Int64()
		n, err := c.Decode(b)
		if err != nil {
			return
		}
		again, _ := c.Encode(n)
		if !bytes.Equal(again, b) {
			t.Fatalf("decode/encode of %x gives %x", b, again)
		}
	})
}
