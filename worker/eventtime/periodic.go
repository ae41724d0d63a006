package eventtime

import "time"

// DefaultInterval is Flink's default pipeline.auto-watermark-interval: how
// often a source asks its generators for a periodic watermark.
const DefaultInterval = 200 * time.Millisecond

// Periodic paces periodic watermark emission (and idleness checks) for a
// source task in processing time. The task reads its injected clock and
// asks Due between batches; when Due says yes it calls
// Multiplexer.OnPeriodicEmit (or Generator.OnPeriodicEmit).
//
// Emission is at fixed delay, as Flink's scheduleWithFixedDelay: the next
// emission is due one interval after the one that fired, so a task stalled
// for several intervals emits once, not once per missed interval.
//
// A task blocked waiting for input must still wake at Next (a timer on its
// clock): a split with no input only turns idle through periodic checks.
//
// The zero Periodic is disabled.
type Periodic struct {
	interval time.Duration
	next     time.Time
}

// NewPeriodic returns a Periodic first due one interval after now. An
// interval <= 0 disables periodic emission, as Flink's
// auto-watermark-interval of 0: Due always returns false.
func NewPeriodic(interval time.Duration, now time.Time) Periodic {
	if interval <= 0 {
		return Periodic{}
	}
	return Periodic{interval: interval, next: now.Add(interval)}
}

// Due reports whether a periodic emission is due at now; if so the next one
// is scheduled one interval after now.
func (p *Periodic) Due(now time.Time) bool {
	if p.interval <= 0 || now.Before(p.next) {
		return false
	}
	p.next = now.Add(p.interval)
	return true
}

// Next returns when the next emission is due (the zero time if disabled).
func (p *Periodic) Next() time.Time { return p.next }

// Interval returns the interval (0 if disabled).
func (p *Periodic) Interval() time.Duration { return p.interval }
