package cluster_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/testkit"
)

func registration(name, url string) *sabotv1.Function {
	return &sabotv1.Function{
		Spec: &sabotv1.FunctionSpec{Name: name, States: []*sabotv1.StateSpec{
			{Name: "count", Kind: sabotv1.StateKind_STATE_KIND_VALUE},
		}},
		Source: &sabotv1.Function_Url{Url: url},
	}
}

func TestFunctionKey(t *testing.T) {
	t.Parallel()
	if got, want := cluster.FunctionKey("greeter"), "/sabot/v1/functions/greeter"; got != want {
		t.Fatalf("FunctionKey = %q, want %q", got, want)
	}
}

// TestRegisterFunction: versions count deploys per name, updated_at is the
// deploy's time, the caller's version is ignored, and the stored record
// reads back equal to what RegisterFunction returned.
func TestRegisterFunction(t *testing.T) {
	t.Parallel()
	etcd := testkit.StartEtcd(t)
	kv := etcd.Client
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

	steps := []struct {
		f           *sabotv1.Function
		now         time.Time
		wantVersion int64
	}{
		{registration("greeter", "http://a"), t0, 1},
		{registration("counter", "http://c"), t0.Add(time.Second), 1},
		{registration("greeter", "http://b"), t0.Add(2 * time.Second), 2},
		{func() *sabotv1.Function { f := registration("greeter", "http://b"); f.Version = 41; return f }(), t0.Add(3 * time.Second), 3},
	}
	for _, st := range steps {
		got, err := cluster.RegisterFunction(t.Context(), kv, st.f, st.now, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.GetVersion() != st.wantVersion || !got.GetUpdatedAt().AsTime().Equal(st.now) {
			t.Fatalf("%s: version %d updated %s, want %d at %s", st.f.GetSpec().GetName(), got.GetVersion(), got.GetUpdatedAt().AsTime(), st.wantVersion, st.now)
		}
		if st.f.GetUpdatedAt() != nil {
			t.Fatal("RegisterFunction modified its argument")
		}
		rec, err := cluster.Get(t.Context(), kv, cluster.FunctionKey(st.f.GetSpec().GetName()), cluster.NewFunction)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(got, rec.Value, protocmp.Transform()); diff != "" {
			t.Fatalf("stored registration differs (-returned +stored):\n%s", diff)
		}
	}
	all, _, err := cluster.List(t.Context(), kv, cluster.FunctionsPrefix, cluster.NewFunction, cluster.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []*sabotv1.Function{
		{Spec: registration("counter", "").GetSpec(), Source: &sabotv1.Function_Url{Url: "http://c"}, Version: 1, UpdatedAt: timestamppb.New(t0.Add(time.Second))},
		{Spec: registration("greeter", "").GetSpec(), Source: &sabotv1.Function_Url{Url: "http://b"}, Version: 3, UpdatedAt: timestamppb.New(t0.Add(3 * time.Second))},
	}
	var got []*sabotv1.Function
	for _, r := range all {
		got = append(got, r.Value)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Fatalf("registry (-want +got):\n%s", diff)
	}

	if _, err := cluster.RegisterFunction(t.Context(), kv, &sabotv1.Function{}, t0, nil); err == nil {
		t.Fatal("a registration without a name was stored")
	}
}

// TestRegisterFunctionAlso: also's operations commit with the
// registration, also's error writes nothing, and a comparison of also's
// that fails because another writer moved a record is retried with fresh
// reads.
func TestRegisterFunctionAlso(t *testing.T) {
	t.Parallel()
	etcd := testkit.StartEtcd(t)
	kv := etcd.Client
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

	t.Run("ops commit together", func(t *testing.T) {
		_, err := cluster.RegisterFunction(t.Context(), kv, registration("a", "http://a"), now, func(next *sabotv1.Function) ([]clientv3.Cmp, []clientv3.Op, error) {
			return nil, []clientv3.Op{clientv3.OpPut("/test/side", next.GetSpec().GetName())}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := kv.Get(t.Context(), "/test/side")
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "a" {
			t.Fatalf("side effect not written: %v %v", resp, err)
		}
	})

	t.Run("error writes nothing", func(t *testing.T) {
		refuse := errors.New("refused")
		_, err := cluster.RegisterFunction(t.Context(), kv, registration("b", "http://b"), now, func(*sabotv1.Function) ([]clientv3.Cmp, []clientv3.Op, error) {
			return nil, nil, refuse
		})
		if !errors.Is(err, refuse) {
			t.Fatalf("err = %v, want %v", err, refuse)
		}
		if _, err := cluster.Get(t.Context(), kv, cluster.FunctionKey("b"), cluster.NewFunction); !cluster.IsNotFound(err) {
			t.Fatalf("registration stored despite the refusal: %v", err)
		}
	})

	t.Run("retried on a moved record", func(t *testing.T) {
		const watched = "/test/watched"
		if _, err := kv.Put(t.Context(), watched, "0"); err != nil {
			t.Fatal(err)
		}
		attempts := 0
		got, err := cluster.RegisterFunction(t.Context(), kv, registration("c", "http://c"), now, func(*sabotv1.Function) ([]clientv3.Cmp, []clientv3.Op, error) {
			attempts++
			resp, err := kv.Get(t.Context(), watched)
			if err != nil {
				return nil, nil, err
			}
			rev := resp.Kvs[0].ModRevision
			if attempts < 3 {
				// Another writer moves the record between the read and the
				// transaction.
				if _, err := kv.Put(t.Context(), watched, "moved"); err != nil {
					return nil, nil, err
				}
			}
			return []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(watched), "=", rev)}, nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if attempts != 3 || got.GetVersion() != 1 {
			t.Fatalf("attempts %d version %d, want 3 and 1", attempts, got.GetVersion())
		}
	})
}

// TestRegisterFunctionConcurrent: concurrent deploys of one name each get
// their own version; none is lost.
func TestRegisterFunctionConcurrent(t *testing.T) {
	t.Parallel()
	etcd := testkit.StartEtcd(t)
	const n = 5
	var wg sync.WaitGroup
	versions := make(chan int64, n)
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			f, err := cluster.RegisterFunction(t.Context(), etcd.Client, registration("hot", "http://h"), time.Now(), nil)
			if err != nil {
				errs <- err
				return
			}
			versions <- f.GetVersion()
		})
	}
	wg.Wait()
	close(versions)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for v := range versions {
		if seen[v] {
			t.Fatalf("version %d given twice", v)
		}
		seen[v] = true
	}
	for v := int64(1); v <= n; v++ {
		if !seen[v] {
			t.Fatalf("versions %v, want 1..%d", seen, n)
		}
	}
}

func TestFunctionVertices(t *testing.T) {
	t.Parallel()
	step := func(id, name string) *sabotv1.Vertex {
		return &sabotv1.Vertex{Id: id, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Function{Function: &sabotv1.FunctionStep{Name: name}}}}
	}
	spec := &sabotv1.JobSpec{Graph: &sabotv1.JobGraph{Vertices: []*sabotv1.Vertex{
		{Id: "in", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Invocations{Invocations: &sabotv1.InvocationSource{}}}},
		step("f1", "f"), step("g", "g"), step("f2", "f"),
	}}}
	var ids []string
	for _, v := range cluster.FunctionVertices(spec, "f") {
		ids = append(ids, v.GetId())
	}
	if diff := cmp.Diff([]string{"f1", "f2"}, ids); diff != "" {
		t.Fatalf("FunctionVertices (-want +got):\n%s", diff)
	}
	if !cluster.RunsFunction(spec, "g") || cluster.RunsFunction(spec, "h") {
		t.Fatal("RunsFunction is wrong")
	}
	if diff := cmp.Diff([]string{"f", "g"}, cluster.FunctionNames(spec)); diff != "" {
		t.Fatalf("FunctionNames (-want +got):\n%s", diff)
	}
}
