package jobgraph

import (
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/worker/connector/file"
)

// ArrowType is the Arrow type of a declared column type: int64, float64,
// utf8, bool, timestamp[ms, UTC] or binary.
func ArrowType(t sabotv1.ColumnType) (arrow.DataType, bool) {
	switch t {
	case sabotv1.ColumnType_COLUMN_TYPE_INT64:
		return arrow.PrimitiveTypes.Int64, true
	case sabotv1.ColumnType_COLUMN_TYPE_FLOAT64:
		return arrow.PrimitiveTypes.Float64, true
	case sabotv1.ColumnType_COLUMN_TYPE_STRING:
		return arrow.BinaryTypes.String, true
	case sabotv1.ColumnType_COLUMN_TYPE_BOOL:
		return arrow.FixedWidthTypes.Boolean, true
	case sabotv1.ColumnType_COLUMN_TYPE_TIMESTAMP:
		return &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}, true
	case sabotv1.ColumnType_COLUMN_TYPE_BYTES:
		return arrow.BinaryTypes.Binary, true
	default:
		return nil, false
	}
}

// columns turns declared columns into a schema of nullable fields.
func (r *resolver) columns(v *Vertex, field string, cols []*sabotv1.Column) *arrow.Schema {
	fields := make([]arrow.Field, 0, len(cols))
	seen := map[string]bool{}
	for i, c := range cols {
		if seen[c.GetName()] {
			r.fail(v.ID, fmt.Sprintf("%s[%d].name", field, i), "column %q is declared twice", c.GetName())
			continue
		}
		seen[c.GetName()] = true
		t, ok := ArrowType(c.GetType())
		if !ok {
			r.fail(v.ID, fmt.Sprintf("%s[%d].type", field, i), "column %q has no type", c.GetName())
			continue
		}
		fields = append(fields, arrow.Field{Name: c.GetName(), Type: t, Nullable: true})
	}
	return arrow.NewSchema(fields, nil)
}

// RawKafkaSchema is the schema of a Kafka source in raw format: the record's
// key and value bytes.
func RawKafkaSchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "key", Type: arrow.BinaryTypes.Binary, Nullable: true},
		{Name: "value", Type: arrow.BinaryTypes.Binary, Nullable: true},
	}, nil)
}

func (r *resolver) kafkaSource(v *Vertex, field string, k *sabotv1.KafkaSource) {
	if k.GetFormat() == sabotv1.RecordFormat_RECORD_FORMAT_RAW {
		if len(k.GetColumns()) > 0 {
			r.fail(v.ID, field+".columns", "the raw format has the fixed columns key and value; remove columns")
		}
		v.Schema = RawKafkaSchema()
	} else {
		if len(k.GetColumns()) == 0 {
			r.fail(v.ID, field+".columns", "declare the columns to decode from each record")
			return
		}
		v.Schema = r.columns(v, field+".columns", k.GetColumns())
	}
	r.eventTime(v, field, k.GetEventTime(), true)
}

// eventTime checks a source's event time against its schema; ownTime says
// whether the source has a record time to use without timestamp_field.
func (r *resolver) eventTime(v *Vertex, field string, et *sabotv1.EventTime, ownTime bool) {
	if !ownTime && et.GetTimestampField() == "" && et.GetWatermark().GetKind() != nil {
		r.fail(v.ID, field+".event_time.timestamp_field", "this source has no record time: name the column holding the event time")
	}
	if tf := et.GetTimestampField(); tf != "" {
		idx := v.Schema.FieldIndices(tf)
		switch {
		case len(idx) == 0:
			r.fail(v.ID, field+".event_time.timestamp_field", "%q is not a column (columns: %s)", tf, columnNames(v.Schema))
		case !isTimeType(v.Schema.Field(idx[0]).Type):
			r.fail(v.ID, field+".event_time.timestamp_field", "%q is %s; an event time must be a timestamp or an integer of milliseconds", tf, v.Schema.Field(idx[0]).Type)
		}
	}
	if m := et.GetWatermark().GetPunctuatedMarkerField(); m != "" {
		idx := v.Schema.FieldIndices(m)
		if len(idx) == 0 || v.Schema.Field(idx[0]).Type.ID() != arrow.BOOL {
			r.fail(v.ID, field+".event_time.watermark.punctuated_marker_field", "%q must be a boolean column", m)
		}
	}
}

func (r *resolver) fileSource(v *Vertex, field string, f *sabotv1.FileSource) {
	switch {
	case len(f.GetColumns()) > 0:
		v.Schema = r.columns(v, field+".columns", f.GetColumns())
	case f.GetFormat() == sabotv1.FileFormat_FILE_FORMAT_PARQUET:
		// The schema of the first file, which must exist at deploy time.
		files, err := file.List(f.GetPath())
		if err == nil {
			v.Schema, err = file.ParquetSchema(files[0])
		}
		if err != nil {
			r.fail(v.ID, field+".columns", "cannot read the schema of %q (%v); declare the columns", f.GetPath(), err)
			return
		}
	default:
		r.fail(v.ID, field+".columns", "declare the columns to decode from each line")
		return
	}
	r.eventTime(v, field, f.GetEventTime(), false)
}

// aggregatable are the column types first, last and count_distinct take.
var aggregatable = map[arrow.Type]struct{}{ //nolint:gochecknoglobals // immutable lookup table
	arrow.INT64: {}, arrow.FLOAT64: {}, arrow.STRING: {}, arrow.BOOL: {}, arrow.TIMESTAMP: {}, arrow.BINARY: {},
}

func isNumericOrTime(t arrow.DataType) bool {
	return arrow.IsInteger(t.ID()) || arrow.IsFloating(t.ID()) || t.ID() == arrow.TIMESTAMP
}

func isTimeType(t arrow.DataType) bool {
	return t.ID() == arrow.TIMESTAMP || t.ID() == arrow.INT64
}

// keyedInput checks that a keyed operator reads one hash-partitioned input.
func (r *resolver) keyedInput(v *Vertex, what string) bool {
	if len(v.Inputs) != 1 || v.Inputs[0].Partitioning != sabotv1.Partitioning_PARTITIONING_HASH {
		r.fail(v.ID, "graph.edges", "%s is keyed: it needs exactly one input, partitioned by hash on the key (key_by)", what)
		return false
	}
	return true
}

func (r *resolver) keyedAggregate(v *Vertex, field string, a *sabotv1.KeyedAggregate) {
	if !r.keyedInput(v, "keyed_aggregate") {
		return
	}
	in := v.InputSchema
	fields := make([]arrow.Field, 0, len(v.Inputs[0].KeyIndices)+len(a.GetAggregations()))
	seen := map[string]bool{}
	for _, i := range v.Inputs[0].KeyIndices {
		f := in.Field(i)
		seen[f.Name] = true
		fields = append(fields, f)
	}
	for i, ag := range a.GetAggregations() {
		af := fmt.Sprintf("%s.aggregations[%d]", field, i)
		if seen[ag.GetName()] {
			r.fail(v.ID, af+".name", "column %q is produced twice", ag.GetName())
			continue
		}
		seen[ag.GetName()] = true
		var inType arrow.DataType
		if ag.GetField() != "" {
			idx := in.FieldIndices(ag.GetField())
			if len(idx) == 0 {
				r.fail(v.ID, af+".field", "%q is not a column of the input (columns: %s)", ag.GetField(), columnNames(in))
				continue
			}
			inType = in.Field(idx[0]).Type
		}
		if ag.GetFunction() > sabotv1.AggregateFunction_AGGREGATE_FUNCTION_AVG {
			r.fail(v.ID, af+".function", "%s is available in windows only; a running keyed aggregate has count, sum, min, max and avg", ag.GetFunction())
			continue
		}
		t, err := AggregateType(ag.GetFunction(), inType)
		if err != nil {
			r.fail(v.ID, af, "%v", err)
			continue
		}
		fields = append(fields, arrow.Field{Name: ag.GetName(), Type: t, Nullable: true})
	}
	v.Schema = arrow.NewSchema(fields, nil)
}

// AggregateType is the result type of a built-in aggregate over a column of
// type in (nil for COUNT of rows): COUNT → int64; SUM of integers → int64,
// of floats → float64; MIN and MAX keep the input type; AVG → float64.
func AggregateType(fn sabotv1.AggregateFunction, in arrow.DataType) (arrow.DataType, error) {
	numeric := in != nil && (arrow.IsInteger(in.ID()) || arrow.IsFloating(in.ID()))
	switch fn {
	case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_COUNT:
		return arrow.PrimitiveTypes.Int64, nil
	case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_SUM:
		switch {
		case !numeric:
			return nil, fmt.Errorf("sum needs a numeric field, got %v", in)
		case arrow.IsFloating(in.ID()):
			return arrow.PrimitiveTypes.Float64, nil
		default:
			return arrow.PrimitiveTypes.Int64, nil
		}
	case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_MIN, sabotv1.AggregateFunction_AGGREGATE_FUNCTION_MAX:
		if !numeric && (in == nil || in.ID() != arrow.TIMESTAMP) {
			return nil, fmt.Errorf("min and max need a numeric or timestamp field, got %v", in)
		}
		if arrow.IsInteger(in.ID()) {
			return arrow.PrimitiveTypes.Int64, nil
		}
		if arrow.IsFloating(in.ID()) {
			return arrow.PrimitiveTypes.Float64, nil
		}
		return in, nil
	case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_AVG:
		if !numeric {
			return nil, fmt.Errorf("avg needs a numeric field, got %v", in)
		}
		return arrow.PrimitiveTypes.Float64, nil
	case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_FIRST, sabotv1.AggregateFunction_AGGREGATE_FUNCTION_LAST:
		if in == nil {
			return nil, errors.New("first and last need a field")
		}
		if _, ok := aggregatable[in.ID()]; !ok {
			return nil, fmt.Errorf("first and last need a column of a declarable type (int64, float64, string, bool, timestamp, bytes), got %v", in)
		}
		return in, nil
	case sabotv1.AggregateFunction_AGGREGATE_FUNCTION_COUNT_DISTINCT:
		if in == nil {
			return nil, errors.New("count_distinct needs a field")
		}
		if _, ok := aggregatable[in.ID()]; !ok {
			return nil, fmt.Errorf("count_distinct needs a column of a declarable type (int64, float64, string, bool, timestamp, bytes), got %v", in)
		}
		return arrow.PrimitiveTypes.Int64, nil
	default:
		return nil, fmt.Errorf("aggregate function %v is unknown to this version", fn)
	}
}

// WindowStartColumn and WindowEndColumn are the window bounds a window
// aggregate appends to its built-in aggregates' rows.
const (
	WindowStartColumn = "window_start"
	WindowEndColumn   = "window_end"
)

// WindowTimestamp is the type of window_start and window_end.
func WindowTimestamp() arrow.DataType {
	return &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}
}

// EventTimeWindows reports whether w is measured in event time.
func EventTimeWindows(w *sabotv1.WindowAggregate) bool {
	return w.GetTime() != sabotv1.WindowTime_WINDOW_TIME_PROCESSING
}

func (r *resolver) window(v *Vertex, field string, w *sabotv1.WindowAggregate) {
	if !r.keyedInput(v, "window") {
		return
	}
	in := v.InputSchema
	eventTime := EventTimeWindows(w)
	_, global := w.GetAssigner().(*sabotv1.WindowAggregate_Global)
	switch a := w.GetAssigner().(type) {
	case *sabotv1.WindowAggregate_Tumbling:
		if off := a.Tumbling.GetOffsetMs(); off <= -a.Tumbling.GetSizeMs() || off >= a.Tumbling.GetSizeMs() {
			r.fail(v.ID, field+".tumbling.offset_ms", "offset %d ms must be smaller than the size %d ms", off, a.Tumbling.GetSizeMs())
		}
	case *sabotv1.WindowAggregate_Sliding:
		if off := a.Sliding.GetOffsetMs(); off <= -a.Sliding.GetSlideMs() || off >= a.Sliding.GetSlideMs() {
			r.fail(v.ID, field+".sliding.offset_ms", "offset %d ms must be smaller than the slide %d ms", off, a.Sliding.GetSlideMs())
		}
	case *sabotv1.WindowAggregate_Cumulate:
		c := a.Cumulate
		if c.GetMaxSizeMs()%c.GetStepMs() != 0 {
			r.fail(v.ID, field+".cumulate.max_size_ms", "max_size_ms %d must be a multiple of step_ms %d", c.GetMaxSizeMs(), c.GetStepMs())
		}
		if off := c.GetOffsetMs(); off <= -c.GetMaxSizeMs() || off >= c.GetMaxSizeMs() {
			r.fail(v.ID, field+".cumulate.offset_ms", "offset %d ms must be smaller than max_size_ms %d", off, c.GetMaxSizeMs())
		}
	case *sabotv1.WindowAggregate_Session:
		if gf := a.Session.GetGapField(); gf != "" {
			idx := in.FieldIndices(gf)
			if len(idx) == 0 || in.Field(idx[0]).Type.ID() != arrow.INT64 {
				r.fail(v.ID, field+".session.gap_field", "%q must be an int64 column of the input holding the gap in ms (columns: %s)", gf, columnNames(in))
			}
		}
	}
	if global && w.GetTrigger() == nil {
		r.fail(v.ID, field+".trigger", "a global window never fires by itself: give it a trigger (count, for example)")
	}
	if !eventTime && w.GetAllowedLatenessMs() > 0 {
		r.fail(v.ID, field+".allowed_lateness_ms", "allowed lateness applies to event-time windows only")
	}
	if !eventTime && w.GetLateOutput() != "" {
		r.fail(v.ID, field+".late_output", "processing-time windows have no late rows")
	}
	if eventTime && !global {
		if _, err := WindowTimeColumn(in, w.GetTimestampField()); err != nil {
			r.fail(v.ID, field+".timestamp_field", "%v", err)
		}
	}
	if d := w.GetEvictor().GetDelta(); d != nil {
		idx := in.FieldIndices(d.GetField())
		if len(idx) == 0 || !isNumericOrTime(in.Field(idx[0]).Type) {
			r.fail(v.ID, field+".evictor.delta.field", "%q must be a numeric column of the input (columns: %s)", d.GetField(), columnNames(in))
		}
	}

	if w.GetFunction() != "" {
		v.Schema = r.columns(v, field+".output", w.GetOutput())
	} else {
		if len(w.GetOutput()) > 0 {
			r.fail(v.ID, field+".output", "output columns go with a function; built-in aggregates name their own columns")
		}
		fields := make([]arrow.Field, 0, len(v.Inputs[0].KeyIndices)+len(w.GetAggregations())+2)
		seen := map[string]bool{WindowStartColumn: true, WindowEndColumn: true}
		for _, i := range v.Inputs[0].KeyIndices {
			f := in.Field(i)
			if seen[f.Name] {
				r.fail(v.ID, "graph.edges", "key column %q clashes with the window columns window_start and window_end; rename it with a map", f.Name)
			}
			seen[f.Name] = true
			fields = append(fields, f)
		}
		for i, ag := range w.GetAggregations() {
			af := fmt.Sprintf("%s.aggregations[%d]", field, i)
			if seen[ag.GetName()] {
				r.fail(v.ID, af+".name", "column %q is produced twice", ag.GetName())
				continue
			}
			seen[ag.GetName()] = true
			var inType arrow.DataType
			if ag.GetField() != "" {
				idx := in.FieldIndices(ag.GetField())
				if len(idx) == 0 {
					r.fail(v.ID, af+".field", "%q is not a column of the input (columns: %s)", ag.GetField(), columnNames(in))
					continue
				}
				inType = in.Field(idx[0]).Type
			}
			t, err := AggregateType(ag.GetFunction(), inType)
			if err != nil {
				r.fail(v.ID, af, "%v", err)
				continue
			}
			fields = append(fields, arrow.Field{Name: ag.GetName(), Type: t, Nullable: true})
		}
		fields = append(fields,
			arrow.Field{Name: WindowStartColumn, Type: WindowTimestamp(), Nullable: true},
			arrow.Field{Name: WindowEndColumn, Type: WindowTimestamp(), Nullable: true})
		v.Schema = arrow.NewSchema(fields, nil)
	}
	if lo := w.GetLateOutput(); lo != "" {
		v.SideOutputs = append(v.SideOutputs, SideOutput{Name: lo, Schema: in})
	}
}

// WindowTimeColumn is the index of the event-time column of a window's
// input: the named one (a timestamp or an int64 of ms), else the first
// timestamp column.
func WindowTimeColumn(in *arrow.Schema, name string) (int, error) {
	if name != "" {
		idx := in.FieldIndices(name)
		if len(idx) == 0 {
			return -1, fmt.Errorf("%q is not a column of the input (columns: %s)", name, columnNames(in))
		}
		if !isTimeType(in.Field(idx[0]).Type) {
			return -1, fmt.Errorf("%q is %s; an event time must be a timestamp or an integer of milliseconds", name, in.Field(idx[0]).Type)
		}
		return idx[0], nil
	}
	for i, f := range in.Fields() {
		if f.Type.ID() == arrow.TIMESTAMP {
			return i, nil
		}
	}
	return -1, fmt.Errorf("the input has no timestamp column (columns: %s); name the event-time column", columnNames(in))
}
