package file

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	pqfile "github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// ParquetSchema returns the Arrow schema of a Parquet file's columns, every
// field nullable and without metadata: the schema a file source without
// declared columns emits.
func ParquetSchema(path string) (*arrow.Schema, error) {
	pf, err := pqfile.OpenParquetFile(path, false)
	if err != nil {
		return nil, fmt.Errorf("file: %s: %w", path, err)
	}
	defer func() { _ = pf.Close() }() // read only: nothing to lose
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("file: %s: %w", path, err)
	}
	sc, err := fr.Schema()
	if err != nil {
		return nil, fmt.Errorf("file: %s: %w", path, err)
	}
	fields := make([]arrow.Field, 0, sc.NumFields())
	for _, f := range sc.Fields() {
		fields = append(fields, arrow.Field{Name: f.Name, Type: f.Type, Nullable: true})
	}
	return arrow.NewSchema(fields, nil), nil
}

// ParquetReader reads the columns of a schema from a Parquet file, by
// name, in batches. A column missing from the file, or of another type
// than the schema's, is an error when the file is opened.
type ParquetReader struct {
	path   string
	schema *arrow.Schema

	pf   *pqfile.Reader
	rr   pqarrow.RecordReader
	cols []int // per schema field: its column in rr's batches
}

// OpenParquet opens path for reading; see ParquetReader.
func OpenParquet(ctx context.Context, path string, schema *arrow.Schema, mem memory.Allocator, batchSize int) (*ParquetReader, error) {
	pf, err := pqfile.OpenParquetFile(path, false, pqfile.WithReadProps(parquet.NewReaderProperties(mem)))
	if err != nil {
		return nil, fmt.Errorf("file: %s: %w", path, err)
	}
	r := &ParquetReader{path: path, schema: schema, pf: pf}
	if err := r.open(ctx, mem, batchSize); err != nil {
		_ = pf.Close()
		return nil, err
	}
	return r, nil
}

func (r *ParquetReader) open(ctx context.Context, mem memory.Allocator, batchSize int) error {
	fr, err := pqarrow.NewFileReader(r.pf, pqarrow.ArrowReadProperties{BatchSize: int64(max(1, batchSize))}, mem)
	if err != nil {
		return fmt.Errorf("file: %s: %w", r.path, err)
	}
	sc, err := fr.Schema()
	if err != nil {
		return fmt.Errorf("file: %s: %w", r.path, err)
	}
	var leaves []int
	for _, want := range r.schema.Fields() {
		idx := sc.FieldIndices(want.Name)
		if len(idx) == 0 {
			return fmt.Errorf("file: %s: no column %q", r.path, want.Name)
		}
		if got := sc.Field(idx[0]).Type; !arrow.TypeEqual(got, want.Type) {
			return fmt.Errorf("file: %s: column %q is %s, not %s", r.path, want.Name, got, want.Type)
		}
		leaves = appendLeaves(leaves, &fr.Manifest.Fields[idx[0]])
	}
	if r.pf.NumRows() == 0 {
		return nil // the record reader needs at least one row
	}
	rr, err := fr.GetRecordReader(ctx, leaves, nil)
	if err != nil {
		return fmt.Errorf("file: %s: %w", r.path, err)
	}
	r.rr = rr
	got := rr.Schema()
	r.cols = make([]int, r.schema.NumFields())
	for i, f := range r.schema.Fields() {
		idx := got.FieldIndices(f.Name)
		if len(idx) == 0 {
			return fmt.Errorf("file: %s: column %q was not read", r.path, f.Name)
		}
		r.cols[i] = idx[0]
	}
	return nil
}

func appendLeaves(leaves []int, f *pqarrow.SchemaField) []int {
	if f.IsLeaf() {
		return append(leaves, f.ColIndex)
	}
	for i := range f.Children {
		leaves = appendLeaves(leaves, &f.Children[i])
	}
	return leaves
}

// Next returns the next batch, or io.EOF.
func (r *ParquetReader) Next(context.Context) (arrow.RecordBatch, error) {
	if r.rr == nil {
		return nil, io.EOF
	}
	if !r.rr.Next() {
		if err := r.rr.Err(); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("file: %s: %w", r.path, err)
		}
		return nil, io.EOF
	}
	rec := r.rr.RecordBatch()
	cols := make([]arrow.Array, len(r.cols))
	for i, c := range r.cols {
		cols[i] = rec.Column(c)
	}
	return array.NewRecordBatch(r.schema, cols, rec.NumRows()), nil
}

// Close frees the reader and closes the file. Idempotent.
func (r *ParquetReader) Close() error {
	if r.pf == nil {
		return nil
	}
	if r.rr != nil {
		r.rr.Release()
		r.rr = nil
	}
	err := r.pf.Close()
	r.pf = nil
	if err != nil {
		return fmt.Errorf("file: %s: %w", r.path, err)
	}
	return nil
}

// maxRowGroup is the most rows a ParquetWriter puts in one row group.
const maxRowGroup = 1 << 20

// ParquetWriter writes batches of one schema to a new Parquet file
// (Snappy-compressed, with the Arrow schema stored so that types read back
// exactly). The file is only valid once Finish wrote its footer.
type ParquetWriter struct {
	path string
	f    *os.File
	bw   *bufio.Writer
	fw   *pqarrow.FileWriter
}

// CreateParquet creates (or truncates) path for writing.
func CreateParquet(path string, schema *arrow.Schema, mem memory.Allocator) (*ParquetWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	// bufio.Writer is not an io.Closer, so the Parquet writer's Close
	// leaves the file to us: Finish syncs it first.
	bw := bufio.NewWriterSize(f, 64<<10)
	props := parquet.NewWriterProperties(
		parquet.WithAllocator(mem),
		parquet.WithCompression(compress.Codecs.Snappy),
		parquet.WithMaxRowGroupLength(maxRowGroup),
	)
	fw, err := pqarrow.NewFileWriter(schema, bw, props,
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(mem)))
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("file: %s: %w", path, err)
	}
	return &ParquetWriter{path: path, f: f, bw: bw, fw: fw}, nil
}

// Write appends rec to the current row group (borrowed: not retained).
func (w *ParquetWriter) Write(rec arrow.RecordBatch) error {
	if err := w.fw.WriteBuffered(rec); err != nil {
		return fmt.Errorf("file: %s: %w", w.path, err)
	}
	return nil
}

// Finish writes the footer and flushes and fsyncs the file; Close still
// closes it.
func (w *ParquetWriter) Finish() error {
	if w.fw == nil {
		return nil
	}
	fw := w.fw
	w.fw = nil
	if err := fw.Close(); err != nil {
		return fmt.Errorf("file: %s: %w", w.path, err)
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("file: %s: %w", w.path, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("file: %s: %w", w.path, err)
	}
	return nil
}

// Close closes the file; without Finish the file is partial (no footer).
// Idempotent.
func (w *ParquetWriter) Close() error {
	if w.f == nil {
		return nil
	}
	if w.fw != nil {
		// Free the buffered row group without writing a footer into a
		// file that is abandoned anyway.
		_ = w.fw.Close()
		w.fw = nil
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("file: %s: %w", w.path, err)
	}
	return nil
}
