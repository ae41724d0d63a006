package runtime_test

import (
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// peakAllocator records the highest number of bytes allocated at once.
type peakAllocator struct {
	*memory.CheckedAllocator
	max atomic.Int64
}

func (a *peakAllocator) note() {
	cur := int64(a.CurrentAlloc())
	for {
		m := a.max.Load()
		if cur <= m || a.max.CompareAndSwap(m, cur) {
			return
		}
	}
}

func (a *peakAllocator) Allocate(n int) []byte {
	b := a.CheckedAllocator.Allocate(n)
	a.note()
	return b
}

func (a *peakAllocator) Reallocate(n int, b []byte) []byte {
	b = a.CheckedAllocator.Reallocate(n, b)
	a.note()
	return b
}

func (a *peakAllocator) peak() int { return int(a.max.Load()) }
