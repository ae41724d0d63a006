package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/internal/cluster"
)

// savepointHelp explains savepoints; savepoint, stop and deploy share it.
const savepointHelp = `A savepoint is a snapshot of a running job taken on request, to stop it and start
it again later (with a new version of the job, another parallelism or another state
backend) or to start a copy of it. It holds the job's keyed state, its sources' positions
and its sinks' state, like a checkpoint, but:
  - it is self-contained: its files live under savepoints/<id>/ in the cluster's blob
    store, reference none of the job's checkpoint files, and stay until you delete them
    (checkpoints go with their job);
  - it is in the canonical format, so it restores at another parallelism per step (up to
    the job's max_parallelism, which must stay the same: it is the number of key groups;
    a sequence source keeps its parallelism) and into the other state backend
    (heap <-> pebble).
Its location is the blob key of its _metadata (savepoints/<id>/_metadata), which
"sabot deploy --from-savepoint" takes. State is matched to steps by step id, so keep the
ids: the savepoint lists every step of its job (stateless ones too), and one the new job
does not have is refused unless --allow-non-restored-state drops its state.
Exactly-once Kafka sinks commit the transactions a savepoint covers when it completes;
within a job, their pending transactions restore only at the parallelism they were
written at. A job started from a savepoint therefore has nothing of them to restore: it
opens new transactions under its own transactional ids (at any parallelism). What a job
writes after a savepoint it kept running past is written again by a job started from
that savepoint: to hand over exactly once, use "sabot stop".`

// defaultSavepointTimeout bounds how long savepoint and stop wait.
const defaultSavepointTimeout = 5 * time.Minute

// savepointPoll is how often savepoint and stop ask how things stand.
const savepointPoll = 200 * time.Millisecond

func newSavepointCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "savepoint JOB_ID",
		Short: "Take a savepoint of a running job and print its location",
		Long: "Savepoint asks the running job for a savepoint and waits until it completes (or\n" +
			"fails, or --timeout passes); the job keeps running. It prints the savepoint's location,\n" +
			"the only line of output, for \"sabot deploy -f job.yaml --from-savepoint LOCATION\"\n" +
			"(-o json prints the whole request). The job must be RUNNING with checkpointing.\n" +
			"A completed savepoint is also the job's latest recovery point: \"sabot checkpoints\"\n" +
			"lists it. To stop the job with a savepoint, use \"sabot stop\".\n\n" + savepointHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			sp, err := takeSavepoint(ctx, jobClient(g), args[0], false, false, timeout)
			if err != nil {
				return err
			}
			return printSavepoint(cmd.OutOrStdout(), g.output, sp)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", defaultSavepointTimeout, "how long to wait for the savepoint")
	return cmd
}

func newStopCmd(g *globals) *cobra.Command {
	var (
		timeout   time.Duration
		savepoint bool
		drain     bool
	)
	cmd := &cobra.Command{
		Use:   "stop JOB_ID",
		Short: "Stop a job with a savepoint and print its location",
		Long: "Stop is Flink's stop-with-savepoint: it asks the running job for a savepoint at which\n" +
			"its sources stop; once the savepoint completes, every sink has committed what it\n" +
			"covers and the job ends FINISHED. Stop waits for both (or --timeout) and prints the\n" +
			"savepoint's location, the only line of output (-o json prints the whole request), for\n" +
			"\"sabot deploy -f job.yaml --from-savepoint LOCATION\". If the savepoint fails the job is\n" +
			"not stopped: it restarts from its latest checkpoint as its restart strategy says.\n\n" +
			"--drain first sends the maximum watermark, so every event-time window and timer fires\n" +
			"before the savepoint: use it when the job will not be resumed. Without it, open windows\n" +
			"and timers stay in the savepoint and fire in the job started from it.\n\n" +
			"Stop always takes a savepoint (--savepoint=false is refused): \"sabot cancel\" stops a\n" +
			"job without one.\n\n" + savepointHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !savepoint {
				return errors.New("stop: stop always takes a savepoint; to stop a job without one, use: sabot cancel " + args[0])
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			c := jobClient(g)
			sp, err := takeSavepoint(ctx, c, args[0], true, drain, timeout)
			if err != nil {
				return err
			}
			if err := waitFinished(ctx, c, args[0], sp.GetLocation(), timeout); err != nil {
				return err
			}
			return printSavepoint(cmd.OutOrStdout(), g.output, sp)
		},
	}
	cmd.Flags().BoolVar(&savepoint, "savepoint", true, "take a savepoint (always; use cancel to stop without one)")
	cmd.Flags().BoolVar(&drain, "drain", false, "fire every event-time window and timer before the savepoint (the maximum watermark)")
	cmd.Flags().DurationVar(&timeout, "timeout", defaultSavepointTimeout, "how long to wait for the savepoint and for the job to finish")
	return cmd
}

// takeSavepoint triggers a savepoint and waits until it completes. A
// failed savepoint, a job that ends before it completes and ctx ending
// are one-line errors; timeout is what ctx was given, for the message.
func takeSavepoint(ctx context.Context, c sabotv1connect.JobServiceClient, jobID string, stop, drain bool, timeout time.Duration) (*sabotv1.SavepointRequest, error) {
	what := "savepoint"
	if stop {
		what = "stop"
	}
	resp, err := c.TriggerSavepoint(ctx, connect.NewRequest(&sabotv1.TriggerSavepointRequest{JobId: jobID, Stop: stop, Drain: drain}))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	reqID := resp.Msg.GetSavepoint().GetRequestId()
	tick := time.NewTicker(savepointPoll)
	defer tick.Stop()
	for {
		sp, err := getSavepoint(ctx, c, jobID, reqID)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, waitError(ctx, err, timeout, jobID, "savepoint "+reqID+" of job "+jobID))
		}
		switch sp.GetStatus() {
		case sabotv1.SavepointStatus_SAVEPOINT_STATUS_COMPLETED:
			return sp, nil
		case sabotv1.SavepointStatus_SAVEPOINT_STATUS_FAILED:
			msg := fmt.Sprintf("savepoint of job %s failed: %s", jobID, oneLine(sp.GetFailureReason()))
			if stop {
				msg = "stop: " + msg + " (the job was not stopped)"
			}
			return nil, errors.New(msg)
		default:
		}
		// A request of a job that ended stays pending for ever: nothing
		// runs to take it. (A stopped job records its savepoint before it
		// reports FINISHED, so the request read after the job says which.)
		job, err := getJob(ctx, c, jobID)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, waitError(ctx, err, timeout, jobID, "savepoint "+reqID+" of job "+jobID))
		}
		if st := job.GetStatus(); cluster.IsTerminal(st.GetState()) {
			sp, err := getSavepoint(ctx, c, jobID, reqID)
			if err == nil && sp.GetStatus() == sabotv1.SavepointStatus_SAVEPOINT_STATUS_PENDING {
				return nil, fmt.Errorf("%s: job %s ended %s before savepoint %s completed%s", what, jobID, stateName(st.GetState()), reqID, messageSuffix(st))
			}
			continue // the outcome is recorded: the loop reports it
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: %w", what, waitError(ctx, ctx.Err(), timeout, jobID, "savepoint "+reqID+" of job "+jobID))
		case <-tick.C:
		}
	}
}

// waitFinished waits until a job stopped with a savepoint is FINISHED.
func waitFinished(ctx context.Context, c sabotv1connect.JobServiceClient, jobID, location string, timeout time.Duration) error {
	tick := time.NewTicker(savepointPoll)
	defer tick.Stop()
	for {
		job, err := getJob(ctx, c, jobID)
		if err != nil {
			return fmt.Errorf("stop: savepoint %s completed, but: %w", location, waitError(ctx, err, timeout, jobID, "job "+jobID+" to finish"))
		}
		switch st := job.GetStatus(); st.GetState() {
		case sabotv1.JobState_JOB_STATE_FINISHED:
			return nil
		case sabotv1.JobState_JOB_STATE_FAILED, sabotv1.JobState_JOB_STATE_CANCELED:
			return fmt.Errorf("stop: savepoint %s completed, but job %s ended %s%s", location, jobID, stateName(st.GetState()), messageSuffix(st))
		default:
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stop: savepoint %s completed, but: %w", location, waitError(ctx, ctx.Err(), timeout, jobID, "job "+jobID+" to finish"))
		case <-tick.C:
		}
	}
}

func getSavepoint(ctx context.Context, c sabotv1connect.JobServiceClient, jobID, reqID string) (*sabotv1.SavepointRequest, error) {
	resp, err := c.GetSavepoint(ctx, connect.NewRequest(&sabotv1.GetSavepointRequest{JobId: jobID, RequestId: reqID}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetSavepoint(), nil
}

func getJob(ctx context.Context, c sabotv1connect.JobServiceClient, jobID string) (*sabotv1.Job, error) {
	resp, err := c.GetJob(ctx, connect.NewRequest(&sabotv1.GetJobRequest{JobId: jobID}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetJob(), nil
}

// waitError words an error met while waiting: the deadline as "not done
// after --timeout", anything else as it is.
func waitError(ctx context.Context, err error, timeout time.Duration, jobID, waitingFor string) error {
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("gave up waiting for %s after %s (--timeout); it may still complete: see sabot checkpoints %s", waitingFor, timeout, jobID)
	}
	return err
}

// messageSuffix is ": <the job's status message>", or "" without one.
func messageSuffix(st *sabotv1.JobStatus) string {
	if m := st.GetMessage(); m != "" {
		return ": " + oneLine(m)
	}
	return ""
}

// oneLine folds a multi-line reason into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// printSavepoint prints a completed savepoint: its location alone (what
// deploy --from-savepoint takes), or the request as JSON.
func printSavepoint(w io.Writer, format string, sp *sabotv1.SavepointRequest) error {
	if format == "json" {
		return printJSON(w, sp)
	}
	_, err := fmt.Fprintln(w, sp.GetLocation())
	return err
}
