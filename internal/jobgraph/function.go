package jobgraph

import (
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
)

// DeadLetterOutput is the side output a function step with the
// dead-letter failure policy writes failed messages to.
const DeadLetterOutput = "dead_letter"

// InvocationSchema is the output of an InvocationSource: the key column a
// hash edge to a function step routes by. It never carries rows.
func InvocationSchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{{Name: "key", Type: arrow.BinaryTypes.String}}, nil)
}

// FunctionReplySchema is the main output of a function step: one row per
// reply the function made (key, reply payload as text).
func FunctionReplySchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "key", Type: arrow.BinaryTypes.String},
		{Name: "reply", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
}

// FunctionRawOutputSchema is the columns of a function output that
// declares none: the key and the payload as text.
func FunctionRawOutputSchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "key", Type: arrow.BinaryTypes.String},
		{Name: "value", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
}

// DeadLetterSchema is the columns of a function step's dead-letter output.
func DeadLetterSchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "function", Type: arrow.BinaryTypes.String},
		{Name: "key", Type: arrow.BinaryTypes.String},
		{Name: "payload", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "error", Type: arrow.BinaryTypes.String},
	}, nil)
}

// FunctionOutputs are the names of a function step's outputs in the order
// they become side outputs: the function's declared outputs (from its
// registration), then outputs the step gives columns for that the
// registration does not list, sorted.
func FunctionOutputs(step *sabotv1.FunctionStep) []string {
	names := slices.Clone(step.GetFunction().GetSpec().GetOutputs())
	var extra []string
	for name := range step.GetOutputs() {
		if !slices.Contains(names, name) {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	return append(names, extra...)
}

// function resolves a function step: a keyed input on one string column,
// the replies as main output, one side output per function output.
func (r *resolver) function(v *Vertex, field string, step *sabotv1.FunctionStep) {
	if !r.keyedInput(v, "function") {
		return
	}
	if keys := v.Inputs[0].KeyIndices; len(keys) != 1 || v.InputSchema.Field(keys[0]).Type.ID() != arrow.STRING {
		r.fail(v.ID, "graph.edges", "function %q is keyed by one string column (its value is the function's key); key_by %s (cast with a map step: CAST(x AS STRING))",
			step.GetName(), keyColumns(v))
		return
	}
	v.Schema = FunctionReplySchema()
	declared := step.GetFunction().GetSpec().GetOutputs()
	for _, name := range FunctionOutputs(step) {
		if step.GetFunction() != nil && !slices.Contains(declared, name) {
			r.fail(v.ID, field+".outputs", "function %q declares no output %q (it declares: %v)", step.GetName(), name, declared)
			continue
		}
		schema := FunctionRawOutputSchema()
		if cols, ok := step.GetOutputs()[name]; ok && len(cols.GetColumns()) > 0 {
			schema = r.columns(v, fmt.Sprintf("%s.outputs[%s]", field, name), cols.GetColumns())
		}
		v.SideOutputs = append(v.SideOutputs, SideOutput{Name: name, Schema: schema})
	}
	if step.GetOnFailure() == sabotv1.FunctionFailurePolicy_FUNCTION_FAILURE_POLICY_DEAD_LETTER {
		if v.SideOutput(DeadLetterOutput) != nil {
			r.fail(v.ID, field+".outputs", "output %q is reserved for the dead-letter policy", DeadLetterOutput)
			return
		}
		v.SideOutputs = append(v.SideOutputs, SideOutput{Name: DeadLetterOutput, Schema: DeadLetterSchema()})
	}
}

func keyColumns(v *Vertex) string {
	var names []string
	for _, k := range v.Inputs[0].KeyIndices {
		f := v.InputSchema.Field(k)
		names = append(names, fmt.Sprintf("%s (%s)", f.Name, f.Type))
	}
	return fmt.Sprint(names)
}
