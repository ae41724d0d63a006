package state_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jonboulle/clockwork"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/worker/state"
)

// sharedKeyOf is a runtime-like shared key: unique per DB instance.
func sharedKeyOf(instance string) func(string) string {
	return func(name string) string { return "shared/" + instance + "/" + name }
}

// reuseOf is the reuse map the runtime builds from a handle.
func reuseOf(h *clusterv1.PebbleStateHandle) map[string]*clusterv1.StateFile {
	m := make(map[string]*clusterv1.StateFile)
	for _, f := range h.GetFiles() {
		if f.GetShared() {
			m[f.GetName()] = f
		}
	}
	return m
}

// checkpoint takes a pebble snapshot and uploads it.
func checkpoint(t *testing.T, p *state.Pebble, st blob.Store, n int, instance string,
	reuse map[string]*clusterv1.StateFile,
) (*clusterv1.PebbleStateHandle, int64) {
	t.Helper()
	s, err := p.TakeSnapshot(filepath.Join(t.TempDir(), fmt.Sprintf("chk-%d", n)))
	must(t, err)
	defer func() {
		must(t, s.Release())
		if _, err := os.Stat(s.Dir()); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("checkpoint dir left after Release: %v", err)
		}
	}()
	h, up, err := s.Upload(t.Context(), st, fmt.Sprintf("chk-%d/op-0/", n), sharedKeyOf(instance), reuse)
	must(t, err)
	if len(h.GetFiles()) != len(s.Files()) {
		t.Fatalf("handle has %d files, checkpoint %d", len(h.GetFiles()), len(s.Files()))
	}
	return h, up
}

// TestPebbleIncremental: a second checkpoint after changing 1% of the
// keys uploads a small fraction of the first one's bytes, referencing the
// first one's SSTs, and restores to exactly the source's entries.
func TestPebbleIncremental(t *testing.T) {
	t.Parallel()
	const n = 5_000
	rng := rand.New(rand.NewPCG(1, 2)) // fixed seed: values are incompressible but reproducible
	value := func() []byte {
		b := make([]byte, 0, 128)
		for len(b) < 128 {
			b = binary.LittleEndian.AppendUint64(b, rng.Uint64())
		}
		return b
	}
	p, err := state.OpenPebble(t.TempDir(), state.Config{})
	must(t, err)
	defer func() { must(t, p.Close()) }()
	k, err := state.NewKeyed(p, "op")
	must(t, err)
	v, err := state.Value(k, state.ValueDescriptor[[]byte]{Name: "v", Codec: state.BytesCodec{}})
	must(t, err)
	put := func(i int) {
		must(t, k.SetCurrentKey(fmt.Appendf(nil, "key-%06d", i), uint16(i%128)))
		must(t, v.Update(value()))
	}
	for i := range n {
		put(i)
	}
	st := fileStore(t)
	h1, up1 := checkpoint(t, p, st, 1, "a", nil)
	for i := 0; i < n; i += 100 {
		put(i)
	}
	h2, up2 := checkpoint(t, p, st, 2, "a", reuseOf(h1))
	t.Logf("checkpoint 1 uploaded %d bytes in %d files; checkpoint 2 uploaded %d bytes (%.1f%%) in %d files",
		up1, len(h1.GetFiles()), up2, 100*float64(up2)/float64(up1), len(h2.GetFiles()))
	if up2*10 > up1 {
		t.Fatalf("incremental checkpoint uploaded %d bytes, the full one %d", up2, up1)
	}
	h1keys := map[string]bool{}
	for _, f := range h1.GetFiles() {
		h1keys[f.GetKey()] = true
		if strings.HasSuffix(f.GetName(), ".sst") != f.GetShared() {
			t.Errorf("%s shared=%v", f.GetName(), f.GetShared())
		}
	}
	reused := 0
	for _, f := range h2.GetFiles() {
		if f.GetShared() && h1keys[f.GetKey()] {
			reused++
		}
	}
	if reused == 0 {
		t.Fatal("checkpoint 2 references none of checkpoint 1's files")
	}
	want := collect(t, p, fullRange, false)

	r, err := state.OpenPebbleRestored(t.Context(), st, h2, t.TempDir(), state.Config{})
	must(t, err)
	defer func() { must(t, r.Close()) }()
	mustEqualEntries(t, collect(t, r, fullRange, false), want)

	// Restored into a narrower range: only its key groups are left.
	half := state.KeyGroupRange{Start: 32, End: 96}
	r2, err := state.OpenPebbleRestored(t.Context(), st, h2, t.TempDir(), state.Config{KeyGroups: half})
	must(t, err)
	defer func() { must(t, r2.Close()) }()
	mustEqualEntries(t, collect(t, r2, fullRange, false), inRange(want, half))

	// The restored DB continues the lineage: its next checkpoint may
	// reference the files of the handle it was restored from (those its
	// compactions left), and uploads exactly the others.
	rk, err := state.NewKeyed(r, "op")
	must(t, err)
	rv, err := state.Value(rk, state.ValueDescriptor[[]byte]{Name: "v", Codec: state.BytesCodec{}})
	must(t, err)
	must(t, rk.SetCurrentKey([]byte("key-000001"), 1))
	must(t, rv.Update([]byte("changed after restore")))
	h3, up3 := checkpoint(t, r, st, 3, "b", reuseOf(h2))
	h2files := reuseOf(h2)
	var fresh int64
	for _, f := range h3.GetFiles() {
		if old, ok := h2files[f.GetName()]; ok {
			if f.GetKey() != old.GetKey() {
				t.Errorf("%s re-uploaded to %q", f.GetName(), f.GetKey())
			}
			continue
		}
		fresh += f.GetSize()
	}
	if up3 != fresh {
		t.Fatalf("checkpoint after restore uploaded %d bytes, its new files have %d", up3, fresh)
	}
	wantRestored := collect(t, r, fullRange, false)
	r3, err := state.OpenPebbleRestored(t.Context(), st, h3, t.TempDir(), state.Config{})
	must(t, err)
	defer func() { must(t, r3.Close()) }()
	mustEqualEntries(t, collect(t, r3, fullRange, false), wantRestored)
}

// TestPebbleSnapshotReuseChecks: a reused file of the wrong size is an
// error; an object already under a shared key (an earlier, unfinished
// checkpoint of this DB) is taken over.
func TestPebbleSnapshotReuseChecks(t *testing.T) {
	t.Parallel()
	p, err := state.OpenPebble(t.TempDir(), state.Config{})
	must(t, err)
	defer func() { must(t, p.Close()) }()
	fill(t, p)
	st := fileStore(t)
	h1, up1 := checkpoint(t, p, st, 1, "a", nil)

	bad := reuseOf(h1)
	for name, f := range bad {
		bad[name] = &clusterv1.StateFile{Name: name, Key: f.GetKey(), Size: f.GetSize() + 1, Shared: true}
	}
	s, err := p.TakeSnapshot(filepath.Join(t.TempDir(), "chk-2"))
	must(t, err)
	defer func() { must(t, s.Release()) }()
	if _, _, err := s.Upload(t.Context(), st, "chk-2/op-0/", sharedKeyOf("a"), bad); err == nil {
		t.Fatal("reuse of a file of another size was accepted")
	}
	// No reuse map, but the shared objects exist already: nothing shared
	// is uploaded again, only the private files.
	h2, up2, err := s.Upload(t.Context(), st, "chk-2b/op-0/", sharedKeyOf("a"), nil)
	must(t, err)
	var private int64
	for _, f := range h2.GetFiles() {
		if !f.GetShared() {
			private += f.GetSize()
		}
	}
	if up2 != private || up2 >= up1 {
		t.Fatalf("uploaded %d bytes, private files %d, first checkpoint %d", up2, private, up1)
	}
}

// TestRestorePebbleInto: a pebble checkpoint restores into a heap, and two
// checkpoints of half the key groups each into one backend (2→1).
func TestRestorePebbleInto(t *testing.T) {
	t.Parallel()
	halves := []state.KeyGroupRange{{Start: 0, End: 64}, {Start: 64, End: 128}}
	st := fileStore(t)
	var (
		hs   []*clusterv1.PebbleStateHandle
		want []entry
		clk  *clockwork.FakeClock
	)
	for i, r := range halves {
		clk = clockwork.NewFakeClockAt(start)
		p, err := state.OpenPebble(t.TempDir(), state.Config{KeyGroups: r, Clock: clk})
		must(t, err)
		populate(t, p, clk)
		h, _ := checkpoint(t, p, st, i, fmt.Sprint("src", i), nil)
		hs = append(hs, h)
		want = append(want, collect(t, p, r, false)...)
		must(t, p.Close())
	}
	for _, dst := range backendKinds {
		t.Run(dst, func(t *testing.T) {
			t.Parallel()
			dclk := clockwork.NewFakeClockAt(clk.Now())
			var d state.Backend
			if dst == "pebble" {
				// The first by directory, the second by entries.
				p, err := state.OpenPebbleRestored(t.Context(), st, hs[0], t.TempDir(), state.Config{Clock: dclk})
				must(t, err)
				t.Cleanup(func() { must(t, p.Close()) })
				d = p
			} else {
				d = openBackend(t, dst, state.Config{Clock: dclk})
				must(t, state.RestorePebbleInto(t.Context(), st, hs[0], filepath.Join(t.TempDir(), "tmp0"), d))
			}
			tmp := filepath.Join(t.TempDir(), "tmp1")
			must(t, state.RestorePebbleInto(t.Context(), st, hs[1], tmp, d))
			if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("temporary directory left: %v", err)
			}
			mustEqualEntries(t, collect(t, d, fullRange, false), want)
			verify(t, d, dclk)
		})
	}
}

// TestRestorePebbleErrors: a missing or corrupt file fails the restore,
// naming its key; a handle with a path for a name is refused.
func TestRestorePebbleErrors(t *testing.T) {
	t.Parallel()
	p, err := state.OpenPebble(t.TempDir(), state.Config{})
	must(t, err)
	fill(t, p)
	st := fileStore(t)
	h, _ := checkpoint(t, p, st, 1, "a", nil)
	must(t, p.Close())

	var sst *clusterv1.StateFile
	si := 0
	for i, f := range h.GetFiles() {
		if f.GetShared() {
			sst, si = f, i
		}
	}
	// swap returns h with file i replaced by f.
	swap := func(i int, f *clusterv1.StateFile) *clusterv1.PebbleStateHandle {
		out := &clusterv1.PebbleStateHandle{Files: slices.Clone(h.GetFiles())}
		out.Files[i] = f
		return out
	}
	// A copy of the SST with a byte flipped in the store's file: the
	// store's checksum catches it. (The handle's own files stay intact:
	// downloads run in parallel, and each case must fail for one reason.)
	content := readObject(t, st, sst.GetKey())
	must(t, st.Put(t.Context(), "corrupt/x.sst", bytes.NewReader(content), int64(len(content))))
	path := filepath.Join(st.Root(), "corrupt", "x.sst")
	raw, err := os.ReadFile(path)
	must(t, err)
	raw[len(raw)/3] ^= 1
	must(t, os.Chmod(path, 0o644))
	must(t, os.WriteFile(path, raw, 0o644))

	cases := []struct {
		name  string
		h     *clusterv1.PebbleStateHandle
		is    error
		inMsg string
	}{
		{"missing", swap(si, &clusterv1.StateFile{Name: sst.GetName(), Key: "nowhere/x.sst", Size: sst.GetSize(), Shared: true}),
			blob.ErrNotFound, "nowhere/x.sst"},
		{"corrupt", swap(si, &clusterv1.StateFile{Name: sst.GetName(), Key: "corrupt/x.sst", Size: sst.GetSize(), Shared: true}),
			blob.ErrCorrupt, "corrupt/x.sst"},
		{"size", swap(0, &clusterv1.StateFile{Name: h.GetFiles()[0].GetName(), Key: h.GetFiles()[0].GetKey(),
			Size: h.GetFiles()[0].GetSize() + 1}), state.ErrCorrupt, h.GetFiles()[0].GetKey()},
		{"path name", swap(si, &clusterv1.StateFile{Name: "../x.sst", Key: sst.GetKey(), Size: sst.GetSize()}), state.ErrCorrupt, "../x.sst"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := state.RestorePebble(t.Context(), st, tc.h, t.TempDir())
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.inMsg) {
				t.Fatalf("got %v, want %v naming %q", err, tc.is, tc.inMsg)
			}
			t.Log(err)
		})
	}
	t.Run("dir not empty", func(t *testing.T) {
		dir := t.TempDir()
		must(t, os.WriteFile(filepath.Join(dir, "x"), nil, 0o644))
		if err := state.RestorePebble(t.Context(), st, h, dir); err == nil {
			t.Fatal("restored into a non-empty directory")
		}
	})
}

// TestSnapshotS3RoundTrip: both snapshot kinds through the S3 store
// (gofakes3): canonical pebble→heap, incremental pebble→pebble.
func TestSnapshotS3RoundTrip(t *testing.T) {
	t.Parallel()
	st := s3Store(t)
	clk := clockwork.NewFakeClockAt(start)
	p, err := state.OpenPebble(t.TempDir(), state.Config{Clock: clk})
	must(t, err)
	defer func() { must(t, p.Close()) }()
	populate(t, p, clk)

	h := upload(t, p, st, "savepoints/sp-1/op-0")
	hclk := clockwork.NewFakeClockAt(clk.Now())
	d := openBackend(t, "heap", state.Config{Clock: hclk})
	must(t, state.RestoreFull(t.Context(), st, h, fullRange, d))
	mustEqualEntries(t, collect(t, d, fullRange, false), collect(t, p, fullRange, true))
	verify(t, d, hclk)

	ph, up := checkpoint(t, p, st, 1, "a", nil)
	t.Logf("pebble checkpoint: %d files, %d bytes", len(ph.GetFiles()), up)
	want := collect(t, p, fullRange, false)
	rclk := clockwork.NewFakeClockAt(clk.Now())
	r, err := state.OpenPebbleRestored(t.Context(), st, ph, t.TempDir(), state.Config{Clock: rclk})
	must(t, err)
	defer func() { must(t, r.Close()) }()
	mustEqualEntries(t, collect(t, r, fullRange, false), want)
	verify(t, r, rclk)
}
