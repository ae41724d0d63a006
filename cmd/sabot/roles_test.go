package main

import (
	"context"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	clientv3 "go.etcd.io/etcd/client/v3"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/testkit"
)

// startRole runs a production role as a child process (startProc with
// the test's environment).
func startRole(t *testing.T, bin, name string, args ...string) *proc {
	t.Helper()
	return startProc(t, bin, name, nil, args...)
}

// TestRolesSurviveWorkerSIGKILL runs the production roles as separate
// processes against one etcd: a gateway, a scheduler and two workers. The
// worker running a job is killed with SIGKILL; when its lease expires the
// scheduler places the job on the other worker as a new attempt.
func TestRolesSurviveWorkerSIGKILL(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	etcd := testkit.StartEtcd(t)
	endpoints := etcd.Endpoints[0]
	addr := testkit.FreeAddr(t)

	startRole(t, bin, "gateway", "gateway", "--etcd", endpoints, "--addr", addr)
	startRole(t, bin, "scheduler", "scheduler", "--etcd", endpoints)
	workers := map[string]*proc{}
	for i := range 2 {
		id := fmt.Sprintf("w%d", i)
		workers[id] = startRole(t, bin, id, "worker", "--etcd", endpoints, "--slots", "2", "--id", id)
	}
	client := sabotv1connect.NewJobServiceClient(http.DefaultClient, "http://"+addr)
	testkit.Eventually(t, 60*time.Second, func() error {
		resp, err := etcd.Client.Get(context.Background(), cluster.WorkersPrefix, clientv3.WithPrefix())
		if err != nil {
			return err
		}
		if len(resp.Kvs) != 2 {
			return fmt.Errorf("%d workers registered", len(resp.Kvs))
		}
		_, err = client.ListJobs(context.Background(), connect.NewRequest(&sabotv1.ListJobsRequest{}))
		return err
	})

	stdout, errLine := sabot(t, addr, "deploy", "-f", writeFile(t, "demo.yaml", mustRead(t, "../../examples/demo.yaml")))
	if errLine != "" {
		t.Fatal(errLine)
	}
	id := jobIDLine.FindStringSubmatch(stdout)[1]
	before := waitFor(t, client, id, sabotv1.JobState_JOB_STATE_RUNNING, 1)
	victim := before.GetStatus().GetTasks()[0].GetWorkerId()

	killed := workers[victim]
	if killed == nil {
		t.Fatalf("job runs on %q, not one of the started workers", victim)
	}
	if err := syscall.Kill(-killed.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-killed.done

	after := waitFor(t, client, id, sabotv1.JobState_JOB_STATE_RUNNING, before.GetStatus().GetAttempt()+1)
	for _, task := range after.GetStatus().GetTasks() {
		if task.GetWorkerId() == victim {
			t.Fatalf("task %s/%d still placed on the killed worker", task.GetVertexId(), task.GetSubtask())
		}
	}
}
