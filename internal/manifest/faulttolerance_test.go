package manifest_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/manifest"
)

// kafkaSteps is a sequence into a Kafka sink whose settings follow (each
// line indented for the sink's mapping).
func kafkaSteps(sink ...string) string {
	s := "steps:\n  - id: numbers\n    sequence: {end: 10}\n  - id: out\n    kafka_sink:\n      brokers: [\"127.0.0.1:9092\"]\n      topic: numbers\n"
	for _, l := range sink {
		s += "      " + l + "\n"
	}
	return s
}

func TestParseFaultTolerance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		cp   *sabotv1.Checkpointing
		rs   *sabotv1.RestartStrategy
		sink *sabotv1.KafkaSink
	}{{
		name: "every checkpointing key, fixed delay, an exactly-once sink",
		src: `name: eo
checkpointing:
  interval_ms: 10000
  mode: exactly_once
  timeout_ms: 60000
  min_pause_ms: 500
  max_concurrent: 1
  tolerable_failures: 3
  unaligned: true
  aligned_timeout_ms: 0
  retained: 2
restart_strategy:
  fixed_delay: {attempts: 10, delay_ms: 2000}
` + kafkaSteps("delivery: exactly_once", "transaction_timeout_ms: 900000", "broker_max_transaction_timeout_ms: 900000", "transactional_id_prefix: eo-out"),
		cp: &sabotv1.Checkpointing{IntervalMs: 10000, Mode: sabotv1.CheckpointMode_CHECKPOINT_MODE_EXACTLY_ONCE, TimeoutMs: 60000, MinPauseMs: 500,
			MaxConcurrent: 1, TolerableFailures: 3, Unaligned: true, Retained: 2},
		rs: &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_FixedDelay{FixedDelay: &sabotv1.FixedDelayRestart{Attempts: 10, DelayMs: 2000}}},
		sink: &sabotv1.KafkaSink{Brokers: []string{"127.0.0.1:9092"}, Topic: "numbers", Delivery: sabotv1.DeliveryGuarantee_DELIVERY_GUARANTEE_EXACTLY_ONCE,
			TransactionTimeoutMs: 900000, BrokerMaxTransactionTimeoutMs: 900000, TransactionalIdPrefix: "eo-out"},
	}, {
		name: "exponential delay",
		src: `name: exp
checkpointing: {interval_ms: 200, mode: at_least_once}
restart_strategy:
  exponential_delay: {initial_delay_ms: 100, max_delay_ms: 60000, multiplier: 1.5, reset_after_ms: 600000, attempts: 20}
` + kafkaSteps("delivery: at_least_once"),
		cp: &sabotv1.Checkpointing{IntervalMs: 200, Mode: sabotv1.CheckpointMode_CHECKPOINT_MODE_AT_LEAST_ONCE},
		rs: &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_ExponentialDelay{ExponentialDelay: &sabotv1.ExponentialDelayRestart{
			InitialDelayMs: 100, MaxDelayMs: 60000, Multiplier: 1.5, ResetAfterMs: 600000, Attempts: 20}}},
		sink: &sabotv1.KafkaSink{Brokers: []string{"127.0.0.1:9092"}, Topic: "numbers", Delivery: sabotv1.DeliveryGuarantee_DELIVERY_GUARANTEE_AT_LEAST_ONCE},
	}, {
		name: "failure rate",
		src:  "name: fr\nrestart_strategy:\n  failure_rate: {max_failures: 3, interval_ms: 60000, delay_ms: 1000}\n" + kafkaSteps(),
		rs: &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_FailureRate{FailureRate: &sabotv1.FailureRateRestart{
			MaxFailures: 3, IntervalMs: 60000, DelayMs: 1000}}},
		sink: &sabotv1.KafkaSink{Brokers: []string{"127.0.0.1:9092"}, Topic: "numbers"},
	}, {
		name: "a strategy by name",
		src:  "name: none\ncheckpointing: {interval_ms: 1000}\nrestart_strategy: none\n" + kafkaSteps(),
		cp:   &sabotv1.Checkpointing{IntervalMs: 1000},
		rs:   &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_None{None: &sabotv1.NoRestart{}}},
		sink: &sabotv1.KafkaSink{Brokers: []string{"127.0.0.1:9092"}, Topic: "numbers"},
	}, {
		name: "none as a key",
		src:  "name: none\nrestart_strategy: {none: {}}\n" + kafkaSteps(),
		rs:   &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_None{None: &sabotv1.NoRestart{}}},
		sink: &sabotv1.KafkaSink{Brokers: []string{"127.0.0.1:9092"}, Topic: "numbers"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := manifest.Parse("job.yaml", []byte(tt.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.cp, got.GetCheckpointing(), protocmp.Transform()); diff != "" {
				t.Errorf("checkpointing (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.rs, got.GetRestartStrategy(), protocmp.Transform()); diff != "" {
				t.Errorf("restart_strategy (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.sink, got.GetGraph().GetVertices()[1].GetOperator().GetKafkaSink(), protocmp.Transform()); diff != "" {
				t.Errorf("kafka_sink (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFaultToleranceErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want string
	}{{
		name: "checkpointing shape",
		src:  "name: x\ncheckpointing:\n  intervall_ms: 10\n  mode: exactly-once\n  unaligned: yes please\n" + kafkaSteps(),
		want: "job.yaml:2:1: checkpointing: missing required key \"interval_ms\": the time between two checkpoints\n" +
			"job.yaml:3:3: checkpointing.intervall_ms: unknown key, did you mean \"interval_ms\"? (allowed: interval_ms, mode, timeout_ms, min_pause_ms, max_concurrent, tolerable_failures, unaligned, aligned_timeout_ms, retained)\n" +
			"job.yaml:4:9: checkpointing.mode: unknown value \"exactly-once\", did you mean \"exactly_once\"? (one of: exactly_once, at_least_once)\n" +
			"job.yaml:5:14: checkpointing.unaligned: expected true or false, got \"yes please\"",
	}, {
		name: "checkpointing ranges",
		src:  "name: x\ncheckpointing:\n  interval_ms: 5\n  max_concurrent: 20\n" + kafkaSteps(),
		want: "job.yaml:3:3: checkpointing.interval_ms: must be greater than or equal to 10 and less than or equal to 86400000\n" +
			"job.yaml:4:3: checkpointing.max_concurrent: must be greater than or equal to 0 and less than or equal to 16",
	}, {
		name: "restart strategy shape",
		src:  "name: x\nrestart_strategy:\n  fixed_delay: {attempts: 3, delay: 10}\n  none:\n" + kafkaSteps(),
		want: "job.yaml:2:1: restart_strategy: set exactly one restart strategy: none, fixed_delay, exponential_delay, failure_rate, got 2\n" +
			"job.yaml:3:30: restart_strategy.fixed_delay.delay: unknown key (allowed: attempts, delay_ms)",
	}, {
		name: "restart strategy name",
		src:  "name: x\nrestart_strategy: fixed\n" + kafkaSteps(),
		want: "job.yaml:2:19: restart_strategy: unknown value \"fixed\" (one of: none, fixed_delay, exponential_delay, failure_rate)",
	}, {
		name: "failure rate needs its settings",
		src:  "name: x\nrestart_strategy: failure_rate\n" + kafkaSteps(),
		want: "job.yaml:2:19: restart_strategy.failure_rate: max_failures must be greater than or equal to 1\n" +
			"job.yaml:2:19: restart_strategy.failure_rate: interval_ms must be greater than or equal to 1",
	}, {
		name: "multiplier not a number",
		src:  "name: x\nrestart_strategy: {exponential_delay: {multiplier: twice}}\n" + kafkaSteps(),
		want: "job.yaml:2:52: restart_strategy.exponential_delay.multiplier: expected a number, got \"twice\"",
	}, {
		name: "exactly-once without checkpointing",
		src:  "name: x\n" + kafkaSteps("delivery: exactly_once"),
		want: "job.yaml:9:7: steps[1].kafka_sink.delivery: delivery exactly_once needs checkpointing: the sink commits its Kafka transaction when a checkpoint completes; set checkpointing (mode exactly_once) or use delivery at_least_once",
	}, {
		name: "exactly-once with at-least-once checkpoints",
		src:  "name: x\ncheckpointing: {interval_ms: 1000, mode: at_least_once}\n" + kafkaSteps("delivery: exactly_once"),
		want: "job.yaml:10:7: steps[1].kafka_sink.delivery: delivery exactly_once needs checkpointing mode exactly_once, but the job's checkpoints are at_least_once: after a restore, records would be written again",
	}, {
		name: "transaction timeout trap at the default timeout",
		src:  "name: x\ncheckpointing: {interval_ms: 300000}\nrestart_strategy: {fixed_delay: {delay_ms: 300000}}\n" + kafkaSteps("delivery: exactly_once"),
		want: "job.yaml:8:5: steps[1].kafka_sink: transaction timeout 10m0s is too short: a transaction stays open for a checkpoint interval (5m0s) and, after a failure, the restart delay (up to 5m0s) plus 1m0s to recover before it is committed, so the timeout must exceed 11m0s; the broker aborts a transaction that outlives its timeout, and its records are lost; raise transaction_timeout_ms (at most the brokers' transaction.max.timeout.ms, 15m0s)",
	}, {
		name: "transaction timeout above the broker max",
		src:  "name: x\ncheckpointing: {interval_ms: 1000}\n" + kafkaSteps("delivery: exactly_once", "transaction_timeout_ms: 3600000"),
		want: "job.yaml:11:7: steps[1].kafka_sink.transaction_timeout_ms: transaction timeout 1h0m0s exceeds the brokers' transaction.max.timeout.ms (broker_max_transaction_timeout_ms: 15m0s): the broker refuses a producer with a longer timeout; lower transaction_timeout_ms, or raise transaction.max.timeout.ms on the brokers and broker_max_transaction_timeout_ms with it",
	}, {
		name: "unaligned at least once",
		src:  "name: x\ncheckpointing:\n  interval_ms: 1000\n  mode: at_least_once\n  unaligned: true\n" + kafkaSteps(),
		want: "job.yaml:5:3: checkpointing.unaligned: unaligned checkpoints need mode exactly_once: at-least-once checkpoints do not align barriers, so there is nothing to unalign",
	}, {
		name: "delivery value",
		src:  "name: x\n" + kafkaSteps("delivery: exactly-once"),
		want: "job.yaml:9:17: steps[1].kafka_sink.delivery: unknown value \"exactly-once\", did you mean \"exactly_once\"? (one of: at_least_once, exactly_once)",
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
			if strings.Contains(err.Error(), "graph.") || strings.Contains(err.Error(), "operator.") {
				t.Errorf("a proto path leaked into the manifest errors: %v", err)
			}
		})
	}
}
