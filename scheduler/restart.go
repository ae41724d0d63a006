package scheduler

import (
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
)

// Restart strategies (Flink's restart-strategy.*) decide what a failure
// does to a job: restart it after a delay, or fail it. The decision is a
// pure function of the job's spec, the bookkeeping in its status and the
// time, so that whichever scheduler leads next continues it.

// Defaults of the strategies, as the proto documents them.
const (
	// defaultFixedDelay is the delay of the strategy a job with
	// checkpointing and no restart_strategy gets (Flink's default: fixed
	// delay, unlimited attempts, 1 s).
	defaultFixedDelay      = time.Second
	defaultExpInitialDelay = time.Second
	defaultExpMaxDelay     = 5 * time.Minute
	defaultExpMultiplier   = 2.0
	defaultExpResetAfter   = time.Hour
)

// failure is one failure of a placed attempt.
type failure struct {
	// reason says what failed: "task failed: <error>", "worker w1 lost".
	reason string
	// lostWorker: the attempt's worker disappeared (its lease expired).
	lostWorker bool
	// unrecoverable: the worker reported an error that restarting cannot
	// repair (TaskReport.unrecoverable, worker/runtime.ErrUnrecoverable),
	// such as a Kafka transaction the broker aborted: data loss.
	unrecoverable bool
}

// verdict is what a restart strategy decided about a failure.
type verdict struct {
	restart bool
	delay   time.Duration
	// msg is the job's status message: the reason, and what happens next.
	msg string
	// The bookkeeping to store (see JobStatus), meaningful with restart.
	restarts     int32
	backoff      time.Duration
	failureTimes []*timestamppb.Timestamp
	// legacy: restart at once from scratch without touching the
	// bookkeeping (a lost worker of a job with neither checkpointing nor a
	// restart strategy, which the platform has always restarted).
	legacy bool
}

// effectiveStrategy returns the strategy a failure of a job with spec is
// judged by: the spec's own; without one, fixed delay (unlimited attempts,
// 1 s) when the job checkpoints, and none otherwise. It returns nil for the
// one case outside any strategy: a lost worker of a job with neither
// checkpointing nor a restart strategy is restarted at once, from scratch,
// as before restart strategies existed.
func effectiveStrategy(spec *sabotv1.JobSpec, lostWorker bool) *sabotv1.RestartStrategy {
	switch {
	case spec.GetRestartStrategy().GetStrategy() != nil:
		return spec.GetRestartStrategy()
	case spec.GetCheckpointing() != nil:
		return &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_FixedDelay{
			FixedDelay: &sabotv1.FixedDelayRestart{DelayMs: defaultFixedDelay.Milliseconds()},
		}}
	case lostWorker:
		return nil
	default:
		return &sabotv1.RestartStrategy{Strategy: &sabotv1.RestartStrategy_None{None: &sabotv1.NoRestart{}}}
	}
}

// judge applies the job's restart strategy to failure f at now, given the
// bookkeeping in st. An unrecoverable failure fails the job whatever the
// strategy: every restart would fail the same way, or the failure already
// lost data that a restart would only hide.
func judge(spec *sabotv1.JobSpec, st *sabotv1.JobStatus, f failure, now time.Time) verdict {
	if f.unrecoverable {
		return failed(f, "not restarting: the failure is unrecoverable (a restart cannot repair it), whatever the restart strategy")
	}
	rs := effectiveStrategy(spec, f.lostWorker)
	if rs == nil {
		return verdict{restart: true, legacy: true, msg: f.reason + "; restarting from scratch"}
	}
	var v verdict
	switch s := rs.GetStrategy().(type) {
	case *sabotv1.RestartStrategy_FixedDelay:
		n := st.GetRestarts() + 1
		if limit := s.FixedDelay.GetAttempts(); limit > 0 && n > limit {
			return failed(f, fmt.Sprintf("fixed_delay restart strategy exhausted: all %d restarts used", limit))
		}
		v = verdict{restart: true, delay: ms(s.FixedDelay.GetDelayMs()), restarts: n}
		v.msg = restartMsg(spec, f, v.delay, fmt.Sprintf("restart %s", ofAttempts(n, s.FixedDelay.GetAttempts())))

	case *sabotv1.RestartStrategy_ExponentialDelay:
		e := s.ExponentialDelay
		initial := msOr(e.GetInitialDelayMs(), defaultExpInitialDelay)
		maxDelay := msOr(e.GetMaxDelayMs(), defaultExpMaxDelay)
		resetAfter := msOr(e.GetResetAfterMs(), defaultExpResetAfter)
		mult := e.GetMultiplier()
		if mult == 0 {
			mult = defaultExpMultiplier
		}
		restarts, backoff := st.GetRestarts(), ms(st.GetBackoffMs())
		// A job that ran reset_after since its last restart without
		// failing starts over: initial delay, attempts counted afresh.
		if last := st.GetRestartAt(); backoff == 0 || last == nil || now.Sub(last.AsTime()) >= resetAfter {
			restarts, backoff = 0, 0
		}
		delay := initial
		if backoff > 0 {
			delay = time.Duration(math.Min(float64(backoff)*mult, float64(maxDelay)))
		}
		delay = min(delay, maxDelay)
		n := restarts + 1
		if limit := e.GetAttempts(); limit > 0 && n > limit {
			return failed(f, fmt.Sprintf("exponential_delay restart strategy exhausted: all %d restarts used", limit))
		}
		v = verdict{restart: true, delay: delay, restarts: n}
		v.msg = restartMsg(spec, f, delay, fmt.Sprintf("restart %s", ofAttempts(n, e.GetAttempts())))

	case *sabotv1.RestartStrategy_FailureRate:
		fr := s.FailureRate
		interval := ms(fr.GetIntervalMs())
		// Failures within the interval, this one included.
		var recent []*timestamppb.Timestamp
		for _, t := range st.GetFailureTimes() {
			if now.Sub(t.AsTime()) < interval {
				recent = append(recent, t)
			}
		}
		recent = append(recent, timestamppb.New(now))
		if n := int32(len(recent)); n > fr.GetMaxFailures() {
			return failed(f, fmt.Sprintf("failure_rate restart strategy exceeded: %d failures within %s, at most %d allowed",
				n, interval, fr.GetMaxFailures()))
		}
		v = verdict{restart: true, delay: ms(fr.GetDelayMs()), restarts: st.GetRestarts() + 1, failureTimes: recent}
		v.msg = restartMsg(spec, f, v.delay, fmt.Sprintf("failure %d of at most %d within %s", len(recent), fr.GetMaxFailures(), interval))

	default: // none, or a kind this version does not know: do not guess
		if spec.GetRestartStrategy().GetStrategy() == nil {
			return failed(f, "not restarting: a job without checkpointing and without restart_strategy is not restarted")
		}
		return failed(f, "not restarting: restart strategy none")
	}
	v.backoff = v.delay
	return v
}

func failed(f failure, why string) verdict {
	return verdict{msg: f.reason + "; " + why}
}

// restartMsg says why and when the job restarts: "task failed: boom;
// restarting in 1s (restart 3 of 10)".
func restartMsg(spec *sabotv1.JobSpec, f failure, delay time.Duration, count string) string {
	from := ""
	if spec.GetCheckpointing() == nil {
		from = " from scratch" // nothing to restore
	}
	return fmt.Sprintf("%s; restarting%s in %s (%s)", f.reason, from, delay, count)
}

func ofAttempts(n, limit int32) string {
	if limit <= 0 {
		return fmt.Sprintf("%d, unlimited", n)
	}
	return fmt.Sprintf("%d of %d", n, limit)
}

func ms(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

func msOr(v int64, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return ms(v)
}
