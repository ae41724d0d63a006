package autoscale_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	"github.com/sabotdev/sabot/scheduler/autoscale"
)

// t0 is the attempt's start in these tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// counters are one subtask's cumulative counters at a sample.
type counters struct {
	in, out, busyMs, bpMs, lag int64
}

// tm is a sample of vertex/subtask at t0+sec, with elapsed_ms = sec·1000
// plus one second (the task started a second before t0).
func tm(vertex string, subtask int32, sec float64, c counters) *clusterv1.TaskMetrics {
	at := t0.Add(time.Duration(sec * float64(time.Second)))
	return &clusterv1.TaskMetrics{
		VertexId: vertex, Subtask: subtask, SampledAt: timestamppb.New(at),
		RecordsIn: c.in, RecordsOut: c.out, BusyMs: c.busyMs, BackpressuredMs: c.bpMs, Lag: c.lag,
		ElapsedMs: int64(sec*1000) + 1000,
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestWindowRates(t *testing.T) {
	t.Parallel()
	w := autoscale.NewWindow(10*time.Second, 0)
	// Two subtasks of a transform, sampled at 0, 5 and 10 s.
	for _, sec := range []float64{0, 5, 10} {
		f := int64(sec)
		w.Add(1, []*clusterv1.TaskMetrics{
			tm("map", 0, sec, counters{in: 100 * f, out: 50 * f, busyMs: 500 * f, bpMs: 100 * f, lag: -1}),
			tm("map", 1, sec, counters{in: 300 * f, out: 150 * f, busyMs: 300 * f, lag: -1}),
		})
	}
	m := w.Metrics(t0.Add(10 * time.Second))["map"]
	if !m.Ready || m.Subtasks != 2 || m.Span != 10*time.Second {
		t.Fatalf("ready %v (%s), subtasks %d, span %v; want ready, 2, 10s", m.Ready, m.NotReady, m.Subtasks, m.Span)
	}
	// in: 100+300 /s; out: 50+150 /s; busy: avg(0.5, 0.3); backpressured:
	// avg(0.1, 0); true processing rate: (1000+3000) records / (5+3) busy s.
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"records in/s", m.RecordsInPerSecond, 400},
		{"records out/s", m.RecordsOutPerSecond, 200},
		{"busy ratio", m.BusyRatio, 0.4},
		{"backpressured ratio", m.BackpressuredRatio, 0.05},
		{"true processing rate", m.TrueProcessingRate, 500},
		{"lag rate", m.LagRate, 0},
	} {
		if !near(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if m.Lag != -1 {
		t.Errorf("lag %d, want -1 (unknown)", m.Lag)
	}
}

func TestWindowSource(t *testing.T) {
	t.Parallel()
	w := autoscale.NewWindow(10*time.Second, 0)
	for _, sec := range []float64{0, 10} {
		f := int64(sec)
		w.Add(1, []*clusterv1.TaskMetrics{
			// A source takes no records in; its lag grows 20/s.
			tm("src", 0, sec, counters{out: 1000 * f, busyMs: 250 * f, lag: 100 + 20*f}),
			tm("src", 1, sec, counters{out: 1000 * f, busyMs: 250 * f, lag: 50}),
		})
	}
	m := w.Metrics(time.Time{})["src"]
	if !m.Ready {
		t.Fatalf("not ready: %s", m.NotReady)
	}
	// 20000 records out over 2×2.5 busy seconds.
	if !near(m.TrueProcessingRate, 4000) || !near(m.RecordsOutPerSecond, 2000) {
		t.Errorf("true processing rate %v, out/s %v; want 4000, 2000", m.TrueProcessingRate, m.RecordsOutPerSecond)
	}
	if m.Lag != 350 || !near(m.LagRate, 20) {
		t.Errorf("lag %d, lag rate %v; want 350, 20", m.Lag, m.LagRate)
	}
}

func TestWindowReadiness(t *testing.T) {
	t.Parallel()
	at := func(secs ...float64) []*clusterv1.TaskMetrics {
		var ms []*clusterv1.TaskMetrics
		for _, s := range secs {
			ms = append(ms, tm("v", 0, s, counters{in: int64(s) * 10, busyMs: int64(s) * 100, lag: -1}))
		}
		return ms
	}
	for _, c := range []struct {
		name    string
		samples []*clusterv1.TaskMetrics
		max     int
		now     time.Time
		ready   bool
		why     string
	}{
		{name: "one sample", samples: at(0), why: "1 sample"},
		{name: "span below half the window", samples: at(0, 4), why: "needs 5s"},
		{name: "span of half the window", samples: at(0, 5), ready: true},
		{name: "count bound shortens the span", samples: at(0, 1, 2, 3, 4, 5, 6, 7), max: 3, why: "has 2s of samples"},
		{name: "stale", samples: at(0, 10), now: t0.Add(31 * time.Second), why: "stale"},
		{name: "fresh", samples: at(0, 10), now: t0.Add(29 * time.Second), ready: true},
		{name: "duplicates ignored", samples: append(at(0, 10), at(10, 10, 5)...), ready: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := autoscale.NewWindow(10*time.Second, c.max)
			for _, s := range c.samples {
				w.Add(7, []*clusterv1.TaskMetrics{s})
			}
			m := w.Metrics(c.now)["v"]
			if m.Ready != c.ready || !strings.Contains(m.NotReady, c.why) {
				t.Fatalf("ready %v (%q), want %v (%q)", m.Ready, m.NotReady, c.ready, c.why)
			}
			if c.ready && !near(m.RecordsInPerSecond, 10) {
				t.Errorf("records in/s %v, want 10", m.RecordsInPerSecond)
			}
		})
	}
}

// TestWindowKeepsOnlyTheWindow: the rate is that of the last 10 s, not
// of the whole history.
func TestWindowKeepsOnlyTheWindow(t *testing.T) {
	t.Parallel()
	w := autoscale.NewWindow(10*time.Second, 0)
	in := int64(0)
	for sec := 0; sec <= 30; sec++ {
		w.Add(1, []*clusterv1.TaskMetrics{tm("v", 0, float64(sec), counters{in: in, busyMs: int64(sec) * 500, lag: -1})})
		if sec < 20 {
			in += 100
		} else {
			in += 200
		}
	}
	m := w.Metrics(t0.Add(30 * time.Second))["v"]
	if !m.Ready || m.Span != 10*time.Second || !near(m.RecordsInPerSecond, 200) {
		t.Fatalf("ready %v, span %v, records in/s %v; want ready, 10s, 200", m.Ready, m.Span, m.RecordsInPerSecond)
	}
}

func TestWindowResets(t *testing.T) {
	t.Parallel()
	full := func(w *autoscale.Window, attempt int64, from float64, scale int64) {
		for _, sec := range []float64{from, from + 10} {
			w.Add(attempt, []*clusterv1.TaskMetrics{tm("v", 0, sec, counters{in: int64(sec) * scale, busyMs: int64(sec) * 100, lag: -1})})
		}
	}

	t.Run("new attempt drops the history", func(t *testing.T) {
		t.Parallel()
		w := autoscale.NewWindow(10*time.Second, 0)
		full(w, 1, 0, 10)
		w.Add(2, []*clusterv1.TaskMetrics{tm("v", 0, 20, counters{lag: -1})})
		if m := w.Metrics(time.Time{})["v"]; m.Ready || w.Attempt() != 2 {
			t.Fatalf("ready %v after a new attempt (attempt %d)", m.Ready, w.Attempt())
		}
		// A late report of attempt 1 does not come back.
		full(w, 1, 0, 10)
		if m := w.Metrics(time.Time{})["v"]; m.Ready || w.Attempt() != 2 {
			t.Fatalf("an old attempt's samples were taken (attempt %d)", w.Attempt())
		}
	})

	t.Run("counters going backwards restart the subtask", func(t *testing.T) {
		t.Parallel()
		w := autoscale.NewWindow(10*time.Second, 0)
		full(w, 1, 0, 10) // in reaches 100
		w.Add(1, []*clusterv1.TaskMetrics{tm("v", 0, 15, counters{in: 5, busyMs: 1, lag: -1})})
		if m := w.Metrics(time.Time{})["v"]; m.Ready {
			t.Fatal("ready after the counters restarted")
		}
	})

	t.Run("reset", func(t *testing.T) {
		t.Parallel()
		w := autoscale.NewWindow(10*time.Second, 0)
		full(w, 1, 0, 10)
		w.Reset()
		if ms := w.Metrics(time.Time{}); len(ms) != 0 {
			t.Fatalf("metrics after Reset: %v", ms)
		}
	})
}

func TestWindowSkipsBadSamples(t *testing.T) {
	t.Parallel()
	w := autoscale.NewWindow(0, 0)
	if w.Span() != autoscale.DefaultWindow {
		t.Errorf("span %v, want %v", w.Span(), autoscale.DefaultWindow)
	}
	w.Add(1, []*clusterv1.TaskMetrics{nil, {VertexId: "v"}})
	if ms := w.Metrics(time.Time{}); len(ms) != 0 {
		t.Fatalf("metrics from nil and undated samples: %v", ms)
	}
}
