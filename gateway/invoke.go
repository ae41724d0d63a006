package gateway

import (
	"context"

	"connectrpc.com/connect"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
)

// Invoke routes the request to the worker owning its key (see above).
func (s *functionService) Invoke(ctx context.Context, req *connect.Request[sabotv1.InvokeRequest]) (*connect.Response[sabotv1.InvokeResponse], error) {
	resp, err := s.router.Invoke(ctx, req.Msg)
	if err != nil {
		return nil, toConnect(s.cfg.Logger, "Invoke", err)
	}
	return connect.NewResponse(resp), nil
}
