// Package keygroup is the key hash of Sabot: MurmurHash3 x86 32-bit, and
// the key group a hash falls in. It is part of the savepoint format and of
// invoke routing (the gateway computes a key's key group to find the
// worker that owns it), so it must never change for a given key. See
// worker/runtime's hash.go for how typed key columns are hashed; a single
// string key hashes as its bytes with seed 0 (StringKeyGroup).
package keygroup

import "math/bits"

const (
	murmurC1 = 0xcc9e2d51
	murmurC2 = 0x1b873593
)

// Block mixes one 4-byte block into h.
func Block(h, k uint32) uint32 {
	k *= murmurC1
	k = bits.RotateLeft32(k, 15)
	k *= murmurC2
	h ^= k
	h = bits.RotateLeft32(h, 13)
	return h*5 + 0xe6546b64
}

// Final is the finalization of a hash over n bytes.
func Final(h uint32, n int) uint32 {
	h ^= uint32(n)
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// Murmur3 is MurmurHash3 x86 32-bit of data with the given seed. It takes a
// string or a byte slice without copying either.
func Murmur3[T ~string | ~[]byte](data T, seed uint32) uint32 {
	h := seed
	n := len(data)
	i := 0
	for ; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		h = Block(h, k)
	}
	var k uint32
	switch n - i {
	case 3:
		k ^= uint32(data[i+2]) << 16
		fallthrough
	case 2:
		k ^= uint32(data[i+1]) << 8
		fallthrough
	case 1:
		k ^= uint32(data[i])
		k *= murmurC1
		k = bits.RotateLeft32(k, 15)
		k *= murmurC2
		h ^= k
	}
	return Final(h, n)
}

// Of is the key group of a key hash: hash mod maxParallelism.
func Of(hash uint32, maxParallelism int) int { return int(hash % uint32(maxParallelism)) }

// StringKeyGroup is the key group of a key that is one string column's
// value (as a hash edge on that column computes it).
func StringKeyGroup(key string, maxParallelism int) int { return Of(Murmur3(key, 0), maxParallelism) }
