package manifest_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/manifest"
)

// seqSteps is a sequence into a blackhole, the steps of every manifest
// here (no expressions, so sql/expr need not compile).
const seqSteps = "steps:\n  - id: numbers\n    sequence: {end: 10}\n  - id: out\n    blackhole: {}\n"

func TestParseAutoscaler(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want *sabotv1.Autoscaler
	}{{
		name: "every key",
		src: `name: scaled
max_parallelism: 16
checkpointing: {interval_ms: 1000}
autoscaler:
  enabled: true
  target_utilization: 0.7
  min_parallelism: 1
  max_parallelism: 8
  cooldown_ms: 60000
  metrics_window_ms: 10000
  scale_down_threshold: 0.2
  catch_up_ms: 30000
` + seqSteps,
		want: &sabotv1.Autoscaler{Enabled: true, TargetUtilization: 0.7, MinParallelism: 1, MaxParallelism: 8,
			CooldownMs: 60000, MetricsWindowMs: 10000, ScaleDownThreshold: 0.2, CatchUpMs: 30000},
	}, {
		name: "enabled alone: defaults for the rest",
		src:  "name: scaled\ncheckpointing: {interval_ms: 1000}\nautoscaler: {enabled: true}\n" + seqSteps,
		want: &sabotv1.Autoscaler{Enabled: true},
	}, {
		name: "integers for the ratios, the job's max as the bound",
		src:  "name: scaled\ncheckpointing: {interval_ms: 1000}\nautoscaler: {enabled: true, target_utilization: 1, scale_down_threshold: 0, max_parallelism: 128, min_parallelism: 128}\n" + seqSteps,
		want: &sabotv1.Autoscaler{Enabled: true, TargetUtilization: 1, MaxParallelism: 128, MinParallelism: 128},
	}, {
		name: "disabled needs no checkpointing",
		src:  "name: scaled\nautoscaler:\n  enabled: false\n  max_parallelism: 4\n" + seqSteps,
		want: &sabotv1.Autoscaler{MaxParallelism: 4},
	}, {
		name: "empty block",
		src:  "name: scaled\nautoscaler:\n" + seqSteps,
		want: &sabotv1.Autoscaler{},
	}, {
		name: "absent",
		src:  "name: fixed\n" + seqSteps,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := manifest.Parse("job.yaml", []byte(tt.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got.GetAutoscaler(), protocmp.Transform()); diff != "" {
				t.Errorf("autoscaler (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAutoscalerErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want string
	}{{
		name: "shape",
		src: `name: x
checkpointing: {interval_ms: 1000}
autoscaler:
  enabled: yes
  cooldown: 60s
  target_utilization: high
  min_parallelism: 1.5
  catch_up_ms: 30s
` + seqSteps,
		want: "job.yaml:4:12: autoscaler.enabled: expected true or false, got \"yes\"\n" +
			"job.yaml:5:3: autoscaler.cooldown: unknown key, did you mean \"cooldown_ms\"? (allowed: enabled, target_utilization, min_parallelism, max_parallelism, cooldown_ms, metrics_window_ms, scale_down_threshold, catch_up_ms)\n" +
			"job.yaml:6:23: autoscaler.target_utilization: expected a number, got \"high\"\n" +
			"job.yaml:7:20: autoscaler.min_parallelism: expected an integer, got the number 1.5\n" +
			"job.yaml:8:16: autoscaler.catch_up_ms: expected an integer, got \"30s\"",
	}, {
		name: "not a mapping",
		src:  "name: x\nautoscaler: true\n" + seqSteps,
		want: "job.yaml:2:13: autoscaler: expected a mapping, got the boolean true",
	}, {
		name: "ranges",
		src: `name: x
checkpointing: {interval_ms: 1000}
autoscaler:
  enabled: true
  target_utilization: 1.5
  scale_down_threshold: -0.1
  min_parallelism: -1
  cooldown_ms: -5
` + seqSteps,
		want: "job.yaml:5:3: autoscaler.target_utilization: must be greater than or equal to 0 and less than or equal to 1\n" +
			"job.yaml:6:3: autoscaler.scale_down_threshold: must be greater than or equal to 0 and less than or equal to 1\n" +
			"job.yaml:7:3: autoscaler.min_parallelism: must be greater than or equal to 0\n" +
			"job.yaml:8:3: autoscaler.cooldown_ms: must be greater than or equal to 0",
	}, {
		name: "bounds cross",
		src:  "name: x\ncheckpointing: {interval_ms: 1000}\nautoscaler:\n  enabled: true\n  min_parallelism: 6\n  max_parallelism: 4\n" + seqSteps,
		want: "job.yaml:5:3: autoscaler.min_parallelism: 6 exceeds autoscaler.max_parallelism 4",
	}, {
		name: "max above the job's max_parallelism",
		src:  "name: x\nmax_parallelism: 8\ncheckpointing: {interval_ms: 1000}\nautoscaler: {enabled: true, max_parallelism: 16}\n" + seqSteps,
		want: "job.yaml:4:29: autoscaler.max_parallelism: 16 exceeds the job's max_parallelism 8: a rescale cannot go above the job's number of key groups",
	}, {
		name: "min above the default max_parallelism",
		src:  "name: x\ncheckpointing: {interval_ms: 1000}\nautoscaler: {enabled: true, min_parallelism: 200}\n" + seqSteps,
		want: "job.yaml:3:29: autoscaler.min_parallelism: 200 exceeds the job's max_parallelism 128, the autoscaler's upper bound",
	}, {
		name: "enabled without checkpointing",
		src:  "name: x\nautoscaler:\n  enabled: true\n" + seqSteps,
		want: "job.yaml:3:3: autoscaler.enabled: the autoscaler needs checkpointing: it rescales a job by stopping it with a savepoint and starting it from there; set checkpointing",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := manifest.Parse("job.yaml", []byte(tt.src))
			if err == nil {
				t.Fatal("Parse succeeded, want errors")
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("errors:\n got: %s\nwant: %s", got, tt.want)
			}
			if strings.Contains(err.Error(), "cooldownMs") || strings.Contains(err.Error(), "spec.") {
				t.Errorf("a proto path leaked into the manifest errors: %v", err)
			}
		})
	}
}
