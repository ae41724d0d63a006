package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kgo"
	clientv3 "go.etcd.io/etcd/client/v3"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/manifest"
	"github.com/sabotdev/sabot/internal/testkit"
	sabotrt "github.com/sabotdev/sabot/worker/runtime"
)

// longCrash runs the crash tests' long form: many more kills and records.
var longCrash = flag.Bool("sabot.long", false, "run the long form of the crash tests (50 kills)")

// crashJob is the job under test: Kafka (4 partitions) → keyed running
// count per record → Kafka, checkpointed every 200 ms.
const crashJob = `
name: crash-count
parallelism: 2
steps:
  - id: in
    kafka_source:
      brokers: [%[1]s]
      topics: [in]
      columns: {key: string, seq: int64}
  - id: count
    key_by: [key]
    process:
      name: count-per-key
      output: {key: string, count: int64}
  - id: out
    kafka_sink:
      brokers: [%[1]s]
      topic: out
      key_fields: [key]
`

// proc is a child process of the built binary.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

func startProc(t *testing.T, bin, name string, env []string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(p.done) }() // joined by kill or the cleanup
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("%s log (tail):\n%s", name, b)
		}
	})
	return p
}

// kill sends SIGKILL to the process group and waits for the process.
func (p *proc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// crashSetup is one crash-test configuration.
type crashSetup struct {
	exactlyOnce bool
	pebble      bool
	blobURL     func(t *testing.T) (url string, env []string, store blob.Store)
}

func fileBlob(t *testing.T) (string, []string, blob.Store) {
	dir := t.TempDir()
	st, err := blob.OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return "file://" + dir, nil, st
}

func s3Blob(t *testing.T) (string, []string, blob.Store) {
	s3 := testkit.StartS3(t)
	url := fmt.Sprintf("s3://%s/ckpt?endpoint=%s&path_style=true&region=%s", s3.Bucket, s3.Endpoint, s3.Region)
	st, err := blob.Open(url, blob.Options{AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return url, []string{"AWS_ACCESS_KEY_ID=" + s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3.SecretKey}, st
}

// TestExactlyOnceSurvivesSIGKILL runs the job on worker child processes and
// SIGKILLs the worker running it at random moments (checkpoints run every
// 200 ms, so kills land during snapshots and uploads too), each time
// starting a replacement worker. Input keeps flowing throughout. Reading
// the output with read_committed, every key's counts must be exactly
// 1..n (n = its number of inputs): nothing lost, nothing duplicated. Once
// with the file blob store and heap state, once with the S3-compatible
// server and pebble state (incremental checkpoints). Afterwards the blob
// store holds only what the retained checkpoint references.
func TestExactlyOnceSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		runCrashTest(t, crashSetup{exactlyOnce: true, blobURL: fileBlob})
	})
	t.Run("s3", func(t *testing.T) {
		t.Parallel()
		runCrashTest(t, crashSetup{exactlyOnce: true, pebble: true, blobURL: s3Blob})
	})
}

// TestAtLeastOnceSurvivesSIGKILL is the same with at-least-once checkpoints
// and sink: nothing may be lost (every count 1..n appears), and duplicates
// appear — outputs written twice, and inputs that affected the count twice
// after a restore (the modes really differ).
func TestAtLeastOnceSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	runCrashTest(t, crashSetup{exactlyOnce: false, blobURL: fileBlob})
}

func runCrashTest(t *testing.T, setup crashSetup) {
	kills, keys := 10, 50
	if *longCrash {
		kills = 50
	}
	bin := buildBinary(t)
	etcd := testkit.StartEtcd(t)
	endpoints := etcd.Endpoints[0]
	kafka := testkit.StartKafka(t, testkit.WithTopics(4, "in", "out"))
	blobURL, env, store := setup.blobURL(t)
	addr := testkit.FreeAddr(t)

	startProc(t, bin, "gateway", env, "gateway", "--etcd", endpoints, "--addr", addr)
	startProc(t, bin, "scheduler", env, "scheduler", "--etcd", endpoints)
	nworker := 0
	newWorker := func() *proc {
		nworker++
		id := "w" + strconv.Itoa(nworker)
		return startProc(t, bin, id, env, "worker", "--etcd", endpoints, "--slots", "4", "--id", id,
			"--blob-store", blobURL, "--lease-ttl", "2s", "--log-level", "debug")
	}
	workers := map[string]*proc{}
	for range 2 {
		w := newWorker()
		workers["w"+strconv.Itoa(nworker)] = w
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

	brokers, _ := json.Marshal(kafka.Addrs)
	spec, err := manifest.Parse("crash.yaml", fmt.Appendf(nil, crashJob, string(brokers[1:len(brokers)-1])))
	if err != nil {
		t.Fatal(err)
	}
	spec.Checkpointing = &sabotv1.Checkpointing{IntervalMs: 200}
	if setup.pebble {
		spec.StateBackend = sabotv1.StateBackend_STATE_BACKEND_PEBBLE
	}
	sink := spec.GetGraph().GetVertices()[2].GetOperator().GetKafkaSink()
	if setup.exactlyOnce {
		sink.Delivery = sabotv1.DeliveryGuarantee_DELIVERY_GUARANTEE_EXACTLY_ONCE
		sink.TransactionTimeoutMs = 120_000
	} else {
		spec.Checkpointing.Mode = sabotv1.CheckpointMode_CHECKPOINT_MODE_AT_LEAST_ONCE
	}
	spec.RestartStrategy = &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_FixedDelay{
		FixedDelay: &sabotv1.FixedDelayRestart{DelayMs: 100}}}
	dep, err := client.DeployJob(context.Background(), connect.NewRequest(&sabotv1.DeployJobRequest{Spec: spec}))
	if err != nil {
		t.Fatal(err)
	}
	id := dep.Msg.GetJob().GetId()

	prod := startProducer(t, kafka, keys)
	defer prod.stop()

	job := waitFor(t, client, id, sabotv1.JobState_JOB_STATE_RUNNING, 1)
	rng := rand.New(rand.NewPCG(3, 4))
	var recoveries []time.Duration
	for i := range kills {
		// Let it run (and checkpoint) for a random while, then kill the
		// worker running it.
		time.Sleep(time.Duration(300+rng.IntN(1500)) * time.Millisecond)
		victim := job.GetStatus().GetTasks()[0].GetWorkerId()
		w := workers[victim]
		if w == nil {
			t.Fatalf("kill %d: job runs on %q, not a started worker", i, victim)
		}
		killedAt := time.Now()
		w.kill()
		delete(workers, victim)
		nw := newWorker()
		workers["w"+strconv.Itoa(nworker)] = nw
		job = waitFor(t, client, id, sabotv1.JobState_JOB_STATE_RUNNING, job.GetStatus().GetAttempt()+1)
		recovery := time.Since(killedAt)
		recoveries = append(recoveries, recovery)
		t.Logf("kill %d: worker %s killed; attempt %d running after %s", i+1, victim, job.GetStatus().GetAttempt(), recovery.Round(time.Millisecond))
	}
	slices.Sort(recoveries)
	t.Logf("kill to running again (lease TTL 2 s, restart delay 100 ms, restore): median %s, max %s",
		recoveries[len(recoveries)/2].Round(time.Millisecond), recoveries[len(recoveries)-1].Round(time.Millisecond))
	produced := prod.stop()
	checkCountOutput(t, kafka, produced, setup.exactlyOnce, fmt.Sprintf("%d kills", kills))
	if _, err := client.CancelJob(context.Background(), connect.NewRequest(&sabotv1.CancelJobRequest{JobId: id})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, client, id, sabotv1.JobState_JOB_STATE_CANCELED, 0)
	checkNoGarbage(t, etcd.Client, store, id)
}

// producer writes records to topic "in" until stopped: batches of 50 over
// the keys, each with a per-key sequence number, round robin over the
// partitions, every 20 ms.
type producer struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	produced map[string]int64 // written by the producer goroutine until stop
}

func startProducer(t *testing.T, kafka *testkit.Kafka, keys int) *producer {
	ctx, cancel := context.WithCancel(context.Background())
	p := &producer{cancel: cancel, produced: map[string]int64{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		cl := kafka.Client(t, kgo.DefaultProduceTopic("in"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
		rng := rand.New(rand.NewPCG(1, 2))
		for ctx.Err() == nil {
			var recs []*kgo.Record
			for range 50 {
				k := "k" + strconv.Itoa(rng.IntN(keys))
				p.produced[k]++
				recs = append(recs, &kgo.Record{Key: []byte(k), Value: fmt.Appendf(nil, `{"key":%q,"seq":%d}`, k, p.produced[k])})
			}
			if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

// stop stops producing and returns the inputs per key.
func (p *producer) stop() map[string]int64 {
	p.cancel()
	p.wg.Wait()
	return p.produced
}

// checkCountOutput reads topic "out" (read_committed) until every key's
// running count reached its number of inputs, then checks that every
// count 1..n appears: exactly once when exactlyOnce, at least once
// otherwise (and then that duplicates did occur). what describes the run
// for the log line.
func checkCountOutput(t *testing.T, kafka *testkit.Kafka, produced map[string]int64, exactlyOnce bool, what string) {
	t.Helper()
	total := int64(0)
	for _, n := range produced {
		total += n
	}
	counts := map[string][]int64{}
	got := 0
	cons := kafka.Client(t, kgo.ConsumeTopics("out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	deadline := time.Now().Add(90 * time.Second)
	for {
		done := true
		for k, n := range produced {
			if c := counts[k]; len(c) == 0 || maxOf(c) < n {
				done = false
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("output incomplete after 90 s: %d records read for %d inputs", got, total)
		}
		got += readCounts(t, cons, time.Second, counts)
	}
	// Drain what else is committed (a duplicate could come late).
	got += readCounts(t, cons, 2*time.Second, counts)

	dups, missing, overcounted := 0, 0, 0
	for k, n := range produced {
		seen := make(map[int64]int, n)
		for _, c := range counts[k] {
			switch {
			case c < 1:
				t.Errorf("key %s: count %d", k, c)
			case c > n && exactlyOnce:
				t.Errorf("key %s: count %d above its %d inputs", k, c, n)
			case c > n:
				// At least once: replayed inputs may count twice in state.
				overcounted++
			}
			seen[c]++
		}
		for c := int64(1); c <= n; c++ {
			switch seen[c] {
			case 0:
				missing++
				if missing <= 10 {
					t.Errorf("key %s: count %d missing (lost input)", k, c)
				}
			case 1:
			default:
				dups += seen[c] - 1
			}
		}
	}
	t.Logf("%d inputs over %d keys, %s, %d output records, %d duplicates, %d missing, %d counts above the inputs", total, len(produced), what, got, dups, missing, overcounted)
	if missing > 0 {
		t.Fatalf("%d outputs missing", missing)
	}
	if exactlyOnce && dups > 0 {
		t.Fatalf("%d duplicated outputs under exactly-once", dups)
	}
	if !exactlyOnce && dups+overcounted == 0 {
		t.Errorf("at-least-once run produced no duplicates (%s): the modes do not differ", what)
	}
}

// checkNoGarbage lists the job's objects in the blob store once it is
// stopped: every object must belong to a retained checkpoint (its
// directory, or a shared file its metadata references).
func checkNoGarbage(t *testing.T, kv clientv3.KV, store blob.Store, jobID string) {
	t.Helper()
	latest, _, err := cluster.LatestCheckpoint(context.Background(), kv, jobID)
	if err != nil || latest == nil {
		t.Fatalf("latest checkpoint: %v %v", latest, err)
	}
	keep := map[string]bool{}
	dirs := map[string]bool{}
	for _, n := range latest.GetRetained() {
		dirs[blob.CheckpointPrefix(jobID, n)] = true
		md, err := sabotrt.ReadMetadata(context.Background(), store, blob.CheckpointMetadataKey(jobID, n))
		if err != nil {
			t.Fatalf("retained checkpoint %d: %v", n, err)
		}
		for _, s := range md.GetOperators() {
			for _, f := range s.GetKeyed().GetPebble().GetFiles() {
				keep[f.GetKey()] = true
			}
		}
	}
	objects, shared := 0, 0
	for info, err := range store.List(context.Background(), blob.JobPrefix(jobID)) {
		if err != nil {
			t.Fatal(err)
		}
		objects++
		if keep[info.Key] {
			shared++
			continue
		}
		_, n, _, ok := blob.ParseCheckpointKey(info.Key)
		if !ok || !dirs[blob.CheckpointPrefix(jobID, n)] {
			t.Errorf("object %s belongs to no retained checkpoint (retained: %v)", info.Key, latest.GetRetained())
		}
	}
	t.Logf("blob store holds %d objects of the job (%d shared state files), all referenced by retained checkpoints %v", objects, shared, latest.GetRetained())
}
func maxOf(xs []int64) int64 {
	m := xs[0]
	for _, x := range xs[1:] {
		m = max(m, x)
	}
	return m
}

// readCounts polls the output of count-per-key ({key, count} JSON records)
// for up to wait, appending each key's counts in read order; it returns
// the number of records read.
func readCounts(t *testing.T, cons *kgo.Client, wait time.Duration, counts map[string][]int64) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	n := 0
	cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
		var row struct {
			Key   string `json:"key"`
			Count int64  `json:"count"`
		}
		if err := json.Unmarshal(r.Value, &row); err != nil {
			t.Fatalf("output record %s: %v", r.Value, err)
		}
		counts[row.Key] = append(counts[row.Key], row.Count)
		n++
	})
	return n
}
