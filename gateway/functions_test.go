package gateway_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/sabotdev/sabot/gateway"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/testkit"
)

// functionGateway is a gateway with clients of both its services.
type functionGateway struct {
	etcd *testkit.Etcd
	addr string
	jobs sabotv1connect.JobServiceClient
	fns  sabotv1connect.FunctionServiceClient
}

// startFunctionGateway starts a gateway on a fresh etcd with store as its
// blob store (nil: none).
func startFunctionGateway(t *testing.T, store blob.Store) functionGateway {
	t.Helper()
	etcd := testkit.StartEtcd(t)
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
	hc := &http.Client{Timeout: 30 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	url := "http://" + g.Addr()
	return functionGateway{
		etcd: etcd, addr: g.Addr(),
		jobs: sabotv1connect.NewJobServiceClient(hc, url),
		fns:  sabotv1connect.NewFunctionServiceClient(hc, url),
	}
}

func openFileStore(t *testing.T) *blob.FileStore {
	t.Helper()
	store, err := blob.OpenFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// urlFunction is a registration request of a function served at a URL.
func urlFunction(name, url string) *sabotv1.Function {
	return &sabotv1.Function{
		Spec: &sabotv1.FunctionSpec{Name: name, States: []*sabotv1.StateSpec{
			{Name: "count", Kind: sabotv1.StateKind_STATE_KIND_VALUE},
		}},
		Source: &sabotv1.Function_Url{Url: url},
	}
}

// wantCode checks that err is a connect error with code whose message
// holds every want.
func wantCode(t *testing.T, err error, code connect.Code, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", code)
	}
	if connect.CodeOf(err) != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not mention %q", err, w)
		}
	}
}

func deployFunction(t *testing.T, c sabotv1connect.FunctionServiceClient, f *sabotv1.Function) *sabotv1.Function {
	t.Helper()
	resp, err := c.DeployFunction(t.Context(), connect.NewRequest(&sabotv1.DeployFunctionRequest{Function: f}))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.GetFunction()
}

// jobsRunning returns the jobs whose spec runs function name, oldest
// first.
func jobsRunning(t *testing.T, kv clientv3.KV, name string) []*sabotv1.Job {
	t.Helper()
	recs, _, err := cluster.List(t.Context(), kv, cluster.JobsPrefix, cluster.NewJob, cluster.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*sabotv1.Job
	for _, r := range recs {
		if cluster.RunsFunction(r.Value.GetSpec(), name) {
			out = append(out, r.Value)
		}
	}
	return out
}

func storedJob(t *testing.T, kv clientv3.KV, id string) *sabotv1.Job {
	t.Helper()
	rec, err := cluster.Get(t.Context(), kv, cluster.JobKey(id), cluster.NewJob)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Value
}

// setJob moves a job as the scheduler would.
func setJob(t *testing.T, kv clientv3.KV, id string, fn func(*sabotv1.Job)) {
	t.Helper()
	if _, err := cluster.UpdateJob(t.Context(), kv, id, func(j *sabotv1.Job) (bool, error) {
		fn(j)
		return true, nil
	}, nil, nil); err != nil {
		t.Fatal(err)
	}
}

// putJob stores a job record directly, as a gateway of any version could
// have, without the deploy path's checks.
func putJob(t *testing.T, kv clientv3.KV, job *sabotv1.Job) {
	t.Helper()
	if _, err := kv.Put(t.Context(), cluster.JobKey(job.GetId()), cluster.Marshal(job)); err != nil {
		t.Fatal(err)
	}
}

func invocationsVertex() *sabotv1.Vertex {
	return &sabotv1.Vertex{Id: "invocations", Parallelism: 1, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Invocations{Invocations: &sabotv1.InvocationSource{}}}}
}

func functionVertex(id, name string, parallelism int32, f *sabotv1.Function) *sabotv1.Vertex {
	return &sabotv1.Vertex{Id: id, Parallelism: parallelism, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Function{Function: &sabotv1.FunctionStep{Name: name, Function: f}}}}
}

func TestUploadArtifact(t *testing.T) {
	t.Parallel()
	store := openFileStore(t)
	gw := startFunctionGateway(t, store)
	content := []byte("#!/bin/true\nan executable, as far as the gateway cares\n")
	sum := sha256Hex(content)

	for range 2 { // the second upload finds it stored
		resp, err := gw.fns.UploadArtifact(t.Context(), connect.NewRequest(&sabotv1.UploadArtifactRequest{Sha256: sum, Content: content}))
		if err != nil {
			t.Fatal(err)
		}
		want := &sabotv1.Artifact{Sha256: sum, Size: int64(len(content))}
		if diff := cmp.Diff(want, resp.Msg.GetArtifact(), protocmp.Transform()); diff != "" {
			t.Fatalf("artifact (-want +got):\n%s", diff)
		}
	}
	r, err := store.Get(t.Context(), "artifacts/"+sum)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := io.ReadAll(r)
	_ = r.Close()
	if err != nil || !bytes.Equal(stored, content) {
		t.Fatalf("stored artifact %q (%v), want the uploaded content", stored, err)
	}

	t.Run("hash mismatch", func(t *testing.T) {
		other := sha256Hex([]byte("other"))
		_, err := gw.fns.UploadArtifact(t.Context(), connect.NewRequest(&sabotv1.UploadArtifactRequest{Sha256: other, Content: content}))
		wantCode(t, err, connect.CodeInvalidArgument, other, sum, "sha256")
		if ok, _ := store.Exists(t.Context(), "artifacts/"+other); ok {
			t.Fatal("a mismatching upload was stored")
		}
	})
	t.Run("not a hash", func(t *testing.T) {
		_, err := gw.fns.UploadArtifact(t.Context(), connect.NewRequest(&sabotv1.UploadArtifactRequest{Sha256: "abc", Content: content}))
		wantCode(t, err, connect.CodeInvalidArgument, "sha256")
	})
	t.Run("no blob store", func(t *testing.T) {
		t.Parallel()
		bare := startFunctionGateway(t, nil)
		_, err := bare.fns.UploadArtifact(t.Context(), connect.NewRequest(&sabotv1.UploadArtifactRequest{Sha256: sum, Content: content}))
		wantCode(t, err, connect.CodeFailedPrecondition, "blob store")
		_, err = bare.fns.DeployFunction(t.Context(), connect.NewRequest(&sabotv1.DeployFunctionRequest{Function: &sabotv1.Function{
			Spec: &sabotv1.FunctionSpec{Name: "f"}, Source: &sabotv1.Function_Artifact{Artifact: &sabotv1.Artifact{Sha256: sum, Size: int64(len(content))}},
		}}))
		wantCode(t, err, connect.CodeFailedPrecondition, "blob store")
	})
}

// TestUploadLargeArtifact: an executable-sized request (far above the
// usual 4 MiB of gRPC stacks) goes through the server, the handler's read
// limit (256 MiB) and the blob store.
func TestUploadLargeArtifact(t *testing.T) {
	t.Parallel()
	store := openFileStore(t)
	gw := startFunctionGateway(t, store)
	content := bytes.Repeat([]byte("0123456789abcdef"), 24<<20/16) // 24 MiB
	sum := sha256Hex(content)
	resp, err := gw.fns.UploadArtifact(t.Context(), connect.NewRequest(&sabotv1.UploadArtifactRequest{Sha256: sum, Content: content}))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Msg.GetArtifact().GetSize() != int64(len(content)) {
		t.Fatalf("size %d, want %d", resp.Msg.GetArtifact().GetSize(), len(content))
	}
	info, err := store.Stat(t.Context(), "artifacts/"+sum)
	if err != nil || info.Size != int64(len(content)) {
		t.Fatalf("stored %+v (%v)", info, err)
	}
}

func TestDeployFunctionRefusals(t *testing.T) {
	t.Parallel()
	store := openFileStore(t)
	gw := startFunctionGateway(t, store)
	content := []byte("stored artifact")
	if _, err := gw.fns.UploadArtifact(t.Context(), connect.NewRequest(&sabotv1.UploadArtifactRequest{Sha256: sha256Hex(content), Content: content})); err != nil {
		t.Fatal(err)
	}
	missing := sha256Hex([]byte("never uploaded"))
	artifact := func(sum string, size int64) *sabotv1.Function {
		return &sabotv1.Function{Spec: &sabotv1.FunctionSpec{Name: "art"}, Source: &sabotv1.Function_Artifact{Artifact: &sabotv1.Artifact{Sha256: sum, Size: size}}}
	}
	cases := []struct {
		name string
		f    *sabotv1.Function
		code connect.Code
		want []string
	}{
		{"missing artifact", artifact(missing, 10), connect.CodeNotFound, []string{missing, "upload it first"}},
		{"artifact size", artifact(sha256Hex(content), 99), connect.CodeInvalidArgument, []string{"size", "99", "15 bytes"}},
		{"no source", &sabotv1.Function{Spec: &sabotv1.FunctionSpec{Name: "nosrc"}}, connect.CodeInvalidArgument, []string{"artifact or a url"}},
		{"no spec", &sabotv1.Function{Source: &sabotv1.Function_Url{Url: "http://x"}}, connect.CodeInvalidArgument, []string{"function.spec"}},
		{"bad name", urlFunction("Bad_Name", "http://x"), connect.CodeInvalidArgument, []string{"function.spec.name"}},
		{"bad url", urlFunction("ftp", "ftp://host/x"), connect.CodeInvalidArgument, []string{"function.url", "ftp://host/x"}},
		{"duplicate states", &sabotv1.Function{Spec: &sabotv1.FunctionSpec{Name: "dup", States: []*sabotv1.StateSpec{
			{Name: "a", Kind: sabotv1.StateKind_STATE_KIND_VALUE}, {Name: "a", Kind: sabotv1.StateKind_STATE_KIND_LIST},
		}}, Source: &sabotv1.Function_Url{Url: "http://x"}}, connect.CodeInvalidArgument, []string{"state names must be unique"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gw.fns.DeployFunction(t.Context(), connect.NewRequest(&sabotv1.DeployFunctionRequest{Function: tc.f}))
			wantCode(t, err, tc.code, tc.want...)
			if name := tc.f.GetSpec().GetName(); name != "" {
				_, err := gw.fns.GetFunction(t.Context(), connect.NewRequest(&sabotv1.GetFunctionRequest{Name: name}))
				wantCode(t, err, connect.CodeNotFound, name)
			}
		})
	}
	if jobs := jobsRunning(t, gw.etcd.Client, "art"); len(jobs) != 0 {
		t.Fatalf("a refused deploy created jobs: %v", jobs)
	}
}

// TestDeployFunctionJob: the first deploy of a function creates its own
// job; later deploys redeploy it (a swap while the job is unplaced, then a
// redeploy request on status.rescale that the scheduler's RescaledSpec
// applies); once the job ended, a deploy creates a new one.
func TestDeployFunctionJob(t *testing.T) {
	t.Parallel()
	store := openFileStore(t)
	gw := startFunctionGateway(t, store)
	kv := gw.etcd.Client
	content := []byte("greeter v1")
	sum := sha256Hex(content)
	if _, err := gw.fns.UploadArtifact(t.Context(), connect.NewRequest(&sabotv1.UploadArtifactRequest{Sha256: sum, Content: content})); err != nil {
		t.Fatal(err)
	}
	req := &sabotv1.Function{
		Spec:   &sabotv1.FunctionSpec{Name: "greeter", States: []*sabotv1.StateSpec{{Name: "seen", Kind: sabotv1.StateKind_STATE_KIND_VALUE}}},
		Source: &sabotv1.Function_Artifact{Artifact: &sabotv1.Artifact{Sha256: sum, Size: int64(len(content))}},
		Limits: &sabotv1.FunctionLimits{CallTimeoutMs: 2000},
	}

	v1 := deployFunction(t, gw.fns, req)
	if v1.GetVersion() != 1 || v1.GetUpdatedAt() == nil {
		t.Fatalf("first deploy: version %d updated_at %v", v1.GetVersion(), v1.GetUpdatedAt())
	}
	jobs := jobsRunning(t, kv, "greeter")
	if len(jobs) != 1 {
		t.Fatalf("%d jobs run greeter, want 1", len(jobs))
	}
	job := jobs[0]
	want := &sabotv1.JobSpec{
		Name:        "greeter",
		Parallelism: 1,
		Labels:      map[string]string{"sabot.function": "greeter"},
		Checkpointing: &sabotv1.Checkpointing{
			IntervalMs: 250,
			Mode:       sabotv1.CheckpointMode_CHECKPOINT_MODE_EXACTLY_ONCE,
		},
		Graph: &sabotv1.JobGraph{
			Vertices: []*sabotv1.Vertex{invocationsVertex(), functionVertex("greeter", "greeter", 0, v1)},
			Edges: []*sabotv1.Edge{{From: "invocations", To: "greeter",
				Partitioning: sabotv1.Partitioning_PARTITIONING_HASH, KeyFields: []string{"key"}}},
		},
	}
	if diff := cmp.Diff(want, job.GetSpec(), protocmp.Transform()); diff != "" {
		t.Fatalf("function job spec (-want +got):\n%s", diff)
	}
	if job.GetStatus().GetState() != sabotv1.JobState_JOB_STATE_CREATED {
		t.Fatalf("function job is %s, want CREATED", job.GetStatus().GetState())
	}

	// Not placed yet: the new registration replaces the old in the spec.
	v2 := deployFunction(t, gw.fns, req)
	if v2.GetVersion() != 2 {
		t.Fatalf("second deploy: version %d, want 2", v2.GetVersion())
	}
	job = storedJob(t, kv, job.GetId())
	if diff := cmp.Diff(v2, job.GetSpec().GetGraph().GetVertices()[1].GetOperator().GetFunction().GetFunction(), protocmp.Transform()); diff != "" {
		t.Fatalf("unplaced job's registration (-want +got):\n%s", diff)
	}
	if job.GetStatus().GetRescale() != nil {
		t.Fatalf("unplaced job got a redeploy request: %v", job.GetStatus().GetRescale())
	}

	// Running: the deploy records a redeploy, as RescaleJob records a rescale.
	setJob(t, kv, job.GetId(), func(j *sabotv1.Job) {
		j.Status.State, j.Status.Attempt = sabotv1.JobState_JOB_STATE_RUNNING, 1
	})
	v3 := deployFunction(t, gw.fns, req)
	job = storedJob(t, kv, job.GetId())
	rs := job.GetStatus().GetRescale()
	if rs.GetCause() != "redeploy" || rs.GetRequestedAt() == nil || rs.GetParallelism() != 0 || len(rs.GetVertexParallelism()) != 0 {
		t.Fatalf("redeploy request %v, want cause redeploy with a time and no parallelism change", rs)
	}
	if diff := cmp.Diff(v3, rs.GetFunction(), protocmp.Transform()); diff != "" {
		t.Fatalf("redeploy's registration (-want +got):\n%s", diff)
	}
	if got := job.GetSpec().GetGraph().GetVertices()[1].GetOperator().GetFunction().GetFunction().GetVersion(); got != 2 {
		t.Fatalf("the running spec changed to version %d before the restart", got)
	}

	// A deploy during the redeploy replaces its registration.
	v4 := deployFunction(t, gw.fns, req)
	job = storedJob(t, kv, job.GetId())
	if got := job.GetStatus().GetRescale().GetFunction().GetVersion(); got != v4.GetVersion() || got != 4 {
		t.Fatalf("redeploy carries version %d, want 4", got)
	}
	// What the scheduler starts the next attempt with.
	next := cluster.RescaledSpec(job.GetSpec(), job.GetStatus().GetRescale())
	if diff := cmp.Diff(v4, next.GetGraph().GetVertices()[1].GetOperator().GetFunction().GetFunction(), protocmp.Transform()); diff != "" {
		t.Fatalf("rescaled spec's registration (-want +got):\n%s", diff)
	}
	if n := len(jobsRunning(t, kv, "greeter")); n != 1 {
		t.Fatalf("%d jobs run greeter after redeploys, want 1", n)
	}

	// Ended: the next deploy starts a new job.
	setJob(t, kv, job.GetId(), func(j *sabotv1.Job) {
		j.Status.State, j.Status.Rescale = sabotv1.JobState_JOB_STATE_CANCELED, nil
	})
	v5 := deployFunction(t, gw.fns, req)
	jobs = jobsRunning(t, kv, "greeter")
	if len(jobs) != 2 {
		t.Fatalf("%d jobs run greeter, want the canceled one and a new one", len(jobs))
	}
	for _, j := range jobs {
		if j.GetId() == job.GetId() {
			continue
		}
		if got := j.GetSpec().GetGraph().GetVertices()[1].GetOperator().GetFunction().GetFunction().GetVersion(); got != v5.GetVersion() {
			t.Fatalf("new job runs version %d, want %d", got, v5.GetVersion())
		}
	}

	t.Run("get and list", func(t *testing.T) {
		deployFunction(t, gw.fns, urlFunction("alpha", "https://alpha.example/fn"))
		got, err := gw.fns.GetFunction(t.Context(), connect.NewRequest(&sabotv1.GetFunctionRequest{Name: "greeter"}))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(v5, got.Msg.GetFunction(), protocmp.Transform()); diff != "" {
			t.Fatalf("GetFunction (-want +got):\n%s", diff)
		}
		_, err = gw.fns.GetFunction(t.Context(), connect.NewRequest(&sabotv1.GetFunctionRequest{Name: "nobody"}))
		wantCode(t, err, connect.CodeNotFound, `"nobody"`)
		list, err := gw.fns.ListFunctions(t.Context(), connect.NewRequest(&sabotv1.ListFunctionsRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range list.Msg.GetFunctions() {
			names = append(names, f.GetSpec().GetName())
		}
		if diff := cmp.Diff([]string{"alpha", "greeter"}, names); diff != "" {
			t.Fatalf("ListFunctions (-want +got):\n%s", diff)
		}
	})
}

// TestRedeployCases: how a deploy treats the jobs that run its function
// besides the function's own: a user's pipeline gets the request too; a
// job without checkpointing, or being redeployed for another function,
// refuses the deploy (nothing is stored); a rescale in progress takes the
// function along.
func TestRedeployCases(t *testing.T) {
	t.Parallel()
	gw := startFunctionGateway(t, nil)
	kv := gw.etcd.Client
	running := func(id string, spec *sabotv1.JobSpec, rescale *sabotv1.Rescale) *sabotv1.Job {
		job := &sabotv1.Job{Id: id, Spec: spec, Status: &sabotv1.JobStatus{State: sabotv1.JobState_JOB_STATE_RUNNING, Attempt: 3, Rescale: rescale}}
		putJob(t, kv, job)
		return job
	}
	pipeline := func(name string, fns ...string) *sabotv1.JobSpec {
		spec := &sabotv1.JobSpec{Name: name, Checkpointing: &sabotv1.Checkpointing{IntervalMs: 1000},
			Graph: &sabotv1.JobGraph{Vertices: []*sabotv1.Vertex{invocationsVertex()}}}
		for _, fn := range fns {
			spec.Graph.Vertices = append(spec.Graph.Vertices, functionVertex("step-"+fn, fn, 2, urlFunction(fn, "http://old")))
		}
		return spec
	}

	t.Run("no checkpointing", func(t *testing.T) {
		spec := pipeline("plain", "nock")
		spec.Checkpointing = nil
		running("j-nock", spec, nil)
		_, err := gw.fns.DeployFunction(t.Context(), connect.NewRequest(&sabotv1.DeployFunctionRequest{Function: urlFunction("nock", "http://new")}))
		wantCode(t, err, connect.CodeFailedPrecondition, "j-nock", "checkpointing")
		_, err = gw.fns.GetFunction(t.Context(), connect.NewRequest(&sabotv1.GetFunctionRequest{Name: "nock"}))
		wantCode(t, err, connect.CodeNotFound)
	})

	t.Run("redeploy of another function in progress", func(t *testing.T) {
		other := urlFunction("fb", "http://fb")
		running("j-two", pipeline("two", "fa", "fb"), &sabotv1.Rescale{Cause: "redeploy", Function: other})
		_, err := gw.fns.DeployFunction(t.Context(), connect.NewRequest(&sabotv1.DeployFunctionRequest{Function: urlFunction("fa", "http://new")}))
		wantCode(t, err, connect.CodeFailedPrecondition, "j-two", "fb", "again")
		if got := storedJob(t, kv, "j-two").GetStatus().GetRescale().GetFunction().GetSpec().GetName(); got != "fb" {
			t.Fatalf("the redeploy in progress now carries %q", got)
		}
	})

	t.Run("rescale in progress and a pipeline", func(t *testing.T) {
		running("j-user", pipeline("user", "fc"), &sabotv1.Rescale{Cause: "user", Parallelism: 4})
		running("j-pipe", pipeline("pipe", "fc"), nil)
		ending := running("j-ending", pipeline("ending", "fc"), nil)
		setJob(t, kv, ending.GetId(), func(j *sabotv1.Job) { j.Status.State = sabotv1.JobState_JOB_STATE_CANCELING })
		f := deployFunction(t, gw.fns, urlFunction("fc", "http://new"))

		user := storedJob(t, kv, "j-user").GetStatus().GetRescale()
		if user.GetCause() != "user" || user.GetParallelism() != 4 || !proto.Equal(user.GetFunction(), f) {
			t.Fatalf("rescale in progress became %v", user)
		}
		if rs := storedJob(t, kv, "j-pipe").GetStatus().GetRescale(); rs.GetCause() != "redeploy" || !proto.Equal(rs.GetFunction(), f) {
			t.Fatalf("pipeline's redeploy request %v", rs)
		}
		if rs := storedJob(t, kv, "j-ending").GetStatus().GetRescale(); rs != nil {
			t.Fatalf("a canceling job got a redeploy request: %v", rs)
		}
		// Jobs ran it, so no function job was made.
		if n := len(jobsRunning(t, kv, "fc")); n != 3 {
			t.Fatalf("%d jobs run fc, want the 3 stored", n)
		}
	})
}

// filledSpec is s → key → f (function step of greeter) → out.
func filledSpec(f *sabotv1.Function) *sabotv1.JobSpec {
	end := int64(3)
	return &sabotv1.JobSpec{
		Name: "pipeline", Checkpointing: &sabotv1.Checkpointing{IntervalMs: 1000},
		Graph: &sabotv1.JobGraph{
			Vertices: []*sabotv1.Vertex{
				{Id: "s", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{Sequence: &sabotv1.SequenceSource{End: &end}}}},
				{Id: "key", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Map{Map: &sabotv1.MapOperator{
					Columns: []*sabotv1.NamedExpression{{Name: "key", Expr: "CAST(value AS VARCHAR)"}}}}}},
				functionVertex("f", "greeter", 0, f),
				{Id: "out", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Print{Print: &sabotv1.PrintSink{}}}},
			},
			Edges: []*sabotv1.Edge{
				{From: "s", To: "key"},
				{From: "key", To: "f", Partitioning: sabotv1.Partitioning_PARTITIONING_HASH, KeyFields: []string{"key"}},
				{From: "f", To: "out"},
			},
		},
	}
}

// TestDeployJobFillsFunctions: DeployJob fills a function step's
// registration from the registry, leaves a filled one alone, and refuses
// a step whose function is not registered.
func TestDeployJobFillsFunctions(t *testing.T) {
	t.Parallel()
	gw := startFunctionGateway(t, nil)
	kv := gw.etcd.Client

	_, err := gw.jobs.DeployJob(t.Context(), connect.NewRequest(&sabotv1.DeployJobRequest{Spec: filledSpec(nil)}))
	wantCode(t, err, connect.CodeNotFound, "spec.graph.vertices[2] (f)", `function "greeter" is not registered`, "deploy it first")

	reg, err := cluster.RegisterFunction(t.Context(), kv, urlFunction("greeter", "http://greeter"), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := gw.jobs.DeployJob(t.Context(), connect.NewRequest(&sabotv1.DeployJobRequest{Spec: filledSpec(nil)}))
	if err != nil {
		t.Fatal(err)
	}
	stored := storedJob(t, kv, resp.Msg.GetJob().GetId())
	if diff := cmp.Diff(reg, stored.GetSpec().GetGraph().GetVertices()[2].GetOperator().GetFunction().GetFunction(), protocmp.Transform()); diff != "" {
		t.Fatalf("filled registration (-want +got):\n%s", diff)
	}

	own := urlFunction("greeter", "http://pinned")
	resp, err = gw.jobs.DeployJob(t.Context(), connect.NewRequest(&sabotv1.DeployJobRequest{Spec: filledSpec(own)}))
	if err != nil {
		t.Fatal(err)
	}
	stored = storedJob(t, kv, resp.Msg.GetJob().GetId())
	if diff := cmp.Diff(own, stored.GetSpec().GetGraph().GetVertices()[2].GetOperator().GetFunction().GetFunction(), protocmp.Transform()); diff != "" {
		t.Fatalf("a given registration was replaced (-want +got):\n%s", diff)
	}
}

// TestDeployFunctionNoJob: a deploy with no_job registers the function and
// starts no job for it.
func TestDeployFunctionNoJob(t *testing.T) {
	t.Parallel()
	gw := startFunctionGateway(t, openFileStore(t))
	resp, err := gw.fns.DeployFunction(t.Context(), connect.NewRequest(&sabotv1.DeployFunctionRequest{
		Function: urlFunction("quiet", "http://127.0.0.1:1"), NoJob: true}))
	if err != nil {
		t.Fatal(err)
	}
	if v := resp.Msg.GetFunction().GetVersion(); v != 1 {
		t.Fatalf("version %d, want 1", v)
	}
	if jobs := jobsRunning(t, gw.etcd.Client, "quiet"); len(jobs) != 0 {
		t.Fatalf("%d jobs run the function deployed with no_job", len(jobs))
	}
}
