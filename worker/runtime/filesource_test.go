package runtime_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/worker/connector/file"
	"github.com/sabotdev/sabot/worker/runtime"
)

func fileSourceVertex(id string, p int32, path string, format sabotv1.FileFormat, cols ...*sabotv1.Column) *sabotv1.Vertex {
	return &sabotv1.Vertex{Id: id, Parallelism: p, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_FileSource{
		FileSource: &sabotv1.FileSource{Path: path, Format: format, Columns: cols},
	}}}
}

func parquetSinkVertex(id string, p int32, dir string) *sabotv1.Vertex {
	return &sabotv1.Vertex{Id: id, Parallelism: p, Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_File{
		File: &sabotv1.FileSink{Path: dir, Format: sabotv1.FileFormat_FILE_FORMAT_PARQUET},
	}}}
}

// readParquetRows reads every part file of dir as sorted JSON rows.
func readParquetRows(t *testing.T, dir string) []string {
	t.Helper()
	files, err := file.List(filepath.Join(dir, "*.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, f := range files {
		sc, err := file.ParquetSchema(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := file.OpenParquet(t.Context(), f, sc, checked(t), 7)
		if err != nil {
			t.Fatal(err)
		}
		for {
			rec, err := r.Next(t.Context())
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			if err := array.RecordToJSON(rec, &b); err != nil {
				t.Fatal(err)
			}
			rec.Release()
			rows = append(rows, strings.Split(strings.TrimSpace(b.String()), "\n")...)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(rows)
	return rows
}

func TestJSONLinesFileSourceToParquet(t *testing.T) {
	t.Parallel()
	in, out := t.TempDir(), t.TempDir()
	var want []string
	for f := range 3 {
		var b strings.Builder
		for i := range 50 {
			id := f*100 + i
			fmt.Fprintf(&b, `{"id": %d, "name": "n%d", "ts": %d}`+"\n", id, id, id*1000)
			if id%2 == 0 {
				want = append(want, fmt.Sprintf(`{"id":%d,"name":"n%d","ts":"%s"}`, id, id,
					time.UnixMilli(int64(id*1000)).UTC().Format(time.RFC3339)))
			}
		}
		if err := os.WriteFile(filepath.Join(in, fmt.Sprintf("part-%d.jsonl", f)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(want)
	src := fileSourceVertex("src", 2, in, sabotv1.FileFormat_FILE_FORMAT_JSON_LINES,
		&sabotv1.Column{Name: "id", Type: sabotv1.ColumnType_COLUMN_TYPE_INT64},
		&sabotv1.Column{Name: "name", Type: sabotv1.ColumnType_COLUMN_TYPE_STRING},
		&sabotv1.Column{Name: "ts", Type: sabotv1.ColumnType_COLUMN_TYPE_TIMESTAMP})
	src.GetOperator().GetFileSource().EventTime = &sabotv1.EventTime{
		TimestampField: "ts",
		Watermark:      &sabotv1.WatermarkStrategy{Kind: &sabotv1.WatermarkStrategy_MaxOutOfOrdernessMs{MaxOutOfOrdernessMs: 10}},
	}
	g := graph(t, 0, []*sabotv1.Vertex{src, filterVertex("even", 2, "id % 2 = 0"), parquetSinkVertex("sink", 2, out)},
		edge("src", "even", forward), edge("even", "sink", forward))
	cfg := runtime.Config{JobID: "j", Graph: g, Allocator: checked(t), BatchSize: 16, QueueCapacity: 4}
	if err := runWithin(t, 20*time.Second, cfg); err != nil {
		t.Fatal(err)
	}
	if got := readParquetRows(t, out); !slices.Equal(got, want) {
		t.Errorf("rows:\n%v\nwant\n%v", got, want)
	}
}

func TestParquetFileSourceToJSONLines(t *testing.T) {
	t.Parallel()
	// Make Parquet input with a first job: a sequence into a Parquet sink.
	in, out := t.TempDir(), t.TempDir()
	g := graph(t, 0, []*sabotv1.Vertex{seqVertex("seq", 3, 1, ptr[int64](1000), 0), parquetSinkVertex("pq", 3, in)},
		edge("seq", "pq", forward))
	cfg := runtime.Config{JobID: "a", Graph: g, Allocator: checked(t), BatchSize: 64, QueueCapacity: 4}
	if err := runWithin(t, 20*time.Second, cfg); err != nil {
		t.Fatal(err)
	}
	// No columns: the schema is the first file's.
	g = graph(t, 0, []*sabotv1.Vertex{
		fileSourceVertex("src", 2, filepath.Join(in, "*.parquet"), sabotv1.FileFormat_FILE_FORMAT_PARQUET),
		fileVertex("sink", 2, out),
	}, edge("src", "sink", forward))
	cfg = runtime.Config{JobID: "b", Graph: g, Allocator: checked(t), BatchSize: 100, QueueCapacity: 4}
	if err := runWithin(t, 20*time.Second, cfg); err != nil {
		t.Fatal(err)
	}
	values, _ := readFiles(t, out, "sink", 2)
	checkExactlyOnce(t, values, 1, 1000)
}

func TestFileSourceBadLineFailsJob(t *testing.T) {
	t.Parallel()
	in := t.TempDir()
	path := filepath.Join(in, "a.jsonl")
	if err := os.WriteFile(path, []byte("{\"id\": 1}\n{\"id\": true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := graph(t, 0, []*sabotv1.Vertex{
		fileSourceVertex("src", 1, path, sabotv1.FileFormat_FILE_FORMAT_JSON_LINES,
			&sabotv1.Column{Name: "id", Type: sabotv1.ColumnType_COLUMN_TYPE_INT64}),
		fileVertex("sink", 1, t.TempDir()),
	}, edge("src", "sink", forward))
	err := runWithin(t, 20*time.Second, runtime.Config{JobID: "j", Graph: g, Allocator: checked(t), BatchSize: 100, QueueCapacity: 4})
	if err == nil || !strings.Contains(err.Error(), path+":2:") {
		t.Fatalf("err = %v, want it to name %s:2", err, path)
	}
}
