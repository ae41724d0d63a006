package autoscale

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
)

// Defaults of a Window.
const (
	// DefaultWindow is the span of samples a Window averages over
	// (Autoscaler.metrics_window_ms 0).
	DefaultWindow = 10 * time.Second
	// DefaultMaxSamples bounds the samples kept per subtask, whatever their
	// age: at one report a second, two minutes' worth.
	DefaultMaxSamples = 120
)

// Window keeps the recent metrics samples of one job attempt and turns them
// into per-vertex rates and ratios.
//
// Workers report cumulative counters per subtask since the attempt started
// (clusterv1.TaskMetrics); a rate is the difference between the oldest and
// the newest sample of a subtask within the window, divided by the time
// between them. Per subtask the Window keeps the samples of the last span
// (by sampled_at), and never more than maxSamples.
//
// Samples are deduplicated by sampled_at, so the caller may add a worker's
// report every time it reads it. A new attempt restarts every counter, so
// Add with a newer attempt drops all history; samples of an older attempt
// than the newest seen are ignored. A subtask whose counters go backwards
// within an attempt (its task was restarted in place) starts its history
// again.
//
// A Window is safe for concurrent use.
type Window struct {
	span       time.Duration
	maxSamples int

	mu struct {
		sync.Mutex
		attempt  int64
		started  bool
		subtasks map[subtaskKey][]sample // oldest first
	}
}

type subtaskKey struct {
	vertex  string
	subtask int32
}

// sample is one TaskMetrics, without the protobuf.
type sample struct {
	at                     time.Time
	in, out                int64
	busy, bp, elapsed, lag int64
}

// NewWindow returns a window averaging over span (0: DefaultWindow) that
// keeps at most maxSamples samples per subtask (0: DefaultMaxSamples; at
// least 2).
func NewWindow(span time.Duration, maxSamples int) *Window {
	if span <= 0 {
		span = DefaultWindow
	}
	if maxSamples <= 0 {
		maxSamples = DefaultMaxSamples
	}
	w := &Window{span: span, maxSamples: max(maxSamples, 2)}
	w.mu.subtasks = make(map[subtaskKey][]sample)
	return w
}

// Span is the window's length.
func (w *Window) Span() time.Duration { return w.span }

// Attempt is the attempt whose samples the window holds (0 before the first
// Add).
func (w *Window) Attempt() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.attempt
}

// Reset drops every sample; the next samples start afresh. (A new attempt
// resets the window by itself.)
func (w *Window) Reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	clear(w.mu.subtasks)
}

// Add records samples of attempt. Nil entries and entries without
// sampled_at are skipped, as are samples not newer than the subtask's newest.
func (w *Window) Add(attempt int64, ms []*clusterv1.TaskMetrics) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case !w.mu.started || attempt > w.mu.attempt:
		w.mu.started = true
		w.mu.attempt = attempt
		clear(w.mu.subtasks)
	case attempt < w.mu.attempt:
		return // a late report of an attempt that has been replaced
	}
	for _, m := range ms {
		if m == nil || m.GetSampledAt() == nil {
			continue
		}
		k := subtaskKey{vertex: m.GetVertexId(), subtask: m.GetSubtask()}
		s := sample{
			at: m.GetSampledAt().AsTime(), in: m.GetRecordsIn(), out: m.GetRecordsOut(),
			busy: m.GetBusyMs(), bp: m.GetBackpressuredMs(), elapsed: m.GetElapsedMs(), lag: m.GetLag(),
		}
		h := w.mu.subtasks[k]
		if n := len(h); n > 0 {
			last := h[n-1]
			if !s.at.After(last.at) {
				continue // seen already, or out of order
			}
			if s.in < last.in || s.out < last.out || s.busy < last.busy || s.bp < last.bp || s.elapsed < last.elapsed {
				h = h[:0] // counters restarted
			}
		}
		h = append(h, s)
		// Keep the last span (inclusive) and at most maxSamples.
		cut := 0
		for cut < len(h)-1 && (h[cut].at.Before(s.at.Add(-w.span)) || len(h)-cut > w.maxSamples) {
			cut++
		}
		if cut > 0 {
			h = append(h[:0], h[cut:]...)
		}
		w.mu.subtasks[k] = h
	}
}

// VertexMetrics are one vertex's rates and ratios over a Window.
type VertexMetrics struct {
	// Subtasks is the number of the vertex's subtasks with at least two
	// samples; the aggregates below are over them.
	Subtasks int
	// Ready reports enough data to decide on: every subtask seen has at
	// least two samples spanning half the window or more, and none is
	// stale. NotReady says why not.
	Ready    bool
	NotReady string
	// Span is the shortest time between the oldest and newest sample of a
	// subtask.
	Span time.Duration

	// RecordsInPerSecond and RecordsOutPerSecond are sums over subtasks.
	RecordsInPerSecond  float64
	RecordsOutPerSecond float64
	// BusyRatio and BackpressuredRatio are averages over subtasks of
	// Δbusy_ms/Δelapsed_ms and Δbackpressured_ms/Δelapsed_ms, in [0, 1].
	BusyRatio          float64
	BackpressuredRatio float64
	// TrueProcessingRate is the records one subtask takes in per second of
	// busy time (Flink's "true processing rate"): ΣΔrecords_in / ΣΔbusy
	// over subtasks, in records per busy second. A vertex that took no
	// records in but emitted some is a source, and its records out count
	// instead. 0 means unknown: no busy time or no records in the window.
	TrueProcessingRate float64
	// Lag is the sum over subtasks of the latest lag (records waiting in
	// the source's input); -1 when no subtask reports one.
	Lag int64
	// LagRate is the lag's growth in records per second (negative while a
	// backlog shrinks), summed over subtasks that report lag.
	LagRate float64
}

// subtaskStats are one subtask's differences across the window.
type subtaskStats struct {
	dt                     float64 // seconds
	in, out, busy, bp      float64 // Δ; busy and bp in seconds
	busyRatio, bpRatio     float64
	lag                    int64
	lagRate                float64
	lagKnown, lagRateKnown bool
	span                   time.Duration
	ready                  bool
	notReady               string
}

// Metrics returns the metrics of every vertex with samples, by vertex id.
// A subtask whose newest sample is older than now minus twice the span is
// stale (its worker stopped reporting), which makes its vertex not ready;
// a zero now skips that check.
func (w *Window) Metrics(now time.Time) map[string]VertexMetrics {
	w.mu.Lock()
	stats := make(map[string][]subtaskStats)
	keys := make([]subtaskKey, 0, len(w.mu.subtasks))
	for k := range w.mu.subtasks {
		keys = append(keys, k)
	}
	// Sorted so that NotReady names the same subtask every time.
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].vertex != keys[j].vertex {
			return keys[i].vertex < keys[j].vertex
		}
		return keys[i].subtask < keys[j].subtask
	})
	for _, k := range keys {
		stats[k.vertex] = append(stats[k.vertex], w.statsLocked(k, w.mu.subtasks[k], now))
	}
	w.mu.Unlock()

	out := make(map[string]VertexMetrics, len(stats))
	for v, ss := range stats {
		out[v] = aggregate(ss)
	}
	return out
}

// statsLocked computes one subtask's differences. w.mu must be held.
func (w *Window) statsLocked(k subtaskKey, h []sample, now time.Time) subtaskStats {
	var st subtaskStats
	if len(h) == 0 {
		st.notReady = fmt.Sprintf("subtask %d has no samples", k.subtask)
		return st
	}
	first, last := h[0], h[len(h)-1]
	if last.lag >= 0 {
		st.lag, st.lagKnown = last.lag, true
	}
	if len(h) < 2 {
		st.notReady = fmt.Sprintf("subtask %d has 1 sample", k.subtask)
		return st
	}
	st.span = last.at.Sub(first.at)
	// The task's own running time is the denominator when reported: it is
	// monotonic, unlike the worker's wall clock.
	dtMs := float64(last.elapsed - first.elapsed)
	if last.elapsed <= 0 || dtMs <= 0 {
		dtMs = float64(st.span.Milliseconds())
	}
	if dtMs <= 0 {
		st.notReady = fmt.Sprintf("subtask %d: no time between samples", k.subtask)
		return st
	}
	st.dt = dtMs / 1000
	st.in = float64(last.in - first.in)
	st.out = float64(last.out - first.out)
	st.busy = float64(last.busy-first.busy) / 1000
	st.bp = float64(last.bp-first.bp) / 1000
	st.busyRatio = clamp01(st.busy / st.dt)
	st.bpRatio = clamp01(st.bp / st.dt)
	if first.lag >= 0 && last.lag >= 0 {
		st.lagRate, st.lagRateKnown = float64(last.lag-first.lag)/st.dt, true
	}
	switch {
	case st.span < w.span/2:
		st.notReady = fmt.Sprintf("subtask %d has %v of samples, needs %v", k.subtask, st.span, w.span/2)
	case !now.IsZero() && last.at.Before(now.Add(-2*w.span)):
		st.notReady = fmt.Sprintf("subtask %d is stale: last sample at %s", k.subtask, last.at.UTC().Format(time.RFC3339))
	default:
		st.ready = true
	}
	return st
}

func aggregate(ss []subtaskStats) VertexMetrics {
	m := VertexMetrics{Ready: true, Lag: -1}
	var in, out, busy float64
	for _, s := range ss {
		if s.lagKnown {
			m.Lag = max(m.Lag, 0) + s.lag
		}
		if !s.ready && m.Ready {
			m.Ready, m.NotReady = false, s.notReady
		}
		if s.dt == 0 {
			continue
		}
		if m.Subtasks == 0 || s.span < m.Span {
			m.Span = s.span
		}
		m.Subtasks++
		m.RecordsInPerSecond += s.in / s.dt
		m.RecordsOutPerSecond += s.out / s.dt
		m.BusyRatio += s.busyRatio
		m.BackpressuredRatio += s.bpRatio
		if s.lagRateKnown {
			m.LagRate += s.lagRate
		}
		in += s.in
		out += s.out
		busy += s.busy
	}
	if m.Subtasks > 0 {
		m.BusyRatio /= float64(m.Subtasks)
		m.BackpressuredRatio /= float64(m.Subtasks)
	}
	records := in
	if records == 0 {
		records = out // a source: it reads what it emits
	}
	if busy > 0 && records > 0 {
		m.TrueProcessingRate = records / busy
	}
	return m
}

func clamp01(x float64) float64 {
	if math.IsNaN(x) {
		return 0
	}
	return min(max(x, 0), 1)
}
