package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/sabotdev/sabot/scheduler/autoscale"
)

// provisionFlags choose the scheduler's worker provisioner.
type provisionFlags struct {
	kind       string // "", "local", "ecs"
	slots      int
	minWorkers int
	maxWorkers int
	blobURL    string // local: the workers' --blob-store
	ecsCluster string
	ecsService string
	ecsRegion  string
}

// localWorkers returns a provisioner that runs `sabot worker` child
// processes of this binary against etcd and the blob store; each gets its
// id from autoscale.WorkerIDEnv. Their output goes to out.
func localWorkers(etcd []string, blobURL string, slots, minWorkers, maxWorkers int, out io.Writer, log *slog.Logger) (*autoscale.Local, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("local workers: %w", err)
	}
	cmd := []string{self, "worker", "--etcd", strings.Join(etcd, ","), "--slots", strconv.Itoa(slots), "--metrics-interval", "1s"}
	if blobURL != "" {
		cmd = append(cmd, "--blob-store", blobURL)
	}
	return autoscale.NewLocal(autoscale.LocalOptions{Command: cmd, Stdout: out, Stderr: out, Logger: log, Min: minWorkers, Max: maxWorkers})
}

// provisioner builds the provisioner the flags ask for; nil for none.
func (f *provisionFlags) provisioner(ctx context.Context, etcd []string, log *slog.Logger) (autoscale.Provisioner, error) {
	switch f.kind {
	case "", "none":
		return nil, nil
	case "local":
		return localWorkers(etcd, f.blobURL, f.slots, f.minWorkers, f.maxWorkers, os.Stderr, log)
	case "ecs":
		if f.ecsService == "" {
			return nil, fmt.Errorf("--provisioner ecs needs --ecs-service")
		}
		cfg, err := loadAWSConfig(ctx, f.ecsRegion)
		if err != nil {
			return nil, err
		}
		return autoscale.NewECS(autoscale.ECSOptions{Client: ecs.NewFromConfig(cfg), Cluster: f.ecsCluster, Service: f.ecsService,
			Min: f.minWorkers, Max: f.maxWorkers, Logger: log})
	default:
		return nil, fmt.Errorf("--provisioner %q: want local, ecs or none", f.kind)
	}
}

// loadAWSConfig reads static credentials from the environment
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) and the
// region (the flag, else AWS_REGION).
func loadAWSConfig(_ context.Context, region string) (aws.Config, error) {
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	if region == "" {
		return aws.Config{}, fmt.Errorf("--ecs-region or AWS_REGION is required")
	}
	id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if id == "" || secret == "" {
		return aws.Config{}, fmt.Errorf("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set")
	}
	return aws.Config{Region: region, Credentials: credentials.NewStaticCredentialsProvider(id, secret, os.Getenv("AWS_SESSION_TOKEN"))}, nil
}
