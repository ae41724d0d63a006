package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// CheckpointOptions is what the worker gives a job attempt whose spec
// enables checkpointing (JobSpec.checkpointing holds the settings).
type CheckpointOptions struct {
	// Store receives snapshots and _metadata objects. Required.
	Store blob.Store
	// Committer makes a checkpoint complete (the etcd pointer). Required.
	Committer CheckpointCommitter
	// Restore, if set, is the checkpoint or savepoint the attempt starts
	// from: keyed state, source positions and sinks' pending transactions.
	Restore *clusterv1.CheckpointMetadata
	// Retained lists the completed checkpoints kept in Store (from the
	// pointer), oldest first; garbage collection keeps what they reference.
	Retained []int64
	// AllowNonRestoredState lets a restore skip state of vertices the graph
	// no longer has (by vertex id); otherwise that fails the attempt.
	AllowNonRestoredState bool
}

// CheckpointCommitter records completed checkpoints durably.
type CheckpointCommitter interface {
	// Commit makes the checkpoint described by md, stored at key, the
	// job's latest completed checkpoint, and retained (ids, oldest first,
	// md's last) the set kept. Until Commit returns nil the checkpoint is
	// not complete and a restart never picks it. An error aborts the
	// checkpoint; one wrapping ErrDeposed fails the attempt (another
	// attempt owns the job now).
	Commit(ctx context.Context, md *clusterv1.CheckpointMetadata, key string, retained []int64) error
	// Record stores a history entry, best effort (errors are the
	// committer's to log).
	Record(ctx context.Context, info *sabotv1.CheckpointInfo)
}

// Control lets the worker ask a running attempt for savepoints. Make one
// with NewControl, pass it in Config.Control; it serves one Run at a time.
type Control struct {
	reqs chan savepointRequest
}

// NewControl returns a Control.
func NewControl() *Control { return &Control{reqs: make(chan savepointRequest)} }

type savepointRequest struct {
	name        string
	stop, drain bool
	done        chan<- savepointResult // capacity 1
}

type savepointResult struct {
	location string
	err      error
}

// ErrNotRunning means the attempt a savepoint was asked of is not running
// (any more).
var ErrNotRunning = errors.New("runtime: job attempt is not running")

// Savepoint takes a savepoint named name (its directory under savepoints/
// in the blob store) of the running attempt and returns its location, the
// blob key of its _metadata. A savepoint is self-contained and in the
// canonical format: it restores at another parallelism and into the other
// state backend. Once complete it is also the attempt's latest recovery
// point, and sinks commit what it covers. With stop, sources stop at its
// barrier and Run returns nil once it is complete (the job ends
// FINISHED); drain (with stop) sends the maximum watermark first, firing
// every event-time timer and window.
func (c *Control) Savepoint(ctx context.Context, name string, stop, drain bool) (string, error) {
	if err := blob.CheckName(name); err != nil {
		return "", err
	}
	done := make(chan savepointResult, 1)
	select {
	case c.reqs <- savepointRequest{name: name, stop: stop, drain: drain, done: done}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	select {
	case r := <-done:
		return r.location, r.err
	case <-ctx.Done():
		select {
		case r := <-done: // completed as the attempt ended (stop)
			return r.location, r.err
		default:
			return "", ctx.Err()
		}
	}
}

// ErrDeposed means a job attempt lost its right to commit checkpoints.
var ErrDeposed = errors.New("runtime: job attempt deposed")

// checkpointSettings are JobSpec.checkpointing with defaults applied.
type checkpointSettings struct {
	interval, timeout, minPause time.Duration
	maxConcurrent, tolerable    int
	retained                    int
	atLeastOnce                 bool
	unaligned                   bool
}

func settingsOf(c *sabotv1.Checkpointing) checkpointSettings {
	s := checkpointSettings{
		interval:      time.Duration(c.GetIntervalMs()) * time.Millisecond,
		timeout:       time.Duration(c.GetTimeoutMs()) * time.Millisecond,
		minPause:      time.Duration(c.GetMinPauseMs()) * time.Millisecond,
		maxConcurrent: int(c.GetMaxConcurrent()),
		tolerable:     int(c.GetTolerableFailures()),
		retained:      int(c.GetRetained()),
		atLeastOnce:   c.GetMode() == sabotv1.CheckpointMode_CHECKPOINT_MODE_AT_LEAST_ONCE,
	}
	s.unaligned = c.GetUnaligned() && !s.atLeastOnce
	if s.timeout == 0 {
		s.timeout = 10 * time.Minute
	}
	if s.maxConcurrent == 0 {
		s.maxConcurrent = 1
	}
	if s.retained == 0 {
		s.retained = 1
	}
	return s
}

// subtaskKey names one subtask of one vertex.
type subtaskKey struct {
	vertex  string
	subtask int
}

func (k subtaskKey) String() string { return k.vertex + "[" + strconv.Itoa(k.subtask) + "]" }

// ack is one subtask's part of a checkpoint, sent once its snapshot is
// uploaded (or failed).
type ack struct {
	id       int64
	key      subtaskKey
	snap     *clusterv1.OperatorSnapshot
	err      error
	duration time.Duration
}

// completeListener is told about completed and aborted checkpoints:
// two-phase-commit sinks commit, keyed operators advance the files they
// may reuse. Calls come from the coordinator goroutine, concurrently with
// the task.
type completeListener interface {
	checkpointComplete(ctx context.Context, id int64) error
}

// pendingCheckpoint is a triggered checkpoint waiting for acks.
type pendingCheckpoint struct {
	id       int64
	sp       *savepointRequest // a savepoint
	trigger  time.Time
	deadline time.Time
	snaps    map[subtaskKey]*clusterv1.OperatorSnapshot
	infos    []*sabotv1.OperatorCheckpointInfo
	// notReady: aborted because a share was not running yet; not counted
	// against tolerable failures.
	notReady bool
}

// coordinator triggers checkpoints of one job attempt, collects the
// subtasks' acks, writes _metadata, commits through the Committer,
// notifies listeners, and garbage-collects what no retained checkpoint
// references. It runs as one goroutine owned by Run (Flink's
// CheckpointCoordinator, here per attempt on the worker that runs the
// whole job; the distributed scheduler will host it once jobs span
// workers).
type coordinator struct {
	jobID   string
	attempt int64
	set     checkpointSettings
	opts    CheckpointOptions
	graph   *jobgraph.Graph
	clock   clockwork.Clock
	logger  *slog.Logger

	sources  []*task
	expected map[subtaskKey]bool
	acks     chan ack
	finished chan []subtaskKey

	listeners []completeListener
	nextID    int64
	pending   map[int64]*pendingCheckpoint
	retained  []*clusterv1.CheckpointMetadata // oldest first
	lastEnd   time.Time
	failures  int // consecutive
	done      []subtaskKey
	gcShared  bool // shared files may be unreferenced: collect when idle
	control   *Control
	// stop is called once a stop-with-savepoint completed: it ends the
	// attempt. stopping, called first, marks it as ending (task failures
	// from then on are teardown, not failures).
	stop, stopping func()

	// A distributed attempt's other shares (nil otherwise): the
	// coordinator triggers their sources and tells them about completed
	// checkpoints through co.
	remote []remoteShare
	co     *Coordination
}

func newCoordinator(cfg Config, set checkpointSettings, tasks []*task) *coordinator {
	c := &coordinator{
		jobID: cfg.JobID, attempt: cfg.Attempt, set: set, opts: *cfg.Checkpoints,
		graph: cfg.Graph, clock: cfg.Clock, logger: cfg.Logger,
		expected: map[subtaskKey]bool{},
		pending:  map[int64]*pendingCheckpoint{},
		finished: make(chan []subtaskKey, len(tasks)),
		nextID:   1,
	}
	for _, v := range cfg.Graph.Vertices {
		for s := range v.Parallelism {
			c.expected[subtaskKey{v.ID, s}] = true
		}
	}
	// Every subtask acks each checkpoint at most once, and at most
	// maxConcurrent are pending: the channel never blocks a task for long.
	c.acks = make(chan ack, len(c.expected)*(set.maxConcurrent+1))
	c.sources, c.listeners = sourcesOf(tasks), listenersOf(tasks)
	if r := cfg.Checkpoints.Restore; r != nil {
		c.nextID = r.GetCheckpointId() + 1
	}
	c.control = cfg.Control
	return c
}

// sourcesOf returns the source tasks.
func sourcesOf(tasks []*task) []*task {
	var out []*task
	for _, t := range tasks {
		if t.source != nil {
			out = append(out, t)
		}
	}
	return out
}

// listenersOf returns what in tasks must hear of completed checkpoints:
// two-phase-commit sinks and sources, keyed operators.
func listenersOf(tasks []*task) []completeListener {
	var out []completeListener
	for _, t := range tasks {
		for _, n := range t.nodes {
			if l, ok := n.op.(completeListener); ok {
				out = append(out, l)
			} else if k, ok := n.op.(keyedOp); ok {
				out = append(out, k.keyedStateOf())
			}
		}
		if l, ok := t.source.(completeListener); ok {
			out = append(out, l)
		}
	}
	return out
}

// run is the coordinator loop. It returns nil when ctx ends, or an error
// that must fail the attempt (too many failed checkpoints, a deposed
// attempt, a sink that could not commit).
func (c *coordinator) run(ctx context.Context) error {
	if err := c.loadRetained(ctx); err != nil {
		return err
	}
	c.collectGarbage(ctx, true)
	c.lastEnd = c.clock.Now()
	next := c.clock.Now().Add(c.set.interval)
	timer := c.clock.NewTimer(c.set.interval)
	defer timer.Stop()
	var reqs chan savepointRequest
	if c.control != nil {
		reqs = c.control.reqs
	}
	defer c.failSavepoints(ErrNotRunning)
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-reqs:
			c.triggerSavepoint(ctx, r)
		case a := <-c.acks:
			if err := c.onAck(ctx, a); err != nil {
				return err
			}
		case keys := <-c.finished:
			c.done = append(c.done, keys...)
			for _, k := range keys {
				delete(c.expected, k)
			}
			// Pending checkpoints may now have every ack they still need.
			for _, id := range c.pendingIDs() {
				if err := c.maybeComplete(ctx, c.pending[id]); err != nil {
					return err
				}
			}
		case <-timer.Chan():
		}
		now := c.clock.Now()
		for _, id := range c.pendingIDs() {
			if p := c.pending[id]; !now.Before(p.deadline) {
				if err := c.abort(ctx, p, fmt.Sprintf("timed out after %s", c.set.timeout)); err != nil {
					return err
				}
			}
		}
		if !now.Before(next) {
			if len(c.pending) < c.set.maxConcurrent && !now.Before(c.lastEnd.Add(c.set.minPause)) {
				c.trigger(ctx, now, nil)
				next = now.Add(c.set.interval)
			} else {
				next = now.Add(min(c.set.interval, 10*time.Millisecond))
			}
		}
		if len(c.pending) == 0 && c.gcShared {
			c.collectGarbage(ctx, false)
		}
		wait := next.Sub(c.clock.Now())
		for _, p := range c.pending {
			wait = min(wait, p.deadline.Sub(c.clock.Now()))
		}
		timer.Reset(max(wait, time.Millisecond))
	}
}

func (c *coordinator) pendingIDs() []int64 {
	ids := make([]int64, 0, len(c.pending))
	for id := range c.pending {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// triggerSavepoint starts a savepoint now, whatever the checkpoints in
// progress.
func (c *coordinator) triggerSavepoint(ctx context.Context, r savepointRequest) {
	if !c.trigger(ctx, c.clock.Now(), &r) {
		r.done <- savepointResult{err: errors.New("runtime: every source has finished: nothing to take a savepoint of")}
	}
}

// failSavepoints answers every pending savepoint request with err.
func (c *coordinator) failSavepoints(err error) {
	for _, p := range c.pending {
		if p.sp != nil {
			p.sp.done <- savepointResult{err: err}
			p.sp = nil
		}
	}
}

// trigger starts checkpoint (or savepoint) nextID: every running source
// task injects a barrier after its current position. It reports whether
// it triggered.
func (c *coordinator) trigger(ctx context.Context, now time.Time, sp *savepointRequest) bool {
	live := 0
	for _, t := range c.sources {
		if c.expected[subtaskKey{t.info.VertexID, t.info.Subtask}] {
			live++
		}
	}
	for _, r := range c.remote {
		live += c.liveOf(r.sources)
	}
	if live == 0 {
		return false // every source finished: nothing to checkpoint any more
	}
	id := c.nextID
	c.nextID++
	p := &pendingCheckpoint{id: id, sp: sp, trigger: now, deadline: now.Add(c.set.timeout), snaps: map[subtaskKey]*clusterv1.OperatorSnapshot{}}
	c.pending[id] = p
	c.record(ctx, p, sabotv1.CheckpointStatus_CHECKPOINT_STATUS_IN_PROGRESS, "", 0, 0)
	tr := trigger{barrier: barrier{id: id, unaligned: c.set.unaligned}}
	if sp != nil {
		tr.unaligned = false // savepoints are aligned: no channel state
		tr.savepoint, tr.stop, tr.drain = sp.name, sp.stop, sp.drain
	}
	for _, t := range c.sources {
		if !c.expected[subtaskKey{t.info.VertexID, t.info.Subtask}] {
			continue
		}
		select {
		case t.triggers <- tr:
		default:
			// The source has not taken earlier triggers (it is blocked
			// downstream): this one would only pile up.
			_ = c.abort(ctx, p, fmt.Sprintf("source %s[%d] has %d untaken triggers", t.info.VertexID, t.info.Subtask, cap(t.triggers)))
			return true
		}
	}
	for _, r := range c.remote {
		if c.liveOf(r.sources) == 0 {
			continue
		}
		req := &clusterv1.TriggerRequest{Attempt: c.ref(), CheckpointId: id, Unaligned: tr.unaligned,
			Savepoint: tr.savepoint, Stop: tr.stop, Drain: tr.drain}
		cl := c.co.peer(r.addr)
		err := retryCall(ctx, func(ctx context.Context) error { _, err := cl.Trigger(ctx, connect.NewRequest(req)); return err })
		if err != nil {
			// A share that does not run the attempt yet (still starting
			// or restoring) is no failure of the checkpoint (Flink: not
			// all required tasks running), so it is not counted.
			p.notReady = connect.CodeOf(err) == connect.CodeFailedPrecondition
			_ = c.abort(ctx, p, fmt.Sprintf("trigger sources at %s: %v", r.addr, err))
			return true
		}
	}
	return true
}

// liveOf counts the subtasks of keys that have not finished.
func (c *coordinator) liveOf(keys []subtaskKey) int {
	n := 0
	for _, k := range keys {
		if c.expected[k] {
			n++
		}
	}
	return n
}

func (c *coordinator) ref() *clusterv1.AttemptRef {
	return &clusterv1.AttemptRef{JobId: c.jobID, Attempt: c.attempt}
}

// notifyComplete tells the listeners here, then the other shares, that
// checkpoint id completed: sinks commit.
func (c *coordinator) notifyComplete(ctx context.Context, id int64, stopping bool) error {
	for _, l := range c.listeners {
		if err := l.checkpointComplete(ctx, id); err != nil {
			return fmt.Errorf("checkpoint %d completed, but a sink could not commit its output: %w", id, err)
		}
	}
	for _, r := range c.remote {
		if c.liveOf(r.subtasks) == 0 {
			continue // every subtask there finished (and committed at its end)
		}
		cl := c.co.peer(r.addr)
		req := &clusterv1.CompleteRequest{Attempt: c.ref(), CheckpointId: id, Stopping: stopping}
		err := retryCall(ctx, func(ctx context.Context) error { _, err := cl.Complete(ctx, connect.NewRequest(req)); return err })
		if connect.CodeOf(err) == connect.CodeFailedPrecondition {
			// The share is gone: finished, or failed — then the restart
			// from this checkpoint commits what its sinks pre-committed.
			c.logger.Warn("checkpoint completed; a share no longer runs the attempt", "job", c.jobID, "checkpoint", id, "share", r.addr, "err", err)
			continue
		}
		if err != nil {
			return fmt.Errorf("checkpoint %d completed, but the share at %s could not commit its output: %w", id, r.addr, err)
		}
	}
	return nil
}

// stopRemote ends the other shares after a stop-with-savepoint.
func (c *coordinator) stopRemote(ctx context.Context) {
	for _, r := range c.remote {
		cl := c.co.peer(r.addr)
		req := &clusterv1.StopRequest{Attempt: c.ref()}
		if err := retryCall(ctx, func(ctx context.Context) error { _, err := cl.Stop(ctx, connect.NewRequest(req)); return err }); err != nil {
			c.logger.Warn("stop share after savepoint", "job", c.jobID, "share", r.addr, "err", err)
		}
	}
}

// onAck records a subtask's snapshot.
func (c *coordinator) onAck(ctx context.Context, a ack) error {
	p := c.pending[a.id]
	if p == nil {
		// Aborted or subsumed meanwhile: whatever it uploaded under the
		// checkpoint's prefix goes (shared files at the next collection).
		c.deletePrefix(ctx, blob.CheckpointPrefix(c.jobID, a.id))
		c.gcShared = true
		return nil
	}
	if a.err != nil {
		return c.abort(ctx, p, fmt.Sprintf("%s: %v", a.key, a.err))
	}
	p.snaps[a.key] = a.snap
	p.infos = append(p.infos, &sabotv1.OperatorCheckpointInfo{
		VertexId: a.key.vertex, Subtask: int32(a.key.subtask),
		SizeBytes: a.snap.GetStateSize(), IncrementalSizeBytes: a.snap.GetIncrementalSize(),
		DurationMs: a.duration.Milliseconds(),
	})
	return c.maybeComplete(ctx, p)
}

// maybeComplete completes p once every expected subtask acked.
func (c *coordinator) maybeComplete(ctx context.Context, p *pendingCheckpoint) error {
	for k := range c.expected {
		if _, ok := p.snaps[k]; !ok {
			return nil
		}
	}
	return c.complete(ctx, p)
}

// complete writes _metadata, commits the pointer, notifies listeners,
// subsumes older pending checkpoints and drops checkpoints no longer
// retained.
func (c *coordinator) complete(ctx context.Context, p *pendingCheckpoint) error {
	md := &clusterv1.CheckpointMetadata{
		JobId: c.jobID, CheckpointId: p.id, Attempt: c.attempt, Savepoint: p.sp != nil,
		TriggerTime: timestamppb.New(p.trigger), CompletedAt: timestamppb.New(c.clock.Now()),
		MaxParallelism: int32(c.graph.MaxParallelism), StateBackend: c.graph.Spec.GetStateBackend(),
	}
	for _, s := range p.snaps {
		md.Operators = append(md.Operators, s)
	}
	// Subtasks that finished before this checkpoint keep the state of their
	// last snapshot, if they had one (FLIP-147: a finished task's state is
	// final).
	if len(c.retained) > 0 && p.sp == nil {
		for _, s := range c.retained[len(c.retained)-1].GetOperators() {
			k := subtaskKey{s.GetVertexId(), int(s.GetSubtask())}
			if _, ok := p.snaps[k]; !ok && slices.Contains(c.done, k) {
				md.Operators = append(md.Operators, s)
			}
		}
	}
	slices.SortFunc(md.Operators, func(a, b *clusterv1.OperatorSnapshot) int {
		return strings.Compare(subtaskKey{a.GetVertexId(), int(a.GetSubtask())}.String(), subtaskKey{b.GetVertexId(), int(b.GetSubtask())}.String())
	})
	key := blob.CheckpointMetadataKey(c.jobID, p.id)
	if p.sp != nil {
		key = blob.SavepointMetadataKey(p.sp.name)
	}
	raw, err := proto.Marshal(md)
	if err != nil {
		return c.abort(ctx, p, "encode metadata: "+err.Error())
	}
	// The write is not cut short by the attempt's end: a write cancelled
	// midway could leave the object behind after the cleanup looked for it.
	// Once it is written, a failed commit removes it.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	err = c.opts.Store.Put(wctx, key, strings.NewReader(string(raw)), int64(len(raw)))
	cancel()
	if err != nil {
		c.removeMetadata(ctx, key)
		return c.abort(ctx, p, "write metadata: "+err.Error())
	}
	// A savepoint is the latest recovery point too, but it is the user's:
	// it is not among the retained checkpoints garbage collection manages.
	retained := slices.Clone(c.retained)
	if p.sp == nil {
		retained = append(retained, md)
	}
	if n := len(retained); n > c.set.retained {
		retained = retained[n-c.set.retained:]
	}
	ids := make([]int64, len(retained))
	for i, r := range retained {
		ids[i] = r.GetCheckpointId()
	}
	if err := c.opts.Committer.Commit(ctx, md, key, ids); err != nil {
		// Never complete: its _metadata goes now (abort and the exit
		// cleanup only know the objects named for this attempt).
		c.removeMetadata(ctx, key)
		if errors.Is(err, ErrDeposed) {
			return err
		}
		return c.abort(ctx, p, "commit: "+err.Error())
	}
	var dropped []*clusterv1.CheckpointMetadata // no longer retained
	if p.sp == nil {
		dropped = c.retained[:len(c.retained)+1-len(retained)]
	}
	c.retained = retained
	delete(c.pending, p.id)
	c.failures = 0
	c.lastEnd = c.clock.Now()
	var size, inc int64
	for _, s := range md.Operators {
		size += s.GetStateSize()
		inc += s.GetIncrementalSize()
	}
	c.record(ctx, p, sabotv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED, "", size, inc)
	c.logger.Debug("checkpoint completed", "job", c.jobID, "checkpoint", p.id,
		"duration", c.clock.Since(p.trigger), "size", size, "incremental", inc)
	// Checkpoints no longer retained go now, before anything below can
	// end the attempt.
	for _, d := range dropped {
		c.deletePrefix(ctx, blob.CheckpointPrefix(c.jobID, d.GetCheckpointId()))
	}
	if len(dropped) > 0 {
		c.gcShared = true
	}
	stopping := p.sp != nil && p.sp.stop
	if err := c.notifyComplete(ctx, p.id, stopping); err != nil {
		if p.sp != nil {
			// The savepoint is the job's recovery point (the restart
			// commits its transactions) but not done: say so.
			p.sp.done <- savepointResult{err: err}
			p.sp = nil
		}
		return err
	}
	if p.sp != nil {
		if p.sp.stop && c.stop != nil {
			// Every sink committed: from here on, a task failing is the
			// teardown (shares stop one after the other).
			c.stopping()
		}
		p.sp.done <- savepointResult{location: key}
		if p.sp.stop && c.stop != nil {
			c.stopRemote(ctx)
			c.stop()
		}
		p.sp = nil
	}
	// Older pending checkpoints are subsumed.
	for _, id := range c.pendingIDs() {
		if id < p.id {
			old := c.pending[id]
			delete(c.pending, id)
			c.record(ctx, old, sabotv1.CheckpointStatus_CHECKPOINT_STATUS_FAILED, "subsumed by checkpoint "+strconv.FormatInt(p.id, 10), 0, 0)
			c.deletePrefix(ctx, blob.CheckpointPrefix(c.jobID, id))
		}
	}
	return nil
}

// abort gives up checkpoint p: its objects are deleted (shared files at the
// next collection) and, past the tolerable number of consecutive failures,
// the attempt fails.
func (c *coordinator) abort(ctx context.Context, p *pendingCheckpoint, reason string) error {
	if ctx.Err() != nil {
		// The attempt is ending (a bounded job finished, or it was
		// cancelled): not a failed checkpoint. What it uploaded goes with
		// the attempt's cleanup.
		return nil
	}
	delete(c.pending, p.id)
	if p.sp != nil {
		p.sp.done <- savepointResult{err: fmt.Errorf("savepoint %s failed: %s", p.sp.name, reason)}
		c.deletePrefix(ctx, blob.SavepointPrefix(p.sp.name))
		stop := p.sp.stop
		p.sp = nil
		c.record(ctx, p, sabotv1.CheckpointStatus_CHECKPOINT_STATUS_FAILED, reason, 0, 0)
		if stop {
			// Its sources stopped at the barrier: the attempt restarts
			// from its latest checkpoint.
			return fmt.Errorf("stop with savepoint failed (%s); the job restarts from its latest checkpoint", reason)
		}
		// Savepoint failures do not count against tolerable_failures.
		return nil
	}
	c.lastEnd = c.clock.Now()
	if !p.notReady {
		c.failures++
	}
	c.logger.Warn("checkpoint aborted", "job", c.jobID, "checkpoint", p.id, "reason", reason)
	c.record(ctx, p, sabotv1.CheckpointStatus_CHECKPOINT_STATUS_FAILED, reason, 0, 0)
	c.deletePrefix(ctx, blob.CheckpointPrefix(c.jobID, p.id))
	c.gcShared = true
	if c.failures > c.set.tolerable {
		return fmt.Errorf("checkpoint %d failed (%s): %d consecutive failed checkpoints exceed tolerable_failures %d",
			p.id, reason, c.failures, c.set.tolerable)
	}
	return nil
}

func (c *coordinator) record(ctx context.Context, p *pendingCheckpoint, st sabotv1.CheckpointStatus, reason string, size, inc int64) {
	info := &sabotv1.CheckpointInfo{
		Id: p.id, Status: st, TriggerTime: timestamppb.New(p.trigger), FailureReason: reason,
		Attempt: c.attempt, SizeBytes: size, IncrementalSizeBytes: inc,
	}
	if st != sabotv1.CheckpointStatus_CHECKPOINT_STATUS_IN_PROGRESS {
		info.DurationMs = c.clock.Since(p.trigger).Milliseconds()
		info.Operators = p.infos
	}
	if p.sp != nil {
		info.Savepoint = true
	}
	if st == sabotv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED {
		info.Location = blob.CheckpointMetadataKey(c.jobID, p.id)
		if p.sp != nil {
			info.Location = blob.SavepointMetadataKey(p.sp.name)
		}
	}
	c.opts.Committer.Record(ctx, info)
}

// loadRetained reads the _metadata of the retained checkpoints, which
// garbage collection must keep.
func (c *coordinator) loadRetained(ctx context.Context) error {
	for _, id := range c.opts.Retained {
		if r := c.opts.Restore; r != nil && !r.GetSavepoint() && r.GetCheckpointId() == id {
			c.retained = append(c.retained, r)
			continue
		}
		md, err := ReadMetadata(ctx, c.opts.Store, blob.CheckpointMetadataKey(c.jobID, id))
		if err != nil {
			c.logger.Warn("retained checkpoint unreadable; dropping it", "job", c.jobID, "checkpoint", id, "err", err)
			continue
		}
		c.retained = append(c.retained, md)
	}
	return nil
}

// ReadMetadata reads and decodes a _metadata object
// (cluster.ReadCheckpointMetadata).
func ReadMetadata(ctx context.Context, store blob.Store, key string) (*clusterv1.CheckpointMetadata, error) {
	return cluster.ReadCheckpointMetadata(ctx, store, key)
}

// collectGarbage deletes what no retained checkpoint references: the
// job's checkpoint directories of other ids (aborted ones, and those a
// crashed attempt left) when all is set (at start), and shared files.
// Only called with no checkpoint pending, so nothing being uploaded for a
// live checkpoint is touched.
func (c *coordinator) collectGarbage(ctx context.Context, all bool) {
	c.gcShared = false
	keep := c.sharedInUse()
	keepChk := map[int64]bool{}
	for _, md := range c.retained {
		keepChk[md.GetCheckpointId()] = true
	}
	var del []string
	for info, err := range c.opts.Store.List(ctx, blob.JobPrefix(c.jobID)) {
		if err != nil {
			c.logger.Warn("checkpoint garbage collection: list", "job", c.jobID, "err", err)
			return
		}
		if strings.HasPrefix(info.Key, blob.SharedPrefix(c.jobID)) {
			if !keep[info.Key] {
				del = append(del, info.Key)
			}
			continue
		}
		if _, n, _, ok := blob.ParseCheckpointKey(info.Key); ok && all && !keepChk[n] {
			del = append(del, info.Key)
		}
	}
	c.deleteKeys(ctx, del)
}

// sharedInUse is the set of shared files the retained checkpoints
// reference.
func (c *coordinator) sharedInUse() map[string]bool {
	keep := map[string]bool{}
	for _, md := range c.retained {
		for _, s := range md.GetOperators() {
			for _, f := range s.GetKeyed().GetPebble().GetFiles() {
				keep[f.GetKey()] = true
			}
		}
	}
	return keep
}

// deletePrefix deletes every object under prefix. It runs to the end even
// if ctx ends meanwhile (bounded by cleanupTimeout): a checkpoint dropped
// just before the attempt stops must not be left behind.
func (c *coordinator) deletePrefix(ctx context.Context, prefix string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var del []string
	for info, err := range c.opts.Store.List(ctx, prefix) {
		if err != nil {
			c.logger.Warn("checkpoint cleanup: list", "prefix", prefix, "err", err)
			return
		}
		del = append(del, info.Key)
	}
	c.deleteKeys(ctx, del)
}

// removeMetadata deletes the _metadata at key that this attempt wrote for
// a checkpoint whose commit failed, unless another attempt's is there
// now (checkpoint ids restart from the restored one, so a newer attempt
// may take the same id; it gets that far only well after this one was
// deposed, and the object says which attempt wrote it).
func (c *coordinator) removeMetadata(ctx context.Context, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	md, err := ReadMetadata(ctx, c.opts.Store, key)
	if err != nil || md.GetAttempt() != c.attempt {
		return
	}
	if err := c.opts.Store.Delete(ctx, key); err != nil {
		c.logger.Warn("checkpoint cleanup: delete metadata", "key", key, "err", err)
	}
}

// cleanupTimeout bounds one cleanup of checkpoint objects.
const cleanupTimeout = 30 * time.Second

func (c *coordinator) deleteKeys(ctx context.Context, keys []string) {
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := c.opts.Store.Delete(ctx, keys[:n]...); err != nil {
			c.logger.Warn("checkpoint cleanup: delete", "job", c.jobID, "err", err)
		}
		keys = keys[n:]
	}
}

// cleanupOnExit deletes what this attempt uploaded for checkpoints that
// were still pending when it stopped (cancelled, failed): their objects
// and the shared files no retained checkpoint references. Only objects
// named for this attempt (…-a<attempt>…) are touched, so a newer attempt
// running meanwhile keeps its own. Called after every upload returned.
func (c *coordinator) cleanupOnExit(ctx context.Context) {
	mine := regexp.MustCompile(`-[0-9]+-a` + strconv.FormatInt(c.attempt, 10) + `($|[-/])`)
	keep := c.sharedInUse()
	var del []string
	collect := func(prefix string, shared bool) {
		for info, err := range c.opts.Store.List(ctx, prefix) {
			if err != nil {
				c.logger.Warn("checkpoint cleanup: list", "prefix", prefix, "err", err)
				return
			}
			rest := strings.TrimPrefix(info.Key, prefix)
			if mine.MatchString(rest) && (!shared || !keep[info.Key]) {
				del = append(del, info.Key)
			}
		}
	}
	for id, p := range c.pending {
		if p.sp != nil {
			collect(blob.SavepointPrefix(p.sp.name), false)
			continue
		}
		collect(blob.CheckpointPrefix(c.jobID, id), false)
	}
	collect(blob.SharedPrefix(c.jobID), true)
	c.deleteKeys(ctx, del)
}
