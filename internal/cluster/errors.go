package cluster

import "errors"

var (
	// ErrNotFound means the record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a compare-and-swap kept losing to other writers.
	ErrConflict = errors.New("too many concurrent updates")
	// ErrPrecondition means an extra condition of an update (such as still
	// being the scheduler leader) no longer holds.
	ErrPrecondition = errors.New("precondition failed")
)
