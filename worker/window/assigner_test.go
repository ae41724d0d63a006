package window_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sabotdev/sabot/worker/window"
)

// mustAssigner(t)(constructor(...)) unwraps a constructor's result.
func mustAssigner(t *testing.T) func(window.Assigner[int64], error) window.Assigner[int64] {
	return func(a window.Assigner[int64], err error) window.Assigner[int64] {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
}

func assign(t *testing.T, a window.Assigner[int64], v, ts, now int64) []window.Window {
	t.Helper()
	ws, err := a.AssignWindows(v, ts, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

func ws(pairs ...int64) []window.Window {
	out := make([]window.Window, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, window.Window{Start: pairs[i], End: pairs[i+1]})
	}
	return out
}

// TestAssigners pins window assignment per Flink's assigners, including
// offsets and negative timestamps (getWindowStartWithOffset).
func TestAssigners(t *testing.T) {
	t.Parallel()
	E, P := window.EventTime, window.ProcessingTime
	for _, tc := range []struct {
		name      string
		a         func() (window.Assigner[int64], error)
		v, ts     int64
		now       int64
		want      []window.Window
		eventTime bool
		merging   bool
	}{
		{"tumbling", func() (window.Assigner[int64], error) { return window.Tumbling[int64](E, 10, 0) }, 0, 15, 0, ws(10, 20), true, false},
		{"tumbling at start", func() (window.Assigner[int64], error) { return window.Tumbling[int64](E, 10, 0) }, 0, 10, 0, ws(10, 20), true, false},
		{"tumbling -1", func() (window.Assigner[int64], error) { return window.Tumbling[int64](E, 10, 0) }, 0, -1, 0, ws(-10, 0), true, false},
		{"tumbling -10", func() (window.Assigner[int64], error) { return window.Tumbling[int64](E, 10, 0) }, 0, -10, 0, ws(-10, 0), true, false},
		{"tumbling offset", func() (window.Assigner[int64], error) { return window.Tumbling[int64](E, 10, 3) }, 0, 2, 0, ws(-7, 3), true, false},
		{"tumbling negative offset", func() (window.Assigner[int64], error) { return window.Tumbling[int64](E, 10, -3) }, 0, 7, 0, ws(7, 17), true, false},
		{"tumbling hour offset", func() (window.Assigner[int64], error) {
			return window.Tumbling[int64](E, 86_400_000, -8*3_600_000) // days in UTC+8, Flink's doc example
		}, 0, 0, 0, ws(-28_800_000, 57_600_000), true, false},
		{"tumbling processing", func() (window.Assigner[int64], error) { return window.Tumbling[int64](P, 10, 0) }, 0, 999, 42, ws(40, 50), false, false},
		{"sliding", func() (window.Assigner[int64], error) { return window.Sliding[int64](E, 10, 5, 0) }, 0, 7, 0, ws(5, 15, 0, 10), true, false},
		{"sliding on a boundary", func() (window.Assigner[int64], error) { return window.Sliding[int64](E, 10, 5, 0) }, 0, 5, 0, ws(5, 15, 0, 10), true, false},
		{"sliding negative", func() (window.Assigner[int64], error) { return window.Sliding[int64](E, 10, 5, 0) }, 0, -6, 0, ws(-10, 0, -15, -5), true, false},
		{"sliding offset", func() (window.Assigner[int64], error) { return window.Sliding[int64](E, 10, 5, 2) }, 0, 1, 0, ws(-3, 7, -8, 2), true, false},
		{"sliding uneven", func() (window.Assigner[int64], error) { return window.Sliding[int64](E, 10, 3, 0) }, 0, 7, 0, ws(6, 16, 3, 13, 0, 10), true, false},
		{"sliding equals tumbling", func() (window.Assigner[int64], error) { return window.Sliding[int64](E, 10, 10, 0) }, 0, 7, 0, ws(0, 10), true, false},
		{"sliding processing", func() (window.Assigner[int64], error) { return window.Sliding[int64](P, 10, 5, 0) }, 0, 0, 12, ws(10, 20, 5, 15), false, false},
		{"session", func() (window.Assigner[int64], error) { return window.Session[int64](E, 10) }, 0, -3, 0, ws(-3, 7), true, true},
		{"session processing", func() (window.Assigner[int64], error) { return window.Session[int64](P, 10) }, 0, -3, 100, ws(100, 110), false, true},
		{"dynamic session", func() (window.Assigner[int64], error) {
			return window.DynamicSession(E, func(v int64) int64 { return v * 2 })
		}, 4, 10, 0, ws(10, 18), true, true},
		{"cumulate first step", func() (window.Assigner[int64], error) { return window.Cumulate[int64](E, 5, 15, 0) }, 0, 2, 0, ws(0, 5, 0, 10, 0, 15), true, false},
		{"cumulate last step", func() (window.Assigner[int64], error) { return window.Cumulate[int64](E, 5, 15, 0) }, 0, 14, 0, ws(0, 15), true, false},
		{"cumulate on a step boundary", func() (window.Assigner[int64], error) { return window.Cumulate[int64](E, 5, 15, 0) }, 0, 10, 0, ws(0, 15), true, false},
		{"cumulate negative", func() (window.Assigner[int64], error) { return window.Cumulate[int64](E, 5, 15, 0) }, 0, -11, 0, ws(-15, -10, -15, -5, -15, 0), true, false},
		{"cumulate offset", func() (window.Assigner[int64], error) { return window.Cumulate[int64](E, 5, 15, 3) }, 0, 9, 0, ws(3, 13, 3, 18), true, false},
		{"cumulate processing", func() (window.Assigner[int64], error) { return window.Cumulate[int64](P, 5, 10, 0) }, 0, 0, 3, ws(0, 5, 0, 10), false, false},
		{"global", func() (window.Assigner[int64], error) { return window.Global[int64](), nil }, 0, 3, 0, []window.Window{window.GlobalWindow()}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := mustAssigner(t)(tc.a())
			if got := assign(t, a, tc.v, tc.ts, tc.now); !slices.Equal(got, tc.want) {
				t.Errorf("windows of %d: %v, want %v", tc.ts, got, tc.want)
			}
			if a.IsEventTime() != tc.eventTime || a.Merging() != tc.merging {
				t.Errorf("IsEventTime %t Merging %t, want %t %t", a.IsEventTime(), a.Merging(), tc.eventTime, tc.merging)
			}
			if a.DefaultTrigger() == nil {
				t.Error("no default trigger")
			}
		})
	}
}

// TestAssignerAppends checks the assigner appends to the caller's slice
// (the operator reuses one) and allocates nothing when it has room.
func TestAssignerAppends(t *testing.T) {
	a := mustAssigner(t)(window.Sliding[int64](window.EventTime, 10, 2, 0))
	dst := make([]window.Window, 1, 16)
	out, err := a.AssignWindows(0, 7, 0, dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 6 || &out[0] != &dst[0] {
		t.Fatalf("got %d windows, not appended in place", len(out))
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = a.AssignWindows(0, 7, 0, dst[:0]) }); n != 0 {
		t.Errorf("%v allocations per AssignWindows", n)
	}
}

// TestAlignedAssignersOracle compares sliding (and so tumbling) and
// cumulate assignment with a brute-force oracle over random parameters and
// timestamps: every window of the family that contains ts, and no other.
func TestAlignedAssignersOracle(t *testing.T) {
	t.Parallel()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for range 2000 {
		slide := 1 + rng.Int64N(12)
		size := slide * (1 + rng.Int64N(4))
		if rng.IntN(2) == 0 {
			size = slide + rng.Int64N(3*slide) // sizes that are not multiples
		}
		offset := rng.Int64N(2*slide-1) - (slide - 1)
		ts := rng.Int64N(400) - 200

		a := mustAssigner(t)(window.Sliding[int64](window.EventTime, size, slide, offset))
		var want []window.Window
		for s := ts + 2*size; s >= ts-2*size; s-- { // latest start first, as Flink
			if (s-offset)%slide == 0 && s <= ts && ts < s+size {
				want = append(want, window.Window{Start: s, End: s + size})
			}
		}
		if got := assign(t, a, 0, ts, 0); !slices.Equal(got, want) {
			t.Fatalf("sliding(size %d, slide %d, offset %d) of %d: %v, want %v", size, slide, offset, ts, got, want)
		}

		step := slide
		maxSize := step * (1 + rng.Int64N(5))
		coff := rng.Int64N(2*maxSize-1) - (maxSize - 1)
		c := mustAssigner(t)(window.Cumulate[int64](window.EventTime, step, maxSize, coff))
		want = want[:0]
		for s := ts - maxSize; s <= ts; s++ {
			if (s-coff)%maxSize != 0 {
				continue
			}
			for end := s + step; end <= s+maxSize; end += step {
				if end > ts {
					want = append(want, window.Window{Start: s, End: end})
				}
			}
		}
		if got := assign(t, c, 0, ts, 0); !slices.Equal(got, want) {
			t.Fatalf("cumulate(step %d, max %d, offset %d) of %d: %v, want %v", step, maxSize, coff, ts, got, want)
		}
	}
}

func TestAssignerErrors(t *testing.T) {
	t.Parallel()
	E := window.EventTime
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"tumbling size 0", second(window.Tumbling[int64](E, 0, 0))},
		{"tumbling offset = size", second(window.Tumbling[int64](E, 10, -10))},
		{"tumbling bad domain", second(window.Tumbling[int64](0, 10, 0))},
		{"sliding offset = slide", second(window.Sliding[int64](E, 10, 5, 5))},
		{"session gap -1", second(window.Session[int64](E, -1))},
		{"dynamic session nil", second(window.DynamicSession[int64](E, nil))},
		{"cumulate not a multiple", second(window.Cumulate[int64](E, 3, 10, 0))},
		{"cumulate offset", second(window.Cumulate[int64](E, 5, 10, 10))},
		{"purging nil", second(window.PurgingTrigger[int64](nil))},
		{"delta nil", second(window.DeltaEvictor[int64](1, nil, false))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !errors.Is(tc.err, window.ErrInvalidConfig) {
				t.Errorf("err = %v, want ErrInvalidConfig", tc.err)
			}
		})
	}
	a := mustAssigner(t)(window.Tumbling[int64](E, 10, 0))
	if _, err := a.AssignWindows(0, math.MinInt64, 0, nil); !errors.Is(err, window.ErrNoTimestamp) {
		t.Errorf("no timestamp: %v", err)
	}
	d := mustAssigner(t)(window.DynamicSession(E, func(v int64) int64 { return v }))
	if _, err := d.AssignWindows(-1, 0, 0, nil); !errors.Is(err, window.ErrInvalidGap) {
		t.Errorf("gap -1: %v", err)
	}
}

func second[A any](_ A, err error) error { return err }
