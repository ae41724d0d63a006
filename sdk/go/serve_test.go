package sabot_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	sabot "github.com/sabotdev/sabot/sdk/go"
)

// childEnv makes the test binary a function program (runChild) instead of
// running tests: the way to test Serve, which reads the environment, takes
// signals and exits.
const childEnv = "SABOT_SDK_TEST_CHILD"

var (
	childCount = sabot.NewValue("count", sabot.Int64(), sabot.WithTTL(time.Hour))
	childSeen  = sabot.NewMap("seen", sabot.String(), sabot.Bytes(), sabot.Lazy())
)

func childFunctions() []sabot.Function {
	return []sabot.Function{
		{
			Name:      "counter",
			States:    []sabot.State{childCount, childSeen},
			Outputs:   []string{"totals"},
			OnMessage: func(*sabot.Context, sabot.Message) error { return nil },
		},
		{Name: "echo", OnMessage: func(ctx *sabot.Context, m sabot.Message) error { return ctx.Reply(m) }},
	}
}

func runChild() {
	if err := sabot.Serve(childFunctions()...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(0)
}

func child(t *testing.T, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// The race detector sleeps 1s at exit unless told not to.
	cmd.Env = append(os.Environ(), append([]string{childEnv + "=1", "GORACE=atexit_sleep_ms=0 " + os.Getenv("GORACE")}, env...)...)
	return cmd
}

func TestServeDescribeEnv(t *testing.T) {
	t.Parallel()
	cmd := child(t, sabot.EnvDescribe+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v; stderr: %s", err, stderr.String())
	}
	var got sabotv1.DescribeResponse
	if err := protojson.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("stdout is not a DescribeResponse: %v\n%s", err, stdout.String())
	}
	want := &sabotv1.DescribeResponse{
		Sdk: "sabot-go/1",
		Functions: []*sabotv1.FunctionSpec{
			{
				Name: "counter",
				States: []*sabotv1.StateSpec{
					{Name: "count", Kind: sabotv1.StateKind_STATE_KIND_VALUE, TtlMs: 3_600_000},
					{Name: "seen", Kind: sabotv1.StateKind_STATE_KIND_MAP, Lazy: true},
				},
				Outputs: []string{"totals"},
			},
			{Name: "echo"},
		},
	}
	if !proto.Equal(&got, want) {
		t.Fatalf("describe:\n got %v\nwant %v", &got, want)
	}
}

func TestServeListenAndSignal(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "fn.sock")
	cmd := child(t, sabot.EnvListen+"=unix://"+sock)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // no-op once exited
		<-exited
	})

	c := unixClient(t, sock)
	// Poll until the child listens: the only way to know from outside.
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.Describe(context.Background(), connect.NewRequest(&sabotv1.DescribeRequest{}))
		if err == nil {
			if n := len(resp.Msg.GetFunctions()); n != 2 {
				t.Fatalf("describe: %d functions, want 2", n)
			}
			break
		}
		select {
		case <-exited:
			t.Fatalf("child exited before serving: %v; stderr: %s", waitErr, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("child never served: %v", err)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("after SIGTERM: %v; stderr: %s", waitErr, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("child did not stop on SIGTERM")
	}
}

func TestServeBadEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, listen, want string }{
		{"scheme", "http://127.0.0.1:1", "want unix:///path"},
		{"relative socket", "unix://fn.sock", "must be absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := child(t, sabot.EnvListen+"="+tc.listen)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("got %v, stderr %q; want exit 2 and %q", err, stderr.String(), tc.want)
			}
		})
	}
}
