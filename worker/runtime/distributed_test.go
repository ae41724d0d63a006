package runtime_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
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
