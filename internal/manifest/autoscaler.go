package manifest

import (
	"math"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// autoscalerKeys are the keys of the job's autoscaler mapping: its proto
// fields, durations in milliseconds in keys ending in _ms as everywhere
// in a manifest.
func autoscalerKeys() []string {
	return []string{"enabled", "target_utilization", "min_parallelism", "max_parallelism", "cooldown_ms", "metrics_window_ms", "scale_down_threshold", "catch_up_ms"}
}

// autoscaler decodes the job's autoscaler mapping. Ranges (utilization and
// threshold within 0..1, nothing negative) are protovalidate's to report;
// how the settings fit the rest of the job is checkAutoscaler's.
func (d *decoder) autoscaler(e entry) *sabotv1.Autoscaler {
	entries, _ := d.mapping(e.path, e.value, autoscalerKeys())
	a := &sabotv1.Autoscaler{}
	for _, x := range entries {
		switch x.key {
		case "enabled":
			a.Enabled = d.boolean(x)
		case "target_utilization":
			a.TargetUtilization = d.number(x)
		case "min_parallelism":
			a.MinParallelism = d.int32(x)
		case "max_parallelism":
			a.MaxParallelism = d.int32(x)
		case "cooldown_ms":
			a.CooldownMs, _ = d.integer(x, math.MinInt64, math.MaxInt64)
		case "metrics_window_ms":
			a.MetricsWindowMs, _ = d.integer(x, math.MinInt64, math.MaxInt64)
		case "scale_down_threshold":
			a.ScaleDownThreshold = d.number(x)
		case "catch_up_ms":
			a.CatchUpMs, _ = d.integer(x, math.MinInt64, math.MaxInt64)
		}
	}
	return a
}

// checkAutoscaler reports settings of spec's autoscaler that contradict
// each other or the job, which no single field's rule catches: bounds
// that cross or exceed the job's max_parallelism (the number of key
// groups, which no rescale can change), and an enabled autoscaler on a
// job without checkpointing (a rescale stops the job with a savepoint).
func (d *decoder) checkAutoscaler(spec *sabotv1.JobSpec) {
	a := spec.GetAutoscaler()
	if a == nil {
		return
	}
	jobMax := spec.GetMaxParallelism()
	if jobMax == 0 {
		jobMax = jobgraph.DefaultMaxParallelism
	}
	minP, maxP := a.GetMinParallelism(), a.GetMaxParallelism()
	switch {
	case maxP > jobMax:
		field, p := d.locate("autoscaler.max_parallelism")
		d.errorf(p, field, "%d exceeds the job's max_parallelism %d: a rescale cannot go above the job's number of key groups", maxP, jobMax)
	case maxP > 0 && minP > maxP:
		field, p := d.locate("autoscaler.min_parallelism")
		d.errorf(p, field, "%d exceeds autoscaler.max_parallelism %d", minP, maxP)
	case maxP == 0 && minP > jobMax:
		field, p := d.locate("autoscaler.min_parallelism")
		d.errorf(p, field, "%d exceeds the job's max_parallelism %d, the autoscaler's upper bound", minP, jobMax)
	}
	if a.GetEnabled() && spec.GetCheckpointing() == nil {
		field, p := d.locate("autoscaler.enabled")
		d.errorf(p, field, "the autoscaler needs checkpointing: it rescales a job by stopping it with a savepoint and starting it from there; set checkpointing")
	}
}
