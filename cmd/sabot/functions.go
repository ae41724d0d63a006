package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/cluster"
	"github.com/sabotdev/sabot/internal/manifest"
	sabotsdk "github.com/sabotdev/sabot/sdk/go"
)

// defaultInvokeTimeout bounds `sabot invoke`: the gateway waits for a
// restarting or rescaling job within it.
const defaultInvokeTimeout = 30 * time.Second

// pipelineManifest is the manifest `sabot deploy DIR` deploys after the
// function when DIR has one: the pipeline that runs the function (the
// function then gets no job of its own).
const pipelineManifest = "sabot.yaml"

// functionDeploy is what `sabot deploy` needs to deploy a function: a
// directory with a Go main package, or the URL of a function process.
type functionDeploy struct {
	dir  string
	url  string
	name string
}

// check refuses flag combinations that mix a function deploy with a
// manifest deploy, before anything is sent.
func (d functionDeploy) check(file, fromSavepoint string, allowNonRestored bool) error {
	switch {
	case d.dir != "" && d.url != "":
		return fmt.Errorf("deploy: give a directory or --url, not both")
	case (d.dir != "" || d.url != "") && file != "":
		return fmt.Errorf("deploy: -f deploys a manifest; a function is deployed from a directory or --url: give one of them")
	case (d.dir != "" || d.url != "") && (fromSavepoint != "" || allowNonRestored):
		return fmt.Errorf("deploy: --from-savepoint applies to manifests; a redeployed function keeps its jobs' state by itself")
	case strings.HasSuffix(d.dir, ".yaml") || strings.HasSuffix(d.dir, ".yml"):
		return fmt.Errorf("deploy: %s looks like a manifest; deploy it with -f %s (a bare argument is a function's directory)", d.dir, d.dir)
	case d.dir == "" && d.url == "" && d.name != "":
		return fmt.Errorf("deploy: --name applies only with a directory or --url")
	}
	return nil
}

// run deploys the function and prints its registration.
func (d functionDeploy) run(ctx context.Context, w io.Writer, g *globals) error {
	c := sabotsdk.NewClient(baseURL(g.addr))
	defer c.Close()
	var opts []sabotsdk.DeployOption
	if d.name != "" {
		opts = append(opts, sabotsdk.WithFunctionName(d.name))
	}
	var (
		f   *sabotv1.Function
		err error
	)
	// A directory with a pipeline manifest deploys the function for it:
	// no job of its own, then the pipeline.
	var pipeline *sabotv1.JobSpec
	if d.dir != "" {
		path := filepath.Join(d.dir, pipelineManifest)
		if _, serr := os.Stat(path); serr == nil {
			if pipeline, err = manifest.Load(path); err != nil {
				return err
			}
			opts = append(opts, sabotsdk.DeployNoJob())
		}
	}
	if d.url != "" {
		f, err = c.DeployURL(ctx, d.url, d.name)
	} else {
		f, err = c.Deploy(ctx, d.dir, opts...)
	}
	if err != nil {
		return err
	}
	if err := printFunctions(w, g.output, []*sabotv1.Function{f}); err != nil {
		return err
	}
	if pipeline == nil {
		return nil
	}
	// Deploying the directory again: the running pipeline was redeployed
	// with the new version (keeping its state); a second one would start
	// over from its sources.
	jobs, err := c.ListJobs(ctx)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.GetSpec().GetName() == pipeline.GetName() && !cluster.IsTerminal(j.GetStatus().GetState()) &&
			cluster.RunsFunction(j.GetSpec(), f.GetSpec().GetName()) {
			_, err := fmt.Fprintf(w, "pipeline %s already runs as job %s: it moves to version %d of %s, keeping its state\n",
				pipeline.GetName(), j.GetId(), f.GetVersion(), f.GetSpec().GetName())
			return err
		}
	}
	job, err := c.DeployJob(ctx, pipeline)
	if err != nil {
		return err
	}
	return printJobs(w, g.output, []*sabotv1.Job{job})
}

func newFunctionsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "functions",
		Short: "List the registered functions",
		Long: "Functions lists the registered functions by name: the version of the latest deploy,\n" +
			"where their code is (an artifact by hash and size, or a URL), the state they declare\n" +
			"(name, kind, TTL, lazy) and when they were last deployed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := sabotsdk.NewClient(baseURL(g.addr))
			defer c.Close()
			fns, err := c.ListFunctions(cmd.Context())
			if err != nil {
				return err
			}
			return printFunctions(cmd.OutOrStdout(), g.output, fns)
		},
	}
}

// invokeFlags are invoke's flags.
type invokeFlags struct {
	key            string
	data           string
	idempotencyKey string
	job            string
	uncommitted    bool
	timeout        time.Duration
}

func newInvokeCmd(g *globals) *cobra.Command {
	var f invokeFlags
	cmd := &cobra.Command{
		Use:   "invoke FUNCTION --key KEY [--data PAYLOAD] [--idempotency-key ID] [--job JOB_ID] [--uncommitted]",
		Short: "Send a message to one function instance and print its reply",
		Long: "Invoke sends --data to the instance (FUNCTION, --key) and prints the function's reply.\n" +
			"The gateway routes it to the worker owning the key and waits while the job restarts or\n" +
			"rescales, up to --timeout. By default the reply comes once the checkpoint holding the\n" +
			"effect has completed; --uncommitted replies as soon as the function ran (a crash before\n" +
			"the checkpoint undoes the effect). Retrying with the same --idempotency-key has the\n" +
			"effect once and prints the first reply again (noted on stderr).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.key == "" {
				return fmt.Errorf("invoke: --key is required: the instance of %s to send to", args[0])
			}
			if f.timeout <= 0 {
				return fmt.Errorf("invoke: --timeout %s: must be positive", f.timeout)
			}
			var opts []sabotsdk.InvokeOption
			if f.idempotencyKey != "" {
				opts = append(opts, sabotsdk.WithIdempotencyKey(f.idempotencyKey))
			}
			if f.job != "" {
				opts = append(opts, sabotsdk.WithJob(f.job))
			}
			if f.uncommitted {
				opts = append(opts, sabotsdk.Uncommitted())
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			c := sabotsdk.NewClient(baseURL(g.addr))
			defer c.Close()
			r, err := c.InvokeResult(ctx, args[0], f.key, []byte(f.data), opts...)
			if err != nil {
				return err
			}
			if g.output == "json" {
				// The reply as JSON when it is JSON (most are), else as text.
				reply := json.RawMessage(r.Payload)
				if !json.Valid(r.Payload) {
					reply, _ = json.Marshal(string(r.Payload))
				}
				b, err := json.Marshal(struct {
					Reply     json.RawMessage `json:"reply"`
					Replayed  bool            `json:"replayed"`
					Committed bool            `json:"committed"`
				}{reply, r.Replayed, r.Committed})
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return err
			}
			if r.Replayed {
				fmt.Fprintln(cmd.ErrOrStderr(), "sabot: replayed: the reply of an earlier request with this idempotency key; this one had no effect")
			}
			out := cmd.OutOrStdout()
			if _, err := out.Write(r.Payload); err != nil {
				return err
			}
			if len(r.Payload) == 0 || r.Payload[len(r.Payload)-1] != '\n' {
				_, err = fmt.Fprintln(out)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&f.key, "key", "", "the function instance's key (required)")
	cmd.Flags().StringVar(&f.data, "data", "", "the message's payload, e.g. '{\"name\":\"ada\"}'")
	cmd.Flags().StringVar(&f.idempotencyKey, "idempotency-key", "", "deduplicate: a repeat with this key has no effect and gets the first reply")
	cmd.Flags().StringVar(&f.job, "job", "", "the job hosting the function (default: the one running job that runs it)")
	cmd.Flags().BoolVar(&f.uncommitted, "uncommitted", false, "reply before the effect is checkpointed")
	cmd.Flags().DurationVar(&f.timeout, "timeout", defaultInvokeTimeout, "how long to wait for the reply")
	return cmd
}

func printFunctions(w io.Writer, format string, fns []*sabotv1.Function) error {
	if format == "json" {
		return printJSON(w, &sabotv1.ListFunctionsResponse{Functions: fns})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tSOURCE\tSTATES\tUPDATED")
	for _, f := range fns {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", f.GetSpec().GetName(), f.GetVersion(), functionSource(f),
			orDash(stateSummary(f.GetSpec().GetStates())), f.GetUpdatedAt().AsTime().Local().Format(time.DateTime))
	}
	return tw.Flush()
}

// functionSource says where a function's code is: "artifact 1a2b3c4d5e6f
// (2.1 MiB)" or its URL.
func functionSource(f *sabotv1.Function) string {
	switch src := f.GetSource().(type) {
	case *sabotv1.Function_Artifact:
		sum := src.Artifact.GetSha256()
		return fmt.Sprintf("artifact %s (%s)", sum[:min(12, len(sum))], byteSize(src.Artifact.GetSize()))
	case *sabotv1.Function_Url:
		return src.Url
	default:
		return "-"
	}
}

// stateSummary lists declared state: "count (value), seen (map, lazy, ttl 1h0m0s)".
func stateSummary(states []*sabotv1.StateSpec) string {
	parts := make([]string, 0, len(states))
	for _, s := range states {
		attrs := []string{strings.ToLower(strings.TrimPrefix(s.GetKind().String(), "STATE_KIND_"))}
		if s.GetLazy() {
			attrs = append(attrs, "lazy")
		}
		if ttl := s.GetTtlMs(); ttl > 0 {
			attrs = append(attrs, "ttl "+(time.Duration(ttl)*time.Millisecond).String())
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", s.GetName(), strings.Join(attrs, ", ")))
	}
	return strings.Join(parts, ", ")
}
