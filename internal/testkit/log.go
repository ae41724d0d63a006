package testkit

import (
	"io"
	"log/slog"
	"sync"
	"testing"
)

// Logger returns a logger that writes text records at level and above to
// t's output. Records written after t and its cleanups have finished are
// dropped rather than panicking, because components may log while they stop.
func Logger(t testing.TB, level slog.Level) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(Output(t), &slog.HandlerOptions{Level: level}))
}

// Output returns a writer to t's output that drops writes once t's cleanups
// have run (testing panics on writes after a test completes, and a
// component's last goroutine may still log while it stops). Register it
// before the component it serves, so that its cleanup runs after theirs.
func Output(t testing.TB) io.Writer {
	t.Helper()
	w := &cleanupWriter{w: t.Output()}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.mu.done = true
	})
	return w
}

type cleanupWriter struct {
	w  io.Writer
	mu struct {
		sync.Mutex
		done bool
	}
}

func (w *cleanupWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.done {
		return len(p), nil
	}
	return w.w.Write(p)
}
