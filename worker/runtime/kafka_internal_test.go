package runtime

import (
	"testing"
	"time"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/worker/eventtime"
)

func TestWatermarkStrategy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   *sabotv1.WatermarkStrategy
		want eventtime.Strategy
	}{
		{"none", nil, eventtime.Strategy{}},
		{"bounded out of orderness", &sabotv1.WatermarkStrategy{
			Kind:          &sabotv1.WatermarkStrategy_MaxOutOfOrdernessMs{MaxOutOfOrdernessMs: 50},
			IdleTimeoutMs: 1000, IntervalMs: 10,
		}, eventtime.Strategy{Kind: eventtime.KindBoundedOutOfOrderness, MaxOutOfOrderness: 50 * time.Millisecond, IdleTimeout: time.Second, Interval: 10 * time.Millisecond}},
		{"monotonous", &sabotv1.WatermarkStrategy{Kind: &sabotv1.WatermarkStrategy_Monotonous{Monotonous: true}},
			eventtime.Strategy{Kind: eventtime.KindMonotonous}},
		{"monotonous false is none", &sabotv1.WatermarkStrategy{Kind: &sabotv1.WatermarkStrategy_Monotonous{}},
			eventtime.Strategy{}},
		{"punctuated", &sabotv1.WatermarkStrategy{Kind: &sabotv1.WatermarkStrategy_PunctuatedMarkerField{PunctuatedMarkerField: "m"}},
			eventtime.Strategy{Kind: eventtime.KindPunctuated, MarkerColumn: "m"}},
		{"idleness without a kind is none", &sabotv1.WatermarkStrategy{IdleTimeoutMs: 5},
			eventtime.Strategy{IdleTimeout: 5 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := watermarkStrategy(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if (newSplitWatermarks(got, nil) == nil) != (tc.want.Kind == eventtime.KindNone) {
				t.Errorf("newSplitWatermarks: watermarks %v, want %v", newSplitWatermarks(got, nil) != nil, tc.want.Kind != eventtime.KindNone)
			}
		})
	}
	if _, err := watermarkStrategy(&sabotv1.WatermarkStrategy{Kind: &sabotv1.WatermarkStrategy_MaxOutOfOrdernessMs{MaxOutOfOrdernessMs: -1}}); err == nil {
		t.Error("negative out-of-orderness accepted")
	}
}
