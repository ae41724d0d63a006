package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/testkit"
)

// savepointJob is the job of TestSavepointStopRestore: Kafka (4
// partitions) → keyed running count per record → exactly-once Kafka sink,
// checkpointed every 200 ms. %[2]d is the count step's parallelism, %[3]s
// the state backend. The sink's parallelism is set and kept: an
// exactly-once sink's transactions restore at their parallelism only.
const savepointJob = `
name: savepoint-count
parallelism: 2
state_backend: %[3]s
checkpointing:
  interval_ms: 200
steps:
  - id: in
    kafka_source:
      brokers: [%[1]s]
      topics: [in]
      columns: {key: string, seq: int64}
  - id: count
    parallelism: %[2]d
    key_by: [key]
    process:
      name: count-per-key
      output: {key: string, count: int64}
  - id: out
    parallelism: 2
    kafka_sink:
      brokers: [%[1]s]
      topic: out
      key_fields: [key]
      delivery: exactly_once
`

// savepointLocation is how a savepoint's location looks.
var savepointLocation = regexp.MustCompile(`^savepoints/[^/\s]+/_metadata$`)

// TestSavepointStopRestore drives savepoints through the CLI on the dev
// platform and its Kafka broker: a running job takes a savepoint and goes
// on (the savepoint shows in its checkpoint history), then stops with a
// savepoint and ends FINISHED; the same job deployed from that savepoint
// with its count step at another parallelism (2 → 3) and on the other
// state backend (pebble → heap) continues the counts. Input is produced
// before the savepoint, between it and the stop, and after the restore.
// Read with read_committed, every key's counts over both jobs must be
// exactly 1..n (n = its inputs): nothing lost, nothing duplicated.
func TestSavepointStopRestore(t *testing.T) {
	t.Parallel()
	p := testkit.StartPlatform(t, testkit.PlatformOptions{KafkaAddr: testkit.FreeAddr(t)})
	brokers := p.KafkaAddrs()
	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("in"),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	createTopics(t, producer, 4, "in", "out")

	manifest := func(countParallelism int, backend string) string {
		return writeFile(t, fmt.Sprintf("job-%d-%s.yaml", countParallelism, backend),
			fmt.Sprintf(savepointJob, strings.Join(brokers, ", "), countParallelism, backend))
	}
	const keys = 20
	produced := map[string]int64{}
	rng := rand.New(rand.NewPCG(5, 6)) //nolint:gosec // test data, seeded for replay
	t.Logf("input seed 5,6")
	produce := func(n int) {
		t.Helper()
		recs := make([]*kgo.Record, 0, n)
		for range n {
			k := "k" + strconv.Itoa(rng.IntN(keys))
			produced[k]++
			recs = append(recs, &kgo.Record{Key: []byte(k), Value: fmt.Appendf(nil, `{"key":%q,"seq":%d}`, k, produced[k])})
		}
		if err := producer.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	waitState := func(id string, want sabotv1.JobState) {
		t.Helper()
		testkit.Eventually(t, 30*time.Second, func() error {
			if s := jobState(t, p, id); s != want {
				return fmt.Errorf("job %s is %s, want %s", id, s, want)
			}
			return nil
		})
	}

	// The first job: count at parallelism 2 on pebble.
	first := manifest(2, "pebble")
	stdout, errLine := sabot(t, p.Addr(), "deploy", "-f", first)
	if errLine != "" {
		t.Fatalf("deploy: %s", errLine)
	}
	id := jobIDLine.FindStringSubmatch(stdout)[1]
	waitState(id, sabotv1.JobState_JOB_STATE_RUNNING)
	produce(300)

	// A savepoint of the running job: it goes on, and its history shows
	// the savepoint at the printed location.
	stdout, errLine = sabot(t, p.Addr(), "savepoint", id)
	if errLine != "" {
		t.Fatalf("savepoint: %s", errLine)
	}
	sp1 := strings.TrimSpace(stdout)
	if !savepointLocation.MatchString(sp1) {
		t.Fatalf("savepoint printed %q, want only its location", stdout)
	}
	if s := jobState(t, p, id); s != sabotv1.JobState_JOB_STATE_RUNNING {
		t.Fatalf("job is %s after a savepoint, want it running on", s)
	}
	stdout, errLine = sabot(t, p.Addr(), "checkpoints", id, "-o", "json")
	if errLine != "" {
		t.Fatalf("checkpoints: %s", errLine)
	}
	var history struct {
		Checkpoints []struct {
			Status    string `json:"status"`
			Savepoint bool   `json:"savepoint"`
			Location  string `json:"location"`
		} `json:"checkpoints"`
	}
	if err := json.Unmarshal([]byte(stdout), &history); err != nil {
		t.Fatalf("checkpoints -o json: %v\n%s", err, stdout)
	}
	found := false
	for _, cp := range history.Checkpoints {
		if cp.Savepoint && cp.Location == sp1 && cp.Status == "CHECKPOINT_STATUS_COMPLETED" {
			found = true
		}
	}
	if !found {
		t.Fatalf("checkpoint history lacks completed savepoint %s:\n%s", sp1, stdout)
	}
	produce(300)

	// stop needs a savepoint; cancel is the way without one.
	if _, errLine = sabot(t, p.Addr(), "stop", id, "--savepoint=false"); !strings.Contains(errLine, "sabot cancel "+id) {
		t.Fatalf("stop --savepoint=false: %q, want a pointer to cancel", errLine)
	}
	stdout, errLine = sabot(t, p.Addr(), "stop", id, "-o", "json")
	if errLine != "" {
		t.Fatalf("stop: %s", errLine)
	}
	var stopped struct {
		Status   string `json:"status"`
		Stop     bool   `json:"stop"`
		Location string `json:"location"`
	}
	if err := json.Unmarshal([]byte(stdout), &stopped); err != nil {
		t.Fatalf("stop -o json: %v\n%s", err, stdout)
	}
	if stopped.Status != "SAVEPOINT_STATUS_COMPLETED" || !stopped.Stop || !savepointLocation.MatchString(stopped.Location) || stopped.Location == sp1 {
		t.Fatalf("stop -o json: %+v", stopped)
	}
	if s := jobState(t, p, id); s != sabotv1.JobState_JOB_STATE_FINISHED {
		t.Fatalf("job is %s once stop returned, want FINISHED", s)
	}
	if _, errLine = sabot(t, p.Addr(), "savepoint", id); !strings.Contains(errLine, "failed_precondition") {
		t.Fatalf("savepoint of a finished job: %q", errLine)
	}

	// Deploys that cannot start are refused before anything runs.
	second := manifest(3, "heap")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing savepoint", []string{"--from-savepoint", "savepoints/nope/_metadata"}, "no savepoint at savepoints/nope/_metadata"},
		{"allow without a savepoint", []string{"--allow-non-restored-state"}, "only with --from-savepoint"},
	} {
		if _, errLine := sabot(t, p.Addr(), append([]string{"deploy", "-f", second}, tc.args...)...); !strings.Contains(errLine, tc.want) {
			t.Errorf("deploy with %s: %q, want it to mention %q", tc.name, errLine, tc.want)
		}
	}

	// The same job from the stop's savepoint: count at parallelism 3 on
	// heap; the sink keeps its parallelism.
	stdout, errLine = sabot(t, p.Addr(), "deploy", "-f", second, "--from-savepoint", stopped.Location)
	if errLine != "" {
		t.Fatalf("deploy from savepoint: %s", errLine)
	}
	id2 := jobIDLine.FindStringSubmatch(stdout)[1]
	waitState(id2, sabotv1.JobState_JOB_STATE_RUNNING)
	produce(300)

	checkCounts(t, brokers, produced)
	if _, errLine = sabot(t, p.Addr(), "cancel", id2); errLine != "" {
		t.Fatal(errLine)
	}
	waitState(id2, sabotv1.JobState_JOB_STATE_CANCELED)
}

// createTopics creates topics of n partitions on the platform's broker.
func createTopics(t *testing.T, cl *kgo.Client, n int32, names ...string) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	for _, name := range names {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, n, 1
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range resp.Topics {
		if tr.ErrorCode != 0 {
			t.Fatalf("create topic %s: error code %d", tr.Topic, tr.ErrorCode)
		}
	}
}

// checkCounts reads topic out with read_committed until every key's count
// reached its number of inputs, then checks that each key's counts are
// exactly 1..n, each once.
func checkCounts(t *testing.T, brokers []string, produced map[string]int64) {
	t.Helper()
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("out"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	counts := map[string][]int64{}
	read := func(wait time.Duration) { readCounts(t, cons, wait, counts) }
	testkit.Eventually(t, 30*time.Second, func() error {
		read(time.Second)
		for k, n := range produced {
			if c := counts[k]; len(c) == 0 || maxOf(c) < n {
				return fmt.Errorf("key %s: counts up to %d of %d read", k, maxOfOrZero(c), n)
			}
		}
		return nil
	})
	read(time.Second) // a late duplicate
	for k, n := range produced {
		seen := map[int64]int{}
		for _, c := range counts[k] {
			seen[c]++
		}
		for c := int64(1); c <= n; c++ {
			if seen[c] != 1 {
				t.Errorf("key %s: count %d appears %d times, want once (%d inputs)", k, c, seen[c], n)
			}
		}
		if len(counts[k]) != int(n) {
			t.Errorf("key %s: %d outputs for %d inputs", k, len(counts[k]), n)
		}
	}
}

func maxOfOrZero(xs []int64) int64 {
	if len(xs) == 0 {
		return 0
	}
	return maxOf(xs)
}

// TestUnusableSavepointFailsJob: a job whose savepoint cannot be used —
// missing, or holding state of a step the job lacks — reaches a worker
// when nothing checked it (a gateway without the blob store; here the job
// record is written directly). The worker's first attempt fails
// unrecoverably and the job FAILS naming the problem, instead of
// restarting in a loop under its unlimited restart strategy.
func TestUnusableSavepointFailsJob(t *testing.T) {
	t.Parallel()
	p := testkit.StartPlatform(t, testkit.PlatformOptions{Workers: 1})
	store, err := blob.OpenFile(filepath.Join(p.DataDir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	const extra = "savepoints/extra/_metadata"
	raw, err := proto.Marshal(&clusterv1.CheckpointMetadata{JobId: "j0", CheckpointId: 1, Savepoint: true, MaxParallelism: 128,
		Operators: []*clusterv1.OperatorSnapshot{{VertexId: "gone", Parallelism: 1, OperatorState: []byte("{}")}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(t.Context(), extra, bytes.NewReader(raw), int64(len(raw))); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, location string
		want           []string
	}{
		{"missing", "savepoints/nope/_metadata", []string{"read savepoint savepoints/nope/_metadata", "not found"}},
		{"state of a step the job lacks", extra, []string{extra, `vertex "gone"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := cluster.NewJobID(time.Now())
			job := &sabotv1.Job{Id: id, CreatedAt: timestamppb.Now(),
				Spec: &sabotv1.JobSpec{Name: "restore", Graph: &sabotv1.JobGraph{
					Vertices: []*sabotv1.Vertex{
						{Id: "s", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{Sequence: &sabotv1.SequenceSource{}}}},
						{Id: "out", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Blackhole{Blackhole: &sabotv1.BlackholeSink{}}}},
					},
					Edges: []*sabotv1.Edge{{From: "s", To: "out"}},
				},
					Checkpointing:   &sabotv1.Checkpointing{IntervalMs: 200},
					RestartStrategy: &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_FixedDelay{FixedDelay: &sabotv1.FixedDelayRestart{DelayMs: 10}}},
					Restore:         &sabotv1.SavepointRestore{Location: tc.location},
				},
				Status: &sabotv1.JobStatus{State: sabotv1.JobState_JOB_STATE_CREATED, UpdatedAt: timestamppb.Now()},
			}
			if _, err := p.Etcd().Put(t.Context(), cluster.JobKey(id), cluster.Marshal(job)); err != nil {
				t.Fatal(err)
			}
			testkit.Eventually(t, 30*time.Second, func() error {
				if s := jobState(t, p, id); s != sabotv1.JobState_JOB_STATE_FAILED {
					return fmt.Errorf("job is %s", s)
				}
				return nil
			})
			resp, err := p.Jobs.GetJob(t.Context(), connect.NewRequest(&sabotv1.GetJobRequest{JobId: id}))
			if err != nil {
				t.Fatal(err)
			}
			st := resp.Msg.GetJob().GetStatus()
			for _, w := range append(tc.want, "unrecoverable") {
				if !strings.Contains(st.GetMessage(), w) {
					t.Errorf("message %q does not mention %q", st.GetMessage(), w)
				}
			}
			if st.GetAttempt() != 1 {
				t.Errorf("attempt %d: the job was restarted", st.GetAttempt())
			}
		})
	}
}
