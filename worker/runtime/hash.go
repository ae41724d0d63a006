package runtime

import (
	"fmt"
	"math"

	"github.com/sabotdev/sabot/internal/keygroup"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Key hashing. A row's key is the values of the edge's key columns; its
// hash is MurmurHash3 x86 32-bit, chained over the columns: h = 0, then for
// each key column h = murmur3(value bytes, seed h). Value bytes are:
//
//   - signed integers, dates, times, timestamps, durations: the value
//     widened to int64, 8 bytes little-endian (so an int32 5 and an int64 5
//     hash alike);
//   - unsigned integers: widened to uint64, 8 bytes little-endian;
//   - floats: the IEEE-754 bits of the value widened to float64, with -0
//     hashed as 0;
//   - booleans: as the integers 0 and 1;
//   - strings and binaries: their bytes;
//   - null: no bytes (h = murmur3("", seed h)).
//
// key group = h mod maxParallelism, subtask = jobgraph.SubtaskForKeyGroup.
// The hash is part of the savepoint format and of invoke routing: it must
// never change for a given key. (It belongs in a package the gateway can
// import too; see the package doc.)

// The hash itself lives in internal/keygroup, shared with the gateway's
// invoke routing.

func murmurBlock(h, k uint32) uint32 { return keygroup.Block(h, k) }

func murmurFinal(h uint32, n int) uint32 { return keygroup.Final(h, n) }

// Murmur3 is MurmurHash3 x86 32-bit of data with the given seed. It takes a
// string or a byte slice without copying either.
func Murmur3[T ~string | ~[]byte](data T, seed uint32) uint32 { return keygroup.Murmur3(data, seed) }

// murmur3U64 is Murmur3 of v's 8 little-endian bytes, without the bytes.
func murmur3U64(v uint64, seed uint32) uint32 {
	h := murmurBlock(seed, uint32(v))
	h = murmurBlock(h, uint32(v>>32))
	return murmurFinal(h, 8)
}

// murmur3Null is the contribution of a null value.
func murmur3Null(seed uint32) uint32 { return murmurFinal(seed, 0) }

// hashKeyColumns chains the hash of column col into hashes (one per row).
// It allocates nothing.
func hashKeyColumn(col arrow.Array, hashes []uint32) error {
	n := col.Len()
	nulls := col.NullN() > 0
	switch a := col.(type) {
	case *array.Int64:
		for i := range n {
			hashes[i] = hashInt(a, nulls, i, uint64(a.Value(i)), hashes[i])
		}
	case *array.Int32:
		for i := range n {
			hashes[i] = hashInt(a, nulls, i, uint64(int64(a.Value(i))), hashes[i])
		}
	case *array.Int16:
		for i := range n {
			hashes[i] = hashInt(a, nulls, i, uint64(int64(a.Value(i))), hashes[i])
		}
	case *array.Int8:
		for i := range n {
			hashes[i] = hashInt(a, nulls, i, uint64(int64(a.Value(i))), hashes[i])
		}
	case *array.Uint64:
		for i := range n {
			hashes[i] = hashInt(a, nulls, i, a.Value(i), hashes[i])
		}
	case *array.Uint32:
		for i := range n {
			hashes[i] = hashInt(a, nulls, i, uint64(a.Value(i)), hashes[i])
		}
	case *array.Uint16:
		for i := range n {
			hashes[i] = hashInt(a, nulls, i, uint64(a.Value(i)), hashes[i])
		}
	case *array.Uint8:
		for i := range n {
			hashes[i] = hashInt(a, nulls, i, uint64(a.Value(i)), hashes[i])
		}
	case *array.Timestamp:
		for i := range n {
			hashes[i] = hashInt(a, nulls, i, uint64(int64(a.Value(i))), hashes[i])
		}
	case *array.Date32:
		for i := range n {
			hashes[i] = hashInt(a, nulls, i, uint64(int64(a.Value(i))), hashes[i])
		}
	case *array.Date64:
		for i := range n {
			hashes[i] = hashInt(a, nulls, i, uint64(int64(a.Value(i))), hashes[i])
		}
	case *array.Time32:
		for i := range n {
			hashes[i] = hashInt(a, nulls, i, uint64(int64(a.Value(i))), hashes[i])
		}
	case *array.Time64:
		for i := range n {
			hashes[i] = hashInt(a, nulls, i, uint64(int64(a.Value(i))), hashes[i])
		}
	case *array.Duration:
		for i := range n {
			hashes[i] = hashInt(a, nulls, i, uint64(int64(a.Value(i))), hashes[i])
		}
	case *array.Boolean:
		for i := range n {
			var v uint64
			if a.Value(i) {
				v = 1
			}
			hashes[i] = hashInt(a, nulls, i, v, hashes[i])
		}
	case *array.Float64:
		for i := range n {
			hashes[i] = hashInt(a, nulls, i, floatBits(a.Value(i)), hashes[i])
		}
	case *array.Float32:
		for i := range n {
			hashes[i] = hashInt(a, nulls, i, floatBits(float64(a.Value(i))), hashes[i])
		}
	case *array.String:
		for i := range n {
			if nulls && a.IsNull(i) {
				hashes[i] = murmur3Null(hashes[i])
				continue
			}
			hashes[i] = Murmur3(a.Value(i), hashes[i])
		}
	case *array.LargeString:
		for i := range n {
			if nulls && a.IsNull(i) {
				hashes[i] = murmur3Null(hashes[i])
				continue
			}
			hashes[i] = Murmur3(a.Value(i), hashes[i])
		}
	case *array.Binary:
		for i := range n {
			if nulls && a.IsNull(i) {
				hashes[i] = murmur3Null(hashes[i])
				continue
			}
			hashes[i] = Murmur3(a.Value(i), hashes[i])
		}
	case *array.LargeBinary:
		for i := range n {
			if nulls && a.IsNull(i) {
				hashes[i] = murmur3Null(hashes[i])
				continue
			}
			hashes[i] = Murmur3(a.Value(i), hashes[i])
		}
	default:
		return fmt.Errorf("runtime: cannot hash key column of type %s", col.DataType())
	}
	return nil
}

func hashInt(a arrow.Array, nulls bool, i int, v uint64, seed uint32) uint32 {
	if nulls && a.IsNull(i) {
		return murmur3Null(seed)
	}
	return murmur3U64(v, seed)
}

func floatBits(f float64) uint64 {
	if f == 0 {
		return 0 // -0 and +0 are one key
	}
	return math.Float64bits(f)
}

// KeyGroup returns the key group of a key hash among maxParallelism.
func KeyGroup(hash uint32, maxParallelism int) int { return keygroup.Of(hash, maxParallelism) }

// HashKeys computes the key hash of every row of rec over the columns keys
// into hashes, which must have rec.NumRows() entries.
func HashKeys(rec arrow.RecordBatch, keys []int, hashes []uint32) error {
	clear(hashes)
	for _, k := range keys {
		if err := hashKeyColumn(rec.Column(k), hashes); err != nil {
			return fmt.Errorf("key column %q: %w", rec.ColumnName(k), err)
		}
	}
	return nil
}
