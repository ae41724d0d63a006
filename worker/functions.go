package worker

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/internal/invoke"
	"github.com/sabotdev/sabot/worker/function"
	"github.com/sabotdev/sabot/worker/runtime"
)

// FunctionHost adapts h to what the runtime's function steps use.
func FunctionHost(h *function.Host) runtime.FunctionHost { return functionHost{h} }

// functionHost runs the worker's function processes for the runtime's
// function steps.
type functionHost struct{ h *function.Host }

func (a functionHost) OpenFunction(ctx context.Context, fn *sabotv1.Function) (runtime.FunctionConn, error) {
	c, err := a.h.Open(ctx, fn)
	if err != nil {
		return nil, err
	}
	return functionConn{c}, nil
}

type functionConn struct{ c *function.Conn }

func (c functionConn) Session(ctx context.Context) (runtime.FunctionSession, error) {
	s, err := c.c.Session(ctx)
	if err != nil {
		return nil, err
	}
	return functionSession{s}, nil
}

func (c functionConn) Close() error {
	c.c.Close()
	return nil
}

type functionSession struct{ *function.Session }

func (s functionSession) Close() error {
	s.Session.Close()
	return nil
}

// invokeHandler serves FunctionService.Invoke on the worker's endpoint:
// the gateway forwards an invocation to the worker owning its key. The
// other FunctionService methods are the gateway's.
type invokeHandler struct {
	sabotv1connect.UnimplementedFunctionServiceHandler
	inv *runtime.Invocations
}

func (h invokeHandler) Invoke(ctx context.Context, req *connect.Request[sabotv1.InvokeRequest]) (*connect.Response[sabotv1.InvokeResponse], error) {
	resp, err := h.inv.Invoke(ctx, req.Msg)
	var fe *runtime.FunctionError
	switch {
	case err == nil:
		return connect.NewResponse(resp), nil
	case errors.Is(err, runtime.ErrNotOwner):
		return nil, connect.NewError(connect.CodeUnavailable, err)
	case errors.Is(err, runtime.ErrInvokeOverloaded):
		return nil, connect.NewError(connect.CodeResourceExhausted, err)
	case errors.As(err, &fe):
		return nil, connect.NewError(connect.CodeAborted, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil, connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("invocation of %s/%s: %w (it may still take effect: retry with the same idempotency key)",
			req.Msg.GetFunction(), req.Msg.GetKey(), err))
	default:
		return nil, connect.NewError(connect.CodeInternal, err)
	}
}

// messenger delivers the messages functions send to other functions (or
// to keys another subtask owns), routed like Invoke requests: to the
// worker owning the receiver's key in the one job running the receiving
// function, as committed invocations.
type messenger struct{ rt *invoke.Router }

func (m messenger) Deliver(ctx context.Context, req *sabotv1.InvokeRequest) error {
	_, err := m.rt.Invoke(ctx, req)
	if connect.CodeOf(err) == connect.CodeAborted {
		// The receiving function failed on the message for good: its
		// step's policy dealt with it (dead letter, or a failed job).
		return nil
	}
	return err
}
