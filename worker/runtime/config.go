package runtime

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jonboulle/clockwork"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// Defaults of Config's zero fields.
const (
	DefaultQueueCapacity = 8
	DefaultBatchSize     = 1024
	// DefaultPollTimeout is Config.PollTimeout's default.
	DefaultPollTimeout = 100 * time.Millisecond
)

// Config is one job attempt's share on this worker.
type Config struct {
	JobID   string
	Attempt int64
	// Graph is the resolved job graph. Required.
	Graph *jobgraph.Graph
	// Subtasks lists the subtasks that run here; empty means every subtask
	// of every vertex. Without Placement it must cover the whole graph
	// (ErrRemoteExchange otherwise).
	Subtasks []*clusterv1.SubtaskRef
	// Placement spreads the attempt over workers (Assignment.placement):
	// it says where every subtask runs. Run then starts only Subtasks
	// (this worker's share, the entries of Placement naming Self), reaches
	// the other subtasks through Network, and coordinates checkpoints with
	// the other shares through Coordination; the share of worker
	// Coordinator hosts the checkpoint coordinator. A chain's subtasks
	// must be placed together.
	Placement []*clusterv1.Placement
	// Self is this worker's id in Placement.
	Self string
	// Coordinator is the id of the worker whose share coordinates
	// checkpoints; empty means Self.
	Coordinator string
	// Network is the worker process's network exchange (*Network).
	Network      Networker
	Coordination *Coordination
	// Logger defaults to a logger that discards.
	Logger *slog.Logger
	// PrintOut receives print sinks' lines (one Write per batch, serialized
	// across subtasks). Nil means each line is logged on Logger at info.
	PrintOut io.Writer
	// Allocator backs every batch the job allocates; default
	// memory.DefaultAllocator.
	Allocator memory.Allocator
	// QueueCapacity is the number of elements (batches or control events)
	// an exchange input gate buffers per receiving subtask; default
	// DefaultQueueCapacity. A full gate blocks its senders.
	QueueCapacity int
	// BatchSize is the number of rows per batch sources produce; default
	// DefaultBatchSize.
	BatchSize int
	// Clock paces sources (rows_per_second); default real time. Tests pass
	// a clockwork.FakeClock.
	Clock clockwork.Clock
	// PollTimeout bounds, in real time, how long a source waiting for
	// external input (Kafka) blocks in one Next call before returning
	// control to its task with nothing, so that periodic watermarks and
	// idleness detection (paced on Clock) keep running on a silent input;
	// default DefaultPollTimeout.
	PollTimeout time.Duration
	// OnTaskState, if set, is called from task goroutines on every task
	// state change of every vertex in the task's chain. It must not block.
	OnTaskState func(vertexID string, subtask int32, state sabotv1.TaskState)
	// SinkRows, if set, counts the rows every sink subtask receives (one
	// atomic add per batch): benchmarks and tests check answers with it.
	SinkRows *atomic.Int64
	// SinkLatency, if set with SinkRows, records per batch reaching a sink
	// the time since its source began producing it (event-to-output
	// latency at batch granularity).
	SinkLatency *LatencyHistogram
	// StateDir is where pebble state backends (JobSpec.state_backend
	// PEBBLE) keep their files: one directory per subtask of each keyed
	// operator, <StateDir>/<job>/attempt-<n>/<vertex>/subtask-<i>, emptied
	// when the subtask opens (a restore downloads its checkpoint there) and
	// removed when it closes. Empty means a fresh temporary
	// directory, created only when the job has a keyed operator on pebble
	// and removed when Run returns. Heap backends use no directory.
	StateDir string
	// Functions are the keyed process functions (ProcessFunction operators)
	// this worker can run, by name, in addition to the built-ins
	// ("count-per-key", "event-time-alert", "max-rows"; see the package doc). A name
	// here replaces a built-in of the same name. The factory is called once
	// per subtask, when the task is built.
	Functions map[string]ProcessFunctionFactory
	// FunctionHost runs the processes of deployed functions (function
	// steps); nil: jobs with function steps fail to start here.
	FunctionHost FunctionHost
	// Invocations is the worker's registry of function subtasks that
	// Invoke requests are routed to; nil: function steps take no
	// invocations.
	Invocations *Invocations
	// Messenger delivers messages functions send to other functions or to
	// keys other subtasks own; nil: such messages are malformed results.
	Messenger FunctionMessenger
	// WindowFunctions are the window functions (WindowAggregate.function)
	// this worker can run, by name: WindowFunction, or WindowAggregator
	// for incremental aggregation.
	WindowFunctions map[string]WindowFunctionFactory

	// Checkpoints enables the checkpoints JobSpec.checkpointing asks for:
	// the blob store, the committer and what to restore. Nil runs the job
	// without checkpoints even if the spec enables them.
	Checkpoints *CheckpointOptions
	// Control, if set with Checkpoints, takes savepoint requests.
	Control *Control
	// Metrics, if set, collects the tasks' counters (for the autoscaler).
	Metrics *Metrics

	// operatorHook, if set and returning non-nil, replaces a vertex's
	// operator: in-package tests and benchmarks use it for sinks the
	// contract has no kind for (counting, discarding).
	operatorHook func(v *jobgraph.Vertex, info TaskInfo) Operator
}

// withDefaults returns a copy of c with zero fields defaulted.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Allocator == nil {
		c.Allocator = memory.DefaultAllocator
	}
	if c.QueueCapacity == 0 {
		c.QueueCapacity = DefaultQueueCapacity
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	if c.PollTimeout == 0 {
		c.PollTimeout = DefaultPollTimeout
	}
	return c
}

// Validate rejects a config Run cannot start, before any goroutine starts.
func (c Config) Validate() error {
	var errs []error
	if c.Graph == nil {
		errs = append(errs, errors.New("runtime: config: Graph is required"))
	}
	if c.QueueCapacity < 0 {
		errs = append(errs, fmt.Errorf("runtime: config: QueueCapacity %d is negative", c.QueueCapacity))
	}
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("runtime: config: BatchSize %d is negative", c.BatchSize))
	}
	if c.PollTimeout < 0 {
		errs = append(errs, fmt.Errorf("runtime: config: PollTimeout %v is negative", c.PollTimeout))
	}
	for name, f := range c.Functions {
		if name == "" || f == nil {
			errs = append(errs, fmt.Errorf("runtime: config: function %q has an empty name or a nil factory", name))
		}
	}
	for name, f := range c.WindowFunctions {
		if name == "" || f == nil {
			errs = append(errs, fmt.Errorf("runtime: config: window function %q has an empty name or a nil factory", name))
		}
	}
	if cp := c.Checkpoints; cp != nil && (cp.Store == nil || cp.Committer == nil) {
		errs = append(errs, errors.New("runtime: config: Checkpoints needs a Store and a Committer"))
	}
	if c.Graph != nil {
		if err := checkSubtasks(c.Graph, c.Subtasks, len(c.Placement) > 0); err != nil {
			errs = append(errs, err)
		}
		if err := c.checkPlacement(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// String describes the config for logs; it holds no secrets today, but
// keeps to the identifying fields so it stays safe to log.
func (c Config) String() string {
	name := ""
	if c.Graph != nil {
		name = c.Graph.Name
	}
	return fmt.Sprintf("runtime.Config{job=%s attempt=%d graph=%q subtasks=%d queue=%d batch=%d}",
		c.JobID, c.Attempt, name, len(c.Subtasks), c.QueueCapacity, c.BatchSize)
}

// checkPlacement verifies a distributed placement: every subtask placed
// once, on a worker with an address, this worker's share equal to
// Subtasks, chains together, and the network parts present.
func (c Config) checkPlacement() error {
	if len(c.Placement) == 0 {
		return nil
	}
	if c.Network == nil || c.Coordination == nil || c.Self == "" {
		return errors.New("runtime: config: a Placement needs Network, Coordination and Self")
	}
	where := map[subtaskKey]*clusterv1.Placement{}
	for _, p := range c.Placement {
		k := subtaskKey{p.GetVertexId(), int(p.GetSubtask())}
		if where[k] != nil {
			return fmt.Errorf("runtime: config: subtask %s placed twice", k)
		}
		if p.GetWorkerId() != c.Self && p.GetAddress() == "" {
			return fmt.Errorf("runtime: config: subtask %s is placed on worker %s, which has no address", k, p.GetWorkerId())
		}
		where[k] = p
	}
	mine := 0
	for _, v := range c.Graph.Vertices {
		for s := range v.Parallelism {
			p := where[subtaskKey{v.ID, s}]
			if p == nil {
				return fmt.Errorf("runtime: config: subtask %s[%d] is not placed", v.ID, s)
			}
			if p.GetWorkerId() == c.Self {
				mine++
			}
			for _, out := range v.Outputs {
				if q := where[subtaskKey{out.To.ID, s}]; out.Chained() && q != nil && q.GetWorkerId() != p.GetWorkerId() {
					return fmt.Errorf("runtime: config: chained subtasks %s[%d] and %s[%d] are placed on different workers", v.ID, s, out.To.ID, s)
				}
			}
		}
	}
	if mine != len(c.Subtasks) {
		return fmt.Errorf("runtime: config: Placement puts %d subtasks on %s but Subtasks lists %d", mine, c.Self, len(c.Subtasks))
	}
	return nil
}

// checkSubtasks verifies refs name real subtasks and, unless partial (a
// distributed placement), every one of them.
func checkSubtasks(g *jobgraph.Graph, refs []*clusterv1.SubtaskRef, partial bool) error {
	if len(refs) == 0 {
		return nil
	}
	type key struct {
		v string
		s int32
	}
	seen := make(map[key]bool, len(refs))
	for _, r := range refs {
		v := g.Vertex(r.GetVertexId())
		if v == nil {
			return fmt.Errorf("runtime: config: subtask %s[%d] names a vertex not in the graph", r.GetVertexId(), r.GetSubtask())
		}
		if r.GetSubtask() < 0 || int(r.GetSubtask()) >= v.Parallelism {
			return fmt.Errorf("runtime: config: subtask %s[%d] is out of range (parallelism %d)", r.GetVertexId(), r.GetSubtask(), v.Parallelism)
		}
		if r.GetParallelism() != 0 && int(r.GetParallelism()) != v.Parallelism {
			return fmt.Errorf("runtime: config: subtask %s[%d] says parallelism %d but the graph has %d",
				r.GetVertexId(), r.GetSubtask(), r.GetParallelism(), v.Parallelism)
		}
		seen[key{r.GetVertexId(), r.GetSubtask()}] = true
	}
	if partial {
		return nil
	}
	for _, v := range g.Vertices {
		for s := range v.Parallelism {
			if !seen[key{v.ID, int32(s)}] {
				return fmt.Errorf("%w: subtask %s[%d] is not placed on this worker", ErrRemoteExchange, v.ID, s)
			}
		}
	}
	return nil
}
