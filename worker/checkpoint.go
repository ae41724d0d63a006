package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/runtime"
)

// checkpoints prepares an attempt's checkpointing: the latest completed
// checkpoint to restore (read from etcd, its _metadata from the blob
// store) and a committer fenced by the attempt's assignment. Jobs without
// checkpointing get nil.
//
// A job deployed from a savepoint that cannot be used — missing,
// unreadable, or not fitting graph g (jobgraph.CheckRestore) — fails
// with an error marked runtime.Unrecoverable: every attempt would fail
// the same way, so the job fails instead of restarting in a loop. (The
// gateway refuses such deploys up front when it has the blob store.)
func (s *session) checkpoints(ctx context.Context, asg *clusterv1.Assignment, g *jobgraph.Graph, fence clientv3.Cmp) (*runtime.CheckpointOptions, error) {
	if asg.GetSpec().GetCheckpointing() == nil {
		return nil, nil
	}
	store := s.w.cfg.Blob
	if store == nil {
		return nil, errors.New("the job enables checkpointing but this worker has no blob store (start it with --blob-store)")
	}
	jobID := asg.GetJobId()
	latest, rev, err := cluster.LatestCheckpoint(ctx, s.w.cfg.Etcd, jobID)
	if err != nil {
		return nil, fmt.Errorf("read latest checkpoint: %w", err)
	}
	c := &committer{kv: s.w.cfg.Etcd, jobID: jobID, attempt: asg.GetAttempt(), fence: fence, rev: rev,
		logger: s.w.cfg.Logger.With("job", jobID)}
	opts := &runtime.CheckpointOptions{Store: store, Committer: c}
	if r := asg.GetSpec().GetRestore(); latest == nil && r != nil {
		// The first run of a job deployed from a savepoint.
		md, err := runtime.ReadMetadata(ctx, store, r.GetLocation())
		if err != nil {
			err = fmt.Errorf("read savepoint %s: %w", r.GetLocation(), err)
			if errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrCorrupt) ||
				errors.Is(err, blob.ErrInvalidKey) || errors.Is(err, proto.Error) {
				return nil, runtime.Unrecoverable(err)
			}
			return nil, err // the store may answer next time
		}
		if err := jobgraph.CheckRestore(g, md, r.GetLocation(), r.GetAllowNonRestoredState()); err != nil {
			return nil, runtime.Unrecoverable(err)
		}
		opts.Restore, opts.AllowNonRestoredState = md, r.GetAllowNonRestoredState()
		s.w.cfg.Logger.Info("restoring job from savepoint", "job", jobID, "attempt", asg.GetAttempt(), "savepoint", r.GetLocation())
	}
	if latest != nil {
		md, err := runtime.ReadMetadata(ctx, store, latest.GetMetadataKey())
		if err != nil {
			return nil, fmt.Errorf("read checkpoint %d: %w", latest.GetCheckpointId(), err)
		}
		opts.Restore, opts.Retained = md, latest.GetRetained()
		s.w.cfg.Logger.Info("restoring job from checkpoint", "job", jobID, "attempt", asg.GetAttempt(), "checkpoint", latest.GetCheckpointId())
	}
	return opts, nil
}

// committer commits an attempt's checkpoints to etcd: the pointer with a
// compare-and-swap on its previous revision and the attempt's fence.
type committer struct {
	kv      clientv3.KV
	jobID   string
	attempt int64
	fence   clientv3.Cmp
	rev     int64 // the pointer's mod revision as last seen; used by the coordinator goroutine only
	logger  *slog.Logger
}

// Commit implements runtime.CheckpointCommitter.
func (c *committer) Commit(ctx context.Context, md *clusterv1.CheckpointMetadata, key string, retained []int64) error {
	next := &clusterv1.LatestCheckpoint{
		JobId: c.jobID, CheckpointId: md.GetCheckpointId(), MetadataKey: key, Attempt: c.attempt,
		CompletedAt: timestamppb.Now(), Retained: retained,
	}
	rev, err := cluster.CommitCheckpoint(ctx, c.kv, next, c.rev, c.fence)
	if errors.Is(err, cluster.ErrPrecondition) {
		return fmt.Errorf("%w: %w", runtime.ErrDeposed, err)
	}
	if err != nil {
		// The transaction may have been applied although the call failed
		// (a cancelled context, a lost connection): the caller deletes
		// the metadata of a failed commit, so ask etcd what happened.
		vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		latest, lrev, lerr := cluster.LatestCheckpoint(vctx, c.kv, c.jobID)
		if lerr == nil && latest.GetMetadataKey() == key && latest.GetAttempt() == c.attempt {
			c.rev = lrev
			return nil
		}
		return err
	}
	c.rev = rev
	return nil
}

// Record implements runtime.CheckpointCommitter.
func (c *committer) Record(ctx context.Context, info *sabotv1.CheckpointInfo) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := cluster.RecordCheckpoint(rctx, c.kv, c.jobID, info, c.fence); err != nil && ctx.Err() == nil {
		c.logger.Warn("recording checkpoint history failed", "checkpoint", info.GetId(), "err", err)
	}
}

// serveSavepoints takes the savepoints requested of a job while this
// attempt runs it: it watches the job's savepoint requests, asks the
// runtime for each pending one and records the outcome (fenced by the
// attempt's assignment). It returns when ctx ends.
func (s *session) serveSavepoints(ctx context.Context, jobID string, control *runtime.Control, fence clientv3.Cmp) {
	cli := s.w.cfg.Etcd
	log := s.w.cfg.Logger.With("job", jobID)
	prefix := cluster.JobSavepointsPrefix(jobID)
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("reading savepoint requests failed", "err", err)
		}
		return
	}
	var pending []*sabotv1.SavepointRequest
	collect := func(value []byte) {
		sp := cluster.NewSavepointRequest()
		if err := proto.Unmarshal(value, sp); err != nil {
			log.Warn("ignoring undecodable savepoint request", "err", err)
			return
		}
		if sp.GetStatus() == sabotv1.SavepointStatus_SAVEPOINT_STATUS_PENDING {
			pending = append(pending, sp)
		}
	}
	for _, kv := range resp.Kvs {
		collect(kv.Value)
	}
	wch := cli.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	for {
		for len(pending) > 0 {
			sp := pending[0]
			pending = pending[1:]
			s.takeSavepoint(ctx, sp, control, fence, log)
		}
		select {
		case <-ctx.Done():
			return
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				return
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypePut {
					collect(ev.Kv.Value)
				}
			}
		}
	}
}

// takeSavepoint runs one savepoint request and records its outcome.
func (s *session) takeSavepoint(ctx context.Context, sp *sabotv1.SavepointRequest, control *runtime.Control, fence clientv3.Cmp, log *slog.Logger) {
	loc, err := control.Savepoint(ctx, sp.GetJobId()+"-"+sp.GetRequestId(), sp.GetStop(), sp.GetDrain())
	if ctx.Err() != nil && err != nil {
		return // the attempt ended; the next one sees the request pending
	}
	sp.CompletedAt = timestamppb.Now()
	if err != nil {
		sp.Status, sp.FailureReason = sabotv1.SavepointStatus_SAVEPOINT_STATUS_FAILED, err.Error()
		log.Warn("savepoint failed", "request", sp.GetRequestId(), "err", err)
	} else {
		sp.Status, sp.Location = sabotv1.SavepointStatus_SAVEPOINT_STATUS_COMPLETED, loc
		log.Info("savepoint completed", "request", sp.GetRequestId(), "location", loc)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	key := cluster.SavepointKey(sp.GetJobId(), sp.GetRequestId())
	if _, err := s.w.cfg.Etcd.Txn(wctx).If(fence).Then(clientv3.OpPut(key, cluster.Marshal(sp))).Commit(); err != nil {
		log.Warn("recording savepoint outcome failed", "request", sp.GetRequestId(), "err", err)
	}
}
