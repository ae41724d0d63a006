package runtime

import (
	"math/bits"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Pool size classes: powers of two from 64 B to 4 MiB. A request above the
// largest class goes straight to the underlying allocator.
const (
	poolMinShift = 6
	poolMaxShift = 22
	// defaultPoolBytes bounds the free memory one bufferPool keeps.
	defaultPoolBytes = 16 << 20
)

// bufferPool is a memory.Allocator that keeps the buffers freed to it and
// hands them out again, so that an operator producing a batch per call
// (a source, a map) reuses the memory of the batches already released
// downstream instead of allocating afresh and leaving the old ones to the
// garbage collector. Arrow frees a buffer when its reference count drops
// to zero, so a buffer returns to the pool only once every batch that
// shared it — in a chain, in an exchange queue, in a window — has been
// released: reuse never races with a reader that still holds a reference.
// (Code that keeps a Go slice or string into a batch's memory after
// releasing the batch was already wrong with any allocator that frees.)
//
// Requests are rounded up to a power-of-two class; memory handed out is
// zeroed, as Arrow's allocators do. The pool keeps at most max bytes of
// free buffers, returning the rest to the underlying allocator, and Close
// returns everything it holds. After Close it still works, as a thin
// wrapper: buffers of batches that outlive their producer (still queued
// downstream) are freed straight to the underlying allocator, so a
// checked allocator ends at zero once every batch is released.
//
// It is safe for concurrent use: one goroutine allocates, the ones
// releasing batches free.
type bufferPool struct {
	mem memory.Allocator
	max int
	mu  struct {
		sync.Mutex
		free   [poolMaxShift + 1][][]byte // by class; LIFO keeps reuse cache-warm
		held   int                        // bytes in free
		closed bool
	}
}

var _ memory.Allocator = (*bufferPool)(nil)

// newBufferPool returns a pool over mem keeping at most maxBytes free
// bytes (defaultPoolBytes if maxBytes ≤ 0).
func newBufferPool(mem memory.Allocator, maxBytes int) *bufferPool {
	if maxBytes <= 0 {
		maxBytes = defaultPoolBytes
	}
	return &bufferPool{mem: mem, max: maxBytes}
}

// class returns the size class of a request of n > 0 bytes, or -1 when n
// is above the largest class.
func class(n int) int {
	s := max(bits.Len(uint(n-1)), poolMinShift)
	if s > poolMaxShift {
		return -1
	}
	return s
}

// pooled reports whether b was handed out from a class (its capacity is
// exactly a class size); anything else came straight from p.mem.
func pooled(b []byte) (int, bool) {
	c := cap(b)
	if c < 1<<poolMinShift || c > 1<<poolMaxShift || c&(c-1) != 0 {
		return 0, false
	}
	return bits.TrailingZeros(uint(c)), true
}

// Allocate implements memory.Allocator: n zeroed bytes.
func (p *bufferPool) Allocate(n int) []byte {
	if n <= 0 {
		return p.mem.Allocate(n)
	}
	b := p.get(n)
	clear(b)
	return b
}

// get returns n bytes, not zeroed, from a class or p.mem.
func (p *bufferPool) get(n int) []byte {
	s := class(n)
	if s < 0 {
		return p.mem.Allocate(n)
	}
	p.mu.Lock()
	if l := p.mu.free[s]; len(l) > 0 {
		b := l[len(l)-1]
		l[len(l)-1] = nil
		p.mu.free[s] = l[:len(l)-1]
		p.mu.held -= len(b)
		p.mu.Unlock()
		return b[:n]
	}
	p.mu.Unlock()
	size := 1 << s
	// A fresh allocation is zeroed by p.mem. The three-index slice pins
	// the capacity to the class, which is how Free recognises it.
	return p.mem.Allocate(size)[:n:size]
}

// Reallocate implements memory.Allocator: b resized to n bytes, its
// contents kept and any growth zeroed.
func (p *bufferPool) Reallocate(n int, b []byte) []byte {
	if _, ok := pooled(b); !ok && cap(b) > 0 {
		return p.mem.Reallocate(n, b)
	}
	if n <= cap(b) {
		if n > len(b) {
			clear(b[len(b):n])
		}
		return b[:n]
	}
	nb := p.get(n)
	copy(nb, b)
	clear(nb[len(b):])
	p.Free(b)
	return nb
}

// Free implements memory.Allocator.
func (p *bufferPool) Free(b []byte) {
	s, ok := pooled(b)
	if !ok {
		if cap(b) > 0 {
			p.mem.Free(b)
		}
		return
	}
	b = b[:1<<s]
	p.mu.Lock()
	if p.mu.closed || p.mu.held+len(b) > p.max {
		p.mu.Unlock()
		p.mem.Free(b)
		return
	}
	p.mu.free[s] = append(p.mu.free[s], b)
	p.mu.held += len(b)
	p.mu.Unlock()
}

// Close returns every free buffer to the underlying allocator and makes
// later frees go straight there. Idempotent.
func (p *bufferPool) Close() {
	p.mu.Lock()
	p.mu.closed = true
	var drain [][]byte
	for s, l := range p.mu.free {
		drain = append(drain, l...)
		p.mu.free[s] = nil
	}
	p.mu.held = 0
	p.mu.Unlock()
	// Freed outside the lock: the underlying allocator may be slow.
	for _, b := range drain {
		p.mem.Free(b)
	}
}
