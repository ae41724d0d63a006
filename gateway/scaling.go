package gateway

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
)

// RescaleJob is not served yet.
func (s *jobService) RescaleJob(context.Context, *connect.Request[sabotv1.RescaleJobRequest]) (*connect.Response[sabotv1.RescaleJobResponse], error) {
	return nil, connect.NewError(connect.CodeUnimplemented, errors.New("not yet"))
}

// ListWorkers is not served yet.
func (s *jobService) ListWorkers(context.Context, *connect.Request[sabotv1.ListWorkersRequest]) (*connect.Response[sabotv1.ListWorkersResponse], error) {
	return nil, connect.NewError(connect.CodeUnimplemented, errors.New("not yet"))
}

// GetAutoscaler is not served yet.
func (s *jobService) GetAutoscaler(context.Context, *connect.Request[sabotv1.GetAutoscalerRequest]) (*connect.Response[sabotv1.GetAutoscalerResponse], error) {
	return nil, connect.NewError(connect.CodeUnimplemented, errors.New("not yet"))
}
