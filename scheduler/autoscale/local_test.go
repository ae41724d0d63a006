package autoscale_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sabotdev/sabot/internal/testkit"
	"github.com/sabotdev/sabot/scheduler/autoscale"
)

// The test binary doubles as the fake worker Local starts: with
// fakeWorkerEnv set, TestMain runs fakeWorker instead of the tests.
const (
	fakeWorkerEnv = "AUTOSCALE_TEST_FAKE_WORKER" // the mode: sleep, ignore-term, exit
	fakeDirEnv    = "AUTOSCALE_TEST_DIR"         // where it writes <id>.pid and <id>.stopped
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeWorkerEnv); mode != "" {
		os.Exit(fakeWorker(mode))
	}
	goleak.VerifyTestMain(m)
}

// fakeWorker writes "<pid> <working dir>" to <dir>/<id>.pid and "worker
// <id> up" to stdout, then, by mode: sleep waits for SIGTERM and writes
// <id>.stopped before exiting 0; ignore-term ignores SIGTERM (only SIGKILL
// ends it); exit exits 3 at once. Every mode gives up after two minutes,
// so a test that dies does not leave processes behind for long.
func fakeWorker(mode string) int {
	dir, id := os.Getenv(fakeDirEnv), os.Getenv(autoscale.WorkerIDEnv)
	if dir == "" || id == "" {
		fmt.Fprintln(os.Stderr, "fake worker: missing", fakeDirEnv, "or", autoscale.WorkerIDEnv)
		return 2
	}
	term := make(chan os.Signal, 1)
	switch mode {
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
	default:
		signal.Notify(term, syscall.SIGTERM)
	}
	wd, _ := os.Getwd()
	tmp := filepath.Join(dir, id+".tmp")
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%d %s", os.Getpid(), wd), 0o600); err != nil {
		return 2
	}
	if err := os.Rename(tmp, filepath.Join(dir, id+".pid")); err != nil {
		return 2
	}
	fmt.Printf("worker %s up\n", id)
	switch mode {
	case "exit":
		return 3
	case "sleep":
		select {
		case <-term:
			if err := os.WriteFile(filepath.Join(dir, id+".stopped"), nil, 0o600); err != nil {
				return 2
			}
			return 0
		case <-time.After(2 * time.Minute):
			return 1
		}
	default:
		time.Sleep(2 * time.Minute)
		return 1
	}
}

// fixture is a Local running the fake worker in mode.
type fixture struct {
	l   *autoscale.Local
	dir string
	out *bytes.Buffer // not safe for concurrent use: Local must serialize
}

func newLocal(t *testing.T, mode string, tweak func(*autoscale.LocalOptions)) *fixture {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: t.TempDir(), out: &bytes.Buffer{}}
	opts := autoscale.LocalOptions{
		Command:   []string{exe},
		Env:       []string{fakeWorkerEnv + "=" + mode, fakeDirEnv + "=" + f.dir},
		Dir:       f.dir,
		Stdout:    f.out,
		Stderr:    f.out,
		Logger:    testkit.Logger(t, slog.LevelDebug),
		StopGrace: 5 * time.Second,
	}
	if tweak != nil {
		tweak(&opts)
	}
	f.l, err = autoscale.NewLocal(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.l.Close() })
	return f
}

// pid waits for worker id to have started and returns its pid, checking
// it runs in the fixture's directory.
func (f *fixture) pid(t *testing.T, id string) int {
	t.Helper()
	var pid int
	testkit.Eventually(t, 10*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(f.dir, id+".pid"))
		if err != nil {
			return err
		}
		pidText, wd, _ := strings.Cut(string(b), " ")
		if pid, err = strconv.Atoi(pidText); err != nil {
			return err
		}
		if want, _ := filepath.EvalSymlinks(f.dir); wd != want && wd != f.dir {
			t.Errorf("worker %s runs in %s, want %s", id, wd, f.dir)
		}
		return nil
	})
	return pid
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// gone waits for pid to stop existing (it is reaped by Local).
func gone(t *testing.T, id string, pid int) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, func() error {
		if alive(pid) {
			return fmt.Errorf("worker %s (pid %d) still exists", id, pid)
		}
		return nil
	})
}

func (f *fixture) workers(t *testing.T) int {
	t.Helper()
	n, err := f.l.Workers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *fixture) stopped(id string) bool {
	_, err := os.Stat(filepath.Join(f.dir, id+".stopped"))
	return err == nil
}

func TestLocalStartsAndStopsWorkers(t *testing.T) {
	t.Parallel()
	f := newLocal(t, "sleep", nil)
	if f.l.Name() != "local" {
		t.Errorf("name %q", f.l.Name())
	}
	if err := f.l.SetWorkers(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
	pids := map[string]int{}
	for _, id := range []string{"local-1", "local-2", "local-3"} {
		pids[id] = f.pid(t, id)
		if !alive(pids[id]) {
			t.Fatalf("worker %s is not running", id)
		}
	}
	if n := f.workers(t); n != 3 {
		t.Fatalf("Workers = %d, want 3", n)
	}

	// Down to one: the newest two get SIGTERM and exit; the oldest stays.
	if err := f.l.SetWorkers(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	if n := f.workers(t); n != 1 {
		t.Fatalf("Workers = %d right after SetWorkers(1), want 1", n)
	}
	for _, id := range []string{"local-3", "local-2"} {
		gone(t, id, pids[id])
		if !f.stopped(id) {
			t.Errorf("worker %s did not see SIGTERM", id)
		}
	}
	if !alive(pids["local-1"]) || f.stopped("local-1") {
		t.Fatal("the oldest worker was stopped")
	}

	// Up to two again: a new id.
	if err := f.l.SetWorkers(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	pids["local-4"] = f.pid(t, "local-4")

	if err := f.l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"local-1", "local-4"} {
		if alive(pids[id]) || !f.stopped(id) {
			t.Errorf("worker %s not stopped by SIGTERM after Close", id)
		}
	}
	if err := f.l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := f.l.SetWorkers(t.Context(), 1); !errors.Is(err, autoscale.ErrClosed) {
		t.Errorf("SetWorkers after Close: %v, want ErrClosed", err)
	}
	// Every worker's output arrived, whole lines (writes serialized).
	var lines []string
	for line := range strings.Lines(f.out.String()) {
		lines = append(lines, strings.TrimSpace(line))
	}
	slices.Sort(lines)
	want := []string{"worker local-1 up", "worker local-2 up", "worker local-3 up", "worker local-4 up"}
	if !slices.Equal(lines, want) {
		t.Errorf("output %q, want %q", lines, want)
	}
}

func TestLocalReapsWorkersThatExit(t *testing.T) {
	t.Parallel()
	f := newLocal(t, "exit", nil)
	if err := f.l.SetWorkers(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"local-1", "local-2"} {
		gone(t, id, f.pid(t, id))
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		if n := f.workers(t); n != 0 {
			return fmt.Errorf("Workers = %d after both exited, want 0", n)
		}
		return nil
	})
	// Asking again replaces them.
	if err := f.l.SetWorkers(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	f.pid(t, "local-3")
	f.pid(t, "local-4")
}

func TestLocalKillsAfterGrace(t *testing.T) {
	t.Parallel()
	f := newLocal(t, "ignore-term", func(o *autoscale.LocalOptions) { o.StopGrace = 300 * time.Millisecond })
	if err := f.l.SetWorkers(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	p1, p2 := f.pid(t, "local-1"), f.pid(t, "local-2")

	// Scale-down: SIGTERM is ignored, SIGKILL follows the grace.
	if err := f.l.SetWorkers(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	gone(t, "local-2", p2)

	start := time.Now()
	err := f.l.Close()
	if err == nil || !strings.Contains(err.Error(), "local-1") || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Close = %v, want an error naming local-1 as killed", err)
	}
	if alive(p1) {
		t.Fatal("local-1 survives Close")
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("Close took %v, less than the grace", d)
	}
}

func TestLocalBounds(t *testing.T) {
	t.Parallel()
	f := newLocal(t, "sleep", func(o *autoscale.LocalOptions) { o.Min, o.Max, o.IDPrefix = 1, 2, "w" })
	for _, c := range []struct{ ask, want int }{{5, 2}, {0, 1}, {-3, 1}, {2, 2}} {
		if err := f.l.SetWorkers(t.Context(), c.ask); err != nil {
			t.Fatal(err)
		}
		if n := f.workers(t); n != c.want {
			t.Fatalf("SetWorkers(%d): Workers = %d, want %d", c.ask, n, c.want)
		}
	}
	f.pid(t, "w1")
}

func TestLocalConcurrentCalls(t *testing.T) {
	t.Parallel()
	f := newLocal(t, "sleep", nil)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := f.l.SetWorkers(context.Background(), 2); err != nil {
				t.Error(err)
			}
			if _, err := f.l.Workers(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := f.workers(t); n != 2 {
		t.Fatalf("Workers = %d after concurrent SetWorkers(2), want 2", n)
	}
	f.pid(t, "local-1")
	f.pid(t, "local-2")
	if _, err := os.Stat(filepath.Join(f.dir, "local-3.pid")); err == nil {
		t.Fatal("a third worker was started")
	}
}

func TestLocalStartFailure(t *testing.T) {
	t.Parallel()
	f := newLocal(t, "sleep", func(o *autoscale.LocalOptions) {
		o.Command = []string{filepath.Join(t.TempDir(), "no-such-binary")}
	})
	err := f.l.SetWorkers(t.Context(), 2)
	if err == nil || !strings.Contains(err.Error(), "started 0 of 2") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("SetWorkers = %v, want a start error wrapping os.ErrNotExist", err)
	}
	if n := f.workers(t); n != 0 {
		t.Fatalf("Workers = %d, want 0", n)
	}
}

func TestNewLocalRejects(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		opts autoscale.LocalOptions
		want string
	}{
		{"no command", autoscale.LocalOptions{}, "Command is empty"},
		{"negative", autoscale.LocalOptions{Command: []string{"x"}, Min: -1}, "negative bounds"},
		{"min above max", autoscale.LocalOptions{Command: []string{"x"}, Min: 3, Max: 2}, "Min 3 is above Max 2"},
		{"negative grace", autoscale.LocalOptions{Command: []string{"x"}, StopGrace: -time.Second}, "negative StopGrace"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if _, err := autoscale.NewLocal(c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("NewLocal = %v, want %q", err, c.want)
			}
		})
	}
}
