// Command sabot is Sabot's one binary: the CLI (deploy, jobs, cancel,
// savepoint, stop, checkpoints, rescale, workers, autoscaler, functions,
// invoke), the all-in-one development platform (dev), and each
// production role (gateway, scheduler, worker). It only maps flags to the
// services' configs; the services live in their own packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/sabotdev/sabot/internal/manifest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go exitWatchdog(ctx) // lives as long as the process
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, describe(err))
		os.Exit(1)
	}
}

// exitWatchdog ends the process if a clean shutdown overruns its bound: a
// signal must stop sabot within maxShutdown, whatever is stuck.
func exitWatchdog(ctx context.Context) {
	<-ctx.Done()
	time.Sleep(maxShutdown)
	fmt.Fprintf(os.Stderr, "sabot: shutdown took longer than %s; exiting\n", maxShutdown)
	os.Exit(1)
}

// maxShutdown bounds the time from SIGINT/SIGTERM to exit.
const maxShutdown = 5 * time.Second

// globals are the flags every command shares.
type globals struct {
	addr   string
	output string
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "sabot",
		Short:         "Sabot: exactly-once stream processing as a service",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			switch g.output {
			case "table", "json":
				return nil
			default:
				return fmt.Errorf("--output %q: expected table or json", g.output)
			}
		},
	}
	defAddr := os.Getenv("SABOT_ADDR")
	if defAddr == "" {
		defAddr = "127.0.0.1:8080"
	}
	root.PersistentFlags().StringVar(&g.addr, "addr", defAddr, "gateway address (host:port or URL); env SABOT_ADDR")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	root.AddCommand(
		newDevCmd(g),
		newDeployCmd(g),
		newJobsCmd(g),
		newCancelCmd(g),
		newSavepointCmd(g),
		newStopCmd(g),
		newCheckpointsCmd(g),
		newRescaleCmd(g),
		newWorkersCmd(g),
		newAutoscalerCmd(g),
		newFunctionsCmd(g),
		newInvokeCmd(g),
		newGatewayCmd(g),
		newSchedulerCmd(),
		newWorkerCmd(),
		newBenchCmd(g),
		newKafkaCmd(),
	)
	return root
}

// describe renders an error for the terminal: one line per problem, the
// first prefixed "sabot:". Manifest errors list every position found.
func describe(err error) string {
	var merrs manifest.Errors
	if errors.As(err, &merrs) {
		lines := make([]string, 0, len(merrs)+1)
		lines = append(lines, fmt.Sprintf("sabot: manifest has %d problem(s):", len(merrs)))
		for _, e := range merrs {
			lines = append(lines, "  "+e.Error())
		}
		return strings.Join(lines, "\n")
	}
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		return fmt.Sprintf("sabot: %s: %s", cerr.Code(), cerr.Message())
	}
	if msg := err.Error(); strings.HasPrefix(msg, "sabot: ") {
		return msg // the SDK's errors (package sabot) carry the prefix already
	}
	return "sabot: " + err.Error()
}
