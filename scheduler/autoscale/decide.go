package autoscale

import (
	"fmt"
	"math"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// Actions of a Decision (ScalingDecision.action).
const (
	ActionScaleUp   = "scale-up"
	ActionScaleDown = "scale-down"
	ActionHold      = "hold"
)

// Defaults of the Autoscaler settings, applied to fields left 0 (see
// WithDefaults). The metrics window's default is DefaultWindow.
const (
	DefaultTargetUtilization  = 0.7
	DefaultCooldown           = 60 * time.Second
	DefaultScaleDownThreshold = 0.2
	DefaultCatchUp            = 30 * time.Second
)

// CauseAutoscaler is Rescale.cause for a rescale the autoscaler asks for.
const CauseAutoscaler = "autoscaler"

// Reasons of a hold, as prefixes of Decision.Reason.
const (
	ReasonCoolingDown       = "cooling down"
	ReasonCollectingMetrics = "collecting metrics"
	ReasonSteady            = "parallelism matches the load"
)

// ceilSlack absorbs floating-point noise before rounding up, so that a
// need of exactly 3 subtasks computed as 3.0000000000004 stays 3.
const ceilSlack = 1e-9

// WithDefaults returns a copy of a with every zero field set to its default
// (a nil a is treated as empty), and the parallelism bounds made
// consistent: max_parallelism is at most the job's maxParallelism (0:
// jobgraph.DefaultMaxParallelism) and min_parallelism at most
// max_parallelism.
func WithDefaults(a *sabotv1.Autoscaler, maxParallelism int) *sabotv1.Autoscaler {
	if maxParallelism <= 0 {
		maxParallelism = jobgraph.DefaultMaxParallelism
	}
	s := &sabotv1.Autoscaler{}
	if a != nil {
		s = proto.CloneOf(a)
	}
	if s.TargetUtilization <= 0 {
		s.TargetUtilization = DefaultTargetUtilization
	}
	if s.MaxParallelism <= 0 || int(s.MaxParallelism) > maxParallelism {
		s.MaxParallelism = int32(maxParallelism)
	}
	if s.MinParallelism <= 0 {
		s.MinParallelism = 1
	}
	s.MinParallelism = min(s.MinParallelism, s.MaxParallelism)
	if s.CooldownMs <= 0 {
		s.CooldownMs = DefaultCooldown.Milliseconds()
	}
	if s.MetricsWindowMs <= 0 {
		s.MetricsWindowMs = DefaultWindow.Milliseconds()
	}
	if s.ScaleDownThreshold <= 0 {
		s.ScaleDownThreshold = DefaultScaleDownThreshold
	}
	if s.CatchUpMs <= 0 {
		s.CatchUpMs = DefaultCatchUp.Milliseconds()
	}
	return s
}

// Inputs are everything Decide looks at.
type Inputs struct {
	// Graph is the running attempt's graph as jobgraph.Resolve returns it
	// (vertices in topological order, Index set): its vertices'
	// Parallelism is the current parallelism.
	Graph *jobgraph.Graph
	// MaxParallelism is the job's max_parallelism; 0 means
	// Graph.MaxParallelism.
	MaxParallelism int
	// Settings are the job's autoscaler settings; zero fields take their
	// defaults (WithDefaults).
	Settings *sabotv1.Autoscaler
	// Metrics by vertex id, from Window.Metrics.
	Metrics map[string]VertexMetrics
	// LastRescale is when the last rescale happened (RescaleOutcome's
	// running_at); zero if never.
	LastRescale time.Time
	// Now is the decision's time.
	Now time.Time
}

// Decision is the outcome of one evaluation.
type Decision struct {
	// Action is ActionScaleUp (some vertex grows), ActionScaleDown (some
	// vertex shrinks, none grows) or ActionHold.
	Action string
	// Reason says why, for people: the vertices that change and their
	// target rates, or why nothing changes.
	Reason string
	// Parallelism is the new parallelism of every vertex (the current one
	// on a hold).
	Parallelism map[string]int
	// Record is the decision with every input, to log and to show through
	// the API. WorkersRequested is left 0 for the caller to fill.
	Record *sabotv1.ScalingDecision
}

// Changed reports whether the decision rescales the job.
func (d Decision) Changed() bool { return d.Action == ActionScaleUp || d.Action == ActionScaleDown }

// Rescale returns the request that applies d: every vertex's new
// parallelism, cause CauseAutoscaler, requested at the decision's time. It
// returns nil for a hold.
func (d Decision) Rescale() *sabotv1.Rescale {
	if !d.Changed() {
		return nil
	}
	r := &sabotv1.Rescale{
		VertexParallelism: make(map[string]int32, len(d.Parallelism)),
		Cause:             CauseAutoscaler,
		RequestedAt:       d.Record.GetTime(),
	}
	for id, p := range d.Parallelism {
		r.VertexParallelism[id] = int32(p)
	}
	return r
}

// vertexPlan is Decide's working state for one vertex.
type vertexPlan struct {
	cur, next int
	// target is the input rate the vertex must sustain; out is what it
	// then emits to each output edge.
	target, out float64
	// row is the vertex's line in the decision's record.
	row *sabotv1.VertexScaling
}

// Decide computes the parallelism each vertex needs (see the package doc
// for the formulas) and whether to rescale. It is pure and deterministic:
// the same inputs give the same decision.
func Decide(in Inputs) Decision {
	g := in.Graph
	if g == nil || len(g.Vertices) == 0 {
		return hold(in.Now, "no job graph", nil, nil)
	}
	maxP := in.MaxParallelism
	if maxP <= 0 {
		maxP = g.MaxParallelism
	}
	s := WithDefaults(in.Settings, maxP)
	lo, hi := int(s.GetMinParallelism()), int(s.GetMaxParallelism())
	util := s.GetTargetUtilization()
	catchUp := float64(s.GetCatchUpMs()) / 1000
	threshold := s.GetScaleDownThreshold()

	// Targets flow downstream in topological order (Graph.Vertices is).
	plans := make([]vertexPlan, len(g.Vertices))
	for i, v := range g.Vertices {
		m, ok := in.Metrics[v.ID]
		if !ok {
			m = VertexMetrics{Lag: -1}
		}
		p := &plans[i]
		p.cur = v.Parallelism
		processed := m.RecordsInPerSecond
		if v.Kind == jobgraph.KindSource {
			// What arrives at the source: what it read, plus what piled up
			// meanwhile; and the backlog, to be worked off in catch_up.
			processed = m.RecordsOutPerSecond
			p.target = m.RecordsOutPerSecond
			if m.Lag >= 0 {
				p.target = max(p.target+m.LagRate, 0) + float64(m.Lag)/catchUp
			}
			p.out = p.target
		} else {
			for _, e := range v.Inputs {
				p.target += plans[e.From.Index].out
			}
			if m.RecordsInPerSecond > 0 {
				p.out = p.target * m.RecordsOutPerSecond / m.RecordsInPerSecond
			}
		}

		p.next = needed(p.cur, p.target, m.TrueProcessingRate, processed, util, threshold, lo, hi)
		lag := int64(0)
		if v.Kind == jobgraph.KindSource {
			lag = m.Lag
		}
		p.row = &sabotv1.VertexScaling{
			VertexId:            v.ID,
			CurrentParallelism:  int32(p.cur),
			RecordsInPerSecond:  m.RecordsInPerSecond,
			RecordsOutPerSecond: m.RecordsOutPerSecond,
			BusyRatio:           m.BusyRatio,
			BackpressuredRatio:  m.BackpressuredRatio,
			TrueProcessingRate:  m.TrueProcessingRate,
			TargetRate:          p.target,
			Lag:                 lag,
		}
	}
	unifyChains(g, plans)

	rows := make([]*sabotv1.VertexScaling, len(plans))
	for i := range plans {
		rows[i] = plans[i].row
	}
	current := make(map[string]int, len(g.Vertices))
	for _, v := range g.Vertices {
		current[v.ID] = v.Parallelism
	}

	if !in.LastRescale.IsZero() {
		if until := in.LastRescale.Add(time.Duration(s.GetCooldownMs()) * time.Millisecond); in.Now.Before(until) {
			return hold(in.Now, fmt.Sprintf("%s until %s", ReasonCoolingDown, until.UTC().Format(time.RFC3339)), current, rows)
		}
	}
	if why := notReady(g, in.Metrics); why != "" {
		return hold(in.Now, ReasonCollectingMetrics+": "+why, current, rows)
	}

	var up, down bool
	var changes []string
	next := make(map[string]int, len(g.Vertices))
	for i, v := range g.Vertices {
		p := plans[i]
		next[v.ID] = p.next
		p.row.NewParallelism = int32(p.next)
		if p.next == p.cur {
			continue
		}
		up = up || p.next > p.cur
		down = down || p.next < p.cur
		changes = append(changes, fmt.Sprintf("%s %d→%d (target %.1f records/s)", v.ID, p.cur, p.next, p.target))
	}
	if !up && !down {
		return hold(in.Now, ReasonSteady, current, rows)
	}
	action := ActionScaleDown
	if up {
		action = ActionScaleUp
	}
	reason := strings.Join(changes, ", ")
	return Decision{
		Action:      action,
		Reason:      reason,
		Parallelism: next,
		Record: &sabotv1.ScalingDecision{
			Time:     timestamppb.New(in.Now),
			Action:   action,
			Reason:   reason,
			Vertices: rows,
		},
	}
}

// needed is the parallelism one vertex needs, from its target input rate
// and its true processing rate per subtask, bounded to [lo, hi], with the
// scale-down hysteresis applied. processed is the vertex's observed rate:
// a vertex that processed nothing (idle) or whose processing rate is
// unknown keeps its parallelism (within the bounds).
func needed(cur int, target, tpr, processed, util, threshold float64, lo, hi int) int {
	bound := func(n int) int { return min(max(n, lo), hi) }
	if processed <= 0 || tpr <= 0 || math.IsNaN(target) || math.IsInf(target, 0) || math.IsInf(tpr, 0) {
		return bound(cur)
	}
	want := target / (tpr * util)
	n := hi
	if want < float64(hi) {
		n = bound(int(math.Ceil(want - ceilSlack)))
	}
	switch {
	case cur < lo || cur > hi:
		return n // out of bounds: move in whatever the hysteresis says
	case n > cur:
		return n
	case n < cur && float64(cur-n) > threshold*float64(cur):
		return n
	default:
		return cur
	}
}

// unifyChains gives vertices that must run at equal parallelism the largest
// parallelism any of them needs: a chain (a forward edge into a vertex with
// one input: one task, like a Flink operator chain, which Flink's
// autoscaler scales as one job vertex), and the two ends of an edge the
// spec declares FORWARD (jobgraph rejects unequal ends).
func unifyChains(g *jobgraph.Graph, plans []vertexPlan) {
	parent := make([]int, len(plans))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	specEdges := g.Spec.GetGraph().GetEdges()
	for _, e := range g.Edges {
		explicit := e.Index >= 0 && e.Index < len(specEdges) &&
			specEdges[e.Index].GetPartitioning() == sabotv1.Partitioning_PARTITIONING_FORWARD
		if !e.Chained() && !explicit {
			continue
		}
		a, b := find(e.From.Index), find(e.To.Index)
		if a != b {
			parent[max(a, b)] = min(a, b)
		}
	}
	widest := make(map[int]int)
	for i := range plans {
		r := find(i)
		widest[r] = max(widest[r], plans[i].next)
	}
	for i := range plans {
		plans[i].next = widest[find(i)]
	}
}

// notReady says why the metrics are not enough to decide on, or "".
func notReady(g *jobgraph.Graph, ms map[string]VertexMetrics) string {
	for _, v := range g.Vertices {
		m, ok := ms[v.ID]
		switch {
		case !ok:
			return fmt.Sprintf("no samples from %s yet", v.ID)
		case !m.Ready:
			return fmt.Sprintf("%s: %s", v.ID, m.NotReady)
		case m.Subtasks < v.Parallelism:
			return fmt.Sprintf("%s: %d of %d subtasks reporting", v.ID, m.Subtasks, v.Parallelism)
		}
	}
	return ""
}

// hold is a decision to change nothing; rows keep their current
// parallelism as the new one.
func hold(now time.Time, reason string, current map[string]int, rows []*sabotv1.VertexScaling) Decision {
	for _, r := range rows {
		r.NewParallelism = r.GetCurrentParallelism()
	}
	return Decision{
		Action:      ActionHold,
		Reason:      reason,
		Parallelism: current,
		Record: &sabotv1.ScalingDecision{
			Time:     timestamppb.New(now),
			Action:   ActionHold,
			Reason:   reason,
			Vertices: rows,
		},
	}
}

// WorkersNeeded is the number of workers a job with the given parallelism
// per vertex needs when each worker has slotsPerWorker slots (less than 1
// counts as 1). With slot sharing, as in Flink, a slot holds one subtask of
// every vertex, so the job needs as many slots as its widest vertex:
// ceil(max parallelism / slotsPerWorker). An empty map needs 0.
func WorkersNeeded(parallelism map[string]int, slotsPerWorker int) int {
	widest := 0
	for _, p := range parallelism {
		widest = max(widest, p)
	}
	slots := max(slotsPerWorker, 1)
	return (widest + slots - 1) / slots
}
