package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/sabotdev/sabot/worker/connector/jsonrow"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/sabotdev/sabot/internal/jobgraph"
)

// printer is the destination print sinks share: Config.PrintOut, or the
// logger. Its lock serializes whole batches of lines so lines of different
// subtasks never interleave mid-line; it is held across the Write on
// purpose (it exists to serialize that writer), and nothing else is done
// under it.
type printer struct {
	w      io.Writer
	logger *slog.Logger
	mu     sync.Mutex
}

func (p *printer) writeLines(ctx context.Context, lines []byte) error {
	if p.w == nil {
		for len(lines) > 0 {
			line, rest, _ := bytes.Cut(lines, []byte{'\n'})
			p.logger.LogAttrs(ctx, slog.LevelInfo, string(line))
			lines = rest
		}
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.w.Write(lines)
	return err
}

// printSink writes each row as `<prefix>> [<subtask>] <json>` (or
// `[<subtask>] <json>` without a prefix); subtasks count from 0. One
// Write per batch.
type printSink struct {
	baseOperator
	p      *printer
	prefix []byte
	enc    *jsonrow.Encoder
	buf    []byte
}

func newPrintSink(prefix string, v *jobgraph.Vertex, info TaskInfo, e *env) *printSink {
	var pre []byte
	if prefix != "" {
		pre = append([]byte(prefix), "> "...)
	}
	pre = append(pre, '[')
	pre = strconv.AppendInt(pre, int64(info.Subtask), 10)
	pre = append(pre, "] "...)
	return &printSink{p: e.printer, prefix: pre, enc: jsonrow.NewEncoder(v.InputSchema)}
}

func (s *printSink) ProcessBatch(ctx context.Context, rec arrow.RecordBatch, _ Output) error {
	s.enc.Reset(rec)
	b := s.buf[:0]
	for i := range int(rec.NumRows()) {
		b = append(b, s.prefix...)
		b = s.enc.AppendRow(b, i)
		b = append(b, '\n')
	}
	s.buf = b
	return s.p.writeLines(ctx, b)
}

// fileSink writes JSON lines to <path>/part-<vertex>-<subtask>.jsonl.
//
// The file is truncated when the task opens: a job restarted from scratch
// rewrites its output instead of appending a duplicate of it. Output is
// buffered, flushed and fsynced on Finish (end of a bounded input), closed
// on Close. A cancelled or failed task leaves a partial file. This is the
// sink of jobs without exactly-once checkpoints; with them, txnFileSink
// commits part files per checkpoint.
type fileSink struct {
	baseOperator
	path string
	enc  *jsonrow.Encoder
	f    *os.File
	w    *bufio.Writer
	buf  []byte
}

func newFileSink(dir string, v *jobgraph.Vertex, info TaskInfo) *fileSink {
	name := fmt.Sprintf("part-%s-%d.jsonl", v.ID, info.Subtask)
	return &fileSink{path: filepath.Join(dir, name), enc: jsonrow.NewEncoder(v.InputSchema)}
}

func (s *fileSink) Open(context.Context) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	s.f = f
	s.w = bufio.NewWriterSize(f, 64<<10)
	return nil
}

func (s *fileSink) ProcessBatch(_ context.Context, rec arrow.RecordBatch, _ Output) error {
	s.buf = appendJSONLines(s.enc, s.buf[:0], rec)
	if _, err := s.w.Write(s.buf); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	return nil
}

func (s *fileSink) Finish(context.Context, Output) error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	return nil
}

// Close closes the file without flushing what Finish did not: after a
// cancel or failure the file is partial either way. Idempotent.
func (s *fileSink) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("file sink: %w", err)
	}
	return nil
}

// appendJSONLines appends every row of rec to b as one JSON line.
func appendJSONLines(enc *jsonrow.Encoder, b []byte, rec arrow.RecordBatch) []byte {
	enc.Reset(rec)
	for i := range int(rec.NumRows()) {
		b = enc.AppendRow(b, i)
		b = append(b, '\n')
	}
	return b
}

// blackhole discards every batch, as Flink's blackhole connector: the sink
// of throughput benchmarks.
type blackhole struct{ baseOperator }

func (blackhole) ProcessBatch(context.Context, arrow.RecordBatch, Output) error { return nil }
