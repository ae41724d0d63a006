package runtime

import (
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
)

// Metrics collects the counters of one attempt's tasks on this worker, for
// the autoscaler (clusterv1.TaskMetrics, carried in the worker's task
// reports): records in and out, time blocked waiting for input (idle) or
// on a full output (backpressured), busy = the rest, and sources' lag.
// Make one with NewMetrics and pass it in Config.Metrics; Snapshot may be
// called from any goroutine while the attempt runs.
//
// Per task, the counters are those of the chain's head, and every vertex
// chained in the task reports the same busy and backpressure times (one
// goroutine runs them all): records in are the rows the task received (a
// source: the rows it produced), records out the rows it sent on
// non-chained edges (0 for a chain ending in a sink). A source's time in
// a Next call that produced nothing counts as idle.
type Metrics struct {
	mu    sync.Mutex
	tasks []*taskMetrics
}

// NewMetrics returns an empty Metrics.
func NewMetrics() *Metrics { return &Metrics{} }

// taskMetrics are one task's counters: written by the task goroutine,
// read by Snapshot.
type taskMetrics struct {
	vertices []string
	subtask  int
	start    time.Time
	in, out  atomic.Int64
	idle     atomic.Int64 // ns waiting for input
	bp       atomic.Int64 // ns blocked on output
	lag      func() int64 // sources with a backlog; nil otherwise
}

// add registers t's counters (made with the task, so its edge writers
// hold them).
func (m *Metrics) add(t *task) {
	tm := t.metrics
	tm.subtask, tm.start = t.info.Subtask, time.Now()
	for _, n := range t.nodes {
		tm.vertices = append(tm.vertices, n.vertex.ID)
	}
	if l, ok := t.source.(interface{ lag() int64 }); ok {
		tm.lag = l.lag
	}
	m.mu.Lock()
	m.tasks = append(m.tasks, tm)
	m.mu.Unlock()
}

// Snapshot returns every task's counters now, one entry per vertex.
func (m *Metrics) Snapshot() []*clusterv1.TaskMetrics {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	tasks := append([]*taskMetrics(nil), m.tasks...)
	m.mu.Unlock()
	now := time.Now()
	var out []*clusterv1.TaskMetrics
	for _, tm := range tasks {
		elapsed := now.Sub(tm.start)
		idle, bp := time.Duration(tm.idle.Load()), time.Duration(tm.bp.Load())
		busy := max(elapsed-idle-bp, 0)
		lag := int64(-1)
		if tm.lag != nil {
			lag = tm.lag()
		}
		for _, v := range tm.vertices {
			out = append(out, &clusterv1.TaskMetrics{
				VertexId: v, Subtask: int32(tm.subtask), SampledAt: timestamppb.New(now),
				RecordsIn: tm.in.Load(), RecordsOut: tm.out.Load(),
				BusyMs: busy.Milliseconds(), BackpressuredMs: bp.Milliseconds(),
				Lag: lag, ElapsedMs: elapsed.Milliseconds(),
			})
		}
	}
	return out
}
