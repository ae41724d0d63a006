package state_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sabotdev/sabot/worker/state"
)

type cleanupMode string

const (
	cleanupNone        cleanupMode = "none"
	cleanupOnRead      cleanupMode = "on-read"
	cleanupSnapshot    cleanupMode = "full-snapshot"
	cleanupIncremental cleanupMode = "incremental"
	cleanupStep        cleanupMode = "cleanup-step"
)

func ttlConfig(u state.TTLUpdate, v state.TTLVisibility, c cleanupMode) state.TTLConfig {
	cfg := state.TTLConfig{TTL: 10 * time.Second, Update: u, Visibility: v}
	switch c {
	case cleanupOnRead:
		cfg.CleanupOnRead = true
	case cleanupSnapshot:
		cfg.CleanupFullSnapshot = true
	case cleanupIncremental:
		cfg.CleanupIncremental = 10
	case cleanupNone, cleanupStep:
	}
	return cfg
}

// TestTTLValue runs every update type × visibility × cleanup mode on a
// value state: written at 0, read at 5s, then expired (at 11s for
// OnCreateAndWrite; OnReadAndWrite is still alive at 11s because of the
// read at 5s, is read again there, and expires at 21s).
func TestTTLValue(t *testing.T) {
	t.Parallel()
	updates := []state.TTLUpdate{state.OnCreateAndWrite, state.OnReadAndWrite}
	visibilities := []state.TTLVisibility{state.NeverReturnExpired, state.ReturnExpiredIfNotCleanedUp}
	modes := []cleanupMode{cleanupNone, cleanupOnRead, cleanupSnapshot, cleanupIncremental, cleanupStep}
	forEachBackend(t, func(t *testing.T, nb newBackendFunc) {
		for _, u := range updates {
			for _, vis := range visibilities {
				for _, mode := range modes {
					t.Run(fmt.Sprintf("update=%d/visibility=%d/%s", u, vis, mode), func(t *testing.T) {
						t.Parallel()
						testTTLValue(t, nb, u, vis, mode)
					})
				}
			}
		}
	})
}

func testTTLValue(t *testing.T, nb newBackendFunc, u state.TTLUpdate, vis state.TTLVisibility, mode cleanupMode) {
	b, k, clk := setup(t, nb)
	v, err := state.Value(k, state.ValueDescriptor[int64]{Name: "v", Codec: state.Int64Codec{}, TTL: ttlConfig(u, vis, mode)})
	must(t, err)
	get := func() (int64, bool) {
		t.Helper()
		got, ok, err := v.Value()
		must(t, err)
		return got, ok
	}
	setKey(t, k, "k")
	must(t, v.Update(1))
	clk.Advance(5 * time.Second)
	if _, ok := get(); !ok {
		t.Fatal("not visible before expiry")
	}
	clk.Advance(6 * time.Second) // 11s
	if u == state.OnReadAndWrite {
		if _, ok := get(); !ok {
			t.Fatal("read at 5s did not refresh")
		}
		clk.Advance(10 * time.Second) // 21s: 10s after the last read
	}
	if n := countState(t, b, "v", false); n != 1 {
		t.Fatalf("stored entries before cleanup: %d", n)
	}
	returnsExpired := vis == state.ReturnExpiredIfNotCleanedUp
	switch mode {
	case cleanupNone:
		if got, ok := get(); ok != returnsExpired || (ok && got != 1) {
			t.Fatalf("read: %d %v", got, ok)
		}
		if n := countState(t, b, "v", true); n != 1 {
			t.Fatalf("entry cleaned up without a cleanup mode: %d", n)
		}
	case cleanupOnRead:
		if _, ok := get(); ok != returnsExpired {
			t.Fatalf("first read visible=%v", ok)
		}
		if _, ok := get(); ok {
			t.Fatal("second read still sees the expired value")
		}
		if n := countState(t, b, "v", false); n != 0 {
			t.Fatalf("stored after read: %d", n)
		}
	case cleanupSnapshot:
		if n := countState(t, b, "v", true); n != 0 {
			t.Fatalf("snapshot has %d expired entries", n)
		}
		if n := countState(t, b, "v", false); n != 1 {
			t.Fatalf("full-snapshot cleanup deleted the entry: %d", n)
		}
		if _, ok := get(); ok != returnsExpired {
			t.Fatalf("read visible=%v", ok)
		}
	case cleanupIncremental:
		setKey(t, k, "another key")
		_, _ = get() // any access to the state checks some entries
		if n := countState(t, b, "v", false); n != 0 {
			t.Fatalf("stored after incremental cleanup: %d", n)
		}
	case cleanupStep:
		n, err := b.CleanupStep(100)
		must(t, err)
		if n < 1 {
			t.Fatalf("checked %d entries", n)
		}
		if n := countState(t, b, "v", false); n != 0 {
			t.Fatalf("stored after CleanupStep: %d", n)
		}
		setKey(t, k, "k")
		if _, ok := get(); ok {
			t.Fatal("visible after cleanup")
		}
	}
}

func TestTTLList(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		vis        state.TTLVisibility
		onRead     bool
		want       []string
		storedNext []string // what a second read returns
	}{
		{"never return expired", state.NeverReturnExpired, false, []string{"b"}, []string{"b"}},
		{"return expired", state.ReturnExpiredIfNotCleanedUp, false, []string{"a", "b"}, []string{"a", "b"}},
		{"return expired, cleanup on read", state.ReturnExpiredIfNotCleanedUp, true, []string{"a", "b"}, []string{"b"}},
	}
	forEachBackend(t, func(t *testing.T, nb newBackendFunc) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				b, k, clk := setup(t, nb)
				l, err := state.List(k, state.ListDescriptor[string]{Name: "l", Codec: state.StringCodec{},
					TTL: state.TTLConfig{TTL: 10 * time.Second, Visibility: tc.vis, CleanupOnRead: tc.onRead, CleanupFullSnapshot: true}})
				must(t, err)
				setKey(t, k, "k")
				must(t, l.Add("a"))
				clk.Advance(6 * time.Second)
				must(t, l.Add("b"))
				clk.Advance(5 * time.Second) // a expired (11s), b alive (5s)
				// A snapshot drops the expired element but keeps the list.
				if snap := collect(t, b, b.KeyGroups(), true); len(snap) != 1 {
					t.Fatalf("snapshot entries: %v", snap)
				}
				for i, want := range [][]string{tc.want, tc.storedNext} {
					got, err := l.Get()
					must(t, err)
					if !slices.Equal(got, want) {
						t.Fatalf("read %d: %q, want %q", i, got, want)
					}
				}
				clk.Advance(10 * time.Second)
				if n, err := b.CleanupStep(10); err != nil || n != 1 {
					t.Fatalf("cleanup step: %d %v", n, err)
				}
				if n := countState(t, b, "l", false); n != 0 {
					t.Fatalf("list survived full expiry: %d", n)
				}
			})
		}
	})
}

func TestTTLMap(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, nb newBackendFunc) {
		b, k, clk := setup(t, nb)
		m, err := state.Map(k, state.MapDescriptor[string, int64]{Name: "m", KeyCodec: state.StringCodec{}, ValueCodec: state.Int64Codec{},
			TTL: state.TTLConfig{TTL: 10 * time.Second, Update: state.OnReadAndWrite, CleanupOnRead: true}})
		must(t, err)
		setKey(t, k, "k")
		must(t, m.Put("old", 1))
		must(t, m.Put("read", 2))
		clk.Advance(6 * time.Second)
		must(t, m.Put("new", 3))
		if _, ok, _ := m.Get("read"); !ok { // refreshes "read" to 6s
			t.Fatal("read missing")
		}
		clk.Advance(5 * time.Second) // 11s: old expired, read and new alive
		got := map[string]int64{}
		must(t, m.Iterate(func(key string, v int64) error { got[key] = v; return nil }))
		if len(got) != 2 || got["read"] != 2 || got["new"] != 3 {
			t.Fatalf("entries at 11s: %v", got)
		}
		if n := countState(t, b, "m", false); n != 2 {
			t.Fatalf("expired entry not removed on iteration: %d stored", n)
		}
		clk.Advance(10 * time.Second) // everything expired (iteration refreshed to 11s)
		if empty, _ := m.IsEmpty(); !empty {
			t.Fatal("map not empty after expiry")
		}
	})
}

// TestTTLReducing: an expired accumulator counts as absent for Add, whatever
// the visibility (Flink's TtlReduceFunction).
func TestTTLReducing(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, nb newBackendFunc) {
		_, k, clk := setup(t, nb)
		r, err := state.Reducing(k, state.ReducingDescriptor[int64]{Name: "sum", Codec: state.Int64Codec{},
			Reduce: func(a, b int64) int64 { return a + b },
			TTL:    state.TTLConfig{TTL: time.Second, Visibility: state.ReturnExpiredIfNotCleanedUp}})
		must(t, err)
		setKey(t, k, "k")
		must(t, r.Add(5))
		clk.Advance(time.Second)
		if got, ok, _ := r.Get(); !ok || got != 5 {
			t.Fatalf("expired value not returned: %d %v", got, ok)
		}
		must(t, r.Add(1))
		if got, _, _ := r.Get(); got != 1 {
			t.Fatalf("sum after expiry = %d, want 1", got)
		}
	})
}
