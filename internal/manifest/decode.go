package manifest

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// The keys each mapping of a manifest may hold, in the order the docs list
// them. Unknown keys are errors: a misspelled optional key would otherwise
// be silently ignored and the job would run with a default nobody chose.
// (Functions rather than package variables, so nothing can modify them.)
func jobKeys() []string {
	return []string{"name", "parallelism", "max_parallelism", "state_backend", "checkpointing", "restart_strategy", "autoscaler", "labels", "steps"}
}

func stepKeys() []string {
	return append([]string{"id", "inputs", "partitioning", "key_by", "parallelism"}, operatorKeys()...)
}

func operatorKeys() []string {
	return []string{"sequence", "nexmark", "kafka_source", "file_source", "map", "filter", "keyed_aggregate", "window", "process", "function", "print", "file", "blackhole", "kafka_sink"}
}
func sequenceKeys() []string { return []string{"start", "end", "rows_per_second"} }
func nexmarkKeys() []string  { return []string{"table", "seed", "events", "events_per_second"} }

// nexmarkTables are the manifest's names of sabotv1.NexmarkTable 1, 2, …
func nexmarkTables() []string { return []string{"bid", "person", "auction"} }
func printKeys() []string     { return []string{"prefix"} }
func fileKeys() []string      { return []string{"path", "format"} }

// partitionings are the manifest's names of sabotv1.Partitioning 1, 2, …
func partitionings() []string { return []string{"forward", "hash", "rebalance", "broadcast"} }

// fileFormats are the manifest's names of sabotv1.FileFormat 1, 2, …
func fileFormats() []string { return []string{"json_lines", "parquet"} }

// pos is a 1-based line and column; the zero pos means "nowhere in the file".
type pos struct{ line, col int }

// decoder turns the YAML AST of one manifest into a JobSpec. It records
// where every manifest field was written so that problems found later, by
// protovalidate and jobgraph on the proto, can be reported at the line a
// person edits.
type decoder struct {
	file string
	errs Errors

	// anchors are the document's anchors in file order, for aliases.
	anchors []*ast.AnchorNode
	// at maps a manifest path ("steps[1].parallelism") to the position of
	// its key, or of the item itself for list items and steps.
	at map[string]pos
	// exprs maps the manifest path of an expression (a map column or a
	// filter) to its scalar node, to place expression errors inside it.
	exprs map[string]ast.Node

	steps []*step
	byID  map[string]*step
	// edges[k] is the step input that became graph.edges[k].
	edges []edgeOrigin
}

// step is what the decoder knows about one entry of steps.
type step struct {
	index int
	path  string // "steps[3]"
	pos   pos
	id    string
	kind  jobgraph.Kind // 0 when the operator is missing or broken
	op    string        // the operator key, e.g. "map"

	inputs       []ref // as written; nil when inputs is absent
	hasInputs    bool
	partitioning sabotv1.Partitioning
	setPartition bool
	keyBy        []string
	// columns are a map step's output column names, by index, to turn
	// operator.map.columns[j] back into steps[i].map.<name>.
	columns []string

	vertex *sabotv1.Vertex
}

// ref is one step id written in a step's inputs, with the side output
// read ("step.side") if any.
type ref struct {
	id   string
	side string
	path string // "steps[3].inputs[0]"
	pos  pos
}

// edgeOrigin is where a graph edge came from: input j of step i, or j == -1
// for the implicit "previous step" input.
type edgeOrigin struct {
	step  *step
	input int
}

func newDecoder(file string) *decoder {
	return &decoder{
		file:  file,
		at:    map[string]pos{},
		exprs: map[string]ast.Node{},
		byID:  map[string]*step{},
	}
}

func (d *decoder) errorf(p pos, field, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: p.line, Column: p.col, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// posOf is where a person would look for n: a block mapping's first key
// rather than its first ':' (which is where goccy puts the mapping's token).
func posOf(n ast.Node) pos {
	switch x := n.(type) {
	case nil:
		return pos{}
	case *ast.MappingNode:
		if !x.IsFlowStyle && len(x.Values) > 0 {
			return posOf(x.Values[0])
		}
	case *ast.MappingValueNode:
		return posOf(x.Key)
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return pos{}
	}
	return pos{line: tk.Position.Line, col: tk.Position.Column}
}

// resolve looks through anchors, tags and aliases to the node that holds
// the value. An alias resolves to the last anchor of its name defined
// before it, as YAML says. Tags are ignored: a manifest's schema, not the
// tag, decides a value's type.
func (d *decoder) resolve(n ast.Node) ast.Node {
	// Bounded: an alias can only name an anchor defined before it, but a
	// malformed document should not be able to make this loop.
	for range 64 {
		switch x := n.(type) {
		case *ast.AnchorNode:
			n = x.Value
		case *ast.TagNode:
			n = x.Value
		case *ast.AliasNode:
			n = d.anchor(x)
		default:
			return n
		}
	}
	return nil
}

func (d *decoder) anchor(a *ast.AliasNode) ast.Node {
	if a.Value == nil {
		return nil
	}
	name := a.Value.GetToken().Value
	at := a.GetToken().Position.Offset
	var found ast.Node
	for _, an := range d.anchors {
		if an.Name != nil && an.Name.GetToken().Value == name && an.GetToken().Position.Offset < at {
			found = an.Value
		}
	}
	return found
}

func isNull(n ast.Node) bool {
	_, null := n.(*ast.NullNode)
	return n == nil || null
}

// describe names a value for "expected X, got Y" messages.
func describe(n ast.Node) string {
	switch x := n.(type) {
	case nil, *ast.NullNode:
		return "null"
	case *ast.StringNode:
		return strconv.Quote(x.Value)
	case *ast.LiteralNode:
		return "a block string"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.BoolNode:
		return "the boolean " + x.GetToken().Value
	case *ast.IntegerNode:
		return "the integer " + x.GetToken().Value
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "the number " + x.GetToken().Value
	default:
		return "a " + n.Type().YAMLName()
	}
}

// entry is one key of a mapping, its value resolved.
type entry struct {
	key   string
	path  string // manifest path of the key
	pos   pos    // of the key
	value ast.Node
	raw   ast.Node // value as written, before resolving aliases
}

// valuePos is where e's value was written, for errors about the value; an
// absent value (`key:`) is reported at the key.
func (e entry) valuePos() pos {
	if e.raw == nil {
		return e.pos
	}
	if tk := e.raw.GetToken(); tk == nil || tk.Type == token.ImplicitNullType {
		return e.pos
	}
	return posOf(e.raw)
}

// mapping returns the entries of the mapping n at path. allowed lists the
// keys n may hold (nil: any, as for map columns and labels); other keys are
// reported with a suggestion and left out. Null is an empty mapping, so
// `print:` means a print sink with defaults. ok is false, after reporting,
// when n is not a mapping at all.
func (d *decoder) mapping(path string, n ast.Node, allowed []string) (entries []entry, ok bool) {
	var kvs []*ast.MappingValueNode
	switch x := d.resolve(n).(type) {
	case nil, *ast.NullNode:
		return nil, true
	case *ast.MappingNode:
		kvs = x.Values
	case *ast.MappingValueNode:
		kvs = []*ast.MappingValueNode{x}
	default:
		d.errorf(posOf(n), path, "expected a mapping, got %s", describe(x))
		return nil, false
	}
	for _, kv := range kvs {
		p := posOf(kv.Key)
		var key string
		switch k := d.resolve(kv.Key).(type) {
		case *ast.MergeKeyNode:
			d.errorf(p, path, "merge keys (<<) are not supported; write the keys out")
			continue
		case *ast.StringNode:
			key = k.Value
		case ast.ScalarNode:
			key = k.GetToken().Value
		default:
			d.errorf(p, path, "a key must be a plain value, got %s", describe(k))
			continue
		}
		kp := childPath(path, key)
		if allowed != nil && !contains(allowed, key) {
			d.errorf(p, kp, "unknown key%s (allowed: %s)", suggestion(key, allowed), strings.Join(allowed, ", "))
			continue
		}
		d.at[kp] = p
		entries = append(entries, entry{key: key, path: kp, pos: p, value: d.resolve(kv.Value), raw: kv.Value})
	}
	return entries, true
}

// text returns a scalar as the text the user wrote: the decoded value of a
// string (quoted or not, block or not), the literal spelling of anything
// else, so `prefix: 0x10` is "0x10" and a map column `one: 1` is the
// expression "1". what names the expected value for the error.
func (d *decoder) text(e entry, what string) (string, bool) {
	switch x := e.value.(type) {
	case *ast.StringNode:
		return x.Value, true
	case *ast.LiteralNode:
		if x.Value == nil {
			return "", true
		}
		return x.Value.Value, true
	case *ast.NullNode, nil:
	case ast.ScalarNode:
		return x.GetToken().Value, true
	}
	d.errorf(e.valuePos(), e.path, "expected %s, got %s", what, describe(e.value))
	return "", false
}

// integer returns an integer scalar within [lo, hi]. Range rules of the
// proto (e.g. parallelism ≥ 0) are protovalidate's to report; lo and hi
// here are only the bounds of the proto field's type.
func (d *decoder) integer(e entry, lo, hi int64) (int64, bool) {
	x, isInt := e.value.(*ast.IntegerNode)
	if str, ok := e.value.(*ast.StringNode); ok && isDigits(str.Value) && str.GetToken().Type == token.StringType {
		// goccy leaves an integer too large for 64 bits as a string.
		d.errorf(e.valuePos(), e.path, "%s is out of range [%d, %d]", str.Value, lo, hi)
		return 0, false
	}
	if !isInt {
		d.errorf(e.valuePos(), e.path, "expected an integer, got %s", describe(e.value))
		return 0, false
	}
	var v int64
	switch n := x.Value.(type) {
	case int64:
		v = n
	case uint64:
		if n > math.MaxInt64 {
			v = math.MaxInt64 // reported as out of range below
		} else {
			v = int64(n)
		}
	default:
		d.errorf(e.valuePos(), e.path, "expected an integer, got %s", describe(e.value))
		return 0, false
	}
	if v < lo || v > hi {
		d.errorf(e.valuePos(), e.path, "%s is out of range [%d, %d]", x.GetToken().Value, lo, hi)
		return 0, false
	}
	return v, true
}

func (d *decoder) int32(e entry) int32 {
	v, _ := d.integer(e, math.MinInt32, math.MaxInt32)
	return int32(v)
}

// list returns the items of a list of scalars, each as text, recording
// each item's position under path[i].
func (d *decoder) list(e entry, what string) ([]ref, bool) {
	seq, ok := e.value.(*ast.SequenceNode)
	if !ok {
		d.errorf(e.valuePos(), e.path, "expected a list of %s, got %s", what, describe(e.value))
		return nil, false
	}
	refs := make([]ref, 0, len(seq.Values))
	ok = true
	for i, item := range seq.Values {
		ie := entry{path: fmt.Sprintf("%s[%d]", e.path, i), pos: posOf(item), value: d.resolve(item), raw: item}
		d.at[ie.path] = ie.pos
		s, good := d.text(ie, what)
		ok = ok && good
		refs = append(refs, ref{id: s, path: ie.path, pos: ie.pos})
	}
	return refs, ok
}

// enum returns the index of a scalar among names.
func (d *decoder) enum(e entry, names []string) (int, bool) {
	s, ok := d.text(e, "one of "+strings.Join(names, ", "))
	if !ok {
		return 0, false
	}
	for i, n := range names {
		if s == n {
			return i, true
		}
	}
	d.errorf(e.valuePos(), e.path, "unknown value %q%s (one of: %s)", s, suggestion(s, names), strings.Join(names, ", "))
	return 0, false
}

// job decodes the document's root.
func (d *decoder) job(root ast.Node) *sabotv1.JobSpec {
	spec := &sabotv1.JobSpec{Graph: &sabotv1.JobGraph{}}
	rootPos := posOf(root)
	d.at[""] = rootPos
	entries, ok := d.mapping("", root, jobKeys())
	if !ok {
		return spec
	}
	seen := map[string]bool{}
	for _, e := range entries {
		seen[e.key] = true
		switch e.key {
		case "name":
			spec.Name, _ = d.text(e, "a job name")
		case "parallelism":
			spec.Parallelism = d.int32(e)
		case "max_parallelism":
			spec.MaxParallelism = d.int32(e)
		case "labels":
			spec.Labels = d.labels(e)
		case "state_backend":
			if i, good := d.enum(e, []string{"heap", "pebble"}); good {
				spec.StateBackend = sabotv1.StateBackend(i + 1)
			}
		case "checkpointing":
			spec.Checkpointing = d.checkpointing(e)
		case "restart_strategy":
			spec.RestartStrategy = d.restartStrategy(e)
		case "autoscaler":
			spec.Autoscaler = d.autoscaler(e)
		case "steps":
			d.stepList(e)
		}
	}
	if rootPos == (pos{}) {
		rootPos = pos{line: 1, col: 1}
	}
	for _, k := range []string{"name", "steps"} {
		if !seen[k] {
			d.errorf(rootPos, "", "missing required key %q", k)
		}
	}
	d.checkAutoscaler(spec)
	d.connect(spec.Graph)
	for _, s := range d.steps {
		spec.Graph.Vertices = append(spec.Graph.Vertices, s.vertex)
	}
	return spec
}

func (d *decoder) labels(e entry) map[string]string {
	entries, _ := d.mapping(e.path, e.value, nil)
	if len(entries) == 0 {
		return nil
	}
	labels := make(map[string]string, len(entries))
	for _, le := range entries {
		v, _ := d.text(le, "a string")
		labels[le.key] = v
	}
	return labels
}

func (d *decoder) stepList(e entry) {
	seq, ok := e.value.(*ast.SequenceNode)
	if !ok {
		d.errorf(e.valuePos(), e.path, "expected a list of steps, got %s", describe(e.value))
		return
	}
	for i, item := range seq.Values {
		d.step(i, item)
	}
}

func (d *decoder) step(i int, n ast.Node) {
	s := &step{index: i, path: fmt.Sprintf("steps[%d]", i), pos: posOf(d.resolve(n))}
	s.vertex = &sabotv1.Vertex{Operator: &sabotv1.Operator{}}
	d.at[s.path] = s.pos
	d.steps = append(d.steps, s)
	entries, ok := d.mapping(s.path, n, stepKeys())
	if !ok {
		return
	}
	var op *entry
	var hasID bool
	for _, e := range entries {
		switch e.key {
		case "id":
			hasID = true
			s.id, _ = d.text(e, "a step id")
			s.vertex.Id = s.id
			if prev, dup := d.byID[s.id]; dup && s.id != "" {
				d.errorf(e.pos, e.path, "duplicate step id %q, also used by %s at line %d", s.id, prev.path, prev.pos.line)
			} else {
				d.byID[s.id] = s
			}
		case "parallelism":
			s.vertex.Parallelism = d.int32(e)
		case "inputs":
			s.hasInputs = true
			s.inputs, _ = d.list(e, "step ids")
		case "partitioning":
			if p, ok := d.enum(e, partitionings()); ok {
				s.partitioning = sabotv1.Partitioning(p + 1)
				s.setPartition = true
			}
		case "key_by":
			refs, _ := d.list(e, "column names")
			for _, r := range refs {
				s.keyBy = append(s.keyBy, r.id)
			}
		default: // an operator
			if op != nil {
				d.errorf(e.pos, e.path, "a step has exactly one operator, but this one also has %s", op.key)
				continue
			}
			op = &e
		}
	}
	if !hasID {
		d.errorf(s.pos, s.path, "missing required key \"id\"")
	}
	if op == nil {
		d.errorf(s.pos, s.path, "missing an operator: one of %s", strings.Join(operatorKeys(), ", "))
		return
	}
	s.op = op.key
	if d.operator(s, *op) {
		s.kind = kindOf(s.op)
	}
}

func kindOf(op string) jobgraph.Kind {
	switch op {
	case "sequence", "nexmark", "kafka_source", "file_source":
		return jobgraph.KindSource
	case "map", "filter", "keyed_aggregate", "window", "process", "function":
		return jobgraph.KindTransform
	default:
		return jobgraph.KindSink
	}
}

// operator decodes a step's operator into s.vertex. It reports false when
// the operator's value is not even the right shape.
func (d *decoder) operator(s *step, e entry) bool {
	o := s.vertex.Operator
	switch e.key {
	case "sequence":
		entries, ok := d.mapping(e.path, e.value, sequenceKeys())
		seq := &sabotv1.SequenceSource{}
		for _, se := range entries {
			switch se.key {
			case "start":
				seq.Start, _ = d.integer(se, math.MinInt64, math.MaxInt64)
			case "end":
				if !isNull(se.value) { // end: null is "unbounded", as absent
					v, _ := d.integer(se, math.MinInt64, math.MaxInt64)
					seq.End = &v
				}
			case "rows_per_second":
				seq.RowsPerSecond, _ = d.integer(se, math.MinInt64, math.MaxInt64)
			}
		}
		o.Kind = &sabotv1.Operator_Sequence{Sequence: seq}
		return ok
	case "nexmark":
		entries, ok := d.mapping(e.path, e.value, nexmarkKeys())
		nx := &sabotv1.NexmarkSource{}
		for _, ne := range entries {
			switch ne.key {
			case "table":
				if i, good := d.enum(ne, nexmarkTables()); good {
					nx.Table = sabotv1.NexmarkTable(i + 1)
				}
			case "seed":
				nx.Seed, _ = d.integer(ne, math.MinInt64, math.MaxInt64)
			case "events":
				nx.Events, _ = d.integer(ne, math.MinInt64, math.MaxInt64)
			case "events_per_second":
				nx.EventsPerSecond, _ = d.integer(ne, math.MinInt64, math.MaxInt64)
			}
		}
		o.Kind = &sabotv1.Operator_Nexmark{Nexmark: nx}
		return ok
	case "kafka_source":
		k, ok := d.kafkaSource(e)
		o.Kind = &sabotv1.Operator_KafkaSource{KafkaSource: k}
		return ok
	case "file_source":
		f, ok := d.fileSource(e)
		o.Kind = &sabotv1.Operator_FileSource{FileSource: f}
		return ok
	case "kafka_sink":
		k, ok := d.kafkaSink(e)
		o.Kind = &sabotv1.Operator_KafkaSink{KafkaSink: k}
		return ok
	case "keyed_aggregate":
		a, ok := d.keyedAggregate(e)
		o.Kind = &sabotv1.Operator_KeyedAggregate{KeyedAggregate: a}
		return ok
	case "process":
		p, ok := d.process(e)
		o.Kind = &sabotv1.Operator_Process{Process: p}
		return ok
	case "function":
		f, ok := d.function(e)
		o.Kind = &sabotv1.Operator_Function{Function: f}
		return ok
	case "window":
		w, ok := d.window(e)
		o.Kind = &sabotv1.Operator_Window{Window: w}
		return ok
	case "blackhole":
		_, ok := d.mapping(e.path, e.value, []string{})
		o.Kind = &sabotv1.Operator_Blackhole{Blackhole: &sabotv1.BlackholeSink{}}
		return ok
	case "map":
		entries, ok := d.mapping(e.path, e.value, nil)
		m := &sabotv1.MapOperator{}
		for _, ce := range entries {
			x, _ := d.text(ce, "an expression")
			d.exprs[ce.path] = ce.value
			m.Columns = append(m.Columns, &sabotv1.NamedExpression{Name: ce.key, Expr: x})
			s.columns = append(s.columns, ce.key)
		}
		o.Kind = &sabotv1.Operator_Map{Map: m}
		return ok
	case "filter":
		x, ok := d.text(e, "a boolean expression")
		d.exprs[e.path] = e.value
		o.Kind = &sabotv1.Operator_Filter{Filter: &sabotv1.FilterOperator{Condition: x}}
		return ok
	case "print":
		entries, ok := d.mapping(e.path, e.value, printKeys())
		p := &sabotv1.PrintSink{}
		for _, pe := range entries {
			p.Prefix, _ = d.text(pe, "a string")
		}
		o.Kind = &sabotv1.Operator_Print{Print: p}
		return ok
	case "file":
		entries, ok := d.mapping(e.path, e.value, fileKeys())
		f := &sabotv1.FileSink{}
		var hasPath bool
		for _, fe := range entries {
			switch fe.key {
			case "path":
				hasPath = true
				f.Path, _ = d.text(fe, "a directory path")
			case "format":
				if i, good := d.enum(fe, fileFormats()); good {
					f.Format = sabotv1.FileFormat(i + 1)
				}
			}
		}
		if ok && !hasPath {
			d.errorf(e.pos, e.path, "missing required key \"path\"")
		}
		o.Kind = &sabotv1.Operator_File{File: f}
		return ok
	}
	return false
}

// connect turns each step's inputs (written, or the previous step) into
// graph edges, checking what only the manifest can name well: unknown step
// ids, a step reading from a sink it merely follows, partitioning on a step
// without inputs, and cycles (pointing at the input that closes one).
func (d *decoder) connect(g *sabotv1.JobGraph) {
	resolved := make([][]*step, len(d.steps))
	for i, s := range d.steps {
		var refs []ref
		implicit := false
		switch {
		case s.hasInputs:
			refs = s.inputs
		case s.kind == jobgraph.KindSource || s.kind == 0:
			// Sources read nothing; a broken step was reported already.
		case i == 0:
			d.errorf(s.pos, s.path, "the first step has no previous step to read from; start with a source (sequence) or set inputs")
		case d.steps[i-1].kind == jobgraph.KindSink:
			prev := d.steps[i-1]
			d.errorf(s.pos, s.path, "reads from the previous step, but %s is a sink; set inputs to the step to read from", prev.id)
		default:
			refs = []ref{{id: d.steps[i-1].id, path: s.path, pos: s.pos}}
			implicit = true
		}

		if len(refs) == 0 && s.kind != 0 {
			if s.setPartition {
				d.errorf(d.at[s.path+".partitioning"], s.path+".partitioning", "%s has no inputs to partition", s.id)
			}
			if len(s.keyBy) > 0 {
				d.errorf(d.at[s.path+".key_by"], s.path+".key_by", "%s has no inputs to key", s.id)
			}
		}
		part := s.partitioning
		switch {
		case len(s.keyBy) > 0 && !s.setPartition:
			part = sabotv1.Partitioning_PARTITIONING_HASH // key_by implies hash
		case len(s.keyBy) > 0 && part != sabotv1.Partitioning_PARTITIONING_HASH:
			d.errorf(d.at[s.path+".key_by"], s.path+".key_by", "key_by only applies to partitioning: hash, but partitioning is %s", partitionings()[part-1])
		case len(s.keyBy) == 0 && part == sabotv1.Partitioning_PARTITIONING_HASH && len(refs) > 0:
			d.errorf(d.at[s.path+".partitioning"], s.path+".partitioning", "partitioning: hash needs key_by, the columns that form the key")
		}

		for j, r := range refs {
			// "step.name" reads the side output name of step.
			if id, side, ok := strings.Cut(r.id, "."); ok && !implicit {
				r.id, r.side = id, side
			}
			from, ok := d.byID[r.id]
			if !ok {
				if r.id != "" {
					d.errorf(r.pos, r.path, "no step has id %q%s (steps: %s)", r.id, suggestion(r.id, d.ids()), strings.Join(d.ids(), ", "))
				}
				continue
			}
			resolved[i] = append(resolved[i], from)
			origin := edgeOrigin{step: s, input: j}
			if implicit {
				origin.input = -1
			}
			d.edges = append(d.edges, origin)
			g.Edges = append(g.Edges, &sabotv1.Edge{
				From:         from.id,
				To:           s.id,
				Partitioning: part,
				KeyFields:    s.keyBy,
				SideOutput:   r.side,
			})
		}
	}
	if len(d.errs) == 0 {
		d.findCycle(resolved)
	}
}

func (d *decoder) ids() []string {
	ids := make([]string, 0, len(d.steps))
	for _, s := range d.steps {
		ids = append(ids, s.id)
	}
	return ids
}

// findCycle reports the first cycle among steps. inputs[i] are the steps
// step i reads from, in the order written.
func (d *decoder) findCycle(inputs [][]*step) {
	const (
		white = iota // not visited
		grey         // on the current path
		black        // done, no cycle through it
	)
	color := make([]int, len(d.steps))
	// path is the chain being explored: path[k].s reads its input
	// path[k].j, which is path[k+1].s.
	type frame struct {
		s *step
		j int
	}
	var path []frame
	var visit func(s *step) bool
	visit = func(s *step) bool {
		color[s.index] = grey
		path = append(path, frame{s: s})
		for j, in := range inputs[s.index] {
			path[len(path)-1].j = j
			switch color[in.index] {
			case grey:
				k := len(path) - 1
				for path[k].s != in {
					k--
				}
				cyc := make([]*step, 0, len(path)-k)
				js := make([]int, 0, len(path)-k)
				for _, f := range path[k:] {
					cyc, js = append(cyc, f.s), append(js, f.j)
				}
				d.reportCycle(cyc, js)
				return true
			case white:
				if visit(in) {
					return true
				}
			}
		}
		path = path[:len(path)-1]
		color[s.index] = black
		return false
	}
	for _, s := range d.steps {
		if color[s.index] == white && visit(s) {
			return
		}
	}
}

// reportCycle reports a cycle where cyc[k] reads its input js[k], which is
// cyc[k+1] (and the last reads the first). Implicit inputs and inputs
// naming an earlier step point backwards, so every cycle has an input that
// names the same or a later step: that written input is where the loop is
// closed, and where the error points. The steps are listed in the
// direction data flows, starting from the step that input names.
func (d *decoder) reportCycle(cyc []*step, js []int) {
	n := len(cyc)
	k := 0
	for i := range cyc {
		if cyc[(i+1)%n].index >= cyc[i].index {
			k = i
			break
		}
	}
	reader := cyc[k]
	field, p := reader.path, reader.pos
	if reader.hasInputs {
		field = fmt.Sprintf("%s.inputs[%d]", reader.path, js[k])
		p = d.at[field]
	}
	if n == 1 {
		d.errorf(p, field, "step %s reads its own output", reader.id)
		return
	}
	// Data flows from cyc[i+1] to cyc[i]: walk cyc backwards from the
	// step the reported input names.
	names := make([]string, 0, n+1)
	for i := range n + 1 {
		names = append(names, cyc[((k+1-i)%n+n)%n].id)
	}
	d.errorf(p, field, "the steps form a cycle: %s", strings.Join(names, " → "))
}

// childPath is the manifest path of key under parent: parent.key, or
// parent["key"] when key is not a plain identifier (a map column named
// "a.b" must not read as a nested key).
func childPath(parent, key string) string {
	if !isIdent(key) {
		return parent + "[" + strconv.Quote(key) + "]"
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r == '-' || r >= '0' && r <= '9'):
		default:
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// isDigits reports whether s is an optionally signed run of decimal digits.
func isDigits(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
