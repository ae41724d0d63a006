package state_test

import (
	"hash/fnv"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/sabotdev/sabot/worker/state"
)

// newBackendFunc opens a fresh backend of the kind under test; it is closed
// when the test ends.
type newBackendFunc func(t *testing.T, cfg state.Config) state.Backend

// forEachBackend runs fn once per backend, as parallel subtests.
func forEachBackend(t *testing.T, fn func(t *testing.T, newBackend newBackendFunc)) {
	t.Helper()
	backends := []struct {
		name string
		open newBackendFunc
	}{
		{"heap", func(t *testing.T, cfg state.Config) state.Backend {
			t.Helper()
			b, err := state.NewHeap(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			return b
		}},
		{"pebble", func(t *testing.T, cfg state.Config) state.Backend {
			t.Helper()
			b, err := state.OpenPebble(t.TempDir(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Error(err)
				}
			})
			return b
		}},
	}
	for _, bk := range backends {
		t.Run(bk.name, func(t *testing.T) {
			t.Parallel()
			fn(t, bk.open)
		})
	}
}

// start is the fake clock's starting time.
var start = time.Unix(1_000_000, 0)

// setup opens a backend with a fake clock and a Keyed for operator "op".
func setup(t *testing.T, nb newBackendFunc) (state.Backend, *state.Keyed, *clockwork.FakeClock) {
	t.Helper()
	clk := clockwork.NewFakeClockAt(start)
	b := nb(t, state.Config{Clock: clk})
	k, err := state.NewKeyed(b, "op")
	if err != nil {
		t.Fatal(err)
	}
	return b, k, clk
}

// kgOf is a stand-in key-group assignment for tests (any function works:
// the backend stores the key group it is given).
func kgOf(key string) uint16 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return uint16(h.Sum32() % 128)
}

func setKey(t *testing.T, k *state.Keyed, key string) {
	t.Helper()
	if err := k.SetCurrentKey([]byte(key), kgOf(key)); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// entry is a comparable copy of a state.Entry.
type entry struct {
	KeyGroup                      uint16
	Operator, State, Key, NS, Col string
	Value                         string
}

func collect(t *testing.T, b state.Backend, r state.KeyGroupRange, snapshot bool) []entry {
	t.Helper()
	var out []entry
	fn := func(e *state.Entry) error {
		out = append(out, entry{e.KeyGroup, e.Operator, e.State, string(e.Key), string(e.Namespace), string(e.Column), string(e.Value)})
		return nil
	}
	var err error
	if snapshot {
		err = b.SnapshotKeyGroups(r, fn)
	} else {
		err = b.IterateKeyGroups(r, fn)
	}
	must(t, err)
	return out
}

// countState counts the stored entries of one state across all key groups.
func countState(t *testing.T, b state.Backend, name string, snapshot bool) int {
	t.Helper()
	n := 0
	for _, e := range collect(t, b, b.KeyGroups(), snapshot) {
		if e.State == name {
			n++
		}
	}
	return n
}

func sortedEqual(a, b []entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
