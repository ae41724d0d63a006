package expr

// Placeholder until the implementation lands; replaced wholesale.

import (
	"context"
	"errors"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

type node interface{}

func compile(src string, schema *arrow.Schema) (*Expr, error) {
	return nil, errors.New("expr: not implemented")
}

func (e *Expr) eval(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.Array, error) {
	return nil, errors.New("expr: not implemented")
}
