package state_test

import (
	"fmt"
	"testing"

	"github.com/sabotdev/sabot/worker/state"
)

// BenchmarkFullSnapshot measures a canonical snapshot of 100k value
// entries (16-byte keys, 8-byte values): "take" is the pause of the task
// (the heap copies; pebble takes a snapshot), "take+upload" adds the
// encoding and a file-store upload.
func BenchmarkFullSnapshot(b *testing.B) {
	const entries = 100_000
	benchBackends(b, func(b *testing.B, be state.Backend) {
		k, err := state.NewKeyed(be, "op")
		if err != nil {
			b.Fatal(err)
		}
		v, err := state.Value(k, state.ValueDescriptor[int64]{Name: "v", Codec: state.Int64Codec{}})
		if err != nil {
			b.Fatal(err)
		}
		for i := range entries {
			if err := k.SetCurrentKey(fmt.Appendf(nil, "key-%011d", i), uint16(i%128)); err != nil {
				b.Fatal(err)
			}
			if err := v.Update(int64(i)); err != nil {
				b.Fatal(err)
			}
		}
		b.Run("take", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s, err := state.TakeFullSnapshot(be, be.KeyGroups())
				if err != nil {
					b.Fatal(err)
				}
				_ = s.Release()
			}
			b.ReportMetric(float64(entries)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
		st, err := blobFileStore(b)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("take+upload", func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			var size int64
			for b.Loop() {
				s, err := state.TakeFullSnapshot(be, be.KeyGroups())
				if err != nil {
					b.Fatal(err)
				}
				h, err := s.Upload(b.Context(), st, fmt.Sprint("snap-", n))
				if err != nil {
					b.Fatal(err)
				}
				size = h.GetSize()
				n++
				_ = s.Release()
			}
			b.SetBytes(size)
			b.ReportMetric(float64(entries)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	})
}
