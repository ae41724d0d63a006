package sabot_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/sabotdev/sabot/gateway"
	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/testkit"
	sabot "github.com/sabotdev/sabot/sdk/go"
)

// clientEnv is a real gateway on an embedded etcd and a file blob store,
// with a Client of it.
type clientEnv struct {
	client *sabot.Client
	etcd   *testkit.Etcd
	store  *blob.FileStore
}

func startClientEnv(t *testing.T) clientEnv {
	t.Helper()
	etcd := testkit.StartEtcd(t)
	store, err := blob.OpenFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	g, err := gateway.Start(ctx, gateway.Config{Addr: "127.0.0.1:0", Etcd: etcd.Client, Blob: store, Logger: testkit.Logger(t, 0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	c := sabot.NewClient(g.Addr()) // host:port means http
	t.Cleanup(c.Close)
	return clientEnv{client: c, etcd: etcd, store: store}
}

// clientServeH2C serves h on loopback over HTTP/2 without TLS only (as
// workers and function processes serve) until the test ends, and returns
// its URL.
func clientServeH2C(t *testing.T, path string, h http.Handler) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(path, h)
	return testkit.ServeH2C(t, mux)
}

// clientDescribeJSON is what the test programs declare.
const clientDescribeJSON = `{"functions":[{"name":"greeter","states":[{"name":"seen","kind":"STATE_KIND_VALUE","ttlMs":"60000"}],"outputs":["greetings"]},{"name":"other"}],"sdk":"test/1"}`

// clientWriteProgram writes a Go package into a fresh directory with its
// own go.mod (no dependencies, so it builds offline) and returns it.
func clientWriteProgram(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"go.mod": "module example.com/fn\n\ngo 1.26\n", "main.go": src}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// clientDescriber is a main package that describes itself as an SDK
// program does and refuses to do anything else.
func clientDescriber(describe string) string {
	return fmt.Sprintf(`package main

import (
	"fmt"
	"os"
)

func main() {
	if os.Getenv("SABOT_FUNCTION_DESCRIBE") == "1" {
		fmt.Println(%q)
		return
	}
	fmt.Fprintln(os.Stderr, "only describes")
	os.Exit(3)
}
`, describe)
}

func clientWantCode(t *testing.T, err error, code connect.Code, want ...string) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not mention %q", err, w)
		}
	}
}

func TestClientDeploy(t *testing.T) {
	t.Parallel()
	env := startClientEnv(t)
	ctx := t.Context()
	dir := clientWriteProgram(t, clientDescriber(clientDescribeJSON))

	_, err := env.client.Deploy(ctx, dir)
	if err == nil || !strings.Contains(err.Error(), "declares functions greeter, other") || !strings.Contains(err.Error(), "WithFunctionName") {
		t.Fatalf("deploy of a program with two functions and no name: %v", err)
	}
	_, err = env.client.Deploy(ctx, dir, sabot.WithFunctionName("absent"))
	if err == nil || !strings.Contains(err.Error(), `no function "absent"`) {
		t.Fatalf("deploy of an undeclared name: %v", err)
	}

	limits := &sabotv1.FunctionLimits{CallTimeoutMs: 1500, MaxBatch: 8}
	f, err := env.client.Deploy(ctx, dir, sabot.WithFunctionName("greeter"), sabot.DeployLimits(limits))
	if err != nil {
		t.Fatal(err)
	}
	wantSpec := &sabotv1.FunctionSpec{Name: "greeter", Outputs: []string{"greetings"},
		States: []*sabotv1.StateSpec{{Name: "seen", Kind: sabotv1.StateKind_STATE_KIND_VALUE, TtlMs: 60000}}}
	if diff := cmp.Diff(wantSpec, f.GetSpec(), protocmp.Transform()); diff != "" {
		t.Fatalf("registered spec (-want +got):\n%s", diff)
	}
	if f.GetVersion() != 1 || !cmp.Equal(limits, f.GetLimits(), protocmp.Transform()) {
		t.Fatalf("version %d limits %v", f.GetVersion(), f.GetLimits())
	}
	// The artifact is the built executable, stored by its hash.
	a := f.GetArtifact()
	r, err := env.store.Get(ctx, "artifacts/"+a.GetSha256())
	if err != nil {
		t.Fatal(err)
	}
	content, err := io.ReadAll(r)
	_ = r.Close()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	if hex.EncodeToString(sum[:]) != a.GetSha256() || int64(len(content)) != a.GetSize() {
		t.Fatalf("artifact %v does not describe the stored %d bytes", a, len(content))
	}
	if !strings.HasPrefix(string(content), "\x7fELF") {
		t.Fatal("the artifact is not a Linux (ELF) executable")
	}

	again, err := env.client.Deploy(ctx, dir, sabot.WithFunctionName("greeter"))
	if err != nil {
		t.Fatal(err)
	}
	if again.GetVersion() != 2 || again.GetArtifact().GetSha256() != a.GetSha256() {
		t.Fatalf("redeploy: version %d artifact %s, want 2 and the same (-trimpath builds are reproducible)", again.GetVersion(), again.GetArtifact().GetSha256())
	}
	got, err := env.client.GetFunction(ctx, "greeter")
	if err != nil || got.GetVersion() != 2 {
		t.Fatalf("GetFunction: %v %v", got, err)
	}
	all, err := env.client.ListFunctions(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("ListFunctions: %v %v", all, err)
	}
}

func TestClientDeployBuildErrors(t *testing.T) {
	t.Parallel()
	env := startClientEnv(t)
	cases := []struct {
		name string
		dir  string
		want []string
	}{
		{"compile error", clientWriteProgram(t, "package main\n\nfunc main() { nope() }\n"), []string{"building", "undefined: nope"}},
		{"not main", clientWriteProgram(t, "package lib\n\nfunc F() {}\n"), []string{"not a main package"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := env.client.Deploy(t.Context(), tc.dir)
			var be *sabot.DeployBuildError
			if !errors.As(err, &be) {
				t.Fatalf("error %v, want a *DeployBuildError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	t.Run("not a directory", func(t *testing.T) {
		t.Parallel()
		_, err := env.client.Deploy(t.Context(), filepath.Join(t.TempDir(), "missing"))
		if err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("prints no description", func(t *testing.T) {
		t.Parallel()
		_, err := env.client.Deploy(t.Context(), clientWriteProgram(t, clientDescriber("not json")))
		if err == nil || !strings.Contains(err.Error(), "printed no DescribeResponse") {
			t.Fatalf("error %v", err)
		}
	})
}

// clientDescribeServer is a function process as far as DeployURL sees it.
type clientDescribeServer struct {
	sabotv1connect.UnimplementedFunctionProcessServiceHandler
}

func (clientDescribeServer) Describe(context.Context, *connect.Request[sabotv1.DescribeRequest]) (*connect.Response[sabotv1.DescribeResponse], error) {
	return connect.NewResponse(&sabotv1.DescribeResponse{Sdk: "test/1", Functions: []*sabotv1.FunctionSpec{
		{Name: "remote", States: []*sabotv1.StateSpec{{Name: "n", Kind: sabotv1.StateKind_STATE_KIND_LIST, Lazy: true}}},
	}}), nil
}

func TestClientDeployURL(t *testing.T) {
	t.Parallel()
	env := startClientEnv(t)
	path, h := sabotv1connect.NewFunctionProcessServiceHandler(clientDescribeServer{})
	url := clientServeH2C(t, path, h)
	f, err := env.client.DeployURL(t.Context(), url, "")
	if err != nil {
		t.Fatal(err)
	}
	if f.GetUrl() != url || f.GetSpec().GetName() != "remote" || !f.GetSpec().GetStates()[0].GetLazy() || f.GetVersion() != 1 {
		t.Fatalf("registered %v", f)
	}
	if _, err := env.client.DeployURL(t.Context(), url, "elsewhere"); err == nil || !strings.Contains(err.Error(), `no function "elsewhere" (it declares remote)`) {
		t.Fatalf("deploy of an undeclared name: %v", err)
	}
}

// clientFakeWorker answers Invoke as a worker's FunctionService would,
// echoing what it got.
type clientFakeWorker struct {
	sabotv1connect.UnimplementedFunctionServiceHandler
}

func (clientFakeWorker) Invoke(_ context.Context, req *connect.Request[sabotv1.InvokeRequest]) (*connect.Response[sabotv1.InvokeResponse], error) {
	m := req.Msg
	return connect.NewResponse(&sabotv1.InvokeResponse{
		Payload:   fmt.Appendf(nil, "%s/%s@%s: %s", m.GetFunction(), m.GetKey(), m.GetJobId(), m.GetPayload()),
		Replayed:  m.GetIdempotencyKey() != "",
		Committed: !m.GetUncommitted(),
	}), nil
}

// clientPlaceFunction stores a running job "j-echo" running function echo,
// placed whole on a worker serving address.
func clientPlaceFunction(t *testing.T, kv clientv3.KV, address string) {
	t.Helper()
	spec := &sabotv1.JobSpec{Name: "echo", Graph: &sabotv1.JobGraph{Vertices: []*sabotv1.Vertex{
		{Id: "invocations", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Invocations{Invocations: &sabotv1.InvocationSource{}}}},
		{Id: "echo", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Function{Function: &sabotv1.FunctionStep{Name: "echo"}}}},
	}}}
	job := &sabotv1.Job{Id: "j-echo", Spec: spec, Status: &sabotv1.JobStatus{State: sabotv1.JobState_JOB_STATE_RUNNING, Attempt: 1}}
	puts := map[string]string{
		cluster.JobKey("j-echo"):              cluster.Marshal(job),
		cluster.WorkerKey("w1"):               cluster.Marshal(&clusterv1.Worker{Id: "w1", Address: address}),
		cluster.AssignmentKey("w1", "j-echo"): cluster.Marshal(&clusterv1.Assignment{JobId: "j-echo", Attempt: 1, WorkerId: "w1", Spec: spec}),
	}
	for k, v := range puts {
		if _, err := kv.Put(t.Context(), k, v); err != nil {
			t.Fatal(err)
		}
	}
}

func TestClientInvoke(t *testing.T) {
	t.Parallel()
	env := startClientEnv(t)
	path, h := sabotv1connect.NewFunctionServiceHandler(clientFakeWorker{})
	clientPlaceFunction(t, env.etcd.Client, clientServeH2C(t, path, h))
	ctx := t.Context()

	reply, err := env.client.Invoke(ctx, "echo", "alice", []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if string(reply) != "echo/alice@j-echo: hi" {
		t.Fatalf("reply %q", reply)
	}
	r, err := env.client.InvokeResult(ctx, "echo", "bob", nil, sabot.WithIdempotencyKey("once"), sabot.WithJob("j-echo"), sabot.Uncommitted())
	if err != nil {
		t.Fatal(err)
	}
	if want := (sabot.InvokeReply{Payload: []byte("echo/bob@j-echo: "), Replayed: true}); !cmp.Equal(want, *r) {
		t.Fatalf("reply %+v, want %+v", *r, want)
	}
	_, err = env.client.Invoke(ctx, "nobody", "k", nil)
	clientWantCode(t, err, connect.CodeNotFound, "invoke nobody/k", "not running in any job")
	_, err = env.client.Invoke(ctx, "echo", "k", nil, sabot.WithJob("j-other"))
	clientWantCode(t, err, connect.CodeNotFound, "j-other")
}

func TestClientJobs(t *testing.T) {
	t.Parallel()
	env := startClientEnv(t)
	ctx := t.Context()
	end := int64(5)
	job, err := env.client.DeployJob(ctx, &sabotv1.JobSpec{Name: "seq", Graph: &sabotv1.JobGraph{
		Vertices: []*sabotv1.Vertex{
			{Id: "s", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{Sequence: &sabotv1.SequenceSource{End: &end}}}},
			{Id: "out", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Blackhole{Blackhole: &sabotv1.BlackholeSink{}}}},
		},
		Edges: []*sabotv1.Edge{{From: "s", To: "out"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := env.client.GetJob(ctx, job.GetId())
	if err != nil || got.GetSpec().GetName() != "seq" {
		t.Fatalf("GetJob: %v %v", got, err)
	}
	jobs, err := env.client.ListJobs(ctx)
	if err != nil || len(jobs) != 1 || jobs[0].GetId() != job.GetId() {
		t.Fatalf("ListJobs: %v %v", jobs, err)
	}
	_, err = env.client.TriggerSavepoint(ctx, &sabotv1.TriggerSavepointRequest{JobId: job.GetId()})
	clientWantCode(t, err, connect.CodeFailedPrecondition, job.GetId())
	_, err = env.client.GetSavepoint(ctx, job.GetId(), "nope")
	clientWantCode(t, err, connect.CodeNotFound)
	canceled, err := env.client.CancelJob(ctx, job.GetId())
	if err != nil || canceled.GetStatus().GetState() != sabotv1.JobState_JOB_STATE_CANCELED {
		t.Fatalf("CancelJob: %v %v", canceled, err)
	}
	_, err = env.client.DeployJob(ctx, &sabotv1.JobSpec{Name: "bad name!"})
	clientWantCode(t, err, connect.CodeInvalidArgument, "deploy job")
}
