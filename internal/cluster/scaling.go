package cluster

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
)

// AutoscalerPrefix holds, per job, the autoscaler's recent decisions
// (a clusterv1.ScalingHistory under AutoscalerKey). The scheduler's
// autoscaler writes it, fenced by its leadership; the gateway reads it
// for GetAutoscaler.
const AutoscalerPrefix = Root + "autoscaler/"

// ScalingHistoryLimit is how many decisions a job's ScalingHistory keeps
// (the newest).
const ScalingHistoryLimit = 50

// AutoscalerKey is the key of a job's ScalingHistory.
func AutoscalerKey(jobID string) string { return AutoscalerPrefix + jobID }

// NewScalingHistory allocates a scaling history for Get.
func NewScalingHistory() *clusterv1.ScalingHistory { return new(clusterv1.ScalingHistory) }

// RecordScalingDecision puts d first in the job's ScalingHistory (newest
// first) and keeps the newest ScalingHistoryLimit. The write is a
// compare-and-swap on the history's mod revision, also conditioned on
// every fence comparison (the scheduler passes its leadership fence); a
// lost race is retried a bounded number of times, then the error wraps
// ErrConflict. When a fence comparison fails the error wraps
// ErrPrecondition and nothing is written: the caller was deposed.
func RecordScalingDecision(ctx context.Context, kv clientv3.KV, jobID string, d *sabotv1.ScalingDecision, fence ...clientv3.Cmp) error {
	if d == nil {
		// A nil element of a repeated field cannot be marshalled.
		return fmt.Errorf("cluster: record scaling decision of job %s: no decision", jobID)
	}
	err := updateRecord(ctx, kv, AutoscalerKey(jobID), NewScalingHistory, func(h *clusterv1.ScalingHistory) {
		n := min(len(h.GetDecisions())+1, ScalingHistoryLimit)
		out := make([]*sabotv1.ScalingDecision, 0, n)
		out = append(out, d)
		out = append(out, h.GetDecisions()[:n-1]...)
		h.Decisions = out
	}, fence)
	if err != nil {
		return fmt.Errorf("cluster: record scaling decision of job %s: %w", jobID, err)
	}
	return nil
}

// updateRecord applies fn to the record at key (a new, empty one when the
// key is absent) and writes the result if the record's mod revision is
// unchanged and every cond holds. A lost race is retried up to 8 times
// before ErrConflict; a failed cond (checked apart from the revision, so
// a deposed writer does not retry) is ErrPrecondition. fn runs once per
// attempt on a freshly read record.
//
// It is the read-modify-write of the history records (RecordCheckpoint,
// RecordScalingDecision).
func updateRecord[T proto.Message](ctx context.Context, kv clientv3.KV, key string, newT func() T, fn func(T), conds []clientv3.Cmp) error {
	const maxAttempts = 8
	for range maxAttempts {
		rec, rev := newT(), int64(0)
		cur, err := Get(ctx, kv, key, newT)
		switch {
		case IsNotFound(err):
		case err != nil:
			return err
		default:
			rec, rev = cur.Value, cur.ModRevision
		}
		fn(rec)
		cmps := append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}, conds...)
		resp, err := kv.Txn(ctx).If(cmps...).Then(clientv3.OpPut(key, Marshal(rec))).Commit()
		if err != nil {
			return err
		}
		if resp.Succeeded {
			return nil
		}
		if len(conds) > 0 {
			// Did the record change, or did our own condition fail? Only
			// the first is worth another attempt.
			check, err := kv.Txn(ctx).If(conds...).Commit()
			if err != nil {
				return err
			}
			if !check.Succeeded {
				return ErrPrecondition
			}
		}
	}
	return ErrConflict
}

// SlotsUsed is how many task slots an assignment takes on its worker. A
// slot holds one subtask of every vertex of the job (slot sharing, as in
// Flink), so the count is the largest number of one vertex's subtasks in
// a.Subtasks: an assignment of a[0], a[1], b[0] uses 2 slots.
func SlotsUsed(a *clusterv1.Assignment) int {
	perVertex := map[string]int{}
	used := 0
	for _, st := range a.GetSubtasks() {
		perVertex[st.GetVertexId()]++
		used = max(used, perVertex[st.GetVertexId()])
	}
	return used
}

// RescaledSpec returns a copy of spec with the rescale r applied: a
// non-zero r.Parallelism becomes the job's default parallelism (vertices
// that set their own keep it), and each entry of r.VertexParallelism sets
// that vertex's parallelism. Vertex ids r names that spec lacks are
// ignored; the gateway refuses such a request before it is stored. spec
// is not modified and must not be nil. The gateway checks the result with jobgraph.Resolve
// before accepting a rescale; the scheduler starts the new attempt with
// it, so both agree on what a rescale means.
func RescaledSpec(spec *sabotv1.JobSpec, r *sabotv1.Rescale) *sabotv1.JobSpec {
	out := proto.Clone(spec).(*sabotv1.JobSpec) // Clone keeps the type
	if p := r.GetParallelism(); p > 0 {
		out.Parallelism = p
	}
	for _, v := range out.GetGraph().GetVertices() {
		if p, ok := r.GetVertexParallelism()[v.GetId()]; ok {
			v.Parallelism = p
		}
		if f := r.GetFunction(); f != nil {
			if step := v.GetOperator().GetFunction(); step != nil && step.GetName() == f.GetSpec().GetName() {
				step.Function = proto.Clone(f).(*sabotv1.Function)
			}
		}
	}
	return out
}
