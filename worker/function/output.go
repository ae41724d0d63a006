package function

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
)

// lineWriter forwards a process's stdout or stderr to the logger, one
// record per line. A line longer than maxLogLine is logged cut, with
// truncated=true, and the rest of it is dropped: a process cannot make the
// worker buffer without bound. Write is called by one goroutine (the copy
// goroutine os/exec starts per stream); flush is called after Wait, when
// that goroutine has ended. The stderr writer also keeps the last lines
// for ExitError, read under tail.mu from other goroutines.
type lineWriter struct {
	log      *slog.Logger
	buf      []byte
	dropping bool // inside a line already cut at maxLogLine
	tail     *tail
}

func newLineWriter(log *slog.Logger, t *tail) *lineWriter {
	return &lineWriter{log: log, tail: t}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !w.dropping {
			room := maxLogLine - len(w.buf)
			if len(chunk) > room {
				w.buf = append(w.buf, chunk[:room]...)
				w.emit(true)
				w.dropping = true
			} else {
				w.buf = append(w.buf, chunk...)
			}
		}
		if i < 0 {
			break
		}
		if !w.dropping {
			w.emit(false)
		}
		w.dropping = false
		p = p[i+1:]
	}
	return n, nil
}

// flush logs a last line that had no newline.
func (w *lineWriter) flush() {
	if len(w.buf) > 0 && !w.dropping {
		w.emit(false)
	}
	w.dropping = false
}

func (w *lineWriter) emit(truncated bool) {
	line := string(bytes.TrimSuffix(w.buf, []byte("\r")))
	w.buf = w.buf[:0]
	if truncated {
		w.log.LogAttrs(context.Background(), slog.LevelInfo, line, slog.Bool("truncated", true))
	} else {
		w.log.LogAttrs(context.Background(), slog.LevelInfo, line)
	}
	if w.tail != nil {
		w.tail.add(line)
	}
}

// tail keeps the last stderrTailLines lines of a stream.
type tail struct {
	mu struct {
		sync.Mutex
		lines []string
	}
}

func (t *tail) add(line string) {
	if len(line) > stderrTailLineLen {
		line = line[:stderrTailLineLen] + "…"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.mu.lines) == stderrTailLines {
		copy(t.mu.lines, t.mu.lines[1:])
		t.mu.lines = t.mu.lines[:stderrTailLines-1]
	}
	t.mu.lines = append(t.mu.lines, line)
}

func (t *tail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.mu.lines...)
}
