package eventtime

import (
	"fmt"
	"time"
)

// Kind names a watermark generator, as a manifest spells it.
type Kind uint8

// Generator kinds (Flink's WatermarkStrategy factories).
const (
	// KindNone generates no watermarks (Flink's noWatermarks): the source's
	// event time never advances; only processing time and the final
	// watermark at end of input drive timers.
	KindNone Kind = iota
	// KindBoundedOutOfOrderness: forBoundedOutOfOrderness(MaxOutOfOrderness).
	KindBoundedOutOfOrderness
	// KindMonotonous: forMonotonousTimestamps().
	KindMonotonous
	// KindPunctuated: a boolean MarkerColumn marks rows whose event time is
	// a watermark.
	KindPunctuated
)

func (k Kind) String() string {
	switch k {
	case KindNone:
		return "none"
	case KindBoundedOutOfOrderness:
		return "bounded_out_of_orderness"
	case KindMonotonous:
		return "monotonous"
	case KindPunctuated:
		return "punctuated"
	default:
		return fmt.Sprintf("Kind(%d)", uint8(k))
	}
}

// Strategy is a source's watermark configuration, the home of the
// manifest's watermark settings (Flink's WatermarkStrategy plus
// pipeline.auto-watermark-interval). The zero Strategy generates no
// watermarks.
type Strategy struct {
	Kind Kind
	// MaxOutOfOrderness is how late a record may arrive relative to the
	// highest event time seen, for KindBoundedOutOfOrderness; truncated to
	// milliseconds. Must be >= 0; zero is the same as KindMonotonous.
	MaxOutOfOrderness time.Duration
	// MarkerColumn names the boolean column for KindPunctuated.
	MarkerColumn string
	// IdleTimeout marks a split idle after this long without events
	// (Flink's withIdleness). Zero (the default, as in Flink) disables
	// idleness. Must be >= 0.
	IdleTimeout time.Duration
	// Interval is the periodic emission interval. Zero means
	// DefaultInterval (200 ms); negative disables periodic emission (what
	// Flink spells as an interval of 0).
	Interval time.Duration
}

// Validate rejects settings that contradict each other or the kind. Errors
// wrap ErrInvalidStrategy.
func (s Strategy) Validate() error {
	switch s.Kind {
	case KindNone, KindMonotonous:
	case KindBoundedOutOfOrderness:
		if s.MaxOutOfOrderness < 0 {
			return fmt.Errorf("%w: max out-of-orderness %v is negative", ErrInvalidStrategy, s.MaxOutOfOrderness)
		}
	case KindPunctuated:
		if s.MarkerColumn == "" {
			return fmt.Errorf("%w: punctuated needs a marker column", ErrInvalidStrategy)
		}
	default:
		return fmt.Errorf("%w: unknown kind %v", ErrInvalidStrategy, s.Kind)
	}
	if s.Kind != KindBoundedOutOfOrderness && s.MaxOutOfOrderness != 0 {
		return fmt.Errorf("%w: max out-of-orderness set for %v", ErrInvalidStrategy, s.Kind)
	}
	if s.Kind != KindPunctuated && s.MarkerColumn != "" {
		return fmt.Errorf("%w: marker column set for %v", ErrInvalidStrategy, s.Kind)
	}
	if s.IdleTimeout < 0 {
		return fmt.Errorf("%w: idle timeout %v is negative", ErrInvalidStrategy, s.IdleTimeout)
	}
	return nil
}

// PeriodicInterval returns the interval to pass to NewPeriodic: Interval,
// DefaultInterval if zero, 0 (disabled) if negative.
func (s Strategy) PeriodicInterval() time.Duration {
	switch {
	case s.Interval == 0:
		return DefaultInterval
	case s.Interval < 0:
		return 0
	default:
		return s.Interval
	}
}

// NewGenerator returns a fresh generator for one split. The strategy must
// be valid; an invalid kind yields a generator that emits nothing.
func (s Strategy) NewGenerator() Generator {
	switch s.Kind {
	case KindBoundedOutOfOrderness:
		return NewBoundedOutOfOrderness(s.MaxOutOfOrderness)
	case KindMonotonous:
		return NewMonotonous()
	case KindPunctuated:
		return NewColumnPunctuated(s.MarkerColumn)
	case KindNone:
		return noWatermarks{}
	default:
		return noWatermarks{}
	}
}

// NewMultiplexer returns a multiplexer with the strategy's idle timeout.
func (s Strategy) NewMultiplexer() *Multiplexer { return NewMultiplexer(s.IdleTimeout) }

// noWatermarks is Flink's NoWatermarksGenerator.
type noWatermarks struct{}

func (noWatermarks) OnEvent(int64) (int64, bool)    { return MinWatermark, false }
func (noWatermarks) OnEvents([]int64) (int64, bool) { return MinWatermark, false }
func (noWatermarks) OnPeriodicEmit() (int64, bool)  { return MinWatermark, false }
