package gateway

import (
	"context"
	"errors"
	"log/slog"

	"connectrpc.com/connect"

	"github.com/sabotdev/sabot/internal/cluster"
)

// toConnect maps an error from a handler to what the caller sees. It is the
// only place that decides codes:
//   - *connect.Error passes through (handlers build those for input errors);
//   - context cancellation and deadlines keep their codes;
//   - cluster.ErrNotFound → NotFound, cluster.ErrConflict → Aborted (retry);
//   - anything else → Internal with a generic message; the detail is logged.
func toConnect(log *slog.Logger, op string, err error) error {
	if err == nil {
		return nil
	}
	var cerr *connect.Error
	switch {
	case errors.As(err, &cerr):
		return cerr
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	case errors.Is(err, cluster.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, errors.New("not found"))
	case errors.Is(err, cluster.ErrConflict):
		return connect.NewError(connect.CodeAborted, errors.New("concurrent update; retry"))
	default:
		log.Error("request failed", "op", op, "err", err)
		return connect.NewError(connect.CodeInternal, errors.New("internal error"))
	}
}
