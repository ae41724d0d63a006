package function

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
)

// process supervises the executable of one artifact for a Host: it fetches
// the artifact, starts it, restarts it when it exits, and stops it when
// its last Conn closes or the Host closes. Each execution is a run.
//
// Goroutines: supervise (one per process, in the Host's group) and one
// exit waiter per run (also in the group). Neither holds mu across I/O.
type process struct {
	h    *Host
	sum  string
	size int64
	log  *slog.Logger
	// ctx is the process's lifetime: cancelled by its last Conn's Close or
	// the Host's Close. Runs and Conns derive from it.
	ctx    context.Context
	cancel context.CancelCauseFunc

	// ready is closed once the first run is ready or the start failed;
	// startErr (written before) says which.
	ready    chan struct{}
	startErr error

	// refs counts the Conns using the process. Guarded by Host.mu.
	refs int

	mu struct {
		sync.Mutex
		run *run // the ready run, nil while (re)starting
		// changed is closed and replaced whenever run changes.
		changed chan struct{}
		// desc is the last ready run's Describe answer.
		desc *sabotv1.DescribeResponse
		// lastExit is the last run's exit, reported to Sessions waiting
		// for a restart that does not come.
		lastExit error
	}
}

// run is one execution of the artifact.
type run struct {
	pid     int
	sock    string
	started time.Time
	tr      *http.Transport
	client  sabotv1connect.FunctionProcessServiceClient
	stderr  *tail
	// ctx ends when the run stops: cancelled with the *ExitError when the
	// process exits, or with the stop cause when it is stopped. Cancelling
	// it makes os/exec send SIGTERM (then SIGKILL after stopGrace).
	ctx    context.Context
	cancel context.CancelCauseFunc
	// done is closed by the exit waiter after exit is set.
	done chan struct{}
	exit *ExitError
}

func newProcess(h *Host, sum string, size int64) *process {
	p := &process{
		h:     h,
		sum:   sum,
		size:  size,
		log:   h.cfg.Logger.With("artifact", shortSum(sum)),
		ready: make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancelCause(h.g.Context())
	p.mu.changed = make(chan struct{})
	return p
}

// supervise runs the process until p.ctx ends:
//
//	fetch ──► starting ──ready──► running ──exit──► backoff ──► starting …
//	  │           │                  │                  │
//	  └─fail──────┴─fail (first) ──► failed             │
//	              any state ──ctx done──► stopping (SIGTERM, SIGKILL after 5 s) ──► stopped
//
// A failure before the first run is ready fails the Opens waiting for it
// and ends the process (the next Open starts a new one). Later failures,
// of a start or of a running process, are retried with backoff for as long
// as a Conn uses the process.
func (p *process) supervise(context.Context) {
	path, err := p.h.artifact(p.ctx, p.sum, p.size)
	if err != nil {
		p.failStart(err)
		return
	}
	backoff := minRestartBackoff
	first := true
	for {
		r, err := p.start(path)
		switch {
		case err != nil && first:
			p.failStart(err)
			return
		case err != nil:
			if p.ctx.Err() != nil {
				return
			}
			p.log.Warn("function: process restart failed", "err", err, "retry_in", backoff)
			p.setLastExit(err)
		default:
			p.setRun(r)
			if first {
				first = false
				close(p.ready)
			}
			<-r.done
			p.clearRun(r)
			if p.ctx.Err() != nil {
				p.log.Info("function: process stopped", "pid", r.pid, "status", r.exit.Status)
				return
			}
			if time.Since(r.started) >= backoffResetAfter {
				backoff = minRestartBackoff
			}
			p.log.Warn("function: process exited, restarting", "pid", r.pid, "status", r.exit.Status, "ran", r.exit.Ran.Round(time.Millisecond), "retry_in", backoff)
		}
		if !sleep(p.ctx, backoff) {
			return
		}
		backoff = min(2*backoff, p.h.cfg.MaxRestartBackoff)
	}
}

// failStart reports a failed first start to the waiting Opens.
func (p *process) failStart(err error) {
	if p.ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", context.Cause(p.ctx), err)
	}
	p.startErr = err
	close(p.ready)
	p.h.forget(p)
	p.log.Warn("function: process failed to start", "err", err)
}

// start executes the artifact and waits until it serves Describe. On error
// the run has been stopped and reaped.
func (p *process) start(path string) (*run, error) {
	sock, err := p.claimSocket()
	if err != nil {
		return nil, err
	}
	r := &run{sock: sock, stderr: &tail{}, done: make(chan struct{})}
	r.ctx, r.cancel = context.WithCancelCause(p.ctx)
	// Before the process starts: its stop (exec's Cancel) closes it.
	r.tr = unixTransport(sock)
	cmd, stdout, stderr, err := p.exec(r, path)
	if err != nil {
		r.cancel(err)
		return nil, err
	}
	r.pid = cmd.Process.Pid
	r.started = time.Now()
	log := p.log.With("pid", r.pid)
	log.Info("function: process started", "socket", sock)

	r.client = sabotv1connect.NewFunctionProcessServiceClient(&http.Client{Transport: r.tr}, "http://sabot-function",
		connect.WithGRPC(),
		// A local socket: compression would only cost CPU.
		connect.WithAcceptCompression("gzip", nil, nil))

	wait := func(context.Context) {
		err := cmd.Wait()
		stdout.flush()
		stderr.flush()
		status := "unknown"
		switch {
		case cmd.ProcessState != nil:
			status = cmd.ProcessState.String()
		case err != nil:
			status = err.Error()
		}
		r.exit = &ExitError{SHA256: p.sum, PID: r.pid, Status: status, Ran: time.Since(r.started), Stderr: r.stderr.lines()}
		r.cancel(r.exit)
		r.tr.CloseIdleConnections()
		_ = os.Remove(sock)
		close(r.done)
	}
	if !p.h.g.Go("function-wait", wait, "artifact", shortSum(p.sum), "pid", strconv.Itoa(r.pid)) {
		// The Host is closing (its group refuses new goroutines): r.ctx,
		// derived from the group's, is cancelled, so the process is being
		// stopped. Reap it here.
		wait(r.ctx)
		return nil, context.Cause(p.ctx)
	}

	desc, err := p.waitReady(r)
	if err != nil {
		r.cancel(err)
		<-r.done
		return nil, err
	}
	p.mu.Lock()
	p.mu.desc = desc
	p.mu.Unlock()
	log.Info("function: process ready", "sdk", desc.GetSdk(), "functions", len(desc.GetFunctions()), "took", time.Since(r.started).Round(time.Millisecond))
	return r, nil
}

// claimSocket picks the next socket path, Dir/run/<sha12>-<n>.sock. A file
// already there is a socket of another Host sharing Dir, or one left by a
// process of a worker that died: one that accepts connections is skipped,
// one that refuses them is stale and removed (the bind would fail on it).
func (p *process) claimSocket() (string, error) {
	for {
		n := p.h.sockSeq.Add(1)
		sock := filepath.Join(p.h.runDir, shortSum(p.sum)+"-"+strconv.FormatUint(n, 10)+".sock")
		if len(sock) > maxSocketPath {
			return "", fmt.Errorf("function: socket path %q is longer than %d bytes: use a shorter HostConfig.Dir", sock, maxSocketPath)
		}
		if _, err := os.Lstat(sock); errors.Is(err, os.ErrNotExist) {
			return sock, nil
		}
		if c, err := net.DialTimeout("unix", sock, 100*time.Millisecond); err == nil {
			_ = c.Close()
			continue
		}
		if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("function: remove stale socket: %w", err)
		}
		return sock, nil
	}
}

// exec starts the executable, retrying while the kernel reports it busy
// (ETXTBSY: another goroutine forked while our freshly written file was
// still open for writing, and the child holds that descriptor until it
// execs; golang.org/issue/22315).
func (p *process) exec(r *run, path string) (*exec.Cmd, *lineWriter, *lineWriter, error) {
	env := append(os.Environ(), p.h.cfg.Env...)
	env = append(env, ListenEnv+"=unix://"+r.sock)
	delay := 5 * time.Millisecond
	for attempt := 0; ; attempt++ {
		cmd := exec.CommandContext(r.ctx, path)
		cmd.Env = env
		stdout := newLineWriter(p.log.With("stream", "stdout"), nil)
		stderr := newLineWriter(p.log.With("stream", "stderr"), r.stderr)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		cmd.SysProcAttr = sysProcAttr()
		// Stopping: SIGTERM when r.ctx ends, SIGKILL stopGrace later.
		cmd.Cancel = func() error {
			// Our idle connections go first: the process's server would
			// otherwise wait for them (a second) before it can exit.
			r.tr.CloseIdleConnections()
			return cmd.Process.Signal(syscall.SIGTERM)
		}
		cmd.WaitDelay = stopGrace
		err := cmd.Start()
		if err == nil {
			return cmd, stdout, stderr, nil
		}
		if !errors.Is(err, syscall.ETXTBSY) || attempt == 10 {
			return nil, nil, nil, fmt.Errorf("function: start process %s: %w", shortSum(p.sum), err)
		}
		if !sleep(r.ctx, delay) {
			return nil, nil, nil, context.Cause(r.ctx)
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// waitReady polls Describe until it answers, the run exits, the start
// timeout passes or the process is stopped.
func (p *process) waitReady(r *run) (*sabotv1.DescribeResponse, error) {
	deadline := time.NewTimer(p.h.cfg.StartTimeout)
	defer deadline.Stop()
	interval := 5 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(r.ctx, time.Second)
		resp, err := r.client.Describe(actx, connect.NewRequest(&sabotv1.DescribeRequest{}))
		cancel()
		if err == nil {
			return resp.Msg, nil
		}
		retry := time.NewTimer(interval)
		select {
		case <-r.done:
			retry.Stop()
			return nil, r.exit
		case <-p.ctx.Done():
			retry.Stop()
			return nil, context.Cause(p.ctx)
		case <-deadline.C:
			retry.Stop()
			msg := fmt.Sprintf("function: process %s (pid %d) not ready within %v: %v", shortSum(p.sum), r.pid, p.h.cfg.StartTimeout, err)
			if lines := r.stderr.lines(); len(lines) > 0 {
				msg += "; last stderr: " + strings.Join(lines, " | ")
			}
			return nil, errors.New(msg)
		case <-retry.C:
		}
		interval = min(2*interval, 100*time.Millisecond)
	}
}

// unixTransport is an h2c (HTTP/2 without TLS) transport to a unix socket.
func unixTransport(sock string) *http.Transport {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		Protocols: p,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		},
	}
}

func (p *process) setRun(r *run) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.run = r
	close(p.mu.changed)
	p.mu.changed = make(chan struct{})
}

func (p *process) clearRun(r *run) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.run = nil
	p.mu.lastExit = r.exit
	close(p.mu.changed)
	p.mu.changed = make(chan struct{})
}

func (p *process) setLastExit(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.lastExit = err
}

// current returns the running run, or nil.
func (p *process) current() *run {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.run
}

func (p *process) described() *sabotv1.DescribeResponse {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.desc
}

// waitRun returns the running run, waiting while the process restarts
// until ctx or alive (the Conn's lifetime) ends.
func (p *process) waitRun(ctx, alive context.Context) (*run, error) {
	for {
		p.mu.Lock()
		r, changed, last := p.mu.run, p.mu.changed, p.mu.lastExit
		p.mu.Unlock()
		// r.ctx ends when the process exits, before the supervisor clears
		// the run (and before done is closed): a caller that saw a Call
		// fail with the exit must not get the dead run back.
		if r != nil && r.ctx.Err() == nil {
			return r, nil
		}
		select {
		case <-changed:
		case <-alive.Done():
			return nil, context.Cause(alive)
		case <-ctx.Done():
			if last != nil {
				return nil, fmt.Errorf("process %s not running: %w (last failure: %w)", shortSum(p.sum), context.Cause(ctx), last)
			}
			return nil, fmt.Errorf("process %s not running: %w", shortSum(p.sum), context.Cause(ctx))
		}
	}
}

// sleep waits for d or ctx, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
