package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// maxLine is the longest JSON line a reader accepts.
const maxLine = 64 << 20

// JSONLinesReader decodes a file of JSON objects, one per line, into
// batches: each column from the key of its name (absent or null is null).
// Types: int64 from an integer, float64 from a number, string, bool,
// timestamp from an integer of milliseconds or an RFC 3339 string, and
// binary from a base64 string. Blank lines are skipped; any other line
// that does not decode is a *LineError naming the file and line.
//
// It decodes each line with encoding/json: simple, and allocating per row;
// a scanning decoder such as the Kafka connector's can replace it when file
// reading shows up in profiles.
type JSONLinesReader struct {
	path      string
	schema    *arrow.Schema
	batchSize int

	f    *os.File
	sc   *bufio.Scanner
	line int
	b    *array.RecordBuilder
	dec  *RowDecoder
}

// RowDecoder decodes JSON objects into rows of a schema, with the types
// and rules of JSONLinesReader. Stage decodes one object without touching
// the builders; Commit appends the staged row, so an object that fails to
// decode leaves them as they were.
type RowDecoder struct {
	schema *arrow.Schema
	obj    map[string]json.RawMessage
	slots  []slot
}

// NewRowDecoder checks that schema's types are supported and returns a
// decoder for it.
func NewRowDecoder(schema *arrow.Schema) (*RowDecoder, error) {
	for _, fd := range schema.Fields() {
		switch fd.Type.ID() {
		case arrow.INT64, arrow.FLOAT64, arrow.STRING, arrow.BOOL, arrow.TIMESTAMP, arrow.BINARY:
		default:
			return nil, fmt.Errorf("file: column %q: type %s is not supported in JSON", fd.Name, fd.Type)
		}
		if ts, ok := fd.Type.(*arrow.TimestampType); ok && ts.Unit != arrow.Millisecond {
			return nil, fmt.Errorf("file: column %q: only millisecond timestamps are supported in JSON", fd.Name)
		}
	}
	return &RowDecoder{schema: schema, slots: make([]slot, schema.NumFields())}, nil
}

// slot stages one column's value so a bad line leaves the builders
// untouched.
type slot struct {
	null bool
	i    int64
	f    float64
	b    bool
	s    string
	by   []byte
}

// OpenJSONLines opens path for reading; see JSONLinesReader.
func OpenJSONLines(path string, schema *arrow.Schema, mem memory.Allocator, batchSize int) (*JSONLinesReader, error) {
	dec, err := NewRowDecoder(schema)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	return &JSONLinesReader{
		path:      path,
		schema:    schema,
		batchSize: max(1, batchSize),
		f:         f,
		sc:        sc,
		b:         array.NewRecordBuilder(mem, schema),
		dec:       dec,
	}, nil
}

// Next returns the next batch of up to batchSize rows, or io.EOF.
func (r *JSONLinesReader) Next(ctx context.Context) (arrow.RecordBatch, error) {
	if r.f == nil {
		return nil, io.EOF
	}
	rows := 0
	for rows < r.batchSize && r.sc.Scan() {
		r.line++
		line := bytes.TrimSpace(r.sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := r.dec.Stage(line); err != nil {
			return nil, &LineError{Path: r.path, Line: r.line, Err: err}
		}
		r.dec.Commit(r.b)
		rows++
		if rows%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	if err := r.sc.Err(); err != nil {
		return nil, &LineError{Path: r.path, Line: r.line + 1, Err: err}
	}
	if rows == 0 {
		return nil, io.EOF
	}
	return r.b.NewRecordBatch(), nil
}

// Stage decodes one JSON object: each column from the key of its name
// (absent or null is null).
func (r *RowDecoder) Stage(line []byte) error {
	clear(r.obj)
	if err := json.Unmarshal(line, &r.obj); err != nil {
		return err
	}
	if r.obj == nil {
		return errors.New("expected a JSON object, got null")
	}
	for i, fd := range r.schema.Fields() {
		s := &r.slots[i]
		*s = slot{}
		raw, ok := r.obj[fd.Name]
		if !ok || string(raw) == "null" {
			s.null = true
			continue
		}
		if err := parse(fd.Type, raw, s); err != nil {
			return fmt.Errorf("column %q: %w", fd.Name, err)
		}
	}
	return nil
}

func parse(t arrow.DataType, raw json.RawMessage, s *slot) error {
	switch t.ID() {
	case arrow.INT64:
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return fmt.Errorf("expected an integer, got %s", raw)
		}
		v, err := n.Int64()
		if err != nil {
			return fmt.Errorf("expected an integer, got %s", raw)
		}
		s.i = v
	case arrow.FLOAT64:
		if err := json.Unmarshal(raw, &s.f); err != nil {
			return fmt.Errorf("expected a number, got %s", raw)
		}
	case arrow.BOOL:
		if err := json.Unmarshal(raw, &s.b); err != nil {
			return fmt.Errorf("expected true or false, got %s", raw)
		}
	case arrow.STRING:
		if err := json.Unmarshal(raw, &s.s); err != nil {
			return fmt.Errorf("expected a string, got %s", raw)
		}
	case arrow.BINARY:
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return fmt.Errorf("expected a base64 string, got %s", raw)
		}
		b, err := base64.StdEncoding.DecodeString(str)
		if err != nil {
			return fmt.Errorf("invalid base64: %w", err)
		}
		s.by = b
	case arrow.TIMESTAMP:
		if len(raw) > 0 && raw[0] == '"' {
			var str string
			if err := json.Unmarshal(raw, &str); err != nil {
				return err
			}
			ts, err := time.Parse(time.RFC3339Nano, str)
			if err != nil {
				return fmt.Errorf("expected an RFC 3339 time or an integer of milliseconds: %w", err)
			}
			s.i = ts.UnixMilli()
			return nil
		}
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return fmt.Errorf("expected an RFC 3339 time or an integer of milliseconds, got %s", raw)
		}
		v, err := n.Int64()
		if err != nil {
			return fmt.Errorf("expected an RFC 3339 time or an integer of milliseconds, got %s", raw)
		}
		s.i = v
	default: // OpenJSONLines refused other types
	}
	return nil
}

// StagedRow is a decoded row held apart from the decoder (Take), to
// append later with CommitRow.
type StagedRow struct{ slots []slot }

// Take returns a copy of the staged row.
func (r *RowDecoder) Take() StagedRow { return StagedRow{slots: append([]slot(nil), r.slots...)} }

// CommitRow appends a row Take returned to b, a builder of the decoder's
// schema.
func CommitRow(b *array.RecordBuilder, row StagedRow) { commitSlots(b, row.slots) }

// Commit appends the staged row to b, a builder of the decoder's schema.
func (r *RowDecoder) Commit(b *array.RecordBuilder) { commitSlots(b, r.slots) }

func commitSlots(b *array.RecordBuilder, slots []slot) {
	for i := range slots {
		s := &slots[i]
		fb := b.Field(i)
		if s.null {
			fb.AppendNull()
			continue
		}
		switch b := fb.(type) {
		case *array.Int64Builder:
			b.Append(s.i)
		case *array.Float64Builder:
			b.Append(s.f)
		case *array.BooleanBuilder:
			b.Append(s.b)
		case *array.StringBuilder:
			b.Append(s.s)
		case *array.BinaryBuilder:
			b.Append(s.by)
		case *array.TimestampBuilder:
			b.Append(arrow.Timestamp(s.i))
		}
	}
}

// Close closes the file and frees the builders. Idempotent.
func (r *JSONLinesReader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	r.b.Release()
	if err != nil {
		return fmt.Errorf("file: %w", err)
	}
	return nil
}
