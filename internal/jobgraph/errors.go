package jobgraph

import (
	"fmt"
	"strings"
)

// Error is one problem with a job graph, naming the vertex and the field (a
// path relative to the JobSpec, e.g. "graph.vertices[2].parallelism" or
// "operator.map.columns[0].expr" for a vertex's operator) it concerns.
type Error struct {
	Vertex string
	Field  string
	Msg    string
	// Err is the underlying error, e.g. an *expr.Error with an offset.
	Err error
}

func (e *Error) Error() string {
	switch {
	case e.Vertex != "" && e.Field != "":
		return fmt.Sprintf("vertex %s: %s: %s", e.Vertex, e.Field, e.Msg)
	case e.Vertex != "":
		return fmt.Sprintf("vertex %s: %s", e.Vertex, e.Msg)
	case e.Field != "":
		return fmt.Sprintf("%s: %s", e.Field, e.Msg)
	default:
		return e.Msg
	}
}

func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem Resolve found.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return "jobgraph: " + strings.Join(msgs, "; ")
}
