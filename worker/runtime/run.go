package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/jonboulle/clockwork"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// env is what operators of one Run share: the defaulted config's
// resources.
type env struct {
	mem         memory.Allocator
	clock       clockwork.Clock
	batchSize   int
	logger      *slog.Logger
	printer     *printer
	hook        func(v *jobgraph.Vertex, info TaskInfo) Operator
	sinkRows    *atomic.Int64
	sinkLatency *LatencyHistogram

	// pollTimeout bounds a Kafka source's wait in one Next.
	pollTimeout time.Duration

	// Keyed operators.
	maxParallelism  int
	stateBackend    sabotv1.StateBackend
	stateDir        string
	functions       map[string]ProcessFunctionFactory
	windowFunctions map[string]WindowFunctionFactory
	// noPanes makes every window take the general operator (tests compare
	// the two implementations).
	noPanes bool
	// cp is the attempt's checkpointing; nil without.
	cp *checkpointing
	// Function steps.
	functionHost FunctionHost
	invocations  *Invocations
	messenger    FunctionMessenger
}

// Run runs the job's subtasks placed here until they all finish, ctx is
// cancelled, or one fails:
//
//   - every task finished (bounded sources ended, every sink flushed and
//     closed): nil;
//   - ctx cancelled: ctx.Err(), once every task goroutine has returned
//     (tasks select on ctx in every blocking wait, so this is prompt even
//     with full queues);
//   - a task failed: a *TaskError naming job, vertex and subtask, after
//     cancelling the other tasks and waiting for them.
//
// A config that Validate rejects fails before any goroutine starts; a
// partial placement fails with ErrRemoteExchange. No goroutine outlives
// Run, and every batch the job allocated is released before Run returns.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	g := cfg.Graph
	stateDir, removeStateDir, err := prepareStateDir(cfg)
	if err != nil {
		return err
	}
	// Runs after every task closed (and removed its own directory).
	defer removeStateDir()
	e := &env{
		mem:         cfg.Allocator,
		clock:       cfg.Clock,
		batchSize:   cfg.BatchSize,
		logger:      cfg.Logger,
		printer:     &printer{w: cfg.PrintOut, logger: cfg.Logger},
		hook:        cfg.operatorHook,
		sinkRows:    cfg.SinkRows,
		sinkLatency: cfg.SinkLatency,

		pollTimeout: cfg.PollTimeout,

		maxParallelism:  g.MaxParallelism,
		stateBackend:    g.Spec.GetStateBackend(),
		stateDir:        stateDir,
		functions:       cfg.Functions,
		windowFunctions: cfg.WindowFunctions,
		functionHost:    cfg.FunctionHost,
		invocations:     cfg.Invocations,
		messenger:       cfg.Messenger,
	}
	var (
		coord *coordinator
		set   checkpointSettings
	)
	if cfg.Checkpoints != nil && g.Spec.GetCheckpointing() != nil {
		set = settingsOf(g.Spec.GetCheckpointing())
		e.cp = &checkpointing{
			jobID: cfg.JobID, attempt: cfg.Attempt, store: cfg.Checkpoints.Store, atLeast: set.atLeastOnce,
			uploads: make(chan func(context.Context), 64), maxP: g.MaxParallelism,
			restore: map[subtaskKey][]*clusterv1.OperatorSnapshot{},
		}
		if err := e.cp.indexRestore(g, cfg.Checkpoints); err != nil {
			return err
		}
	}
	d := newDistribution(cfg)
	var x Exchange
	if d == nil {
		lx := newLocalExchange(g, cfg.QueueCapacity)
		// Batches still queued when tasks stop early (cancel, failure) are
		// released once nobody can touch the queues any more.
		defer lx.drain()
		x = lx
	} else {
		nx := cfg.Network.exchange(g, cfg.QueueCapacity, cfg.JobID, cfg.Attempt, d.local, d.addr)
		defer nx.drain()
		defer nx.close() // before drain: no stream delivers any more
		x = nx
	}

	tasks, err := buildTasks(cfg, x, e, d)
	if err != nil {
		return err
	}
	cfg.Logger.Debug("runtime: starting job", "job", cfg.JobID, "attempt", cfg.Attempt, "tasks", len(tasks))

	grp := newTaskGroup(ctx)
	var (
		stopCheckpoints func()
		stopped         atomic.Bool // by a completed stop-with-savepoint
	)
	stopping := func() { stopped.Store(true) }
	stop := func() { stopping(); grp.cancel() }
	if e.cp != nil {
		if d == nil || d.coordinates() {
			coord = newCoordinator(cfg, set, tasks)
			coord.stop, coord.stopping = stop, stopping
			e.cp.acks, e.cp.finished = coord.acks, coord.finished
		}
		if d != nil {
			unregister, err := d.join(grp, coord, e.cp, set, tasks, stop, stopping)
			if err != nil {
				return err
			}
			defer unregister()
		}
		stopCheckpoints = startCheckpointing(grp, coord, e.cp)
	}
	for _, t := range tasks {
		if cfg.Metrics != nil {
			cfg.Metrics.add(t)
		}
		t.cp, t.stopping = e.cp, &stopped
		grp.Go(t.exec, "job", cfg.JobID, "vertex", t.info.VertexID, "subtask", strconv.Itoa(t.info.Subtask))
	}
	taskErr := grp.Wait()
	if stopCheckpoints != nil {
		stopCheckpoints()
		if stateDir != "" {
			// Pebble checkpoint directories of uploads that never ran.
			attemptDir := filepath.Join(stateDir, pathPart(cfg.JobID, "job"), "attempt-"+strconv.FormatInt(cfg.Attempt, 10))
			if err := os.RemoveAll(attemptDir); err != nil {
				cfg.Logger.Warn("runtime: remove checkpoint directories", "dir", attemptDir, "err", err)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if stopped.Load() {
		// Stopped with a savepoint whose sinks all committed: a task that
		// failed meanwhile failed of the teardown (another share's
		// streams ending first).
		// Its tasks reported FINISHED themselves (task.stopping).
		cfg.Logger.Info("runtime: job stopped with a savepoint", "job", cfg.JobID, "attempt", cfg.Attempt, "teardown error", taskErr)
		return nil
	}
	if taskErr != nil {
		return taskErr
	}
	return nil
}

// buildTasks creates every task placed here (all of them unless d says
// otherwise) and its operators, without starting them.
func buildTasks(cfg Config, x Exchange, e *env, d *distribution) ([]*task, error) {
	var tasks []*task
	for _, v := range cfg.Graph.Vertices {
		if !headsTask(v) {
			continue
		}
		for s := range v.Parallelism {
			if d != nil && !d.local(v.ID, s) {
				continue
			}
			t := &task{onState: cfg.OnTaskState, clock: cfg.Clock, triggers: make(chan trigger, 16), metrics: &taskMetrics{}}
			t.info = taskInfo(cfg, v, s)
			// Constructors only compile and check; they acquire nothing
			// (Open does), so a failure here leaves nothing to close.
			head, err := buildNode(cfg, v, s, x, e, t)
			if err != nil {
				return nil, t.taskError(err)
			}
			t.head = head
			if v.Kind == jobgraph.KindSource {
				head.out.count = &t.metrics.in
				if t.source, err = newSource(v, t.info, e); err != nil {
					return nil, t.taskError(tagVertex(v.ID, err))
				}
				if _, ok := t.source.(snapshotter); e.cp != nil && !ok {
					return nil, t.taskError(tagVertex(v.ID, fmt.Errorf("this source kind does not support checkpoints yet (supported: kafka_source, sequence); remove checkpointing or change the source")))
				}
			} else {
				t.gate = x.Gate(v, s)
			}
			tasks = append(tasks, t)
		}
	}
	return tasks, nil
}

func taskInfo(cfg Config, v *jobgraph.Vertex, s int) TaskInfo {
	lo, hi := jobgraph.KeyGroupRange(cfg.Graph.MaxParallelism, v.Parallelism, s)
	return TaskInfo{
		JobID: cfg.JobID, Attempt: cfg.Attempt, VertexID: v.ID,
		Subtask: s, Parallelism: v.Parallelism, KeyGroupStart: lo, KeyGroupEnd: hi,
	}
}

// buildNode creates v's operator for subtask s and, recursively, the
// vertices chained after it; t.nodes collects them in chain order.
func buildNode(cfg Config, v *jobgraph.Vertex, s int, x Exchange, e *env, t *task) (*node, error) {
	n := &node{vertex: v}
	t.nodes = append(t.nodes, n)
	if v.Kind != jobgraph.KindSource {
		op, err := newOperator(v, taskInfo(cfg, v, s), e)
		if err != nil {
			return nil, tagVertex(v.ID, err)
		}
		if sc, ok := op.(*sinkCounter); ok {
			sc.origin = &t.origin
		}
		if w, ok := op.(waker); ok {
			w.setWaker(t.poke)
			t.wake.used = true
		}
		n.op = op
	}
	for _, out := range v.Outputs {
		f := &n.out
		if out.SideOutput != "" {
			f = n.out.side(out.SideOutput)
		}
		if out.Chained() {
			c, err := buildNode(cfg, out.To, s, x, e, t)
			if err != nil {
				return nil, err
			}
			f.chained = append(f.chained, c)
			continue
		}
		w := newEdgeWriter(out, x, s, cfg.Graph.MaxParallelism, e.mem)
		w.origin, w.tm = &t.origin, t.metrics
		f.edges = append(f.edges, w)
	}
	return n, nil
}

// taskGroup runs tasks as goroutines owned by one Run: labelled for pprof,
// the first failure cancels the rest, Wait returns after all returned.
type taskGroup struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     struct {
		sync.Mutex
		err error
	}
}

func newTaskGroup(parent context.Context) *taskGroup {
	ctx, cancel := context.WithCancel(parent)
	return &taskGroup{ctx: ctx, cancel: cancel}
}

// Go runs fn labelled with the label pairs. A failure of fn (other than
// its context being cancelled) is recorded, first one wins, and cancels
// the group.
func (g *taskGroup) Go(fn func(ctx context.Context) error, labels ...string) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		pprof.Do(g.ctx, pprof.Labels(labels...), func(ctx context.Context) {
			err := fn(ctx)
			if err == nil || (ctx.Err() != nil && errors.Is(err, ctx.Err())) {
				return
			}
			g.mu.Lock()
			if g.mu.err == nil {
				g.mu.err = err
			}
			g.mu.Unlock()
			g.cancel()
		})
	}()
}

// fail records err as the group's failure (unless one is recorded) and
// cancels the group.
func (g *taskGroup) fail(err error) {
	g.mu.Lock()
	if g.mu.err == nil {
		g.mu.err = err
	}
	g.mu.Unlock()
	g.cancel()
}

// Wait waits for every goroutine and returns the first failure.
func (g *taskGroup) Wait() error {
	g.wg.Wait()
	g.cancel()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mu.err
}
