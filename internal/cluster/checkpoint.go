package cluster

import (
	"context"
	"fmt"
	"io"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/blob"
)

// CheckpointsPrefix holds, per job, the pointer to its latest completed
// checkpoint and its checkpoint history.
const CheckpointsPrefix = Root + "checkpoints/"

// HistoryLimit is how many checkpoints a job's history keeps (the newest).
const HistoryLimit = 50

// LatestCheckpointKey is the key of a job's LatestCheckpoint.
func LatestCheckpointKey(jobID string) string { return CheckpointsPrefix + jobID + "/latest" }

// CheckpointHistoryKey is the key of a job's CheckpointHistory.
func CheckpointHistoryKey(jobID string) string { return CheckpointsPrefix + jobID + "/history" }

// NewLatestCheckpoint allocates a pointer for Get.
func NewLatestCheckpoint() *clusterv1.LatestCheckpoint { return new(clusterv1.LatestCheckpoint) }

// NewCheckpointHistory allocates a history for Get.
func NewCheckpointHistory() *clusterv1.CheckpointHistory { return new(clusterv1.CheckpointHistory) }

// LatestCheckpoint reads a job's latest completed checkpoint. With none it
// returns a nil pointer and revision 0 (not an error).
func LatestCheckpoint(ctx context.Context, kv clientv3.KV, jobID string) (*clusterv1.LatestCheckpoint, int64, error) {
	v, err := Get(ctx, kv, LatestCheckpointKey(jobID), NewLatestCheckpoint)
	if IsNotFound(err) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	return v.Value, v.ModRevision, nil
}

// CommitCheckpoint makes next the job's latest completed checkpoint if the
// pointer still has mod revision prevRev (0: no pointer yet) and every cond
// holds (the writer's fence: its assignment is unchanged). It returns the
// pointer's new mod revision, or an error wrapping ErrPrecondition when a
// comparison failed: someone else committed, or the writer was deposed.
func CommitCheckpoint(ctx context.Context, kv clientv3.KV, next *clusterv1.LatestCheckpoint, prevRev int64, conds ...clientv3.Cmp) (int64, error) {
	key := LatestCheckpointKey(next.GetJobId())
	cmps := append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", prevRev)}, conds...)
	resp, err := kv.Txn(ctx).If(cmps...).Then(clientv3.OpPut(key, Marshal(next))).Commit()
	if err != nil {
		return 0, fmt.Errorf("cluster: commit checkpoint %d of job %s: %w", next.GetCheckpointId(), next.GetJobId(), err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("cluster: commit checkpoint %d of job %s: %w", next.GetCheckpointId(), next.GetJobId(), ErrPrecondition)
	}
	return resp.Header.Revision, nil
}

// RecordCheckpoint adds info to the job's history, replacing an entry with
// the same id (a checkpoint is recorded when triggered and again when it
// completes or fails), and keeps the newest HistoryLimit. conds fence the
// writer as for CommitCheckpoint.
func RecordCheckpoint(ctx context.Context, kv clientv3.KV, jobID string, info *sabotv1.CheckpointInfo, conds ...clientv3.Cmp) error {
	err := updateRecord(ctx, kv, CheckpointHistoryKey(jobID), NewCheckpointHistory, func(h *clusterv1.CheckpointHistory) {
		replaced := false
		for i, c := range h.GetCheckpoints() {
			if c.GetId() == info.GetId() && c.GetSavepoint() == info.GetSavepoint() {
				h.Checkpoints[i], replaced = info, true
			}
		}
		if !replaced {
			h.Checkpoints = append(h.Checkpoints, info)
		}
		if n := len(h.Checkpoints); n > HistoryLimit {
			h.Checkpoints = h.Checkpoints[n-HistoryLimit:]
		}
	}, conds)
	if err != nil {
		return fmt.Errorf("cluster: record checkpoint %d of job %s: %w", info.GetId(), jobID, err)
	}
	return nil
}

// SavepointsPrefix holds savepoint requests, per job.
const SavepointsPrefix = Root + "savepoints/"

// JobSavepointsPrefix is the prefix of one job's savepoint requests.
func JobSavepointsPrefix(jobID string) string { return SavepointsPrefix + jobID + "/" }

// SavepointKey is the key of one savepoint request.
func SavepointKey(jobID, requestID string) string { return JobSavepointsPrefix(jobID) + requestID }

// NewSavepointRequest allocates a savepoint request for Get and List.
func NewSavepointRequest() *sabotv1.SavepointRequest { return new(sabotv1.SavepointRequest) }

// ReadCheckpointMetadata reads and decodes the _metadata object of a
// checkpoint or savepoint at key. Reading to the end verifies the
// object's checksum (blob.ErrCorrupt).
func ReadCheckpointMetadata(ctx context.Context, store blob.Store, key string) (*clusterv1.CheckpointMetadata, error) {
	rc, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rc.Close() }()
	raw, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	md := &clusterv1.CheckpointMetadata{}
	if err := proto.Unmarshal(raw, md); err != nil {
		return nil, fmt.Errorf("decode %s: %w", key, err)
	}
	return md, nil
}
