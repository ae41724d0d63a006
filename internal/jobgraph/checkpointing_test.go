package jobgraph_test

import (
	"strings"
	"testing"
	"time"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// kafkaJob is sequence → kafka sink with the given settings.
func kafkaJob(cp *sabotv1.Checkpointing, rs *sabotv1.RestartStrategy, sinks ...*sabotv1.KafkaSink) *sabotv1.JobSpec {
	vs := []*sabotv1.Vertex{{Id: "s", Operator: seq()}}
	var es []*sabotv1.Edge
	for i, k := range sinks {
		id := "out" + string(rune('a'+i))
		vs = append(vs, &sabotv1.Vertex{Id: id, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_KafkaSink{KafkaSink: k}}})
		es = append(es, &sabotv1.Edge{From: "s", To: id})
	}
	s := spec(1, vs, es...)
	s.Checkpointing, s.RestartStrategy = cp, rs
	return s
}

func exactlyOnce(mut func(*sabotv1.KafkaSink)) *sabotv1.KafkaSink {
	k := &sabotv1.KafkaSink{Brokers: []string{"b:9092"}, Topic: "t", Delivery: sabotv1.DeliveryGuarantee_DELIVERY_GUARANTEE_EXACTLY_ONCE}
	if mut != nil {
		mut(k)
	}
	return k
}

func every(d time.Duration) *sabotv1.Checkpointing {
	return &sabotv1.Checkpointing{IntervalMs: d.Milliseconds()}
}

func fixed(d time.Duration) *sabotv1.RestartStrategy {
	return &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_FixedDelay{FixedDelay: &sabotv1.FixedDelayRestart{DelayMs: d.Milliseconds()}}}
}

func TestFaultToleranceAccepted(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		spec *sabotv1.JobSpec
	}{
		{"at-least-once sink without checkpointing", kafkaJob(nil, nil, &sabotv1.KafkaSink{Brokers: []string{"b:9092"}, Topic: "t"})},
		{"exactly-once with defaults", kafkaJob(every(10*time.Second), nil, exactlyOnce(nil))},
		// 8m + 1s + 1m < 10m.
		{"interval just fits the default timeout", kafkaJob(every(8*time.Minute), nil, exactlyOnce(nil))},
		{"timeout equal to the broker max", kafkaJob(every(time.Minute), nil, exactlyOnce(func(k *sabotv1.KafkaSink) {
			k.TransactionTimeoutMs = (15 * time.Minute).Milliseconds()
		}))},
		{"unaligned", kafkaJob(&sabotv1.Checkpointing{IntervalMs: 1000, Unaligned: true}, nil,
			&sabotv1.KafkaSink{Brokers: []string{"b:9092"}, Topic: "t"})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := jobgraph.Resolve(tc.spec); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFaultToleranceErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		spec *sabotv1.JobSpec
		want []string
	}{
		{"exactly-once without checkpointing", kafkaJob(nil, nil, exactlyOnce(nil)),
			[]string{"vertex outa: operator.kafka_sink.delivery: delivery exactly_once needs checkpointing"}},
		{"exactly-once with at-least-once checkpoints", kafkaJob(&sabotv1.Checkpointing{IntervalMs: 1000, Mode: sabotv1.CheckpointMode_CHECKPOINT_MODE_AT_LEAST_ONCE}, nil, exactlyOnce(nil)),
			[]string{"operator.kafka_sink.delivery: delivery exactly_once needs checkpointing mode exactly_once"}},
		{"interval plus restart delay outlives the default timeout", kafkaJob(every(5*time.Minute), fixed(5*time.Minute), exactlyOnce(nil)),
			[]string{"operator.kafka_sink.transaction_timeout_ms: transaction timeout 10m0s is too short", "must exceed 11m0s",
				"the broker aborts a transaction that outlives its timeout, and its records are lost"}},
		{"exponential maximum counts", kafkaJob(every(time.Minute), &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_ExponentialDelay{
			ExponentialDelay: &sabotv1.ExponentialDelayRestart{MaxDelayMs: (9 * time.Minute).Milliseconds()},
		}}, exactlyOnce(nil)), []string{"restart delay (up to 9m0s)", "must exceed 11m0s"}},
		{"timeout above the broker max", kafkaJob(every(time.Minute), nil, exactlyOnce(func(k *sabotv1.KafkaSink) {
			k.TransactionTimeoutMs = (20 * time.Minute).Milliseconds()
		})), []string{"transaction timeout 20m0s exceeds the brokers' transaction.max.timeout.ms", "the broker refuses"}},
		{"nothing the brokers allow is long enough", kafkaJob(every(14*time.Minute), nil, exactlyOnce(nil)),
			[]string{"shorten the checkpoint interval or the restart delay"}},
		{"transaction settings on an at-least-once sink", kafkaJob(every(time.Second), nil, &sabotv1.KafkaSink{Brokers: []string{"b:9092"}, Topic: "t", TransactionTimeoutMs: 1000}),
			[]string{"operator.kafka_sink.transaction_timeout_ms: transaction_timeout_ms applies only with delivery exactly_once"}},
		{"shared transactional id prefix", kafkaJob(every(time.Second), nil,
			exactlyOnce(func(k *sabotv1.KafkaSink) { k.TransactionalIdPrefix = "p" }), exactlyOnce(func(k *sabotv1.KafkaSink) { k.TransactionalIdPrefix = "p" })),
			[]string{`vertex outb: operator.kafka_sink.transactional_id_prefix: transactional_id_prefix "p" is also used by outa`}},
		{"unaligned at least once", kafkaJob(&sabotv1.Checkpointing{IntervalMs: 1000, Mode: sabotv1.CheckpointMode_CHECKPOINT_MODE_AT_LEAST_ONCE, Unaligned: true}, nil,
			&sabotv1.KafkaSink{Brokers: []string{"b:9092"}, Topic: "t"}),
			[]string{"checkpointing.unaligned: unaligned checkpoints need mode exactly_once"}},
		{"aligned timeout without unaligned", kafkaJob(&sabotv1.Checkpointing{IntervalMs: 1000, AlignedTimeoutMs: 100}, nil, &sabotv1.KafkaSink{Brokers: []string{"b:9092"}, Topic: "t"}),
			[]string{"checkpointing.aligned_timeout_ms: aligned_timeout_ms applies only with unaligned: true"}},
		{"unaligned with an aligned timeout", kafkaJob(&sabotv1.Checkpointing{IntervalMs: 1000, Unaligned: true, AlignedTimeoutMs: 100}, nil,
			&sabotv1.KafkaSink{Brokers: []string{"b:9092"}, Topic: "t"}),
			[]string{"checkpointing.aligned_timeout_ms: switching from aligned to unaligned after a timeout is not supported yet"}},
		{"exponential initial above max", kafkaJob(nil, &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_ExponentialDelay{
			ExponentialDelay: &sabotv1.ExponentialDelayRestart{InitialDelayMs: 10_000, MaxDelayMs: 5_000, Multiplier: 0.5},
		}}, &sabotv1.KafkaSink{Brokers: []string{"b:9092"}, Topic: "t"}),
			[]string{"restart_strategy.exponential_delay.initial_delay_ms: initial delay 10s exceeds the maximum delay 5s",
				"restart_strategy.exponential_delay.multiplier: multiplier 0.5 would shrink the delay"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := jobgraph.Resolve(tc.spec)
			if err == nil {
				t.Fatal("Resolve succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestMaxRestartDelay(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		spec *sabotv1.JobSpec
		want time.Duration
	}{
		{"no checkpointing, no strategy", kafkaJob(nil, nil), 0},
		{"checkpointing, no strategy", kafkaJob(every(time.Second), nil), time.Second},
		{"fixed", kafkaJob(nil, fixed(3*time.Second)), 3 * time.Second},
		{"exponential default max", kafkaJob(nil, &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_ExponentialDelay{ExponentialDelay: &sabotv1.ExponentialDelayRestart{}}}), 5 * time.Minute},
		{"none", kafkaJob(every(time.Second), &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_None{None: &sabotv1.NoRestart{}}}), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := jobgraph.MaxRestartDelay(tc.spec); got != tc.want {
				t.Fatalf("MaxRestartDelay = %s, want %s", got, tc.want)
			}
		})
	}
}
