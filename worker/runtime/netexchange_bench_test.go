package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	"github.com/sabotdev/sabot/gen/sabot/cluster/v1/clusterv1connect"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

const (
	netBenchRows    = 1024
	netBenchBatches = 2000 // per op and channel
)

// netBenchBatch is a batch of netBenchRows rows: id and ts (int64) and a
// name (string, about 12 bytes): about 30 KiB of Arrow buffers.
func netBenchBatch() arrow.RecordBatch {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "ts", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String},
	}, nil)
	b := array.NewRecordBuilder(memory.NewGoAllocator(), schema)
	defer b.Release()
	for i := range int64(netBenchRows) {
		b.Field(0).(*array.Int64Builder).Append(i)
		b.Field(1).(*array.Int64Builder).Append(1_700_000_000_000 + i)
		b.Field(2).(*array.StringBuilder).Append(fmt.Sprintf("bidder-%05d", i))
	}
	return b.NewRecordBatch()
}

// BenchmarkNetExchange moves batches of 1024 rows (two int64 columns and a
// string column, ~30 KiB) from p sending to p receiving subtasks (every
// sender to every receiver) through the local exchange, and through the
// network exchange between two Networks on loopback (h2c, one connection,
// p×p streams) over the raw framing the runtime uses and over the
// ConnectRPC ExchangeService, in the same run. An op moves
// netBenchBatches batches per channel; each case reports rows/s, and the
// network cases their ratio to the local case of the same shape
// (net/local).
//
//	go test ./worker/runtime -run '^$' -bench NetExchange -benchtime 3x
func BenchmarkNetExchange(b *testing.B) {
	rec := netBenchBatch()
	defer rec.Release()
	for _, p := range []int{1, 4} {
		var localRate float64
		for _, transport := range []string{"local", "raw", "connect"} {
			b.Run(fmt.Sprintf("%s/%dx%d", transport, p, p), func(b *testing.B) {
				g := netGraph(p, p)
				var (
					senders []Sender // [from*p+to]
					gates   []Gate
				)
				if transport == "local" {
					x := newLocalExchange(g, DefaultQueueCapacity)
					defer x.drain()
					senders, gates = benchEnds(g, x, x)
				} else {
					a, r := newNetWorker(b, NetworkOptions{}), newNetWorker(b, NetworkOptions{})
					if transport == "connect" {
						a.net.dial = dialConnect
					}
					pl := netPlacement{"src": make([]*netWorker, p), "dst": make([]*netWorker, p)}
					for i := range p {
						pl["src"][i], pl["dst"][i] = a, r
					}
					xa, xr := pl.exchange(b, a, g, DefaultQueueCapacity), pl.exchange(b, r, g, DefaultQueueCapacity)
					senders, gates = benchEnds(g, xa, xr)
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					if err := benchMove(ctx, rec, senders, gates); err != nil {
						b.Fatal(err)
					}
				}
				elapsed := time.Since(start)
				b.StopTimer()
				rate := float64(b.N*netBenchBatches*netBenchRows*p*p) / elapsed.Seconds()
				b.ReportMetric(rate, "rows/s")
				b.ReportMetric(float64(b.N*netBenchBatches*p*p)/elapsed.Seconds(), "batches/s")
				if transport == "local" {
					localRate = rate
				} else if localRate > 0 {
					b.ReportMetric(rate/localRate, "net/local")
				}
				// End every channel so the streams close cleanly.
				if err := benchEnd(ctx, senders, gates); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// benchEnds returns every sender (from*p+to) and gate of g's one edge.
func benchEnds(g *jobgraph.Graph, sx, rx Exchange) ([]Sender, []Gate) {
	e := g.Edges[0]
	var senders []Sender
	for from := range e.From.Parallelism {
		for to := range e.To.Parallelism {
			senders = append(senders, sx.Sender(e, from, to))
		}
	}
	var gates []Gate
	for to := range e.To.Parallelism {
		gates = append(gates, rx.Gate(e.To, to))
	}
	return senders, gates
}

// benchMove sends netBenchBatches references to rec on every channel (one
// goroutine per sending subtask, round robin over its receivers) and
// receives them all.
func benchMove(ctx context.Context, rec arrow.RecordBatch, senders []Sender, gates []Gate) error {
	p := len(gates)
	var wg sync.WaitGroup
	errs := make(chan error, 2*p)
	for from := range p {
		wg.Go(func() {
			for range netBenchBatches {
				for to := range p {
					rec.Retain()
					if err := senders[from*p+to].Send(ctx, BatchElement(rec)); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	for _, g := range gates {
		wg.Go(func() {
			for range netBenchBatches * p {
				_, el, err := g.Recv(ctx)
				if err != nil {
					errs <- err
					return
				}
				el.release()
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// benchEnd sends end-of-input on every channel and receives it.
func benchEnd(ctx context.Context, senders []Sender, gates []Gate) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	errs := make(chan error, len(senders))
	for _, s := range senders {
		// A network sender waits for its receiver to end the stream.
		wg.Go(func() { errs <- s.Send(ctx, EndOfInputElement()) })
	}
	for _, g := range gates {
		for range g.NumChannels() {
			if _, el, err := g.Recv(ctx); err != nil {
				return err
			} else if el.Kind != KindEndOfInput {
				return fmt.Errorf("got %s, want end of input", el.Kind)
			}
		}
	}
	for range senders {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

// The ConnectRPC transport (ExchangeService.Transfer), behind the same
// seams as the raw framing, for the benchmark's comparison.

// dialConnect opens s's stream as an ExchangeService.Transfer call.
func dialConnect(ctx context.Context, s *netSender, deadline time.Time) (outWire, bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream := clusterv1connect.NewExchangeServiceClient(s.x.n.client, s.peer).Transfer(ctx)
	timeout := time.AfterFunc(time.Until(deadline), cancel)
	err := stream.Send(&clusterv1.TransferRequest{Channel: &clusterv1.ExchangeChannel{
		JobId: s.x.key.job, Attempt: s.x.key.attempt, VertexId: s.edge.To.ID, Subtask: int32(s.to), Channel: int32(s.channel),
	}})
	var first *clusterv1.TransferResponse
	if err == nil || errors.Is(err, io.EOF) {
		// io.EOF: the receiver answered already; Receive says what.
		first, err = stream.Receive()
	}
	if !timeout.Stop() {
		err = fmt.Errorf("the receiver did not accept the stream within %v", s.x.n.connectTimeout)
	}
	if err != nil {
		cancel()
		_ = stream.CloseRequest()
		_ = stream.CloseResponse()
		return nil, connect.CodeOf(err) == connect.CodeUnavailable, err
	}
	return &connectOut{stream: stream, cancel: cancel, first: int64(first.GetCredits())}, false, nil
}

// connectOut is the sending side of a Connect stream: one request message
// per frame, the batch body copied into its bytes field.
type connectOut struct {
	stream *connect.BidiStreamForClient[clusterv1.TransferRequest, clusterv1.TransferResponse]
	cancel context.CancelFunc
	first  int64 // the grant read while opening
	req    clusterv1.TransferRequest
	frm    clusterv1.ExchangeFrame
	body   bytes.Buffer
}

func (o *connectOut) frame(h *frameHeader, meta []byte, p *ipc.Payload) error {
	o.frm.Kind, o.frm.Flags, o.frm.Value, o.frm.Seq, o.frm.Meta, o.frm.Body = uint32(h.kind), uint32(h.flags), h.value, h.seq, meta, nil
	if p != nil {
		o.body.Reset()
		if err := p.SerializeBody(&o.body); err != nil {
			return err
		}
		o.frm.Body = o.body.Bytes()
	}
	o.req.Frame = &o.frm
	return o.stream.Send(&o.req)
}

func (o *connectOut) flush() error     { return nil }
func (o *connectOut) closeSend() error { return o.stream.CloseRequest() }

func (o *connectOut) grant() (int64, error) {
	if o.first > 0 {
		n := o.first
		o.first = 0
		return n, nil
	}
	resp, err := o.stream.Receive()
	if err != nil {
		return 0, err // io.EOF after the handler returned nil
	}
	return int64(resp.GetCredits()), nil
}

func (o *connectOut) abort(error) {
	o.cancel()
	_ = o.stream.CloseResponse()
}

// connectExchange serves ExchangeService for a Network.
type connectExchange struct{ n *Network }

// responseControllerKey carries the stream's http.ResponseController from
// the handler's middleware to Transfer, which stops a blocked Receive with
// a read deadline.
type responseControllerKey struct{}

// connectHandler returns the path and handler of n's ExchangeService.
func connectHandler(n *Network) (string, http.Handler) {
	path, h := clusterv1connect.NewExchangeServiceHandler(connectExchange{n})
	return path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), responseControllerKey{}, http.NewResponseController(w))
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (c connectExchange) Transfer(ctx context.Context, stream *connect.BidiStream[clusterv1.TransferRequest, clusterv1.TransferResponse]) error {
	first, err := stream.Receive()
	if err != nil {
		return err
	}
	ch := first.GetChannel()
	in, err := c.n.accept(ctx, ch.GetJobId(), ch.GetAttempt(), ch.GetVertexId(), int(ch.GetSubtask()), int(ch.GetChannel()))
	if err != nil {
		if ae := (*acceptError)(nil); errors.As(err, &ae) && ae.retry {
			return connect.NewError(connect.CodeUnavailable, err)
		}
		return connect.NewError(connect.CodeFailedPrecondition, err)
	}
	rc, _ := ctx.Value(responseControllerKey{}).(*http.ResponseController)
	stopReads := func() { _ = rc.SetReadDeadline(time.Now()) }
	if err := in.serve(&connectIn{stream: stream}, stream.Peer().Addr, stopReads); err != nil {
		return connect.NewError(connect.CodeAborted, err)
	}
	return nil
}

// connectIn is the receiving side of a Connect stream.
type connectIn struct {
	stream *connect.BidiStream[clusterv1.TransferRequest, clusterv1.TransferResponse]
}

func (i *connectIn) next() (frameHeader, []byte, []byte, error) {
	req, err := i.stream.Receive()
	if err != nil {
		return frameHeader{}, nil, nil, err
	}
	f := req.GetFrame()
	if f == nil {
		return frameHeader{}, nil, nil, errors.New("protocol: request without a frame")
	}
	h := frameHeader{kind: ElementKind(f.GetKind()), flags: uint8(f.GetFlags()), value: f.GetValue(), seq: f.GetSeq(),
		metaLen: uint32(len(f.GetMeta())), bodyLen: uint64(len(f.GetBody()))}
	return h, f.GetMeta(), f.GetBody(), nil
}

func (i *connectIn) grant(n int64) error {
	return i.stream.Send(&clusterv1.TransferResponse{Credits: uint32(n)})
}
