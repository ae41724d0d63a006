package function

import (
	"context"
	"fmt"
	"sync/atomic"

	"connectrpc.com/connect"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
)

// Conn is an open function: a URL client, or a reference to the Host's
// process for an artifact. It is safe for concurrent use; each Session is
// not. Close it when done: the last Conn of an artifact stops its process.
type Conn struct {
	h    *Host
	name string
	// Exactly one of proc (artifact) and client (URL) is set.
	proc   *process
	client sabotv1connect.FunctionProcessServiceClient
	// ctx is cancelled by Close, the process's stop and the Host's Close;
	// every Session derives from it.
	ctx    context.Context
	cancel context.CancelCauseFunc
	closed atomic.Bool
}

// Session opens a Call stream to the function: to the process running now
// for an artifact, or to the URL. ctx bounds only the opening: while an
// artifact's process is restarting, Session waits for it, and if ctx ends
// first the error wraps ctx's error and the last failure (an *ExitError,
// ErrProcessExited). The Session then lives until its Close, the Conn's or
// Host's Close, or the exit of its process; per-call deadlines go to Call.
// The stream itself is established by the first Call. The caller must
// Close the Session.
func (c *Conn) Session(ctx context.Context) (*Session, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("function %q: connection: %w", c.name, ErrClosed)
	}
	client := c.client
	var r *run
	if c.proc != nil {
		var err error
		if r, err = c.proc.waitRun(ctx, c.ctx); err != nil {
			return nil, fmt.Errorf("function %q: session: %w", c.name, err)
		}
		client = r.client
	}
	return newSession(c.ctx, c.name, client, r), nil
}

// Describe asks the process (or URL) which functions it serves. For an
// artifact it waits, like Session, for a process that is restarting.
func (c *Conn) Describe(ctx context.Context) (*sabotv1.DescribeResponse, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("function %q: connection: %w", c.name, ErrClosed)
	}
	client := c.client
	if c.proc != nil {
		r, err := c.proc.waitRun(ctx, c.ctx)
		if err != nil {
			return nil, fmt.Errorf("function %q: describe: %w", c.name, err)
		}
		client = r.client
	}
	resp, err := client.Describe(ctx, connect.NewRequest(&sabotv1.DescribeRequest{}))
	if err != nil {
		return nil, fmt.Errorf("function %q: describe: %w", c.name, err)
	}
	return resp.Msg, nil
}

// PID returns the process id of the artifact's process running now: 0 for
// a URL function, and while the process is restarting.
func (c *Conn) PID() int {
	if c.proc == nil {
		return 0
	}
	if r := c.proc.current(); r != nil && r.ctx.Err() == nil {
		return r.pid
	}
	return 0
}

// Close releases the Conn: its Sessions are cancelled (their Calls fail
// with ErrClosed), and the artifact's process is stopped if no other Conn
// uses it. Close does not wait for the process to exit (Host.Close does).
// It is idempotent.
func (c *Conn) Close() {
	if c.closed.Swap(true) {
		return
	}
	c.cancel(fmt.Errorf("%w: connection to function %q closed", ErrClosed, c.name))
	c.h.mu.Lock()
	c.h.mu.conns--
	c.h.mu.Unlock()
	if c.proc != nil {
		c.h.release(c.proc)
	}
}
