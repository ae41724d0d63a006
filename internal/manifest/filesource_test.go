package manifest_test

import (
	"path/filepath"
	"strings"
	"testing"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/manifest"
)

func TestFileSourceAndParquetSink(t *testing.T) {
	t.Parallel()
	in := filepath.Join(t.TempDir(), "*.jsonl")
	yaml := `name: files
steps:
  - id: src
    file_source:
      path: "` + in + `"
      columns: {id: int64, ts: timestamp}
      event_time: {timestamp_field: ts, monotonous: true}
  - id: out
    file: {path: out, format: parquet}
`
	js, err := manifest.Parse("job.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	vs := js.GetGraph().GetVertices()
	fs := vs[0].GetOperator().GetFileSource()
	if fs.GetPath() != in || fs.GetFormat() != sabotv1.FileFormat_FILE_FORMAT_UNSPECIFIED || len(fs.GetColumns()) != 2 ||
		fs.GetEventTime().GetTimestampField() != "ts" {
		t.Errorf("file_source = %v", fs)
	}
	if f := vs[1].GetOperator().GetFile(); f.GetFormat() != sabotv1.FileFormat_FILE_FORMAT_PARQUET {
		t.Errorf("file = %v", f)
	}

	_, err = manifest.Parse("job.yaml", []byte(strings.Replace(yaml, "      path: \""+in+"\"\n", "      paht: x\n", 1)))
	if err == nil || !strings.Contains(err.Error(), `steps[0].file_source.paht: unknown key, did you mean "path"?`) {
		t.Errorf("err = %v", err)
	}
}
