package runtime_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/runtime"
)

// peer is one stand-in worker process: its network exchange and
// coordination served on a loopback HTTP/2 server.
type peer struct {
	id    string
	addr  string
	net   *runtime.Network
	coord *runtime.Coordination
}

func startPeer(t *testing.T, id string) *peer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{id: id, addr: "http://" + ln.Addr().String(), net: runtime.NewNetwork(runtime.NetworkOptions{}), coord: runtime.NewCoordination(nil, nil)}
	mux := http.NewServeMux()
	mux.Handle(p.net.Handler())
	mux.Handle(p.coord.Handler())
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: protos}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
		<-done
		p.net.Close()
	})
	return p
}

// split places subtask i of every vertex on peers[i % len(peers)] and
// returns each peer's config for one attempt.
func split(g *jobgraph.Graph, peers []*peer, base runtime.Config) []runtime.Config {
	var placement []*clusterv1.Placement
	mine := make([][]*clusterv1.SubtaskRef, len(peers))
	for _, v := range g.Vertices {
		for s := range v.Parallelism {
			p := s % len(peers)
			placement = append(placement, &clusterv1.Placement{VertexId: v.ID, Subtask: int32(s), WorkerId: peers[p].id, Address: peers[p].addr})
			lo, hi := jobgraph.KeyGroupRange(g.MaxParallelism, v.Parallelism, s)
			mine[p] = append(mine[p], &clusterv1.SubtaskRef{VertexId: v.ID, Subtask: int32(s), Parallelism: int32(v.Parallelism),
				KeyGroupStart: int32(lo), KeyGroupEnd: int32(hi)})
		}
	}
	out := make([]runtime.Config, len(peers))
	for i, p := range peers {
		c := base
		c.Graph, c.Placement, c.Subtasks, c.Self, c.Coordinator = g, placement, mine[i], p.id, peers[0].id
		c.Network, c.Coordination = p.net, p.coord
		out[i] = c
	}
	return out
}

// distributedCount is sequence [0, n] at parallelism 2 → keyed count by
// value % 100 at parallelism 2 → blackhole, chained after the count.
// (last < 0: unbounded).
func distributedCount(t *testing.T, last int64, rate int64) *jobgraph.Graph {
	var end *int64
	if last >= 0 {
		end = ptr(last)
	}
	return graph(t, 128, []*sabotv1.Vertex{
		seqVertex("src", 2, 0, end, rate),
		mapVertex("keys", 2, "k", "value % 100"),
		processVertex("count", 2, "count-per-key", nil, &sabotv1.Column{Name: "key", Type: sabotv1.ColumnType_COLUMN_TYPE_STRING},
			&sabotv1.Column{Name: "count", Type: sabotv1.ColumnType_COLUMN_TYPE_INT64}),
		{Id: "sink", Parallelism: 2, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_Blackhole{Blackhole: &sabotv1.BlackholeSink{}}}},
	},
		edge("src", "keys", sabotv1.Partitioning_PARTITIONING_FORWARD),
		edge("keys", "count", sabotv1.Partitioning_PARTITIONING_HASH, "k"),
		edge("count", "sink", sabotv1.Partitioning_PARTITIONING_FORWARD),
	)
}

// TestDistributedRunFinishes splits a bounded job over two peers (subtask
// 0 of every vertex on one, 1 on the other): every row crosses the hash
// exchange, half of them over the network, and every row reaches a sink.
func TestDistributedRunFinishes(t *testing.T) {
	peers := []*peer{startPeer(t, "a"), startPeer(t, "b")}
	const n = 200_000
	var rows [2]atomic.Int64
	cfgs := split(distributedCount(t, n-1, 0), peers, runtime.Config{JobID: "dist", Attempt: 1})
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i := range cfgs {
		cfgs[i].SinkRows = &rows[i]
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = runtime.Run(t.Context(), cfgs[i]) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("share %d: %v", i, err)
		}
	}
	if got := rows[0].Load() + rows[1].Load(); got != n {
		t.Fatalf("sinks got %d rows (%d + %d), want %d", got, rows[0].Load(), rows[1].Load(), n)
	}
	if rows[0].Load() == 0 || rows[1].Load() == 0 {
		t.Fatalf("rows %d + %d: one share got nothing", rows[0].Load(), rows[1].Load())
	}
}

// TestDistributedRunTeardown cancels one share of a running unbounded job:
// it returns promptly, and the other share fails (its streams from the
// cancelled share broke) rather than hanging; nothing is left running.
func TestDistributedRunTeardown(t *testing.T) {
	for _, which := range []string{"coordinator share", "other share"} {
		t.Run(which, func(t *testing.T) {
			peers := []*peer{startPeer(t, "a"), startPeer(t, "b")}
			cfgs := split(distributedCount(t, -1, 20_000), peers, runtime.Config{JobID: "dist", Attempt: 1})
			var rows [2]atomic.Int64
			ctxs := make([]context.Context, 2)
			cancels := make([]context.CancelFunc, 2)
			errs := make([]chan error, 2)
			for i := range cfgs {
				cfgs[i].SinkRows = &rows[i]
				ctxs[i], cancels[i] = context.WithCancel(t.Context())
				errs[i] = make(chan error, 1)
				go func() { errs[i] <- runtime.Run(ctxs[i], cfgs[i]) }()
			}
			defer func() {
				for _, c := range cancels {
					c()
				}
			}()
			deadline := time.Now().Add(20 * time.Second)
			for rows[0].Load() == 0 || rows[1].Load() == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("no rows through both shares: %d, %d", rows[0].Load(), rows[1].Load())
				}
				time.Sleep(10 * time.Millisecond)
			}
			victim := 0
			if which == "other share" {
				victim = 1
			}
			cancels[victim]()
			select {
			case err := <-errs[victim]:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("cancelled share returned %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("cancelled share did not return within 10 s")
			}
			select {
			case err := <-errs[1-victim]:
				if err == nil {
					t.Fatal("the surviving share returned nil; its peer is gone")
				}
				t.Logf("surviving share: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("the surviving share did not fail within 10 s of its peer's end")
			}
		})
	}
}

// TestDistributedCheckpointRestore runs the checkpointed keyed count split
// over two peers — barriers cross the network exchange, the coordinator
// share triggers the other share's sources and collects its
// acknowledgements — cancels both shares at random moments like a crash,
// restores each next attempt from the latest completed checkpoint, and
// runs the last to the end: every key's final count is exact. Aligned and
// unaligned (barriers overtaking buffered elements across the network;
// channel state restored).
func TestDistributedCheckpointRestore(t *testing.T) {
	const (
		n    = 60000
		keys = 61
	)
	for _, unaligned := range []bool{false, true} {
		name := "aligned"
		if unaligned {
			name = "unaligned"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			peers := []*peer{startPeer(t, "a"), startPeer(t, "b")}
			store, err := blob.OpenFile(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = store.Close() }()
			com := &memCommitter{}
			g := countGraph(t, sabotv1.StateBackend_STATE_BACKEND_HEAP, sabotv1.CheckpointMode_CHECKPOINT_MODE_EXACTLY_ONCE, 2, n, 20000, keys)
			g.Spec.Checkpointing.Unaligned = unaligned
			rng := rand.New(rand.NewPCG(11, 12))
			run := func(ctx context.Context, attempt int64, out *lines) []error {
				md, retained := com.get()
				cfgs := split(g, peers, runtime.Config{JobID: "j", Attempt: attempt, PrintOut: out,
					Checkpoints: &runtime.CheckpointOptions{Store: store, Committer: com, Restore: md, Retained: retained}})
				errs := make([]error, len(cfgs))
				var wg sync.WaitGroup
				for i := range cfgs {
					wg.Add(1)
					go func() { defer wg.Done(); errs[i] = runtime.Run(ctx, cfgs[i]) }()
				}
				wg.Wait()
				return errs
			}
			for attempt := int64(1); attempt <= 3; attempt++ {
				ctx, cancel := context.WithTimeout(t.Context(), time.Duration(400+rng.IntN(400))*time.Millisecond)
				var out lines
				errs := run(ctx, attempt, &out)
				cancel()
				for i, err := range errs {
					// A share may also fail first, when the other one's
					// streams end (they are cancelled one after the other).
					if err != nil && !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "exchange") {
						t.Fatalf("attempt %d share %d: %v", attempt, i, err)
					}
				}
				md, _ := com.get()
				t.Logf("attempt %d: latest checkpoint %d", attempt, md.GetCheckpointId())
			}
			if com.completed() == 0 {
				t.Fatal("no checkpoint completed")
			}
			md, _ := com.get()
			withState := 0
			for _, s := range md.GetOperators() {
				withState += len(s.GetChannelState())
			}
			t.Logf("restoring checkpoint %d (%d channel-state objects)", md.GetCheckpointId(), withState)
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			var out lines
			for i, err := range run(ctx, 4, &out) {
				if err != nil {
					t.Fatalf("last attempt share %d: %v", i, err)
				}
			}
			got := map[int64]int64{}
			finalCounts(t, &out, got)
			for k := range int64(keys) {
				want := int64(n / keys)
				if k < n%keys {
					want++
				}
				if got[k] != want {
					t.Errorf("key %d: final count %d, want %d", k, got[k], want)
				}
			}
			t.Logf("%d checkpoints completed", com.completed())
		})
	}
}
