package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/sabotdev/sabot/worker/state"
)

// MaxRowsFunction is the built-in "max-rows": per key and group, the rows
// whose `field` equals the group's maximum, emitted once the group is
// complete in event time — the "rows having the max of their window"
// shape of Nexmark q5 (hot items) and q7 (highest bid), which SQL writes
// as a window aggregate joined back to its input.
//
// Config:
//
//   - field: the column to maximise (integer, float or timestamp); rows
//     where it is null are ignored;
//   - window_end_field: a timestamp (or int64 ms) column; rows with the
//     same value form a group, complete when the watermark reaches that
//     value - 1 (the input is a window's output, e.g. window_end);
//   - or time_field and size_ms: groups are tumbling windows of size_ms
//     over time_field, [k·size, (k+1)·size); with inclusive_end "true" a
//     row exactly on a boundary also belongs to the window ending there
//     as a candidate: it is emitted with that window's rows if it equals
//     the window's max, but does not count towards the max (the
//     BETWEEN window_end - size AND window_end of Nexmark q7, whose max
//     is over [start, end) but whose matching bids include the end).
//
// The output columns are input columns, taken by name. Rows are emitted
// in arrival order. State per (key, group): the max so far and the rows
// equal to it (a higher value clears them); both are dropped when the
// group fires.
const MaxRowsFunction = "max-rows"

type maxRows struct {
	field, endField, timeField string
	size                       int64
	inclusiveEnd               bool

	fieldCol, endCol, timeCol int
	outCols                   []int // input column of each output column
	max                       *state.ValueState[float64]
	rows                      *state.ListState[[]byte]
	edge                      *state.ListState[[]byte] // boundary candidates: value, then row
	ns                        []byte
	buf                       []byte
}

func newMaxRows(config map[string]string) (ProcessFunction, error) {
	f := &maxRows{field: config["field"], endField: config["window_end_field"], timeField: config["time_field"]}
	if f.field == "" {
		return nil, errors.New(`max-rows: config "field" (the column to maximise) is required`)
	}
	switch {
	case f.endField != "" && f.timeField == "":
	case f.endField == "" && f.timeField != "":
		s, err := strconv.ParseInt(config["size_ms"], 10, 64)
		if err != nil || s <= 0 {
			return nil, fmt.Errorf(`max-rows: config "size_ms" must be a positive integer with time_field, got %q`, config["size_ms"])
		}
		f.size = s
		f.inclusiveEnd = config["inclusive_end"] == "true"
	default:
		return nil, errors.New(`max-rows: set either config "window_end_field" or "time_field" with "size_ms"`)
	}
	return f, nil
}

func (f *maxRows) Open(ctx *ProcessContext) error {
	in := ctx.InputSchema()
	col := func(name string, what string, ok func(arrow.Type) bool) (int, error) {
		idx := in.FieldIndices(name)
		if len(idx) == 0 || !ok(in.Field(idx[0]).Type.ID()) {
			return -1, fmt.Errorf("max-rows: %q must be %s input column", name, what)
		}
		return idx[0], nil
	}
	isNum := func(t arrow.Type) bool { return arrow.IsInteger(t) || arrow.IsFloating(t) || t == arrow.TIMESTAMP }
	isTime := func(t arrow.Type) bool { return t == arrow.TIMESTAMP || t == arrow.INT64 }
	var err error
	if f.fieldCol, err = col(f.field, "a numeric", isNum); err != nil {
		return err
	}
	f.endCol, f.timeCol = -1, -1
	if f.endField != "" {
		if f.endCol, err = col(f.endField, "a timestamp or int64", isTime); err != nil {
			return err
		}
	} else if f.timeCol, err = col(f.timeField, "a timestamp or int64", isTime); err != nil {
		return err
	}
	for _, of := range ctx.OutputSchema().Fields() {
		idx := in.FieldIndices(of.Name)
		// Same kind of value; timestamps in any unit or zone (they are
		// carried as ms).
		if len(idx) == 0 || in.Field(idx[0]).Type.ID() != of.Type.ID() {
			return fmt.Errorf("max-rows: output column %q must be an input column of type %s", of.Name, of.Type)
		}
		f.outCols = append(f.outCols, idx[0])
	}
	if f.max, err = state.Value(ctx.Keyed(), state.ValueDescriptor[float64]{Name: "max", Codec: state.Float64Codec{}}); err != nil {
		return err
	}
	if f.rows, err = state.List(ctx.Keyed(), state.ListDescriptor[[]byte]{Name: "rows", Codec: state.BytesCodec{}}); err != nil {
		return err
	}
	f.edge, err = state.List(ctx.Keyed(), state.ListDescriptor[[]byte]{Name: "edge", Codec: state.BytesCodec{}})
	return err
}

func (f *maxRows) ProcessElement(ctx *ProcessContext, row Row, _ *Collector) error {
	if row.IsNull(f.fieldCol) {
		return nil
	}
	v := row.Float64(f.fieldCol)
	if f.endCol >= 0 {
		if row.IsNull(f.endCol) {
			return nil
		}
		return f.add(ctx, row, v, row.Timestamp(f.endCol), false)
	}
	if row.IsNull(f.timeCol) {
		return nil
	}
	t := row.Timestamp(f.timeCol)
	end := t - floorMod(t, f.size) + f.size
	if err := f.add(ctx, row, v, end, false); err != nil {
		return err
	}
	if f.inclusiveEnd && floorMod(t, f.size) == 0 {
		return f.add(ctx, row, v, t, true)
	}
	return nil
}

// add offers the row with value v to the group ending at end; a
// candidate does not count towards the group's max.
func (f *maxRows) add(ctx *ProcessContext, row Row, v float64, end int64, candidate bool) error {
	if end-1 <= ctx.Watermark() {
		return nil // the group fired already: late
	}
	f.ns = binary.BigEndian.AppendUint64(f.ns[:0], uint64(end))
	ctx.Keyed().SetCurrentNamespace(f.ns)
	cur, ok, err := f.max.Value()
	if err != nil {
		return err
	}
	if candidate {
		if ok && v < cur {
			return nil
		}
		if err := ctx.RegisterEventTimeTimer(end - 1); err != nil {
			return err
		}
		f.buf = binary.BigEndian.AppendUint64(f.buf[:0], math.Float64bits(v))
		f.buf = encodeRow(f.buf, row, f.outCols)
		return f.edge.Add(f.buf)
	}
	switch {
	case !ok:
		if err := ctx.RegisterEventTimeTimer(end - 1); err != nil {
			return err
		}
	case v < cur:
		return nil
	case v > cur:
		if err := f.rows.Clear(); err != nil {
			return err
		}
	}
	if !ok || v > cur {
		if err := f.max.Update(v); err != nil {
			return err
		}
	}
	f.buf = encodeRow(f.buf[:0], row, f.outCols)
	return f.rows.Add(f.buf)
}

func (f *maxRows) OnTimer(ctx *ProcessContext, _ TimerInfo, out *Collector) error {
	rows, err := f.rows.Get()
	if err != nil {
		return err
	}
	for _, r := range rows {
		if err := decodeRow(r, out); err != nil {
			return err
		}
		if err := out.Emit(); err != nil {
			return err
		}
	}
	cur, ok, err := f.max.Value()
	if err != nil {
		return err
	}
	edge, err := f.edge.Get()
	if err != nil {
		return err
	}
	for _, r := range edge {
		if len(r) < 8 {
			return fmt.Errorf("%w: boundary row", state.ErrCorrupt)
		}
		if !ok || math.Float64frombits(binary.BigEndian.Uint64(r)) != cur {
			continue
		}
		if err := decodeRow(r[8:], out); err != nil {
			return err
		}
		if err := out.Emit(); err != nil {
			return err
		}
	}
	if err := f.edge.Clear(); err != nil {
		return err
	}
	if err := f.rows.Clear(); err != nil {
		return err
	}
	return f.max.Clear()
}

// encodeRow appends the values of row's columns cols: per value a tag
// (0 null, 1 int, 2 float, 3 bytes, 4 bool) and the value.
func encodeRow(dst []byte, row Row, cols []int) []byte {
	for _, c := range cols {
		if row.IsNull(c) {
			dst = append(dst, 0)
			continue
		}
		t := row.rec.Column(c).DataType().ID()
		switch {
		case t == arrow.BOOL:
			b := byte(0)
			if row.Bool(c) {
				b = 1
			}
			dst = append(dst, 4, b)
		case arrow.IsFloating(t):
			dst = binary.BigEndian.AppendUint64(append(dst, 2), math.Float64bits(row.Float64(c)))
		case arrow.IsBaseBinary(t):
			v := row.Bytes(c)
			dst = binary.AppendUvarint(append(dst, 3), uint64(len(v)))
			dst = append(dst, v...)
		case t == arrow.TIMESTAMP:
			dst = binary.AppendVarint(append(dst, 1), row.Timestamp(c))
		default:
			dst = binary.AppendVarint(append(dst, 1), row.Int64(c))
		}
	}
	return dst
}

// decodeRow stages an encoded row's values in out's columns, in order.
func decodeRow(b []byte, out *Collector) error {
	bad := fmt.Errorf("%w: encoded row", state.ErrCorrupt)
	for col := 0; len(b) > 0; col++ {
		tag := b[0]
		b = b[1:]
		switch tag {
		case 0:
			out.SetNull(col)
		case 1:
			v, w := binary.Varint(b)
			if w <= 0 {
				return bad
			}
			b = b[w:]
			if out.typeID(col) == arrow.TIMESTAMP {
				out.SetTimestamp(col, v)
			} else {
				out.SetInt64(col, v)
			}
		case 2:
			if len(b) < 8 {
				return bad
			}
			out.SetFloat64(col, math.Float64frombits(binary.BigEndian.Uint64(b)))
			b = b[8:]
		case 3:
			n, w := binary.Uvarint(b)
			if w <= 0 || uint64(len(b)-w) < n {
				return bad
			}
			out.SetBytes(col, b[w:w+int(n)])
			b = b[w+int(n):]
		case 4:
			if len(b) < 1 {
				return bad
			}
			out.SetBool(col, b[0] != 0)
			b = b[1:]
		default:
			return bad
		}
	}
	return nil
}
