package function_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/worker/function"
)

// alive reports whether pid is a live process (not yet reaped).
func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestOpenChecksDescribe(t *testing.T) {
	t.Parallel()
	st, fn := uploadEcho(t)
	h := newHost(t, st)

	// The match, and another function served by the same artifact: one
	// process for both.
	echo := open(t, h, fn)
	other := proto.Clone(fn).(*sabotv1.Function)
	other.Spec = &sabotv1.FunctionSpec{Name: "other"}
	oc := open(t, h, other)
	if echo.PID() == 0 || echo.PID() != oc.PID() {
		t.Fatalf("PIDs %d and %d: want one shared process", echo.PID(), oc.PID())
	}
	desc, err := echo.Describe(t.Context())
	if err != nil || desc.GetSdk() != "echofn/1" {
		t.Fatalf("Describe = %v, %v", desc, err)
	}

	for _, tc := range []struct {
		name   string
		change func(*sabotv1.FunctionSpec)
		want   string
	}{
		{"kind", func(s *sabotv1.FunctionSpec) { s.States[1].Kind = sabotv1.StateKind_STATE_KIND_MAP },
			`function "echo": state "items" is LIST in the process but MAP in the registration (redeploy it)`},
		{"ttl", func(s *sabotv1.FunctionSpec) { s.States[1].TtlMs = 0 },
			`function "echo": state "items" has ttl 1m0s in the process but no ttl in the registration (redeploy it)`},
		{"lazy", func(s *sabotv1.FunctionSpec) { s.States[1].Lazy = false },
			`function "echo": state "items" is lazy in the process but eager in the registration (redeploy it)`},
		{"missing state", func(s *sabotv1.FunctionSpec) { s.States = s.States[:1] },
			`function "echo": state "items" is declared in the process but absent in the registration (redeploy it)`},
		{"extra state", func(s *sabotv1.FunctionSpec) {
			s.States = append(s.States, &sabotv1.StateSpec{Name: "seen", Kind: sabotv1.StateKind_STATE_KIND_MAP})
		}, `function "echo": state "seen" is absent in the process but declared in the registration (redeploy it)`},
		{"output", func(s *sabotv1.FunctionSpec) { s.Outputs = []string{"alerts"} },
			`function "echo": output "alerts" is absent in the process but declared in the registration (redeploy it)` + "\n" +
				`function "echo": output "out" is declared in the process but absent in the registration (redeploy it)`},
		{"not served", func(s *sabotv1.FunctionSpec) { s.Name = "cart" },
			`function "cart": not served by the process (it serves "echo", "other"); redeploy it`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := proto.Clone(fn).(*sabotv1.Function)
			tc.change(bad.Spec)
			c, err := h.Open(t.Context(), bad)
			if err == nil {
				c.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, function.ErrSpecMismatch) || err.Error() != tc.want {
				t.Fatalf("Open = %v\nwant %s", err, tc.want)
			}
		})
	}
	// The refused Opens released their references: the process still
	// serves the two good Conns.
	if echo.PID() != oc.PID() || !alive(echo.PID()) {
		t.Fatalf("process %d gone after refused Opens", echo.PID())
	}
}

func TestCallRoundTrip(t *testing.T) {
	t.Parallel()
	st, fn := uploadEcho(t)
	var logs logBuffer
	h := newHostConfig(t, function.HostConfig{Blobs: st, Logger: testLogger(t, &logs)})
	c := open(t, h, fn)
	s := session(t, c)

	var reads []*sabotv1.StateRead
	read := func(r *sabotv1.StateRead) *sabotv1.StateReadResult {
		// Runs on the caller's goroutine: plain appends, checked by -race.
		reads = append(reads, r)
		return &sabotv1.StateReadResult{Found: true, Items: [][]byte{[]byte("x"), []byte("y")}}
	}
	call := &sabotv1.Call{Id: 1, Invocations: []*sabotv1.Invocation{
		messages("a", "5", "hello", "read"),
		messages("b", "", "bye"),
	}}
	res, err := s.Call(callCtx(t), call, read)
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if res.GetId() != 1 || len(res.GetResults()) != 2 {
		t.Fatalf("result %v", res)
	}
	if got, want := replies(res.GetResults()[0]), []string{"hello", "items:x,y"}; !slices.Equal(got, want) {
		t.Errorf("replies of a = %q, want %q", got, want)
	}
	if got := countSet(res.GetResults()[0]); got != "7" {
		t.Errorf("count of a set to %s, want 7 (5 + 2 messages)", got)
	}
	if got, want := replies(res.GetResults()[1]), []string{"bye"}; !slices.Equal(got, want) {
		t.Errorf("replies of b = %q, want %q", got, want)
	}
	if got := countSet(res.GetResults()[1]); got != "1" {
		t.Errorf("count of b set to %s, want 1", got)
	}
	if len(reads) != 1 {
		t.Fatalf("read called %d times, want 1", len(reads))
	}
	r := reads[0]
	if r.GetCallId() != 1 || string(r.GetKey()) != "a" || r.GetState() != "items" || r.GetPage().GetLimit() != 10 {
		t.Errorf("state read %v", r)
	}

	// The session carries on; a read without a reader gets an error the
	// function sees.
	res, err = s.Call(callCtx(t), &sabotv1.Call{Id: 2, Invocations: []*sabotv1.Invocation{messages("a", "7", "read")}}, nil)
	if err != nil {
		t.Fatalf("second Call: %v", err)
	}
	if got := replies(res.GetResults()[0]); len(got) != 1 || !strings.HasPrefix(got[0], "error:") {
		t.Errorf("read without a reader replied %q, want an error", got)
	}

	// The process's stdout reaches the logger line by line.
	eventually(t, 5*time.Second, func() error {
		if !strings.Contains(logs.String(), "echofn: call 2 with 1 invocations") {
			return errors.New("stdout line not logged")
		}
		return nil
	})
}

func TestKillMidCall(t *testing.T) {
	t.Parallel()
	st, fn := uploadEcho(t)
	h := newHost(t, st)
	c := open(t, h, fn)
	s := session(t, c)
	pid := c.PID()

	// Kill the process while it waits for the answer to its state read:
	// the call is in flight for sure.
	read := func(*sabotv1.StateRead) *sabotv1.StateReadResult {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Errorf("kill: %v", err)
		}
		return &sabotv1.StateReadResult{}
	}
	_, err := s.Call(callCtx(t), &sabotv1.Call{Id: 1, Invocations: []*sabotv1.Invocation{messages("a", "", "read")}}, read)
	if !errors.Is(err, function.ErrProcessExited) {
		t.Fatalf("Call = %v, want ErrProcessExited", err)
	}
	var exit *function.ExitError
	if !errors.As(err, &exit) || exit.PID != pid || exit.Status != "signal: killed" {
		t.Fatalf("exit error %+v, want pid %d killed", exit, pid)
	}

	// The session is broken and says why, at once.
	_, err = s.Call(callCtx(t), &sabotv1.Call{Id: 2, Invocations: []*sabotv1.Invocation{messages("a", "", "x")}}, nil)
	if !errors.Is(err, function.ErrSessionBroken) || !errors.Is(err, function.ErrProcessExited) {
		t.Fatalf("Call on broken session = %v", err)
	}

	// A new Session waits for the restarted process.
	s2 := session(t, c)
	res, err := s2.Call(callCtx(t), &sabotv1.Call{Id: 3, Invocations: []*sabotv1.Invocation{messages("a", "1", "again")}}, nil)
	if err != nil {
		t.Fatalf("Call after restart: %v", err)
	}
	if got := replies(res.GetResults()[0]); !slices.Equal(got, []string{"again"}) {
		t.Errorf("replies %q", got)
	}
	if c.PID() == 0 || c.PID() == pid {
		t.Errorf("PID after restart = %d, want a new process (old %d)", c.PID(), pid)
	}
}

func TestCrashRestarts(t *testing.T) {
	t.Parallel()
	st, fn := uploadEcho(t)
	h := newHost(t, st, "ECHOFN_CRASH_ON=crash")
	c := open(t, h, fn)

	// Two crashes in a row: the second restart comes after a longer
	// backoff, and each new Session reaches a new process.
	pids := []int{c.PID()}
	for i := range 2 {
		s := session(t, c)
		_, err := s.Call(callCtx(t), &sabotv1.Call{Id: 1, Invocations: []*sabotv1.Invocation{messages("k", "", "ok", "crash")}}, nil)
		var exit *function.ExitError
		if !errors.As(err, &exit) || exit.Status != "exit status 3" {
			t.Fatalf("crash %d: Call = %v, want exit status 3", i, err)
		}
		if !slices.Contains(exit.Stderr, "echofn: crashing on crash") {
			t.Errorf("stderr tail %q lacks the process's last words", exit.Stderr)
		}
		contains(t, err, `function "echo": call 1:`, "exited: exit status 3", "last stderr: echofn: crashing on crash")

		s2 := session(t, c)
		if _, err := s2.Call(callCtx(t), &sabotv1.Call{Id: 2, Invocations: []*sabotv1.Invocation{messages("k", "", "ok")}}, nil); err != nil {
			t.Fatalf("Call after restart %d: %v", i, err)
		}
		if slices.Contains(pids, c.PID()) {
			t.Fatalf("PID %d after restart %d was seen before (%v)", c.PID(), i, pids)
		}
		pids = append(pids, c.PID())
	}
}

func TestCallTimeout(t *testing.T) {
	t.Parallel()
	st, fn := uploadEcho(t)
	h := newHost(t, st, "ECHOFN_SLEEP_ON=sleep")
	c := open(t, h, fn)
	s := session(t, c)

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := s.Call(ctx, &sabotv1.Call{Id: 1, Invocations: []*sabotv1.Invocation{messages("k", "", "sleep")}}, nil)
	if !errors.Is(err, function.ErrCallTimeout) {
		t.Fatalf("Call = %v, want ErrCallTimeout", err)
	}
	contains(t, err, `function "echo": call 1: no result before the deadline`)

	start := time.Now()
	_, err = s.Call(callCtx(t), &sabotv1.Call{Id: 2, Invocations: []*sabotv1.Invocation{messages("k", "", "x")}}, nil)
	if !errors.Is(err, function.ErrSessionBroken) || !errors.Is(err, function.ErrCallTimeout) {
		t.Fatalf("Call on broken session = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Call on a broken session took %v, want it to fail fast", d)
	}

	// The process is fine: a new Session on it works.
	pid := c.PID()
	s2 := session(t, c)
	if _, err := s2.Call(callCtx(t), &sabotv1.Call{Id: 3, Invocations: []*sabotv1.Invocation{messages("k", "", "x")}}, nil); err != nil {
		t.Fatalf("Call on new session: %v", err)
	}
	if c.PID() != pid {
		t.Errorf("PID changed from %d to %d: a timeout must not restart the process", pid, c.PID())
	}
}

func TestStartFailure(t *testing.T) {
	t.Parallel()
	st, fn := uploadEcho(t)
	h := newHost(t, st, "ECHOFN_FAIL_START=boom: bad config")
	_, err := h.Open(t.Context(), fn)
	if !errors.Is(err, function.ErrProcessExited) {
		t.Fatalf("Open = %v, want ErrProcessExited", err)
	}
	contains(t, err, "exit status 2", "last stderr: boom: bad config")
	// The failure is not cached: the next Open tries again (and fails the
	// same way here).
	_, err = h.Open(t.Context(), fn)
	contains(t, err, "boom: bad config")
}

func TestArtifactMismatch(t *testing.T) {
	t.Parallel()
	sum, size := fileSum(t, echofnPath)
	st, err := blob.OpenFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	// echofn stored under the key of other content.
	wrong := strings.Repeat("ab", 32)
	if err := st.PutFile(t.Context(), function.ArtifactKey(wrong), echofnPath); err != nil {
		t.Fatal(err)
	}
	if err := st.PutFile(t.Context(), function.ArtifactKey(sum), echofnPath); err != nil {
		t.Fatal(err)
	}
	h := newHost(t, st)
	artifact := func(sum string, size int64) *sabotv1.Function {
		return &sabotv1.Function{Spec: echoSpec(), Source: &sabotv1.Function_Artifact{Artifact: &sabotv1.Artifact{Sha256: sum, Size: size}}}
	}

	for _, tc := range []struct {
		name string
		fn   *sabotv1.Function
		is   error
		want []string
	}{
		{"hash", artifact(wrong, size), function.ErrArtifactMismatch,
			[]string{"want sha256 " + wrong, fmt.Sprintf("got sha256 %s and %d bytes", sum, size)}},
		{"size smaller", artifact(sum, size-1), function.ErrArtifactMismatch,
			[]string{fmt.Sprintf("want %d bytes, got more", size-1)}},
		{"size larger", artifact(sum, size+1), function.ErrArtifactMismatch,
			[]string{fmt.Sprintf("and %d bytes, got sha256 %s and %d bytes", size+1, sum, size)}},
		{"missing", artifact(strings.Repeat("cd", 32), size), blob.ErrNotFound,
			[]string{"fetch artifact cdcdcdcdcdcd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.Open(t.Context(), tc.fn)
			if !errors.Is(err, tc.is) {
				t.Fatalf("Open = %v, want %v", err, tc.is)
			}
			contains(t, err, tc.want...)
		})
	}
	// Nothing bad was cached.
	if _, err := os.Stat(filepath.Join(t.TempDir(), "artifacts", wrong)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bad artifact cached: %v", err)
	}
}

func TestCachedArtifactReverified(t *testing.T) {
	t.Parallel()
	st, fn := uploadEcho(t)
	dir := t.TempDir()
	cached := filepath.Join(dir, "artifacts", fn.GetArtifact().GetSha256())
	if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
		t.Fatal(err)
	}
	// A damaged cache entry, as a crash mid-write by another worker could
	// leave: verified on first use, replaced from the store.
	if err := os.WriteFile(cached, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := newHostConfig(t, function.HostConfig{Blobs: st, Dir: dir})
	c := open(t, h, fn)
	if _, err := c.Describe(t.Context()); err != nil {
		t.Fatal(err)
	}
	gotSum, _ := fileSum(t, cached)
	fi, err := os.Stat(cached)
	if err != nil || gotSum != fn.GetArtifact().GetSha256() || fi.Mode().Perm() != 0o755 {
		t.Fatalf("cached file: sum %s mode %v err %v", gotSum, fi.Mode(), err)
	}

	// A second Host on the same Dir uses the cached file without a store.
	h2 := newHostConfig(t, function.HostConfig{Dir: dir})
	open(t, h2, fn)
}

func TestProcessLifetime(t *testing.T) {
	t.Parallel()
	st, fn := uploadEcho(t)
	h := function.NewHost(function.HostConfig{Blobs: st, Dir: t.TempDir(), Logger: testLogger(t, nil)})
	defer h.Close()

	a, err := h.Open(t.Context(), fn)
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Open(t.Context(), fn)
	if err != nil {
		t.Fatal(err)
	}
	pid := a.PID()
	if b.PID() != pid {
		t.Fatalf("PIDs %d, %d: want one process per artifact", pid, b.PID())
	}
	a.Close()
	a.Close() // idempotent
	if !alive(pid) || b.PID() != pid {
		t.Fatalf("process %d stopped while a Conn still uses it", pid)
	}
	if _, err := a.Session(t.Context()); !errors.Is(err, function.ErrClosed) {
		t.Errorf("Session on closed Conn = %v, want ErrClosed", err)
	}
	// The last Conn stops the process.
	b.Close()
	eventually(t, 10*time.Second, func() error {
		if alive(pid) {
			return fmt.Errorf("process %d still running after its last Conn closed", pid)
		}
		return nil
	})

	// A new Open starts a new process; Host.Close stops it and cuts its
	// sessions short.
	c, err := h.Open(t.Context(), fn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pid = c.PID()
	s, err := c.Session(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h.Close()
	if alive(pid) {
		t.Errorf("process %d still running after Host.Close", pid)
	}
	if _, err := s.Call(callCtx(t), &sabotv1.Call{Id: 1, Invocations: []*sabotv1.Invocation{messages("k", "", "x")}}, nil); !errors.Is(err, function.ErrClosed) {
		t.Errorf("Call after Host.Close = %v, want ErrClosed", err)
	}
	if _, err := h.Open(t.Context(), fn); !errors.Is(err, function.ErrClosed) {
		t.Errorf("Open after Close = %v, want ErrClosed", err)
	}
	entries, _ := filepath.Glob(filepath.Join(t.TempDir(), "run", "*.sock"))
	if len(entries) != 0 {
		t.Errorf("sockets left: %v", entries)
	}
}

func TestOpenRejects(t *testing.T) {
	t.Parallel()
	artifact := &sabotv1.Function{Spec: echoSpec(), Source: &sabotv1.Function_Artifact{Artifact: &sabotv1.Artifact{Sha256: strings.Repeat("ab", 32), Size: 10}}}
	for _, tc := range []struct {
		name string
		cfg  function.HostConfig
		fn   *sabotv1.Function
		want string
	}{
		{"no blob store", function.HostConfig{Dir: t.TempDir()}, artifact, "the host has no blob store"},
		{"no dir", function.HostConfig{}, artifact, "artifact functions need HostConfig.Dir"},
		{"bad hash", function.HostConfig{Dir: t.TempDir()},
			&sabotv1.Function{Spec: echoSpec(), Source: &sabotv1.Function_Artifact{Artifact: &sabotv1.Artifact{Sha256: "../../etc/passwd", Size: 10}}},
			"is not 64 hex digits"},
		{"no source", function.HostConfig{}, &sabotv1.Function{Spec: echoSpec()}, "neither an artifact nor a url"},
		{"no spec", function.HostConfig{}, &sabotv1.Function{}, "registration has no spec"},
		{"bad scheme", function.HostConfig{},
			&sabotv1.Function{Spec: echoSpec(), Source: &sabotv1.Function_Url{Url: "ftp://x"}}, "scheme must be http or https"},
		{"bad config", function.HostConfig{MaxRestartBackoff: -1, Env: []string{"SABOT_FUNCTION_LISTEN=x"}}, artifact,
			"MaxRestartBackoff -1ns is negative\nfunction: config: Env may not set SABOT_FUNCTION_LISTEN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.cfg.Logger = testLogger(t, nil)
			h := function.NewHost(tc.cfg)
			defer h.Close()
			_, err := h.Open(t.Context(), tc.fn)
			contains(t, err, tc.want)
		})
	}
}

func TestSharedDir(t *testing.T) {
	t.Parallel()
	st, fn := uploadEcho(t)
	dir := t.TempDir()
	sum := fn.GetArtifact().GetSha256()
	runDir := filepath.Join(dir, "run")
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A stale socket where the first process's would go, as a killed
	// worker leaves it: nobody listens on it.
	stale := filepath.Join(runDir, sum[:12]+"-1.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}

	// Two Hosts on one Dir: the second skips the first's live socket.
	h1 := newHostConfig(t, function.HostConfig{Blobs: st, Dir: dir})
	h2 := newHostConfig(t, function.HostConfig{Blobs: st, Dir: dir})
	c1 := open(t, h1, fn)
	c2 := open(t, h2, fn)
	if c1.PID() == c2.PID() {
		t.Fatalf("two Hosts share process %d", c1.PID())
	}
	for i, c := range []*function.Conn{c1, c2} {
		s := session(t, c)
		if _, err := s.Call(callCtx(t), &sabotv1.Call{Id: 1, Invocations: []*sabotv1.Invocation{messages("k", "", "x")}}, nil); err != nil {
			t.Errorf("host %d: Call: %v", i+1, err)
		}
	}
}

func TestStartTimeout(t *testing.T) {
	t.Parallel()
	st, fn := uploadEcho(t)
	h := newHostConfig(t, function.HostConfig{Blobs: st, Env: []string{"ECHOFN_HANG_START=1"}, StartTimeout: 300 * time.Millisecond})
	_, err := h.Open(t.Context(), fn)
	contains(t, err, "not ready within 300ms", "last stderr: echofn: hanging before listening")
}

func TestProcessSpecChanged(t *testing.T) {
	t.Parallel()
	// A new build of the program declares "items" as a map; the
	// registration still says list.
	st, fn := uploadEcho(t)
	h := newHost(t, st, `ECHOFN_SPEC={"functions":[{"name":"echo","states":[`+
		`{"name":"count","kind":"STATE_KIND_VALUE"},{"name":"items","kind":"STATE_KIND_MAP","ttlMs":"60000","lazy":true}],`+
		`"outputs":["out"]}]}`)
	_, err := h.Open(t.Context(), fn)
	want := `function "echo": state "items" is MAP in the process but LIST in the registration (redeploy it)`
	if !errors.Is(err, function.ErrSpecMismatch) || err.Error() != want {
		t.Fatalf("Open = %v\nwant %s", err, want)
	}
}

// TestDeepDir: a Dir too deep for unix socket paths gets its sockets in a
// short directory of its own, and the function runs.
func TestDeepDir(t *testing.T) {
	t.Parallel()
	st, fn := uploadEcho(t)
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	h := newHostConfig(t, function.HostConfig{Blobs: st, Dir: dir})
	c := open(t, h, fn)
	if c.PID() == 0 {
		t.Fatal("no process")
	}
	if _, err := c.Describe(t.Context()); err != nil {
		t.Fatal(err)
	}
}
