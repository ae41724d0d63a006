package autoscale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
)

// ECSOptions configure an ECS provisioner.
type ECSOptions struct {
	// Client talks to ECS. Required. Build it with the usual AWS
	// configuration (ecs.NewFromConfig), or ecs.New with BaseEndpoint set to
	// point it at a test server.
	Client *ecs.Client
	// Cluster is the ECS cluster's name or ARN; empty means the account's
	// default cluster.
	Cluster string
	// Service is the ECS service whose tasks are the workers. Required.
	Service string
	// Min and Max bound the desired count SetWorkers sets; Max 0 means no
	// upper bound.
	Min, Max int
	// Logger receives each change; nil discards.
	Logger *slog.Logger
}

// ECS is a Provisioner that sets the desired count of an AWS ECS service
// whose tasks run `sabot worker`. ECS starts or stops tasks to match; which
// task it stops on a scale-down is ECS's choice, and the scheduler treats
// the lost worker as any other (its lease expires and its tasks restart
// elsewhere), so scale down after a rescale has moved the work away.
type ECS struct {
	opts ECSOptions
	log  *slog.Logger

	mu struct {
		sync.Mutex
		asked int // last desired count set; -1 before any
	}
}

// NewECS returns an ECS provisioner. It makes no request.
func NewECS(opts ECSOptions) (*ECS, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("autoscale: ecs: Client is nil")
	case opts.Service == "":
		return nil, errors.New("autoscale: ecs: Service is empty")
	case opts.Min < 0 || opts.Max < 0:
		return nil, fmt.Errorf("autoscale: ecs: negative bounds (Min %d, Max %d)", opts.Min, opts.Max)
	case opts.Max > 0 && opts.Min > opts.Max:
		return nil, fmt.Errorf("autoscale: ecs: Min %d is above Max %d", opts.Min, opts.Max)
	}
	e := &ECS{opts: opts, log: opts.Logger}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.log = e.log.With("provisioner", "ecs", "cluster", e.cluster(), "service", opts.Service)
	e.mu.asked = -1
	return e, nil
}

// Name is "ecs".
func (e *ECS) Name() string { return "ecs" }

// cluster names the cluster for messages.
func (e *ECS) cluster() string {
	if e.opts.Cluster == "" {
		return "default"
	}
	return e.opts.Cluster
}

// clusterParam is the request's cluster: nil for the default one.
func (e *ECS) clusterParam() *string {
	if e.opts.Cluster == "" {
		return nil
	}
	return aws.String(e.opts.Cluster)
}

// SetWorkers sets the service's desired count to n clamped to [Min, Max]
// (UpdateService). The error names the cluster and service and wraps the
// SDK's, so errors.As finds the ECS error type (for example
// *types.ServiceNotFoundException) or smithy.APIError.
func (e *ECS) SetWorkers(ctx context.Context, n int) error {
	want := min(clampWorkers(n, e.opts.Min, e.opts.Max), math.MaxInt32)
	_, err := e.opts.Client.UpdateService(ctx, &ecs.UpdateServiceInput{
		Cluster:      e.clusterParam(),
		Service:      aws.String(e.opts.Service),
		DesiredCount: aws.Int32(int32(want)),
	})
	if err != nil {
		return fmt.Errorf("autoscale: ecs: set desired count of service %s in cluster %s to %d: %w", e.opts.Service, e.cluster(), want, err)
	}
	e.mu.Lock()
	e.mu.asked = want
	e.mu.Unlock()
	e.log.Info("desired count set", "asked", n, "desired", want)
	return nil
}

// Workers is the service's desired count as ECS reports it
// (DescribeServices). A service ECS does not find is an error naming it.
func (e *ECS) Workers(ctx context.Context) (int, error) {
	out, err := e.opts.Client.DescribeServices(ctx, &ecs.DescribeServicesInput{
		Cluster:  e.clusterParam(),
		Services: []string{e.opts.Service},
	})
	if err != nil {
		return 0, fmt.Errorf("autoscale: ecs: describe service %s in cluster %s: %w", e.opts.Service, e.cluster(), err)
	}
	if len(out.Failures) > 0 {
		f := out.Failures[0]
		return 0, fmt.Errorf("autoscale: ecs: describe service %s in cluster %s: %s", e.opts.Service, e.cluster(),
			strings.TrimSpace(aws.ToString(f.Reason)+" "+aws.ToString(f.Detail)))
	}
	if len(out.Services) > 0 {
		return int(out.Services[0].DesiredCount), nil
	}
	return 0, fmt.Errorf("autoscale: ecs: describe service %s in cluster %s: no such service in the response", e.opts.Service, e.cluster())
}

// Asked is the desired count this ECS last set, or -1 if it has set none.
func (e *ECS) Asked() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mu.asked
}
