package sabot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
)

// The environment Serve reads. A worker running a function artifact as its
// child sets them.
const (
	// EnvListen is where Serve listens: "unix:///abs/path.sock",
	// "tcp://host:port" or "host:port". Default: DefaultListen.
	EnvListen = "SABOT_FUNCTION_LISTEN"
	// EnvDescribe, set to "1", makes Serve print the protojson of its
	// DescribeResponse on stdout and exit 0 without serving: the deploy
	// command learns the declared functions and state this way.
	EnvDescribe = "SABOT_FUNCTION_DESCRIBE"
	// DefaultListen is the address Serve listens on without EnvListen.
	DefaultListen = "127.0.0.1:8000"
)

// drainTimeout is how long a stopping function process lets running calls
// finish before cancelling them.
const drainTimeout = 10 * time.Second

// Serve serves fns over the function protocol at the address in EnvListen
// until the process gets SIGTERM or SIGINT, then stops as ServeListener does
// and returns nil. It reports invalid functions (ErrInvalidFunction) and a
// failure to listen before serving anything. With EnvDescribe=1 it prints the
// DescribeResponse as JSON on stdout and exits the process with status 0
// instead (or returns the validation error).
//
// A function program's main is typically:
//
//	func main() {
//		if err := sabot.Serve(counter); err != nil {
//			log.Fatal(err)
//		}
//	}
func Serve(fns ...Function) error {
	if os.Getenv(EnvDescribe) == "1" {
		desc, err := Describe(fns...)
		if err != nil {
			return err
		}
		b, err := protojson.Marshal(desc)
		if err != nil {
			return fmt.Errorf("sabot: describe: %w", err)
		}
		if _, err := os.Stdout.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("sabot: describe: %w", err)
		}
		os.Exit(0)
	}
	if _, err := Describe(fns...); err != nil {
		return err // before listening: a bad function never takes the port
	}
	network, addr, err := parseListen(os.Getenv(EnvListen))
	if err != nil {
		return err
	}
	if network == "unix" {
		removeStaleSocket(addr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("sabot: listen: %w", err)
	}
	return ServeListener(ctx, l, fns...)
}

// parseListen maps EnvListen's value to a network and address.
func parseListen(v string) (network, addr string, err error) {
	switch {
	case v == "":
		return "tcp", DefaultListen, nil
	case strings.HasPrefix(v, "unix://"):
		p := strings.TrimPrefix(v, "unix://")
		if !filepath.IsAbs(p) {
			return "", "", fmt.Errorf("sabot: %s=%q: the socket path must be absolute", EnvListen, v)
		}
		return "unix", p, nil
	case strings.HasPrefix(v, "tcp://"):
		return "tcp", strings.TrimPrefix(v, "tcp://"), nil
	case strings.Contains(v, "://"):
		return "", "", fmt.Errorf("sabot: %s=%q: want unix:///path, tcp://host:port or host:port", EnvListen, v)
	default:
		return "tcp", v, nil
	}
}

// removeStaleSocket removes a socket file left by a process that died: a
// new process on the same path could not listen otherwise. Anything that is
// not a socket is left for Listen to fail on.
func removeStaleSocket(path string) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == fs.ModeSocket {
		_ = os.Remove(path)
	}
}

// ServeListener serves fns over the function protocol on l (HTTP/2 without
// TLS, and HTTP/1.1 for Describe) until ctx is done; it closes l. Invalid
// functions are reported (ErrInvalidFunction) before serving.
//
// Stopping is ordered: stop accepting connections and calls (calls that
// arrive later are left unanswered, for the worker to retry elsewhere); let
// running calls finish and send their results for up to 10s; then cancel the
// calls still running, close the connections, and return once every
// goroutine it started has ended. It returns nil after ctx is done, or the
// error that made l fail.
func ServeListener(ctx context.Context, l net.Listener, fns ...Function) error {
	s, err := newFnServer(fns)
	if err != nil {
		_ = l.Close()
		return err
	}
	draining, hardStop := make(chan struct{}), make(chan struct{})
	s.draining, s.hardStop = draining, hardStop
	mux := http.NewServeMux()
	mux.Handle(sabotv1connect.NewFunctionProcessServiceHandler(s))
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true) // sessions are bidi streams: HTTP/2, without TLS
	srv := &http.Server{Handler: mux, Protocols: p, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }() // owned here: every path below waits for served

	var serveErr error
	select {
	case err := <-served:
		serveErr = fmt.Errorf("sabot: serve: %w", err)
		served <- nil // for the wait below
	case <-ctx.Done():
	}
	close(draining)
	shutCtx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	_ = srv.Shutdown(shutCtx) // closes l; returns when the sessions have drained, or at the timeout
	cancel()
	close(hardStop)
	_ = srv.Close()
	if err := <-served; err != nil && serveErr == nil && !errors.Is(err, http.ErrServerClosed) {
		serveErr = fmt.Errorf("sabot: serve: %w", err)
	}
	s.group.stopAndWait()
	return serveErr
}

// NewHandler returns the function protocol's HTTP path and handler, for a
// program that serves it on its own http.Server (which must allow
// unencrypted HTTP/2, see ServeListener). Sessions on it end only when their
// requests do; ServeListener adds an orderly stop.
func NewHandler(fns ...Function) (string, http.Handler, error) {
	s, err := newFnServer(fns)
	if err != nil {
		return "", nil, err
	}
	path, h := sabotv1connect.NewFunctionProcessServiceHandler(s)
	return path, h, nil
}

// fnServer implements sabotv1connect.FunctionProcessServiceHandler.
type fnServer struct {
	eng *engine
	// draining is closed when the process stops: sessions take no new
	// call and end once their running calls are done. hardStop is closed
	// when the drain time is over: sessions cancel their calls and end.
	// Both are nil (never closed) under NewHandler.
	draining, hardStop <-chan struct{}
	group              goGroup
}

func newFnServer(fns []Function) (*fnServer, error) {
	eng, err := newEngine(fns)
	if err != nil {
		return nil, err
	}
	return &fnServer{eng: eng}, nil
}

// Describe implements sabotv1connect.FunctionProcessServiceHandler.
func (s *fnServer) Describe(context.Context, *connect.Request[sabotv1.DescribeRequest]) (*connect.Response[sabotv1.DescribeResponse], error) {
	return connect.NewResponse(s.eng.desc), nil
}

var errStopping = errors.New("sabot: function process stopping")

// Session implements sabotv1connect.FunctionProcessServiceHandler: one
// worker session. A goroutine receives requests, routing read results to
// the waiting invocations and handing calls to this loop, which runs each
// call on its own goroutine (calls may be pipelined) and writes its result
// when done.
//
// The session ends when the worker closes its side (after the running
// calls finish: reads they still make fail), when the stream breaks (running
// calls are cancelled), or when the process stops (see ServeListener).
func (s *fnServer) Session(ctx context.Context, st *connect.BidiStream[sabotv1.SessionRequest, sabotv1.SessionResponse]) error {
	if !s.group.enter() {
		return connect.NewError(connect.CodeUnavailable, errStopping)
	}
	defer s.group.done()
	ctx, cancel := context.WithCancel(ctx)
	ss := &session{stream: st, cancel: cancel}
	ss.mu.pending = make(map[uint64]chan *sabotv1.StateReadResult)
	var calls sync.WaitGroup
	defer func() {
		// Ordered: cancel the calls still running, fail their reads, and
		// wait for them; the stream ends when Session returns, which also
		// ends the receiving goroutine.
		cancel()
		ss.closeReads()
		calls.Wait()
	}()

	reqs := make(chan *sabotv1.Call)
	recvDone := make(chan error, 1)
	if !s.group.goAttach(func() {
		pprof.Do(ctx, pprof.Labels("sabot", "session-receive"), func(ctx context.Context) {
			recvDone <- ss.receive(ctx, reqs)
		})
	}) {
		return connect.NewError(connect.CodeUnavailable, errStopping)
	}

	// stopping: the worker closed its side or the process stops; no call
	// is taken any more, and the session ends when the running ones are
	// done.
	draining, stopping, running := s.draining, false, 0
	callDone := make(chan struct{})
	for {
		select {
		case call := <-reqs:
			if stopping {
				continue // unanswered: the worker retries it elsewhere
			}
			running++
			calls.Go(func() {
				pprof.Do(ctx, pprof.Labels("sabot", "call"), func(ctx context.Context) {
					res := s.eng.handleCall(ctx, call, ss)
					if err := ss.send(&sabotv1.SessionResponse{Kind: &sabotv1.SessionResponse_Result{Result: res}}); err != nil {
						cancel() // the stream is broken: the session is over
					}
				})
				select {
				case callDone <- struct{}{}:
				case <-ctx.Done():
				}
			})
		case <-callDone:
			running--
			if stopping && running == 0 {
				return nil
			}
		case err := <-recvDone:
			recvDone = nil
			if !errors.Is(err, io.EOF) {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			// The worker sends nothing more, read results included.
			ss.closeReads()
			if stopping, draining = true, nil; running == 0 {
				return nil
			}
		case <-draining:
			if stopping, draining = true, nil; running == 0 {
				return nil
			}
		case <-s.hardStop:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// session is one Session stream.
type session struct {
	stream *connect.BidiStream[sabotv1.SessionRequest, sabotv1.SessionResponse]
	cancel context.CancelFunc
	// sendMu serializes Send: results and reads come from many calls, and
	// a stream takes one sender at a time. It is held across the Send (the
	// I/O) by design: it guards the stream, not data.
	sendMu sync.Mutex
	mu     struct {
		sync.Mutex
		next    uint64 // the last read id
		pending map[uint64]chan *sabotv1.StateReadResult
		closed  bool // no read can be answered any more
	}
}

var errReadsClosed = errors.New("session closed")

func (ss *session) send(r *sabotv1.SessionResponse) error {
	ss.sendMu.Lock()
	defer ss.sendMu.Unlock()
	return ss.stream.Send(r)
}

// receive reads requests until the stream ends.
func (ss *session) receive(ctx context.Context, calls chan<- *sabotv1.Call) error {
	for {
		req, err := ss.stream.Receive()
		if err != nil {
			return err
		}
		switch k := req.GetKind().(type) {
		case *sabotv1.SessionRequest_Call:
			select {
			case calls <- k.Call:
			case <-ctx.Done():
				return ctx.Err()
			}
		case *sabotv1.SessionRequest_ReadResult:
			ss.deliver(k.ReadResult)
		default:
			return connect.NewError(connect.CodeInvalidArgument, errors.New("sabot: session request with neither a call nor a read result"))
		}
	}
}

// readState implements stateReader: it sends the read and waits for its
// result, routed back by id.
func (ss *session) readState(ctx context.Context, r *sabotv1.StateRead) (*sabotv1.StateReadResult, error) {
	ch := make(chan *sabotv1.StateReadResult, 1) // deliver never blocks
	ss.mu.Lock()
	if ss.mu.closed {
		ss.mu.Unlock()
		return nil, errReadsClosed
	}
	ss.mu.next++
	r.Id = ss.mu.next
	ss.mu.pending[r.Id] = ch
	ss.mu.Unlock()
	if err := ss.send(&sabotv1.SessionResponse{Kind: &sabotv1.SessionResponse_Read{Read: r}}); err != nil {
		ss.forget(r.Id)
		return nil, err
	}
	select {
	case res, ok := <-ch:
		if !ok {
			return nil, errReadsClosed
		}
		return res, nil
	case <-ctx.Done():
		ss.forget(r.Id)
		return nil, ctx.Err()
	}
}

// deliver routes a read result to its reader. A result nobody waits for
// (its call was cancelled) is dropped.
func (ss *session) deliver(res *sabotv1.StateReadResult) {
	ss.mu.Lock()
	ch := ss.mu.pending[res.GetId()]
	delete(ss.mu.pending, res.GetId())
	ss.mu.Unlock()
	if ch != nil {
		ch <- res
	}
}

func (ss *session) forget(id uint64) {
	ss.mu.Lock()
	delete(ss.mu.pending, id)
	ss.mu.Unlock()
}

// closeReads fails the pending reads and every later one.
func (ss *session) closeReads() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.mu.closed = true
	for id, ch := range ss.mu.pending {
		close(ch)
		delete(ss.mu.pending, id)
	}
}

// goGroup tracks the goroutines of a server, so that its stop can wait for
// all of them; it refuses new ones once stopping.
type goGroup struct {
	mu struct {
		sync.Mutex
		stopped bool
	}
	wg sync.WaitGroup
}

// goAttach runs f on a tracked goroutine, unless the group stopped.
func (g *goGroup) goAttach(f func()) bool {
	if !g.enter() {
		return false
	}
	go func() {
		defer g.done()
		f()
	}()
	return true
}

// enter counts the calling goroutine in, unless the group stopped; done
// counts it out.
func (g *goGroup) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.stopped {
		return false
	}
	g.wg.Add(1)
	return true
}

func (g *goGroup) done() { g.wg.Done() }

// stopAndWait refuses new goroutines and waits for the tracked ones.
func (g *goGroup) stopAndWait() {
	g.mu.Lock()
	g.mu.stopped = true
	g.mu.Unlock()
	g.wg.Wait()
}
