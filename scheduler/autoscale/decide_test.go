package autoscale_test

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/scheduler/autoscale"
)

func sequenceOp() *sabotv1.Operator {
	return &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{Sequence: &sabotv1.SequenceSource{Start: 1}}}
}

func filterOp(cond string) *sabotv1.Operator {
	return &sabotv1.Operator{Kind: &sabotv1.Operator_Filter{Filter: &sabotv1.FilterOperator{Condition: cond}}}
}

func countOp() *sabotv1.Operator {
	return &sabotv1.Operator{Kind: &sabotv1.Operator_KeyedAggregate{KeyedAggregate: &sabotv1.KeyedAggregate{
		Aggregations: []*sabotv1.Aggregation{{Name: "n", Function: sabotv1.AggregateFunction_AGGREGATE_FUNCTION_COUNT}},
	}}}
}

func sinkOp() *sabotv1.Operator {
	return &sabotv1.Operator{Kind: &sabotv1.Operator_Blackhole{Blackhole: &sabotv1.BlackholeSink{}}}
}

const rebalance = sabotv1.Partitioning_PARTITIONING_REBALANCE

// resolve builds a graph; parallelism maps vertex id to parallelism.
func resolve(t *testing.T, maxP int32, vs []*sabotv1.Vertex, es ...*sabotv1.Edge) *jobgraph.Graph {
	t.Helper()
	g, err := jobgraph.Resolve(&sabotv1.JobSpec{Name: "t", MaxParallelism: maxP, Graph: &sabotv1.JobGraph{Vertices: vs, Edges: es}})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// pair is src → sink over a rebalance edge, so each scales on its own.
func pair(t *testing.T, maxP, p int32) *jobgraph.Graph {
	t.Helper()
	return resolve(t, maxP,
		[]*sabotv1.Vertex{{Id: "src", Parallelism: p, Operator: sequenceOp()}, {Id: "sink", Parallelism: p, Operator: sinkOp()}},
		&sabotv1.Edge{From: "src", To: "sink", Partitioning: rebalance})
}

// chain is src → filter → count (keyed) → sink, no edge chained.
func chain(t *testing.T) *jobgraph.Graph {
	t.Helper()
	return resolve(t, 0, []*sabotv1.Vertex{
		{Id: "src", Parallelism: 2, Operator: sequenceOp()},
		{Id: "filter", Parallelism: 2, Operator: filterOp("value % 2 = 0")},
		{Id: "count", Parallelism: 2, Operator: countOp()},
		{Id: "sink", Parallelism: 2, Operator: sinkOp()},
	},
		&sabotv1.Edge{From: "src", To: "filter", Partitioning: rebalance},
		&sabotv1.Edge{From: "filter", To: "count", Partitioning: sabotv1.Partitioning_PARTITIONING_HASH, KeyFields: []string{"value"}},
		&sabotv1.Edge{From: "count", To: "sink", Partitioning: rebalance},
	)
}

// source and op are ready metrics of a vertex with that many subtasks;
// tpr is the true processing rate (0: unknown).
func source(subtasks int, outPerSec, tpr float64, lag int64, lagRate float64) autoscale.VertexMetrics {
	return autoscale.VertexMetrics{
		Subtasks: subtasks, Ready: true, Span: 10 * time.Second,
		RecordsOutPerSecond: outPerSec, TrueProcessingRate: tpr, BusyRatio: busy(outPerSec, tpr, subtasks),
		Lag: lag, LagRate: lagRate,
	}
}

func op(subtasks int, inPerSec, outPerSec, tpr float64) autoscale.VertexMetrics {
	return autoscale.VertexMetrics{
		Subtasks: subtasks, Ready: true, Span: 10 * time.Second,
		RecordsInPerSecond: inPerSec, RecordsOutPerSecond: outPerSec, TrueProcessingRate: tpr,
		BusyRatio: busy(inPerSec, tpr, subtasks), Lag: -1,
	}
}

// busy is the busy ratio that goes with a rate and a true processing rate.
func busy(rate, tpr float64, subtasks int) float64 {
	if tpr == 0 {
		return 0
	}
	return rate / tpr / float64(subtasks)
}

var now = t0.Add(time.Hour)

func TestDecide(t *testing.T) {
	t.Parallel()
	type want struct {
		action      string
		reason      string // substring
		parallelism map[string]int
		targets     map[string]float64 // VertexScaling.target_rate, when checked
	}
	for _, c := range []struct {
		name string
		in   autoscale.Inputs
		want want
	}{
		{
			// src: ceil(1000/(800×0.7)) = ceil(1.79) = 2; sink: ceil(1000/700) = 2.
			name: "steady state holds",
			in: autoscale.Inputs{Graph: pair(t, 0, 2), Metrics: map[string]autoscale.VertexMetrics{
				"src": source(2, 1000, 800, 0, 0), "sink": op(2, 1000, 0, 1000),
			}},
			want: want{action: autoscale.ActionHold, reason: autoscale.ReasonSteady, parallelism: map[string]int{"src": 2, "sink": 2}},
		},
		{
			// src: ceil(3000/560) = ceil(5.36) = 6; sink: ceil(3000/700) = ceil(4.29) = 5.
			name: "source rate triples",
			in: autoscale.Inputs{Graph: pair(t, 0, 2), Metrics: map[string]autoscale.VertexMetrics{
				"src": source(2, 3000, 800, 0, 0), "sink": op(2, 3000, 0, 1000),
			}},
			want: want{action: autoscale.ActionScaleUp, reason: "src 2→6", parallelism: map[string]int{"src": 6, "sink": 5},
				targets: map[string]float64{"src": 3000, "sink": 3000}},
		},
		{
			// Arrival = 1000 read + 500 piling up = 1500/s; backlog 60000
			// over 30 s adds 2000/s: target 3500. src: ceil(3500/560) =
			// ceil(6.25) = 7; sink: 3500/700 = exactly 5.
			name: "growing backlog drives catch-up",
			in: autoscale.Inputs{Graph: pair(t, 0, 2), Metrics: map[string]autoscale.VertexMetrics{
				"src": source(2, 1000, 800, 60000, 500), "sink": op(2, 1000, 0, 1000),
			}},
			want: want{action: autoscale.ActionScaleUp, parallelism: map[string]int{"src": 7, "sink": 5},
				targets: map[string]float64{"src": 3500, "sink": 3500}},
		},
		{
			// Draining on schedule: arrival 2000−1000 = 1000/s, plus
			// 30000/30 s: target 2000, the rate it reads at. Holds.
			name: "shrinking backlog keeps the draining parallelism",
			in: autoscale.Inputs{Graph: pair(t, 0, 4), Metrics: map[string]autoscale.VertexMetrics{
				"src": source(4, 2000, 800, 30000, -1000), "sink": op(4, 2000, 0, 800),
			}},
			want: want{action: autoscale.ActionHold, parallelism: map[string]int{"src": 4, "sink": 4},
				targets: map[string]float64{"src": 2000, "sink": 2000}},
		},
		{
			// src: ceil(1000/140) = 8 and sink: ceil(1000/210) = 5 are
			// below 10 by 2 and 5; only more than 0.2×10 = 2 counts.
			name: "small drop stays within the hysteresis",
			in: autoscale.Inputs{Graph: pair(t, 0, 10), Metrics: map[string]autoscale.VertexMetrics{
				"src": source(10, 1000, 200, 0, 0), "sink": op(10, 1000, 0, 300),
			}, LastRescale: now.Add(-61 * time.Second)},
			want: want{action: autoscale.ActionScaleDown, parallelism: map[string]int{"src": 10, "sink": 5}},
		},
		{
			// src: ceil(900/140) = ceil(6.43) = 7, 3 below 10.
			name: "drop beyond the threshold after the cooldown scales down",
			in: autoscale.Inputs{Graph: pair(t, 0, 10), Metrics: map[string]autoscale.VertexMetrics{
				"src": source(10, 900, 200, 0, 0), "sink": op(10, 900, 0, 300),
			}, LastRescale: now.Add(-61 * time.Second)},
			want: want{action: autoscale.ActionScaleDown, reason: "src 10→7", parallelism: map[string]int{"src": 7, "sink": 5}},
		},
		{
			name: "no decision during the cooldown",
			in: autoscale.Inputs{Graph: pair(t, 0, 10), Metrics: map[string]autoscale.VertexMetrics{
				"src": source(10, 900, 200, 0, 0), "sink": op(10, 900, 0, 300),
			}, LastRescale: now.Add(-30 * time.Second)},
			want: want{action: autoscale.ActionHold, reason: "cooling down until 2026-03-01T13:00:30Z",
				parallelism: map[string]int{"src": 10, "sink": 10}},
		},
		{
			name: "cooldown setting",
			in: autoscale.Inputs{Graph: pair(t, 0, 10), Settings: &sabotv1.Autoscaler{CooldownMs: 10_000}, Metrics: map[string]autoscale.VertexMetrics{
				"src": source(10, 900, 200, 0, 0), "sink": op(10, 900, 0, 300),
			}, LastRescale: now.Add(-30 * time.Second)},
			want: want{action: autoscale.ActionScaleDown, parallelism: map[string]int{"src": 7, "sink": 5}},
		},
		{
			// src would need ceil(10000/140) = 72, sink ceil(10000/70000) = 1.
			name: "bounds from the settings",
			in: autoscale.Inputs{Graph: pair(t, 0, 3), Settings: &sabotv1.Autoscaler{MinParallelism: 2, MaxParallelism: 4},
				Metrics: map[string]autoscale.VertexMetrics{"src": source(3, 10000, 200, 0, 0), "sink": op(3, 10000, 0, 100000)}},
			want: want{action: autoscale.ActionScaleUp, parallelism: map[string]int{"src": 4, "sink": 2}},
		},
		{
			name: "bound by the job's max_parallelism",
			in: autoscale.Inputs{Graph: pair(t, 8, 3), Settings: &sabotv1.Autoscaler{MaxParallelism: 100},
				Metrics: map[string]autoscale.VertexMetrics{"src": source(3, 10000, 200, 0, 0), "sink": op(3, 10000, 0, 100000)}},
			want: want{action: autoscale.ActionScaleUp, parallelism: map[string]int{"src": 8, "sink": 1}},
		},
		{
			// An idle vertex keeps its parallelism, but within the bounds.
			name: "idle vertices keep their parallelism",
			in: autoscale.Inputs{Graph: pair(t, 0, 3), Settings: &sabotv1.Autoscaler{MaxParallelism: 2},
				Metrics: map[string]autoscale.VertexMetrics{"src": source(3, 0, 0, 0, 0), "sink": op(3, 0, 0, 0)}},
			want: want{action: autoscale.ActionScaleDown, parallelism: map[string]int{"src": 2, "sink": 2}},
		},
		{
			name: "idle within bounds holds",
			in: autoscale.Inputs{Graph: pair(t, 0, 3),
				Metrics: map[string]autoscale.VertexMetrics{"src": source(3, 0, 0, 0, 0), "sink": op(3, 0, 0, 0)}},
			want: want{action: autoscale.ActionHold, parallelism: map[string]int{"src": 3, "sink": 3}},
		},
		{
			// Arrival 2000 read + 1000/s lag growth = 3000/s. The filter
			// halves it: count and sink get 1500/s.
			//   src:    ceil(3000/(2000×0.7)) = ceil(2.14) = 3
			//   filter: ceil(3000/(1000×0.7)) = ceil(4.29) = 5
			//   count:  ceil(1500/(250×0.7))  = ceil(8.57) = 9
			//   sink:   ceil(1500/(1000×0.7)) = ceil(2.14) = 3
			name: "filter halves the rate downstream",
			in: autoscale.Inputs{Graph: chain(t), Metrics: map[string]autoscale.VertexMetrics{
				"src":    source(2, 2000, 2000, 0, 1000),
				"filter": op(2, 2000, 1000, 1000),
				"count":  op(2, 1000, 1000, 250),
				"sink":   op(2, 1000, 0, 1000),
			}},
			want: want{action: autoscale.ActionScaleUp, parallelism: map[string]int{"src": 3, "filter": 5, "count": 9, "sink": 3},
				targets: map[string]float64{"src": 3000, "filter": 3000, "count": 1500, "sink": 1500}},
		},
		{
			name: "missing vertex holds",
			in: autoscale.Inputs{Graph: pair(t, 0, 2), Metrics: map[string]autoscale.VertexMetrics{
				"src": source(2, 3000, 800, 0, 0),
			}},
			want: want{action: autoscale.ActionHold, reason: "collecting metrics: no samples from sink", parallelism: map[string]int{"src": 2, "sink": 2}},
		},
		{
			name: "vertex not ready holds",
			in: autoscale.Inputs{Graph: pair(t, 0, 2), Metrics: map[string]autoscale.VertexMetrics{
				"src": source(2, 3000, 800, 0, 0), "sink": {Subtasks: 2, NotReady: "subtask 1 has 1 sample"},
			}},
			want: want{action: autoscale.ActionHold, reason: "collecting metrics: sink: subtask 1 has 1 sample", parallelism: map[string]int{"src": 2, "sink": 2}},
		},
		{
			name: "subtasks missing holds",
			in: autoscale.Inputs{Graph: pair(t, 0, 2), Metrics: map[string]autoscale.VertexMetrics{
				"src": source(1, 3000, 800, 0, 0), "sink": op(2, 3000, 0, 1000),
			}},
			want: want{action: autoscale.ActionHold, reason: "collecting metrics: src: 1 of 2 subtasks reporting", parallelism: map[string]int{"src": 2, "sink": 2}},
		},
		{
			name: "no graph holds",
			in:   autoscale.Inputs{},
			want: want{action: autoscale.ActionHold, reason: "no job graph"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			in := c.in
			in.Now = now
			d := autoscale.Decide(in)
			if d.Action != c.want.action || !strings.Contains(d.Reason, c.want.reason) {
				t.Errorf("%s (%s), want %s (…%s…)", d.Action, d.Reason, c.want.action, c.want.reason)
			}
			if diff := cmp.Diff(c.want.parallelism, d.Parallelism); diff != "" {
				t.Errorf("parallelism (-want +got):\n%s", diff)
			}
			r := d.Record
			if r.GetAction() != d.Action || r.GetReason() != d.Reason || !r.GetTime().AsTime().Equal(now) {
				t.Errorf("record %v does not match the decision", r)
			}
			if in.Graph == nil {
				return
			}
			if len(r.GetVertices()) != len(in.Graph.Vertices) {
				t.Fatalf("record has %d vertices, want %d", len(r.GetVertices()), len(in.Graph.Vertices))
			}
			for i, row := range r.GetVertices() {
				v := in.Graph.Vertices[i]
				if row.GetVertexId() != v.ID || int(row.GetCurrentParallelism()) != v.Parallelism ||
					int(row.GetNewParallelism()) != d.Parallelism[v.ID] {
					t.Errorf("row %d: %v", i, row)
				}
				m := in.Metrics[v.ID]
				if row.GetRecordsInPerSecond() != m.RecordsInPerSecond || row.GetTrueProcessingRate() != m.TrueProcessingRate ||
					row.GetBusyRatio() != m.BusyRatio {
					t.Errorf("row %s does not carry its metrics: %v", v.ID, row)
				}
				if want, ok := c.want.targets[v.ID]; ok && !near(row.GetTargetRate(), want) {
					t.Errorf("%s target rate %v, want %v", v.ID, row.GetTargetRate(), want)
				}
			}
			if rs := d.Rescale(); d.Changed() != (rs != nil) {
				t.Errorf("Changed %v but Rescale %v", d.Changed(), rs)
			}
		})
	}
}

// TestDecideChainsScaleTogether: src and filter are chained (forward edge,
// equal parallelism, one input): they take the larger need, 5, as Flink
// scales a chain as one job vertex.
func TestDecideChainsScaleTogether(t *testing.T) {
	t.Parallel()
	g := resolve(t, 0, []*sabotv1.Vertex{
		{Id: "src", Parallelism: 2, Operator: sequenceOp()},
		{Id: "filter", Parallelism: 2, Operator: filterOp("value > 0")},
		{Id: "sink", Parallelism: 2, Operator: sinkOp()},
	},
		&sabotv1.Edge{From: "src", To: "filter"},
		&sabotv1.Edge{From: "filter", To: "sink", Partitioning: rebalance},
	)
	if !g.Vertex("filter").Inputs[0].Chained() {
		t.Fatal("src → filter is not chained")
	}
	d := autoscale.Decide(autoscale.Inputs{Graph: g, Now: now, Metrics: map[string]autoscale.VertexMetrics{
		"src":    source(2, 3000, 3000, -1, 0), // needs ceil(3000/2100) = 2
		"filter": op(2, 3000, 3000, 1000),      // needs ceil(3000/700) = 5
		"sink":   op(2, 3000, 0, 3000),         // needs ceil(3000/2100) = 2
	}})
	want := map[string]int{"src": 5, "filter": 5, "sink": 2}
	if diff := cmp.Diff(want, d.Parallelism); diff != "" {
		t.Errorf("parallelism (-want +got):\n%s", diff)
	}
}

// TestDecideFromWindow runs Decide on metrics a Window computed from
// worker samples: the source triples its rate.
func TestDecideFromWindow(t *testing.T) {
	t.Parallel()
	w := autoscale.NewWindow(10*time.Second, 0)
	for _, sec := range []float64{0, 5, 10} {
		f := int64(sec)
		var ms []*clusterv1.TaskMetrics
		for i := range int32(2) {
			// Per subtask: 1500 records/s read at 0.75 busy (2000 per busy
			// second); the sink takes them at 0.5 busy (3000 per busy s).
			ms = append(ms,
				tm("src", i, sec, counters{out: 1500 * f, busyMs: 750 * f, lag: 0}),
				tm("sink", i, sec, counters{in: 1500 * f, busyMs: 500 * f, lag: -1}))
		}
		w.Add(3, ms)
	}
	d := autoscale.Decide(autoscale.Inputs{Graph: pair(t, 0, 2), Metrics: w.Metrics(t0.Add(10 * time.Second)), Now: t0.Add(10 * time.Second)})
	// src: ceil(3000/(2000×0.7)) = ceil(2.14) = 3; sink: ceil(3000/2100) = 2.
	want := map[string]int{"src": 3, "sink": 2}
	if d.Action != autoscale.ActionScaleUp {
		t.Errorf("action %s (%s), want scale-up", d.Action, d.Reason)
	}
	if diff := cmp.Diff(want, d.Parallelism); diff != "" {
		t.Errorf("parallelism (-want +got):\n%s", diff)
	}
	rs := d.Rescale()
	if rs.GetCause() != autoscale.CauseAutoscaler || rs.GetVertexParallelism()["src"] != 3 || !rs.GetRequestedAt().AsTime().Equal(t0.Add(10*time.Second)) {
		t.Errorf("rescale %v", rs)
	}
}

func TestWithDefaults(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		in   *sabotv1.Autoscaler
		maxP int
		want *sabotv1.Autoscaler
	}{
		{name: "nil", maxP: 0, want: &sabotv1.Autoscaler{
			TargetUtilization: 0.7, MinParallelism: 1, MaxParallelism: 128, CooldownMs: 60_000,
			MetricsWindowMs: 10_000, ScaleDownThreshold: 0.2, CatchUpMs: 30_000,
		}},
		{name: "set fields kept", maxP: 64, in: &sabotv1.Autoscaler{
			Enabled: true, TargetUtilization: 0.5, MinParallelism: 2, MaxParallelism: 16, CooldownMs: 1,
			MetricsWindowMs: 2, ScaleDownThreshold: 0.5, CatchUpMs: 3,
		}, want: &sabotv1.Autoscaler{
			Enabled: true, TargetUtilization: 0.5, MinParallelism: 2, MaxParallelism: 16, CooldownMs: 1,
			MetricsWindowMs: 2, ScaleDownThreshold: 0.5, CatchUpMs: 3,
		}},
		{name: "bounds made consistent", maxP: 8, in: &sabotv1.Autoscaler{MinParallelism: 20, MaxParallelism: 100}, want: &sabotv1.Autoscaler{
			TargetUtilization: 0.7, MinParallelism: 8, MaxParallelism: 8, CooldownMs: 60_000,
			MetricsWindowMs: 10_000, ScaleDownThreshold: 0.2, CatchUpMs: 30_000,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := autoscale.WithDefaults(c.in, c.maxP)
			if got.String() != c.want.String() {
				t.Errorf("got %v\nwant %v", got, c.want)
			}
			if c.in != nil && got == c.in {
				t.Error("WithDefaults returned its argument instead of a copy")
			}
		})
	}
}

func TestWorkersNeeded(t *testing.T) {
	t.Parallel()
	p := map[string]int{"src": 3, "count": 5, "sink": 1}
	for _, c := range []struct {
		p     map[string]int
		slots int
		want  int
	}{
		{nil, 4, 0},
		{p, 1, 5},
		{p, 2, 3},
		{p, 4, 2},
		{p, 5, 1},
		{p, 8, 1},
		{p, 0, 5},
	} {
		t.Run(fmt.Sprintf("%v/%d", c.p, c.slots), func(t *testing.T) {
			t.Parallel()
			if got := autoscale.WorkersNeeded(c.p, c.slots); got != c.want {
				t.Errorf("WorkersNeeded = %d, want %d", got, c.want)
			}
		})
	}
}

// TestDecideIsDeterministic: the same inputs, decided repeatedly (map
// iteration order varies), give the same record.
func TestDecideIsDeterministic(t *testing.T) {
	t.Parallel()
	in := autoscale.Inputs{Graph: chain(t), Now: now, Metrics: map[string]autoscale.VertexMetrics{
		"src": source(2, 2000, 2000, 100, 1000), "filter": op(2, 2000, 1000, 1000),
		"count": op(2, 1000, 1000, 250), "sink": op(2, 1000, 0, 1000),
	}}
	first := autoscale.Decide(in)
	for range 20 {
		d := autoscale.Decide(in)
		if d.Record.String() != first.Record.String() || !maps.Equal(d.Parallelism, first.Parallelism) {
			t.Fatalf("decisions differ:\n%v\n%v", first.Record, d.Record)
		}
	}
}

func ExampleDecide() {
	g, err := jobgraph.Resolve(&sabotv1.JobSpec{Name: "clicks", Graph: &sabotv1.JobGraph{
		Vertices: []*sabotv1.Vertex{
			{Id: "src", Parallelism: 2, Operator: sequenceOp()},
			{Id: "sink", Parallelism: 2, Operator: sinkOp()},
		},
		Edges: []*sabotv1.Edge{{From: "src", To: "sink", Partitioning: sabotv1.Partitioning_PARTITIONING_REBALANCE}},
	}})
	if err != nil {
		panic(err)
	}
	d := autoscale.Decide(autoscale.Inputs{
		Graph: g,
		Metrics: map[string]autoscale.VertexMetrics{
			// 3000 records/s read, 800 per busy second and subtask.
			"src": {Ready: true, Subtasks: 2, RecordsOutPerSecond: 3000, TrueProcessingRate: 800, Lag: 0},
			// 3000 records/s in, 1000 per busy second and subtask.
			"sink": {Ready: true, Subtasks: 2, RecordsInPerSecond: 3000, TrueProcessingRate: 1000, Lag: -1},
		},
		Now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	})
	fmt.Println(d.Action)
	fmt.Println(d.Reason)
	fmt.Println("workers with 4 slots:", autoscale.WorkersNeeded(d.Parallelism, 4))
	// Output:
	// scale-up
	// src 2→6 (target 3000.0 records/s), sink 2→5 (target 3000.0 records/s)
	// workers with 4 slots: 2
}
