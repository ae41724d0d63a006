package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
	clientv3 "go.etcd.io/etcd/client/v3"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/testkit"
)

// TestFunctionFlags: flag mistakes of deploy (function forms), invoke and
// functions are one-line errors found before anything is sent (the
// address is unreachable).
func TestFunctionFlags(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"dir and manifest", []string{"deploy", "./fn", "-f", "job.yaml"}, "sabot: deploy: -f deploys a manifest; a function is deployed from a directory or --url"},
		{"dir and url", []string{"deploy", "./fn", "--url", "http://fn"}, "sabot: deploy: give a directory or --url, not both"},
		{"url and savepoint", []string{"deploy", "--url", "http://fn", "--from-savepoint", "savepoints/x/_metadata"}, "--from-savepoint applies to manifests"},
		{"name alone", []string{"deploy", "--name", "greeter"}, "sabot: deploy: --name applies only with a directory or --url"},
		{"nothing to deploy", []string{"deploy"}, "sabot: deploy: -f is required: the manifest to deploy (or a function: deploy DIR, deploy --url URL)"},
		{"manifest without -f", []string{"deploy", "job.yaml"}, "sabot: deploy: job.yaml looks like a manifest; deploy it with -f job.yaml"},
		{"two dirs", []string{"deploy", "a", "b"}, "accepts at most 1 arg(s), received 2"},
		{"invoke without function", []string{"invoke", "--key", "k"}, "accepts 1 arg(s), received 0"},
		{"invoke without key", []string{"invoke", "greeter", "--data", "{}"}, "sabot: invoke: --key is required: the instance of greeter to send to"},
		{"invoke timeout", []string{"invoke", "greeter", "--key", "k", "--timeout", "0s"}, "sabot: invoke: --timeout 0s: must be positive"},
		{"invoke bad flag", []string{"invoke", "greeter", "--key", "k", "--uncommitted=maybe"}, `invalid argument "maybe" for "--uncommitted"`},
		{"functions takes no args", []string{"functions", "x"}, `unknown command "x" for "sabot functions"`},
		{"deploy dir that is missing", []string{"deploy", "/nonexistent/fn"}, "sabot: deploy: /nonexistent/fn is not a directory holding a Go main package"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, errLine := sabot(t, "127.0.0.1:1", tc.args...)
			if !strings.Contains(errLine, tc.want) || strings.Contains(errLine, "\n") {
				t.Fatalf("error %q, want one line with %q", errLine, tc.want)
			}
		})
	}
}

// fnServeH2C serves h on loopback over HTTP/2 without TLS only, as workers
// and function processes serve, until the test ends; it returns the URL.
func fnServeH2C(t *testing.T, path string, h http.Handler) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(path, h)
	return testkit.ServeH2C(t, mux)
}

// fnProcess describes one function, "remote", as a function process does.
type fnProcess struct {
	sabotv1connect.UnimplementedFunctionProcessServiceHandler
}

func (fnProcess) Describe(context.Context, *connect.Request[sabotv1.DescribeRequest]) (*connect.Response[sabotv1.DescribeResponse], error) {
	return connect.NewResponse(&sabotv1.DescribeResponse{Functions: []*sabotv1.FunctionSpec{{Name: "remote", States: []*sabotv1.StateSpec{
		{Name: "seen", Kind: sabotv1.StateKind_STATE_KIND_MAP, Lazy: true, TtlMs: 3600000},
		{Name: "count", Kind: sabotv1.StateKind_STATE_KIND_VALUE},
	}}}}), nil
}

// fnWorker answers Invoke as a worker does, echoing the request.
type fnWorker struct {
	sabotv1connect.UnimplementedFunctionServiceHandler
}

func (fnWorker) Invoke(_ context.Context, req *connect.Request[sabotv1.InvokeRequest]) (*connect.Response[sabotv1.InvokeResponse], error) {
	m := req.Msg
	return connect.NewResponse(&sabotv1.InvokeResponse{
		Payload:  fmt.Appendf(nil, "%s/%s@%s: %s", m.GetFunction(), m.GetKey(), m.GetJobId(), m.GetPayload()),
		Replayed: m.GetIdempotencyKey() == "again", Committed: !m.GetUncommitted(),
	}), nil
}

// fnPlace stores a running job j-echo running function echo, placed whole
// on worker w1 at address.
func fnPlace(t *testing.T, kv clientv3.KV, address string) {
	t.Helper()
	spec := &sabotv1.JobSpec{Name: "echo", Graph: &sabotv1.JobGraph{Vertices: []*sabotv1.Vertex{
		{Id: "invocations", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Invocations{Invocations: &sabotv1.InvocationSource{}}}},
		{Id: "echo", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Function{Function: &sabotv1.FunctionStep{Name: "echo"}}}},
	}}}
	putJob(t, kv, &sabotv1.Job{Id: "j-echo", Spec: spec, Status: &sabotv1.JobStatus{State: sabotv1.JobState_JOB_STATE_RUNNING, Attempt: 1}})
	for k, v := range map[string]string{
		cluster.WorkerKey("w1"):               cluster.Marshal(&clusterv1.Worker{Id: "w1", Address: address}),
		cluster.AssignmentKey("w1", "j-echo"): cluster.Marshal(&clusterv1.Assignment{JobId: "j-echo", Attempt: 1, WorkerId: "w1", Spec: spec}),
	} {
		if _, err := kv.Put(t.Context(), k, v); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFunctionCommands runs deploy --url, functions and invoke against a
// real gateway, with a function process and a worker played by the test.
func TestFunctionCommands(t *testing.T) {
	t.Parallel()
	gw, kv := startBareGateway(t)
	addr := gw.Addr()

	t.Run("deploy url and list", func(t *testing.T) {
		path, h := sabotv1connect.NewFunctionProcessServiceHandler(fnProcess{})
		url := fnServeH2C(t, path, h)
		out, errLine := sabot(t, addr, "deploy", "--url", url)
		if errLine != "" {
			t.Fatal(errLine)
		}
		if !strings.Contains(out, "remote") || !strings.Contains(out, url) {
			t.Fatalf("deploy printed %q", out)
		}
		out, errLine = sabot(t, addr, "functions")
		if errLine != "" {
			t.Fatal(errLine)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") {
			t.Fatalf("functions printed %q", out)
		}
		for _, want := range []string{"remote", " 1 ", url, "seen (map, lazy, ttl 1h0m0s), count (value)"} {
			if !strings.Contains(lines[1], want) {
				t.Fatalf("functions row %q lacks %q", lines[1], want)
			}
		}
		out, errLine = sabot(t, addr, "functions", "-o", "json")
		// protojson varies its spacing on purpose: look for the parts.
		if errLine != "" || !strings.Contains(out, `"url"`) || !strings.Contains(out, `"`+url+`"`) {
			t.Fatalf("functions -o json: %q %q", out, errLine)
		}
	})

	t.Run("deploy dir without a blob store", func(t *testing.T) {
		dir := t.TempDir()
		src := "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {\n\tif os.Getenv(\"SABOT_FUNCTION_DESCRIBE\") == \"1\" {\n\t\tfmt.Println(`{\"functions\":[{\"name\":\"local\"}]}`)\n\t}\n}\n"
		for name, content := range map[string]string{"go.mod": "module example.com/fn\n\ngo 1.26\n", "main.go": src} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, errLine := sabot(t, addr, "deploy", dir)
		if want := "sabot: failed_precondition: this gateway has no blob store"; !strings.HasPrefix(errLine, want) {
			t.Fatalf("error %q, want %q", errLine, want)
		}
	})

	t.Run("invoke", func(t *testing.T) {
		path, h := sabotv1connect.NewFunctionServiceHandler(fnWorker{})
		fnPlace(t, kv, fnServeH2C(t, path, h))
		out, errLine := sabot(t, addr, "invoke", "echo", "--key", "alice", "--data", `{"n":1}`)
		if errLine != "" {
			t.Fatal(errLine)
		}
		if want := "echo/alice@j-echo: {\"n\":1}\n"; out != want {
			t.Fatalf("invoke printed %q, want %q", out, want)
		}
		out, errLine = sabot(t, addr, "invoke", "echo", "--key", "bob", "--idempotency-key", "again", "--job", "j-echo", "--uncommitted")
		if errLine != "" {
			t.Fatal(errLine)
		}
		if !strings.Contains(out, "sabot: replayed") || !strings.HasSuffix(out, "echo/bob@j-echo: \n") {
			t.Fatalf("invoke of a replayed request printed %q", out)
		}
		out, errLine = sabot(t, addr, "-o", "json", "invoke", "echo", "--key", "carol", "--uncommitted")
		if errLine != "" || !strings.Contains(out, `"reply":"echo/carol`) || !strings.Contains(out, `"committed":false`) {
			t.Fatalf("invoke -o json: %q %q", out, errLine)
		}
		_, errLine = sabot(t, addr, "invoke", "nobody", "--key", "k")
		if want := "sabot: not_found: function nobody is not running in any job; deploy it"; !strings.HasPrefix(errLine, want) {
			t.Fatalf("error %q, want %q", errLine, want)
		}
	})
}
