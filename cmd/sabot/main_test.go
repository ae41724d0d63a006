package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/testkit"
)

// sabot runs the CLI in process against addr and returns stdout and the
// error the binary would print (describe(err)) or "".
func sabot(t *testing.T, addr string, args ...string) (string, string) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"--addr", addr}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := root.ExecuteContext(ctx); err != nil {
		return out.String(), describe(err)
	}
	return out.String(), ""
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// exampleWithOutput copies examples/sequence-to-file.yaml with its file
// sink's path pointed at dir.
func exampleWithOutput(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile("../../examples/sequence-to-file.yaml")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)(path:\s*)[^,}\s]+`)
	if !re.Match(data) {
		t.Fatal("examples/sequence-to-file.yaml has no file sink path to redirect")
	}
	return writeFile(t, "sequence-to-file.yaml", re.ReplaceAllString(string(data), "${1}"+dir))
}

func jobState(t *testing.T, p *testkit.Platform, id string) sabotv1.JobState {
	t.Helper()
	resp, err := p.Jobs.GetJob(context.Background(), connect.NewRequest(&sabotv1.GetJobRequest{JobId: id}))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.GetJob().GetStatus().GetState()
}

var jobIDLine = regexp.MustCompile(`(?m)^([0-9a-f]{20})\s`)

// TestDeployListGetCancel walks the tour of the README: deploy an example,
// watch its file sink fill, list and show it, deploy an unbounded job and
// cancel it.
func TestDeployListGetCancel(t *testing.T) {
	t.Parallel()
	p := testkit.StartPlatform(t, testkit.PlatformOptions{})
	out := t.TempDir()

	stdout, errLine := sabot(t, p.Addr(), "deploy", "-f", exampleWithOutput(t, out))
	if errLine != "" {
		t.Fatalf("deploy: %s", errLine)
	}
	m := jobIDLine.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("deploy printed no job id:\n%s", stdout)
	}
	id := m[1]
	testkit.Eventually(t, 30*time.Second, func() error {
		if s := jobState(t, p, id); s != sabotv1.JobState_JOB_STATE_FINISHED {
			return fmt.Errorf("job is %s", s)
		}
		return nil
	})
	parts, _ := filepath.Glob(filepath.Join(out, "*.jsonl"))
	var lines int
	for _, part := range parts {
		b, err := os.ReadFile(part)
		if err != nil {
			t.Fatal(err)
		}
		lines += bytes.Count(b, []byte("\n"))
	}
	if lines == 0 {
		t.Fatalf("the file sink wrote nothing under %s (%d part files)", out, len(parts))
	}

	stdout, errLine = sabot(t, p.Addr(), "jobs")
	if errLine != "" || !strings.Contains(stdout, id) || !strings.Contains(stdout, "FINISHED") {
		t.Fatalf("jobs: %s\n%s", errLine, stdout)
	}
	stdout, errLine = sabot(t, p.Addr(), "jobs", "get", id)
	if errLine != "" || !strings.Contains(stdout, "State:") || !strings.Contains(stdout, "Graph:") {
		t.Fatalf("jobs get: %s\n%s", errLine, stdout)
	}
	stdout, errLine = sabot(t, p.Addr(), "jobs", "-o", "json")
	if errLine != "" {
		t.Fatal(errLine)
	}
	var listed struct {
		Jobs []struct {
			ID     string `json:"id"`
			Status struct {
				State string `json:"state"`
			} `json:"status"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(stdout), &listed); err != nil {
		t.Fatalf("jobs -o json is not JSON: %v\n%s", err, stdout)
	}
	if len(listed.Jobs) != 1 || listed.Jobs[0].ID != id || listed.Jobs[0].Status.State != "JOB_STATE_FINISHED" {
		t.Fatalf("jobs -o json: %+v", listed)
	}

	demo, err := os.ReadFile("../../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	stdout, errLine = sabot(t, p.Addr(), "deploy", "-f", writeFile(t, "demo.yaml", string(demo)))
	if errLine != "" {
		t.Fatal(errLine)
	}
	demoID := jobIDLine.FindStringSubmatch(stdout)[1]
	testkit.Eventually(t, 30*time.Second, func() error {
		if s := jobState(t, p, demoID); s != sabotv1.JobState_JOB_STATE_RUNNING {
			return fmt.Errorf("demo is %s", s)
		}
		return nil
	})
	if _, errLine = sabot(t, p.Addr(), "cancel", demoID); errLine != "" {
		t.Fatal(errLine)
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		if s := jobState(t, p, demoID); s != sabotv1.JobState_JOB_STATE_CANCELED {
			return fmt.Errorf("demo is %s", s)
		}
		return nil
	})
}

// TestCheckpoints: `sabot checkpoints` lists what the workers recorded,
// newest first, as a table and as JSON, and names an unknown job.
func TestCheckpoints(t *testing.T) {
	t.Parallel()
	p := testkit.StartPlatform(t, testkit.PlatformOptions{Workers: 1})
	stdout, errLine := sabot(t, p.Addr(), "deploy", "-f", exampleWithOutput(t, t.TempDir()))
	if errLine != "" {
		t.Fatal(errLine)
	}
	id := jobIDLine.FindStringSubmatch(stdout)[1]

	stdout, errLine = sabot(t, p.Addr(), "checkpoints", id)
	if errLine != "" || !strings.Contains(stdout, "Latest completed: none") {
		t.Fatalf("checkpoints of a job without any: %s\n%s", errLine, stdout)
	}

	// What a worker records: 1 completed, 2 failed, 3 in progress.
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, info := range []*sabotv1.CheckpointInfo{
		{Id: 1, Status: sabotv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED, TriggerTime: timestamppb.New(t0), DurationMs: 1500, SizeBytes: 2048, IncrementalSizeBytes: 512},
		{Id: 2, Status: sabotv1.CheckpointStatus_CHECKPOINT_STATUS_FAILED, TriggerTime: timestamppb.New(t0.Add(time.Second)), DurationMs: 30, FailureReason: "checkpoint: declined by out/0"},
		{Id: 3, Status: sabotv1.CheckpointStatus_CHECKPOINT_STATUS_IN_PROGRESS, TriggerTime: timestamppb.New(t0.Add(2 * time.Second))},
	} {
		if err := cluster.RecordCheckpoint(ctx, p.Etcd(), id, info); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cluster.CommitCheckpoint(ctx, p.Etcd(), &clusterv1.LatestCheckpoint{JobId: id, CheckpointId: 1}, 0); err != nil {
		t.Fatal(err)
	}

	stdout, errLine = sabot(t, p.Addr(), "checkpoints", id)
	if errLine != "" {
		t.Fatal(errLine)
	}
	for _, want := range []string{"Latest completed: 1", "ID", "STATUS", "INCREMENTAL", "COMPLETED", "1.5s", "2.0 KiB", "512 B", "checkpoint: declined by out/0", "IN_PROGRESS"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("checkpoints table lacks %q:\n%s", want, stdout)
		}
	}
	if i3, i2, i1 := strings.Index(stdout, "\n3 "), strings.Index(stdout, "\n2 "), strings.Index(stdout, "\n1 "); i3 < 0 || i3 > i2 || i2 > i1 {
		t.Errorf("rows are not newest first:\n%s", stdout)
	}

	stdout, errLine = sabot(t, p.Addr(), "checkpoints", id, "-o", "json")
	if errLine != "" {
		t.Fatal(errLine)
	}
	var listed struct {
		Checkpoints []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"checkpoints"`
		LatestCompleted string `json:"latestCompleted"`
	}
	if err := json.Unmarshal([]byte(stdout), &listed); err != nil {
		t.Fatalf("checkpoints -o json is not JSON: %v\n%s", err, stdout)
	}
	if len(listed.Checkpoints) != 3 || listed.Checkpoints[0].ID != "3" || listed.Checkpoints[2].Status != "CHECKPOINT_STATUS_COMPLETED" || listed.LatestCompleted != "1" {
		t.Fatalf("checkpoints -o json: %+v", listed)
	}

	if _, errLine = sabot(t, p.Addr(), "checkpoints", "000000000000deadbeef"); !strings.Contains(errLine, "not_found") {
		t.Fatalf("checkpoints of an unknown job: %q", errLine)
	}
}

// TestDeployRejectsBadManifests: a wrong manifest exits non-zero naming the
// file, line and field, and nothing reaches the gateway.
func TestDeployRejectsBadManifests(t *testing.T) {
	t.Parallel()
	p := testkit.StartPlatform(t, testkit.PlatformOptions{Workers: 1})
	cases := []struct {
		name, manifest string
		want           []string
	}{
		{
			name: "misspelled field",
			manifest: "name: typo\nsteps:\n  - id: numbers\n    paralelism: 2\n    sequence: {start: 1, end: 10}\n" +
				"  - id: out\n    print: {}\n",
			want: []string{"bad.yaml:4:5:", "paralelism", "parallelism"},
		},
		{
			name: "negative parallelism",
			manifest: "name: negative\nparallelism: -3\nsteps:\n  - id: numbers\n    sequence: {start: 1, end: 10}\n" +
				"  - id: out\n    print: {}\n",
			want: []string{"bad.yaml:2:", "parallelism"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, errLine := sabot(t, p.Addr(), "deploy", "-f", writeFile(t, "bad.yaml", tc.manifest))
			if errLine == "" {
				t.Fatal("deploy of a bad manifest succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(errLine, w) {
					t.Errorf("error does not mention %q:\n%s", w, errLine)
				}
			}
		})
	}
	t.Cleanup(func() {
		resp, err := p.Jobs.ListJobs(context.Background(), connect.NewRequest(&sabotv1.ListJobsRequest{}))
		if err != nil {
			t.Error(err)
		} else if n := len(resp.Msg.GetJobs()); n != 0 {
			t.Errorf("%d jobs stored from bad manifests", n)
		}
	})
}

// TestUnreachableGateway: a CLI error is one line naming what failed.
func TestUnreachableGateway(t *testing.T) {
	t.Parallel()
	_, errLine := sabot(t, "127.0.0.1:1", "jobs")
	if errLine == "" || strings.Contains(errLine, "\n") || !strings.HasPrefix(errLine, "sabot: ") {
		t.Fatalf("want a one-line error, got %q", errLine)
	}
}
