package file

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Format is a file encoding.
type Format int

const (
	// JSONLines is one JSON object per line, one key per column.
	JSONLines Format = iota + 1
	// Parquet is Apache Parquet; columns are matched by name.
	Parquet
)

func (f Format) String() string {
	switch f {
	case JSONLines:
		return "json_lines"
	case Parquet:
		return "parquet"
	default:
		return fmt.Sprintf("Format(%d)", int(f))
	}
}

// Reader reads one file as record batches of a schema.
type Reader interface {
	// Next returns the next batch, which the caller releases, or
	// (nil, io.EOF) at the end of the file.
	Next(ctx context.Context) (arrow.RecordBatch, error)
	// Close frees the reader. Idempotent.
	Close() error
}

// Open opens path for reading batches of at most batchSize rows of schema
// (every field nullable; the batches carry schema itself).
func Open(ctx context.Context, path string, format Format, schema *arrow.Schema, mem memory.Allocator, batchSize int) (Reader, error) {
	switch format {
	case JSONLines:
		return OpenJSONLines(path, schema, mem, batchSize)
	case Parquet:
		return OpenParquet(ctx, path, schema, mem, batchSize)
	default:
		return nil, fmt.Errorf("file: unknown format %v", format)
	}
}
