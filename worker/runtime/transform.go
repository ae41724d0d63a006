package runtime

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	clusterv1 "github.com/sabotdev/sabot/gen/sabot/cluster/v1"
	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/sql/expr"
)

// newSource creates the Source of a source vertex's subtask.
func newSource(v *jobgraph.Vertex, info TaskInfo, e *env) (Source, error) {
	switch op := v.Operator.GetKind().(type) {
	case *sabotv1.Operator_Sequence:
		return newSequence(op.Sequence, info, e), nil
	case *sabotv1.Operator_Nexmark:
		return newNexmarkSource(op.Nexmark, info, e)
	case *sabotv1.Operator_KafkaSource:
		return newKafkaSource(op.KafkaSource, v, info, e)
	case *sabotv1.Operator_FileSource:
		return newFileSource(op.FileSource, v, info, e)
	case *sabotv1.Operator_Invocations:
		return newInvocationSource(e), nil
	default:
		return nil, fmt.Errorf("runtime: source kind %T is not supported by this worker", op)
	}
}

// newOperator creates the Operator of a transform or sink vertex's
// subtask. It compiles and checks but acquires nothing; Open does.
func newOperator(v *jobgraph.Vertex, info TaskInfo, e *env) (Operator, error) {
	op, err := newOperatorKind(v, info, e)
	if err != nil || v.Kind != jobgraph.KindSink || e.sinkRows == nil {
		return op, err
	}
	return &sinkCounter{Operator: op, rows: e.sinkRows, latency: e.sinkLatency}, nil
}

// sinkCounter counts the rows reaching a sink (Config.SinkRows).
type sinkCounter struct {
	Operator
	rows    *atomic.Int64
	latency *LatencyHistogram // may be nil
	origin  *int64            // the task's current batch origin
}

func (c *sinkCounter) ProcessBatch(ctx context.Context, rec arrow.RecordBatch, out Output) error {
	c.rows.Add(rec.NumRows())
	if c.latency != nil && c.origin != nil && *c.origin != 0 {
		c.latency.Record(time.Duration(time.Now().UnixNano() - *c.origin))
	}
	return c.Operator.ProcessBatch(ctx, rec, out)
}

func newOperatorKind(v *jobgraph.Vertex, info TaskInfo, e *env) (Operator, error) {
	if e.hook != nil {
		if op := e.hook(v, info); op != nil {
			return op, nil
		}
	}
	switch op := v.Operator.GetKind().(type) {
	case *sabotv1.Operator_Map:
		return newMapOp(op.Map, v, e)
	case *sabotv1.Operator_Filter:
		return newFilterOp(op.Filter, v, e)
	case *sabotv1.Operator_KeyedAggregate:
		return newAggregateOp(op.KeyedAggregate, v, info, e)
	case *sabotv1.Operator_Process:
		return newProcessOp(op.Process, v, info, e)
	case *sabotv1.Operator_Function:
		return newFunctionOp(op.Function, v, info, e)
	case *sabotv1.Operator_Window:
		return newWindowOp(op.Window, v, info, e)
	case *sabotv1.Operator_Print:
		return newPrintSink(op.Print.GetPrefix(), v, info, e), nil
	case *sabotv1.Operator_File:
		if op.File.GetFormat() == sabotv1.FileFormat_FILE_FORMAT_PARQUET {
			return newParquetSink(op.File.GetPath(), v, info, e), nil
		}
		if e.cp != nil && !e.cp.atLeast {
			return newTxnFileSink(op.File.GetPath(), v, info), nil
		}
		return newFileSink(op.File.GetPath(), v, info), nil
	case *sabotv1.Operator_Blackhole:
		return blackhole{}, nil
	case *sabotv1.Operator_KafkaSink:
		return newKafkaSink(op.KafkaSink, v, info, e)
	default:
		return nil, fmt.Errorf("runtime: operator kind %T is not supported by this worker", op)
	}
}

// opPoolBytes bounds the free memory a map or filter keeps for reuse.
const opPoolBytes = 4 << 20

// mapOp evaluates one expression per output column over each batch. A
// column that is a bare input column is passed through without copying;
// computed columns are allocated from the operator's pool, so their
// memory is reused once the batches carrying them are released.
type mapOp struct {
	baseOperator
	mem    *bufferPool
	schema *arrow.Schema
	exprs  []*expr.Expr
	cols   []arrow.Array
}

func newMapOp(spec *sabotv1.MapOperator, v *jobgraph.Vertex, e *env) (*mapOp, error) {
	m := &mapOp{schema: v.Schema}
	for i, c := range spec.GetColumns() {
		x, err := expr.Compile(c.GetExpr(), v.InputSchema)
		if err != nil {
			return nil, fmt.Errorf("map column %d (%s): %w", i, c.GetName(), err)
		}
		if !arrow.TypeEqual(x.Type(), v.Schema.Field(i).Type) {
			return nil, fmt.Errorf("map column %d (%s): expression type %s differs from the resolved schema's %s", i, c.GetName(), x.Type(), v.Schema.Field(i).Type)
		}
		m.exprs = append(m.exprs, x)
	}
	m.cols = make([]arrow.Array, len(m.exprs))
	// Constructors acquire nothing (a failed build closes nothing): the
	// pool is a plain wrapper until it holds freed buffers.
	m.mem = newBufferPool(e.mem, opPoolBytes)
	return m, nil
}

func (m *mapOp) ProcessBatch(ctx context.Context, rec arrow.RecordBatch, out Output) error {
	defer func() {
		for i, c := range m.cols {
			if c != nil {
				c.Release()
				m.cols[i] = nil
			}
		}
	}()
	for i, x := range m.exprs {
		a, err := x.Eval(ctx, m.mem, rec)
		if err != nil {
			return fmt.Errorf("map column %s: %w", m.schema.Field(i).Name, err)
		}
		m.cols[i] = a
	}
	res := array.NewRecordBatch(m.schema, m.cols, rec.NumRows())
	err := out.Emit(ctx, res)
	res.Release()
	return err
}

// Close empties the pool; batches still held downstream free their
// memory to the job's allocator when released.
func (m *mapOp) Close() error {
	m.mem.Close()
	return nil
}

// filterOp keeps the rows whose condition is true; null counts as false.
// The condition is evaluated into a selection vector (expr.Select: common
// shapes such as `auction % 123 = 0` without intermediate arrays), and the
// kept rows are gathered into a new batch; a batch whose rows all pass is
// forwarded as is.
type filterOp struct {
	baseOperator
	mem  *bufferPool
	cond *expr.Expr
	rows []int32 // reused
}

func newFilterOp(spec *sabotv1.FilterOperator, v *jobgraph.Vertex, e *env) (*filterOp, error) {
	x, err := expr.Compile(spec.GetCondition(), v.InputSchema)
	if err != nil {
		return nil, fmt.Errorf("filter condition: %w", err)
	}
	if x.Type().ID() != arrow.BOOL {
		return nil, fmt.Errorf("filter condition %q is %s, not boolean", spec.GetCondition(), x.Type())
	}
	return &filterOp{mem: newBufferPool(e.mem, opPoolBytes), cond: x}, nil
}

func (f *filterOp) ProcessBatch(ctx context.Context, rec arrow.RecordBatch, out Output) error {
	rows, err := f.cond.Select(ctx, f.mem, rec, f.rows[:0])
	f.rows = rows
	if err != nil {
		return fmt.Errorf("filter condition: %w", err)
	}
	switch len(rows) {
	case 0:
		return nil
	case int(rec.NumRows()):
		return out.Emit(ctx, rec) // every row passes: no copy
	}
	kept, err := gather(ctx, f.mem, rec, rows)
	if err != nil {
		return err
	}
	err = out.Emit(ctx, kept)
	kept.Release()
	return err
}

// Close empties the pool, as mapOp's.
func (f *filterOp) Close() error {
	f.mem.Close()
	return nil
}

// snapshotState forwards to the counted sink.
func (c *sinkCounter) snapshotState(ctx context.Context, id int64) (*clusterv1.OperatorSnapshot, uploadFunc, error) {
	if s, ok := c.Operator.(snapshotter); ok {
		return s.snapshotState(ctx, id)
	}
	return nil, nil, nil
}

// checkpointComplete forwards to the counted sink.
func (c *sinkCounter) checkpointComplete(ctx context.Context, id int64) error {
	if l, ok := c.Operator.(completeListener); ok {
		return l.checkpointComplete(ctx, id)
	}
	return nil
}

// restoreState forwards to the counted sink.
func (c *sinkCounter) restoreState(ctx context.Context, snaps []*clusterv1.OperatorSnapshot) error {
	if r, ok := c.Operator.(restorer); ok {
		return r.restoreState(ctx, snaps)
	}
	return nil
}
