package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/manifest"
)

func newDeployCmd(g *globals) *cobra.Command {
	var (
		file                  string
		fromSavepoint         string
		allowNonRestoredState bool
		fn                    functionDeploy
	)
	cmd := &cobra.Command{
		Use:   "deploy -f job.yaml [--from-savepoint LOCATION [--allow-non-restored-state]] | deploy DIR [--name N] | deploy --url URL [--name N]",
		Short: "Deploy a job from a manifest, or a function from a Go package or a URL",
		Long: "Deploy checks the manifest (every problem is reported with its file, line and field)\n" +
			"and sends the job to the gateway, which stores it for the scheduler to run.\n\n" +
			"deploy DIR builds the Go main package in DIR (a program calling sabot.Serve) for Linux,\n" +
			"uploads it and registers the function it declares (--name picks one of several);\n" +
			"deploy --url registers a function served at URL. Jobs running the function restart\n" +
			"with the new version and keep their state; a function no job runs gets its own job.\n\n" +
			"--from-savepoint starts the job from a savepoint (the location \"sabot savepoint\" or\n" +
			"\"sabot stop\" printed) instead of from its sources' start positions with empty state;\n" +
			"later restarts of the job use its own checkpoints. A gateway with the blob store\n" +
			"refuses a savepoint that is missing or unreadable, was taken with another\n" +
			"max_parallelism, or was taken of a job with a step this one no longer has (unless\n" +
			"--allow-non-restored-state).\n\n" + savepointHelp,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				fn.dir = args[0]
			}
			if err := fn.check(file, fromSavepoint, allowNonRestoredState); err != nil {
				return err
			}
			if fn.dir != "" || fn.url != "" {
				return fn.run(cmd.Context(), cmd.OutOrStdout(), g)
			}
			if file == "" {
				return fmt.Errorf("deploy: -f is required: the manifest to deploy (or a function: deploy DIR, deploy --url URL)")
			}
			if allowNonRestoredState && fromSavepoint == "" {
				return fmt.Errorf("deploy: --allow-non-restored-state applies only with --from-savepoint")
			}
			spec, err := manifest.Load(file)
			if err != nil {
				return err
			}
			if fromSavepoint != "" {
				spec.Restore = &sabotv1.SavepointRestore{Location: fromSavepoint, AllowNonRestoredState: allowNonRestoredState}
			}
			job, err := deploySpec(cmd.Context(), jobClient(g), spec)
			if err != nil {
				return err
			}
			return printJobs(cmd.OutOrStdout(), g.output, []*sabotv1.Job{job})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "manifest file (YAML)")
	cmd.Flags().StringVar(&fromSavepoint, "from-savepoint", "", "start from this savepoint (its location: savepoints/<id>/_metadata)")
	cmd.Flags().BoolVar(&allowNonRestoredState, "allow-non-restored-state", false, "drop the savepoint's state of steps the job no longer has instead of refusing it")
	cmd.Flags().StringVar(&fn.url, "url", "", "register the function served at this URL (the function protocol over HTTP/2)")
	cmd.Flags().StringVar(&fn.name, "name", "", "with DIR or --url: the function to deploy when the program declares several")
	return cmd
}

func newJobsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List jobs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := jobClient(g)
			var jobs []*sabotv1.Job
			token := ""
			for {
				resp, err := c.ListJobs(cmd.Context(), connect.NewRequest(&sabotv1.ListJobsRequest{PageToken: token}))
				if err != nil {
					return fmt.Errorf("list jobs: %w", err)
				}
				jobs = append(jobs, resp.Msg.GetJobs()...)
				token = resp.Msg.GetNextPageToken()
				if token == "" {
					break
				}
			}
			return printJobs(cmd.OutOrStdout(), g.output, jobs)
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "get JOB_ID",
		Short: "Show one job: its status, tasks and graph",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := jobClient(g).GetJob(cmd.Context(), connect.NewRequest(&sabotv1.GetJobRequest{JobId: args[0]}))
			if err != nil {
				return fmt.Errorf("get job: %w", err)
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp.Msg.GetJob())
			}
			return printJobDetail(cmd.OutOrStdout(), resp.Msg.GetJob())
		},
	})
	return cmd
}

func newCancelCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel JOB_ID",
		Short: "Cancel a job (without a savepoint)",
		Long: "Cancel stops a job at once, without taking a savepoint: output its sinks have not\n" +
			"committed yet is discarded. To stop a job so that it can be started again where it\n" +
			"stopped, use \"sabot stop\" (stop with a savepoint). Cancelling a job that has already\n" +
			"ended changes nothing.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := jobClient(g).CancelJob(cmd.Context(), connect.NewRequest(&sabotv1.CancelJobRequest{JobId: args[0]}))
			if err != nil {
				return fmt.Errorf("cancel: %w", err)
			}
			return printJobs(cmd.OutOrStdout(), g.output, []*sabotv1.Job{resp.Msg.GetJob()})
		},
	}
}

func newCheckpointsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "checkpoints JOB_ID",
		Short: "List a job's recent checkpoints, newest first",
		Long: "Checkpoints lists the job's recent checkpoints and savepoints, newest first: id, status,\n" +
			"trigger time, duration, size (bytes the checkpoint references), incremental size (bytes it\n" +
			"uploaded new) and why a failed one failed, with the latest completed checkpoint, which is\n" +
			"what a restart restores.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := jobClient(g).ListCheckpoints(cmd.Context(), connect.NewRequest(&sabotv1.ListCheckpointsRequest{JobId: args[0]}))
			if err != nil {
				return fmt.Errorf("list checkpoints: %w", err)
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp.Msg)
			}
			return printCheckpoints(cmd.OutOrStdout(), resp.Msg)
		},
	}
}

func printCheckpoints(w io.Writer, resp *sabotv1.ListCheckpointsResponse) error {
	if id := resp.GetLatestCompleted(); id > 0 {
		fmt.Fprintf(w, "Latest completed: %d\n\n", id)
	} else {
		fmt.Fprint(w, "Latest completed: none\n\n")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tTRIGGERED\tDURATION\tSIZE\tINCREMENTAL\tFAILURE")
	for _, c := range resp.GetCheckpoints() {
		status := strings.TrimPrefix(c.GetStatus().String(), "CHECKPOINT_STATUS_")
		if c.GetSavepoint() {
			status += " (savepoint)"
		}
		dur := "-"
		if c.GetStatus() != sabotv1.CheckpointStatus_CHECKPOINT_STATUS_IN_PROGRESS {
			dur = (time.Duration(c.GetDurationMs()) * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", c.GetId(), status,
			c.GetTriggerTime().AsTime().Local().Format(time.DateTime+".000"), dur,
			byteSize(c.GetSizeBytes()), byteSize(c.GetIncrementalSizeBytes()), c.GetFailureReason())
	}
	return tw.Flush()
}

// byteSize renders a byte count in binary units: 512 B, 2.0 KiB, 3.4 MiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// stateName is a JobState without its enum prefix: RUNNING.
func stateName(s sabotv1.JobState) string {
	return strings.TrimPrefix(s.String(), "JOB_STATE_")
}

func taskStateName(s sabotv1.TaskState) string {
	return strings.TrimPrefix(s.String(), "TASK_STATE_")
}

func printJobs(w io.Writer, format string, jobs []*sabotv1.Job) error {
	if format == "json" {
		return printJSON(w, &sabotv1.ListJobsResponse{Jobs: jobs})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATE\tATTEMPT\tCREATED\tMESSAGE")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", j.GetId(), j.GetSpec().GetName(), stateName(j.GetStatus().GetState()),
			j.GetStatus().GetAttempt(), j.GetCreatedAt().AsTime().Local().Format(time.DateTime), j.GetStatus().GetMessage())
	}
	return tw.Flush()
}

func printJobDetail(w io.Writer, j *sabotv1.Job) error {
	st := j.GetStatus()
	spec := j.GetSpec()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID:\t%s\n", j.GetId())
	fmt.Fprintf(tw, "Name:\t%s\n", spec.GetName())
	fmt.Fprintf(tw, "State:\t%s\n", stateName(st.GetState()))
	if st.GetMessage() != "" {
		fmt.Fprintf(tw, "Message:\t%s\n", st.GetMessage())
	}
	fmt.Fprintf(tw, "Attempt:\t%d\n", st.GetAttempt())
	if n := st.GetRestarts(); n > 0 {
		fmt.Fprintf(tw, "Restarts:\t%d\n", n)
	}
	if at := st.GetRestartAt(); at != nil && st.GetState() == sabotv1.JobState_JOB_STATE_RESTARTING {
		fmt.Fprintf(tw, "Restart at:\t%s\n", at.AsTime().Local().Format(time.DateTime+".000"))
	}
	fmt.Fprintf(tw, "Created:\t%s\n", j.GetCreatedAt().AsTime().Local().Format(time.DateTime))
	fmt.Fprintf(tw, "Updated:\t%s\n", st.GetUpdatedAt().AsTime().Local().Format(time.DateTime))
	fmt.Fprintf(tw, "Parallelism:\t%d (max %d)\n", max(spec.GetParallelism(), 1), maxParallelism(spec))
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nGraph:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  VERTEX\tOPERATOR\tPARALLELISM\tINPUTS")
	inputs := map[string][]string{}
	for _, e := range spec.GetGraph().GetEdges() {
		desc := e.GetFrom()
		if p := e.GetPartitioning(); p != sabotv1.Partitioning_PARTITIONING_UNSPECIFIED {
			desc += " (" + strings.ToLower(strings.TrimPrefix(p.String(), "PARTITIONING_"))
			if len(e.GetKeyFields()) > 0 {
				desc += " by " + strings.Join(e.GetKeyFields(), ",")
			}
			desc += ")"
		}
		inputs[e.GetTo()] = append(inputs[e.GetTo()], desc)
	}
	for _, v := range spec.GetGraph().GetVertices() {
		p := v.GetParallelism()
		if p == 0 {
			p = max(spec.GetParallelism(), 1)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\n", v.GetId(), operatorSummary(v.GetOperator()), p, strings.Join(inputs[v.GetId()], ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(st.GetTasks()) > 0 {
		fmt.Fprintln(w, "\nTasks:")
		tasks := append([]*sabotv1.TaskStatus(nil), st.GetTasks()...)
		sort.SliceStable(tasks, func(a, b int) bool {
			if tasks[a].GetVertexId() != tasks[b].GetVertexId() {
				return tasks[a].GetVertexId() < tasks[b].GetVertexId()
			}
			return tasks[a].GetSubtask() < tasks[b].GetSubtask()
		})
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  VERTEX\tSUBTASK\tWORKER\tSTATE")
		for _, t := range tasks {
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\n", t.GetVertexId(), t.GetSubtask(), t.GetWorkerId(), taskStateName(t.GetState()))
		}
		return tw.Flush()
	}
	return nil
}

func maxParallelism(spec *sabotv1.JobSpec) int32 {
	if spec.GetMaxParallelism() == 0 {
		return 128
	}
	return spec.GetMaxParallelism()
}

// operatorSummary is a one-line description of an operator.
func operatorSummary(op *sabotv1.Operator) string {
	switch k := op.GetKind().(type) {
	case *sabotv1.Operator_Sequence:
		s := fmt.Sprintf("sequence from %d", k.Sequence.GetStart())
		if k.Sequence.End != nil {
			s += fmt.Sprintf(" to %d", k.Sequence.GetEnd())
		}
		if r := k.Sequence.GetRowsPerSecond(); r > 0 {
			s += fmt.Sprintf(" at %d rows/s", r)
		}
		return s
	case *sabotv1.Operator_Nexmark:
		t := strings.ToLower(strings.TrimPrefix(k.Nexmark.GetTable().String(), "NEXMARK_TABLE_"))
		if t == "unspecified" {
			t = "bid"
		}
		return fmt.Sprintf("nexmark %s events (seed %d, %d events)", t, k.Nexmark.GetSeed(), k.Nexmark.GetEvents())
	case *sabotv1.Operator_Blackhole:
		return "blackhole"
	case *sabotv1.Operator_Map:
		cols := make([]string, 0, len(k.Map.GetColumns()))
		for _, c := range k.Map.GetColumns() {
			cols = append(cols, c.GetName()+" = "+c.GetExpr())
		}
		return "map " + strings.Join(cols, ", ")
	case *sabotv1.Operator_Filter:
		return "filter " + k.Filter.GetCondition()
	case *sabotv1.Operator_Print:
		return "print"
	case *sabotv1.Operator_File:
		return "file " + k.File.GetPath()
	default:
		return "unknown"
	}
}

func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}
