package function

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/sabotdev/sabot/internal/blob"
)

// Defaults and fixed limits of a Host.
const (
	// DefaultMaxRestartBackoff caps the delay between restarts of a
	// process that keeps exiting.
	DefaultMaxRestartBackoff = 5 * time.Second
	// DefaultStartTimeout bounds a process's start: from exec until its
	// socket accepts and Describe answers.
	DefaultStartTimeout = 30 * time.Second

	// ListenEnv is the environment variable that tells an artifact process
	// where to serve FunctionProcessService: "unix://<absolute path>".
	ListenEnv = "SABOT_FUNCTION_LISTEN"

	// minRestartBackoff is the first restart delay; it doubles per restart
	// up to MaxRestartBackoff.
	minRestartBackoff = 100 * time.Millisecond
	// backoffResetAfter: a process that ran this long before exiting is
	// restarted after minRestartBackoff again.
	backoffResetAfter = 30 * time.Second
	// stopGrace is how long a stopping process has between SIGTERM and
	// SIGKILL.
	stopGrace = 5 * time.Second
	// exitSettle bounds how long a failed Call waits for the process's
	// exit to be observed after its connection broke, to tell a dead
	// process (ErrProcessExited) from a transport error.
	exitSettle = time.Second
	// maxLogLine bounds one forwarded line of a process's output; the rest
	// of a longer line is dropped.
	maxLogLine = 4 << 10
	// stderrTailLines and stderrTailLineLen bound the stderr kept for
	// ExitError.
	stderrTailLines   = 8
	stderrTailLineLen = 512
	// maxSocketPath is the longest unix socket path Linux binds
	// (sizeof(sun_path) - 1).
	maxSocketPath = 107
)

// HostConfig configures a Host. The zero value is usable for URL
// functions only.
type HostConfig struct {
	// Blobs is the store artifacts are fetched from (key ArtifactKey(sha)).
	// Nil: Open refuses artifact functions; URL functions still work.
	Blobs blob.Store
	// Dir holds the artifact cache (Dir/artifacts/<sha256>) and the
	// processes' sockets (Dir/run, mode 0700). It is created if missing and
	// may be shared by Hosts and survive restarts: cached artifacts are
	// verified before their first use by each Host. Required for artifact
	// functions; keep it short, as a socket path may not exceed 107 bytes.
	Dir string
	// Env is added to the environment of artifact processes, after the
	// worker's own environment and before ListenEnv (later entries win).
	// Default: none.
	Env []string
	// Logger receives lifecycle events and the processes' stdout and
	// stderr, line by line. Default: discard.
	Logger *slog.Logger
	// MaxRestartBackoff caps the delay before restarting a process that
	// exited: 100 ms, doubling per restart, reset once a process ran 30 s.
	// Default DefaultMaxRestartBackoff (5 s).
	MaxRestartBackoff time.Duration
	// StartTimeout bounds a process's start. Default DefaultStartTimeout
	// (30 s).
	StartTimeout time.Duration
	// TLSConfig is used for https:// URL functions. Default: the system's
	// roots, HTTP/2 negotiated by ALPN.
	TLSConfig *tls.Config
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c HostConfig) withDefaults() HostConfig {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxRestartBackoff == 0 {
		c.MaxRestartBackoff = DefaultMaxRestartBackoff
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	return c
}

// Validate rejects out-of-range values. Zero values are valid (they mean
// the default).
func (c HostConfig) Validate() error {
	var errs []error
	if c.MaxRestartBackoff < 0 {
		errs = append(errs, fmt.Errorf("function: config: MaxRestartBackoff %v is negative", c.MaxRestartBackoff))
	} else if c.MaxRestartBackoff != 0 && c.MaxRestartBackoff < minRestartBackoff {
		errs = append(errs, fmt.Errorf("function: config: MaxRestartBackoff %v is below the first restart delay %v", c.MaxRestartBackoff, minRestartBackoff))
	}
	if c.StartTimeout < 0 {
		errs = append(errs, fmt.Errorf("function: config: StartTimeout %v is negative", c.StartTimeout))
	}
	for _, kv := range c.Env {
		k, _, ok := strings.Cut(kv, "=")
		switch {
		case !ok || k == "":
			errs = append(errs, fmt.Errorf("function: config: Env entry %q is not KEY=value", kv))
		case k == ListenEnv:
			errs = append(errs, fmt.Errorf("function: config: Env may not set %s (the Host chooses the socket)", ListenEnv))
		}
	}
	return errors.Join(errs...)
}

// String prints the configuration. Env values are redacted: they may hold
// secrets.
func (c HostConfig) String() string {
	keys := make([]string, 0, len(c.Env))
	for _, kv := range c.Env {
		k, _, _ := strings.Cut(kv, "=")
		keys = append(keys, k+"=REDACTED")
	}
	return fmt.Sprintf("function.HostConfig{Blobs: %T, Dir: %q, Env: %v, MaxRestartBackoff: %v, StartTimeout: %v, TLSConfig: %t}",
		c.Blobs, c.Dir, keys, c.MaxRestartBackoff, c.StartTimeout, c.TLSConfig != nil)
}
