package nexmark

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// bidWriter writes bids straight into the Arrow buffers of one batch, as
// the hot path of the source: values go to typed slices over the buffers,
// channel and URL bytes are copied once from the channel table, and
// extra's letters are generated in place in the extra column. There are
// no validity bitmaps (no bid column has nulls) and no per-value builder
// bookkeeping.
//
// Between start and finish the writer owns one reference to each buffer;
// finish hands them to the batch it returns, so between batches it holds
// nothing and needs no release.
type bidWriter struct {
	mem    memory.Allocator
	ev     *Events
	schema *arrow.Schema
	types  []arrow.DataType // of schema's columns

	rows, cap int
	// auction, bidder, price and dateTime, by their bid* index.
	ints                [4]intColumn
	channel, url, extra strColumn
}

// Indexes into bidWriter.ints.
const (
	wAuction = iota
	wBidder
	wPrice
	wDateTime
)

func newBidWriter(mem memory.Allocator, ev *Events) *bidWriter {
	w := &bidWriter{mem: mem, ev: ev, schema: BidSchema()}
	for _, f := range w.schema.Fields() {
		w.types = append(w.types, f.Type)
	}
	return w
}

// start begins a batch with room for rows bids (appends grow it as
// needed). String data is reserved by its expected size: measured
// averages are 8.9 bytes for channel and 63.2 for url, and extra averages
// AvgBidBytes - 32; the slack keeps a full batch from regrowing.
func (w *bidWriter) start(rows int) {
	rows = max(rows, 1)
	w.rows, w.cap = 0, rows
	for i := range w.ints {
		w.ints[i].init(w.mem, rows)
	}
	w.channel.init(w.mem, rows, rows*10+16)
	w.url.init(w.mem, rows, rows*66+128)
	w.extra.init(w.mem, rows, rows*(max(w.ev.cfg.AvgBidBytes-32, 0)+1)+128)
}

// append writes bid b, whose extra is the next extra letters of r.
func (w *bidWriter) append(b *bidRow, r *rng, extra int) {
	if w.rows == w.cap {
		w.grow()
	}
	i := w.rows
	w.ints[wAuction].v[i] = b.auction
	w.ints[wBidder].v[i] = b.bidder
	w.ints[wPrice].v[i] = b.price
	w.ints[wDateTime].v[i] = b.dateTime
	w.channel.append(i, w.ev.channelNameBytes(b.channel))
	w.url.append(i, w.ev.channelURLBytes(b.channel))
	fillLetters(w.extra.extend(i, extra), r)
	w.rows++
}

// grow doubles the row capacity.
func (w *bidWriter) grow() {
	w.cap *= 2
	for i := range w.ints {
		w.ints[i].grow(w.cap)
	}
	w.channel.grow(w.cap)
	w.url.grow(w.cap)
	w.extra.grow(w.cap)
}

// finish returns the batch written since start, handing it the buffers.
func (w *bidWriter) finish() arrow.RecordBatch {
	n, t := w.rows, w.types
	cols := [...]arrow.Array{
		bidAuction:  w.ints[wAuction].array(t[bidAuction], n),
		bidBidder:   w.ints[wBidder].array(t[bidBidder], n),
		bidPrice:    w.ints[wPrice].array(t[bidPrice], n),
		bidChannel:  w.channel.array(t[bidChannel], n),
		bidURL:      w.url.array(t[bidURL], n),
		bidDateTime: w.ints[wDateTime].array(t[bidDateTime], n),
		bidExtra:    w.extra.array(t[bidExtra], n),
	}
	rec := array.NewRecordBatch(w.schema, cols[:], int64(n))
	for _, c := range cols {
		c.Release()
	}
	w.rows, w.cap = 0, 0
	return rec
}

// intColumn is an int64 (or timestamp) column being written.
type intColumn struct {
	buf *memory.Buffer
	v   []int64
}

func (c *intColumn) init(mem memory.Allocator, rows int) {
	c.buf = memory.NewResizableBuffer(mem)
	c.buf.Resize(rows * arrow.Int64SizeBytes)
	c.v = arrow.Int64Traits.CastFromBytes(c.buf.Bytes())
}

func (c *intColumn) grow(rows int) {
	c.buf.Resize(rows * arrow.Int64SizeBytes)
	c.v = arrow.Int64Traits.CastFromBytes(c.buf.Bytes())
}

// array returns the column's first n values as an array of type dt,
// taking over the writer's reference to the buffer.
func (c *intColumn) array(dt arrow.DataType, n int) arrow.Array {
	c.buf.ResizeNoShrink(n * arrow.Int64SizeBytes)
	a := newArray(dt, n, c.buf)
	c.buf, c.v = nil, nil
	return a
}

// strColumn is a utf8 column being written: offsets and data.
type strColumn struct {
	off  *memory.Buffer
	o    []int32
	data *memory.Buffer
	// d is the data written so far; its capacity is the buffer's, so an
	// append within it writes into the buffer.
	d []byte
}

func (c *strColumn) init(mem memory.Allocator, rows, bytes int) {
	c.off = memory.NewResizableBuffer(mem)
	c.off.Resize((rows + 1) * arrow.Int32SizeBytes)
	c.o = arrow.Int32Traits.CastFromBytes(c.off.Bytes())
	c.o[0] = 0
	c.data = memory.NewResizableBuffer(mem)
	c.data.Reserve(bytes)
	c.d = c.data.Buf()[:0:c.data.Cap()]
}

func (c *strColumn) grow(rows int) {
	c.off.Resize((rows + 1) * arrow.Int32SizeBytes)
	c.o = arrow.Int32Traits.CastFromBytes(c.off.Bytes())
}

// reserve makes room for n more data bytes, regrowing the buffer (by
// doubling) through its allocator, never through Go's append.
func (c *strColumn) reserve(n int) {
	used := len(c.d)
	if used+n <= cap(c.d) {
		return
	}
	c.data.Reserve(max(2*cap(c.d), used+n))
	c.d = c.data.Buf()[:used:c.data.Cap()]
}

// append sets row i to s.
func (c *strColumn) append(i int, s []byte) {
	c.reserve(len(s))
	c.d = append(c.d, s...)
	c.o[i+1] = int32(len(c.d))
}

// extend sets row i to the next n bytes and returns them for the caller
// to fill.
func (c *strColumn) extend(i, n int) []byte {
	c.reserve(n)
	start := len(c.d)
	c.d = c.d[:start+n]
	c.o[i+1] = int32(len(c.d))
	return c.d[start:]
}

// array returns the column's first n strings as an array of type dt,
// taking over the writer's references to the buffers.
func (c *strColumn) array(dt arrow.DataType, n int) arrow.Array {
	c.off.ResizeNoShrink((n + 1) * arrow.Int32SizeBytes)
	c.data.ResizeNoShrink(len(c.d))
	a := newArray(dt, n, c.off, c.data)
	c.off, c.o, c.data, c.d = nil, nil, nil, nil
	return a
}

// newArray wraps buffers (without a validity bitmap: no nulls) into an
// array of n values, taking over the caller's references to them.
func newArray(dt arrow.DataType, n int, bufs ...*memory.Buffer) arrow.Array {
	all := make([]*memory.Buffer, 0, 3)
	all = append(all, nil) // no validity bitmap
	all = append(all, bufs...)
	d := array.NewData(dt, n, all, nil, 0, 0)
	a := array.MakeFromData(d)
	d.Release()
	for _, b := range bufs {
		b.Release()
	}
	return a
}
