package blob_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sabotdev/sabot/internal/blob"
)

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "blob-example")
	if err != nil {
		panic(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()

	ctx := context.Background()
	st, err := blob.Open("file://"+filepath.ToSlash(dir), blob.Options{})
	if err != nil {
		panic(err)
	}
	defer func() { _ = st.Close() }()

	// A checkpoint writes its files, then its metadata last.
	meta := blob.CheckpointMetadataKey("job-1", 7)
	if err := st.Put(ctx, meta, strings.NewReader("metadata"), -1); err != nil {
		panic(err)
	}
	// Objects are immutable.
	err = st.Put(ctx, meta, strings.NewReader("other"), -1)
	fmt.Println(errors.Is(err, blob.ErrExists))

	rc, err := st.Get(ctx, meta)
	if err != nil {
		panic(err)
	}
	b, err := io.ReadAll(rc) // verifies the checksum at EOF
	if err != nil {
		panic(err)
	}
	_ = rc.Close()
	fmt.Println(string(b))

	for info, err := range st.List(ctx, blob.JobPrefix("job-1")) {
		if err != nil {
			panic(err)
		}
		fmt.Println(info.Key, info.Size)
	}
	// Output:
	// true
	// metadata
	// jobs/job-1/chk-7/_metadata 8
}
