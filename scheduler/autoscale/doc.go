// Package autoscale decides a job's parallelism from its metrics and asks a
// Provisioner for the workers it needs. The decision follows the
// autoscaler of Flink's Kubernetes operator (FLIP-271): scale each vertex
// so that it can process the rate its sources receive, at a target
// utilization, measured by "true processing rate" rather than by CPU.
//
// The package is library code with no goroutines of its own except Local's
// process waiters: the scheduler feeds a Window with the workers'
// reports, calls Decide on its reconcile loop, writes the Rescale and the
// ScalingDecision, and calls a Provisioner's SetWorkers.
//
//	w := autoscale.NewWindow(window, 0)
//	w.Add(report.GetAttempt(), report.GetMetrics()) // every report read
//	d := autoscale.Decide(autoscale.Inputs{
//		Graph: g, Settings: spec.GetAutoscaler(), Metrics: w.Metrics(now),
//		LastRescale: lastRescale, Now: now,
//	})
//	if d.Changed() {
//		status.Rescale = d.Rescale()
//		err = prov.SetWorkers(ctx, autoscale.WorkersNeeded(d.Parallelism, slots))
//	}
//
// # Metrics (Window)
//
// Workers report, per subtask, counters since their attempt started
// (clusterv1.TaskMetrics). Over the last metrics window (default 10 s), per
// subtask, with Δ the difference between the oldest and newest sample and
// Δt the task's running time between them (elapsed_ms; sampled_at when
// elapsed_ms is not reported):
//
//	records in/s          = Σ_subtasks Δrecords_in  / Δt
//	records out/s         = Σ_subtasks Δrecords_out / Δt
//	busy ratio            = avg_subtasks Δbusy_ms / Δelapsed_ms            (0..1)
//	backpressured ratio   = avg_subtasks Δbackpressured_ms / Δelapsed_ms   (0..1)
//	true processing rate  = Σ Δrecords_in / Σ Δbusy (s)   per subtask, per busy second
//	                        (records out for a source, which takes no records in)
//	lag                   = Σ_subtasks latest lag          (sources; -1 unknown)
//	lag rate              = Σ_subtasks Δlag / Δt           (records/s, < 0 while catching up)
//
// A vertex is ready when every subtask has at least two samples spanning at
// least half the window and reported within the last two windows; Decide
// also wants every current subtask to report. Anything less is noise, and
// the decision is "hold" with reason "collecting metrics: …". A new attempt
// restarts the counters, so the Window drops its history on one.
//
// # Decision (Decide)
//
// Settings and their defaults (sabot.v1.Autoscaler; 0 means the default):
//
//	target_utilization    0.7     busy share a subtask should run at
//	min_parallelism       1       lower bound of every vertex
//	max_parallelism       the job's max_parallelism (never above it)
//	cooldown              60 s    no decision this long after a rescale
//	metrics_window        10 s    the Window's span
//	scale_down_threshold  0.2     hysteresis of scale-downs
//	catch_up              30 s    time to work off a source's backlog in
//
// Target rates flow through the graph in topological order:
//
//	source:     arrival = max(records out/s + lag rate, 0)   (what arrives at Kafka)
//	            target  = arrival + lag / catch_up
//	            (a source without lag, such as a generator: target = records out/s)
//	other:      target  = Σ_inputs upstream's output target
//	output target = target × records out/s ÷ records in/s    (observed ratio; 1 for a source)
//
// and each vertex needs
//
//	needed = ceil(target / (true processing rate × target_utilization))
//
// clamped to [min_parallelism, max_parallelism]. A vertex grows to needed
// when needed is above its current parallelism; it shrinks only when
// current − needed > scale_down_threshold × current (with 0.2, a vertex at
// 10 shrinks only below 8). The action is "scale-up" when any vertex
// grows, else "scale-down" when any shrinks, else "hold"; the decision
// records every input per vertex (sabot.v1.VertexScaling).
//
// Where Flink's documentation leaves a choice open, or sabot differs:
//   - Chains scale as one. Vertices joined by a chained edge (a forward edge
//     into a vertex with one input: one task), and the ends of an edge the
//     spec declares FORWARD, get the largest parallelism any of them
//     needs. Flink's autoscaler scales a job vertex, which is a chain, so
//     the behaviour is the same; the per-vertex rows show each member's own
//     target.
//   - An idle vertex keeps its parallelism: one that processed no records in
//     the window, or whose true processing rate is unknown (no busy time).
//     Flink too leaves a vertex alone when its rate is not measurable.
//   - The output ratio of a vertex applies to every output edge: the
//     metrics are per vertex, not per edge. For a vertex whose records out
//     include side outputs this overestimates its downstream's targets,
//     which errs towards more parallelism.
//   - The arrival rate is clamped at 0 (a shrinking backlog cannot make the
//     arrival negative), and the catch-up term uses the current lag, so a
//     backlog shrinking on schedule keeps the parallelism that drains it.
//   - needed is rounded up after subtracting 1e-9, so a rate computed as
//     3.0000000000004 subtasks needs 3.
//   - No per-decision cap on the scale factor, no key-group alignment of
//     the parallelism, and no restart time added to the catch-up: the
//     bounds, the cooldown and the hysteresis are the only brakes.
//   - Cooldown is checked before metrics: during it the decision holds even
//     when the rates would call for a change.
//
// Slot sharing, as in Flink: a slot holds one subtask of every vertex, so a
// job needs ceil(widest vertex / slots per worker) workers (WorkersNeeded).
//
// # Provisioners
//
// A Provisioner sets the number of workers: Local runs them as child
// processes (each gets its id in WorkerIDEnv), ECS sets an ECS service's
// desired count. Both clamp to their own Min and Max and return once the
// request is made; workers count for the scheduler once they register in
// etcd.
package autoscale
