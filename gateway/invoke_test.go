package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sabotdev/sabot/gateway"
	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/internal/keygroup"
	"github.com/sabotdev/sabot/internal/testkit"
)

// fakeWorker is a worker's FunctionService as far as the gateway sees it:
// a real HTTP/2 server without TLS (as workers serve) whose Invoke answers
// "<worker>|<job_id>|<key>|<payload>", or fails with failCode when set.
type fakeWorker struct {
	sabotv1connect.UnimplementedFunctionServiceHandler
	id       string
	address  string
	calls    atomic.Int32
	failCode atomic.Int32 // a connect.Code; 0 answers
}

func (w *fakeWorker) Invoke(_ context.Context, req *connect.Request[sabotv1.InvokeRequest]) (*connect.Response[sabotv1.InvokeResponse], error) {
	w.calls.Add(1)
	if c := connect.Code(w.failCode.Load()); c != 0 {
		return nil, connect.NewError(c, fmt.Errorf("%s says %s", w.id, c))
	}
	m := req.Msg
	return connect.NewResponse(&sabotv1.InvokeResponse{
		Payload:   fmt.Appendf(nil, "%s|%s|%s|%s", w.id, m.GetJobId(), m.GetKey(), m.GetPayload()),
		Committed: !m.GetUncommitted(),
		Replayed:  m.GetIdempotencyKey() == "seen",
	}), nil
}

// startFakeWorker serves a fakeWorker on loopback until the test ends.
func startFakeWorker(t *testing.T, id string) *fakeWorker {
	t.Helper()
	w := &fakeWorker{id: id}
	mux := http.NewServeMux()
	mux.Handle(sabotv1connect.NewFunctionServiceHandler(w))
	w.address = testkit.ServeH2C(t, mux) // h2c only, as worker/server.go
	return w
}

// register stores w's registration, as a live worker keeps it.
func (w *fakeWorker) register(t *testing.T, kv clientv3.KV) {
	t.Helper()
	if _, err := kv.Put(t.Context(), cluster.WorkerKey(w.id), cluster.Marshal(&clusterv1.Worker{Id: w.id, Address: w.address, Slots: 4})); err != nil {
		t.Fatal(err)
	}
}

// functionJob stores a running job whose step "step" runs fn at
// parallelism p (max parallelism maxP).
func functionJob(t *testing.T, kv clientv3.KV, id, fn string, p, maxP int32) *sabotv1.Job {
	t.Helper()
	job := &sabotv1.Job{
		Id: id,
		Spec: &sabotv1.JobSpec{
			Name: id, MaxParallelism: maxP, Checkpointing: &sabotv1.Checkpointing{IntervalMs: 250},
			Graph: &sabotv1.JobGraph{
				Vertices: []*sabotv1.Vertex{invocationsVertex(), functionVertex("step", fn, p, urlFunction(fn, "http://fn"))},
				Edges: []*sabotv1.Edge{{From: "invocations", To: "step",
					Partitioning: sabotv1.Partitioning_PARTITIONING_HASH, KeyFields: []string{"key"}}},
			},
		},
		Status: &sabotv1.JobStatus{State: sabotv1.JobState_JOB_STATE_RUNNING, Attempt: 1},
	}
	putJob(t, kv, job)
	return job
}

// assign stores the assignments of one attempt of job: worker i runs
// subtask i of the function step (and the invocations source runs on the
// first). With one worker the assignment has no placement, as the
// scheduler writes an attempt placed whole on one worker.
func assign(t *testing.T, kv clientv3.KV, job *sabotv1.Job, attempt int64, workers ...*fakeWorker) {
	t.Helper()
	var placement []*clusterv1.Placement
	if len(workers) > 1 {
		placement = append(placement, &clusterv1.Placement{VertexId: "invocations", Subtask: 0, WorkerId: workers[0].id, Address: workers[0].address})
		for i, w := range workers {
			placement = append(placement, &clusterv1.Placement{VertexId: "step", Subtask: int32(i), WorkerId: w.id, Address: w.address})
		}
	}
	for i, w := range workers {
		a := &clusterv1.Assignment{JobId: job.GetId(), Attempt: attempt, WorkerId: w.id, Spec: job.GetSpec(), Placement: placement,
			Subtasks: []*clusterv1.SubtaskRef{{VertexId: "step", Subtask: int32(i), Parallelism: int32(len(workers))}}}
		if _, err := kv.Put(t.Context(), cluster.AssignmentKey(w.id, job.GetId()), cluster.Marshal(a)); err != nil {
			t.Fatal(err)
		}
	}
}

// keyOnSubtask returns a key whose key group subtask sub of p owns.
func keyOnSubtask(t *testing.T, sub, p, maxP int) string {
	t.Helper()
	for i := range 10000 {
		k := fmt.Sprintf("key-%d", i)
		if jobgraph.SubtaskForKeyGroup(maxP, p, keygroup.StringKeyGroup(k, maxP)) == sub {
			return k
		}
	}
	t.Fatalf("no key lands on subtask %d of %d", sub, p)
	return ""
}

func invoke(ctx context.Context, c sabotv1connect.FunctionServiceClient, req *sabotv1.InvokeRequest) (string, error) {
	resp, err := c.Invoke(ctx, connect.NewRequest(req))
	if err != nil {
		return "", err
	}
	return string(resp.Msg.GetPayload()), nil
}

// TestInvokeRouting: an invocation reaches the worker running the subtask
// that owns its key's key group, by placement, or on the one worker of an
// attempt without placement, with the job id filled in.
func TestInvokeRouting(t *testing.T) {
	t.Parallel()
	gw := startFunctionGateway(t, nil)
	kv := gw.etcd.Client
	wa, wb, wc := startFakeWorker(t, "wa"), startFakeWorker(t, "wb"), startFakeWorker(t, "wc")
	for _, w := range []*fakeWorker{wa, wb, wc} {
		w.register(t, kv)
	}
	const maxP = 16
	spread := functionJob(t, kv, "j-spread", "spread", 2, maxP)
	assign(t, kv, spread, 1, wa, wb)
	whole := functionJob(t, kv, "j-whole", "whole", 3, 0) // max parallelism 128
	assign(t, kv, whole, 1, wc)

	type tc struct {
		name string
		req  *sabotv1.InvokeRequest
		want string
	}
	var cases []tc
	for sub, w := range []*fakeWorker{wa, wb} {
		k := keyOnSubtask(t, sub, 2, maxP)
		cases = append(cases,
			tc{fmt.Sprintf("placed subtask %d", sub), &sabotv1.InvokeRequest{Function: "spread", Key: k, Payload: []byte("p")}, w.id + "|j-spread|" + k + "|p"},
			tc{fmt.Sprintf("placed subtask %d by job id", sub), &sabotv1.InvokeRequest{Function: "spread", Key: k, JobId: "j-spread"}, w.id + "|j-spread|" + k + "|"})
	}
	for sub := range 3 {
		k := keyOnSubtask(t, sub, 3, jobgraph.DefaultMaxParallelism)
		cases = append(cases, tc{fmt.Sprintf("whole attempt, subtask %d", sub), &sabotv1.InvokeRequest{Function: "whole", Key: k}, "wc|j-whole|" + k + "|"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The mirror may not have caught up with the records just
			// written: the gateway then reads etcd, so no polling here.
			got, err := invoke(t.Context(), gw.fns, c.req)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("reply %q, want %q", got, c.want)
			}
		})
	}

	t.Run("reply flags pass through", func(t *testing.T) {
		resp, err := gw.fns.Invoke(t.Context(), connect.NewRequest(&sabotv1.InvokeRequest{Function: "whole", Key: "k", IdempotencyKey: "seen", Uncommitted: true}))
		if err != nil {
			t.Fatal(err)
		}
		if !resp.Msg.GetReplayed() || resp.Msg.GetCommitted() {
			t.Fatalf("replayed %t committed %t, want true and false", resp.Msg.GetReplayed(), resp.Msg.GetCommitted())
		}
	})

	t.Run("handler without Start reads etcd", func(t *testing.T) {
		h, err := gateway.Handler(gateway.Config{Addr: "unused", Etcd: kv, Logger: testkit.Logger(t, 0)})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		defer srv.Close()
		c := sabotv1connect.NewFunctionServiceClient(srv.Client(), srv.URL)
		k := keyOnSubtask(t, 1, 2, maxP)
		got, err := invoke(t.Context(), c, &sabotv1.InvokeRequest{Function: "spread", Key: k})
		if err != nil {
			t.Fatal(err)
		}
		if want := "wb|j-spread|" + k + "|"; got != want {
			t.Fatalf("reply %q, want %q", got, want)
		}
	})
}

// TestInvokeRetriesUnavailable: a worker answering Unavailable (it does not
// own the key right now) makes the gateway wait for the next attempt's
// assignment and send the invocation there; a worker that is gone is
// waited for the same way.
func TestInvokeRetriesUnavailable(t *testing.T) {
	t.Parallel()
	gw := startFunctionGateway(t, nil)
	kv := gw.etcd.Client
	old, next := startFakeWorker(t, "old"), startFakeWorker(t, "next")
	old.register(t, kv)
	next.register(t, kv)
	job := functionJob(t, kv, "j-moving", "moving", 1, 0)
	assign(t, kv, job, 1, old)
	old.failCode.Store(int32(connect.CodeUnavailable))

	type result struct {
		reply string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		reply, err := invoke(ctx, gw.fns, &sabotv1.InvokeRequest{Function: "moving", Key: "k1"})
		done <- result{reply, err}
	}()
	// The gateway keeps trying the old worker while the job restarts...
	testkit.Eventually(t, 10*time.Second, func() error {
		if n := old.calls.Load(); n < 2 {
			return fmt.Errorf("old worker asked %d times", n)
		}
		return nil
	})
	select {
	case r := <-done:
		t.Fatalf("invoke returned while no worker owns the key: %q %v", r.reply, r.err)
	default:
	}
	// ... and the next attempt runs on another worker.
	if _, err := kv.Delete(t.Context(), cluster.AssignmentKey(old.id, job.GetId())); err != nil {
		t.Fatal(err)
	}
	assign(t, kv, job, 2, next)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if want := "next|j-moving|k1|"; r.reply != want {
		t.Fatalf("reply %q, want %q", r.reply, want)
	}

	t.Run("worker gone", func(t *testing.T) {
		gone := functionJob(t, kv, "j-gone", "gone", 1, 0)
		ghost := &fakeWorker{id: "ghost", address: "http://127.0.0.1:1"} // never registered
		assign(t, kv, gone, 1, ghost)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := invoke(ctx, gw.fns, &sabotv1.InvokeRequest{Function: "gone", Key: "k"})
		wantCode(t, err, connect.CodeDeadlineExceeded, "ghost", "gone", "no worker took the invocation")
	})

	t.Run("not placed until the deadline", func(t *testing.T) {
		functionJob(t, kv, "j-waiting", "waiting", 1, 0)
		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := invoke(ctx, gw.fns, &sabotv1.InvokeRequest{Function: "waiting", Key: "k"})
		wantCode(t, err, connect.CodeDeadlineExceeded, "j-waiting runs on no worker")
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %s for a 1s deadline", d)
		}
	})
}

// TestInvokeErrors: what the gateway answers itself, and that other worker
// errors reach the caller unchanged.
func TestInvokeErrors(t *testing.T) {
	t.Parallel()
	gw := startFunctionGateway(t, nil)
	kv := gw.etcd.Client
	w := startFakeWorker(t, "w")
	w.register(t, kv)
	for _, id := range []string{"j-dup-1", "j-dup-2"} {
		assign(t, kv, functionJob(t, kv, id, "dup", 1, 0), 1, w)
	}
	done := functionJob(t, kv, "j-done", "finished", 1, 0)
	setJob(t, kv, done.GetId(), func(j *sabotv1.Job) { j.Status.State = sabotv1.JobState_JOB_STATE_FINISHED })
	bad := startFakeWorker(t, "bad")
	bad.register(t, kv)
	bad.failCode.Store(int32(connect.CodeInvalidArgument))
	assign(t, kv, functionJob(t, kv, "j-bad", "picky", 1, 0), 1, bad)
	addressless := &fakeWorker{id: "quiet"}
	addressless.register(t, kv)
	assign(t, kv, functionJob(t, kv, "j-quiet", "quiet", 1, 0), 1, addressless)

	t.Cleanup(func() { // after the subtests
		if n := bad.calls.Load(); n != 1 {
			t.Errorf("the worker answering InvalidArgument was asked %d times, want once", n)
		}
	})
	cases := []struct {
		name string
		req  *sabotv1.InvokeRequest
		code connect.Code
		want []string
	}{
		{"no job runs it", &sabotv1.InvokeRequest{Function: "nobody", Key: "k"}, connect.CodeNotFound,
			[]string{"function nobody is not running in any job; deploy it"}},
		{"finished job does not count", &sabotv1.InvokeRequest{Function: "finished", Key: "k"}, connect.CodeNotFound,
			[]string{"not running in any job"}},
		{"several jobs", &sabotv1.InvokeRequest{Function: "dup", Key: "k"}, connect.CodeFailedPrecondition,
			[]string{"j-dup-1", "j-dup-2", "job_id"}},
		{"unknown job", &sabotv1.InvokeRequest{Function: "dup", Key: "k", JobId: "j-nope"}, connect.CodeNotFound,
			[]string{"job j-nope not found"}},
		{"job without the function", &sabotv1.InvokeRequest{Function: "other", Key: "k", JobId: "j-dup-1"}, connect.CodeInvalidArgument,
			[]string{"j-dup-1", "does not run function other", "dup"}},
		{"ended job", &sabotv1.InvokeRequest{Function: "finished", Key: "k", JobId: "j-done"}, connect.CodeFailedPrecondition,
			[]string{"j-done", "FINISHED"}},
		{"worker error passes through", &sabotv1.InvokeRequest{Function: "picky", Key: "k"}, connect.CodeInvalidArgument,
			[]string{"bad says invalid_argument"}},
		{"worker without address", &sabotv1.InvokeRequest{Function: "quiet", Key: "k"}, connect.CodeFailedPrecondition,
			[]string{"quiet", "serves no address"}},
		{"empty key", &sabotv1.InvokeRequest{Function: "dup"}, connect.CodeInvalidArgument,
			[]string{"key"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := invoke(t.Context(), gw.fns, tc.req)
			wantCode(t, err, tc.code, tc.want...)
		})
	}
	t.Run("by job id despite ambiguity", func(t *testing.T) {
		t.Parallel()
		got, err := invoke(t.Context(), gw.fns, &sabotv1.InvokeRequest{Function: "dup", Key: "k", JobId: "j-dup-2"})
		if err != nil || got != "w|j-dup-2|k|" {
			t.Fatalf("reply %q %v", got, err)
		}
	})
}
