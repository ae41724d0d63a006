package nexmark

import "math/bits"

// rng is SplitMix64 (Steele, Lea, Flood 2014): a 64-bit counter advanced by
// the golden gamma and hashed. It is tiny (one word, lives on the stack),
// fast, and — what matters here — can be started anywhere: each event gets
// its own rng whose start is a hash of (seed key, event number), so events
// can be generated independently and in any order.
type rng struct{ s uint64 }

const golden = 0x9e3779b97f4a7c15

// mix64 is SplitMix64's output function (a 64-bit finaliser with full
// avalanche).
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// seedKey turns a user seed into the key of one stream; salt separates the
// streams derived from the same seed (events, channel URLs).
func seedKey(seed int64, salt uint64) uint64 { return mix64(uint64(seed)*golden ^ salt) }

// newRNG starts the generator of item n (an event number, a channel number)
// of the stream with the given key.
func newRNG(key uint64, n int64) rng { return rng{s: mix64(key + uint64(n)*0xd1b54a32d192ed03)} }

func (r *rng) next() uint64 {
	r.s += golden
	return mix64(r.s)
}

// intn returns a uniform value in [0, n), n > 0, without modulo bias
// (Lemire, "Fast random integer generation in an interval", 2019).
func (r *rng) intn(n uint64) uint64 {
	hi, lo := bits.Mul64(r.next(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(r.next(), n)
		}
	}
	return hi
}

// float64 returns a uniform value in [0, 1) with 53 random bits.
func (r *rng) float64() float64 { return float64(r.next()>>11) * 0x1p-53 }
