// Package jobgraph resolves a submitted sabot.v1.JobSpec into the graph the
// platform runs: defaults applied, edges' partitioning decided, vertices in
// topological order, and every vertex's output schema derived and its
// expressions type-checked. The gateway resolves a spec before storing it (so
// a bad graph is rejected at deploy), the manifest loader resolves it to
// point at the offending line, and workers resolve it to run it: one set of
// rules for all three.
//
// Defaults (documented on the proto fields too):
//   - max_parallelism 0 → 128 (DefaultMaxParallelism);
//   - job parallelism 0 → 1; vertex parallelism 0 → the job's;
//   - PARTITIONING_UNSPECIFIED → FORWARD when both ends have the same
//     parallelism, REBALANCE otherwise (as Flink).
//
// Key groups follow Flink's KeyGroupRangeAssignment arithmetic, so a Flink
// user's intuition about which subtask owns which keys carries over.
package jobgraph

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/sql/expr"
	"github.com/sabotdev/sabot/worker/connector/nexmark"
)

// DefaultMaxParallelism is the number of key groups of a job that does not
// set max_parallelism.
const DefaultMaxParallelism = 128

// Kind classifies a vertex by its place in the graph.
type Kind int

// Vertex kinds.
const (
	KindSource Kind = iota + 1
	KindTransform
	KindSink
)

func (k Kind) String() string {
	switch k {
	case KindSource:
		return "source"
	case KindTransform:
		return "transform"
	case KindSink:
		return "sink"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// Graph is a resolved job graph. It is immutable once returned by Resolve.
type Graph struct {
	Spec           *sabotv1.JobSpec
	Name           string
	MaxParallelism int
	// Vertices in topological order: every edge goes from a lower to a
	// higher index.
	Vertices []*Vertex
	Edges    []*Edge
}

// Vertex is one resolved vertex.
type Vertex struct {
	ID          string
	Index       int // position in Graph.Vertices
	Parallelism int
	Kind        Kind
	Operator    *sabotv1.Operator
	Inputs      []*Edge
	Outputs     []*Edge
	// InputSchema is the schema of the records the vertex receives (nil for
	// sources). All inputs of a vertex carry the same schema.
	InputSchema *arrow.Schema
	// Schema is the schema of the records the vertex emits (nil for sinks).
	Schema *arrow.Schema
	// SideOutputs are the vertex's named extra outputs, in declaration
	// order: a process function's side_outputs, a window's late_output.
	SideOutputs []SideOutput
}

// SideOutput is a named extra output of a vertex.
type SideOutput struct {
	Name   string
	Schema *arrow.Schema
}

// SideOutput returns the schema of v's side output name, or nil.
func (v *Vertex) SideOutput(name string) *arrow.Schema {
	for _, so := range v.SideOutputs {
		if so.Name == name {
			return so.Schema
		}
	}
	return nil
}

// Edge is one resolved edge.
type Edge struct {
	// Index is the edge's position in the spec's graph.edges.
	Index        int
	From, To     *Vertex
	Partitioning sabotv1.Partitioning // never UNSPECIFIED
	KeyFields    []string
	// KeyIndices are the positions of KeyFields in Schema.
	KeyIndices []int
	// SideOutput names the side output of From the edge carries; empty
	// for the main output.
	SideOutput string
	// Schema is the schema of the records on the edge: From.Schema, or the
	// side output's.
	Schema *arrow.Schema
}

// Chained reports whether the edge joins two operators into one task: a
// forward edge into a vertex with a single input. No queue sits on a chained
// edge.
func (e *Edge) Chained() bool {
	return e.Partitioning == sabotv1.Partitioning_PARTITIONING_FORWARD && len(e.To.Inputs) == 1
}

// Vertex returns the vertex with the given id, or nil.
func (g *Graph) Vertex(id string) *Vertex {
	for _, v := range g.Vertices {
		if v.ID == id {
			return v
		}
	}
	return nil
}

// Resolve checks spec and resolves it. It assumes the spec passed
// protovalidate (field ranges, required fields, unique ids, edge endpoints
// exist) and checks what protovalidate cannot: cycles, arity of sources and
// sinks, forward edges between unequal parallelism, parallelism above
// max_parallelism, key fields and expressions against the schemas, and
// checkpointing, the restart strategy and each Kafka sink's delivery
// guarantee against each other (see faultTolerance). The error
// is an Errors listing every problem found, each naming its vertex and field.
func Resolve(spec *sabotv1.JobSpec) (*Graph, error) {
	r := resolver{spec: spec}
	g := r.resolve()
	if len(r.errs) > 0 {
		return nil, r.errs
	}
	return g, nil
}

type resolver struct {
	spec *sabotv1.JobSpec
	errs Errors
}

func (r *resolver) fail(vertex, field, format string, args ...any) {
	r.errs = append(r.errs, &Error{Vertex: vertex, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (r *resolver) resolve() *Graph {
	spec := r.spec
	if spec.GetGraph() == nil || len(spec.GetGraph().GetVertices()) == 0 {
		r.fail("", "graph.vertices", "a job needs at least one vertex")
		return nil
	}
	r.faultTolerance()
	maxP := int(spec.GetMaxParallelism())
	if maxP == 0 {
		maxP = DefaultMaxParallelism
	}
	jobP := int(spec.GetParallelism())
	if jobP == 0 {
		jobP = 1
	}
	g := &Graph{Spec: spec, Name: spec.GetName(), MaxParallelism: maxP}

	byID := make(map[string]*Vertex, len(spec.GetGraph().GetVertices()))
	var declared []*Vertex
	for i, pv := range spec.GetGraph().GetVertices() {
		field := fmt.Sprintf("graph.vertices[%d]", i)
		if _, dup := byID[pv.GetId()]; dup {
			r.fail(pv.GetId(), field+".id", "duplicate vertex id %q", pv.GetId())
			continue
		}
		v := &Vertex{ID: pv.GetId(), Parallelism: int(pv.GetParallelism()), Operator: pv.GetOperator()}
		if v.Parallelism == 0 {
			v.Parallelism = jobP
		}
		if v.Parallelism > maxP {
			r.fail(v.ID, field+".parallelism", "parallelism %d exceeds max_parallelism %d", v.Parallelism, maxP)
		}
		v.Kind = kindOf(pv.GetOperator())
		if v.Kind == 0 {
			r.fail(v.ID, field+".operator", "operator kind is missing or unknown to this version")
			continue
		}
		byID[v.ID] = v
		declared = append(declared, v)
	}

	for i, pe := range spec.GetGraph().GetEdges() {
		field := fmt.Sprintf("graph.edges[%d]", i)
		from, to := byID[pe.GetFrom()], byID[pe.GetTo()]
		if from == nil || to == nil {
			r.fail("", field, "edge %s → %s names a vertex that does not exist", pe.GetFrom(), pe.GetTo())
			continue
		}
		e := &Edge{Index: i, From: from, To: to, Partitioning: pe.GetPartitioning(), KeyFields: pe.GetKeyFields(), SideOutput: pe.GetSideOutput()}
		switch {
		case e.Partitioning == sabotv1.Partitioning_PARTITIONING_UNSPECIFIED && from.Parallelism == to.Parallelism:
			e.Partitioning = sabotv1.Partitioning_PARTITIONING_FORWARD
		case e.Partitioning == sabotv1.Partitioning_PARTITIONING_UNSPECIFIED:
			e.Partitioning = sabotv1.Partitioning_PARTITIONING_REBALANCE
		case e.Partitioning == sabotv1.Partitioning_PARTITIONING_FORWARD && from.Parallelism != to.Parallelism:
			r.fail(to.ID, field+".partitioning", "a forward edge needs equal parallelism at both ends, but %s has %d and %s has %d",
				from.ID, from.Parallelism, to.ID, to.Parallelism)
		}
		if (e.Partitioning == sabotv1.Partitioning_PARTITIONING_HASH) != (len(e.KeyFields) > 0) {
			r.fail(to.ID, field+".key_fields", "a hash edge needs key_fields, and only a hash edge may have them")
		}
		from.Outputs = append(from.Outputs, e)
		to.Inputs = append(to.Inputs, e)
		g.Edges = append(g.Edges, e)
	}

	for _, v := range declared {
		switch {
		case v.Kind == KindSource && len(v.Inputs) > 0:
			r.fail(v.ID, "graph.edges", "source %s cannot have inputs", v.ID)
		case v.Kind != KindSource && len(v.Inputs) == 0:
			r.fail(v.ID, "graph.edges", "%s %s has no input; connect an edge to it", v.Kind, v.ID)
		case v.Kind == KindSink && len(v.Outputs) > 0:
			r.fail(v.ID, "graph.edges", "sink %s cannot have outputs", v.ID)
		case v.Kind != KindSink && len(v.Outputs) == 0 && v.Operator.GetFunction() == nil:
			// A function step's effects are its state and replies: its
			// outputs may go unread.
			r.fail(v.ID, "graph.edges", "%s %s has no output; its records would go nowhere", v.Kind, v.ID)
		}
	}
	if len(r.errs) > 0 {
		return nil
	}

	order, ok := topoSort(declared)
	if !ok {
		var ids []string
		for _, v := range declared {
			ids = append(ids, v.ID)
		}
		r.fail("", "graph.edges", "the graph has a cycle among vertices %s", strings.Join(ids, ", "))
		return nil
	}
	for i, v := range order {
		v.Index = i
	}
	g.Vertices = order
	for _, v := range order {
		r.deriveSchema(v)
	}
	if len(r.errs) > 0 {
		return nil
	}
	return g
}

func kindOf(op *sabotv1.Operator) Kind {
	switch op.GetKind().(type) {
	case *sabotv1.Operator_Sequence, *sabotv1.Operator_Nexmark, *sabotv1.Operator_KafkaSource, *sabotv1.Operator_FileSource,
		*sabotv1.Operator_Invocations:
		return KindSource
	case *sabotv1.Operator_Map, *sabotv1.Operator_Filter, *sabotv1.Operator_KeyedAggregate, *sabotv1.Operator_Process, *sabotv1.Operator_Window,
		*sabotv1.Operator_Function:
		return KindTransform
	case *sabotv1.Operator_Print, *sabotv1.Operator_File, *sabotv1.Operator_Blackhole, *sabotv1.Operator_KafkaSink:
		return KindSink
	default:
		return 0
	}
}

// topoSort orders vertices so every edge points forward, keeping declaration
// order among independent vertices (Kahn's algorithm). ok is false on a cycle.
func topoSort(vs []*Vertex) (order []*Vertex, ok bool) {
	indeg := make(map[*Vertex]int, len(vs))
	for _, v := range vs {
		indeg[v] = len(v.Inputs)
	}
	done := make(map[*Vertex]bool, len(vs))
	for len(order) < len(vs) {
		progressed := false
		for _, v := range vs {
			if done[v] || indeg[v] > 0 {
				continue
			}
			done[v] = true
			progressed = true
			order = append(order, v)
			for _, e := range v.Outputs {
				indeg[e.To]--
			}
		}
		if !progressed {
			return nil, false
		}
	}
	return order, true
}

// SequenceSchema returns the output schema of a sequence source: one
// non-null int64 column "value".
func SequenceSchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{{Name: "value", Type: arrow.PrimitiveTypes.Int64}}, nil)
}

func (r *resolver) deriveSchema(v *Vertex) {
	field := "operator"
	if len(v.Inputs) > 0 {
		for _, e := range v.Inputs {
			e.Schema = e.From.Schema
			if e.SideOutput != "" {
				e.Schema = e.From.SideOutput(e.SideOutput)
				if e.Schema == nil {
					r.fail(v.ID, fmt.Sprintf("graph.edges[%d].side_output", e.Index), "%s has no side output %q%s",
						e.From.ID, e.SideOutput, sideOutputNames(e.From))
					return
				}
			}
		}
		v.InputSchema = v.Inputs[0].Schema
		for _, e := range v.Inputs[1:] {
			if !e.Schema.Equal(v.InputSchema) {
				r.fail(v.ID, "graph.edges", "inputs of %s disagree on schema: %s sends %s but %s sends %s",
					v.ID, edgeSource(v.Inputs[0]), v.InputSchema, edgeSource(e), e.Schema)
				return
			}
		}
		for _, e := range v.Inputs {
			for j, k := range e.KeyFields {
				idx := e.Schema.FieldIndices(k)
				if len(idx) == 0 {
					r.fail(v.ID, fmt.Sprintf("graph.edges[%d].key_fields[%d]", e.Index, j), "key field %q is not a column of %s (columns: %s)", k, edgeSource(e), columnNames(e.Schema))
					continue
				}
				e.KeyIndices = append(e.KeyIndices, idx[0])
			}
		}
	}
	switch op := v.Operator.GetKind().(type) {
	case *sabotv1.Operator_Sequence:
		v.Schema = SequenceSchema()
	case *sabotv1.Operator_Filter:
		x, err := expr.Compile(op.Filter.GetCondition(), v.InputSchema)
		if err != nil {
			r.failExpr(v.ID, field+".filter.condition", err)
			return
		}
		if x.Type().ID() != arrow.BOOL {
			r.fail(v.ID, field+".filter.condition", "condition must be boolean, but %q is %s", op.Filter.GetCondition(), x.Type())
			return
		}
		v.Schema = v.InputSchema
	case *sabotv1.Operator_Map:
		fields := make([]arrow.Field, 0, len(op.Map.GetColumns()))
		seen := map[string]bool{}
		for i, c := range op.Map.GetColumns() {
			cf := fmt.Sprintf("%s.map.columns[%d]", field, i)
			if seen[c.GetName()] {
				r.fail(v.ID, cf+".name", "column %q is produced twice", c.GetName())
				continue
			}
			seen[c.GetName()] = true
			x, err := expr.Compile(c.GetExpr(), v.InputSchema)
			if err != nil {
				r.failExpr(v.ID, cf+".expr", err)
				continue
			}
			fields = append(fields, arrow.Field{Name: c.GetName(), Type: x.Type(), Nullable: true})
		}
		v.Schema = arrow.NewSchema(fields, nil)
	case *sabotv1.Operator_Nexmark:
		switch op.Nexmark.GetTable() {
		case sabotv1.NexmarkTable_NEXMARK_TABLE_PERSON:
			v.Schema = nexmark.PersonSchema()
		case sabotv1.NexmarkTable_NEXMARK_TABLE_AUCTION:
			v.Schema = nexmark.AuctionSchema()
		default:
			v.Schema = nexmark.BidSchema()
		}
	case *sabotv1.Operator_KafkaSource:
		r.kafkaSource(v, field+".kafka_source", op.KafkaSource)
	case *sabotv1.Operator_FileSource:
		r.fileSource(v, field+".file_source", op.FileSource)
	case *sabotv1.Operator_KeyedAggregate:
		r.keyedAggregate(v, field+".keyed_aggregate", op.KeyedAggregate)
	case *sabotv1.Operator_Process:
		if r.keyedInput(v, "process") {
			v.Schema = r.columns(v, field+".process.output", op.Process.GetOutput())
			for i, so := range op.Process.GetSideOutputs() {
				sf := fmt.Sprintf("%s.process.side_outputs[%d]", field, i)
				if v.SideOutput(so.GetName()) != nil {
					r.fail(v.ID, sf+".name", "side output %q is declared twice", so.GetName())
					continue
				}
				v.SideOutputs = append(v.SideOutputs, SideOutput{Name: so.GetName(), Schema: r.columns(v, sf+".columns", so.GetColumns())})
			}
		}
	case *sabotv1.Operator_Window:
		r.window(v, field+".window", op.Window)
	case *sabotv1.Operator_Invocations:
		v.Schema = InvocationSchema()
	case *sabotv1.Operator_Function:
		r.function(v, field+".function", op.Function)
	case *sabotv1.Operator_KafkaSink:
		for i, k := range op.KafkaSink.GetKeyFields() {
			if len(v.InputSchema.FieldIndices(k)) == 0 {
				r.fail(v.ID, fmt.Sprintf("%s.kafka_sink.key_fields[%d]", field, i), "key field %q is not a column of the input (columns: %s)", k, columnNames(v.InputSchema))
			}
		}
	case *sabotv1.Operator_Print, *sabotv1.Operator_File, *sabotv1.Operator_Blackhole:
		// Sinks accept any schema and emit nothing.
	}
}

func (r *resolver) failExpr(vertex, field string, err error) {
	r.errs = append(r.errs, &Error{Vertex: vertex, Field: field, Msg: err.Error(), Err: err})
}

// edgeSource names what an edge reads: a vertex, or vertex.side_output.
func edgeSource(e *Edge) string {
	if e.SideOutput != "" {
		return e.From.ID + "." + e.SideOutput
	}
	return e.From.ID
}

func sideOutputNames(v *Vertex) string {
	if len(v.SideOutputs) == 0 {
		return " (it declares none)"
	}
	names := make([]string, 0, len(v.SideOutputs))
	for _, so := range v.SideOutputs {
		names = append(names, so.Name)
	}
	return " (side outputs: " + strings.Join(names, ", ") + ")"
}

func columnNames(s *arrow.Schema) string {
	names := make([]string, 0, s.NumFields())
	for _, f := range s.Fields() {
		names = append(names, f.Name)
	}
	return strings.Join(names, ", ")
}

// KeyGroupRange returns the inclusive range of key groups that subtask i of
// p owns when a job has maxP key groups: [⌈i·maxP/p⌉, ⌈(i+1)·maxP/p⌉-1].
func KeyGroupRange(maxP, p, i int) (start, end int) {
	start = (i*maxP + p - 1) / p
	end = ((i+1)*maxP+p-1)/p - 1
	return start, end
}

// SubtaskForKeyGroup returns the subtask of p that owns key group kg: the
// inverse of KeyGroupRange.
func SubtaskForKeyGroup(maxP, p, kg int) int {
	return kg * p / maxP
}
