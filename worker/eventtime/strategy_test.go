package eventtime_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sabotdev/sabot/worker/eventtime"
)

func TestStrategyValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		s    eventtime.Strategy
		ok   bool
	}{
		{"zero is no watermarks", eventtime.Strategy{}, true},
		{"bounded", eventtime.Strategy{Kind: eventtime.KindBoundedOutOfOrderness, MaxOutOfOrderness: 5 * time.Second, IdleTimeout: time.Minute}, true},
		{"bounded zero delay", eventtime.Strategy{Kind: eventtime.KindBoundedOutOfOrderness}, true},
		{"bounded negative delay", eventtime.Strategy{Kind: eventtime.KindBoundedOutOfOrderness, MaxOutOfOrderness: -time.Second}, false},
		{"monotonous", eventtime.Strategy{Kind: eventtime.KindMonotonous, Interval: -1}, true},
		{"monotonous with delay", eventtime.Strategy{Kind: eventtime.KindMonotonous, MaxOutOfOrderness: time.Second}, false},
		{"punctuated", eventtime.Strategy{Kind: eventtime.KindPunctuated, MarkerColumn: "is_wm"}, true},
		{"punctuated without column", eventtime.Strategy{Kind: eventtime.KindPunctuated}, false},
		{"column without punctuated", eventtime.Strategy{Kind: eventtime.KindMonotonous, MarkerColumn: "is_wm"}, false},
		{"negative idle timeout", eventtime.Strategy{Kind: eventtime.KindMonotonous, IdleTimeout: -time.Second}, false},
		{"unknown kind", eventtime.Strategy{Kind: 99}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.s.Validate()
			if tc.ok && err != nil {
				t.Errorf("Validate = %v, want nil", err)
			}
			if !tc.ok && !errors.Is(err, eventtime.ErrInvalidStrategy) {
				t.Errorf("Validate = %v, want ErrInvalidStrategy", err)
			}
		})
	}
}

func TestStrategyInterval(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want time.Duration
	}{
		{0, eventtime.DefaultInterval},
		{-1, 0},
		{time.Second, time.Second},
	} {
		if got := (eventtime.Strategy{Interval: tc.in}).PeriodicInterval(); got != tc.want {
			t.Errorf("PeriodicInterval(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if eventtime.DefaultInterval != 200*time.Millisecond {
		t.Errorf("DefaultInterval = %v, want Flink's 200ms", eventtime.DefaultInterval)
	}
}

// TestStrategyGenerators checks each kind builds the generator Flink's
// factory of the same name does, by the watermark after events 100, 90.
func TestStrategyGenerators(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s      eventtime.Strategy
		wantWM int64
		wantOK bool
	}{
		{eventtime.Strategy{}, eventtime.MinWatermark, false},
		{eventtime.Strategy{Kind: eventtime.KindMonotonous}, 99, true},
		{eventtime.Strategy{Kind: eventtime.KindBoundedOutOfOrderness, MaxOutOfOrderness: 10 * time.Millisecond}, 89, true},
		{eventtime.Strategy{Kind: eventtime.KindPunctuated, MarkerColumn: "m"}, eventtime.MinWatermark, false},
	} {
		t.Run(tc.s.Kind.String(), func(t *testing.T) {
			t.Parallel()
			g := tc.s.NewGenerator()
			g.OnEvents([]int64{100, 90})
			if wm, ok := g.OnPeriodicEmit(); ok != tc.wantOK || (ok && wm != tc.wantWM) {
				t.Errorf("OnPeriodicEmit = %d, %t; want %d, %t", wm, ok, tc.wantWM, tc.wantOK)
			}
		})
	}
}
