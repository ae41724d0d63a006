package autoscale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sabotdev/sabot/internal/group"
)

// WorkerIDEnv is the environment variable through which Local gives each
// worker process it starts its id (the command line is left as given).
const WorkerIDEnv = "SABOT_WORKER_ID"

// DefaultStopGrace is how long Local waits after SIGTERM before SIGKILL.
const DefaultStopGrace = 10 * time.Second

// LocalOptions configure a Local provisioner.
type LocalOptions struct {
	// Command is the worker's argv, for example
	// {"sabot", "worker", "--etcd", "127.0.0.1:2379"}. Required. Every
	// process gets WorkerIDEnv=<id> added to its environment; ids are
	// IDPrefix followed by 1, 2, 3, … in start order, never reused by one
	// Local.
	Command []string
	// Env is added to this process's environment (later entries win).
	Env []string
	// Dir is the working directory; empty means this process's.
	Dir string
	// Stdout and Stderr receive the workers' output, all workers
	// interleaved (writes are serialized, so any io.Writer will do); nil
	// discards it.
	Stdout, Stderr io.Writer
	// Logger receives starts, stops and unexpected exits; nil discards.
	Logger *slog.Logger
	// StopGrace is how long a stopping worker has between SIGTERM and
	// SIGKILL; 0 means DefaultStopGrace.
	StopGrace time.Duration
	// Min and Max bound the number of workers SetWorkers asks for; Max 0
	// means no upper bound.
	Min, Max int
	// IDPrefix prefixes worker ids; empty means "local-". Give two Locals
	// that share an etcd cluster different prefixes.
	IDPrefix string
}

// Local is a Provisioner that runs workers as child processes of this one,
// for `sabot dev` and tests.
//
// SetWorkers starts processes, or stops the newest ones (SIGTERM, then
// SIGKILL after StopGrace) without waiting for them to exit. A process that
// exits on its own is reaped and no longer counted, and is not restarted:
// the next SetWorkers starts a replacement. Each process has one goroutine,
// owned by the Local, that waits for it; Close stops every process and
// waits for all of them.
type Local struct {
	opts LocalOptions
	log  *slog.Logger
	g    *group.Group
	// out serializes writes to Stdout and Stderr, which os/exec makes from
	// one goroutine per process and stream.
	out sync.Mutex

	// setMu serializes SetWorkers and Close, so two calls never both start
	// the processes that one shortfall needs. It is taken before mu.
	setMu sync.Mutex
	mu    struct {
		sync.Mutex
		procs  []*localProc // start order
		seq    int
		closed bool
		// killed are the workers that ignored SIGTERM during Close.
		killed []string
	}
}

// localProc is one worker process.
type localProc struct {
	id     string
	cmd    *exec.Cmd
	cancel context.CancelFunc // stops the process: SIGTERM, SIGKILL after the grace
	// stopping is set, under Local.mu, once the process was asked to stop.
	stopping bool
}

// NewLocal returns a Local with no processes yet. It fails on an empty
// Command or contradictory bounds.
func NewLocal(opts LocalOptions) (*Local, error) {
	switch {
	case len(opts.Command) == 0 || opts.Command[0] == "":
		return nil, errors.New("autoscale: local: Command is empty")
	case opts.Min < 0 || opts.Max < 0:
		return nil, fmt.Errorf("autoscale: local: negative bounds (Min %d, Max %d)", opts.Min, opts.Max)
	case opts.Max > 0 && opts.Min > opts.Max:
		return nil, fmt.Errorf("autoscale: local: Min %d is above Max %d", opts.Min, opts.Max)
	case opts.StopGrace < 0:
		return nil, fmt.Errorf("autoscale: local: negative StopGrace %v", opts.StopGrace)
	}
	if opts.StopGrace == 0 {
		opts.StopGrace = DefaultStopGrace
	}
	if opts.IDPrefix == "" {
		opts.IDPrefix = "local-"
	}
	l := &Local{opts: opts, log: opts.Logger, g: group.New(context.Background())}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	l.log = l.log.With("provisioner", "local")
	return l, nil
}

// Name is "local".
func (l *Local) Name() string { return "local" }

// Workers is the number of processes running and not asked to stop.
func (l *Local) Workers(context.Context) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.liveLocked(), nil
}

// liveLocked counts the processes not asked to stop. l.mu must be held.
func (l *Local) liveLocked() int {
	n := 0
	for _, p := range l.mu.procs {
		if !p.stopping {
			n++
		}
	}
	return n
}

// SetWorkers starts or stops processes until n (clamped to [Min, Max]) are
// running and not stopping. It returns ErrClosed after Close, and the first
// error starting a process (those started before it keep running); ctx
// ends the starting early.
func (l *Local) SetWorkers(ctx context.Context, n int) error {
	l.setMu.Lock()
	defer l.setMu.Unlock()
	want := clampWorkers(n, l.opts.Min, l.opts.Max)
	if want != n {
		l.log.Debug("worker count clamped", "asked", n, "set", want, "min", l.opts.Min, "max", l.opts.Max)
	}

	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	live := l.liveLocked()
	var stop []*localProc
	for i := len(l.mu.procs) - 1; i >= 0 && live-len(stop) > want; i-- {
		if p := l.mu.procs[i]; !p.stopping {
			p.stopping = true
			stop = append(stop, p)
		}
	}
	l.mu.Unlock()

	for _, p := range stop {
		l.log.Info("stopping worker", "worker", p.id, "pid", p.cmd.Process.Pid)
		p.cancel() // os/exec sends SIGTERM, and SIGKILL after WaitDelay
	}
	for i := live; i < want; i++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("autoscale: local: started %d of %d workers: %w", i-live, want-live, err)
		}
		if err := l.start(); err != nil {
			return fmt.Errorf("autoscale: local: started %d of %d workers: %w", i-live, want-live, err)
		}
	}
	return nil
}

// start starts one process and the goroutine that waits for it. setMu
// must be held (so Close cannot stop the group in between).
func (l *Local) start() error {
	l.mu.Lock()
	l.mu.seq++
	id := fmt.Sprintf("%s%d", l.opts.IDPrefix, l.mu.seq)
	l.mu.Unlock()

	ctx, cancel := context.WithCancel(l.g.Context())
	cmd := exec.CommandContext(ctx, l.opts.Command[0], l.opts.Command[1:]...)
	cmd.Env = append(append(os.Environ(), l.opts.Env...), WorkerIDEnv+"="+id)
	cmd.Dir = l.opts.Dir
	cmd.Stdout = l.writer(l.opts.Stdout)
	cmd.Stderr = l.writer(l.opts.Stderr)
	// Cancelling ctx asks the worker to stop gracefully; os/exec kills it
	// if it has not exited WaitDelay later.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = l.opts.StopGrace
	if err := cmd.Start(); err != nil {
		cancel()
		return fmt.Errorf("start worker %s: %w", id, err)
	}
	p := &localProc{id: id, cmd: cmd, cancel: cancel}
	l.mu.Lock()
	l.mu.procs = append(l.mu.procs, p)
	l.mu.Unlock()
	l.log.Info("started worker", "worker", id, "pid", cmd.Process.Pid)

	if !l.g.Go("local-worker", func(context.Context) { l.wait(p) }, "worker", id) {
		// Unreachable while setMu is held and Close takes it first; stop
		// the process rather than leave it unowned.
		cancel()
		_ = cmd.Wait()
		return fmt.Errorf("start worker %s: %w", id, ErrClosed)
	}
	return nil
}

// wait waits for p to exit, then forgets it.
func (l *Local) wait(p *localProc) {
	err := p.cmd.Wait()
	p.cancel()

	l.mu.Lock()
	for i, q := range l.mu.procs {
		if q == p {
			l.mu.procs = append(l.mu.procs[:i], l.mu.procs[i+1:]...)
			break
		}
	}
	stopping, closing := p.stopping, l.mu.closed
	killed := stopping && wasKilled(p.cmd.ProcessState)
	if killed && closing {
		l.mu.killed = append(l.mu.killed, p.id)
	}
	l.mu.Unlock()

	switch {
	case killed:
		l.log.Warn("worker ignored SIGTERM and was killed", "worker", p.id, "grace", l.opts.StopGrace)
	case stopping:
		l.log.Info("worker stopped", "worker", p.id, "state", p.cmd.ProcessState.String())
	default:
		l.log.Warn("worker exited on its own", "worker", p.id, "state", p.cmd.ProcessState.String(), "err", err)
	}
}

// wasKilled reports whether a process ended by SIGKILL.
func wasKilled(st *os.ProcessState) bool {
	ws, ok := st.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// Close stops every process (SIGTERM, SIGKILL after StopGrace) and waits
// for them and their goroutines. It reports the workers that had to be
// killed. It is idempotent: later calls return nil.
func (l *Local) Close() error {
	l.setMu.Lock()
	defer l.setMu.Unlock()
	// Stop intake: SetWorkers now returns ErrClosed.
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return nil
	}
	l.mu.closed = true
	for _, p := range l.mu.procs {
		p.stopping = true
	}
	n := len(l.mu.procs)
	l.mu.Unlock()
	l.log.Info("stopping all workers", "workers", n)

	// Cancelling the group's context signals every process; each waiter
	// returns at most StopGrace later.
	l.g.Stop(nil)

	l.mu.Lock()
	killed := l.mu.killed
	l.mu.Unlock()
	if len(killed) > 0 {
		return fmt.Errorf("autoscale: local: workers %s ignored SIGTERM for %v and were killed", strings.Join(killed, ", "), l.opts.StopGrace)
	}
	return nil
}

// writer returns w with its writes serialized under l.out; nil stays nil
// (os/exec then discards) and an *os.File is passed to the child as is.
func (l *Local) writer(w io.Writer) io.Writer {
	switch w.(type) {
	case nil, *os.File:
		return w
	}
	return &lockedWriter{mu: &l.out, w: w}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (lw *lockedWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.w.Write(p)
}
