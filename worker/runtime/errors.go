package runtime

import (
	"errors"
	"fmt"
)

// ErrRemoteExchange is returned by Run when Config.Subtasks does not cover
// the whole graph and no Config.Placement says where the other subtasks
// run (records would have to cross to workers nobody named).
var ErrRemoteExchange = errors.New("runtime: Subtasks leave subtasks out but no Placement says where they run")

// TaskError is a failure of one subtask: Run returns it (wrapped by nothing
// else) when a task fails. Vertex is the vertex of the chain whose operator
// failed.
type TaskError struct {
	JobID   string
	Attempt int64
	Vertex  string
	Subtask int
	Err     error
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("runtime: job %s attempt %d: vertex %s subtask %d: %v", e.JobID, e.Attempt, e.Vertex, e.Subtask, e.Err)
}

func (e *TaskError) Unwrap() error { return e.Err }

// vertexError tags an error with the vertex whose operator returned it, so
// a chained task can name the right vertex.
type vertexError struct {
	vertex string
	err    error
}

func (e *vertexError) Error() string { return e.vertex + ": " + e.err.Error() }
func (e *vertexError) Unwrap() error { return e.err }

func tagVertex(vertex string, err error) error {
	if err == nil {
		return nil
	}
	var ve *vertexError
	if errors.As(err, &ve) {
		return err
	}
	return &vertexError{vertex: vertex, err: err}
}
