package window_test

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sabotdev/sabot/worker/state"
	"github.com/sabotdev/sabot/worker/window"
)

func TestWindowBasics(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		w      window.Window
		maxTS  int64
		render string
	}{
		{"plain", window.Window{Start: 0, End: 10}, 9, "[0,10)"},
		{"negative", window.Window{Start: -20, End: -10}, -11, "[-20,-10)"},
		{"global", window.GlobalWindow(), math.MaxInt64, "global"},
		{"until the end of time", window.Window{Start: 5, End: math.MaxInt64}, math.MaxInt64, "[5,9223372036854775807)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.w.MaxTimestamp(); got != tc.maxTS {
				t.Errorf("MaxTimestamp = %d, want %d", got, tc.maxTS)
			}
			if got := tc.w.String(); got != tc.render {
				t.Errorf("String = %q, want %q", got, tc.render)
			}
		})
	}
	a, b, c := window.Window{Start: 0, End: 10}, window.Window{Start: 10, End: 20}, window.Window{Start: 11, End: 20}
	if !a.Intersects(b) || !b.Intersects(a) {
		t.Error("touching windows must intersect (Flink merges them)")
	}
	if a.Intersects(c) {
		t.Error("[0,10) and [11,20) must not intersect")
	}
	if got := a.Cover(c); got != (window.Window{Start: 0, End: 20}) {
		t.Errorf("Cover = %s", got)
	}
}

// TestNamespaceOrder checks that the encoding round-trips and that byte
// order is (Start, End) order, on random and extreme windows.
func TestNamespaceOrder(t *testing.T) {
	t.Parallel()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	edge := []int64{math.MinInt64, math.MinInt64 + 1, -1, 0, 1, math.MaxInt64 - 1, math.MaxInt64}
	pick := func() int64 {
		if rng.IntN(4) == 0 {
			return edge[rng.IntN(len(edge))]
		}
		return rng.Int64N(2000) - 1000
	}
	cmp := func(a, b window.Window) int {
		switch {
		case a.Start != b.Start:
			return compareInt(a.Start, b.Start)
		default:
			return compareInt(a.End, b.End)
		}
	}
	buf := make([]byte, 0, 64)
	for range 10000 {
		a := window.Window{Start: pick(), End: pick()}
		b := window.Window{Start: pick(), End: pick()}
		ea := window.AppendNamespace(nil, a)
		buf = window.AppendNamespace(buf[:0], b)
		if got, want := bytes.Compare(ea, buf), cmp(a, b); got != want {
			t.Fatalf("order of %v, %v: bytes %d, windows %d", a, b, got, want)
		}
		got, err := window.DecodeNamespace(ea)
		if err != nil || got != a {
			t.Fatalf("round trip of %v: %v, %v", a, got, err)
		}
	}
	if _, err := window.DecodeNamespace([]byte{1, 2, 3}); !errors.Is(err, state.ErrCorrupt) {
		t.Errorf("short namespace: %v, want ErrCorrupt", err)
	}
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func FuzzDecodeNamespace(f *testing.F) {
	f.Add(window.AppendNamespace(nil, window.Window{Start: 0, End: 10}))
	f.Add(window.AppendNamespace(nil, window.GlobalWindow()))
	f.Add([]byte{})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := window.DecodeNamespace(b)
		if err != nil {
			if len(b) == window.NamespaceLen {
				t.Fatalf("valid length rejected: %v", err)
			}
			return
		}
		if !bytes.Equal(window.AppendNamespace(nil, w), b) {
			t.Fatalf("re-encoding %v differs from %x", w, b)
		}
	})
}
