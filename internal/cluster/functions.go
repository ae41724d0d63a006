package cluster

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
)

// FunctionsPrefix holds the function registry: one sabotv1.Function per
// function name under FunctionKey. The gateway writes it
// (FunctionService.DeployFunction, through RegisterFunction) and reads it
// to fill the FunctionStep.function of deployed jobs.
const FunctionsPrefix = Root + "functions/"

// FunctionKey is the key of a function's registration.
func FunctionKey(name string) string { return FunctionsPrefix + name }

// NewFunction allocates a function registration for Get and List.
func NewFunction() *sabotv1.Function { return new(sabotv1.Function) }

// FunctionAlso returns what RegisterFunction commits together with a
// registration: comparisons that must hold and operations to apply in the
// same transaction. next is the registration about to be stored (its
// version and updated_at set); it must not be modified.
type FunctionAlso func(next *sabotv1.Function) ([]clientv3.Cmp, []clientv3.Op, error)

// RegisterFunction stores f as the next version of the registration of
// f.spec.name: version is the stored version plus one (1 for a new name)
// and updated_at is now, whatever f says. f is not modified.
//
// also, if not nil, is called once per attempt with the registration about
// to be stored; its comparisons and operations join the registration's
// write in one transaction, so the gateway records a function's redeploy
// on the jobs running it (or creates the function's own job) atomically
// with the new version. An error from also aborts the call with nothing
// written and is returned as it is.
//
// The write is a compare-and-swap on the registration's mod revision; a
// lost race, or a failed comparison of also's (a job changed meanwhile),
// is retried with fresh reads up to 8 times before ErrConflict. It returns
// the registration as stored.
func RegisterFunction(ctx context.Context, kv clientv3.KV, f *sabotv1.Function, now time.Time, also FunctionAlso) (*sabotv1.Function, error) {
	const maxAttempts = 8
	name := f.GetSpec().GetName()
	if name == "" {
		return nil, fmt.Errorf("cluster: register function: the function has no name (spec.name)")
	}
	key := FunctionKey(name)
	for range maxAttempts {
		var version, rev int64
		cur, err := Get(ctx, kv, key, NewFunction)
		switch {
		case IsNotFound(err):
		case err != nil:
			return nil, err
		default:
			version, rev = cur.Value.GetVersion(), cur.ModRevision
		}
		next := proto.Clone(f).(*sabotv1.Function) // Clone keeps the type
		next.Version = version + 1
		next.UpdatedAt = timestamppb.New(now)
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}
		ops := []clientv3.Op{clientv3.OpPut(key, Marshal(next))}
		if also != nil {
			c, o, err := also(next)
			if err != nil {
				return nil, err
			}
			cmps = append(cmps, c...)
			ops = append(ops, o...)
		}
		resp, err := kv.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("cluster: register function %s: %w", name, err)
		}
		if resp.Succeeded {
			return next, nil
		}
	}
	return nil, fmt.Errorf("cluster: register function %s: %w", name, ErrConflict)
}

// FunctionVertices returns the vertices of spec's graph that run the
// function name (a FunctionStep with that name), in declaration order.
func FunctionVertices(spec *sabotv1.JobSpec, name string) []*sabotv1.Vertex {
	var out []*sabotv1.Vertex
	for _, v := range spec.GetGraph().GetVertices() {
		if step := v.GetOperator().GetFunction(); step != nil && step.GetName() == name {
			out = append(out, v)
		}
	}
	return out
}

// RunsFunction reports whether spec's graph has a FunctionStep running the
// function name.
func RunsFunction(spec *sabotv1.JobSpec, name string) bool {
	return len(FunctionVertices(spec, name)) > 0
}

// FunctionNames returns the names of the functions spec's graph runs, in
// the order their steps are declared, each once.
func FunctionNames(spec *sabotv1.JobSpec) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range spec.GetGraph().GetVertices() {
		if step := v.GetOperator().GetFunction(); step != nil && !seen[step.GetName()] {
			seen[step.GetName()] = true
			out = append(out, step.GetName())
		}
	}
	return out
}
