package state_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/worker/state"
)

var fullRange = state.KeyGroupRange{Start: 0, End: 128}

// TestFullSnapshotRoundTrip: every state kind, timers and TTL'd values in
// all 128 key groups survive a canonical snapshot from either backend
// into either backend: the restored entries equal the snapshot's
// (SnapshotKeyGroups at the take), handles read them, timers fire.
func TestFullSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	for _, src := range backendKinds {
		for _, dst := range backendKinds {
			t.Run(src+"->"+dst, func(t *testing.T) {
				t.Parallel()
				clk := clockwork.NewFakeClockAt(start)
				b := openBackend(t, src, state.Config{Clock: clk})
				populate(t, b, clk)
				st := fileStore(t)
				h := upload(t, b, st, "chk-1/op-0")
				want := collect(t, b, fullRange, true)

				dclk := clockwork.NewFakeClockAt(clk.Now())
				d := openBackend(t, dst, state.Config{Clock: dclk})
				must(t, state.RestoreFull(t.Context(), st, h, fullRange, d))
				// Not registered yet: iterated from the restored tables.
				mustEqualEntries(t, collect(t, d, fullRange, false), want)
				// Registered: the same entries (the heap adopted its
				// restored tables, map entries with an empty user key
				// included).
				register(t, d)
				mustEqualEntries(t, collect(t, d, fullRange, false), want)
				// A snapshot of the restored backend is the same object.
				h2 := upload(t, d, st, "chk-2/op-0")
				if !bytes.Equal(readObject(t, st, h.GetKey()), readObject(t, st, h2.GetKey())) {
					t.Fatal("snapshot of the restored backend differs from the original")
				}
				verify(t, d, dclk)
			})
		}
	}
}

// TestCanonicalIdenticalAcrossBackends: the same writes give the same
// object and offsets from both backends.
func TestCanonicalIdenticalAcrossBackends(t *testing.T) {
	t.Parallel()
	st := fileStore(t)
	var objs [][]byte
	var handles []*clusterv1.FullStateHandle
	for _, kind := range backendKinds {
		clk := clockwork.NewFakeClockAt(start)
		b := openBackend(t, kind, state.Config{Clock: clk})
		populate(t, b, clk)
		h := upload(t, b, st, kind)
		handles = append(handles, h)
		objs = append(objs, readObject(t, st, h.GetKey()))
	}
	if !bytes.Equal(objs[0], objs[1]) {
		t.Fatalf("heap object (%d bytes) and pebble object (%d bytes) differ", len(objs[0]), len(objs[1]))
	}
	if fmt.Sprint(handles[0].GetKeyGroupOffsets()) != fmt.Sprint(handles[1].GetKeyGroupOffsets()) {
		t.Fatal("key-group offsets differ")
	}
	t.Logf("canonical object: %d bytes, %d offsets", len(objs[0]), len(handles[0].GetKeyGroupOffsets()))
}

// TestFullSnapshotRescale: scale out 1→2 (each new subtask restores
// exactly its key groups from one handle) and in 2→1 (one subtask
// restores two handles).
func TestFullSnapshotRescale(t *testing.T) {
	t.Parallel()
	halves := []state.KeyGroupRange{{Start: 0, End: 64}, {Start: 64, End: 128}}
	for _, src := range backendKinds {
		for _, dst := range backendKinds {
			t.Run(src+"->"+dst, func(t *testing.T) {
				t.Parallel()
				st := fileStore(t)
				t.Run("1to2", func(t *testing.T) {
					clk := clockwork.NewFakeClockAt(start)
					b := openBackend(t, src, state.Config{Clock: clk})
					populate(t, b, clk)
					h := upload(t, b, st, "out/op-0")
					want := collect(t, b, fullRange, true)
					for _, r := range halves {
						dclk := clockwork.NewFakeClockAt(clk.Now())
						d := openBackend(t, dst, state.Config{KeyGroups: r, Clock: dclk})
						must(t, state.RestoreFull(t.Context(), st, h, fullRange, d))
						mustEqualEntries(t, collect(t, d, fullRange, false), inRange(want, r))
						verify(t, d, dclk)
					}
				})
				t.Run("2to1", func(t *testing.T) {
					var hs []*clusterv1.FullStateHandle
					var want []entry
					clk := clockwork.NewFakeClockAt(start)
					for i, r := range halves {
						clk = clockwork.NewFakeClockAt(start)
						b := openBackend(t, src, state.Config{KeyGroups: r, Clock: clk})
						populate(t, b, clk)
						hs = append(hs, upload(t, b, st, fmt.Sprintf("in/op-%d", i)))
						want = append(want, collect(t, b, r, true)...)
					}
					dclk := clockwork.NewFakeClockAt(clk.Now())
					d := openBackend(t, dst, state.Config{Clock: dclk})
					// In reverse order: the result does not depend on it.
					for i := len(hs) - 1; i >= 0; i-- {
						must(t, state.RestoreFull(t.Context(), st, hs[i], halves[i], d))
					}
					mustEqualEntries(t, collect(t, d, fullRange, false), want)
					verify(t, d, dclk)
				})
			})
		}
	}
}

// TestFullSnapshotIsolation: what is uploaded is the state at the take,
// however the backend changes between take and upload, and while the
// upload runs in another goroutine.
func TestFullSnapshotIsolation(t *testing.T) {
	t.Parallel()
	for _, kind := range backendKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			clk := clockwork.NewFakeClockAt(start)
			b := openBackend(t, kind, state.Config{Clock: clk})
			populate(t, b, clk)
			st := fileStore(t)
			snap, err := state.TakeFullSnapshot(b, fullRange)
			must(t, err)
			want := collect(t, b, fullRange, true)

			mutate := func() {
				s := register(t, b)
				late, err := state.Value(s.k, state.ValueDescriptor[string]{Name: "late", Codec: state.StringCodec{}})
				must(t, err)
				for kg := fullRange.Start; kg < fullRange.End; kg++ {
					for i := range keysPerGroup {
						s.at(t, kg, i)
						must(t, s.v.Update(-1))
						must(t, s.l.Clear())
						must(t, s.m.Put(fmt.Sprint("new", i), 7))
						must(t, s.m.Remove("x"))
						must(t, s.timers.DeleteEventTimeTimer(eventTS(kg, i)))
						must(t, s.timers.RegisterEventTimeTimer(eventTS(kg, i)+1))
						must(t, late.Update("x"))
					}
				}
				must(t, b.DeleteKeyGroups(state.KeyGroupRange{Start: 0, End: 32}))
				// TTL is judged at the take: an hour later every TTL'd
				// entry has expired, yet the snapshot keeps "ttl" entries.
				clk.Advance(time.Hour)
			}
			// First mutate, then upload concurrently with more mutations.
			mutate()
			type result struct {
				h   *clusterv1.FullStateHandle
				err error
			}
			done := make(chan result, 1)
			go func() {
				h, err := snap.Upload(t.Context(), st, "iso")
				done <- result{h, err}
			}()
			mutate()
			res := <-done
			must(t, res.err)
			must(t, snap.Release())
			if got := collect(t, b, fullRange, true); len(got) == len(want) {
				t.Fatal("mutations did not change the backend")
			}

			d := openBackend(t, "heap", state.Config{})
			must(t, state.RestoreFull(t.Context(), st, res.h, fullRange, d))
			mustEqualEntries(t, collect(t, d, fullRange, false), want)
		})
	}
}

// TestFullSnapshotRelease: Upload after Release fails with ErrReleased;
// closing a pebble backend releases its snapshots.
func TestFullSnapshotRelease(t *testing.T) {
	t.Parallel()
	st := fileStore(t)
	for _, kind := range backendKinds {
		b := openBackend(t, kind, state.Config{})
		fill(t, b)
		s, err := state.TakeFullSnapshot(b, fullRange)
		must(t, err)
		must(t, s.Release())
		must(t, s.Release())
		if _, err := s.Upload(t.Context(), st, kind+"-released"); !errors.Is(err, state.ErrReleased) {
			t.Fatalf("%s: upload after release: %v", kind, err)
		}
		if _, err := state.TakeFullSnapshot(b, state.KeyGroupRange{Start: 0, End: 129}); !errors.Is(err, state.ErrKeyGroupOutOfRange) {
			t.Fatalf("%s: snapshot outside the range: %v", kind, err)
		}
	}
	p, err := state.OpenPebble(t.TempDir(), state.Config{})
	must(t, err)
	fill(t, p)
	s, err := state.TakeFullSnapshot(p, fullRange)
	must(t, err)
	must(t, p.Close())
	if _, err := s.Upload(t.Context(), st, "closed"); !errors.Is(err, state.ErrReleased) {
		t.Fatalf("upload after close: %v", err)
	}
	must(t, s.Release())
	if _, err := state.TakeFullSnapshot(p, fullRange); !errors.Is(err, state.ErrClosed) {
		t.Fatalf("take after close: %v", err)
	}
}

// TestRestoreErrors: a missing or corrupt object, a handle that does not
// match its object and a restore after registration fail clearly, naming
// the key.
func TestRestoreErrors(t *testing.T) {
	t.Parallel()
	st := fileStore(t)
	src := openBackend(t, "heap", state.Config{})
	fill(t, src)
	h := upload(t, src, st, "good/op")
	content := readObject(t, st, h.GetKey())

	// A copy of the object with one byte flipped in the store's file:
	// the store's checksum catches it.
	must(t, st.Put(t.Context(), "flipped/op", bytes.NewReader(content), int64(len(content))))
	path := filepath.Join(st.Root(), "flipped", "op")
	raw, err := os.ReadFile(path)
	must(t, err)
	raw[len(raw)/2] ^= 0x40
	must(t, os.Chmod(path, 0o644))
	must(t, os.WriteFile(path, raw, 0o644))
	// A well-formed blob object whose content is not a snapshot.
	bad := bytes.Clone(content)
	bad[0] = 'X'
	must(t, st.Put(t.Context(), "garbage/op", bytes.NewReader(bad), int64(len(bad))))
	// An entry claiming the wrong key group.
	moved := bytes.Clone(content)
	off := h.GetKeyGroupOffsets()[5]
	moved[off+1]++
	must(t, st.Put(t.Context(), "moved/op", bytes.NewReader(moved), int64(len(moved))))

	withKey := func(key string) *clusterv1.FullStateHandle {
		return &clusterv1.FullStateHandle{Key: key, Size: h.GetSize(), KeyGroupOffsets: h.GetKeyGroupOffsets()}
	}
	cases := []struct {
		name  string
		h     *clusterv1.FullStateHandle
		r     state.KeyGroupRange
		is    error
		inMsg string
	}{
		{"missing", withKey("missing/op"), fullRange, blob.ErrNotFound, "missing/op"},
		{"flipped byte", withKey("flipped/op"), fullRange, blob.ErrCorrupt, "flipped/op"},
		{"not a snapshot", withKey("garbage/op"), fullRange, state.ErrCorrupt, "garbage/op"},
		{"entry in the wrong key group", withKey("moved/op"), fullRange, state.ErrCorrupt, "moved/op"},
		{"range not the handle's", h, state.KeyGroupRange{Start: 0, End: 64}, state.ErrCorrupt, "good/op"},
		{"size not the object's", &clusterv1.FullStateHandle{Key: h.GetKey(), Size: h.GetSize() + 1,
			KeyGroupOffsets: append(h.GetKeyGroupOffsets()[:128:128], h.GetKeyGroupOffsets()[128]+1)}, fullRange, state.ErrCorrupt, "good/op"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, kind := range backendKinds {
				d := openBackend(t, kind, state.Config{})
				err := state.RestoreFull(t.Context(), st, tc.h, tc.r, d)
				if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.inMsg) {
					t.Fatalf("%s: got %v, want %v naming %q", kind, err, tc.is, tc.inMsg)
				}
				t.Logf("%s: %v", kind, err)
			}
		})
	}
	t.Run("after register", func(t *testing.T) {
		for _, kind := range backendKinds {
			d := openBackend(t, kind, state.Config{})
			k, err := state.NewKeyed(d, "op")
			must(t, err)
			_, err = k.TimerService("t")
			must(t, err)
			if err := state.RestoreFull(t.Context(), st, h, fullRange, d); !errors.Is(err, state.ErrRestoreAfterRegister) {
				t.Fatalf("%s: %v", kind, err)
			}
		}
	})
	// Restoring only a sub-range decodes only its bytes: corrupt a byte
	// in key group 100's entries (keeping the object's checksum valid)
	// and restore [0, 64) of it.
	t.Run("sub-range skips other key groups", func(t *testing.T) {
		skew := bytes.Clone(content)
		skew[h.GetKeyGroupOffsets()[100]+2] = 0xff // a length prefix: too long
		must(t, st.Put(t.Context(), "skew/op", bytes.NewReader(skew), int64(len(skew))))
		d := openBackend(t, "heap", state.Config{KeyGroups: state.KeyGroupRange{Start: 0, End: 64}})
		must(t, state.RestoreFull(t.Context(), st, withKey("skew/op"), fullRange, d))
		d2 := openBackend(t, "heap", state.Config{KeyGroups: state.KeyGroupRange{Start: 64, End: 128}})
		if err := state.RestoreFull(t.Context(), st, withKey("skew/op"), fullRange, d2); !errors.Is(err, state.ErrCorrupt) {
			t.Fatalf("corrupt half: %v", err)
		}
	})
}
