package state

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// Timer is a firing timer. Key and Namespace are the operator's current
// key and namespace, set by the timer service before the callback; they
// are valid during the callback only.
type Timer struct {
	Timestamp int64
	KeyGroup  uint16
	Key       []byte
	Namespace []byte
}

// TimerService holds the event-time and processing-time timers of one
// operator under one name (Flink's InternalTimerService). A timer belongs
// to a (key, namespace): registering uses the Keyed's current key and
// namespace, and firing sets them again.
//
// Storage: each timer is an entry of the table "_timers/<name>/event" (or
// "/processing") of the operator: row = (key, namespace), column = the
// timestamp (8 bytes, order-preserving), empty value, so timers live in
// the key group of their key and move with it on rescale. In memory, a
// binary heap ordered by (timestamp, key group, key, namespace) and a map
// for deduplication and deletion index every timer; creating the service
// loads the stored timers (restore). Memory is therefore O(timers), as
// with Flink's heap timers.
type TimerService struct {
	k         *Keyed
	name      string
	event     timerQueue
	proc      timerQueue
	watermark int64
	firing    bool
}

// TimerService returns the timer service name of k's operator, creating it
// (and loading its stored timers) on first use.
func (k *Keyed) TimerService(name string) (*TimerService, error) {
	if ts, ok := k.timers[name]; ok {
		return ts, nil
	}
	if name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("%w: timer service name %q must be non-empty without '/'", ErrInvalidDescriptor, name)
	}
	s := &TimerService{k: k, name: name, watermark: math.MinInt64}
	for _, q := range []struct {
		q    *timerQueue
		kind string
	}{{&s.event, "event"}, {&s.proc, "processing"}} {
		_, t, err := k.b.register(k.op, timerPrefix+name+"/"+q.kind, kindTimer, ttlParams{})
		if err != nil {
			return nil, err
		}
		q.q.t = t
		q.q.byID = make(map[string]*timer)
		if err := q.q.load(); err != nil {
			return nil, err
		}
	}
	k.timers[name] = s
	return s, nil
}

// CurrentWatermark is the last watermark passed to AdvanceWatermark
// (math.MinInt64 before the first).
func (s *TimerService) CurrentWatermark() int64 { return s.watermark }

// RegisterEventTimeTimer registers a timer at ts for the current key and
// namespace. Registering an existing timer again is a no-op. A timer at or
// before the current watermark fires at the next AdvanceWatermark (or in
// the running one, when registered from a callback).
func (s *TimerService) RegisterEventTimeTimer(ts int64) error { return s.event.add(s.k, ts) }

// DeleteEventTimeTimer deletes the current key and namespace's timer at ts,
// if there is one.
func (s *TimerService) DeleteEventTimeTimer(ts int64) error { return s.event.remove(s.k, ts) }

// RegisterProcessingTimeTimer registers a processing-time timer at ts (ms)
// for the current key and namespace; deduplicated like event-time timers.
func (s *TimerService) RegisterProcessingTimeTimer(ts int64) error { return s.proc.add(s.k, ts) }

// DeleteProcessingTimeTimer deletes a processing-time timer.
func (s *TimerService) DeleteProcessingTimeTimer(ts int64) error { return s.proc.remove(s.k, ts) }

// NextEventTime is the earliest event-time timer, if any.
func (s *TimerService) NextEventTime() (int64, bool) { return s.event.next() }

// NextProcessingTime is the earliest processing-time timer, if any: the
// runtime schedules its wake-up there.
func (s *TimerService) NextProcessingTime() (int64, bool) { return s.proc.next() }

// AdvanceWatermark moves the watermark to wm (it never moves back) and
// fires every event-time timer at or before it in timestamp order,
// including timers fn registers at or before wm. Each timer is removed
// before fn runs. An error from fn stops the advance and is returned; the
// task then fails and restores from a checkpoint.
func (s *TimerService) AdvanceWatermark(wm int64, fn func(Timer) error) error {
	s.watermark = max(s.watermark, wm)
	return s.fire(&s.event, s.watermark, fn)
}

// AdvanceProcessingTime fires every processing-time timer at or before now,
// like AdvanceWatermark.
func (s *TimerService) AdvanceProcessingTime(now int64, fn func(Timer) error) error {
	return s.fire(&s.proc, now, fn)
}

func (s *TimerService) fire(q *timerQueue, upTo int64, fn func(Timer) error) error {
	if s.firing {
		return ErrReentrant
	}
	s.firing = true
	defer func() { s.firing = false }()
	for len(q.h) > 0 && q.h[0].ts <= upTo {
		tm, _ := heap.Pop(q).(*timer)
		delete(q.byID, tm.id)
		row := view(tm.id[timerIDHead:])
		if err := q.t.del(tm.kg, row, view(tm.id[2:timerIDHead])); err != nil {
			return err
		}
		if err := s.k.setRow(tm.kg, row); err != nil {
			return err
		}
		if err := fn(Timer{Timestamp: tm.ts, KeyGroup: tm.kg, Key: s.k.key, Namespace: s.k.ns}); err != nil {
			return err
		}
	}
	return nil
}

// timerIDHead is the length of a timer id before its row: key group (2) and
// timestamp (8).
const timerIDHead = 10

type timer struct {
	ts  int64
	kg  uint16
	id  string // key group | timestamp (order-preserving) | row
	idx int    // position in the heap
}

// timerQueue is one time domain's timers: a min-heap by (ts, id) and an
// index by id. It implements heap.Interface.
type timerQueue struct {
	t     table
	h     []*timer
	byID  map[string]*timer
	idBuf []byte
}

func (q *timerQueue) Len() int { return len(q.h) }

func (q *timerQueue) Less(i, j int) bool {
	a, b := q.h[i], q.h[j]
	if a.ts != b.ts {
		return a.ts < b.ts
	}
	return a.id < b.id
}

func (q *timerQueue) Swap(i, j int) {
	q.h[i], q.h[j] = q.h[j], q.h[i]
	q.h[i].idx, q.h[j].idx = i, j
}

// Push implements heap.Interface.
func (q *timerQueue) Push(x any) {
	tm, _ := x.(*timer)
	tm.idx = len(q.h)
	q.h = append(q.h, tm)
}

// Pop implements heap.Interface.
func (q *timerQueue) Pop() any {
	n := len(q.h) - 1
	tm := q.h[n]
	q.h[n] = nil
	q.h = q.h[:n]
	return tm
}

func (q *timerQueue) next() (int64, bool) {
	if len(q.h) == 0 {
		return 0, false
	}
	return q.h[0].ts, true
}

// id builds the current key's timer id for ts into q.idBuf.
func (q *timerQueue) id(kg uint16, ts int64, row []byte) []byte {
	b := binary.BigEndian.AppendUint16(q.idBuf[:0], kg)
	b = appendTimestamp(b, ts)
	b = append(b, row...)
	q.idBuf = b
	return b
}

func (q *timerQueue) add(k *Keyed, ts int64) error {
	id := q.id(k.kg, ts, k.row)
	if _, ok := q.byID[string(id)]; ok {
		return nil
	}
	if err := q.t.set(k.kg, k.row, id[2:timerIDHead], nil); err != nil {
		return err
	}
	tm := &timer{ts: ts, kg: k.kg, id: string(id)}
	q.byID[tm.id] = tm
	heap.Push(q, tm)
	return nil
}

func (q *timerQueue) remove(k *Keyed, ts int64) error {
	id := q.id(k.kg, ts, k.row)
	tm, ok := q.byID[string(id)]
	if !ok {
		return nil
	}
	delete(q.byID, tm.id)
	heap.Remove(q, tm.idx)
	return q.t.del(k.kg, k.row, id[2:timerIDHead])
}

// load indexes the timers stored in the table (restore).
func (q *timerQueue) load() error {
	err := q.t.scanAll(func(kg uint16, row, col, _ []byte) error {
		if len(col) != 8 {
			return fmt.Errorf("%w: timer column of %d bytes", ErrCorrupt, len(col))
		}
		ts := readTimestamp(col)
		id := q.id(kg, ts, row)
		if _, ok := q.byID[string(id)]; ok {
			return nil
		}
		tm := &timer{ts: ts, kg: kg, id: string(id), idx: len(q.h)}
		q.byID[tm.id] = tm
		q.h = append(q.h, tm)
		return nil
	})
	heap.Init(q)
	return err
}
