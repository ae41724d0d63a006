package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kgo"
	clientv3 "go.etcd.io/etcd/client/v3"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/manifest"
	"github.com/sabotdev/sabot/internal/testkit"
)

// cluster is a Sabot cluster of child processes of the built binary on
// loopback: a gateway, schedulers and workers, with the harness's etcd
// and Kafka and a file blob store.
type procCluster struct {
	t          *testing.T
	bin        string
	etcd       *testkit.Etcd
	kafka      *testkit.Kafka
	blobURL    string
	addr       string // the gateway's
	client     sabotv1connect.JobServiceClient
	schedulers map[string]*proc
	workers    map[string]*proc
	nworkers   int
	slots      int
	workerEnv  []string // extra environment of worker processes
}

func startProcCluster(t *testing.T, schedulers, workers, slots int, workerEnv ...string) *procCluster {
	c := &procCluster{t: t, bin: buildBinary(t), etcd: testkit.StartEtcd(t),
		kafka:      testkit.StartKafka(t, testkit.WithTopics(4, "in", "out")),
		schedulers: map[string]*proc{}, workers: map[string]*proc{}, slots: slots, workerEnv: workerEnv}
	c.blobURL, _, _ = fileBlob(t)
	addr := testkit.FreeAddr(t)
	c.addr = addr
	startProc(t, c.bin, "gateway", nil, "gateway", "--etcd", c.etcd.Endpoints[0], "--addr", addr, "--blob-store", c.blobURL)
	for i := range schedulers {
		id := "s" + strconv.Itoa(i+1)
		c.schedulers[id] = startProc(t, c.bin, id, nil, "scheduler", "--etcd", c.etcd.Endpoints[0], "--id", id, "--lease-ttl", "2s")
	}
	for range workers {
		c.addWorker()
	}
	c.client = sabotv1connect.NewJobServiceClient(http.DefaultClient, "http://"+addr)
	c.waitWorkers(workers)
	return c
}

// addWorker starts one more worker process.
func (c *procCluster) addWorker() string {
	c.nworkers++
	id := "w" + strconv.Itoa(c.nworkers)
	c.workers[id] = startProc(c.t, c.bin, id, c.workerEnv, "worker", "--etcd", c.etcd.Endpoints[0], "--slots", strconv.Itoa(c.slots),
		"--id", id, "--blob-store", c.blobURL, "--lease-ttl", "2s", "--metrics-interval", "1s")
	return id
}

// waitWorkers waits until n workers are registered and the gateway answers.
func (c *procCluster) waitWorkers(n int) {
	testkit.Eventually(c.t, 60*time.Second, func() error {
		resp, err := c.etcd.Client.Get(context.Background(), cluster.WorkersPrefix, clientv3.WithPrefix())
		if err != nil {
			return err
		}
		if len(resp.Kvs) != n {
			return fmt.Errorf("%d workers registered, want %d", len(resp.Kvs), n)
		}
		_, err = c.client.ListJobs(context.Background(), connect.NewRequest(&sabotv1.ListJobsRequest{}))
		return err
	})
}

// leader returns the id of the scheduler that leads now.
func (c *procCluster) leader() string {
	resp, err := c.etcd.Client.Get(context.Background(), cluster.ElectionPrefix, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1))
	if err != nil || len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// deployCount deploys the keyed-count job (crashJob) at parallelism p,
// exactly-once into Kafka, checkpointed every 200 ms.
func (c *procCluster) deployCount(p int32) string {
	brokers, _ := json.Marshal(c.kafka.Addrs)
	spec, err := manifest.Parse("count.yaml", fmt.Appendf(nil, crashJob, string(brokers[1:len(brokers)-1])))
	if err != nil {
		c.t.Fatal(err)
	}
	spec.Parallelism = p
	spec.Checkpointing = &sabotv1.Checkpointing{IntervalMs: 200}
	sink := spec.GetGraph().GetVertices()[2].GetOperator().GetKafkaSink()
	sink.Delivery = sabotv1.DeliveryGuarantee_DELIVERY_GUARANTEE_EXACTLY_ONCE
	sink.TransactionTimeoutMs = 120_000
	spec.RestartStrategy = &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_FixedDelay{
		FixedDelay: &sabotv1.FixedDelayRestart{DelayMs: 100}}}
	dep, err := c.client.DeployJob(context.Background(), connect.NewRequest(&sabotv1.DeployJobRequest{Spec: spec}))
	if err != nil {
		c.t.Fatal(err)
	}
	return dep.Msg.GetJob().GetId()
}

// outputWatch consumes the committed output in the background and notes
// when each record became visible to a read_committed consumer.
type outputWatch struct {
	t  *testing.T
	mu sync.Mutex
	at []time.Time // arrival times, in order
}

func (c *procCluster) watchOutput() *outputWatch {
	w := &outputWatch{t: c.t}
	cons := c.kafka.Client(c.t, kgo.ConsumeTopics("out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cons.PollFetches(ctx)
			now := time.Now()
			w.mu.Lock()
			fs.EachRecord(func(*kgo.Record) { w.at = append(w.at, now) })
			w.mu.Unlock()
		}
	}()
	c.t.Cleanup(func() { cancel(); <-done })
	return w
}

func (w *outputWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.at)
}

// grows waits until more committed output than seen so far appears.
func (w *outputWatch) grows(what string) {
	w.t.Helper()
	before := w.count()
	deadline := time.Now().Add(60 * time.Second)
	for w.count() <= before {
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: no new committed output within 60 s (%d records so far)", what, before)
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.t.Logf("%s: committed output keeps coming (%d records)", what, w.count())
}

// longestGap is the longest time in [from, to] without committed output
// becoming visible (the pause a read_committed consumer sees).
func (w *outputWatch) longestGap(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var gap time.Duration
	prev := from
	for _, x := range w.at {
		if x.Before(from) {
			continue
		}
		if x.After(to) {
			break
		}
		gap = max(gap, x.Sub(prev))
		prev = x
	}
	return max(gap, to.Sub(prev))
}

// workersOf returns the distinct workers the job's tasks run on.
func workersOf(job *sabotv1.Job) []string {
	var ids []string
	for _, t := range job.GetStatus().GetTasks() {
		if !slices.Contains(ids, t.GetWorkerId()) {
			ids = append(ids, t.GetWorkerId())
		}
	}
	slices.Sort(ids)
	return ids
}

// TestDistributedFailover runs 2 schedulers, 3 workers and the gateway as
// separate processes. A Kafka → keyed count → transactional Kafka job at
// parallelism 4 is spread over the workers (2 slots each); input flows
// throughout. One worker running part of the job is SIGKILLed (the job
// restarts from its latest checkpoint on the others), then the leading
// scheduler (the standby takes over; the job keeps running the same
// attempt), then a new worker joins. The job keeps producing after each
// step, and the read_committed output is exactly-once: every key's counts
// are 1..n, each once.
func TestDistributedFailover(t *testing.T) {
	t.Parallel()
	c := startProcCluster(t, 2, 3, 2)
	id := c.deployCount(4)
	prod := startProducer(t, c.kafka, 50)
	out := c.watchOutput()

	job := waitFor(t, c.client, id, sabotv1.JobState_JOB_STATE_RUNNING, 1)
	spread := workersOf(job)
	t.Logf("attempt %d runs on %v", job.GetStatus().GetAttempt(), spread)
	if len(spread) < 2 {
		t.Fatalf("parallelism 4 on workers of 2 slots runs on %v: not spread", spread)
	}
	out.grows("before any failure")

	// 1. A worker dies.
	victim := spread[0]
	killed := time.Now()
	c.workers[victim].kill()
	delete(c.workers, victim)
	job = waitFor(t, c.client, id, sabotv1.JobState_JOB_STATE_RUNNING, job.GetStatus().GetAttempt()+1)
	t.Logf("worker %s SIGKILLed: attempt %d running on %v after %s", victim, job.GetStatus().GetAttempt(), workersOf(job), time.Since(killed).Round(time.Millisecond))
	if slices.Contains(workersOf(job), victim) {
		t.Fatalf("the new attempt runs on the dead worker %s", victim)
	}
	out.grows("after the worker kill")

	// 2. The leading scheduler dies; the standby takes over. The job's
	// tasks keep running: the attempt does not change.
	lead := c.leader()
	if c.schedulers[lead] == nil {
		t.Fatalf("leader %q is not a started scheduler", lead)
	}
	attempt := job.GetStatus().GetAttempt()
	killed = time.Now()
	c.schedulers[lead].kill()
	delete(c.schedulers, lead)
	testkit.Eventually(t, 30*time.Second, func() error {
		if l := c.leader(); l == "" || l == lead {
			return fmt.Errorf("leader is %q", l)
		}
		return nil
	})
	t.Logf("scheduler %s SIGKILLed: %s leads after %s", lead, c.leader(), time.Since(killed).Round(time.Millisecond))
	out.grows("after the scheduler kill")
	job = waitFor(t, c.client, id, sabotv1.JobState_JOB_STATE_RUNNING, 1)
	if job.GetStatus().GetAttempt() != attempt {
		t.Errorf("scheduler failover restarted the job: attempt %d → %d", attempt, job.GetStatus().GetAttempt())
	}

	// 3. A new worker joins; the new leader sees it.
	c.addWorker()
	c.waitWorkers(3)
	ws, err := c.client.ListWorkers(context.Background(), connect.NewRequest(&sabotv1.ListWorkersRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(ws.Msg.GetWorkers()) != 3 {
		t.Fatalf("ListWorkers: %d workers, want 3", len(ws.Msg.GetWorkers()))
	}
	out.grows("after a worker joined")

	produced := prod.stop()
	checkCountOutput(t, c.kafka, produced, true, "a worker and the leading scheduler SIGKILLed, a worker added")
	if _, err := c.client.CancelJob(context.Background(), connect.NewRequest(&sabotv1.CancelJobRequest{JobId: id})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c.client, id, sabotv1.JobState_JOB_STATE_CANCELED, 0)
}

// TestRescaleKeepsState rescales a running keyed-count job 2 → 4 → 1
// through the API while input flows, on worker processes. Each rescale
// stops the job with a savepoint and restarts it at the new parallelism,
// each subtask restoring its key groups; the read_committed output must
// still be exactly-once (every key's counts 1..n, each once: no state lost
// or counted twice). The pause of each rescale is reported two ways: the
// scheduler's (savepoint complete → every new task running) and the
// output's: the longest time, from the request until a second after the
// new attempt produced, in which no committed output became visible to a
// read_committed consumer (last output before → first output after).
func TestRescaleKeepsState(t *testing.T) {
	t.Parallel()
	c := startProcCluster(t, 1, 3, 4)
	id := c.deployCount(2)
	prod := startProducer(t, c.kafka, 50)
	out := c.watchOutput()
	job := waitFor(t, c.client, id, sabotv1.JobState_JOB_STATE_RUNNING, 1)
	out.grows("at parallelism 2")

	for _, p := range []int32{4, 1} {
		from := job.GetStatus().GetAttempt()
		requested := time.Now()
		if _, err := c.client.RescaleJob(context.Background(), connect.NewRequest(&sabotv1.RescaleJobRequest{JobId: id, Parallelism: p})); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 90*time.Second, func() error {
			resp, err := c.client.GetJob(context.Background(), connect.NewRequest(&sabotv1.GetJobRequest{JobId: id}))
			if err != nil {
				return err
			}
			job = resp.Msg.GetJob()
			lr := job.GetStatus().GetLastRescale()
			if job.GetStatus().GetState() != sabotv1.JobState_JOB_STATE_RUNNING || job.GetStatus().GetAttempt() <= from ||
				lr.GetRunningAt() == nil || lr.GetTo()["count"] != p {
				return fmt.Errorf("job %s attempt %d (%q), last rescale %v", job.GetStatus().GetState(), job.GetStatus().GetAttempt(), job.GetStatus().GetMessage(), lr)
			}
			return nil
		})
		lr := job.GetStatus().GetLastRescale()
		for _, task := range job.GetStatus().GetTasks() {
			if task.GetSubtask() >= p {
				t.Fatalf("after rescaling to %d: task %s/%d", p, task.GetVertexId(), task.GetSubtask())
			}
		}
		out.grows(fmt.Sprintf("at parallelism %d", p))
		time.Sleep(time.Second) // output after the restart settles
		gap := out.longestGap(requested, time.Now())
		t.Logf("rescale %d → %d: requested → running %s; pause (savepoint complete → all tasks running) %s; longest gap in committed output %s",
			lr.GetFrom()["count"], p, lr.GetRunningAt().AsTime().Sub(requested).Round(time.Millisecond),
			lr.GetRunningAt().AsTime().Sub(lr.GetStoppedAt().AsTime()).Round(time.Millisecond), gap.Round(time.Millisecond))
	}
	produced := prod.stop()
	checkCountOutput(t, c.kafka, produced, true, "rescaled 2 → 4 → 1")
}
