package cluster_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/testkit"
)

func TestAutoscalerKey(t *testing.T) {
	t.Parallel()
	if got, want := cluster.AutoscalerKey("j1"), "/sabot/v1/autoscaler/j1"; got != want {
		t.Fatalf("AutoscalerKey = %q, want %q", got, want)
	}
}

// decision is a decision told apart by its reason.
func decision(reason string) *sabotv1.ScalingDecision {
	return &sabotv1.ScalingDecision{
		Time: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)), Action: "hold", Reason: reason,
		Vertices: []*sabotv1.VertexScaling{{VertexId: "a", CurrentParallelism: 2, NewParallelism: 2, BusyRatio: 0.5}},
	}
}

// reasons reads the job's history and returns its decisions' reasons in
// stored order (newest first).
func reasons(t *testing.T, kv clientv3.KV, jobID string) []string {
	t.Helper()
	h, err := cluster.Get(t.Context(), kv, cluster.AutoscalerKey(jobID), cluster.NewScalingHistory)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range h.Value.GetDecisions() {
		out = append(out, d.GetReason())
	}
	return out
}

func TestRecordScalingDecision(t *testing.T) {
	t.Parallel()
	etcd := testkit.StartEtcd(t)
	ctx := t.Context()

	t.Run("newest first, whole decision kept", func(t *testing.T) {
		t.Parallel()
		kv := etcd.NewClient(t)
		for _, r := range []string{"r1", "r2", "r3"} {
			if err := cluster.RecordScalingDecision(ctx, kv, "newest", decision(r)); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := reasons(t, kv, "newest"), []string{"r3", "r2", "r1"}; !slices.Equal(got, want) {
			t.Fatalf("reasons %v, want %v", got, want)
		}
		h, err := cluster.Get(ctx, kv, cluster.AutoscalerKey("newest"), cluster.NewScalingHistory)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(decision("r3"), h.Value.GetDecisions()[0], protocmp.Transform()); diff != "" {
			t.Fatalf("stored decision (-want +got):\n%s", diff)
		}
	})

	t.Run("keeps the newest 50", func(t *testing.T) {
		t.Parallel()
		kv := etcd.NewClient(t)
		const n = cluster.ScalingHistoryLimit + 7
		for i := range n {
			if err := cluster.RecordScalingDecision(ctx, kv, "bounded", decision(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		got := reasons(t, kv, "bounded")
		if len(got) != cluster.ScalingHistoryLimit || got[0] != fmt.Sprint(n-1) || got[len(got)-1] != fmt.Sprint(n-cluster.ScalingHistoryLimit) {
			t.Fatalf("%d decisions from %s to %s, want %d from %d to %d", len(got), got[0], got[len(got)-1],
				cluster.ScalingHistoryLimit, n-1, n-cluster.ScalingHistoryLimit)
		}
	})

	t.Run("a failed fence writes nothing", func(t *testing.T) {
		t.Parallel()
		kv := etcd.NewClient(t)
		const fenceKey = "/test/fence/leader"
		if _, err := kv.Put(ctx, fenceKey, "me"); err != nil {
			t.Fatal(err)
		}
		fence := clientv3.Compare(clientv3.Value(fenceKey), "=", "me")
		if err := cluster.RecordScalingDecision(ctx, kv, "fenced", decision("leader"), fence); err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, fenceKey, "someone else"); err != nil {
			t.Fatal(err)
		}
		err := cluster.RecordScalingDecision(ctx, kv, "fenced", decision("deposed"), fence)
		if !errors.Is(err, cluster.ErrPrecondition) {
			t.Fatalf("error %v, want ErrPrecondition", err)
		}
		if got := reasons(t, kv, "fenced"); !slices.Equal(got, []string{"leader"}) {
			t.Fatalf("reasons %v, want only the leader's", got)
		}
	})

	// Writers race on one history: every write that returned nil is in
	// it exactly once, none that failed is, and each writer's own
	// decisions keep their order. A write may only fail by losing every
	// attempt (ErrConflict).
	t.Run("concurrent writers lose nothing", func(t *testing.T) {
		t.Parallel()
		const writers, each = 4, 6
		var (
			mu        sync.Mutex
			succeeded = map[string]bool{}
			wg        sync.WaitGroup
		)
		errs := make(chan error, writers*each)
		for w := range writers {
			kv := etcd.NewClient(t)
			wg.Go(func() {
				for i := range each {
					r := fmt.Sprintf("w%d-%d", w, i)
					err := cluster.RecordScalingDecision(ctx, kv, "raced", decision(r))
					switch {
					case err == nil:
						mu.Lock()
						succeeded[r] = true
						mu.Unlock()
					case !errors.Is(err, cluster.ErrConflict):
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		got := reasons(t, etcd.Client, "raced")
		seen := map[string]bool{}
		last := map[byte]string{} // per writer, the newest seen so far
		for _, r := range got {
			if seen[r] || !succeeded[r] {
				t.Fatalf("history %v: %s is there twice or was not acknowledged", got, r)
			}
			seen[r] = true
			// Newest first: a writer's later decision comes before its
			// earlier ones, so reasons decrease per writer.
			if prev, ok := last[r[1]]; ok && r > prev {
				t.Fatalf("history %v: %s after %s of the same writer", got, r, prev)
			}
			last[r[1]] = r
		}
		if len(seen) != len(succeeded) {
			t.Fatalf("history has %d decisions, %d writes succeeded", len(seen), len(succeeded))
		}
		t.Logf("%d of %d writes succeeded", len(succeeded), writers*each)
	})

	t.Run("nil decision", func(t *testing.T) {
		t.Parallel()
		if err := cluster.RecordScalingDecision(ctx, etcd.Client, "nil", nil); err == nil {
			t.Fatal("recording a nil decision succeeded")
		}
	})
}

func TestSlotsUsed(t *testing.T) {
	t.Parallel()
	sub := func(v string, i int32) *clusterv1.SubtaskRef { return &clusterv1.SubtaskRef{VertexId: v, Subtask: i} }
	tests := []struct {
		name string
		a    *clusterv1.Assignment
		want int
	}{
		{"nil", nil, 0},
		{"no subtasks", &clusterv1.Assignment{}, 0},
		{"one subtask", &clusterv1.Assignment{Subtasks: []*clusterv1.SubtaskRef{sub("a", 0)}}, 1},
		{"slot sharing: one of each vertex per slot", &clusterv1.Assignment{Subtasks: []*clusterv1.SubtaskRef{
			sub("a", 0), sub("b", 0), sub("c", 0), sub("a", 1), sub("b", 1), sub("c", 1)}}, 2},
		{"the widest vertex decides", &clusterv1.Assignment{Subtasks: []*clusterv1.SubtaskRef{
			sub("a", 0), sub("b", 0), sub("b", 1), sub("b", 2), sub("a", 1)}}, 3},
		{"a share of a wider attempt", &clusterv1.Assignment{Subtasks: []*clusterv1.SubtaskRef{
			sub("a", 4), sub("a", 5), sub("b", 7)}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := cluster.SlotsUsed(tt.a); got != tt.want {
				t.Fatalf("SlotsUsed = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestRescaledSpec(t *testing.T) {
	t.Parallel()
	spec := func(jobP int32, vertexP ...int32) *sabotv1.JobSpec {
		s := &sabotv1.JobSpec{Name: "j", Parallelism: jobP, Graph: &sabotv1.JobGraph{}}
		for i, p := range vertexP {
			s.Graph.Vertices = append(s.Graph.Vertices, &sabotv1.Vertex{Id: string(rune('a' + i)), Parallelism: p})
		}
		return s
	}
	tests := []struct {
		name string
		in   *sabotv1.JobSpec
		r    *sabotv1.Rescale
		want *sabotv1.JobSpec
	}{
		{"default parallelism", spec(2, 0, 0), &sabotv1.Rescale{Parallelism: 4}, spec(4, 0, 0)},
		{"a vertex's own parallelism stays", spec(2, 0, 3), &sabotv1.Rescale{Parallelism: 4}, spec(4, 0, 3)},
		{"one vertex", spec(2, 0, 0), &sabotv1.Rescale{VertexParallelism: map[string]int32{"b": 5}}, spec(2, 0, 5)},
		{"both", spec(0, 1, 0), &sabotv1.Rescale{Parallelism: 3, VertexParallelism: map[string]int32{"a": 6}}, spec(3, 6, 0)},
		{"unknown vertex ignored", spec(2, 0), &sabotv1.Rescale{VertexParallelism: map[string]int32{"zz": 5}}, spec(2, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := proto.Clone(tt.in)
			got := cluster.RescaledSpec(tt.in, tt.r)
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("RescaledSpec (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(in, tt.in, protocmp.Transform()); diff != "" {
				t.Errorf("the input spec changed (-before +after):\n%s", diff)
			}
		})
	}
}
