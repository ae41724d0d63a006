package function_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/worker/function"
)

// echoSpec is the registration matching echofn's function "echo".
func echoSpec() *sabotv1.FunctionSpec {
	return &sabotv1.FunctionSpec{
		Name: "echo",
		States: []*sabotv1.StateSpec{
			{Name: "count", Kind: sabotv1.StateKind_STATE_KIND_VALUE},
			{Name: "items", Kind: sabotv1.StateKind_STATE_KIND_LIST, TtlMs: 60000, Lazy: true},
		},
		Outputs: []string{"out"},
	}
}

// fileSum returns the hex SHA-256 and size of a file.
func fileSum(t testing.TB, path string) (string, int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), int64(len(b))
}

// uploadEcho stores echofn in a new file blob store under its ArtifactKey
// and returns the store and a registration of "echo" running it.
func uploadEcho(t testing.TB) (*blob.FileStore, *sabotv1.Function) {
	t.Helper()
	st, err := blob.OpenFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	sum, size := fileSum(t, echofnPath)
	if err := st.PutFile(t.Context(), function.ArtifactKey(sum), echofnPath); err != nil {
		t.Fatal(err)
	}
	return st, &sabotv1.Function{
		Spec:   echoSpec(),
		Source: &sabotv1.Function_Artifact{Artifact: &sabotv1.Artifact{Sha256: sum, Size: size}},
	}
}

// newHost returns a Host over st (may be nil) in a temp dir, closed by
// t.Cleanup, with children's environment extended by env.
func newHost(t testing.TB, st blob.Store, env ...string) *function.Host {
	t.Helper()
	return newHostConfig(t, function.HostConfig{Blobs: st, Env: env})
}

func newHostConfig(t testing.TB, cfg function.HostConfig) *function.Host {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t, nil)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	h := function.NewHost(cfg)
	t.Cleanup(h.Close)
	return h
}

// open opens fn and registers its Close.
func open(t testing.TB, h *function.Host, fn *sabotv1.Function) *function.Conn {
	t.Helper()
	c, err := h.Open(t.Context(), fn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// session opens a Session and registers its Close.
func session(t testing.TB, c *function.Conn) *function.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := c.Session(ctx)
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// messages builds an invocation of "echo" for key with one message per
// payload (reply ids "r0", "r1", …) and the eager state count.
func messages(key string, count string, payloads ...string) *sabotv1.Invocation {
	inv := &sabotv1.Invocation{Function: "echo", Key: []byte(key)}
	for i, p := range payloads {
		inv.Events = append(inv.Events, &sabotv1.Event{Kind: &sabotv1.Event_Message{Message: &sabotv1.Message{
			Payload: []byte(p), ReplyId: "r" + string(rune('0'+i)),
		}}})
	}
	if count != "" {
		inv.State = append(inv.State, &sabotv1.StateValue{State: "count", Value: &sabotv1.StateValue_Bytes{Bytes: []byte(count)}})
	}
	return inv
}

// callCtx is a context for one Call with a generous deadline.
func callCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// replies returns the reply payloads of one invocation result.
func replies(r *sabotv1.InvocationResult) []string {
	var out []string
	for _, rp := range r.GetReplies() {
		out = append(out, string(rp.GetPayload()))
	}
	return out
}

// countSet returns the value the result sets state "count" to.
func countSet(r *sabotv1.InvocationResult) string {
	for _, m := range r.GetMutations() {
		if m.GetState() == "count" {
			return string(m.GetSet())
		}
	}
	return "<unset>"
}

// eventually polls cond until it returns nil or timeout passes: waiting
// for an asynchronous effect, never a pause standing in for an assertion.
// (internal/testkit has the same helper; it is not imported because it
// pulls in the whole platform.)
func eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(interval)
		interval = min(2*interval, 50*time.Millisecond)
	}
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger logs to t's output (dropped once t's cleanups ran, as the
// Host logs while it stops) and to extra, if not nil.
func testLogger(t testing.TB, extra io.Writer) *slog.Logger {
	w := &cleanupWriter{w: t.Output()}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	var out io.Writer = w
	if extra != nil {
		out = io.MultiWriter(w, extra)
	}
	return slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type cleanupWriter struct {
	mu   sync.Mutex
	w    io.Writer
	done bool
}

func (w *cleanupWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	return w.w.Write(p)
}

// serveH2C serves handler over h2c on a loopback port until the test
// ends, and returns its base URL.
func serveH2C(t testing.TB, handler sabotv1connect.FunctionProcessServiceHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(sabotv1connect.NewFunctionProcessServiceHandler(handler))
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: p}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// contains fails t unless err's message contains every part.
func contains(t testing.TB, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}
