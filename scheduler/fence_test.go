package scheduler_test

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/testkit"
	"github.com/sabotdev/sabot/scheduler"
)

// TestDeposedLeaderCannotWrite: a scheduler whose leadership ended (its
// election key is gone) keeps its reconciler, but every write it tries
// fails on the fence, and nothing reaches etcd.
func TestDeposedLeaderCannotWrite(t *testing.T) {
	t.Parallel()
	etcd := testkit.StartEtcd(t)
	ctx := context.Background()
	cli := etcd.Client

	end := int64(10)
	job := &sabotv1.Job{
		Id: "job1",
		Spec: &sabotv1.JobSpec{Name: "fenced", Graph: &sabotv1.JobGraph{
			Vertices: []*sabotv1.Vertex{
				{Id: "s", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{Sequence: &sabotv1.SequenceSource{End: &end}}}},
				{Id: "out", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Print{Print: &sabotv1.PrintSink{}}}},
			},
			Edges: []*sabotv1.Edge{{From: "s", To: "out"}},
		}},
		Status: &sabotv1.JobStatus{State: sabotv1.JobState_JOB_STATE_CREATED, UpdatedAt: timestamppb.Now()},
	}
	if _, err := cli.Put(ctx, cluster.JobKey(job.GetId()), cluster.Marshal(job)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, cluster.WorkerKey("w1"), cluster.Marshal(&clusterv1.Worker{Id: "w1", Slots: 4})); err != nil {
		t.Fatal(err)
	}

	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	el := concurrency.NewElection(sess, cluster.ElectionPrefix)
	if err := el.Campaign(ctx, "old-leader"); err != nil {
		t.Fatal(err)
	}
	r := scheduler.NewReconciler(cli, clientv3.Compare(clientv3.CreateRevision(el.Key()), "=", el.Rev()))

	// Leadership ends: the lease is revoked (as when it expires).
	if err := sess.Close(); err != nil {
		t.Fatal(err)
	}
	if err := scheduler.Reconcile(r, ctx); !errors.Is(err, cluster.ErrPrecondition) {
		t.Fatalf("deposed reconcile: %v, want ErrPrecondition", err)
	}
	resp, err := cli.Get(ctx, cluster.AssignmentsPrefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 0 {
		t.Fatalf("a deposed leader wrote %d assignments", len(resp.Kvs))
	}

	// A new leader places the job.
	sess2, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sess2.Close() })
	el2 := concurrency.NewElection(sess2, cluster.ElectionPrefix)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := el2.Campaign(cctx, "new-leader"); err != nil {
		t.Fatal(err)
	}
	r2 := scheduler.NewReconciler(cli, clientv3.Compare(clientv3.CreateRevision(el2.Key()), "=", el2.Rev()))
	if err := scheduler.Reconcile(r2, ctx); err != nil {
		t.Fatal(err)
	}
	a, err := cluster.Get(ctx, cli, cluster.AssignmentKey("w1", job.GetId()), cluster.NewAssignment)
	if err != nil {
		t.Fatalf("new leader did not place the job: %v", err)
	}
	if a.Value.GetAttempt() != 1 || len(a.Value.GetSubtasks()) != 2 {
		t.Fatalf("assignment attempt %d with %d subtasks, want 1 and 2", a.Value.GetAttempt(), len(a.Value.GetSubtasks()))
	}
	// The worker goes away: there is something to decide again, but the
	// stale reconciler still cannot write it.
	if _, err := cli.Delete(ctx, cluster.WorkerKey("w1")); err != nil {
		t.Fatal(err)
	}
	if err := scheduler.Reconcile(r, ctx); !errors.Is(err, cluster.ErrPrecondition) {
		t.Fatalf("deposed reconcile after takeover: %v, want ErrPrecondition", err)
	}
	if _, err := cluster.Get(ctx, cli, cluster.AssignmentKey("w1", job.GetId()), cluster.NewAssignment); err != nil {
		t.Fatalf("the stale reconciler changed the assignment: %v", err)
	}
}
