package main

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/testkit"
	sdk "github.com/sabotdev/sabot/sdk/go"
)

// TestFunctionExactlyOnceSurvivesSIGKILL runs Kafka → the counter function
// (forwarding every fifth message of key k to key "f"+k, a message
// between subtasks when another owns that key)
// (a child process of each worker, deployed with the SDK's Deploy: built,
// uploaded by hash, fetched and verified by the workers) → transactional
// Kafka at parallelism 2 over two worker processes, while input flows, and
// SIGKILLs at random moments alternately a function process (the worker
// restarts it and retries the calls in flight) and a worker (the job
// restarts from its latest checkpoint on the workers left and a new one).
// The read_committed output must hold every count of every key exactly
// once, and the function's state, read back through Invoke, must equal
// the number of inputs per key.
func TestFunctionExactlyOnceSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	kills := 8
	if *longCrash {
		kills = 40
	}
	c := startProcCluster(t, 1, 2, 2, "SABOT_COUNTER_FORWARD=1")
	ctx := context.Background()
	client := sdk.NewClient("http://" + c.addr)
	defer client.Close()
	if _, err := client.Deploy(ctx, counterDir, sdk.DeployNoJob()); err != nil {
		t.Fatal(err)
	}
	job, err := client.DeployJob(ctx, counterSpec(t, c.kafka))
	if err != nil {
		t.Fatal(err)
	}
	id := job.GetId()
	job = waitFor(t, c.client, id, sabotv1.JobState_JOB_STATE_RUNNING, 1)
	prod := startProducer(t, c.kafka, 50)
	defer prod.stop()

	rng := rand.New(rand.NewPCG(5, 6))
	fnKills, workerKills := 0, 0
	for i := range kills {
		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
		if i%2 == 0 {
			// A function process of a worker running the job.
			var pids []int
			testkit.Eventually(t, 30*time.Second, func() error {
				pids = nil
				for _, w := range workersOf(job) {
					if p := c.workers[w]; p != nil {
						pids = append(pids, childPIDs(p.cmd.Process.Pid)...)
					}
				}
				if len(pids) == 0 {
					return fmt.Errorf("no function process runs under the job's workers %v", workersOf(job))
				}
				return nil
			})
			pid := pids[rng.IntN(len(pids))]
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatalf("kill function process %d: %v", pid, err)
			}
			fnKills++
			t.Logf("kill %d: function process %d killed (attempt %d)", i+1, pid, job.GetStatus().GetAttempt())
			continue
		}
		ws := workersOf(job)
		victim := ws[rng.IntN(len(ws))]
		killedAt := time.Now()
		c.workers[victim].kill()
		delete(c.workers, victim)
		c.addWorker()
		workerKills++
		job = waitFor(t, c.client, id, sabotv1.JobState_JOB_STATE_RUNNING, job.GetStatus().GetAttempt()+1)
		t.Logf("kill %d: worker %s killed; attempt %d running after %s", i+1, victim, job.GetStatus().GetAttempt(), time.Since(killedAt).Round(time.Millisecond))
	}
	produced := prod.stop()
	// Every fifth message of key k also sent one to key "f"+k, through the
	// outbox when another subtask owns it.
	forwarded := int64(0)
	for k, n := range maps.Clone(produced) {
		produced["f"+k] = n / 5
		forwarded += n / 5
	}
	checkCountOutput(t, c.kafka, produced, true, fmt.Sprintf("%d function process kills, %d worker kills, %d messages between keys",
		fnKills, workerKills, forwarded))
	checkCounterState(t, client, id, produced)
	if _, err := c.client.CancelJob(ctx, connect.NewRequest(&sabotv1.CancelJobRequest{JobId: id})); err != nil {
		t.Fatal(err)
	}
}

// childPIDs lists the child processes of pid (Linux /proc).
func childPIDs(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}
