// Package function is the worker's side of the function protocol
// (sabot.v1.FunctionProcessService): it runs user function processes, talks
// to them, and supervises them. worker/runtime uses it through an
// interface; this package does not import the runtime, and it does not
// import sdk/go (processes are separate programs, of any language).
//
// # What it owns
//
// A Host owns, for one worker: the artifact cache (Dir/artifacts), the
// processes started from it and their sockets (Dir/run), and the HTTP/2
// clients of URL functions. Host.Open returns a Conn to one registered
// function; Conn.Session opens a Session, the bidi stream a subtask sends
// its Calls on.
//
//	h := function.NewHost(function.HostConfig{Blobs: store, Dir: "/var/lib/sabot/functions", Logger: log})
//	defer h.Close()
//	c, err := h.Open(ctx, registration) // fetch, verify, start, Describe, CheckSpec
//	defer c.Close()
//	s, err := c.Session(ctx)
//	defer s.Close()
//	callCtx, cancel := context.WithTimeout(ctx, 10*time.Second) // FunctionLimits.call_timeout_ms
//	res, err := s.Call(callCtx, call, func(r *sabotv1.StateRead) *sabotv1.StateReadResult {
//		return task.readLazyState(r) // runs on this goroutine, which owns the state
//	})
//	switch {
//	case errors.Is(err, function.ErrProcessExited), errors.Is(err, function.ErrCallTimeout):
//		// open a new Session and replay the call (its effects were not applied)
//	case errors.Is(err, function.ErrProtocol), errors.Is(err, function.ErrSpecMismatch):
//		// the function program is wrong: fail the job
//	}
//
// # Decisions
//
//   - Protocol: connect-go clients speaking gRPC (connect.WithGRPC), which
//     connect handlers (sdk/go) and any gRPC server understand, over HTTP/2
//     without TLS (h2c) for http:// URLs and for artifact processes' unix
//     sockets, over TLS with HTTP/2 for https:// URLs
//     (HostConfig.TLSConfig). Responses on unix sockets are not
//     compressed. URL connections are pinged when idle (15 s) so that a
//     vanished peer fails its sessions.
//   - One process per artifact per Host, shared by every Conn for it (one
//     artifact may serve several functions), reference-counted: the last
//     Conn.Close stops it at once (SIGTERM; SIGKILL 5 s later) without
//     waiting; Host.Close waits. A job restart therefore restarts its
//     processes; a Go function process starts in milliseconds, and not
//     keeping idle processes keeps the accounting simple.
//   - Open waits until the process is ready: the first start of a process
//     is shared by the Opens waiting for it and is not tied to any one of
//     their contexts (it ends only when all of them gave up). A failed
//     first start fails those Opens and is not retried; the next Open
//     starts afresh. A process that was ready once is restarted whenever
//     it exits, with a backoff of 100 ms doubling to MaxRestartBackoff
//     (5 s), reset once a run lasted 30 s, for as long as a Conn uses it.
//   - Describe is called once per run (at readiness); every Open checks
//     its registration against the last answer (CheckSpec). A restarted
//     process runs the same content-addressed executable and is not
//     checked again.
//   - Artifacts are fetched on first need from the blob store
//     (ArtifactKey), checked against the registered SHA-256 and size, and
//     written to Dir/artifacts/<sha256> (0755) through a temporary file and
//     a rename. A cached file is re-hashed on its first use by each Host
//     (not on every start); a bad one is fetched again.
//   - One Call at a time per Session. Call does the receive loop itself on
//     the caller's goroutine, so the read callback for lazy state runs
//     there: the task goroutine that owns the keyed state answers reads
//     without locks, and no goroutine per Session exists. Concurrency
//     comes from several Sessions.
//   - Any failed Call breaks its Session (ErrSessionBroken afterwards): a
//     late answer could otherwise be taken for the next call's. Opening a
//     Session is cheap (the stream starts with the first Call).
//   - Session's ctx bounds only the wait for a restarting process; the
//     Session lives until closed (itself, its Conn, the Host) or until its
//     process exits. Call's deadline is its ctx's; Call sets none of its
//     own (FunctionLimits.call_timeout_ms is the caller's to apply).
//
// # Process environment contract
//
// An artifact is executed with no arguments, the worker's working
// directory and environment, then HostConfig.Env, then
// SABOT_FUNCTION_LISTEN=unix://<Dir>/run/<sha256[:12]>-<n>.sock (ListenEnv;
// n counts the Host's starts, so a restart never reuses a path). The
// process must create that socket and serve FunctionProcessService on it
// over h2c, answer Describe once serving, and exit on SIGTERM (it gets
// SIGKILL 5 s later). Stdin is /dev/null; stdout and stderr are logged
// line by line (lines cut at 4 KiB), and the last stderr lines go into
// the ExitError of a crash. On Linux the process gets SIGKILL when the
// worker dies (PR_SET_PDEATHSIG), so no orphan outlives a killed worker.
//
// # Lifecycle of a process
//
//	fetch ──► starting ──ready──► running ──exit──► backoff ──► starting …
//	  │           │                  │
//	  └─fail──────┴─fail (first)──► failed: the waiting Opens fail; removed
//	any state ──last Conn closed / Host closed──► stopping (SIGTERM, SIGKILL after 5 s) ──► stopped
//
// While a process is in backoff or starting, Conn.Session and
// Conn.Describe wait for it (bounded by their ctx); Sessions on the dead
// run fail their Calls with an *ExitError (ErrProcessExited).
//
// # Concurrency
//
// Host and Conn are safe for concurrent use; a Session is used by one
// goroutine (its Close may come from another and aborts a running Call).
// Goroutines, all in the Host's group (internal/group) and all ended by
// Host.Close: one supervisor per process and one exit waiter per run.
// Besides those, os/exec runs its copy goroutines per run (ended by Wait)
// and net/http and connect-go run theirs per connection and stream (ended
// by the stream's and transport's close). Locks (Host.mu, process.mu,
// Session.mu) are never nested, and none is held across I/O, a send or a
// callback.
package function
