package function

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestLineWriter(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == slog.LevelKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	tl := &tail{}
	w := newLineWriter(log, tl)
	long := strings.Repeat("x", maxLogLine+100)
	// Lines split across writes, a CRLF line, an over-long line whose rest
	// is dropped, and a last line without a newline.
	for _, p := range []string{"hel", "lo\nwor", "ld\r\n", long, "\n", "after\nlast"} {
		if n, err := w.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	w.flush()
	want := "msg=hello\nmsg=world\nmsg=" + strings.Repeat("x", maxLogLine) + " truncated=true\nmsg=after\nmsg=last\n"
	if out.String() != want {
		t.Errorf("logged\n%.200s\nwant\n%.200s", out.String(), want)
	}
	lines := tl.lines()
	if len(lines) != 5 || lines[0] != "hello" || lines[4] != "last" || len(lines[2]) != stderrTailLineLen+len("…") {
		t.Errorf("tail %.100q", lines)
	}
	for i := range 2 * stderrTailLines {
		tl.add(strings.Repeat("y", i))
	}
	if got := tl.lines(); len(got) != stderrTailLines || got[stderrTailLines-1] != strings.Repeat("y", 2*stderrTailLines-1) {
		t.Errorf("tail keeps %d lines, last %q", len(got), got[len(got)-1])
	}
}
