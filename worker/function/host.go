package function

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/internal/group"
)

// Host runs and reaches function processes for one worker. It is safe for
// concurrent use. See the package documentation for its lifecycle.
type Host struct {
	cfg    HostConfig
	cfgErr error // from Validate or creating Dir; returned by Open
	runDir string
	g      *group.Group // supervisors and exit waiters

	// URL functions share two transports, one per scheme.
	h2c, tls *http.Transport

	// sockSeq numbers sockets (Dir/run/<sha12>-<n>.sock) so that a
	// restarted process never binds the path of its predecessor.
	sockSeq atomic.Uint64

	mu struct {
		sync.Mutex
		closed bool
		// procs holds the live process of each artifact (by hash). A
		// process leaves the map when its last Conn closes or its first
		// start fails; a new Open then starts another.
		procs map[string]*process
		// verified holds the artifacts whose cached file this Host has
		// verified (or written).
		verified map[string]bool
		// conns counts open Conns, reported by Close.
		conns int
	}
}

// NewHost returns a Host. It starts no goroutine and no process: processes
// are started by Open. An invalid configuration or a Dir that cannot be
// created is reported by Open (input errors never panic).
func NewHost(cfg HostConfig) *Host {
	h := &Host{cfg: cfg.withDefaults(), g: group.New(context.Background())}
	h.mu.procs = make(map[string]*process)
	h.mu.verified = make(map[string]bool)
	h.cfgErr = cfg.Validate()
	if h.cfgErr == nil && cfg.Dir != "" {
		h.cfgErr = h.makeDirs()
	}

	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	h.h2c = &http.Transport{
		Protocols:   p,
		DialContext: (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		HTTP2:       remoteHTTP2(),
	}
	p = new(http.Protocols)
	p.SetHTTP2(true)
	h.tls = &http.Transport{
		Protocols:           p,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		HTTP2:               remoteHTTP2(),
	}
	if cfg.TLSConfig != nil {
		h.tls.TLSClientConfig = cfg.TLSConfig.Clone()
	}
	return h
}

// remoteHTTP2 pings idle connections to URL functions, so that a peer that
// vanished without closing the connection fails the sessions on it instead
// of leaving them waiting for the call deadline.
func remoteHTTP2() *http.HTTP2Config {
	return &http.HTTP2Config{SendPingTimeout: 15 * time.Second, PingTimeout: 15 * time.Second}
}

// makeDirs makes Dir absolute (the socket path is passed to processes) and
// creates Dir/artifacts and Dir/run.
func (h *Host) makeDirs() error {
	dir, err := filepath.Abs(h.cfg.Dir)
	if err != nil {
		return fmt.Errorf("function: Dir: %w", err)
	}
	h.cfg.Dir = dir
	h.runDir = filepath.Join(dir, "run")
	if len(h.runDir)+len("/0123456789ab-999999.sock") > maxSocketPath {
		// Unix socket paths are short (108 bytes with the NUL): a deep Dir
		// gets its sockets in a short directory of its own instead.
		sum := sha256.Sum256([]byte(dir))
		h.runDir = filepath.Join(os.TempDir(), "sabot-fn-"+hex.EncodeToString(sum[:8]))
		if len(h.runDir)+len("/0123456789ab-999999.sock") > maxSocketPath {
			return fmt.Errorf("function: Dir %q and the temporary directory are too deep for unix socket paths (%d bytes)", dir, maxSocketPath)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "artifacts"), 0o755); err != nil {
		return fmt.Errorf("function: Dir: %w", err)
	}
	// Only the worker's user may connect to the processes.
	if err := os.MkdirAll(h.runDir, 0o700); err != nil {
		return fmt.Errorf("function: Dir: %w", err)
	}
	return nil
}

// Open connects to the function fn: for a URL function, a client of that
// URL (h2c for http://, TLS with HTTP/2 for https://); for an artifact
// function, the Host's process for that artifact, fetched and started if
// none runs. Either way it calls Describe and checks the answer against
// fn.Spec (CheckSpec), failing with an error wrapping ErrSpecMismatch.
//
// Open blocks until the process is ready or ctx ends; a process that
// exits before it is ready fails Open with an *ExitError (wrapping
// ErrProcessExited) carrying its last stderr lines, and one that is not
// ready within StartTimeout fails it too. Content that does not match
// the artifact's hash or size fails with ErrArtifactMismatch. After Close,
// Open fails with ErrClosed.
//
// The caller must Close the Conn.
func (h *Host) Open(ctx context.Context, fn *sabotv1.Function) (*Conn, error) {
	if h.cfgErr != nil {
		return nil, h.cfgErr
	}
	spec := fn.GetSpec()
	if spec == nil {
		return nil, errors.New("function: registration has no spec")
	}
	switch {
	case fn.GetUrl() != "":
		return h.openURL(ctx, spec, fn.GetUrl())
	case fn.GetArtifact() != nil:
		return h.openArtifact(ctx, spec, fn.GetArtifact())
	default:
		return nil, fmt.Errorf("function %q: neither an artifact nor a url", spec.GetName())
	}
}

func (h *Host) openURL(ctx context.Context, spec *sabotv1.FunctionSpec, raw string) (*Conn, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("function %q: url: %w", spec.GetName(), err)
	}
	var tr *http.Transport
	switch u.Scheme {
	case "http":
		tr = h.h2c
	case "https":
		tr = h.tls
	default:
		return nil, fmt.Errorf("function %q: url %q: scheme must be http or https", spec.GetName(), raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("function %q: url %q has no host", spec.GetName(), raw)
	}
	client := sabotv1connect.NewFunctionProcessServiceClient(&http.Client{Transport: tr}, raw, connect.WithGRPC())

	h.mu.Lock()
	if h.mu.closed {
		h.mu.Unlock()
		return nil, fmt.Errorf("function %q: host: %w", spec.GetName(), ErrClosed)
	}
	h.mu.conns++
	h.mu.Unlock()
	c := &Conn{h: h, name: spec.GetName(), client: client}
	c.ctx, c.cancel = context.WithCancelCause(h.g.Context())

	desc, err := c.Describe(ctx)
	if err == nil {
		err = checkDescribed(spec, desc)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (h *Host) openArtifact(ctx context.Context, spec *sabotv1.FunctionSpec, a *sabotv1.Artifact) (*Conn, error) {
	name := spec.GetName()
	if err := checkArtifactRef(a.GetSha256(), a.GetSize()); err != nil {
		return nil, fmt.Errorf("function %q: %w", name, err)
	}
	if h.cfg.Dir == "" {
		return nil, fmt.Errorf("function %q: artifact functions need HostConfig.Dir", name)
	}

	h.mu.Lock()
	if h.mu.closed {
		h.mu.Unlock()
		return nil, fmt.Errorf("function %q: host: %w", name, ErrClosed)
	}
	p := h.mu.procs[a.GetSha256()]
	if p != nil && p.size != a.GetSize() {
		h.mu.Unlock()
		return nil, fmt.Errorf("%w: function %q: artifact %s registered with %d bytes, but it is in use with %d bytes",
			ErrArtifactMismatch, name, shortSum(a.GetSha256()), a.GetSize(), p.size)
	}
	if p == nil {
		p = newProcess(h, a.GetSha256(), a.GetSize())
		h.mu.procs[p.sum] = p
		// Started under h.mu: Close sets closed under h.mu before it stops
		// the group, so the group cannot refuse here.
		h.g.Go("function-process", p.supervise, "artifact", shortSum(p.sum))
	}
	p.refs++
	h.mu.conns++
	h.mu.Unlock()

	c := &Conn{h: h, name: name, proc: p}
	c.ctx, c.cancel = context.WithCancelCause(p.ctx)
	select {
	case <-p.ready:
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("function %q: waiting for process %s to start: %w", name, shortSum(p.sum), context.Cause(ctx))
	}
	if p.startErr != nil {
		c.Close()
		return nil, fmt.Errorf("function %q: %w", name, p.startErr)
	}
	if err := checkDescribed(spec, p.described()); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// release drops a Conn's reference to p, stopping p with the last one.
func (h *Host) release(p *process) {
	h.mu.Lock()
	p.refs--
	last := p.refs == 0
	if last && h.mu.procs[p.sum] == p {
		delete(h.mu.procs, p.sum)
	}
	h.mu.Unlock()
	if last {
		p.cancel(fmt.Errorf("%w: process %s stopped: its last connection closed", ErrClosed, shortSum(p.sum)))
	}
}

// forget removes p from the map after its start failed, so that the next
// Open starts a new process (the artifact may have been fixed).
func (h *Host) forget(p *process) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mu.procs[p.sum] == p {
		delete(h.mu.procs, p.sum)
	}
}

// Close stops every process and waits for them: intake stops (Open fails
// with ErrClosed), every Conn and Session is cancelled (their Calls fail
// with ErrClosed), each process gets SIGTERM and, if still running 5 s
// later, SIGKILL; Close returns when all have exited and every goroutine
// of the Host has returned. Conns still open are reported in the log; they
// must still be closed (a no-op then). Close is idempotent.
func (h *Host) Close() {
	h.mu.Lock()
	first := !h.mu.closed
	h.mu.closed = true
	open, procs := h.mu.conns, len(h.mu.procs)
	h.mu.Unlock()
	if first && open > 0 {
		h.cfg.Logger.Warn("function: host closing with connections open", "conns", open, "processes", procs)
	}
	// Stop cancels the group's context, which every process, Conn and
	// Session derives from, then waits for the supervisors, which wait for
	// their processes.
	h.g.Stop(fmt.Errorf("%w: host closed", ErrClosed))
	h.h2c.CloseIdleConnections()
	h.tls.CloseIdleConnections()
}
