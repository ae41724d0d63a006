package manifest

import (
	"math"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
)

// Keys and value names of the job's checkpointing and restart_strategy.
// Durations are integers of milliseconds in keys ending in _ms, as
// everywhere in a manifest, so each key is its proto field.

func checkpointingKeys() []string {
	return []string{"interval_ms", "mode", "timeout_ms", "min_pause_ms", "max_concurrent", "tolerable_failures", "unaligned", "aligned_timeout_ms", "retained"}
}

// checkpointModes are the manifest's names of sabotv1.CheckpointMode 1, 2.
func checkpointModes() []string { return []string{"exactly_once", "at_least_once"} }

// deliveries are the manifest's names of sabotv1.DeliveryGuarantee 1, 2.
func deliveries() []string { return []string{"at_least_once", "exactly_once"} }

// restartStrategies are the fields of the RestartStrategy oneof.
func restartStrategies() []string {
	return []string{"none", "fixed_delay", "exponential_delay", "failure_rate"}
}
func fixedDelayKeys() []string { return []string{"attempts", "delay_ms"} }
func exponentialDelayKeys() []string {
	return []string{"initial_delay_ms", "max_delay_ms", "multiplier", "reset_after_ms", "attempts"}
}
func failureRateKeys() []string { return []string{"max_failures", "interval_ms", "delay_ms"} }

// checkpointing decodes the job's checkpointing mapping.
func (d *decoder) checkpointing(e entry) *sabotv1.Checkpointing {
	entries, ok := d.mapping(e.path, e.value, checkpointingKeys())
	cp := &sabotv1.Checkpointing{}
	hasInterval := false
	for _, x := range entries {
		switch x.key {
		case "interval_ms":
			hasInterval = true
			cp.IntervalMs, _ = d.integer(x, math.MinInt64, math.MaxInt64)
		case "mode":
			if i, good := d.enum(x, checkpointModes()); good {
				cp.Mode = sabotv1.CheckpointMode(i + 1)
			}
		case "timeout_ms":
			cp.TimeoutMs, _ = d.integer(x, math.MinInt64, math.MaxInt64)
		case "min_pause_ms":
			cp.MinPauseMs, _ = d.integer(x, math.MinInt64, math.MaxInt64)
		case "max_concurrent":
			cp.MaxConcurrent = d.int32(x)
		case "tolerable_failures":
			cp.TolerableFailures = d.int32(x)
		case "unaligned":
			cp.Unaligned = d.boolean(x)
		case "aligned_timeout_ms":
			cp.AlignedTimeoutMs, _ = d.integer(x, math.MinInt64, math.MaxInt64)
		case "retained":
			cp.Retained = d.int32(x)
		}
	}
	if ok && !hasInterval {
		d.errorf(e.pos, e.path, "missing required key \"interval_ms\": the time between two checkpoints")
	}
	return cp
}

// restartStrategy decodes restart_strategy: a strategy's name alone
// (`restart_strategy: none`, defaults for the rest), or a mapping with
// exactly one strategy key and its settings
// (`restart_strategy: {fixed_delay: {attempts: 3, delay_ms: 10000}}`).
func (d *decoder) restartStrategy(e entry) *sabotv1.RestartStrategy {
	rs := &sabotv1.RestartStrategy{}
	names := restartStrategies()
	switch e.value.(type) {
	case *ast.MappingNode, *ast.MappingValueNode, *ast.NullNode, nil:
	default:
		// The short form: a strategy's name.
		if i, ok := d.enum(e, names); ok {
			x := entry{key: names[i], path: childPath(e.path, names[i]), pos: e.valuePos()}
			d.at[x.path] = x.pos
			d.setStrategy(rs, names[i], x)
		}
		return rs
	}
	entries, ok := d.mapping(e.path, e.value, names)
	if !ok {
		return rs
	}
	if len(entries) != 1 {
		d.errorf(e.pos, e.path, "set exactly one restart strategy: %s, got %d", strings.Join(names, ", "), len(entries))
	}
	for _, x := range entries {
		d.setStrategy(rs, x.key, x)
	}
	return rs
}

// setStrategy decodes the strategy name's settings from x (null: defaults).
func (d *decoder) setStrategy(rs *sabotv1.RestartStrategy, name string, x entry) {
	switch name {
	case "none":
		_, _ = d.mapping(x.path, x.value, []string{})
		rs.Strategy = &sabotv1.RestartStrategy_None{None: &sabotv1.NoRestart{}}
	case "fixed_delay":
		f := &sabotv1.FixedDelayRestart{}
		sub, _ := d.mapping(x.path, x.value, fixedDelayKeys())
		for _, y := range sub {
			switch y.key {
			case "attempts":
				f.Attempts = d.int32(y)
			case "delay_ms":
				f.DelayMs, _ = d.integer(y, math.MinInt64, math.MaxInt64)
			}
		}
		rs.Strategy = &sabotv1.RestartStrategy_FixedDelay{FixedDelay: f}
	case "exponential_delay":
		f := &sabotv1.ExponentialDelayRestart{}
		sub, _ := d.mapping(x.path, x.value, exponentialDelayKeys())
		for _, y := range sub {
			switch y.key {
			case "initial_delay_ms":
				f.InitialDelayMs, _ = d.integer(y, math.MinInt64, math.MaxInt64)
			case "max_delay_ms":
				f.MaxDelayMs, _ = d.integer(y, math.MinInt64, math.MaxInt64)
			case "multiplier":
				f.Multiplier = d.number(y)
			case "reset_after_ms":
				f.ResetAfterMs, _ = d.integer(y, math.MinInt64, math.MaxInt64)
			case "attempts":
				f.Attempts = d.int32(y)
			}
		}
		rs.Strategy = &sabotv1.RestartStrategy_ExponentialDelay{ExponentialDelay: f}
	case "failure_rate":
		f := &sabotv1.FailureRateRestart{}
		sub, _ := d.mapping(x.path, x.value, failureRateKeys())
		for _, y := range sub {
			switch y.key {
			case "max_failures":
				f.MaxFailures = d.int32(y)
			case "interval_ms":
				f.IntervalMs, _ = d.integer(y, math.MinInt64, math.MaxInt64)
			case "delay_ms":
				f.DelayMs, _ = d.integer(y, math.MinInt64, math.MaxInt64)
			}
		}
		rs.Strategy = &sabotv1.RestartStrategy_FailureRate{FailureRate: f}
	}
}

// number returns a finite number scalar (integer or decimal).
func (d *decoder) number(e entry) float64 {
	switch e.value.(type) {
	case *ast.IntegerNode, *ast.FloatNode:
		f, err := strconv.ParseFloat(strings.ReplaceAll(e.value.GetToken().Value, "_", ""), 64)
		if err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return f
		}
	}
	d.errorf(e.valuePos(), e.path, "expected a number, got %s", describe(e.value))
	return 0
}
