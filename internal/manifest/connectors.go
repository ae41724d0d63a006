package manifest

import (
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
)

// Keys and value names of the Kafka, aggregate and process operators. Enum
// value lists are the manifest names of the proto enum values 1, 2, …

func kafkaSourceKeys() []string {
	return []string{"brokers", "topics", "topic_pattern", "start", "start_timestamp_ms", "start_offsets", "format", "columns", "bad_records", "dead_letter_topic", "event_time"}
}
func fileSourceKeys() []string { return []string{"path", "format", "columns", "event_time"} }
func kafkaSinkKeys() []string {
	return []string{"brokers", "topic", "key_fields", "partitioner", "format", "delivery", "transaction_timeout_ms", "broker_max_transaction_timeout_ms", "transactional_id_prefix"}
}
func eventTimeKeys() []string {
	return []string{"timestamp_field", "max_out_of_orderness_ms", "monotonous", "punctuated_marker_field", "idle_timeout_ms", "interval_ms"}
}
func processKeys() []string {
	return []string{"name", "output", "config", "side_outputs", "state_ttl_ms"}
}
func functionKeys() []string {
	return []string{"name", "outputs", "on_failure", "max_attempts"}
}
func functionFailurePolicies() []string { return []string{"fail", "dead_letter"} }
func windowKeys() []string {
	return []string{"tumbling", "sliding", "session", "cumulate", "global", "time", "timestamp_field", "trigger",
		"evictor", "allowed_lateness_ms", "late_output", "aggregations", "function", "output", "config"}
}
func windowTimes() []string { return []string{"event", "processing"} }
func triggerKeys() []string {
	return []string{"event_time", "processing_time", "count", "continuous_event_time_ms", "purging"}
}
func evictorKeys() []string    { return []string{"count", "time_ms", "delta", "evict_after"} }
func kafkaStarts() []string    { return []string{"earliest", "latest", "timestamp", "offsets"} }
func recordFormats() []string  { return []string{"json", "raw", "csv"} }
func badRecordNames() []string { return []string{"fail", "skip", "dead_letter"} }
func partitioners() []string   { return []string{"hash", "round_robin", "fixed"} }
func columnTypes() []string {
	return []string{"int64", "float64", "string", "bool", "timestamp", "bytes"}
}
func aggregateNames() []string {
	return []string{"count", "sum", "min", "max", "avg", "first", "last", "count_distinct"}
}

// strings returns a list of strings, or a single string as a list of one.
func (d *decoder) strs(e entry, what string) []string {
	refs, _ := d.list(e, what)
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, r.id)
	}
	return out
}

func (d *decoder) boolean(e entry) bool {
	s, ok := d.text(e, "true or false")
	if !ok {
		return false
	}
	switch s {
	case "true":
		return true
	case "false":
		return false
	}
	d.errorf(e.valuePos(), e.path, "expected true or false, got %q", s)
	return false
}

// columns decodes an ordered mapping of column name → type.
func (d *decoder) columns(e entry) []*sabotv1.Column {
	entries, _ := d.mapping(e.path, e.value, nil)
	cols := make([]*sabotv1.Column, 0, len(entries))
	for _, ce := range entries {
		c := &sabotv1.Column{Name: ce.key}
		if i, ok := d.enum(ce, columnTypes()); ok {
			c.Type = sabotv1.ColumnType(i + 1)
		}
		cols = append(cols, c)
	}
	return cols
}

func (d *decoder) eventTime(e entry) *sabotv1.EventTime {
	entries, _ := d.mapping(e.path, e.value, eventTimeKeys())
	et := &sabotv1.EventTime{Watermark: &sabotv1.WatermarkStrategy{}}
	wm := et.Watermark
	kinds := 0
	for _, x := range entries {
		switch x.key {
		case "timestamp_field":
			et.TimestampField, _ = d.text(x, "a column name")
		case "max_out_of_orderness_ms":
			v, _ := d.integer(x, math.MinInt64, math.MaxInt64)
			wm.Kind = &sabotv1.WatermarkStrategy_MaxOutOfOrdernessMs{MaxOutOfOrdernessMs: v}
			kinds++
		case "monotonous":
			wm.Kind = &sabotv1.WatermarkStrategy_Monotonous{Monotonous: d.boolean(x)}
			kinds++
		case "punctuated_marker_field":
			v, _ := d.text(x, "a boolean column name")
			wm.Kind = &sabotv1.WatermarkStrategy_PunctuatedMarkerField{PunctuatedMarkerField: v}
			kinds++
		case "idle_timeout_ms":
			wm.IdleTimeoutMs, _ = d.integer(x, math.MinInt64, math.MaxInt64)
		case "interval_ms":
			wm.IntervalMs, _ = d.integer(x, math.MinInt64, math.MaxInt64)
		}
	}
	if kinds > 1 {
		d.errorf(e.pos, e.path, "set one watermark strategy: max_out_of_orderness_ms, monotonous or punctuated_marker_field")
	}
	return et
}

func (d *decoder) kafkaSource(e entry) (*sabotv1.KafkaSource, bool) {
	entries, ok := d.mapping(e.path, e.value, kafkaSourceKeys())
	k := &sabotv1.KafkaSource{}
	for _, x := range entries {
		switch x.key {
		case "brokers":
			k.Brokers = d.strs(x, "broker addresses")
		case "topics":
			k.Topics = d.strs(x, "topic names")
		case "topic_pattern":
			k.TopicPattern, _ = d.text(x, "a regular expression")
			if _, err := regexp.Compile(k.TopicPattern); err != nil {
				d.errorf(x.valuePos(), x.path, "not a regular expression: %v", err)
			}
		case "start":
			if i, good := d.enum(x, kafkaStarts()); good {
				k.Start = sabotv1.KafkaStart(i + 1)
			}
		case "start_timestamp_ms":
			k.StartTimestampMs, _ = d.integer(x, math.MinInt64, math.MaxInt64)
		case "start_offsets":
			k.StartOffsets = d.startOffsets(x)
		case "format":
			if i, good := d.enum(x, recordFormats()); good {
				k.Format = sabotv1.RecordFormat(i + 1)
			}
		case "columns":
			k.Columns = d.columns(x)
		case "bad_records":
			if i, good := d.enum(x, badRecordNames()); good {
				k.BadRecords = sabotv1.BadRecordPolicy(i + 1)
			}
		case "dead_letter_topic":
			k.DeadLetterTopic, _ = d.text(x, "a topic name")
		case "event_time":
			k.EventTime = d.eventTime(x)
		}
	}
	return k, ok
}

func (d *decoder) fileSource(e entry) (*sabotv1.FileSource, bool) {
	entries, ok := d.mapping(e.path, e.value, fileSourceKeys())
	f := &sabotv1.FileSource{}
	var hasPath bool
	for _, x := range entries {
		switch x.key {
		case "path":
			hasPath = true
			f.Path, _ = d.text(x, "a file, directory or glob")
		case "format":
			if i, good := d.enum(x, fileFormats()); good {
				f.Format = sabotv1.FileFormat(i + 1)
			}
		case "columns":
			f.Columns = d.columns(x)
		case "event_time":
			f.EventTime = d.eventTime(x)
		}
	}
	if ok && !hasPath {
		d.errorf(e.pos, e.path, "missing required key \"path\"")
	}
	return f, ok
}

func (d *decoder) kafkaSink(e entry) (*sabotv1.KafkaSink, bool) {
	entries, ok := d.mapping(e.path, e.value, kafkaSinkKeys())
	k := &sabotv1.KafkaSink{}
	for _, x := range entries {
		switch x.key {
		case "brokers":
			k.Brokers = d.strs(x, "broker addresses")
		case "topic":
			k.Topic, _ = d.text(x, "a topic name")
		case "key_fields":
			k.KeyFields = d.strs(x, "column names")
		case "partitioner":
			if i, good := d.enum(x, partitioners()); good {
				k.Partitioner = sabotv1.KafkaPartitioner(i + 1)
			}
		case "format":
			if i, good := d.enum(x, []string{"json"}); good {
				k.Format = sabotv1.RecordFormat(i + 1)
			}
		case "delivery":
			if i, good := d.enum(x, deliveries()); good {
				k.Delivery = sabotv1.DeliveryGuarantee(i + 1)
			}
		case "transaction_timeout_ms":
			k.TransactionTimeoutMs, _ = d.integer(x, math.MinInt64, math.MaxInt64)
		case "broker_max_transaction_timeout_ms":
			k.BrokerMaxTransactionTimeoutMs, _ = d.integer(x, math.MinInt64, math.MaxInt64)
		case "transactional_id_prefix":
			k.TransactionalIdPrefix, _ = d.text(x, "a transactional id prefix")
		}
	}
	return k, ok
}

// aggregateRe matches `count`, `count(*)`, `sum(amount)`.
var aggregateRe = regexp.MustCompile(`^\s*([A-Za-z_]+)\s*(?:\(\s*([^()]*?)\s*\))?\s*$`) //nolint:gochecknoglobals // compiled once, immutable

// keyedAggregate decodes an ordered mapping of output column →
// "function(field)", or the long form {aggregations: <that mapping>,
// state_ttl_ms: N}.
func (d *decoder) keyedAggregate(e entry) (*sabotv1.KeyedAggregate, bool) {
	a := &sabotv1.KeyedAggregate{}
	if m, isMap := e.value.(*ast.MappingNode); isMap && hasKey(m, "aggregations") {
		entries, ok := d.mapping(e.path, e.value, []string{"aggregations", "state_ttl_ms"})
		for _, x := range entries {
			switch x.key {
			case "aggregations":
				a.Aggregations = d.aggregations(x)
			case "state_ttl_ms":
				a.StateTtlMs, _ = d.integer(x, math.MinInt64, math.MaxInt64)
			}
		}
		return a, ok
	}
	a.Aggregations = d.aggregations(e)
	_, isMap := e.value.(*ast.MappingNode)
	return a, isMap
}

// hasKey reports whether the mapping m has the key k.
func hasKey(m *ast.MappingNode, k string) bool {
	for _, v := range m.Values {
		if v.Key != nil && v.Key.String() == k {
			return true
		}
	}
	return false
}

// aggregations decodes an ordered mapping of output column →
// "function(field)".
func (d *decoder) aggregations(e entry) []*sabotv1.Aggregation {
	entries, _ := d.mapping(e.path, e.value, nil)
	var aggs []*sabotv1.Aggregation
	for _, x := range entries {
		s, good := d.text(x, "an aggregate such as count, sum(amount) or avg(price)")
		if !good {
			continue
		}
		m := aggregateRe.FindStringSubmatch(s)
		if m == nil {
			d.errorf(x.valuePos(), x.path, "expected an aggregate such as count, sum(amount) or avg(price), got %q", s)
			continue
		}
		fn := strings.ToLower(m[1])
		idx := -1
		for i, n := range aggregateNames() {
			if n == fn {
				idx = i
			}
		}
		if idx < 0 {
			d.errorf(x.valuePos(), x.path, "unknown aggregate %q%s (one of: %s)", m[1], suggestion(fn, aggregateNames()), strings.Join(aggregateNames(), ", "))
			continue
		}
		field := m[2]
		if field == "*" {
			field = ""
		}
		if fn != "count" && field == "" {
			d.errorf(x.valuePos(), x.path, "%s needs a column: %s(column)", fn, fn)
			continue
		}
		aggs = append(aggs, &sabotv1.Aggregation{Name: x.key, Function: sabotv1.AggregateFunction(idx + 1), Field: field})
	}
	return aggs
}

func (d *decoder) process(e entry) (*sabotv1.ProcessFunction, bool) {
	entries, ok := d.mapping(e.path, e.value, processKeys())
	p := &sabotv1.ProcessFunction{}
	for _, x := range entries {
		switch x.key {
		case "name":
			p.Name, _ = d.text(x, "a registered function name")
		case "output":
			p.Output = d.columns(x)
		case "config":
			p.Config = d.labels(x)
		case "side_outputs":
			entries, _ := d.mapping(x.path, x.value, nil)
			for _, so := range entries {
				p.SideOutputs = append(p.SideOutputs, &sabotv1.SideOutput{Name: so.key, Columns: d.columns(so)})
			}
		case "state_ttl_ms":
			p.StateTtlMs, _ = d.integer(x, math.MinInt64, math.MaxInt64)
		}
	}
	return p, ok
}

// function decodes a function step: the registered function's name, the
// columns of its outputs (an output written as null or {} has the raw
// (key, value) columns), the failure policy.
func (d *decoder) function(e entry) (*sabotv1.FunctionStep, bool) {
	entries, ok := d.mapping(e.path, e.value, functionKeys())
	f := &sabotv1.FunctionStep{}
	for _, x := range entries {
		switch x.key {
		case "name":
			f.Name, _ = d.text(x, "a deployed function's name")
		case "outputs":
			outs, _ := d.mapping(x.path, x.value, nil)
			f.Outputs = map[string]*sabotv1.OutputColumns{}
			for _, o := range outs {
				cols := &sabotv1.OutputColumns{}
				if !isNull(o.value) {
					cols.Columns = d.columns(o)
				}
				f.Outputs[o.key] = cols
			}
		case "on_failure":
			if i, good := d.enum(x, functionFailurePolicies()); good {
				f.OnFailure = sabotv1.FunctionFailurePolicy(i + 1)
			}
		case "max_attempts":
			n, _ := d.integer(x, 0, 100)
			f.MaxAttempts = int32(n)
		}
	}
	return f, ok
}

// window decodes a window step: one assigner key, then its settings.
func (d *decoder) window(e entry) (*sabotv1.WindowAggregate, bool) {
	entries, ok := d.mapping(e.path, e.value, windowKeys())
	w := &sabotv1.WindowAggregate{}
	var assigners []string
	ms := func(x entry) int64 { v, _ := d.integer(x, math.MinInt64, math.MaxInt64); return v }
	for _, x := range entries {
		switch x.key {
		case "tumbling":
			assigners = append(assigners, x.key)
			t := &sabotv1.TumblingWindow{}
			sub, _ := d.mapping(x.path, x.value, []string{"size_ms", "offset_ms"})
			for _, y := range sub {
				switch y.key {
				case "size_ms":
					t.SizeMs = ms(y)
				case "offset_ms":
					t.OffsetMs = ms(y)
				}
			}
			w.Assigner = &sabotv1.WindowAggregate_Tumbling{Tumbling: t}
		case "sliding":
			assigners = append(assigners, x.key)
			t := &sabotv1.SlidingWindow{}
			sub, _ := d.mapping(x.path, x.value, []string{"size_ms", "slide_ms", "offset_ms"})
			for _, y := range sub {
				switch y.key {
				case "size_ms":
					t.SizeMs = ms(y)
				case "slide_ms":
					t.SlideMs = ms(y)
				case "offset_ms":
					t.OffsetMs = ms(y)
				}
			}
			w.Assigner = &sabotv1.WindowAggregate_Sliding{Sliding: t}
		case "session":
			assigners = append(assigners, x.key)
			t := &sabotv1.SessionWindow{}
			sub, _ := d.mapping(x.path, x.value, []string{"gap_ms", "gap_field"})
			for _, y := range sub {
				switch y.key {
				case "gap_ms":
					t.GapMs = ms(y)
				case "gap_field":
					t.GapField, _ = d.text(y, "an int64 column name")
				}
			}
			w.Assigner = &sabotv1.WindowAggregate_Session{Session: t}
		case "cumulate":
			assigners = append(assigners, x.key)
			t := &sabotv1.CumulateWindow{}
			sub, _ := d.mapping(x.path, x.value, []string{"step_ms", "max_size_ms", "offset_ms"})
			for _, y := range sub {
				switch y.key {
				case "step_ms":
					t.StepMs = ms(y)
				case "max_size_ms":
					t.MaxSizeMs = ms(y)
				case "offset_ms":
					t.OffsetMs = ms(y)
				}
			}
			w.Assigner = &sabotv1.WindowAggregate_Cumulate{Cumulate: t}
		case "global":
			assigners = append(assigners, x.key)
			if !isNull(x.value) {
				_, _ = d.mapping(x.path, x.value, []string{})
			}
			w.Assigner = &sabotv1.WindowAggregate_Global{Global: &sabotv1.GlobalWindow{}}
		case "time":
			if i, good := d.enum(x, windowTimes()); good {
				w.Time = sabotv1.WindowTime(i + 1)
			}
		case "timestamp_field":
			w.TimestampField, _ = d.text(x, "a column name")
		case "trigger":
			w.Trigger = d.trigger(x)
		case "evictor":
			w.Evictor = d.evictor(x)
		case "allowed_lateness_ms":
			w.AllowedLatenessMs = ms(x)
		case "late_output":
			w.LateOutput, _ = d.text(x, "a side output name")
		case "aggregations":
			w.Aggregations = d.aggregations(x)
		case "function":
			w.Function, _ = d.text(x, "a registered function name")
		case "output":
			w.Output = d.columns(x)
		case "config":
			w.Config = d.labels(x)
		}
	}
	if ok && len(assigners) != 1 {
		d.errorf(e.pos, e.path, "a window needs exactly one of tumbling, sliding, session, cumulate or global, got %d", len(assigners))
	}
	return w, ok
}

func (d *decoder) trigger(e entry) *sabotv1.WindowTrigger {
	entries, _ := d.mapping(e.path, e.value, triggerKeys())
	t := &sabotv1.WindowTrigger{}
	kinds := 0
	for _, x := range entries {
		switch x.key {
		case "event_time":
			kinds++
			t.Kind = &sabotv1.WindowTrigger_EventTime{EventTime: d.boolean(x)}
		case "processing_time":
			kinds++
			t.Kind = &sabotv1.WindowTrigger_ProcessingTime{ProcessingTime: d.boolean(x)}
		case "count":
			kinds++
			v, _ := d.integer(x, math.MinInt64, math.MaxInt64)
			t.Kind = &sabotv1.WindowTrigger_Count{Count: v}
		case "continuous_event_time_ms":
			kinds++
			v, _ := d.integer(x, math.MinInt64, math.MaxInt64)
			t.Kind = &sabotv1.WindowTrigger_ContinuousEventTimeMs{ContinuousEventTimeMs: v}
		case "purging":
			t.Purging = d.boolean(x)
		}
	}
	if kinds > 1 {
		d.errorf(e.pos, e.path, "set one trigger: event_time, processing_time, count or continuous_event_time_ms")
	}
	return t
}

func (d *decoder) evictor(e entry) *sabotv1.WindowEvictor {
	entries, _ := d.mapping(e.path, e.value, evictorKeys())
	ev := &sabotv1.WindowEvictor{}
	kinds := 0
	for _, x := range entries {
		switch x.key {
		case "count":
			kinds++
			v, _ := d.integer(x, math.MinInt64, math.MaxInt64)
			ev.Kind = &sabotv1.WindowEvictor_Count{Count: v}
		case "time_ms":
			kinds++
			v, _ := d.integer(x, math.MinInt64, math.MaxInt64)
			ev.Kind = &sabotv1.WindowEvictor_TimeMs{TimeMs: v}
		case "delta":
			kinds++
			de := &sabotv1.DeltaEvictor{}
			sub, _ := d.mapping(x.path, x.value, []string{"field", "threshold"})
			for _, y := range sub {
				switch y.key {
				case "field":
					de.Field, _ = d.text(y, "a numeric column name")
				case "threshold":
					s, good := d.text(y, "a number")
					if good {
						f, err := strconv.ParseFloat(s, 64)
						if err != nil {
							d.errorf(y.valuePos(), y.path, "expected a number, got %q", s)
						}
						de.Threshold = f
					}
				}
			}
			ev.Kind = &sabotv1.WindowEvictor_Delta{Delta: de}
		case "evict_after":
			ev.EvictAfter = d.boolean(x)
		}
	}
	if kinds > 1 {
		d.errorf(e.pos, e.path, "set one evictor: count, time_ms or delta")
	}
	return ev
}

// startOffsets decodes {topic: {partition: offset, …}, …}.
func (d *decoder) startOffsets(e entry) []*sabotv1.KafkaPartitionOffset {
	topics, _ := d.mapping(e.path, e.value, nil)
	var out []*sabotv1.KafkaPartitionOffset
	for _, t := range topics {
		parts, _ := d.mapping(t.path, t.value, nil)
		for _, p := range parts {
			n, err := strconv.ParseInt(p.key, 10, 32)
			if err != nil || n < 0 {
				d.errorf(p.pos, p.path, "expected a partition number, got %q", p.key)
				continue
			}
			off, _ := d.integer(p, math.MinInt64, math.MaxInt64)
			out = append(out, &sabotv1.KafkaPartitionOffset{Topic: t.key, Partition: int32(n), Offset: off})
		}
	}
	return out
}
