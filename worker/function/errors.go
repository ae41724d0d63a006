package function

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors. Callers act on them with errors.Is; the messages of the
// errors that wrap them say what happened to which function or process.
var (
	// ErrProcessExited is wrapped (through *ExitError) by every error caused
	// by a function process that exited: a Call whose process died, an Open
	// whose process exited before it was ready, a Session waiting for a
	// process that keeps crashing. The Host restarts the process; the
	// caller opens a new Session and replays the call.
	ErrProcessExited = errors.New("function: process exited")

	// ErrCallTimeout is wrapped by the error of a Call whose context reached
	// its deadline before the result arrived. The Session is broken: the
	// process may still be working on the call, and a late answer would be
	// taken for the next call's.
	ErrCallTimeout = errors.New("function: call timed out")

	// ErrProtocol is wrapped by the error of a Call the process answered
	// wrongly: a result for another call, a result count that differs from
	// the invocation count, a state read for a call not running, an empty
	// message, or a session ended without a result. The message names what
	// was wrong. The Session is broken; retrying against the same program
	// will likely fail the same way.
	ErrProtocol = errors.New("function: protocol violation")

	// ErrSessionBroken is wrapped by the error of a Call on a Session that
	// an earlier Call broke (timeout, process exit, protocol violation,
	// transport error). The error also wraps that earlier error. Open a
	// new Session.
	ErrSessionBroken = errors.New("function: session broken by an earlier error")

	// ErrSpecMismatch is wrapped (through *SpecError) when a process's
	// Describe does not match the function's registration: the function
	// must be redeployed, retrying does not help.
	ErrSpecMismatch = errors.New("function: spec mismatch")

	// ErrArtifactMismatch is wrapped when an artifact's content does not
	// have the SHA-256 or size the registration names. The stored artifact
	// is wrong; retrying does not help.
	ErrArtifactMismatch = errors.New("function: artifact content mismatch")

	// ErrClosed is wrapped by operations on a closed Host, Conn or Session,
	// and by Calls cut short because one of them was closed.
	ErrClosed = errors.New("function: closed")
)

// ExitError describes the exit of a function process. It wraps
// ErrProcessExited.
type ExitError struct {
	// SHA256 is the artifact's hash.
	SHA256 string
	// PID is the process's id.
	PID int
	// Status is how it ended, as os.ProcessState prints it ("exit status
	// 3", "signal: killed").
	Status string
	// Ran is how long it ran.
	Ran time.Duration
	// Stderr holds its last lines of standard error (at most
	// stderrTailLines, each cut to stderrTailLineLen bytes).
	Stderr []string
}

func (e *ExitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "function: process %s (pid %d) exited: %s", shortSum(e.SHA256), e.PID, e.Status)
	if len(e.Stderr) > 0 {
		b.WriteString("; last stderr: ")
		b.WriteString(strings.Join(e.Stderr, " | "))
	}
	return b.String()
}

// Unwrap returns ErrProcessExited.
func (e *ExitError) Unwrap() error { return ErrProcessExited }

// SpecError is one difference between a function's registration and what
// its process describes. It wraps ErrSpecMismatch.
type SpecError struct {
	// Function is the function's name.
	Function string
	// Subject is what differs: `state "items"`, `output "alerts"`, or ""
	// when the process does not serve the function at all.
	Subject string
	// Property is the property of Subject that differs: "kind", "ttl",
	// "lazy" or "presence" (declared on one side only); "" with an empty
	// Subject.
	Property string
	// Process and Registered are the two sides' values, as printed:
	// "LIST", "ttl 1m0s", "lazy", "declared", "absent". With an empty
	// Subject, Process lists the functions the process serves.
	Process, Registered string
}

func (e *SpecError) Error() string {
	if e.Subject == "" {
		return fmt.Sprintf("function %q: not served by the process (it serves %s); redeploy it", e.Function, e.Process)
	}
	verb := "is"
	if e.Property == "ttl" {
		verb = "has"
	}
	return fmt.Sprintf("function %q: %s %s %s in the process but %s in the registration (redeploy it)",
		e.Function, e.Subject, verb, e.Process, e.Registered)
}

// Unwrap returns ErrSpecMismatch.
func (e *SpecError) Unwrap() error { return ErrSpecMismatch }

// protocolErrorf returns an error wrapping ErrProtocol.
func protocolErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

// shortSum is the 12-character prefix of an artifact hash used in logs,
// errors and socket names.
func shortSum(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}
