package state

import (
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
// the key group of their key and move with it on rescale.
//
// Index: timers are grouped by timestamp (timerQueue): a min-heap of the
// distinct timestamps, and per timestamp a bucket holding its timers'
// rows in one byte slice with a small hash set over them for
// deduplication and deletion. Window operators register one timer per key
// at each window end, so a window end costs one heap operation however
// many keys it has. A deleted or fired timer's entry stays in its bucket
// as a tombstone until the bucket is done. On the heap backend the index
// is the timer table (heapTimers: it answers IterateKeyGroups from the
// buckets), so a timer's bytes are kept once, and every TimerService over
// the same operator and name shares it; on pebble each TimerService
// loads the stored timers into its own index (restore) and writes through
// to pebble. Memory is O(timers), as with Flink's heap timers.
//
// Firing order: by timestamp, and timers with the same timestamp in key
// order, that is the order of their stored keys: key group, then key,
// then namespace (as encoded), the order IterateKeyGroups yields them in.
// The order depends only on which timers are pending, not on the order of
// registration, so it is the same before and after a restore and on both
// backends. Timers registered while firing take their place in it: a
// callback registering a timer at an earlier timestamp, or at the same
// timestamp with a smaller key, gets it fired next. Flink leaves the
// order of same-timestamp timers unspecified.
type TimerService struct {
	k         *Keyed
	name      string
	event     *timerQueue
	proc      *timerQueue
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
		q    **timerQueue
		kind string
	}{{&s.event, "event"}, {&s.proc, "processing"}} {
		_, t, err := k.b.register(k.op, timerPrefix+name+"/"+q.kind, kindTimer, ttlParams{})
		if err != nil {
			return nil, err
		}
		if ht, ok := t.(*heapTimers); ok {
			*q.q = ht.q // the table is the index
			continue
		}
		if *q.q, err = loadTimerQueue(t); err != nil {
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
func (s *TimerService) RegisterEventTimeTimer(ts int64) error {
	return s.event.add(s.k.kg, s.k.currentRow(), ts)
}

// DeleteEventTimeTimer deletes the current key and namespace's timer at ts,
// if there is one.
func (s *TimerService) DeleteEventTimeTimer(ts int64) error {
	return s.event.remove(s.k.kg, s.k.currentRow(), ts)
}

// RegisterProcessingTimeTimer registers a processing-time timer at ts (ms)
// for the current key and namespace; deduplicated like event-time timers.
func (s *TimerService) RegisterProcessingTimeTimer(ts int64) error {
	return s.proc.add(s.k.kg, s.k.currentRow(), ts)
}

// DeleteProcessingTimeTimer deletes a processing-time timer.
func (s *TimerService) DeleteProcessingTimeTimer(ts int64) error {
	return s.proc.remove(s.k.kg, s.k.currentRow(), ts)
}

// NextEventTime is the earliest event-time timer, if any.
func (s *TimerService) NextEventTime() (int64, bool) { return s.event.next() }

// NextProcessingTime is the earliest processing-time timer, if any: the
// runtime schedules its wake-up there.
func (s *TimerService) NextProcessingTime() (int64, bool) { return s.proc.next() }

// AdvanceWatermark moves the watermark to wm (it never moves back) and
// fires every event-time timer at or before it in the order of the type
// doc, including timers fn registers at or before wm. Each timer is
// removed before fn runs. An error from fn stops the advance and is
// returned; the task then fails and restores from a checkpoint.
func (s *TimerService) AdvanceWatermark(wm int64, fn func(Timer) error) error {
	s.watermark = max(s.watermark, wm)
	return s.fire(s.event, s.watermark, fn)
}

// AdvanceProcessingTime fires every processing-time timer at or before now,
// like AdvanceWatermark.
func (s *TimerService) AdvanceProcessingTime(now int64, fn func(Timer) error) error {
	return s.fire(s.proc, now, fn)
}

func (s *TimerService) fire(q *timerQueue, upTo int64, fn func(Timer) error) error {
	if s.firing {
		return ErrReentrant
	}
	s.firing = true
	defer func() { s.firing = false }()
	// Nothing is held across fn: it may register (growing a bucket or
	// adding one, even an earlier one) and delete timers, so every round
	// starts again from the heap's top.
	for {
		bi, i, ok := q.pop(upTo)
		if !ok {
			return nil
		}
		b := &q.buckets[bi]
		e, row := b.entry(i)
		ts := b.ts
		// Copy the row into the Keyed before the bucket can be released
		// and its bytes reused.
		if err := s.k.setRow(e.kg, row); err != nil {
			return err
		}
		if err := q.kill(bi, i); err != nil {
			return err
		}
		if err := fn(Timer{Timestamp: ts, KeyGroup: e.kg, Key: s.k.key, Namespace: s.k.ns}); err != nil {
			return err
		}
	}
}
