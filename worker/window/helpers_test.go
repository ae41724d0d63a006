package window_test

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sabotdev/sabot/worker/state"
	"github.com/sabotdev/sabot/worker/window"
)

// backend opens and restores one kind of state backend for a test.
// Restart simulates a restore: pebble writes a checkpoint (the hook the
// checkpoint milestone builds on; writes skip the WAL, so a checkpoint is
// the only way state survives), closes the DB and opens the checkpoint;
// the heap (no restore path yet) keeps its maps. Either way the caller
// then builds a fresh Keyed and Operator, so nothing the old ones held in
// memory survives.
type backend struct {
	kind string
	dir  string
	b    state.Backend
	n    int // checkpoints taken
}

func openBackend(t testing.TB, kind string) *backend {
	t.Helper()
	bk := &backend{kind: kind}
	if kind == "pebble" {
		bk.dir = t.TempDir()
	}
	bk.open(t)
	t.Cleanup(func() {
		if err := bk.b.Close(); err != nil {
			t.Error(err)
		}
	})
	return bk
}

func (bk *backend) open(t testing.TB) {
	t.Helper()
	var err error
	switch bk.kind {
	case "heap":
		bk.b, err = state.NewHeap(state.Config{})
	case "pebble":
		bk.b, err = state.OpenPebble(bk.dir, state.Config{})
	default:
		t.Fatalf("unknown backend %q", bk.kind)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func (bk *backend) restart(t testing.TB) {
	t.Helper()
	p, ok := bk.b.(*state.Pebble)
	if !ok {
		return
	}
	bk.n++
	dir := filepath.Join(bk.dir, fmt.Sprintf("chk-%d", bk.n))
	must(t, p.Checkpoint(dir))
	must(t, p.Close())
	bk.dir = dir
	bk.open(t)
}

// forEachBackend runs fn once per backend kind, as parallel subtests.
func forEachBackend(t *testing.T, fn func(t *testing.T, kind string)) {
	t.Helper()
	for _, kind := range []string{"heap", "pebble"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			fn(t, kind)
		})
	}
}

// kgOf is the tests' key-group function (the backend stores whatever key
// group it is given).
func kgOf(key string) uint16 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return uint16(h.Sum32() % 128)
}

func setKey(t testing.TB, k *state.Keyed, key string) {
	t.Helper()
	if err := k.SetCurrentKey([]byte(key), kgOf(key)); err != nil {
		t.Fatal(err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// dumpState lists every stored entry of operator op in the backend, one
// per line, in the backend's order (key group, state, key, namespace,
// column): state, key, namespace (a window, or "-" for the default
// namespace) and, for timers, the timestamp. "(empty)" when nothing is
// stored.
func dumpState(t testing.TB, b state.Backend, op string) string {
	t.Helper()
	var lines []string
	err := b.IterateKeyGroups(b.KeyGroups(), func(e *state.Entry) error {
		if e.Operator != op {
			return nil
		}
		ns := "-"
		if len(e.Namespace) > 0 {
			w, err := window.DecodeNamespace(e.Namespace)
			if err != nil {
				return err
			}
			ns = w.String()
		}
		line := fmt.Sprintf("%s %s %s", e.State, e.Key, ns)
		if len(e.Column) == 8 {
			line += fmt.Sprintf(" @%d", int64(binary.BigEndian.Uint64(e.Column)^(1<<63)))
		}
		lines = append(lines, line)
		return nil
	})
	must(t, err)
	if len(lines) == 0 {
		return "(empty)"
	}
	return strings.Join(lines, "\n")
}

// countEntries counts the stored entries of the backend.
func countEntries(t testing.TB, b state.Backend) int {
	t.Helper()
	n := 0
	must(t, b.IterateKeyGroups(b.KeyGroups(), func(*state.Entry) error { n++; return nil }))
	return n
}
