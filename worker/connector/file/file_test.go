package file_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sabotdev/sabot/worker/connector/file"
)

func checked(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

func schema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "price", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ok", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "raw", Type: arrow.BinaryTypes.Binary, Nullable: true},
	}, nil)
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readAll reads every batch of r as JSON rows.
func readAll(t *testing.T, r file.Reader) []string {
	t.Helper()
	defer func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	}()
	var rows []string
	for {
		rec, err := r.Next(t.Context())
		if errors.Is(err, io.EOF) {
			return rows
		}
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		if err := array.RecordToJSON(rec, &b); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, strings.Split(strings.TrimSpace(b.String()), "\n")...)
		rec.Release()
	}
}

const jsonl = `{"id": 1, "price": 2.5, "name": "a", "ok": true, "ts": 1000, "raw": "aGk="}

{"id": 2, "name": null, "ts": "1970-01-01T00:00:02Z", "extra": [1]}
{"id": 3, "price": 7, "ok": false}
`

func TestJSONLines(t *testing.T) {
	t.Parallel()
	mem := checked(t)
	path := filepath.Join(t.TempDir(), "a.jsonl")
	write(t, path, jsonl)
	r, err := file.Open(t.Context(), path, file.JSONLines, schema(), mem, 2)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	if len(got) != 3 {
		t.Fatalf("got %d rows, want 3: %v", len(got), got)
	}
	for i, want := range []string{`"id":1`, `"id":2`, `"id":3`} {
		if !strings.Contains(got[i], want) {
			t.Errorf("row %d = %s, want %s", i, got[i], want)
		}
	}
	if !strings.Contains(got[0], `"raw":"aGk="`) || !strings.Contains(got[1], `"ts":"1970-01-01T00:00:02Z"`) {
		t.Errorf("rows: %v", got)
	}
}

func TestJSONLinesBadLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text, want string
	}{
		{"not json", "{\"id\": 1}\n{oops\n", ":2: "},
		{"wrong type", "\n\n{\"id\": \"x\"}\n", `:3: column "id": expected an integer`},
		{"fraction", "{\"id\": 1.5}\n", `:1: column "id"`},
		{"bad time", "{\"ts\": \"yesterday\"}\n", `:1: column "ts"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mem := checked(t)
			path := filepath.Join(t.TempDir(), "bad.jsonl")
			write(t, path, tt.text)
			r, err := file.OpenJSONLines(path, schema(), mem, 10)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = r.Close() }()
			_, err = r.Next(t.Context())
			var le *file.LineError
			if !errors.As(err, &le) || le.Path != path {
				t.Fatalf("err = %v, want a LineError of %s", err, path)
			}
			if !strings.Contains(err.Error(), path+tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, path+tt.want)
			}
		})
	}
}

func TestParquetRoundTrip(t *testing.T) {
	t.Parallel()
	mem := checked(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "in.jsonl")
	write(t, src, jsonl)
	jr, err := file.OpenJSONLines(src, schema(), mem, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := readAll(t, jr)

	// Write the same rows to Parquet, in two batches.
	path := filepath.Join(dir, "out.parquet")
	w, err := file.CreateParquet(path, schema(), mem)
	if err != nil {
		t.Fatal(err)
	}
	jr, err = file.OpenJSONLines(src, schema(), mem, 2)
	if err != nil {
		t.Fatal(err)
	}
	for {
		rec, err := jr.Next(t.Context())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	_ = jr.Close()
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	sc, err := file.ParquetSchema(path)
	if err != nil {
		t.Fatal(err)
	}
	if !sc.Equal(schema()) {
		t.Errorf("schema = %s, want %s", sc, schema())
	}
	r, err := file.Open(t.Context(), path, file.Parquet, schema(), mem, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); !slices.Equal(got, want) {
		t.Errorf("read back:\n%v\nwant\n%v", got, want)
	}

	// A subset of the columns, in another order.
	sub := arrow.NewSchema([]arrow.Field{schema().Field(2), schema().Field(0)}, nil)
	r, err = file.OpenParquet(t.Context(), path, sub, mem, 100)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	if len(got) != 3 || got[0] != `{"id":1,"name":"a"}` && got[0] != `{"name":"a","id":1}` {
		t.Errorf("subset: %v", got)
	}

	// Missing columns and other types are refused.
	for _, bad := range []*arrow.Schema{
		arrow.NewSchema([]arrow.Field{{Name: "nope", Type: arrow.PrimitiveTypes.Int64}}, nil),
		arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.BinaryTypes.String}}, nil),
	} {
		if _, err := file.OpenParquet(t.Context(), path, bad, mem, 100); err == nil {
			t.Errorf("schema %s: no error", bad)
		}
	}
}

func TestListAndAssign(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, n := range []string{"c.jsonl", "a.jsonl", "b.txt"} {
		write(t, filepath.Join(dir, n), "")
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		want       []string
	}{
		{"file", filepath.Join(dir, "b.txt"), []string{"b.txt"}},
		{"directory", dir, []string{"a.jsonl", "b.txt", "c.jsonl"}},
		{"glob", filepath.Join(dir, "*.jsonl"), []string{"a.jsonl", "c.jsonl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			files, err := file.List(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range files {
				got = append(got, filepath.Base(f))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("List = %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := file.List(filepath.Join(dir, "*.csv")); !errors.Is(err, file.ErrNoFiles) {
		t.Errorf("no match: err = %v, want ErrNoFiles", err)
	}
	files := []string{"0", "1", "2", "3", "4"}
	if got := file.Assign(files, 1, 2); !slices.Equal(got, []string{"1", "3"}) {
		t.Errorf("Assign(1 of 2) = %v", got)
	}
	if got := file.Assign(files, 2, 3); !slices.Equal(got, []string{"2"}) {
		t.Errorf("Assign(2 of 3) = %v", got)
	}
}
