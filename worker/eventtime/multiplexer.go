package eventtime

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// Multiplexer is a source subtask's watermark output, merged from one
// generator per split (Kafka partition, file), as Flink's
// WatermarkOutputMultiplexer with per-split watermarks and
// WatermarksWithIdleness:
//
//   - Each split has its own Generator and its own partial watermark, which
//     never decreases.
//   - The combined watermark is the minimum of the partial watermarks of the
//     active splits. It never decreases: it is emitted only when that
//     minimum rises above the last combined watermark (Flink's
//     CombinedWatermarkStatus).
//   - Idleness (when the idle timeout is > 0): a split with no events for
//     longer than the timeout, in processing time, is idle and left out of
//     the minimum. Its next event makes it active again. A returning split
//     whose partial watermark is behind the combined one does not move the
//     combined watermark back: the output holds until the minimum over
//     active splits passes it again, and the returning split's records
//     below the held watermark are late. (Flink holds the same way; it
//     does not realign as StatusWatermarkValve does.)
//   - When every split is idle, the output is idle (Idle reports true):
//     downstream leaves this input out of its own minimum until it is
//     active again. The combined watermark is not advanced while idle.
//   - With no splits at all (a subtask with more parallelism than the
//     source has partitions) the output does not advance; with an idle
//     timeout it turns idle once it has had no splits for longer than the
//     timeout, which is what Flink's Kafka documentation prescribes for
//     that case.
//
// Idleness is measured as Flink's IdlenessTimer does: an event only bumps a
// counter (no clock read on the hot path); each OnPeriodicEmit compares the
// counter with the previous check. A split is idle once the time since the
// last check that saw activity exceeds the timeout, so a split turns idle
// between timeout and timeout + one interval after its last event. (Flink
// starts the timer at the first check that saw none, one interval later.)
//
// Status changes are reported through Idle: after any call that may change
// it (Split.OnEvent(s), OnPeriodicEmit, AddSplit, RemoveSplit) the task
// compares Idle with what it last sent downstream and sends the new status.
// The order the task sends in is: an "active" status before a watermark,
// an "idle" status after one.
//
// A Multiplexer is owned by one source task and used from its goroutine
// only.
type Multiplexer struct {
	idleTimeout time.Duration
	splits      []*Split
	wm          int64 // combined watermark, last emitted
	idle        bool
	// emptySince is the first periodic check that found no splits (zero
	// while there are splits).
	emptySince time.Time
}

// Split is one split's watermark state inside a Multiplexer. The source
// task keeps the handle AddSplit returns and feeds the split's event times
// through it, so the hot path does no lookup.
type Split struct {
	m      *Multiplexer
	id     string
	gen    Generator
	binder Binder // gen as a Binder, or nil
	wm     int64  // partial watermark
	idle   bool
	// events counts event-bearing calls; seen is its value at the last
	// periodic check, active the time of the last check that saw it move.
	events  uint64
	seen    uint64
	active  time.Time
	removed bool
}

// NewMultiplexer returns a multiplexer with no splits. idleTimeout <= 0
// disables idleness (Flink's default: a split without events holds the
// watermark back for ever).
func NewMultiplexer(idleTimeout time.Duration) *Multiplexer {
	return &Multiplexer{idleTimeout: max(idleTimeout, 0), wm: MinWatermark}
}

// AddSplit registers a split with its own generator. The new split is
// active with no watermark (MinWatermark), so it holds the combined
// watermark until it emits one; if the output was idle it becomes active.
// It fails with ErrDuplicateSplit if id is registered.
func (m *Multiplexer) AddSplit(id string, gen Generator) (*Split, error) {
	if m.Split(id) != nil {
		return nil, fmt.Errorf("%w: %q", ErrDuplicateSplit, id)
	}
	s := &Split{m: m, id: id, gen: gen, wm: MinWatermark}
	s.binder, _ = gen.(Binder)
	m.splits = append(m.splits, s)
	m.emptySince = time.Time{}
	m.update()
	return s, nil
}

// RemoveSplit unregisters a split (finished, or reassigned away). Its
// handle must not be used again. Removing the split that held the minimum
// may advance the combined watermark, which is returned with advanced set.
// It fails with ErrUnknownSplit if id is not registered.
func (m *Multiplexer) RemoveSplit(id string) (wm int64, advanced bool, err error) {
	for i, s := range m.splits {
		if s.id == id {
			s.removed = true
			m.splits = slices.Delete(m.splits, i, i+1) // zeroes the stale tail slot
			wm, advanced = m.update()
			return wm, advanced, nil
		}
	}
	return m.wm, false, fmt.Errorf("%w: %q", ErrUnknownSplit, id)
}

// Split returns the registered split with id, or nil.
func (m *Multiplexer) Split(id string) *Split {
	for _, s := range m.splits {
		if s.id == id {
			return s
		}
	}
	return nil
}

// Len returns the number of registered splits.
func (m *Multiplexer) Len() int { return len(m.splits) }

// Watermark returns the combined watermark last emitted (MinWatermark if
// none).
func (m *Multiplexer) Watermark() int64 { return m.wm }

// Idle reports whether the output is idle: it has splits and all are idle,
// or it has had none for longer than the idle timeout.
func (m *Multiplexer) Idle() bool { return m.idle }

// OnPeriodicEmit runs the periodic step at processing time now (when
// Periodic.Due says so): it updates each split's idleness, asks each
// active split's generator for its periodic watermark, and returns the
// combined watermark with advanced set if it rose.
func (m *Multiplexer) OnPeriodicEmit(now time.Time) (wm int64, advanced bool) {
	for _, s := range m.splits {
		switch {
		case s.events != s.seen || s.active.IsZero():
			// Activity since the last check (or the first check of a new
			// split): it happened no later than now.
			s.seen, s.active = s.events, now
		case m.idleTimeout > 0 && !s.idle && now.Sub(s.active) > m.idleTimeout:
			s.idle = true
		}
		if s.idle {
			continue // WatermarksWithIdleness does not ask an idle generator
		}
		if w, ok := s.gen.OnPeriodicEmit(); ok && w > s.wm {
			s.wm = w
		}
	}
	if len(m.splits) == 0 {
		if m.idleTimeout > 0 {
			if m.emptySince.IsZero() {
				m.emptySince = now
			} else if now.Sub(m.emptySince) > m.idleTimeout {
				m.idle = true
			}
		}
		return m.wm, false
	}
	return m.update()
}

// EndOfInput emits the final watermark: every split is done, event time is
// complete. It returns MaxWatermark with advanced set the first time; the
// output is active (the final watermark must reach downstream).
func (m *Multiplexer) EndOfInput() (wm int64, advanced bool) {
	m.idle = false
	if m.wm == MaxWatermark {
		return m.wm, false
	}
	m.wm = MaxWatermark
	return m.wm, true
}

// update recomputes the combined watermark and status (Flink's
// CombinedWatermarkStatus.updateCombinedWatermark).
func (m *Multiplexer) update() (int64, bool) {
	if len(m.splits) == 0 {
		// No partial watermarks: the minimum is undefined, not MaxInt64.
		return m.wm, false
	}
	lo, allIdle := int64(math.MaxInt64), true
	for _, s := range m.splits {
		if !s.idle {
			lo, allIdle = min(lo, s.wm), false
		}
	}
	m.idle = allIdle
	if allIdle || lo <= m.wm {
		return m.wm, false
	}
	m.wm = lo
	return lo, true
}

// ID returns the split's ID.
func (s *Split) ID() string { return s.id }

// Watermark returns the split's partial watermark (MinWatermark if none).
func (s *Split) Watermark() int64 { return s.wm }

// Idle reports whether the split is idle.
func (s *Split) Idle() bool { return s.idle }

// OnEvent observes one record of the split. It returns the combined
// watermark with advanced set if it rose: a punctuated generator emitted,
// or the split returning from idleness changed the minimum.
func (s *Split) OnEvent(ts int64) (wm int64, advanced bool) {
	reactivated := s.activity()
	w, emit := s.gen.OnEvent(ts)
	return s.after(w, emit, reactivated)
}

// OnEvents observes a batch of the split, ts being its event-time column;
// see OnEvent. An empty batch is not activity. It does not allocate.
func (s *Split) OnEvents(ts []int64) (wm int64, advanced bool) {
	if len(ts) == 0 {
		return s.m.wm, false
	}
	reactivated := s.activity()
	w, emit := s.gen.OnEvents(ts)
	return s.after(w, emit, reactivated)
}

// OnBatch binds rec to the split's generator if it reads more than event
// times (a Binder, such as NewColumnPunctuated), then calls OnEvents with
// ts, rec's event-time column. A Bind error is returned with the combined
// watermark unchanged.
func (s *Split) OnBatch(rec arrow.RecordBatch, ts []int64) (wm int64, advanced bool, err error) {
	if s.binder != nil {
		if err := s.binder.Bind(rec); err != nil {
			return s.m.wm, false, fmt.Errorf("split %q: %w", s.id, err)
		}
	}
	wm, advanced = s.OnEvents(ts)
	return wm, advanced, nil
}

// activity records an event and reports whether it ended the split's
// idleness.
func (s *Split) activity() bool {
	if s.removed {
		panicf("split %q used after RemoveSplit", s.id)
	}
	s.events++
	if !s.idle {
		return false
	}
	s.idle = false
	return true
}

func (s *Split) after(w int64, emit, reactivated bool) (int64, bool) {
	if emit && w > s.wm {
		s.wm = w
		return s.m.update()
	}
	if reactivated {
		return s.m.update()
	}
	return s.m.wm, false
}
