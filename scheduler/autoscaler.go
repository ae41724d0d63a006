package scheduler

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/scheduler/autoscale"
)

// The autoscaler (JobSpec.autoscaler; the algorithm is package
// autoscale's). On every pass the leader feeds each running autoscaled
// job's reported task metrics into a per-job window, asks
// autoscale.Decide, and when the decision changes the parallelism writes
// it as the job's rescale (cause "autoscaler"; the rescale itself is
// rescale.go's) together with the decision, its inputs and the workers it
// asks for (cluster.RecordScalingDecision; GetAutoscaler serves them).
// Holds are recorded when their reason changes, or once per metrics window
// while it stays the same, so the API shows what the autoscaler sees.
//
// Workers: with a Provisioner, the leader asks for as many workers as the
// jobs' slots need (slot sharing: a job needs as many slots as its largest
// vertex parallelism; Config.SlotsPerWorker each), growing at once and
// shrinking only while no job is rescaling or restarting (placement prefers
// the longest-running workers, so the provisioner's newest, removed first,
// run nothing by then). The windows live in the leader's memory: a new
// leader collects metrics afresh before deciding.

// autoscaler is the leader's autoscaling state; used by the reconcile
// goroutine only.
type autoscaler struct {
	windows  map[string]*autoscale.Window // by job
	lastHold map[string]holdRecord        // by job
	asked    int                          // workers last asked of the provisioner; -1 none
}

type holdRecord struct {
	reason string
	at     time.Time
}

func newAutoscaler() *autoscaler {
	return &autoscaler{windows: map[string]*autoscale.Window{}, lastHold: map[string]holdRecord{}, asked: -1}
}

// autoscale runs the autoscaler over every job once.
func (r *reconciler) autoscale(ctx context.Context, sn *snapshot, jobs []cluster.Versioned[*sabotv1.Job]) error {
	if r.as == nil {
		r.as = newAutoscaler()
	}
	a := r.as
	now := r.cfg.Clock.Now()
	slots, settling := 0, false
	live := map[string]bool{}
	for _, jv := range jobs {
		job := jv.Value
		st := job.GetStatus()
		if cluster.IsTerminal(st.GetState()) {
			continue
		}
		need, err := slotsOf(job.GetSpec())
		if err != nil {
			continue
		}
		if rs := st.GetRescale(); rs != nil || st.GetState() != sabotv1.JobState_JOB_STATE_RUNNING {
			settling = true
			if rs != nil {
				if n, err := slotsOf(cluster.RescaledSpec(job.GetSpec(), rs)); err == nil {
					need = max(need, n)
				}
			}
		}
		slots += need
		set := job.GetSpec().GetAutoscaler()
		if !set.GetEnabled() {
			continue
		}
		live[job.GetId()] = true
		if st.GetState() != sabotv1.JobState_JOB_STATE_RUNNING || st.GetRescale() != nil {
			continue
		}
		rescale, err := r.evaluate(ctx, sn, job, now)
		if err != nil {
			return err
		}
		if rescale != nil {
			settling = true
			if n, err := slotsOf(cluster.RescaledSpec(job.GetSpec(), rescale)); err == nil {
				slots += max(n-need, 0)
			}
		}
	}
	for id := range a.windows {
		if !live[id] {
			delete(a.windows, id)
			delete(a.lastHold, id)
		}
	}
	return r.provision(ctx, slots, settling)
}

// evaluate decides for one running autoscaled job and writes a change as
// its rescale. It returns the rescale written, if any.
func (r *reconciler) evaluate(ctx context.Context, sn *snapshot, job *sabotv1.Job, now time.Time) (*sabotv1.Rescale, error) {
	a := r.as
	id := job.GetId()
	g, err := jobgraph.Resolve(job.GetSpec())
	if err != nil {
		return nil, nil
	}
	set := autoscale.WithDefaults(job.GetSpec().GetAutoscaler(), g.MaxParallelism)
	w := a.windows[id]
	if w == nil {
		w = autoscale.NewWindow(time.Duration(set.GetMetricsWindowMs())*time.Millisecond, 0)
		a.windows[id] = w
	}
	attempt := job.GetStatus().GetAttempt()
	for _, as := range sn.assignments[id] {
		if rep := sn.reports[id][as.Value.GetWorkerId()]; rep.GetAttempt() == attempt {
			w.Add(attempt, rep.GetMetrics())
			r.cfg.Logger.Debug("autoscaler: metrics", "job", id, "worker", rep.GetWorkerId(), "subtasks", len(rep.GetMetrics()))
		}
	}
	last := job.GetCreatedAt().AsTime()
	if lr := job.GetStatus().GetLastRescale(); lr.GetRunningAt() != nil {
		last = lr.GetRunningAt().AsTime()
	} else if lr != nil {
		last = lr.GetRequestedAt().AsTime()
	}
	d := autoscale.Decide(autoscale.Inputs{Graph: g, MaxParallelism: g.MaxParallelism, Settings: set,
		Metrics: w.Metrics(now), LastRescale: last, Now: now})
	rec := d.Record
	if rec.GetTime() == nil {
		rec.Time = timestamppb.New(now)
	}
	if !d.Changed() {
		h := a.lastHold[id]
		if h.reason == d.Reason && now.Sub(h.at) < w.Span() {
			return nil, nil
		}
		a.lastHold[id] = holdRecord{reason: d.Reason, at: now}
		return nil, r.recordDecision(ctx, id, rec)
	}
	delete(a.lastHold, id)
	rs := d.Rescale()
	rs.RequestedAt = timestamppb.New(now)
	if n, err := slotsOf(cluster.RescaledSpec(job.GetSpec(), rs)); err == nil && r.cfg.SlotsPerWorker > 0 {
		rec.WorkersRequested = int32((n + r.cfg.SlotsPerWorker - 1) / r.cfg.SlotsPerWorker)
	}
	_, err = cluster.UpdateJob(ctx, r.kv, id, func(j *sabotv1.Job) (bool, error) {
		st := j.GetStatus()
		if st.GetState() != sabotv1.JobState_JOB_STATE_RUNNING || st.GetRescale() != nil || st.GetAttempt() != attempt {
			return false, nil
		}
		st.Rescale = rs
		return true, nil
	}, []clientv3.Cmp{r.fence}, nil)
	if err != nil {
		return nil, err
	}
	w.Reset()
	r.cfg.Logger.Info("autoscaler: rescaling", "job", id, "action", d.Action, "reason", d.Reason, "parallelism", d.Parallelism)
	return rs, r.recordDecision(ctx, id, rec)
}

func (r *reconciler) recordDecision(ctx context.Context, jobID string, d *sabotv1.ScalingDecision) error {
	for _, v := range d.GetVertices() {
		r.cfg.Logger.Debug("autoscaler: vertex", "job", jobID, "vertex", v.GetVertexId(), "current", v.GetCurrentParallelism(),
			"new", v.GetNewParallelism(), "in/s", v.GetRecordsInPerSecond(), "busy", v.GetBusyRatio(),
			"backpressured", v.GetBackpressuredRatio(), "true rate", v.GetTrueProcessingRate(), "target", v.GetTargetRate(), "lag", v.GetLag())
	}
	if err := cluster.RecordScalingDecision(ctx, r.kv, jobID, d, r.fence); err != nil {
		return fmt.Errorf("record scaling decision: %w", err)
	}
	return nil
}

// provision asks the provisioner for the workers slots need: more at
// once, fewer only when nothing is settling.
func (r *reconciler) provision(ctx context.Context, slots int, settling bool) error {
	p := r.cfg.Provisioner
	if p == nil {
		return nil
	}
	n := max((slots+r.cfg.SlotsPerWorker-1)/r.cfg.SlotsPerWorker-r.cfg.StaticWorkers, 0)
	a := r.as
	first := a.asked < 0
	if first {
		// A new term: the provisioner is asked once whatever it has, so
		// its bounds (a minimum of workers) apply from the start.
		cur, err := p.Workers(ctx)
		if err != nil {
			return fmt.Errorf("provisioner %s: %w", p.Name(), err)
		}
		a.asked = cur
		if settling {
			n = max(n, cur)
		}
	}
	if !first && (n == a.asked || (n < a.asked && settling)) {
		return nil
	}
	if err := p.SetWorkers(ctx, n); err != nil {
		return fmt.Errorf("provisioner %s: set %d workers: %w", p.Name(), n, err)
	}
	r.cfg.Logger.Info("provisioner: workers", "provisioner", p.Name(), "from", a.asked, "to", n, "slots", slots)
	a.asked = n
	return nil
}

// slotsOf is how many slots a job needs: its largest vertex parallelism.
func slotsOf(spec *sabotv1.JobSpec) (int, error) {
	g, err := jobgraph.Resolve(spec)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, v := range g.Vertices {
		n = max(n, v.Parallelism)
	}
	return n, nil
}
