package runtime

import (
	"bytes"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func checkedMem(t *testing.T) *memory.CheckedAllocator {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

func TestBufferPoolReuseIsZeroed(t *testing.T) {
	t.Parallel()
	mem := checkedMem(t)
	p := newBufferPool(mem, 0)
	defer p.Close()

	b := p.Allocate(1000)
	if len(b) != 1000 || cap(b) != 1024 {
		t.Fatalf("Allocate(1000): len %d cap %d, want 1000, 1024", len(b), cap(b))
	}
	for i := range b {
		b[i] = 0xab
	}
	p.Free(b)
	c := p.Allocate(600) // same class: the same memory, zeroed
	if &c[0] != &b[0] {
		t.Error("a freed buffer of the class was not reused")
	}
	if !bytes.Equal(c, make([]byte, 600)) {
		t.Error("a reused buffer is not zeroed")
	}
	// Growing within the class keeps the contents and zeroes the rest,
	// though the bytes past len were dirty.
	c[0] = 1
	c = p.Reallocate(1024, c)
	if &c[0] != &b[0] || c[0] != 1 || !bytes.Equal(c[1:], make([]byte, 1023)) {
		t.Error("Reallocate within the class moved, lost or did not zero")
	}
	// Growing past it moves to a larger class, keeping the contents.
	c = p.Reallocate(5000, c)
	if cap(c) != 8192 || len(c) != 5000 || c[0] != 1 || !bytes.Equal(c[1:], make([]byte, 4999)) {
		t.Errorf("Reallocate(5000): len %d cap %d, contents kept %v", len(c), cap(c), c[0] == 1)
	}
	// Shrinking keeps the memory.
	d := p.Reallocate(10, c)
	if &d[0] != &c[0] || len(d) != 10 {
		t.Error("shrinking Reallocate moved the buffer")
	}
	p.Free(d)
	if p.mu.held != 1024+8192 {
		t.Errorf("pool holds %d bytes, want %d", p.mu.held, 1024+8192)
	}
}

func TestBufferPoolLargeAndBounded(t *testing.T) {
	t.Parallel()
	mem := checkedMem(t)
	p := newBufferPool(mem, 4096)

	big := p.Allocate(1<<poolMaxShift + 1) // above the classes: straight through
	if cap(big) == 1<<(poolMaxShift+1) {
		t.Error("a request above the largest class was rounded to a class")
	}
	big = p.Reallocate(1<<poolMaxShift+100, big)
	p.Free(big)

	a, b := p.Allocate(4096), p.Allocate(4096)
	p.Free(a)
	p.Free(b) // over the bound: back to mem
	if p.mu.held != 4096 {
		t.Errorf("pool holds %d bytes, want its bound 4096", p.mu.held)
	}
	p.Close()
	if got := mem.CurrentAlloc(); got != 0 {
		t.Errorf("%d bytes still allocated after Close", got)
	}
	// A buffer outliving Close goes straight back.
	c := p.Allocate(100)
	p.Free(c)
	if p.mu.held != 0 {
		t.Error("a closed pool kept a buffer")
	}
	p.Close() // idempotent
}

// TestBufferPoolArrow builds arrays through the pool, batch after batch,
// releasing each from another goroutine as a downstream task would: the
// memory is recycled and every batch reads back what was written.
func TestBufferPoolArrow(t *testing.T) {
	t.Parallel()
	mem := checkedMem(t)
	p := newBufferPool(mem, 0)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(p, schema)
	recs := make(chan arrow.RecordBatch, 4)
	var wg sync.WaitGroup
	wg.Go(func() {
		for rec := range recs {
			ints := rec.Column(0).(*array.Int64)
			strs := rec.Column(1).(*array.String)
			base := ints.Value(1) - 1
			for i := range int(rec.NumRows()) {
				if i%7 == 0 {
					if ints.IsValid(i) || strs.IsValid(i) {
						t.Errorf("row %d of batch %d is not null", i, base)
					}
					continue
				}
				if ints.Value(i) != base+int64(i) || strs.Value(i) != string(rune('a'+i%26)) {
					t.Errorf("batch %d row %d = %d %q", base, i, ints.Value(i), strs.Value(i))
				}
			}
			rec.Release()
		}
	})
	for n := range 200 {
		ib, sb := b.Field(0).(*array.Int64Builder), b.Field(1).(*array.StringBuilder)
		for i := range 100 + n%50 {
			if i%7 == 0 {
				ib.AppendNull()
				sb.AppendNull()
				continue
			}
			ib.Append(int64(n*1000 + i))
			sb.Append(string(rune('a' + i%26)))
		}
		recs <- b.NewRecordBatch()
	}
	close(recs)
	wg.Wait()
	b.Release()
	p.Close()
}

// TestBufferPoolConcurrent allocates and frees from many goroutines under
// the race detector; the checked allocator must end at zero.
func TestBufferPoolConcurrent(t *testing.T) {
	t.Parallel()
	mem := checkedMem(t)
	p := newBufferPool(mem, 1<<16)
	bufs := make(chan []byte, 64)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				b := p.Allocate(64 + (g*131+i*17)%5000)
				b[0] = byte(i)
				bufs <- b
			}
		})
	}
	var frees sync.WaitGroup
	frees.Go(func() {
		for b := range bufs {
			p.Free(b)
		}
	})
	wg.Wait()
	close(bufs)
	frees.Wait()
	p.Close()
}
