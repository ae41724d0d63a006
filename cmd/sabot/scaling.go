package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/internal/cluster"
)

// defaultRescaleTimeout bounds how long rescale --wait waits.
const defaultRescaleTimeout = 2 * time.Minute

// maxVertexParallelism is the largest parallelism the API accepts (the
// proto's bound); checked here so a typo is one clear line.
const maxVertexParallelism = 32768

func newWorkersCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "workers",
		Short: "List the live workers, their slots and jobs",
		Long: "Workers lists the workers whose registration is live, by id: the address other workers\n" +
			"reach their exchange at, the task slots their assignments use of the slots they have\n" +
			"(a slot runs one subtask of every step of a job), when they started, and the jobs\n" +
			"with subtasks on them.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := jobClient(g).ListWorkers(cmd.Context(), connect.NewRequest(&sabotv1.ListWorkersRequest{}))
			if err != nil {
				return fmt.Errorf("list workers: %w", err)
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp.Msg)
			}
			return printWorkers(cmd.OutOrStdout(), resp.Msg.GetWorkers())
		},
	}
}

func printWorkers(w io.Writer, workers []*sabotv1.WorkerInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tSLOTS\tSTARTED\tJOBS")
	for _, wk := range workers {
		jobs := strings.Join(wk.GetJobs(), ",")
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\n", wk.GetId(), orDash(wk.GetAddress()), wk.GetSlotsUsed(), wk.GetSlots(),
			wk.GetStartedAt().AsTime().Local().Format(time.DateTime), orDash(jobs))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// rescaleFlags are rescale's flags.
type rescaleFlags struct {
	parallelism int32
	vertices    []string
	wait        bool
	timeout     time.Duration
}

func newRescaleCmd(g *globals) *cobra.Command {
	var f rescaleFlags
	cmd := &cobra.Command{
		Use:   "rescale JOB_ID (--parallelism N | --vertex ID=N ...)",
		Short: "Change a running job's parallelism (through a savepoint)",
		Long: "Rescale changes the parallelism of a running job with checkpointing: the scheduler stops\n" +
			"it with a savepoint and starts it again from there at the new parallelism, so no\n" +
			"state, position or committed output is lost, and the job pauses for the time between\n" +
			"the two. --parallelism sets the job's default parallelism (vertices that set their\n" +
			"own keep it); --vertex ID=N sets one vertex's, by its id (a manifest step's id;\n" +
			"repeatable, or comma-separated). Every parallelism must stay within the job's\n" +
			"max_parallelism, and vertices joined by a forward edge must keep equal parallelism.\n\n" +
			"By default rescale waits until the job runs at the new parallelism (or --timeout) and\n" +
			"prints each vertex's change and how long the job paused; --wait=false returns once the\n" +
			"request is recorded. -o json prints the job.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := f.request(args[0])
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			c := jobClient(g)
			resp, err := c.RescaleJob(ctx, connect.NewRequest(req))
			if err != nil {
				return fmt.Errorf("rescale: %w", err)
			}
			job := resp.Msg.GetJob()
			if !f.wait {
				if g.output == "json" {
					return printJSON(cmd.OutOrStdout(), job)
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "rescale of job %s requested (%s); the scheduler stops it with a savepoint and starts it again at the new parallelism: follow it with sabot jobs get %s\n",
					args[0], describeRescale(req), args[0])
				return err
			}
			job, err = waitRescaled(ctx, c, args[0], job.GetStatus().GetRescale().GetRequestedAt(), f.timeout)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), job)
			}
			return printRescaled(cmd.OutOrStdout(), job.GetId(), job.GetStatus().GetLastRescale())
		},
	}
	cmd.Flags().Int32Var(&f.parallelism, "parallelism", 0, "new default parallelism of the job's steps")
	cmd.Flags().StringSliceVar(&f.vertices, "vertex", nil, "new parallelism of one vertex, as ID=N (repeatable)")
	cmd.Flags().BoolVar(&f.wait, "wait", true, "wait until the job runs at the new parallelism")
	cmd.Flags().DurationVar(&f.timeout, "timeout", defaultRescaleTimeout, "how long to wait for the rescale")
	return cmd
}

// request checks the flags and builds the request; errors are one line
// naming the flag.
func (f *rescaleFlags) request(jobID string) (*sabotv1.RescaleJobRequest, error) {
	if f.parallelism < 0 || f.parallelism > maxVertexParallelism {
		return nil, fmt.Errorf("rescale: --parallelism %d: expected 1 to %d", f.parallelism, maxVertexParallelism)
	}
	vp := map[string]int32{}
	for _, s := range f.vertices {
		id, n, ok := strings.Cut(s, "=")
		id = strings.TrimSpace(id)
		if !ok || id == "" {
			return nil, fmt.Errorf("rescale: --vertex %q: expected ID=N, e.g. --vertex count=4", s)
		}
		p, err := strconv.ParseInt(strings.TrimSpace(n), 10, 32)
		if err != nil || p < 1 || p > maxVertexParallelism {
			return nil, fmt.Errorf("rescale: --vertex %q: the parallelism must be an integer from 1 to %d", s, maxVertexParallelism)
		}
		if _, dup := vp[id]; dup {
			return nil, fmt.Errorf("rescale: --vertex: vertex %s is given twice", id)
		}
		vp[id] = int32(p)
	}
	if f.parallelism == 0 && len(vp) == 0 {
		return nil, errors.New("rescale: nothing to change: set --parallelism N or --vertex ID=N")
	}
	if f.timeout <= 0 {
		return nil, fmt.Errorf("rescale: --timeout %s: must be positive", f.timeout)
	}
	return &sabotv1.RescaleJobRequest{JobId: jobID, Parallelism: f.parallelism, VertexParallelism: vp}, nil
}

// describeRescale is what a request asks for: "parallelism 4, count 3".
func describeRescale(req *sabotv1.RescaleJobRequest) string {
	var parts []string
	if p := req.GetParallelism(); p > 0 {
		parts = append(parts, fmt.Sprintf("parallelism %d", p))
	}
	for _, id := range slices.Sorted(maps.Keys(req.GetVertexParallelism())) {
		parts = append(parts, fmt.Sprintf("vertex %s %d", id, req.GetVertexParallelism()[id]))
	}
	return strings.Join(parts, ", ")
}

// waitRescaled follows the job until its last_rescale is the rescale
// requested at requestedAt, and returns the job then. A job that ends, a
// later rescale that takes this one's place, and ctx ending are one-line
// errors; timeout is what ctx was given, for the message.
func waitRescaled(ctx context.Context, c sabotv1connect.JobServiceClient, jobID string, requestedAt *timestamppb.Timestamp, timeout time.Duration) (*sabotv1.Job, error) {
	tick := time.NewTicker(savepointPoll)
	defer tick.Stop()
	var last *sabotv1.Job
	for {
		job, err := getJob(ctx, c, jobID)
		if err != nil {
			return nil, fmt.Errorf("rescale: %w", rescaleWaitError(ctx, err, timeout, jobID, last))
		}
		last = job
		st := job.GetStatus()
		// The outcome is checked first: a job may have finished (or been
		// rescaled again) after this rescale completed.
		if done := st.GetLastRescale(); sameTime(done.GetRequestedAt(), requestedAt) {
			return job, nil
		}
		if cluster.IsTerminal(st.GetState()) {
			return nil, fmt.Errorf("rescale: job %s ended %s before the rescale completed%s", jobID, stateName(st.GetState()), messageSuffix(st))
		}
		if other := laterRescale(st, requestedAt); other != nil {
			return nil, fmt.Errorf("rescale: a later rescale of job %s (cause %s, requested at %s) took this one's place; see sabot jobs get %s",
				jobID, other.cause, other.at.Local().Format(time.DateTime+".000"), jobID)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("rescale: %w", rescaleWaitError(ctx, ctx.Err(), timeout, jobID, last))
		case <-tick.C:
		}
	}
}

type rescaleRef struct {
	cause string
	at    time.Time
}

// laterRescale returns a rescale requested after requestedAt that the job
// is running or has completed, or nil.
func laterRescale(st *sabotv1.JobStatus, requestedAt *timestamppb.Timestamp) *rescaleRef {
	mine := requestedAt.AsTime()
	if r := st.GetRescale(); r != nil && r.GetRequestedAt().AsTime().After(mine) {
		return &rescaleRef{cause: r.GetCause(), at: r.GetRequestedAt().AsTime()}
	}
	if r := st.GetLastRescale(); r != nil && r.GetRequestedAt().AsTime().After(mine) {
		return &rescaleRef{cause: r.GetCause(), at: r.GetRequestedAt().AsTime()}
	}
	return nil
}

func sameTime(a, b *timestamppb.Timestamp) bool {
	return a != nil && b != nil && a.GetSeconds() == b.GetSeconds() && a.GetNanos() == b.GetNanos()
}

// rescaleWaitError words an error met while waiting: the deadline as "not
// done after --timeout", with where the job stood, anything else as it is.
func rescaleWaitError(ctx context.Context, err error, timeout time.Duration, jobID string, last *sabotv1.Job) error {
	if ctx.Err() == nil || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return err
	}
	where := ""
	if st := last.GetStatus(); last != nil {
		pending := "pending"
		if st.GetRescale() == nil {
			pending = "no longer pending, with no outcome recorded"
		}
		where = fmt.Sprintf(" (the job is %s%s; the rescale is %s)", stateName(st.GetState()), messageSuffix(st), pending)
	}
	return fmt.Errorf("gave up waiting for the rescale of job %s after %s (--timeout)%s; it may still complete: see sabot jobs get %s", jobID, timeout, where, jobID)
}

// printRescaled prints a completed rescale on one line:
//
//	rescaled JOB: vertices a 2→4, b 2→4 (paused 850ms: stopped at 12:00:01.100, running at 12:00:01.950; 2.3s from request to running)
func printRescaled(w io.Writer, jobID string, o *sabotv1.RescaleOutcome) error {
	var changes []string
	unchanged := 0
	for _, id := range slices.Sorted(maps.Keys(o.GetTo())) {
		from, to := o.GetFrom()[id], o.GetTo()[id]
		if from == to {
			unchanged++
			continue
		}
		changes = append(changes, fmt.Sprintf("%s %d→%d", id, from, to))
	}
	what := "no vertex changed"
	switch len(changes) {
	case 0:
	case 1:
		what = "vertex " + changes[0]
	default:
		what = "vertices " + strings.Join(changes, ", ")
	}
	if unchanged > 0 && len(changes) > 0 {
		what += fmt.Sprintf(" (%d unchanged)", unchanged)
	}
	const clock = "15:04:05.000"
	stopped, running := o.GetStoppedAt().AsTime(), o.GetRunningAt().AsTime()
	_, err := fmt.Fprintf(w, "rescaled %s: %s (paused %s: stopped at %s, running at %s; %s from request to running)\n",
		jobID, what, running.Sub(stopped).Round(time.Millisecond), stopped.Local().Format(clock), running.Local().Format(clock),
		running.Sub(o.GetRequestedAt().AsTime()).Round(time.Millisecond))
	return err
}

func newAutoscalerCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "autoscaler JOB_ID",
		Short: "Show a job's recent autoscaler decisions, newest first",
		Long: "Autoscaler prints the autoscaler's recent decisions for a job, newest first: when, what it\n" +
			"did (scale-up, scale-down, hold) and why, and per vertex (step) the metrics it decided on:\n" +
			"parallelism (current→new), records in per second, busy and backpressured time (shares of\n" +
			"the time, averaged over the vertex's subtasks), true processing rate (records per busy\n" +
			"second per subtask), the rate the vertex must sustain, and a source's lag (records\n" +
			"waiting). The job's manifest enables the autoscaler (autoscaler.enabled).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := jobClient(g)
			resp, err := c.GetAutoscaler(cmd.Context(), connect.NewRequest(&sabotv1.GetAutoscalerRequest{JobId: args[0]}))
			if err != nil {
				return fmt.Errorf("autoscaler: %w", err)
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp.Msg)
			}
			if len(resp.Msg.GetDecisions()) == 0 {
				hint := ""
				if job, err := getJob(cmd.Context(), c, args[0]); err == nil && !job.GetSpec().GetAutoscaler().GetEnabled() {
					hint = " (its autoscaler is not enabled: set autoscaler.enabled in its manifest)"
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "No autoscaler decisions for job %s%s.\n", args[0], hint)
				return err
			}
			return printDecisions(cmd.OutOrStdout(), resp.Msg.GetDecisions())
		},
	}
}

func printDecisions(w io.Writer, ds []*sabotv1.ScalingDecision) error {
	for i, d := range ds {
		if i > 0 {
			fmt.Fprintln(w)
		}
		line := d.GetTime().AsTime().Local().Format(time.DateTime+".000") + "  " + d.GetAction()
		if r := d.GetReason(); r != "" {
			line += ": " + oneLine(r)
		}
		if n := d.GetWorkersRequested(); n != 0 {
			line += fmt.Sprintf(" (%d workers requested)", n)
		}
		fmt.Fprintln(w, line)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  VERTEX\tPARALLELISM\tIN/S\tBUSY\tBACKPRESSURE\tTRUE RATE\tTARGET RATE\tLAG")
		for _, v := range d.GetVertices() {
			lag := "-"
			if v.GetLag() > 0 {
				lag = strconv.FormatInt(v.GetLag(), 10)
			}
			fmt.Fprintf(tw, "  %s\t%d→%d\t%s\t%.0f%%\t%.0f%%\t%s/s\t%s/s\t%s\n", v.GetVertexId(), v.GetCurrentParallelism(), v.GetNewParallelism(),
				compactRate(v.GetRecordsInPerSecond()), 100*v.GetBusyRatio(), 100*v.GetBackpressuredRatio(),
				compactRate(v.GetTrueProcessingRate()), compactRate(v.GetTargetRate()), lag)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// compactRate renders a rate compactly: 12.5, 840, 12.3k, 4.1M.
func compactRate(x float64) string {
	switch {
	case x < 100:
		return strconv.FormatFloat(x, 'f', 1, 64)
	case x < 1e4:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case x < 1e6:
		return strconv.FormatFloat(x/1e3, 'f', 1, 64) + "k"
	default:
		return strconv.FormatFloat(x/1e6, 'f', 1, 64) + "M"
	}
}
