package window

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"github.com/sabotdev/sabot/worker/state"
)

// Window is a time window [Start, End) in milliseconds (Flink's
// TimeWindow). The global window is GlobalWindow(): [math.MinInt64,
// math.MaxInt64).
type Window struct {
	Start, End int64
}

// GlobalWindow is the one window of the Global assigner. Its MaxTimestamp
// is math.MaxInt64, so event-time triggers only fire it at the final
// watermark and it is never cleaned up.
func GlobalWindow() Window { return Window{Start: math.MinInt64, End: math.MaxInt64} }

// MaxTimestamp is the largest timestamp in the window, End-1; a window
// ending at math.MaxInt64 (the global window) has math.MaxInt64, "the end
// of time", as Flink's GlobalWindow.
func (w Window) MaxTimestamp() int64 {
	if w.End == math.MaxInt64 {
		return math.MaxInt64
	}
	return w.End - 1
}

// Intersects reports whether w and o overlap or touch (Flink's
// TimeWindow.intersects: w.Start <= o.End && w.End >= o.Start). Touching
// counts, so session windows [0,10) and [10,20) merge.
func (w Window) Intersects(o Window) bool { return w.Start <= o.End && w.End >= o.Start }

// Cover is the smallest window containing w and o.
func (w Window) Cover(o Window) Window {
	return Window{Start: min(w.Start, o.Start), End: max(w.End, o.End)}
}

// String renders "[start,end)"; the global window is "global".
func (w Window) String() string {
	if w == GlobalWindow() {
		return "global"
	}
	b := make([]byte, 0, 24)
	b = append(b, '[')
	b = strconv.AppendInt(b, w.Start, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, w.End, 10)
	b = append(b, ')')
	return string(b)
}

// NamespaceLen is the length of an encoded window.
const NamespaceLen = 16

// AppendNamespace appends the state namespace of w to dst: Start then End,
// each 8 bytes big-endian with the sign bit flipped, so byte order is
// (Start, End) order. It allocates only when dst lacks room.
func AppendNamespace(dst []byte, w Window) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(w.Start)^(1<<63))
	return binary.BigEndian.AppendUint64(dst, uint64(w.End)^(1<<63))
}

// DecodeNamespace decodes a namespace written by AppendNamespace. It fails
// with state.ErrCorrupt unless src is NamespaceLen bytes.
func DecodeNamespace(src []byte) (Window, error) {
	if len(src) != NamespaceLen {
		return Window{}, fmt.Errorf("%w: window namespace of %d bytes", state.ErrCorrupt, len(src))
	}
	return Window{
		Start: int64(binary.BigEndian.Uint64(src) ^ (1 << 63)),
		End:   int64(binary.BigEndian.Uint64(src[8:]) ^ (1 << 63)),
	}, nil
}

// TimeDomain is the time an assigner's windows are in.
type TimeDomain uint8

const (
	// EventTime windows follow the element timestamps and fire on
	// watermarks.
	EventTime TimeDomain = iota + 1
	// ProcessingTime windows follow the processing time the caller passes
	// to Operator.AdvanceProcessingTime.
	ProcessingTime
)

func (d TimeDomain) String() string {
	switch d {
	case EventTime:
		return "event time"
	case ProcessingTime:
		return "processing time"
	default:
		return "TimeDomain(" + strconv.Itoa(int(d)) + ")"
	}
}

func (d TimeDomain) valid() bool { return d == EventTime || d == ProcessingTime }

// windowStart is Flink's TimeWindow.getWindowStartWithOffset: the start of
// the window of size containing ts, windows aligned to offset. The
// remainder is normalised, so negative timestamps land in the window
// below them (ts -1, size 10 → start -10).
func windowStart(ts, offset, size int64) int64 {
	r := (ts - offset) % size
	if r < 0 {
		return ts - (r + size)
	}
	return ts - r
}
