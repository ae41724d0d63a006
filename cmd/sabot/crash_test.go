package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/internal/testkit"
)

// built is the sabot binary, built once per test run by buildBinary.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// buildBinary builds cmd/sabot once per test binary run; TestMain removes it.
func buildBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "sabot-bin-")
		if built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "sabot")
		cmd := exec.Command("go", "build", "-o", built.path, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// devProcess is `sabot dev` running as a child process.
type devProcess struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result; read after done
	log  string
}

func startDev(t *testing.T, bin, data, addr string) *devProcess {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "dev.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "dev", "--data", data, "--addr", addr, "--workers", "2")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &devProcess{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { // joined by the cleanup below
		d.err = cmd.Wait()
		_ = logf.Close()
		close(d.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("sabot dev log:\n%s", b)
		}
	})
	testkit.Eventually(t, 60*time.Second, func() error {
		select {
		case <-d.done:
			t.Fatalf("sabot dev exited before serving: %v", d.err)
		default:
		}
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz: %s", resp.Status)
		}
		return nil
	})
	return d
}

// TestDevSurvivesSIGKILL kills `sabot dev` with SIGKILL and starts it again
// on the same data directory: every job is still listed, finished jobs stay
// FINISHED, and the running job is placed again and runs.
func TestDevSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	data := t.TempDir()
	addr := freeAddr(t)
	dev := startDev(t, bin, data, addr)
	client := sabotv1connect.NewJobServiceClient(http.DefaultClient, "http://"+addr)

	out := t.TempDir()
	stdout, errLine := sabot(t, addr, "deploy", "-f", exampleWithOutput(t, out))
	if errLine != "" {
		t.Fatal(errLine)
	}
	finished := jobIDLine.FindStringSubmatch(stdout)[1]
	demo, err := os.ReadFile("../../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	stdout, errLine = sabot(t, addr, "deploy", "-f", writeFile(t, "demo.yaml", string(demo)))
	if errLine != "" {
		t.Fatal(errLine)
	}
	running := jobIDLine.FindStringSubmatch(stdout)[1]
	waitFor(t, client, finished, sabotv1.JobState_JOB_STATE_FINISHED, 0)
	before := waitFor(t, client, running, sabotv1.JobState_JOB_STATE_RUNNING, 0)

	if err := syscall.Kill(-dev.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-dev.done

	startDev(t, bin, data, addr)
	resp, err := client.ListJobs(context.Background(), connect.NewRequest(&sabotv1.ListJobsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range resp.Msg.GetJobs() {
		ids = append(ids, j.GetId())
	}
	if strings.Join(ids, ",") != running+","+finished {
		t.Fatalf("after SIGKILL and restart the jobs are %v, want [%s %s]", ids, running, finished)
	}
	waitFor(t, client, finished, sabotv1.JobState_JOB_STATE_FINISHED, 0)
	// The old workers' leases expire (5 s), the job is placed again.
	waitFor(t, client, running, sabotv1.JobState_JOB_STATE_RUNNING, before.GetStatus().GetAttempt()+1)
}

// TestDevStopsOnSIGTERM: a signal stops `sabot dev` cleanly (exit 0) within
// its 5 s shutdown bound.
func TestDevStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	addr := freeAddr(t)
	dev := startDev(t, bin, t.TempDir(), addr)
	if _, errLine := sabot(t, addr, "deploy", "-f", writeFile(t, "demo.yaml", mustRead(t, "../../examples/demo.yaml"))); errLine != "" {
		t.Fatal(errLine)
	}
	if err := dev.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The binary bounds its own shutdown at 5 s (shutdownGrace plus a
	// watchdog); the margin here only absorbs process scheduling.
	select {
	case <-dev.done:
		if dev.err != nil {
			b, _ := os.ReadFile(dev.log)
			t.Fatalf("sabot dev exited with %v after SIGTERM:\n%s", dev.err, b)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("sabot dev still running 8 s after SIGTERM")
	}
	b, _ := os.ReadFile(dev.log)
	if !strings.Contains(string(b), "stopped") {
		t.Fatalf("sabot dev did not log a clean stop:\n%s", b)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitFor polls until the job is in state (and at least at minAttempt).
func waitFor(t *testing.T, c sabotv1connect.JobServiceClient, id string, state sabotv1.JobState, minAttempt int64) *sabotv1.Job {
	t.Helper()
	var job *sabotv1.Job
	testkit.Eventually(t, 60*time.Second, func() error {
		resp, err := c.GetJob(context.Background(), connect.NewRequest(&sabotv1.GetJobRequest{JobId: id}))
		if err != nil {
			return err
		}
		job = resp.Msg.GetJob()
		st := job.GetStatus()
		if st.GetState() != state || st.GetAttempt() < minAttempt {
			return fmt.Errorf("job %s is %s attempt %d (%q); want %s attempt ≥ %d", id, st.GetState(), st.GetAttempt(), st.GetMessage(), state, minAttempt)
		}
		return nil
	})
	return job
}
