package jobgraph_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/worker/connector/file"
)

func fileSource(fs *sabotv1.FileSource) *sabotv1.JobSpec {
	return spec(1, []*sabotv1.Vertex{
		{Id: "src", Operator: &sabotv1.Operator{Kind: &sabotv1.Operator_FileSource{FileSource: fs}}},
		{Id: "out", Operator: printOp()},
	}, &sabotv1.Edge{From: "src", To: "out"})
}

func TestFileSourceSchema(t *testing.T) {
	t.Parallel()
	// A Parquet file with columns a (int64) and b (string).
	dir := t.TempDir()
	pq := arrow.NewSchema([]arrow.Field{
		{Name: "a", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "b", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	w, err := file.CreateParquet(filepath.Join(dir, "x.parquet"), pq, memory.NewGoAllocator())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	parquet := sabotv1.FileFormat_FILE_FORMAT_PARQUET
	col := func(n string, ty sabotv1.ColumnType) *sabotv1.Column { return &sabotv1.Column{Name: n, Type: ty} }
	ts := &sabotv1.EventTime{Watermark: &sabotv1.WatermarkStrategy{Kind: &sabotv1.WatermarkStrategy_Monotonous{Monotonous: true}}}

	cases := []struct {
		name   string
		fs     *sabotv1.FileSource
		schema *arrow.Schema // nil: want an error containing err
		err    string
	}{
		{"declared", &sabotv1.FileSource{Path: dir, Columns: []*sabotv1.Column{col("b", sabotv1.ColumnType_COLUMN_TYPE_STRING)}},
			arrow.NewSchema([]arrow.Field{pq.Field(1)}, nil), ""},
		{"parquet file schema", &sabotv1.FileSource{Path: dir, Format: parquet}, pq, ""},
		{"parquet missing", &sabotv1.FileSource{Path: filepath.Join(dir, "none", "*.parquet"), Format: parquet},
			nil, "operator.file_source.columns: cannot read the schema"},
		{"json without columns", &sabotv1.FileSource{Path: dir},
			nil, "operator.file_source.columns: declare the columns"},
		{"watermark without field", &sabotv1.FileSource{Path: dir, Format: parquet, EventTime: ts},
			nil, "event_time.timestamp_field: this source has no record time"},
		{"event time not a time", &sabotv1.FileSource{Path: dir, Format: parquet, EventTime: &sabotv1.EventTime{TimestampField: "b"}},
			nil, `"b" is utf8`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g, err := jobgraph.Resolve(fileSource(tc.fs))
			if tc.schema == nil {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v := g.Vertex("src"); v.Kind != jobgraph.KindSource || !v.Schema.Equal(tc.schema) {
				t.Errorf("kind %v schema %s, want a source of %s", v.Kind, v.Schema, tc.schema)
			}
		})
	}
}
