package main

import (
	"context"

	"fmt"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
)

// baseURL turns --addr (host:port or URL) into a URL.
func baseURL(addr string) string {
	if strings.Contains(addr, "://") {
		return strings.TrimRight(addr, "/")
	}
	return "http://" + addr
}

func jobClient(g *globals) sabotv1connect.JobServiceClient {
	return sabotv1connect.NewJobServiceClient(&http.Client{Timeout: 30 * time.Second}, baseURL(g.addr))
}

// deploySpec sends a spec to the gateway.
func deploySpec(ctx context.Context, c sabotv1connect.JobServiceClient, spec *sabotv1.JobSpec) (*sabotv1.Job, error) {
	resp, err := c.DeployJob(ctx, connect.NewRequest(&sabotv1.DeployJobRequest{Spec: spec}))
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	return resp.Msg.GetJob(), nil
}
