package function

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
)

// errCallAbandoned is the cause a Call's stream is cancelled with when the
// Call's context ends; Call reports ErrCallTimeout or the context's error.
var errCallAbandoned = errors.New("function: the context of a running call ended")

// Session is one Session stream with a function process. It runs one Call
// at a time (the protocol allows several with disjoint keys; this worker
// side does not use that yet): Call returns an error for a Call started
// while another runs. Any failure of a sent call breaks the Session, and
// later Calls fail fast with ErrSessionBroken: the stream's position is unknown
// after a failure (a late result could be taken for the next call's).
// Open a new Session from the Conn then.
type Session struct {
	name   string
	stream *connect.BidiStreamForClient[sabotv1.SessionRequest, sabotv1.SessionResponse]
	run    *run // the process run the stream goes to; nil for a URL
	// ctx is the stream's context: cancelled by Close, the Conn's or
	// Host's Close, the run's exit, and a Call whose context ended.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// stopRun unregisters the context.AfterFunc that propagates the run's
	// end into ctx; nil for a URL.
	stopRun func() bool

	// busy is held by a running Call, and by whoever closes the stream.
	busy        atomic.Bool
	streamClose sync.Once
	mu          struct {
		sync.Mutex
		broken error // the error that broke the session
		closed bool
	}
}

func newSession(parent context.Context, name string, client sabotv1connect.FunctionProcessServiceClient, r *run) *Session {
	s := &Session{name: name, run: r}
	s.ctx, s.cancel = context.WithCancelCause(parent)
	if r != nil {
		s.stopRun = context.AfterFunc(r.ctx, func() { s.cancel(context.Cause(r.ctx)) })
	}
	s.stream = client.Session(s.ctx)
	return s
}

// Call sends call and returns its result. While the process works on it,
// the process may ask for lazily read state: Call answers each StateRead
// by calling read on the caller's goroutine (so read may use state owned by
// that goroutine without locks) and sends read's answer back, with its id
// set. A nil read, or a read returning nil, answers with an error the
// function sees.
//
// The deadline is ctx's: when it passes first, Call fails with
// ErrCallTimeout; when ctx is cancelled, with ctx's error. Call fails with
// an error wrapping ErrProcessExited (an *ExitError with the exit status)
// if the process dies, ErrProtocol if it answers wrongly (a result for
// another call, a result count other than the invocation count, a read for
// a call not running), and ErrClosed if the Session, Conn or Host was
// closed. Any failure after the call was sent breaks the Session (see
// Session); a ctx already done when Call starts fails it without sending.
//
// Call checks only the shape of the answer; the results' content
// (mutations of declared states, replies) is the caller's to check.
func (s *Session) Call(ctx context.Context, call *sabotv1.Call, read func(*sabotv1.StateRead) *sabotv1.StateReadResult) (*sabotv1.CallResult, error) {
	if !s.busy.CompareAndSwap(false, true) {
		if s.isClosed() {
			// Close holds busy while it closes the stream.
			return nil, fmt.Errorf("function %q: session: %w", s.name, ErrClosed)
		}
		return nil, fmt.Errorf("function %q: Call while another Call runs on the session (one at a time)", s.name)
	}
	defer s.release()
	if err := s.usable(); err != nil {
		return nil, err
	}
	if call == nil {
		return nil, fmt.Errorf("function %q: nil call", s.name)
	}
	if ctx.Err() != nil {
		// Nothing was sent: the session is still usable.
		return nil, s.ctxError(ctx, call.GetId())
	}
	stop := context.AfterFunc(ctx, func() { s.cancel(errCallAbandoned) })
	res, err := s.call(call, read)
	if !stop() && err == nil {
		// ctx ended just as the result arrived: the result is good, but
		// the stream has been cancelled.
		s.breakWith(s.ctxError(ctx, call.GetId()))
	}
	if err != nil {
		err = s.classify(ctx, call.GetId(), err)
		s.breakWith(err)
		return nil, err
	}
	return res, nil
}

// call sends the call and runs the receive loop until its result.
func (s *Session) call(call *sabotv1.Call, read func(*sabotv1.StateRead) *sabotv1.StateReadResult) (*sabotv1.CallResult, error) {
	id := call.GetId()
	if err := s.send(&sabotv1.SessionRequest{Kind: &sabotv1.SessionRequest_Call{Call: call}}); err != nil {
		return nil, err
	}
	for {
		resp, err := s.stream.Receive()
		if err != nil {
			return nil, err
		}
		switch k := resp.GetKind().(type) {
		case *sabotv1.SessionResponse_Result:
			r := k.Result
			switch {
			case r == nil:
				return nil, protocolErrorf("empty result during call %d", id)
			case r.GetId() != id:
				return nil, protocolErrorf("result for call %d while call %d runs", r.GetId(), id)
			case len(r.GetResults()) != len(call.GetInvocations()):
				return nil, protocolErrorf("call %d has %d invocations but its result has %d", id, len(call.GetInvocations()), len(r.GetResults()))
			}
			return r, nil
		case *sabotv1.SessionResponse_Read:
			rd := k.Read
			switch {
			case rd == nil:
				return nil, protocolErrorf("empty state read during call %d", id)
			case rd.GetCallId() != id:
				return nil, protocolErrorf("state read %d for call %d, which is not running (call %d is)", rd.GetId(), rd.GetCallId(), id)
			}
			ans := answer(rd, read)
			if err := s.send(&sabotv1.SessionRequest{Kind: &sabotv1.SessionRequest_ReadResult{ReadResult: ans}}); err != nil {
				return nil, err
			}
		default:
			return nil, protocolErrorf("empty session response during call %d", id)
		}
	}
}

// answer calls read for rd and fills in the answer's id.
func answer(rd *sabotv1.StateRead, read func(*sabotv1.StateRead) *sabotv1.StateReadResult) *sabotv1.StateReadResult {
	if read == nil {
		return &sabotv1.StateReadResult{Id: rd.GetId(), Error: "this call serves no lazy state reads"}
	}
	ans := read(rd)
	if ans == nil {
		return &sabotv1.StateReadResult{Id: rd.GetId(), Error: "the worker has no answer to this read"}
	}
	ans.Id = rd.GetId()
	return ans
}

// send sends req. When the server has ended the stream, Send reports only
// io.EOF; the reason is what Receive returns.
func (s *Session) send(req *sabotv1.SessionRequest) error {
	err := s.stream.Send(req)
	if err == nil || !errors.Is(err, io.EOF) {
		return err
	}
	for {
		_, rerr := s.stream.Receive()
		if rerr != nil {
			return rerr
		}
		// A message the process sent before ending the stream: it cannot
		// answer anything now. Look for the end.
	}
}

// classify turns a failure of call id into the error Call returns. The
// order matters: a closed Session, Conn or Host and a dead process explain
// every other symptom (a cancelled stream, a broken connection).
func (s *Session) classify(ctx context.Context, id uint64, err error) error {
	if cause := context.Cause(s.ctx); cause != nil && !errors.Is(cause, errCallAbandoned) {
		return fmt.Errorf("function %q: call %d: %w", s.name, id, cause)
	}
	if ctx.Err() != nil {
		return s.ctxError(ctx, id)
	}
	if exit := s.awaitExit(err); exit != nil {
		return fmt.Errorf("function %q: call %d: %w", s.name, id, exit)
	}
	switch {
	case errors.Is(err, ErrProtocol):
		return fmt.Errorf("function %q: call %d: %w", s.name, id, err)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("function %q: %w", s.name, protocolErrorf("the process ended the session without answering call %d", id))
	default:
		return fmt.Errorf("function %q: call %d: %w", s.name, id, err)
	}
}

// awaitExit returns the run's exit if the process has exited or exits
// shortly: a connection broken by a dying process usually fails the
// stream just before the exit waiter reaps the process. Errors that the
// process sent itself (a wire error, a clean end, an answer we rejected)
// do not wait.
func (s *Session) awaitExit(err error) *ExitError {
	if s.run == nil {
		return nil
	}
	select {
	case <-s.run.done:
		return s.run.exit
	default:
	}
	if errors.Is(err, ErrProtocol) || errors.Is(err, io.EOF) || connect.IsWireError(err) {
		return nil
	}
	t := time.NewTimer(exitSettle)
	defer t.Stop()
	select {
	case <-s.run.done:
		return s.run.exit
	case <-t.C:
		return nil
	}
}

// ctxError is the error of call id whose ctx ended.
func (s *Session) ctxError(ctx context.Context, id uint64) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("function %q: call %d: no result before the deadline: %w", s.name, id, ErrCallTimeout)
	}
	return fmt.Errorf("function %q: call %d: %w", s.name, id, context.Cause(ctx))
}

// usable returns an error if the session is closed or broken.
func (s *Session) usable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.mu.closed:
		return fmt.Errorf("function %q: session: %w", s.name, ErrClosed)
	case s.mu.broken != nil:
		return fmt.Errorf("function %q: %w: %w", s.name, ErrSessionBroken, s.mu.broken)
	}
	return nil
}

// breakWith marks the session broken by err and cancels its stream.
func (s *Session) breakWith(err error) {
	s.mu.Lock()
	if s.mu.broken == nil {
		s.mu.broken = err
	}
	s.mu.Unlock()
	s.cancel(err)
}

// release ends a Call. If Close ran meanwhile, it left closing the stream
// to whoever takes busy next: this Call, now.
func (s *Session) release() {
	s.busy.Store(false)
	if s.isClosed() && s.busy.CompareAndSwap(false, true) {
		s.closeStream()
		s.busy.Store(false)
	}
}

func (s *Session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.closed
}

// Close ends the Session: the stream is cancelled, and a Call running on
// another goroutine returns with ErrClosed. It is idempotent.
func (s *Session) Close() {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return
	}
	s.mu.closed = true
	s.mu.Unlock()
	s.cancel(fmt.Errorf("%w: session closed", ErrClosed))
	if s.stopRun != nil {
		s.stopRun()
	}
	// The stream may not be closed under a running Call's feet; that Call
	// closes it when it returns (release).
	if s.busy.CompareAndSwap(false, true) {
		s.closeStream()
		s.busy.Store(false)
	}
}

// closeStream releases the stream's resources. Its context is cancelled
// by then, so neither call blocks.
func (s *Session) closeStream() {
	s.streamClose.Do(func() {
		_ = s.stream.CloseRequest()
		_ = s.stream.CloseResponse()
	})
}
