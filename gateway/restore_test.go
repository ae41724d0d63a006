package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/sabotdev/sabot/gateway"
	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/testkit"
)

// startGatewayWithBlob runs a gateway on an embedded etcd with a file blob
// store (nil store: none) and returns a client.
func startGatewayWithBlob(t *testing.T, store blob.Store) sabotv1connect.JobServiceClient {
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
	hc := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	return sabotv1connect.NewJobServiceClient(hc, "http://"+g.Addr())
}

// restoreSpec is a job s → count → out deployed from a savepoint.
func restoreSpec(maxP int32, restore *sabotv1.SavepointRestore) *sabotv1.JobSpec {
	return &sabotv1.JobSpec{
		Name: "restored", MaxParallelism: maxP,
		Graph: &sabotv1.JobGraph{
			Vertices: []*sabotv1.Vertex{
				{Id: "s", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Sequence{Sequence: &sabotv1.SequenceSource{}}}},
				{Id: "out", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Print{Print: &sabotv1.PrintSink{}}}},
			},
			Edges: []*sabotv1.Edge{{From: "s", To: "out"}},
		},
		Checkpointing: &sabotv1.Checkpointing{IntervalMs: 1000},
		Restore:       restore,
	}
}

func putObject(t *testing.T, store blob.Store, key string, data []byte) {
	t.Helper()
	if err := store.Put(t.Context(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

func putMetadata(t *testing.T, store blob.Store, key string, md *clusterv1.CheckpointMetadata) {
	t.Helper()
	raw, err := proto.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	putObject(t, store, key, raw)
}

// TestDeployFromSavepointChecks: with a blob store, a deploy from a
// savepoint that could never start is refused with InvalidArgument naming
// the location and what does not fit; one that fits is stored. Without a
// store the gateway cannot look and stores it.
func TestDeployFromSavepointChecks(t *testing.T) {
	t.Parallel()
	store, err := blob.OpenFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	snap := func(vertex string) *clusterv1.OperatorSnapshot {
		return &clusterv1.OperatorSnapshot{VertexId: vertex, Subtask: 0, Parallelism: 1}
	}
	const (
		good     = "savepoints/good/_metadata"
		extra    = "savepoints/extra/_metadata"
		wide     = "savepoints/wide/_metadata"
		garbage  = "savepoints/garbage/_metadata"
		notMeta  = "savepoints/empty/_metadata"
		missing  = "savepoints/missing/_metadata"
		otherJob = "j0"
	)
	putMetadata(t, store, good, &clusterv1.CheckpointMetadata{JobId: otherJob, CheckpointId: 3, Savepoint: true, MaxParallelism: 128,
		Operators: []*clusterv1.OperatorSnapshot{snap("out"), snap("s")}})
	putMetadata(t, store, extra, &clusterv1.CheckpointMetadata{JobId: otherJob, CheckpointId: 4, Savepoint: true, MaxParallelism: 128,
		Operators: []*clusterv1.OperatorSnapshot{withState(snap("count")), snap("out"), snap("gone"), snap("s")}})
	putMetadata(t, store, wide, &clusterv1.CheckpointMetadata{JobId: otherJob, CheckpointId: 5, Savepoint: true, MaxParallelism: 256,
		Operators: []*clusterv1.OperatorSnapshot{snap("s")}})
	putObject(t, store, garbage, []byte{0xff, 0xff, 0xff, 0xff})
	putObject(t, store, notMeta, nil)

	withStore := startGatewayWithBlob(t, store)
	without := startGatewayWithBlob(t, nil)
	cases := []struct {
		name    string
		client  sabotv1connect.JobServiceClient
		maxP    int32
		restore *sabotv1.SavepointRestore
		// want: text the InvalidArgument message holds; none means stored.
		want []string
	}{
		{name: "fits", client: withStore, restore: &sabotv1.SavepointRestore{Location: good}},
		{name: "missing", client: withStore, restore: &sabotv1.SavepointRestore{Location: missing},
			want: []string{"spec.restore.location", "no savepoint at " + missing}},
		{name: "not a key", client: withStore, restore: &sabotv1.SavepointRestore{Location: "/tmp/savepoints/x/_metadata"},
			want: []string{"spec.restore.location", "not a savepoint location"}},
		{name: "undecodable", client: withStore, restore: &sabotv1.SavepointRestore{Location: garbage},
			want: []string{"spec.restore.location", garbage, "unreadable"}},
		{name: "not metadata", client: withStore, restore: &sabotv1.SavepointRestore{Location: notMeta},
			want: []string{"spec.restore.location", notMeta, "not a savepoint's _metadata"}},
		{name: "state of a vertex the job lacks", client: withStore, restore: &sabotv1.SavepointRestore{Location: extra},
			want: []string{"spec.restore", extra, `vertex "count"`, "--allow-non-restored-state"}},
		{name: "state of a vertex the job lacks, allowed", client: withStore,
			restore: &sabotv1.SavepointRestore{Location: extra, AllowNonRestoredState: true}},
		{name: "other max_parallelism", client: withStore, restore: &sabotv1.SavepointRestore{Location: wide},
			want: []string{"spec.max_parallelism", wide, "256"}},
		{name: "same max_parallelism", client: withStore, maxP: 256, restore: &sabotv1.SavepointRestore{Location: wide}},
		{name: "no store: not checked", client: without, restore: &sabotv1.SavepointRestore{Location: missing}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, err := tc.client.DeployJob(t.Context(), connect.NewRequest(&sabotv1.DeployJobRequest{Spec: restoreSpec(tc.maxP, tc.restore)}))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("deploy: %v", err)
				}
				if got := resp.Msg.GetJob().GetSpec().GetRestore().GetLocation(); got != tc.restore.GetLocation() {
					t.Fatalf("stored restore location %q", got)
				}
				return
			}
			var cerr *connect.Error
			if !errors.As(err, &cerr) || cerr.Code() != connect.CodeInvalidArgument {
				t.Fatalf("deploy: %v, want InvalidArgument", err)
			}
			t.Logf("refused: %s", cerr.Message())
			for _, w := range tc.want {
				if !strings.Contains(cerr.Message(), w) {
					t.Errorf("error %q does not mention %q", cerr.Message(), w)
				}
			}
		})
	}
}

// withState gives a snapshot keyed state: a vertex with state cannot be
// dropped silently (a stateless one, like "gone" above, can).
func withState(s *clusterv1.OperatorSnapshot) *clusterv1.OperatorSnapshot {
	s.Keyed = &clusterv1.KeyedStateHandle{Kind: &clusterv1.KeyedStateHandle_Full{Full: &clusterv1.FullStateHandle{Key: "k"}}}
	return s
}
