package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/connector/file"
	"github.com/sabotdev/sabot/worker/eventtime"
)

// fileSource is the FileSource: subtask i of p lists the path's files
// (sorted) when it opens and reads files i, i+p, …, one after the other,
// emitting one batch per Next. It is bounded: done after its last file.
//
// Event time: with a watermark strategy, the subtask is a single split fed
// with event_time.timestamp_field of every batch; the watermark is emitted
// when a batch raises it and periodically on Config.Clock, as the Kafka
// source does. At the end of input the task emits the final watermark.
type fileSource struct {
	path      string
	format    file.Format
	schema    *arrow.Schema
	mem       memory.Allocator
	batchSize int
	subtask   int
	p         int

	files []string    // this subtask's, in order
	next  int         // index into files of the next file to open
	cur   file.Reader // nil between files

	tsCol int // event-time column, -1 without event time
	ts    []int64
	wms   *splitWatermarks // nil: no watermarks
	split *eventtime.Split
}

func newFileSource(spec *sabotv1.FileSource, v *jobgraph.Vertex, info TaskInfo, e *env) (*fileSource, error) {
	s := &fileSource{
		path:      spec.GetPath(),
		format:    file.JSONLines,
		schema:    v.Schema,
		mem:       e.mem,
		batchSize: e.batchSize,
		subtask:   info.Subtask,
		p:         info.Parallelism,
		tsCol:     -1,
	}
	if spec.GetFormat() == sabotv1.FileFormat_FILE_FORMAT_PARQUET {
		s.format = file.Parquet
	}
	strategy, err := watermarkStrategy(spec.GetEventTime().GetWatermark())
	if err != nil {
		return nil, fmt.Errorf("file source: %w", err)
	}
	s.wms = newSplitWatermarks(strategy, e.clock)
	if s.wms != nil {
		tf := spec.GetEventTime().GetTimestampField()
		idx := v.Schema.FieldIndices(tf)
		if len(idx) == 0 {
			return nil, fmt.Errorf("file source: event time column %q is not a column", tf)
		}
		s.tsCol = idx[0]
	}
	return s, nil
}

// Open lists the files and registers the watermark split.
func (s *fileSource) Open(context.Context) error {
	files, err := file.List(s.path)
	if err != nil {
		return fmt.Errorf("file source: %w", err)
	}
	s.files = file.Assign(files, s.subtask, s.p)
	if s.wms == nil {
		return nil
	}
	if s.split, err = s.wms.addSplit(fmt.Sprintf("files-%d", s.subtask)); err != nil {
		return fmt.Errorf("file source: %w", err)
	}
	s.wms.start()
	return nil
}

func (s *fileSource) Next(ctx context.Context, out Output) (bool, error) {
	if s.cur == nil {
		if s.next == len(s.files) {
			return true, nil
		}
		r, err := file.Open(ctx, s.files[s.next], s.format, s.schema, s.mem, s.batchSize)
		if err != nil {
			return false, fmt.Errorf("file source: %w", err)
		}
		s.cur = r
		s.next++
	}
	rec, err := s.cur.Next(ctx)
	if errors.Is(err, io.EOF) {
		err = s.cur.Close()
		s.cur = nil
		if err != nil {
			return false, fmt.Errorf("file source: %w", err)
		}
		return s.next == len(s.files), s.tick(ctx, out)
	}
	if err != nil {
		return false, fmt.Errorf("file source: %w", err)
	}
	defer rec.Release()
	if err := s.emit(ctx, rec, out); err != nil {
		return false, err
	}
	return false, s.tick(ctx, out)
}

// emit feeds rec's event times to the split, then sends rec and the
// watermark if that raised it.
func (s *fileSource) emit(ctx context.Context, rec arrow.RecordBatch, out Output) error {
	var wm int64
	var advanced bool
	if s.wms != nil {
		if err := s.eventTimes(rec.Column(s.tsCol)); err != nil {
			return err
		}
		var err error
		if wm, advanced, err = s.split.OnBatch(rec, s.ts); err != nil {
			return fmt.Errorf("file source: %w", err)
		}
	}
	if err := out.Emit(ctx, rec); err != nil {
		return err
	}
	if advanced {
		return out.EmitWatermark(ctx, wm)
	}
	return nil
}

// eventTimes fills s.ts with col's values in milliseconds.
func (s *fileSource) eventTimes(col arrow.Array) error {
	s.ts = s.ts[:0]
	if col.NullN() > 0 {
		return fmt.Errorf("file source: event time column %q has nulls", s.schema.Field(s.tsCol).Name)
	}
	switch a := col.(type) {
	case *array.Int64:
		s.ts = append(s.ts, a.Int64Values()...)
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		for _, v := range a.TimestampValues() {
			s.ts = append(s.ts, toMillis(int64(v), unit))
		}
	default:
		return fmt.Errorf("file source: event time column is %s, not a timestamp or int64", col.DataType())
	}
	return nil
}

// tick emits the watermark if the periodic step raised it.
func (s *fileSource) tick(ctx context.Context, out Output) error {
	if s.wms == nil {
		return nil
	}
	if wm, ok := s.wms.tick(); ok {
		return out.EmitWatermark(ctx, wm)
	}
	return nil
}

// Close closes the file being read. Idempotent.
func (s *fileSource) Close() error {
	if s.cur == nil {
		return nil
	}
	err := s.cur.Close()
	s.cur = nil
	if err != nil {
		return fmt.Errorf("file source: %w", err)
	}
	return nil
}

// parquetSink writes Parquet to <path>/part-<vertex>-<subtask>.parquet, as
// fileSink does JSON lines: the file is truncated when the task opens, and
// complete (footer written, fsynced) on Finish. A cancelled or failed task
// leaves an invalid file.
type parquetSink struct {
	baseOperator
	path   string
	schema *arrow.Schema
	mem    memory.Allocator
	w      *file.ParquetWriter
}

func newParquetSink(dir string, v *jobgraph.Vertex, info TaskInfo, e *env) *parquetSink {
	name := fmt.Sprintf("part-%s-%d.parquet", v.ID, info.Subtask)
	return &parquetSink{path: filepath.Join(dir, name), schema: v.InputSchema, mem: e.mem}
}

func (s *parquetSink) Open(context.Context) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	w, err := file.CreateParquet(s.path, s.schema, s.mem)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	s.w = w
	return nil
}

func (s *parquetSink) ProcessBatch(_ context.Context, rec arrow.RecordBatch, _ Output) error {
	if err := s.w.Write(rec); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	return nil
}

func (s *parquetSink) Finish(context.Context, Output) error {
	if err := s.w.Finish(); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	return nil
}

// Close closes the file. Idempotent.
func (s *parquetSink) Close() error {
	if s.w == nil {
		return nil
	}
	err := s.w.Close()
	s.w = nil
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	return nil
}
