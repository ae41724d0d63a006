package runtime

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// LatencyHistogram counts durations in buckets of power-of-two
// nanoseconds, split in 8 linear sub-buckets (at most 12.5 % relative
// error), lock-free and of fixed size: safe to share between sink
// subtasks.
type LatencyHistogram struct {
	counts [64 * 8]atomic.Int64
}

// Record adds one duration (negative counts as 0).
func (h *LatencyHistogram) Record(d time.Duration) {
	h.counts[latencyBucket(d)].Add(1)
}

func latencyBucket(d time.Duration) int {
	ns := uint64(max(d, 0))
	if ns < 8 {
		return int(ns)
	}
	exp := bits.Len64(ns) - 1 // ns in [2^exp, 2^(exp+1))
	sub := int(ns>>(exp-3)) & 7
	return exp*8 + sub
}

// bucketUpper is the largest duration bucket b holds.
func bucketUpper(b int) time.Duration {
	if b < 8 {
		return time.Duration(b)
	}
	exp, sub := b/8, b%8
	lo := (uint64(8) + uint64(sub)) << (exp - 3)
	hi := lo + (uint64(1) << (exp - 3)) - 1
	if hi > math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(hi)
}

// Count is the number of recorded durations.
func (h *LatencyHistogram) Count() int64 {
	var n int64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Quantile returns the upper bound of the bucket holding quantile q
// (0 < q ≤ 1), or 0 with nothing recorded.
func (h *LatencyHistogram) Quantile(q float64) time.Duration {
	total := h.Count()
	if total == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(total)))
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return bucketUpper(i)
		}
	}
	return bucketUpper(len(h.counts) - 1)
}
