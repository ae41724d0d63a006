package window_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/sabotdev/sabot/worker/state"
	"github.com/sabotdev/sabot/worker/window"
)

func newKeyed(t testing.TB, b state.Backend) *state.Keyed {
	t.Helper()
	k, err := state.NewKeyed(b, "op")
	must(t, err)
	return k
}

func discard(key []byte, w window.Window, out string) error { return nil }

// TestNewErrors covers New's configuration checks that scripts do not.
func TestNewErrors(t *testing.T) {
	t.Parallel()
	b, err := state.NewHeap(state.Config{})
	must(t, err)
	t.Cleanup(func() { _ = b.Close() }) // after the parallel subtests
	tumbling, err := window.Tumbling[int64](window.EventTime, 10, 0)
	must(t, err)
	session, err := window.Session[int64](window.EventTime, 10)
	must(t, err)
	sum := window.Aggregate(sumAgg(true))
	for _, tc := range []struct {
		name string
		cfg  window.Config[int64, string]
		want string
	}{
		{"no assigner", window.Config[int64, string]{Function: sum, Emit: discard}, "assigner"},
		{"no function", window.Config[int64, string]{Assigner: tumbling, Emit: discard}, "function"},
		{"no emit", window.Config[int64, string]{Assigner: tumbling, Function: sum}, "emit"},
		{"bad name", window.Config[int64, string]{Name: "a/b", Assigner: tumbling, Function: sum, Emit: discard}, "name"},
		{"aggregate without Add", window.Config[int64, string]{
			Assigner: tumbling, Emit: discard,
			Function: window.Aggregate(window.AggregateFunction[int64, int64, string]{
				Create: func() int64 { return 0 }, Result: func(int64) string { return "" }, Codec: state.Int64Codec{},
			}),
		}, "aggregate Add"},
		{"nil process", window.Config[int64, string]{Assigner: tumbling, Emit: discard, Codec: state.Int64Codec{}, Function: window.Process[int64, string](nil)}, "process function"},
		{"nil reduce", window.Config[int64, string]{Assigner: tumbling, Emit: discard}, "function"},
		{"trigger that cannot merge", window.Config[int64, string]{
			Assigner: session, Function: sum, Emit: discard, Trigger: noMerge{window.EventTimeTrigger[int64]()},
		}, "trigger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := window.New(newKeyedOn(t, b, tc.name), tc.cfg)
			if !errors.Is(err, window.ErrInvalidConfig) || !strings.Contains(err.Error(), ": "+tc.want+":") {
				t.Errorf("err = %v, want ErrInvalidConfig naming %q", err, tc.want)
			}
		})
	}
	r := window.Reduce[int64](nil, state.Int64Codec{})
	_, err = window.New(newKeyedOn(t, b, "reduce"), window.Config[int64, int64]{
		Assigner: mustAssigner(t)(window.Tumbling[int64](window.EventTime, 10, 0)), Function: r,
		Emit: func([]byte, window.Window, int64) error { return nil },
	})
	if !errors.Is(err, window.ErrInvalidConfig) {
		t.Errorf("nil reduce: %v", err)
	}
}

// newKeyedOn makes a Keyed with its own operator id: the parallel subtests
// share one heap backend, so they must not share states.
func newKeyedOn(t testing.TB, b state.Backend, op string) *state.Keyed {
	t.Helper()
	k, err := state.NewKeyed(b, op)
	must(t, err)
	return k
}

// noMerge is a custom trigger that cannot merge.
type noMerge struct{ window.Trigger[int64] }

func (noMerge) CanMerge() bool { return false }

// TestTriggerServesOneOperator: a stateful trigger binds its state handles
// to the operator that opened it; a second operator must build its own.
func TestTriggerServesOneOperator(t *testing.T) {
	t.Parallel()
	b, err := state.NewHeap(state.Config{})
	must(t, err)
	defer func() { _ = b.Close() }()
	count, err := window.CountTrigger[int64](2)
	must(t, err)
	cfg := window.Config[int64, string]{
		Assigner: window.Global[int64](), Trigger: count, Function: window.Aggregate(sumAgg(true)), Emit: discard,
	}
	_, err = window.New(newKeyedOn(t, b, "one"), cfg)
	must(t, err)
	if _, err := window.New(newKeyedOn(t, b, "two"), cfg); !errors.Is(err, window.ErrInvalidConfig) {
		t.Errorf("second Open: %v, want ErrInvalidConfig", err)
	}
}

// TestReduce runs Reduce (Flink's reduce) over tumbling and session
// windows on both backends.
func TestReduce(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, kind string) {
		bk := openBackend(t, kind)
		for _, tc := range []struct {
			name string
			a    func() (window.Assigner[int64], error)
			want []string
		}{
			{"tumbling", func() (window.Assigner[int64], error) { return window.Tumbling[int64](window.EventTime, 10, 0) },
				[]string{"a [0,10) 7", "a [10,20) 3", "a [20,30) -4"}},
			{"session", func() (window.Assigner[int64], error) { return window.Session[int64](window.EventTime, 10) },
				[]string{"a [1,22) 7", "a [25,35) -4"}},
		} {
			k := newKeyedOn(t, bk.b, tc.name)
			var got []string
			op, err := window.New(k, window.Config[int64, int64]{
				Assigner: mustAssigner(t)(tc.a()),
				Function: window.Reduce(func(a, b int64) int64 { return max(a, b) }, state.Int64Codec{}),
				Emit: func(key []byte, w window.Window, out int64) error {
					got = append(got, fmt.Sprintf("%s %s %d", key, w, out))
					return nil
				},
			})
			must(t, err)
			setKey(t, k, "a")
			for _, e := range [][2]int64{{1, 5}, {3, 7}, {12, 3}, {25, -4}} {
				must(t, op.ProcessElement(e[0], e[1]))
			}
			must(t, op.AdvanceWatermark(math.MaxInt64))
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
			}
		}
	})
}

// TestCallbackErrors: an error from Emit or Late comes back from the call
// that caused it.
func TestCallbackErrors(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, kind string) {
		bk := openBackend(t, kind)
		k := newKeyed(t, bk.b)
		boom := errors.New("boom")
		op, err := window.New(k, window.Config[int64, string]{
			Assigner: mustAssigner(t)(window.Tumbling[int64](window.EventTime, 10, 0)),
			Function: window.Aggregate(sumAgg(true)),
			Emit:     func([]byte, window.Window, string) error { return boom },
			Late:     func([]byte, int64, int64) error { return fmt.Errorf("late: %w", boom) },
		})
		must(t, err)
		setKey(t, k, "a")
		must(t, op.ProcessElement(1, 1))
		if err := op.AdvanceWatermark(9); !errors.Is(err, boom) {
			t.Errorf("AdvanceWatermark: %v", err)
		}
		setKey(t, k, "a")
		if err := op.ProcessElement(1, 1); !errors.Is(err, boom) {
			t.Errorf("late element: %v", err)
		}
	})
}

// alignedModel is an independent model of Flink's event-time window
// operator with EventTimeTrigger and allowed lateness, for aligned
// (non-merging) assigners: per (key, window) the sum of accepted elements.
type alignedModel struct {
	lateness int64
	wm       int64
	windows  map[string]map[window.Window]int64 // key → window → sum
}

func (m *alignedModel) cleanup(w window.Window) int64 {
	if w.MaxTimestamp() > math.MaxInt64-m.lateness {
		return math.MaxInt64
	}
	return w.MaxTimestamp() + m.lateness
}

// element returns the lines the element emits or sends to the late output.
func (m *alignedModel) element(key string, ts, v int64, ws []window.Window) []string {
	var out []string
	taken := false
	for _, w := range ws {
		if m.cleanup(w) <= m.wm {
			continue // late window
		}
		taken = true
		if m.windows[key] == nil {
			m.windows[key] = map[window.Window]int64{}
		}
		m.windows[key][w] += v
		if w.MaxTimestamp() <= m.wm { // late but allowed: fire at once
			out = append(out, fmt.Sprintf("emit %s %s sum=%d", key, w, m.windows[key][w]))
		}
	}
	if !taken && ts+m.lateness <= m.wm {
		out = append(out, fmt.Sprintf("late %s %d %d", key, ts, v))
	}
	return out
}

func (m *alignedModel) watermark(wm int64) []string {
	if wm <= m.wm {
		return nil
	}
	var out []string
	for key, ws := range m.windows {
		for w, sum := range ws {
			if w.MaxTimestamp() > m.wm && w.MaxTimestamp() <= wm {
				out = append(out, fmt.Sprintf("emit %s %s sum=%d", key, w, sum))
			}
			if m.cleanup(w) <= wm {
				delete(ws, w)
			}
		}
	}
	m.wm = wm
	return out
}

// TestAlignedOracle feeds random out-of-order elements and watermarks to
// tumbling, sliding and cumulate windows with random allowed lateness and
// compares every call's output with alignedModel; at the end the backend
// must hold nothing.
func TestAlignedOracle(t *testing.T) {
	t.Parallel()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	forEachBackend(t, func(t *testing.T, kind string) {
		rng := rand.New(rand.NewPCG(seed, 2))
		for round := range 20 {
			bk := openBackend(t, kind)
			var a window.Assigner[int64]
			var err error
			switch size := 1 + rng.Int64N(20); rng.IntN(3) {
			case 0:
				a, err = window.Tumbling[int64](window.EventTime, size, rng.Int64N(size))
			case 1:
				slide := 1 + rng.Int64N(size)
				a, err = window.Sliding[int64](window.EventTime, size, slide, -rng.Int64N(slide))
			default:
				step := 1 + rng.Int64N(5)
				a, err = window.Cumulate[int64](window.EventTime, step, step*(1+rng.Int64N(4)), 0)
			}
			must(t, err)
			lateness := int64(0)
			if rng.IntN(2) == 0 {
				lateness = rng.Int64N(15)
			}
			k := newKeyed(t, bk.b)
			var got []string
			op, err := window.New(k, window.Config[int64, string]{
				Assigner: a, AllowedLateness: lateness, Function: window.Aggregate(sumAgg(true)),
				Emit: func(key []byte, w window.Window, out string) error {
					got = append(got, fmt.Sprintf("emit %s %s %s", key, w, out))
					return nil
				},
				Late: func(key []byte, ts, v int64) error {
					got = append(got, fmt.Sprintf("late %s %d %d", key, ts, v))
					return nil
				},
			})
			must(t, err)
			m := &alignedModel{lateness: lateness, wm: math.MinInt64, windows: map[string]map[window.Window]int64{}}
			check := func(what string, want []string) {
				t.Helper()
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("round %d (%v, lateness %d) %s:\ngot  %q\nwant %q", round, a, lateness, what, got, want)
				}
				got = got[:0]
			}
			base := int64(-100)
			for range 300 {
				if rng.IntN(5) > 0 {
					key := string(rune('a' + rng.IntN(4)))
					ts, v := base+rng.Int64N(60)-30, 1+rng.Int64N(9)
					setKey(t, k, key)
					must(t, op.ProcessElement(ts, v))
					ws, err := a.AssignWindows(v, ts, 0, nil)
					must(t, err)
					check(fmt.Sprintf("element %s %d", key, ts), m.element(key, ts, v, ws))
					base += rng.Int64N(3)
				} else {
					wm := base - rng.Int64N(20)
					must(t, op.AdvanceWatermark(wm))
					check(fmt.Sprintf("watermark %d", wm), m.watermark(wm))
				}
			}
			must(t, op.AdvanceWatermark(math.MaxInt64))
			check("final watermark", m.watermark(math.MaxInt64))
			if n := countEntries(t, bk.b); n != 0 {
				t.Fatalf("round %d: %d entries left after the final watermark:\n%s", round, n, dumpState(t, bk.b, "op"))
			}
		}
	})
}

// sessionModel is an independent model of event-time session windows with
// EventTimeTrigger and no lateness: per key the in-flight sessions.
type sessionModel struct {
	wm       int64
	sessions map[string][]session
}

type session struct {
	w        window.Window
	sum, cnt int64
}

func (m *sessionModel) element(key string, ts, v, gap int64) []string {
	// As Flink: merge first, then check the merged window for lateness, so
	// a late element whose window reaches a live session joins it.
	w := window.Window{Start: ts, End: ts + gap}
	merged := session{w: w, sum: v, cnt: 1}
	var keep []session
	for _, s := range m.sessions[key] {
		if s.w.Intersects(w) {
			merged = session{w: merged.w.Cover(s.w), sum: merged.sum + s.sum, cnt: merged.cnt + s.cnt}
		} else {
			keep = append(keep, s)
		}
	}
	if merged.w.MaxTimestamp() <= m.wm {
		return []string{fmt.Sprintf("late %s %d %d", key, ts, v)}
	}
	m.sessions[key] = append(keep, merged)
	return nil
}

func (m *sessionModel) watermark(wm int64) []string {
	var out []string
	for key, ss := range m.sessions {
		var keep []session
		for _, s := range ss {
			if s.w.MaxTimestamp() <= wm {
				out = append(out, fmt.Sprintf("emit %s %s sum=%d n=%d", key, s.w, s.sum, s.cnt))
			} else {
				keep = append(keep, s)
			}
		}
		m.sessions[key] = keep
	}
	m.wm = max(m.wm, wm)
	return out
}

// TestSessionOracle compares fixed and dynamic-gap sessions with
// sessionModel over random out-of-order elements and watermarks.
func TestSessionOracle(t *testing.T) {
	t.Parallel()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	forEachBackend(t, func(t *testing.T, kind string) {
		rng := rand.New(rand.NewPCG(seed, 3))
		for round := range 20 {
			bk := openBackend(t, kind)
			fixed := 1 + rng.Int64N(15)
			dynamic := rng.IntN(2) == 0
			var a window.Assigner[int64]
			var err error
			if dynamic {
				a, err = window.DynamicSession(window.EventTime, func(v int64) int64 { return v }) // value = gap
			} else {
				a, err = window.Session[int64](window.EventTime, fixed)
			}
			must(t, err)
			k := newKeyed(t, bk.b)
			var got []string
			op, err := window.New(k, window.Config[int64, string]{
				Assigner: a,
				Function: window.AggregateProcess(sumAgg(true), func(info window.Info, in []string, emit func(string) error) error {
					return emit(fmt.Sprintf("%s n=%d", in[0], info.Count))
				}),
				Emit: func(key []byte, w window.Window, out string) error {
					got = append(got, fmt.Sprintf("emit %s %s %s", key, w, out))
					return nil
				},
				Late: func(key []byte, ts, v int64) error {
					got = append(got, fmt.Sprintf("late %s %d %d", key, ts, v))
					return nil
				},
			})
			must(t, err)
			m := &sessionModel{wm: math.MinInt64, sessions: map[string][]session{}}
			check := func(what string, want []string) {
				t.Helper()
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("round %d (%v) %s:\ngot  %q\nwant %q", round, a, what, got, want)
				}
				got = got[:0]
			}
			base := int64(0)
			for range 300 {
				if rng.IntN(6) > 0 {
					key := string(rune('a' + rng.IntN(3)))
					ts := base + rng.Int64N(40) - 20
					v := fixed
					if dynamic {
						v = 1 + rng.Int64N(15)
					}
					setKey(t, k, key)
					must(t, op.ProcessElement(ts, v))
					check(fmt.Sprintf("element %s %d", key, ts), m.element(key, ts, v, v))
					base += rng.Int64N(4)
				} else {
					wm := base - rng.Int64N(25)
					must(t, op.AdvanceWatermark(wm))
					check(fmt.Sprintf("watermark %d", wm), m.watermark(wm))
				}
			}
			must(t, op.AdvanceWatermark(math.MaxInt64))
			check("final watermark", m.watermark(math.MaxInt64))
			if n := countEntries(t, bk.b); n != 0 {
				t.Fatalf("round %d: %d entries left:\n%s", round, n, dumpState(t, bk.b, "op"))
			}
		}
	})
}

// TestHotPathDoesNotAllocate pins STYLE §18 for the steady state: an
// element for an existing window allocates nothing (heap backend).
func TestHotPathDoesNotAllocate(t *testing.T) {
	// Not parallel: AllocsPerRun counts the whole process.
	b, err := state.NewHeap(state.Config{})
	must(t, err)
	defer func() { _ = b.Close() }()
	for _, tc := range []struct {
		name string
		a    window.Assigner[int64]
	}{
		{"tumbling", mustAssigner(t)(window.Tumbling[int64](window.EventTime, 1000, 0))},
		{"sliding", mustAssigner(t)(window.Sliding[int64](window.EventTime, 1000, 250, 0))},
		{"session", mustAssigner(t)(window.Session[int64](window.EventTime, 1000))},
	} {
		k := newKeyedOn(t, b, tc.name)
		op, err := window.New(k, window.Config[int64, int64]{
			Assigner: tc.a,
			Function: window.Aggregate(window.AggregateFunction[int64, int64, int64]{
				Create: func() int64 { return 0 }, Add: func(a, v int64) int64 { return a + v },
				Merge: func(a, b int64) int64 { return a + b }, Result: func(a int64) int64 { return a },
				Codec: state.Int64Codec{},
			}),
			Emit: func([]byte, window.Window, int64) error { return nil },
		})
		must(t, err)
		key := []byte("key-1")
		must(t, k.SetCurrentKey(key, 7))
		must(t, op.ProcessElement(10, 1)) // creates the windows, timers and set
		if n := testing.AllocsPerRun(1000, func() {
			if err := k.SetCurrentKey(key, 7); err != nil {
				t.Fatal(err)
			}
			if err := op.ProcessElement(10, 1); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per element", tc.name, n)
		}
	}
}
