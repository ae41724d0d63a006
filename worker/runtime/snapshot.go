package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/state"
)

// uploadFunc is the asynchronous part of a snapshot: it runs on an upload
// goroutine while the task goes on, and returns the subtask's snapshot
// (the runtime fills in vertex, subtask and key groups).
type uploadFunc func(ctx context.Context) (*clusterv1.OperatorSnapshot, error)

// snapshotter is an operator or source with state to checkpoint.
type snapshotter interface {
	// snapshotState runs in the task goroutine when the barrier of
	// checkpoint id passes: it captures what the checkpoint must contain
	// (a consistent view, a source's position, a sink's pre-committed
	// transaction) and returns the upload, or nil if there is nothing to
	// upload beyond what the synchronous part put in the snapshot it
	// returns.
	snapshotState(ctx context.Context, id int64) (*clusterv1.OperatorSnapshot, uploadFunc, error)
}

// savepointer is a snapshotter with a different savepoint format: keyed
// state is written in the canonical format, self-contained, whatever the
// backend.
type savepointer interface {
	savepointState(ctx context.Context, id int64, name string) (*clusterv1.OperatorSnapshot, uploadFunc, error)
}

// barrier is what a checkpoint barrier says.
type barrier struct {
	id        int64
	savepoint string // the savepoint's name; "" for a checkpoint
	unaligned bool   // overtakes buffered elements
}

func (b barrier) element() Element {
	el := BarrierElement(b.id)
	el.Savepoint, el.Unaligned = b.savepoint, b.unaligned
	return el
}

// keyedOp is an operator whose state lives in a keyedState.
type keyedOp interface{ keyedStateOf() *keyedState }

// checkpointing is a job attempt's checkpoint machinery as its tasks see
// it: where acks go, the upload goroutines, the restored state.
type checkpointing struct {
	jobID    string
	attempt  int64
	store    blob.Store
	atLeast  bool // at-least-once: barriers are not aligned
	acks     chan<- ack
	finished chan<- []subtaskKey
	uploads  chan func(context.Context)
	restore  map[subtaskKey][]*clusterv1.OperatorSnapshot // by vertex: every snapshot of it, under key {vertex, -1}
	// restoreJob is the job that took the restored checkpoint or savepoint.
	restoreJob string
	// restoreSavepoint: what is restored is a savepoint.
	restoreSavepoint bool
	maxP             int
}

// uploadWorkers is how many snapshot uploads of one attempt run at once
// (each pebble upload also transfers several files in parallel).
const uploadWorkers = 2

// restoredOf returns the restored snapshots of vertex v: all of its
// subtasks' (state is redistributed by key group, and operator state by
// the operator).
func (c *checkpointing) restoredOf(vertex string) []*clusterv1.OperatorSnapshot {
	if c == nil {
		return nil
	}
	return c.restore[subtaskKey{vertex, -1}]
}

// submit queues an upload; it blocks while the queue is full (the task
// waits for uploads rather than piling up snapshots).
func (c *checkpointing) submit(ctx context.Context, fn func(context.Context)) error {
	select {
	case c.uploads <- fn:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *checkpointing) sendAck(ctx context.Context, a ack) error {
	select {
	case c.acks <- a:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// snapshot takes node n's part of checkpoint id and acks it (after the
// upload, asynchronously, if there is one).
func (t *task) snapshot(ctx context.Context, n *node, b barrier) error {
	start := time.Now()
	snap, upload, err := t.take(ctx, n, b)
	return t.ack(ctx, n, b.id, start, snap, upload, err, nil)
}

// take runs the synchronous part of node n's snapshot.
func (t *task) take(ctx context.Context, n *node, b barrier) (*clusterv1.OperatorSnapshot, uploadFunc, error) {
	var s snapshotter
	if n.op == nil {
		s, _ = t.source.(snapshotter)
	} else {
		s, _ = n.op.(snapshotter)
		if k, ok := n.op.(keyedOp); ok && s == nil {
			s = k.keyedStateOf()
		}
	}
	if s == nil {
		return nil, nil, nil
	}
	if sp, ok := s.(savepointer); ok && b.savepoint != "" {
		return sp.savepointState(ctx, b.id, b.savepoint)
	}
	return s.snapshotState(ctx, b.id)
}

// ack sends node n's part of checkpoint id to the coordinator: at once,
// or after upload (and extra, an unaligned checkpoint's channel state) ran
// on an upload goroutine. A failed synchronous part (err) fails the
// checkpoint; the task goes on (Flink declines it).
func (t *task) ack(ctx context.Context, n *node, id int64, start time.Time, snap *clusterv1.OperatorSnapshot, upload uploadFunc, err error,
	extra func(ctx context.Context, s *clusterv1.OperatorSnapshot) error) error {
	cp := t.cp
	key := subtaskKey{n.vertex.ID, t.info.Subtask}
	lo, hi := jobgraph.KeyGroupRange(cp.maxP, n.vertex.Parallelism, t.info.Subtask)
	fill := func(s *clusterv1.OperatorSnapshot) *clusterv1.OperatorSnapshot {
		if s == nil {
			s = &clusterv1.OperatorSnapshot{}
		}
		s.VertexId, s.Subtask, s.Parallelism = n.vertex.ID, int32(t.info.Subtask), int32(n.vertex.Parallelism)
		s.KeyGroupStart, s.KeyGroupEnd = int32(lo), int32(hi+1)
		return s
	}
	if err != nil {
		return cp.sendAck(ctx, ack{id: id, key: key, err: err})
	}
	if upload == nil && extra == nil {
		return cp.sendAck(ctx, ack{id: id, key: key, snap: fill(snap), duration: time.Since(start)})
	}
	return cp.submit(ctx, func(ctx context.Context) {
		up, err := snap, error(nil)
		if upload != nil {
			if up, err = upload(ctx); err == nil && snap != nil {
				// Merge the synchronous part (operator state) into the upload's.
				if up == nil {
					up = snap
				} else if up.OperatorState == nil {
					up.OperatorState = snap.GetOperatorState()
				}
			}
		}
		up = fill(up)
		if err == nil && extra != nil {
			err = extra(ctx, up)
		}
		_ = cp.sendAck(ctx, ack{id: id, key: key, snap: up, err: err, duration: time.Since(start)})
	})
}

// barrier snapshots node n for checkpoint id, then forwards the barrier
// to everything downstream of it.
func (t *task) barrier(ctx context.Context, n *node, b barrier) error {
	if err := t.snapshot(ctx, n, b); err != nil {
		return err
	}
	return t.forwardBarrier(ctx, &n.out, b)
}

func (t *task) forwardBarrier(ctx context.Context, f *fanout, b barrier) error {
	for _, c := range f.chained {
		if err := t.barrier(ctx, c, b); err != nil {
			return err
		}
	}
	for _, e := range f.edges {
		send := e.broadcast
		if b.unaligned {
			send = e.broadcastPriority
		}
		if err := send(ctx, b.element()); err != nil {
			return tagVertex(e.edge.From.ID, err)
		}
	}
	for _, s := range f.sides {
		if err := t.forwardBarrier(ctx, &s.fanout, b); err != nil {
			return err
		}
	}
	return nil
}

// alignment is an input task's barrier bookkeeping.
type alignment struct {
	id        int64  // checkpoint being aligned; 0: none
	savepoint string // of id
	last      int64  // last checkpoint snapshotted
	arrived   []bool // per channel, for id
}

// onBarrier handles the barrier of checkpoint id from channel ch. Exactly
// once: the channel is blocked until every open channel delivered the
// barrier, then the chain snapshots and forwards it. At least once:
// nothing is blocked; the snapshot is taken when the last barrier
// arrives, so records of channels whose barrier came earlier may be in
// it and replayed after a restore.
func (t *task) onBarrier(ctx context.Context, ch int, el Element, v *valve) error {
	a := &t.align
	id := el.Checkpoint
	if id <= a.last || (a.id != 0 && id < a.id) {
		return nil // of a checkpoint already taken or given up
	}
	if id > a.id {
		// A newer checkpoint: an older, unfinished alignment is given up
		// (its checkpoint can no longer complete).
		if a.id != 0 {
			t.unblock()
		}
		a.id, a.savepoint = id, el.Savepoint
		if a.arrived == nil {
			a.arrived = make([]bool, t.gate.NumChannels())
		}
		clear(a.arrived)
	}
	a.arrived[ch] = true
	// Savepoints are aligned even in at-least-once mode (as in Flink):
	// they must be consistent to restore anywhere.
	if !t.cp.atLeast || a.savepoint != "" {
		if b, ok := t.gate.(blocker); ok {
			b.Block(ch)
		}
	}
	return t.maybeAligned(ctx, v)
}

// maybeAligned takes the snapshot once every channel that is still open
// has delivered the barrier being aligned.
func (t *task) maybeAligned(ctx context.Context, v *valve) error {
	a := &t.align
	if a.id == 0 {
		return nil
	}
	for c, got := range a.arrived {
		if !got && !v.ended[c] {
			return nil
		}
	}
	b := barrier{id: a.id, savepoint: a.savepoint}
	a.id, a.last = 0, b.id
	t.unblock()
	return t.barrier(ctx, t.head, b)
}

func (t *task) unblock() {
	if b, ok := t.gate.(blocker); ok {
		b.UnblockAll()
	}
}

// trigger is what the coordinator asks a source task to inject.
type trigger struct {
	barrier
	stop  bool // stop after the barrier (stop with savepoint)
	drain bool // emit the maximum watermark before it
}

// sourceCheckpoint injects the barrier of tr at the source's current
// position. With stop, the source emits nothing more: the task waits for
// the coordinator to end the attempt once the savepoint is complete.
func (t *task) sourceCheckpoint(ctx context.Context, tr trigger) error {
	if tr.drain {
		if err := t.head.out.EmitIdle(ctx, false); err != nil {
			return err
		}
		if err := t.head.out.EmitWatermark(ctx, MaxWatermark); err != nil {
			return err
		}
	}
	if err := t.barrier(ctx, t.head, tr.barrier); err != nil {
		return err
	}
	if tr.stop {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

// keyedState snapshots: the heap backend is copied synchronously into the
// canonical format and uploaded as one object; the pebble backend takes a
// pebble checkpoint (hard links) and uploads the SST files no earlier
// completed checkpoint of the same DB holds, under the job's shared
// prefix, plus its small private files.

// snapshotState implements snapshotter.
func (k *keyedState) snapshotState(ctx context.Context, id int64) (*clusterv1.OperatorSnapshot, uploadFunc, error) {
	if k.cp == nil || k.backend == nil {
		return nil, nil, errors.New("runtime: keyed state is not open")
	}
	name := fmt.Sprintf("%s-%d-a%d", pathPart(k.operatorID, "vertex"), k.subtask, k.cp.attempt)
	r := k.cfg.KeyGroups
	if p, ok := k.backend.(*state.Pebble); ok {
		dir := filepath.Join(k.dir+".chk", strconv.FormatInt(id, 10))
		if err := os.MkdirAll(filepath.Dir(dir), 0o750); err != nil {
			return nil, nil, err
		}
		ps, err := p.TakeSnapshot(dir)
		if err != nil {
			return nil, nil, err
		}
		reuse := k.reuseFiles()
		return nil, func(ctx context.Context) (*clusterv1.OperatorSnapshot, error) {
			defer func() { _ = ps.Release() }()
			private := blob.CheckpointKey(k.cp.jobID, id, name) + "/"
			h, uploaded, err := ps.Upload(ctx, k.cp.store, private, func(f string) string {
				return blob.SharedKey(k.cp.jobID, name+"-"+k.instance+"/"+f)
			}, reuse)
			if err != nil {
				return nil, err
			}
			k.mu.Lock()
			k.mu.uploaded[id] = h
			k.mu.Unlock()
			var size int64
			for _, f := range h.GetFiles() {
				size += f.GetSize()
			}
			return &clusterv1.OperatorSnapshot{
				Keyed:     &clusterv1.KeyedStateHandle{Kind: &clusterv1.KeyedStateHandle_Pebble{Pebble: h}},
				StateSize: size, IncrementalSize: uploaded,
			}, nil
		}, nil
	}
	fs, err := state.TakeFullSnapshot(k.backend, r)
	if err != nil {
		return nil, nil, err
	}
	return nil, func(ctx context.Context) (*clusterv1.OperatorSnapshot, error) {
		defer func() { _ = fs.Release() }()
		h, err := fs.Upload(ctx, k.cp.store, blob.CheckpointKey(k.cp.jobID, id, name))
		if err != nil {
			return nil, err
		}
		return &clusterv1.OperatorSnapshot{
			Keyed:     &clusterv1.KeyedStateHandle{Kind: &clusterv1.KeyedStateHandle_Full{Full: h}},
			StateSize: h.GetSize(), IncrementalSize: h.GetSize(),
		}, nil
	}, nil
}

// savepointState implements savepointer: the canonical format on either
// backend, under the savepoint's own directory.
func (k *keyedState) savepointState(ctx context.Context, id int64, sp string) (*clusterv1.OperatorSnapshot, uploadFunc, error) {
	if k.cp == nil || k.backend == nil {
		return nil, nil, errors.New("runtime: keyed state is not open")
	}
	name := fmt.Sprintf("%s-%d", pathPart(k.operatorID, "vertex"), k.subtask)
	fs, err := state.TakeFullSnapshot(k.backend, k.cfg.KeyGroups)
	if err != nil {
		return nil, nil, err
	}
	return nil, func(ctx context.Context) (*clusterv1.OperatorSnapshot, error) {
		defer func() { _ = fs.Release() }()
		h, err := fs.Upload(ctx, k.cp.store, blob.SavepointKey(sp, name))
		if err != nil {
			return nil, err
		}
		return &clusterv1.OperatorSnapshot{
			Keyed:     &clusterv1.KeyedStateHandle{Kind: &clusterv1.KeyedStateHandle_Full{Full: h}},
			StateSize: h.GetSize(), IncrementalSize: h.GetSize(),
		}, nil
	}, nil
}

// reuseFiles is a copy of the files later snapshots may reference instead
// of uploading.
func (k *keyedState) reuseFiles() map[string]*clusterv1.StateFile {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]*clusterv1.StateFile, len(k.mu.reuse))
	for n, f := range k.mu.reuse {
		out[n] = f
	}
	return out
}

// checkpointComplete implements completeListener: the files of checkpoint
// id become the ones later snapshots reuse (only files of a completed,
// hence retained, checkpoint are safe from garbage collection).
func (k *keyedState) checkpointComplete(_ context.Context, id int64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	h, ok := k.mu.uploaded[id]
	if !ok {
		return nil
	}
	k.mu.reuse = map[string]*clusterv1.StateFile{}
	for _, f := range h.GetFiles() {
		if f.GetShared() {
			k.mu.reuse[f.GetName()] = f
		}
	}
	for c := range k.mu.uploaded {
		if c <= id {
			delete(k.mu.uploaded, c)
		}
	}
	return nil
}

// restoreKeyed loads the restored snapshots of the operator that overlap
// its key groups into a fresh backend.
func (k *keyedState) restoreKeyed(ctx context.Context) error {
	var mine []*clusterv1.OperatorSnapshot
	for _, s := range k.cp.restoredOf(k.operatorID) {
		if s.GetKeyed() == nil {
			continue
		}
		lo, hi := uint16(s.GetKeyGroupStart()), uint16(s.GetKeyGroupEnd())
		if hi > k.cfg.KeyGroups.Start && lo < k.cfg.KeyGroups.End {
			mine = append(mine, s)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	if k.kind == sabotv1.StateBackend_STATE_BACKEND_PEBBLE && len(mine) == 1 && mine[0].GetKeyed().GetPebble() != nil {
		// The checkpointed DB's files, then cut away key groups outside
		// this subtask's range.
		h := mine[0].GetKeyed().GetPebble()
		if err := k.backend.Close(); err != nil {
			return err
		}
		k.backend = nil
		if err := os.RemoveAll(k.dir); err != nil {
			return err
		}
		if err := state.RestorePebble(ctx, k.cp.store, h, k.dir); err != nil {
			return err
		}
		b, err := state.OpenPebble(k.dir, k.cfg)
		if err != nil {
			return err
		}
		k.backend = b
		r := k.cfg.KeyGroups
		if r.Start > 0 {
			if err := b.DeleteKeyGroups(state.KeyGroupRange{Start: 0, End: r.Start}); err != nil {
				return err
			}
		}
		if r.End < state.MaxKeyGroups {
			if err := b.DeleteKeyGroups(state.KeyGroupRange{Start: r.End, End: state.MaxKeyGroups}); err != nil {
				return err
			}
		}
		k.mu.Lock()
		k.mu.reuse = map[string]*clusterv1.StateFile{}
		for _, f := range h.GetFiles() {
			if f.GetShared() {
				k.mu.reuse[f.GetName()] = f
			}
		}
		k.mu.Unlock()
		return nil
	}
	// Several handles (a changed parallelism) or another backend: copy
	// the entries of this subtask's key groups in.
	for i, s := range mine {
		if h := s.GetKeyed().GetPebble(); h != nil {
			tmp := filepath.Join(os.TempDir(), fmt.Sprintf("sabot-restore-%s-%d-%d-%s", pathPart(k.operatorID, "v"), k.subtask, i, k.instance))
			if k.dir != "" {
				tmp = k.dir + ".restore-" + strconv.Itoa(i)
			}
			if err := state.RestorePebbleInto(ctx, k.cp.store, h, tmp, k.backend); err != nil {
				return err
			}
			continue
		}
		r := state.KeyGroupRange{Start: uint16(s.GetKeyGroupStart()), End: uint16(s.GetKeyGroupEnd())}
		if err := state.RestoreFull(ctx, k.cp.store, s.GetKeyed().GetFull(), r, k.backend); err != nil {
			return err
		}
	}
	return nil
}

// newInstanceID names one pebble DB lineage's shared files.
func newInstanceID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// keyedCheckpointState is keyedState's checkpoint bookkeeping, shared
// between the task (snapshots) and the coordinator (completion).
type keyedCheckpointState struct {
	sync.Mutex
	uploaded map[int64]*clusterv1.PebbleStateHandle // by checkpoint, until complete
	reuse    map[string]*clusterv1.StateFile        // by file name
}

// startCheckpointing starts the coordinator and the upload goroutines of
// an attempt. They stop when the group's context ends (the tasks failed,
// were cancelled, or all returned and Wait cancelled it); a coordinator
// failure fails the group. The returned function waits for them.
func startCheckpointing(grp *taskGroup, coord *coordinator, cp *checkpointing) func() {
	var wg sync.WaitGroup
	ctx := grp.ctx
	wg.Add(uploadWorkers)
	if coord != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := coord.run(ctx); err != nil {
				grp.fail(err)
			}
		}()
	}
	for range uploadWorkers {
		go func() {
			defer wg.Done()
			for {
				select {
				case fn := <-cp.uploads:
					fn(ctx)
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	return func() {
		wg.Wait()
		// Nothing uploads any more: remove what this attempt wrote for
		// checkpoints that will never complete.
		if coord == nil {
			return // the coordinator's share cleans up for the attempt
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		coord.cleanupOnExit(cctx)
	}
}

// indexRestore indexes the restored snapshots by vertex and checks that
// every restored vertex still exists (unless allowed).
func (c *checkpointing) indexRestore(g *jobgraph.Graph, opts *CheckpointOptions) error {
	md := opts.Restore
	if md == nil {
		return nil
	}
	c.restoreJob, c.restoreSavepoint = md.GetJobId(), md.GetSavepoint()
	if md.GetMaxParallelism() != 0 && int(md.GetMaxParallelism()) != g.MaxParallelism {
		return fmt.Errorf("runtime: restore checkpoint %d: max_parallelism %d differs from the job's %d (key groups cannot be remapped)",
			md.GetCheckpointId(), md.GetMaxParallelism(), g.MaxParallelism)
	}
	for _, s := range md.GetOperators() {
		if g.Vertex(s.GetVertexId()) == nil {
			if opts.AllowNonRestoredState || !jobgraph.HasState(s) {
				continue
			}
			return fmt.Errorf("runtime: restore checkpoint %d: state of vertex %q, which the job no longer has (allow non-restored state to drop it)",
				md.GetCheckpointId(), s.GetVertexId())
		}
		k := subtaskKey{s.GetVertexId(), -1}
		c.restore[k] = append(c.restore[k], s)
	}
	return nil
}
