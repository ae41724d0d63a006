package jobgraph

import (
	"time"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
)

// Defaults of the fault-tolerance settings, as the proto documents them.
// They are needed here to check settings against each other; the
// components that act on them (scheduler, worker) apply the same values.
const (
	// DefaultTransactionTimeout is a Kafka sink's transaction timeout when
	// transaction_timeout_ms is 0.
	DefaultTransactionTimeout = 10 * time.Minute
	// DefaultBrokerMaxTransactionTimeout is the brokers'
	// transaction.max.timeout.ms assumed when
	// broker_max_transaction_timeout_ms is 0 (Kafka's default).
	DefaultBrokerMaxTransactionTimeout = 15 * time.Minute
	// RecoveryAllowance is the time allowed, on top of the checkpoint
	// interval and the restart delay, for a restarted job to restore and
	// commit the transactions of its last checkpoint.
	RecoveryAllowance = time.Minute

	defaultRestartDelay        = time.Second     // fixed delay without restart_strategy
	defaultExponentialInitial  = time.Second     // exponential_delay.initial_delay_ms 0
	defaultExponentialMaxDelay = 5 * time.Minute // exponential_delay.max_delay_ms 0
)

// MaxRestartDelay is the longest delay the job's restart strategy waits
// before a restart: 0 for none, the fixed or failure-rate delay, the
// exponential maximum. Without restart_strategy it is the default's: 1 s
// with checkpointing, 0 (no restart) without.
func MaxRestartDelay(spec *sabotv1.JobSpec) time.Duration {
	switch s := spec.GetRestartStrategy().GetStrategy().(type) {
	case *sabotv1.RestartStrategy_FixedDelay:
		return ms(s.FixedDelay.GetDelayMs())
	case *sabotv1.RestartStrategy_ExponentialDelay:
		return msOr(s.ExponentialDelay.GetMaxDelayMs(), defaultExponentialMaxDelay)
	case *sabotv1.RestartStrategy_FailureRate:
		return ms(s.FailureRate.GetDelayMs())
	case *sabotv1.RestartStrategy_None:
		return 0
	}
	if spec.GetCheckpointing() != nil {
		return defaultRestartDelay
	}
	return 0
}

// faultTolerance checks the job's checkpointing and restart strategy, and
// each Kafka sink's delivery guarantee against them: the combinations
// protovalidate cannot see.
func (r *resolver) faultTolerance() {
	spec := r.spec
	cp := spec.GetCheckpointing()
	atLeastOnce := cp.GetMode() == sabotv1.CheckpointMode_CHECKPOINT_MODE_AT_LEAST_ONCE
	if cp.GetUnaligned() && atLeastOnce {
		r.fail("", "checkpointing.unaligned",
			"unaligned checkpoints need mode exactly_once: at-least-once checkpoints do not align barriers, so there is nothing to unalign")
	}
	switch {
	case cp.GetAlignedTimeoutMs() > 0 && !cp.GetUnaligned():
		r.fail("", "checkpointing.aligned_timeout_ms",
			"aligned_timeout_ms applies only with unaligned: true (it is how long a checkpoint stays aligned before switching to unaligned)")
	case cp.GetAlignedTimeoutMs() > 0:
		r.fail("", "checkpointing.aligned_timeout_ms",
			"switching from aligned to unaligned after a timeout is not supported yet: leave aligned_timeout_ms at 0 (unaligned from the start) or drop unaligned")
	}
	if e := spec.GetRestartStrategy().GetExponentialDelay(); e != nil {
		initial := msOr(e.GetInitialDelayMs(), defaultExponentialInitial)
		maxDelay := msOr(e.GetMaxDelayMs(), defaultExponentialMaxDelay)
		if initial > maxDelay {
			r.fail("", "restart_strategy.exponential_delay.initial_delay_ms",
				"initial delay %s exceeds the maximum delay %s", initial, maxDelay)
		}
		if m := e.GetMultiplier(); m != 0 && m < 1 {
			r.fail("", "restart_strategy.exponential_delay.multiplier",
				"multiplier %g would shrink the delay; it must be at least 1 (0 means 2)", m)
		}
	}

	prefixes := map[string]string{} // transactional_id_prefix → vertex
	for _, v := range spec.GetGraph().GetVertices() {
		k := v.GetOperator().GetKafkaSink()
		if k == nil {
			continue
		}
		const field = "operator.kafka_sink"
		if k.GetDelivery() != sabotv1.DeliveryGuarantee_DELIVERY_GUARANTEE_EXACTLY_ONCE {
			// Transaction settings on an at-least-once sink would be
			// silently ignored; say so instead.
			for _, f := range []struct {
				name string
				set  bool
			}{
				{"transaction_timeout_ms", k.GetTransactionTimeoutMs() != 0},
				{"broker_max_transaction_timeout_ms", k.GetBrokerMaxTransactionTimeoutMs() != 0},
				{"transactional_id_prefix", k.GetTransactionalIdPrefix() != ""},
			} {
				if f.set {
					r.fail(v.GetId(), field+"."+f.name, "%s applies only with delivery exactly_once", f.name)
				}
			}
			continue
		}
		if p := k.GetTransactionalIdPrefix(); p != "" {
			if other, dup := prefixes[p]; dup {
				r.fail(v.GetId(), field+".transactional_id_prefix",
					"transactional_id_prefix %q is also used by %s; sinks sharing a prefix fence each other's transactions", p, other)
			}
			prefixes[p] = v.GetId()
		}
		switch {
		case cp == nil:
			r.fail(v.GetId(), field+".delivery",
				"delivery exactly_once needs checkpointing: the sink commits its Kafka transaction when a checkpoint completes; set checkpointing (mode exactly_once) or use delivery at_least_once")
			continue
		case atLeastOnce:
			r.fail(v.GetId(), field+".delivery",
				"delivery exactly_once needs checkpointing mode exactly_once, but the job's checkpoints are at_least_once: after a restore, records would be written again")
			continue
		}
		r.transactionTimeout(v.GetId(), field+".transaction_timeout_ms", k, cp)
	}
}

// transactionTimeout checks the transaction-timeout trap of exactly-once
// Kafka sinks. A transaction stays open from one checkpoint to the next
// and, after a failure, until the restarted job restores the checkpoint and
// commits it. If it is open longer than the producer's transaction timeout,
// the broker aborts it and its records are lost; a timeout above the
// brokers' transaction.max.timeout.ms is refused when the producer starts.
func (r *resolver) transactionTimeout(vertex, field string, k *sabotv1.KafkaSink, cp *sabotv1.Checkpointing) {
	timeout := msOr(k.GetTransactionTimeoutMs(), DefaultTransactionTimeout)
	brokerMax := msOr(k.GetBrokerMaxTransactionTimeoutMs(), DefaultBrokerMaxTransactionTimeout)
	interval := ms(cp.GetIntervalMs())
	restart := MaxRestartDelay(r.spec)
	need := interval + restart + RecoveryAllowance
	if timeout > brokerMax {
		r.fail(vertex, field,
			"transaction timeout %s exceeds the brokers' transaction.max.timeout.ms (broker_max_transaction_timeout_ms: %s): the broker refuses a producer with a longer timeout; lower transaction_timeout_ms, or raise transaction.max.timeout.ms on the brokers and broker_max_transaction_timeout_ms with it",
			timeout, brokerMax)
		return
	}
	if timeout <= need {
		hint := "raise transaction_timeout_ms (at most the brokers' transaction.max.timeout.ms, " + brokerMax.String() + ")"
		if need >= brokerMax {
			hint = "shorten the checkpoint interval or the restart delay, or raise transaction.max.timeout.ms on the brokers (" + brokerMax.String() + ") and transaction_timeout_ms"
		}
		r.fail(vertex, field,
			"transaction timeout %s is too short: a transaction stays open for a checkpoint interval (%s) and, after a failure, the restart delay (up to %s) plus %s to recover before it is committed, so the timeout must exceed %s; the broker aborts a transaction that outlives its timeout, and its records are lost; %s",
			timeout, interval, restart, RecoveryAllowance, need, hint)
	}
}

func ms(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

func msOr(v int64, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return ms(v)
}
