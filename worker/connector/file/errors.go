package file

import (
	"errors"
	"fmt"
)

// ErrNoFiles is returned by List when a path matches no regular file.
var ErrNoFiles = errors.New("file: no files match")

// LineError is a JSON line that could not be decoded: Path and Line (from
// 1) say where.
type LineError struct {
	Path string
	Line int
	Err  error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("file: %s:%d: %v", e.Path, e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }
