package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// eventually polls cond until it returns nil, failing t with its last
// error after timeout (testkit.Eventually, which this package's internal
// tests cannot import: testkit imports the worker).
func eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		<-time.After(interval)
		interval = min(2*interval, 50*time.Millisecond)
	}
}

// netWorker is one worker process of a network exchange test: a Network
// served over h2c on a loopback port, dialing peers through connections
// the test can cut (die) to stand for the process dying.
type netWorker struct {
	net      *Network
	srv      *http.Server
	url      string
	tr       *http.Transport
	served   chan struct{} // closed when Serve returned
	requests atomic.Int64  // streams asked for
	stopOnce sync.Once

	mu      sync.Mutex
	conns   []net.Conn      // dialed
	callers map[string]bool // remote addresses of the streams served
}

func newNetWorker(t testing.TB, opts NetworkOptions) *netWorker {
	t.Helper()
	w := &netWorker{served: make(chan struct{}), callers: map[string]bool{}}
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	var d net.Dialer
	w.tr = &http.Transport{Protocols: p, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			w.mu.Lock()
			w.conns = append(w.conns, c)
			w.mu.Unlock()
		}
		return c, err
	}}
	opts.HTTPClient = &http.Client{Transport: w.tr}
	w.net = NewNetwork(opts)
	prefix, h := w.net.Handler()
	count := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			w.requests.Add(1)
			w.mu.Lock()
			w.callers[r.RemoteAddr] = true
			w.mu.Unlock()
			h.ServeHTTP(rw, r)
		})
	}
	mux := http.NewServeMux()
	mux.Handle(prefix, count(h))
	// The ConnectRPC transport, which the benchmark compares.
	cprefix, ch := connectHandler(w.net)
	mux.Handle(cprefix, count(ch))
	sp := new(http.Protocols)
	sp.SetHTTP1(true)
	sp.SetUnencryptedHTTP2(true)
	w.srv = &http.Server{Handler: mux, Protocols: sp, HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 1000}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.url = "http://" + ln.Addr().String()
	go func() {
		defer close(w.served)
		_ = w.srv.Serve(ln)
	}()
	t.Cleanup(w.stop)
	return w
}

// stop shuts the worker down: its attempts, its server, its connections.
func (w *netWorker) stop() {
	w.stopOnce.Do(func() {
		w.net.Close()
		_ = w.srv.Close()
		<-w.served
		w.cut()
		w.tr.CloseIdleConnections()
	})
}

// die stands for the worker process dying: every connection it serves or
// dialed closes at once, nothing is closed gracefully.
func (w *netWorker) die() {
	_ = w.srv.Close()
	w.cut()
}

func (w *netWorker) cut() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.conns {
		_ = c.Close()
	}
	w.conns = nil
}

// netPlacement says which worker runs each subtask: vertex → per subtask.
type netPlacement map[string][]*netWorker

// exchange builds worker w's exchange of attempt 1 of job "job-1", closed
// when the test ends.
func (p netPlacement) exchange(t testing.TB, w *netWorker, g *jobgraph.Graph, capacity int) *netExchange {
	t.Helper()
	x := w.net.newNetExchange(g, capacity, "job-1", 1,
		func(v string, s int) bool { return p[v][s] == w },
		func(v string, s int) string { return p[v][s].url })
	t.Cleanup(x.close)
	return x
}

// netGraph is src (parallelism ps) → dst (parallelism pd) on a rebalance
// edge: every src subtask has a channel to every dst subtask.
func netGraph(ps, pd int) *jobgraph.Graph {
	src := &jobgraph.Vertex{ID: "src", Parallelism: ps, Kind: jobgraph.KindSource}
	dst := &jobgraph.Vertex{ID: "dst", Index: 1, Parallelism: pd, Kind: jobgraph.KindSink}
	e := &jobgraph.Edge{From: src, To: dst, Partitioning: sabotv1.Partitioning_PARTITIONING_REBALANCE}
	src.Outputs, dst.Inputs = []*jobgraph.Edge{e}, []*jobgraph.Edge{e}
	return &jobgraph.Graph{Name: "net", MaxParallelism: 128, Vertices: []*jobgraph.Vertex{src, dst}, Edges: []*jobgraph.Edge{e}}
}

var netSchema = arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.PrimitiveTypes.Int64}, {Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)

// netBatch returns rows first..first+n-1: v and, unless every third row,
// s = "row-<v>".
func netBatch(mem memory.Allocator, first int64, n int) arrow.RecordBatch {
	vb := array.NewInt64Builder(mem)
	defer vb.Release()
	sb := array.NewStringBuilder(mem)
	defer sb.Release()
	for i := range int64(n) {
		vb.Append(first + i)
		if (first+i)%3 == 0 {
			sb.AppendNull()
		} else {
			sb.Append(fmt.Sprintf("row-%d", first+i))
		}
	}
	v, s := vb.NewArray(), sb.NewArray()
	defer v.Release()
	defer s.Release()
	return array.NewRecordBatch(netSchema, []arrow.Array{v, s}, int64(n))
}

// describe renders an element for comparison; batches by content.
func describe(el Element) string {
	switch el.Kind {
	case KindBatch:
		var b strings.Builder
		fmt.Fprintf(&b, "batch origin=%d cols=%d:", el.Origin, el.Batch.NumCols())
		v := el.Batch.Column(0).(*array.Int64)
		s := el.Batch.Column(1).(*array.String)
		for i := range v.Len() {
			if s.IsNull(i) {
				fmt.Fprintf(&b, " %d/null", v.Value(i))
			} else {
				fmt.Fprintf(&b, " %d/%s", v.Value(i), s.Value(i))
			}
		}
		return b.String()
	case KindWatermark:
		return fmt.Sprintf("watermark %d", el.Watermark)
	case KindWatermarkStatus:
		return fmt.Sprintf("idle %t", el.Idle)
	case KindBarrier:
		return fmt.Sprintf("barrier %d savepoint=%q unaligned=%t", el.Checkpoint, el.Savepoint, el.Unaligned)
	default:
		return el.Kind.String()
	}
}

// channelScript is what subtask from sends to subtask to: batches,
// watermarks, an idle period, an aligned savepoint barrier, a batch of
// another schema, end of input. It calls emit for each element.
func channelScript(mem memory.Allocator, from, to int, emit func(el Element) bool) {
	base := int64(from*100_000 + to*10_000)
	for i := range int64(12) {
		el := BatchElement(netBatch(mem, base+i*10, 7+int(i)))
		el.Origin = i + 1
		if !emit(el) || !emit(WatermarkElement(i*100)) {
			return
		}
		switch i {
		case 3:
			if !emit(WatermarkStatusElement(true)) || !emit(WatermarkStatusElement(false)) {
				return
			}
		case 5:
			if !emit(Element{Kind: KindBarrier, Checkpoint: 1, Savepoint: "sp-1"}) {
				return
			}
		case 8:
			// A batch of another schema: a new IPC stream on the wire.
			rec := netBatch(mem, base+999, 2)
			extra := array.NewInt64Builder(mem)
			extra.AppendValues([]int64{1, 2}, nil)
			col := extra.NewArray()
			extra.Release()
			schema := arrow.NewSchema(append(netSchema.Fields(), arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Int64}), nil)
			wide := array.NewRecordBatch(schema, append(rec.Columns(), col), 2)
			rec.Release()
			col.Release()
			if !emit(BatchElement(wide)) {
				return
			}
		}
	}
	emit(EndOfInputElement())
}

// received is one element taken off a gate.
type received struct {
	channel int
	desc    string
	kind    ElementKind
	seq     uint64
}

// recvUntilEnd receives from g until every channel ended, releasing
// batches.
func recvUntilEnd(ctx context.Context, g Gate) ([]received, error) {
	var out []received
	open := g.NumChannels()
	for open > 0 {
		ch, el, err := g.Recv(ctx)
		if err != nil {
			return out, err
		}
		out = append(out, received{channel: ch, desc: describe(el), kind: el.Kind, seq: el.seq})
		el.release()
		if el.Kind == KindEndOfInput {
			open--
		}
	}
	return out, nil
}

// checkChannels checks that every channel of a gate received exactly what
// its script sent, in order, numbered 1, 2, … as a local gate numbers
// them.
func checkChannels(t *testing.T, got []received, want map[int][]string) {
	t.Helper()
	per := map[int][]string{}
	for _, r := range got {
		per[r.channel] = append(per[r.channel], r.desc)
		if n := uint64(len(per[r.channel])); r.seq != n {
			t.Errorf("channel %d element %d (%s) has seq %d", r.channel, n, r.desc, r.seq)
		}
	}
	if diff := cmp.Diff(want, per); diff != "" {
		t.Errorf("received per channel (-want +got):\n%s", diff)
	}
}

// runScripts sends channelScript on every channel of g from the worker of
// the sending subtask and receives on every gate, checking each channel.
func runScripts(t *testing.T, g *jobgraph.Graph, p netPlacement, xs map[*netWorker]*netExchange) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := g.Edges[0]
	src, dst := e.From, e.To
	want := map[int]map[int][]string{} // receiving subtask → channel → script
	for to := range dst.Parallelism {
		want[to] = map[int][]string{}
		for from := range src.Parallelism {
			channelScript(memory.NewGoAllocator(), from, to, func(el Element) bool {
				want[to][channelOffset(e)+from] = append(want[to][channelOffset(e)+from], describe(el))
				el.release()
				return true
			})
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, src.Parallelism*dst.Parallelism+dst.Parallelism)
	for from := range src.Parallelism {
		x := xs[p[src.ID][from]]
		for to := range dst.Parallelism {
			s := x.Sender(e, from, to)
			_, isLocal := s.(localSender)
			if isLocal != (p[dst.ID][to] == p[src.ID][from]) {
				t.Errorf("sender %d→%d: local sender %t, want %t", from, to, isLocal, !isLocal)
			}
			wg.Go(func() {
				channelScript(mem, from, to, func(el Element) bool {
					if err := s.Send(ctx, el); err != nil {
						errs <- fmt.Errorf("send %d→%d: %w", from, to, err)
						return false
					}
					return true
				})
			})
		}
	}
	for to := range dst.Parallelism {
		gate := xs[p[dst.ID][to]].Gate(dst, to)
		wg.Go(func() {
			got, err := recvUntilEnd(ctx, gate)
			if err != nil {
				errs <- fmt.Errorf("receive at %d: %w", to, err)
				return
			}
			checkChannels(t, got, want[to])
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestNetExchangeDeliversInOrder sends batches (two schemas), watermarks,
// watermark statuses, an aligned savepoint barrier and end of input from
// two subtasks on one worker to a subtask on another: every element
// arrives, in order, with the fields it was sent with and numbered as a
// local gate numbers them. Credits (capacity 3) must flow back for the
// scripts to finish. Both transports: the raw framing and the ConnectRPC
// service the benchmark compares it with.
func TestNetExchangeDeliversInOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		dial dialFunc
	}{{"raw", dialRaw}, {"connect", dialConnect}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := newNetWorker(t, NetworkOptions{}), newNetWorker(t, NetworkOptions{})
			a.net.dial = tc.dial
			g := netGraph(2, 1)
			p := netPlacement{"src": {a, a}, "dst": {b}}
			xs := map[*netWorker]*netExchange{a: p.exchange(t, a, g, 3), b: p.exchange(t, b, g, 3)}
			if xs[a].Gate(g.Vertices[1], 0) != nil {
				t.Error("worker a has a gate for a subtask it does not run")
			}
			runScripts(t, g, p, xs)
			// Two streams, one connection. (Two streams opening at once may
			// dial twice; the transport keeps one connection and closes the
			// other.)
			if n := b.requests.Load(); n != 2 {
				t.Errorf("%d streams opened, want 2", n)
			}
			b.mu.Lock()
			if len(b.callers) != 1 {
				t.Errorf("streams came over %d connections, want 1 (multiplexed): %v", len(b.callers), b.callers)
			}
			b.mu.Unlock()
		})
	}
}

// TestNetExchangeMixedLocalRemote runs src and dst with parallelism 2 on
// two workers, one subtask of each per worker: every gate has a local and
// a remote channel, each sender a local and a network end.
func TestNetExchangeMixedLocalRemote(t *testing.T) {
	t.Parallel()
	a, b := newNetWorker(t, NetworkOptions{}), newNetWorker(t, NetworkOptions{})
	g := netGraph(2, 2)
	p := netPlacement{"src": {a, b}, "dst": {a, b}}
	xs := map[*netWorker]*netExchange{a: p.exchange(t, a, g, 2), b: p.exchange(t, b, g, 2)}
	runScripts(t, g, p, xs)
}

// TestNetExchangeCreditsBoundInFlight: a receiver that does not consume
// holds the sender at exactly capacity elements; each element taken
// releases one more, and at no time has the sender got more than capacity
// elements ahead of the receiver.
func TestNetExchangeCreditsBoundInFlight(t *testing.T) {
	t.Parallel()
	const capacity, total = 4, 40
	a, b := newNetWorker(t, NetworkOptions{}), newNetWorker(t, NetworkOptions{})
	g := netGraph(1, 1)
	p := netPlacement{"src": {a}, "dst": {b}}
	xa, xb := p.exchange(t, a, g, capacity), p.exchange(t, b, g, capacity)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var sent, consumed, ahead atomic.Int64 // ahead: the most sent beyond consumed
	s := xa.Sender(g.Edges[0], 0, 0).(*netSender)
	done := make(chan error, 1)
	go func() {
		for i := range total {
			if err := s.Send(ctx, BatchElement(netBatch(memory.DefaultAllocator, int64(i), 10))); err != nil {
				done <- err
				return
			}
			n := sent.Add(1) - consumed.Load()
			for m := ahead.Load(); n > m && !ahead.CompareAndSwap(m, n); m = ahead.Load() {
			}
		}
		done <- nil
	}()
	in := xb.ins[inKey{"dst", 0, 0}]
	// Nothing consumed: the sender stops at capacity, with no credit left
	// and the receiver holding capacity elements.
	eventually(t, 10*time.Second, func() error {
		if sent.Load() != capacity || in.inflight.Load() != capacity || s.st == nil || s.st.credits.Load() != 0 {
			return fmt.Errorf("sent %d, buffered %d", sent.Load(), in.inflight.Load())
		}
		return nil
	})
	gate := xb.Gate(g.Vertices[1], 0)
	for i := range total {
		// Counted before Recv hands the element out (and returns its
		// credit), so sent-consumed bounds what is in flight.
		consumed.Add(1)
		_, el, err := gate.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := el.Batch.Column(0).(*array.Int64).Value(0); got != int64(i) {
			t.Fatalf("batch %d starts at %d", i, got)
		}
		el.release()
		if i == 0 {
			// One taken: exactly one more goes out.
			eventually(t, 10*time.Second, func() error {
				if sent.Load() != capacity+1 || in.inflight.Load() != capacity {
					return fmt.Errorf("sent %d, buffered %d", sent.Load(), in.inflight.Load())
				}
				return nil
			})
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := ahead.Load(); got > capacity {
		t.Errorf("the sender got %d elements ahead of the receiver, credits are %d", got, capacity)
	}
	t.Logf("sender at most %d elements ahead (capacity %d)", ahead.Load(), capacity)
}

// TestNetExchangePriorityOvertakes: an unaligned barrier sent with
// priority after five batches the receiver has not taken comes out of the
// gate first, carrying seq 5; the batches it overtook are those the gate
// reports as Buffered with seq ≤ 5, and later batches continue at 6.
func TestNetExchangePriorityOvertakes(t *testing.T) {
	t.Parallel()
	a, b := newNetWorker(t, NetworkOptions{}), newNetWorker(t, NetworkOptions{})
	g := netGraph(1, 1)
	p := netPlacement{"src": {a}, "dst": {b}}
	xa, xb := p.exchange(t, a, g, 8), p.exchange(t, b, g, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := xa.Sender(g.Edges[0], 0, 0)
	for i := range 5 {
		if err := s.Send(ctx, BatchElement(netBatch(memory.DefaultAllocator, int64(i), 3))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SendPriority(ctx, Element{Kind: KindBarrier, Checkpoint: 7, Unaligned: true}); err != nil {
		t.Fatal(err)
	}
	gate := xb.Gate(g.Vertices[1], 0).(*localGate)
	eventually(t, 10*time.Second, func() error {
		if len(gate.prio) != 1 {
			return errors.New("barrier not arrived")
		}
		return nil
	})
	ch, el, err := gate.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ch != 0 || el.Kind != KindBarrier || el.Checkpoint != 7 || !el.Unaligned || el.seq != 5 {
		t.Fatalf("first out: channel %d %s seq %d, want the unaligned barrier 7 with seq 5", ch, describe(el), el.seq)
	}
	var overtaken []uint64
	gate.Buffered(0, func(b Element) {
		if b.Kind == KindBatch && b.seq <= el.seq {
			overtaken = append(overtaken, b.seq)
		}
	})
	if diff := cmp.Diff([]uint64{1, 2, 3, 4, 5}, overtaken); diff != "" {
		t.Errorf("overtaken (-want +got):\n%s", diff)
	}
	for i := 5; i < 7; i++ {
		if err := s.Send(ctx, BatchElement(netBatch(memory.DefaultAllocator, int64(i), 3))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Send(ctx, EndOfInputElement()); err != nil {
		t.Fatal(err)
	}
	got, err := recvUntilEnd(ctx, gate)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, r := range got {
		seqs = append(seqs, r.seq)
	}
	if diff := cmp.Diff([]uint64{1, 2, 3, 4, 5, 6, 7, 8}, seqs); diff != "" {
		t.Errorf("seqs after the barrier (-want +got):\n%s", diff)
	}
}

// TestNetExchangeAlignmentBlocksRemoteChannel: Block holds a remote
// channel's elements back (within its credits) while a local channel
// flows, and UnblockAll releases them in order.
func TestNetExchangeAlignmentBlocksRemoteChannel(t *testing.T) {
	t.Parallel()
	a, b := newNetWorker(t, NetworkOptions{}), newNetWorker(t, NetworkOptions{})
	g := netGraph(2, 1)
	p := netPlacement{"src": {a, b}, "dst": {b}}
	xa, xb := p.exchange(t, a, g, 4), p.exchange(t, b, g, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	remote, local := xa.Sender(g.Edges[0], 0, 0), xb.Sender(g.Edges[0], 1, 0)
	gate := xb.Gate(g.Vertices[1], 0).(*localGate)
	gate.Block(0)
	for i := range 4 {
		if err := remote.Send(ctx, WatermarkElement(int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := local.Send(ctx, WatermarkElement(100)); err != nil {
		t.Fatal(err)
	}
	// The local channel's element comes out although the remote
	// channel's four arrived (or are arriving) first.
	ch, el, err := gate.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ch != 1 || el.Watermark != 100 {
		t.Fatalf("got channel %d %s, want the local channel's watermark 100", ch, describe(el))
	}
	gate.UnblockAll()
	for i := range 4 {
		ch, el, err := gate.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ch != 0 || el.Watermark != int64(i) || el.seq != uint64(i+1) {
			t.Fatalf("got channel %d %s seq %d, want channel 0 watermark %d seq %d", ch, describe(el), el.seq, i, i+1)
		}
	}
}

// TestNetExchangeSenderBeforeReceiver: a sender whose receiver has not
// registered the attempt yet keeps trying and succeeds once it does; with
// nobody registering it gives up after ConnectTimeout with an error naming
// the channel and the peer.
func TestNetExchangeSenderBeforeReceiver(t *testing.T) {
	t.Parallel()
	g := netGraph(1, 1)
	t.Run("registers-late", func(t *testing.T) {
		t.Parallel()
		a, b := newNetWorker(t, NetworkOptions{}), newNetWorker(t, NetworkOptions{})
		p := netPlacement{"src": {a}, "dst": {b}}
		xa := p.exchange(t, a, g, 2)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sent := make(chan error, 1)
		go func() { sent <- xa.Sender(g.Edges[0], 0, 0).Send(ctx, WatermarkElement(42)) }()
		eventually(t, 10*time.Second, func() error {
			if b.requests.Load() == 0 {
				return errors.New("no stream asked for yet")
			}
			return nil
		})
		xb := p.exchange(t, b, g, 2)
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		_, el, err := xb.Gate(g.Vertices[1], 0).Recv(ctx)
		if err != nil || el.Watermark != 42 {
			t.Fatalf("got %s, %v", describe(el), err)
		}
	})
	t.Run("gives-up", func(t *testing.T) {
		t.Parallel()
		a := newNetWorker(t, NetworkOptions{ConnectTimeout: 300 * time.Millisecond})
		b := newNetWorker(t, NetworkOptions{})
		p := netPlacement{"src": {a}, "dst": {b}}
		xa := p.exchange(t, a, g, 2)
		start := time.Now()
		err := xa.Sender(g.Edges[0], 0, 0).Send(context.Background(), WatermarkElement(1))
		var ce *channelError
		if !errors.As(err, &ce) || ce.Op != "connect" || ce.Peer != b.url || ce.From != "src" || ce.To != "dst" || ce.JobID != "job-1" {
			t.Fatalf("got %v, want a connect channelError to %s", err, b.url)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("gave up after %v, ConnectTimeout is 300ms", d)
		}
		t.Log(err)
	})
}

// TestNetExchangePeerDies: when the sending worker dies mid-stream, the
// receiving gate's Recv fails with an error naming job, vertices,
// subtasks and peer, and the sender's Send fails too; when the receiving
// worker dies, the sender's Send fails with such an error.
func TestNetExchangePeerDies(t *testing.T) {
	t.Parallel()
	g := netGraph(1, 1)
	setup := func(t *testing.T) (a, b *netWorker, s Sender, gate Gate) {
		a, b = newNetWorker(t, NetworkOptions{}), newNetWorker(t, NetworkOptions{})
		p := netPlacement{"src": {a}, "dst": {b}}
		xa, xb := p.exchange(t, a, g, 4), p.exchange(t, b, g, 4)
		s = xa.Sender(g.Edges[0], 0, 0)
		for i := range 3 {
			if err := s.Send(context.Background(), BatchElement(netBatch(memory.DefaultAllocator, int64(i), 5))); err != nil {
				t.Fatal(err)
			}
		}
		return a, b, s, xb.Gate(g.Vertices[1], 0)
	}
	// sendUntilError sends until Send fails: the first sends after a
	// death may still go into buffers, the credits run out at the latest.
	sendUntilError := func(t *testing.T, s Sender) error {
		for range 20 {
			if err := s.Send(context.Background(), WatermarkElement(1)); err != nil {
				return err
			}
		}
		t.Fatal("Send kept succeeding after the peer died")
		return nil
	}
	t.Run("sender", func(t *testing.T) {
		t.Parallel()
		a, _, s, gate := setup(t)
		a.die()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var err error
		for err == nil {
			var el Element
			_, el, err = gate.Recv(ctx)
			el.release()
		}
		var ce *channelError
		if !errors.As(err, &ce) || ce.Op != "receive" || ce.JobID != "job-1" || ce.Attempt != 1 ||
			ce.From != "src" || ce.FromSubtask != 0 || ce.To != "dst" || ce.ToSubtask != 0 || !strings.HasPrefix(ce.Peer, "127.0.0.1:") {
			t.Fatalf("Recv: %v, want a receive channelError", err)
		}
		t.Log(err)
		err = sendUntilError(t, s)
		if !errors.As(err, &ce) || ce.Op != "send" {
			t.Fatalf("Send: %v, want a send channelError", err)
		}
		t.Log(err)
	})
	t.Run("receiver", func(t *testing.T) {
		t.Parallel()
		_, b, s, _ := setup(t)
		b.die()
		err := sendUntilError(t, s)
		var ce *channelError
		if !errors.As(err, &ce) || ce.Op != "send" || ce.Peer != b.url || ce.From != "src" || ce.To != "dst" {
			t.Fatalf("Send: %v, want a send channelError naming %s", err, b.url)
		}
		t.Log(err)
	})
}

// TestNetExchangeCloseEndsEverything: with a sender blocked on credits, a
// sender retrying against an attempt nobody registers, receivers holding
// batches and streams open, close and cancel end every goroutine and
// release every batch.
func TestNetExchangeCloseEndsEverything(t *testing.T) {
	// Not parallel: counts goroutines.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	a, b := newNetWorker(t, NetworkOptions{}), newNetWorker(t, NetworkOptions{})
	g := netGraph(2, 2)
	p := netPlacement{"src": {a, a}, "dst": {b, b}}
	xa, xb := p.exchange(t, a, g, 2), p.exchange(t, b, g, 2)
	// A third worker never registers the attempt of subtask 1's receiver
	// in a second graph.
	c := newNetWorker(t, NetworkOptions{})
	g2 := netGraph(1, 1)
	p2 := netPlacement{"src": {a}, "dst": {c}}
	x2 := a.net.newNetExchange(g2, 2, "job-2", 1,
		func(v string, s int) bool { return p2[v][s] == a }, func(v string, s int) string { return p2[v][s].url })

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for from := range 2 {
		for to := range 2 {
			s := xa.Sender(g.Edges[0], from, to)
			wg.Go(func() {
				for i := 0; ; i++ {
					if err := s.Send(ctx, BatchElement(netBatch(mem, int64(i), 100))); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Go(func() { errs <- x2.Sender(g2.Edges[0], 0, 0).Send(ctx, WatermarkElement(1)) })
	eventually(t, 10*time.Second, func() error {
		for to := range 2 {
			for from := range 2 {
				if n := xb.ins[inKey{"dst", to, from}].inflight.Load(); n != 2 {
					return fmt.Errorf("channel %d→%d holds %d", from, to, n)
				}
			}
		}
		if c.requests.Load() == 0 {
			return errors.New("the unregistered attempt was not asked yet")
		}
		return nil
	})
	// The receivers' side ends first (as when its Run returns): the
	// senders' streams fail; then the senders' tasks are cancelled.
	xb.close()
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		var ce *channelError
		if !errors.Is(err, context.Canceled) && !errors.As(err, &ce) {
			t.Errorf("Send ended with %v, want cancellation or a channel error", err)
		}
	}
	xa.close()
	x2.close()
	xa.close() // idempotent
	for _, w := range []*netWorker{a, b, c} {
		w.stop()
	}
}

// TestNetExchangeBoundsMemory moves 500 batches of 1 MiB to a slow
// consumer: the heap in use (after GC; sender and receiver share this
// process) stays within what the credits allow — capacity batches at the
// receiver, one being decoded, one being sent and one being built — plus
// slack, instead of growing with what was sent.
func TestNetExchangeBoundsMemory(t *testing.T) {
	// Not parallel: measures the heap.
	const (
		capacity = 4
		batches  = 500
		rows     = 1 << 17 // int64: 1 MiB per batch
		batchMiB = 1
	)
	if testing.Short() {
		t.Skip("moves 500 MiB")
	}
	a, b := newNetWorker(t, NetworkOptions{}), newNetWorker(t, NetworkOptions{})
	g := netGraph(1, 1)
	p := netPlacement{"src": {a}, "dst": {b}}
	xa, xb := p.exchange(t, a, g, capacity), p.exchange(t, b, g, capacity)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	schema := arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.PrimitiveTypes.Int64}}, nil)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	base := heap()
	sendErr := make(chan error, 1)
	go func() {
		s := xa.Sender(g.Edges[0], 0, 0)
		for i := range batches {
			// A fresh 1 MiB batch each time, in Go memory: were Send not
			// holding the producer back, the heap would grow with it.
			buf := make([]byte, rows*8)
			buf[0] = byte(i)
			data := array.NewData(arrow.PrimitiveTypes.Int64, rows, []*memory.Buffer{nil, memory.NewBufferBytes(buf)}, nil, 0, 0)
			col := array.NewInt64Data(data)
			data.Release()
			rec := array.NewRecordBatch(schema, []arrow.Array{col}, rows)
			col.Release()
			if err := s.Send(ctx, BatchElement(rec)); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- s.Send(ctx, EndOfInputElement())
	}()
	gate := xb.Gate(g.Vertices[1], 0)
	var peak uint64
	for i := 0; ; i++ {
		_, el, err := gate.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if el.Kind == KindEndOfInput {
			break
		}
		if got := byte(el.Batch.Column(0).(*array.Int64).Value(0)); got != byte(i) {
			t.Fatalf("batch %d carries %d", i, got)
		}
		el.release()
		time.Sleep(500 * time.Microsecond) // a slow consumer
		if i%25 == 0 {
			peak = max(peak, heap())
		}
	}
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	grown := int64(peak) - int64(base)
	bound := int64(capacity+4)*batchMiB<<20 + 12<<20
	t.Logf("heap in use: %.1f MiB before, peak %.1f MiB (+%.1f MiB) while moving %d MiB; bound +%.1f MiB",
		float64(base)/(1<<20), float64(peak)/(1<<20), float64(grown)/(1<<20), batches*batchMiB, float64(bound)/(1<<20))
	if grown > bound {
		t.Errorf("heap grew by %d bytes, credits allow about %d", grown, bound)
	}
}

// FuzzNetExchangeFrames feeds arbitrary bytes to a remote channel's
// receiver as its stream: it must end with nil or an error (failing the
// gate), never panic, and leave the gate drainable. Seeds are streams a
// sender writes: batches (two schemas), control elements, a priority
// barrier. Inputs whose IPC metadata is not one a sender wrote are
// skipped: arrow-go's IPC decoder trusts the flatbuffer (a corrupt field
// count makes it allocate without bound), and peers are workers of the
// same cluster; the framing, the control frames and IPC bodies are
// fuzzed.
func FuzzNetExchangeFrames(f *testing.F) {
	// encode returns the frames a sender writes for els.
	encode := func(els ...Element) []byte {
		var buf bytes.Buffer
		st := &outStream{w: &rawOut{bw: bufio.NewWriter(&buf)}}
		var sent uint64
		for _, el := range els {
			var err error
			if el.Unaligned {
				err = st.write(el, flagPriority, sent)
			} else {
				sent++
				err = st.write(el, 0, 0)
			}
			el.release()
			if err != nil {
				f.Fatal(err)
			}
		}
		return buf.Bytes()
	}
	mem := memory.NewGoAllocator()
	var script []Element
	channelScript(mem, 0, 0, func(el Element) bool { script = append(script, el); return true })
	seeds := [][]byte{
		encode(BatchElement(netBatch(mem, 1, 5)), WatermarkElement(7), EndOfInputElement()),
		encode(WatermarkStatusElement(true), Element{Kind: KindBarrier, Checkpoint: 3, Savepoint: "sp"},
			BatchElement(netBatch(mem, 10, 3)), Element{Kind: KindBarrier, Checkpoint: 4, Unaligned: true}, EndOfInputElement()),
		encode(script...),
		{},
	}
	for _, seed := range seeds {
		f.Add(seed)
	}

	g := netGraph(1, 1)
	known := map[string]bool{}
	for _, seed := range seeds {
		w := &rawIn{br: bufio.NewReader(bytes.NewReader(seed)), maxBody: 1 << 20}
		for {
			h, meta, _, err := w.next()
			if err != nil {
				break
			}
			if h.kind == KindBatch {
				known[string(meta)] = true
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n := NewNetwork(NetworkOptions{})
		defer n.Close()
		x := n.newNetExchange(g, 64, "fuzz", 1, func(v string, _ int) bool { return v == "dst" }, func(string, int) string { return "" })
		defer x.close()
		in := x.ins[inKey{"dst", 0, 0}]
		wire := knownMeta{inWire: &rawIn{br: bufio.NewReader(bytes.NewReader(data)), maxBody: 1 << 20}, known: known, t: t}
		err := in.receive(context.Background(), wire, "fuzz")
		gate := x.Gate(g.Vertices[1], 0).(*localGate)
		if err != nil {
			var ce *channelError
			if !errors.As(err, &ce) {
				t.Fatalf("receive: %v, want a channelError", err)
			}
			select {
			case <-gate.failed:
			default:
				t.Fatal("the gate did not fail")
			}
			// Recv hands out what is buffered, then the error.
			for {
				_, el, rerr := gate.Recv(context.Background())
				if rerr != nil {
					if !errors.As(rerr, &ce) {
						t.Fatalf("Recv: %v, want a channelError", rerr)
					}
					break
				}
				el.release()
			}
		}
	})
}

// knownMeta skips a fuzz input at its first batch frame whose IPC
// metadata no sender wrote.
type knownMeta struct {
	inWire
	known map[string]bool
	t     *testing.T
}

func (w knownMeta) next() (frameHeader, []byte, []byte, error) {
	h, meta, body, err := w.inWire.next()
	if err == nil && h.kind == KindBatch && !w.known[string(meta)] {
		w.t.Skip("IPC metadata no sender wrote")
	}
	return h, meta, body, err
}
