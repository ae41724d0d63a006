package function

import (
	"errors"
	"strconv"
	"strings"
	"time"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
)

// CheckSpec compares a function's registration with what its process
// describes: every registered state must be declared by the process with
// the same kind, TTL and laziness, and the process may declare no state the
// registration lacks; the outputs must be the same set. It returns nil or
// one *SpecError per difference (several joined with errors.Join, in the
// order states, outputs), each wrapping ErrSpecMismatch, e.g.
//
//	function "cart": state "items" is LIST in the process but MAP in the registration (redeploy it)
//
// A nil described means the process does not serve the function. A nil
// registered is an error too (a registration always has a spec).
func CheckSpec(registered, described *sabotv1.FunctionSpec) error {
	name := registered.GetName()
	if registered == nil {
		return errors.New("function: registration has no spec")
	}
	if described == nil {
		return &SpecError{Function: name, Process: "nothing by that name"}
	}
	if described.GetName() != name {
		return &SpecError{Function: name, Process: strconv.Quote(described.GetName())}
	}
	var errs []error
	mismatch := func(subject, property, process, reg string) {
		errs = append(errs, &SpecError{Function: name, Subject: subject, Property: property, Process: process, Registered: reg})
	}

	got := make(map[string]*sabotv1.StateSpec, len(described.GetStates()))
	for _, s := range described.GetStates() {
		got[s.GetName()] = s
	}
	want := make(map[string]bool, len(registered.GetStates()))
	for _, r := range registered.GetStates() {
		want[r.GetName()] = true
		subject := "state " + strconv.Quote(r.GetName())
		d, ok := got[r.GetName()]
		if !ok {
			mismatch(subject, "presence", "absent", "declared")
			continue
		}
		if d.GetKind() != r.GetKind() {
			mismatch(subject, "kind", kindName(d.GetKind()), kindName(r.GetKind()))
		}
		if d.GetTtlMs() != r.GetTtlMs() {
			mismatch(subject, "ttl", ttlName(d.GetTtlMs()), ttlName(r.GetTtlMs()))
		}
		if d.GetLazy() != r.GetLazy() {
			mismatch(subject, "lazy", lazyName(d.GetLazy()), lazyName(r.GetLazy()))
		}
	}
	for _, d := range described.GetStates() {
		if !want[d.GetName()] {
			mismatch("state "+strconv.Quote(d.GetName()), "presence", "declared", "absent")
		}
	}

	gotOut := make(map[string]bool, len(described.GetOutputs()))
	for _, o := range described.GetOutputs() {
		gotOut[o] = true
	}
	wantOut := make(map[string]bool, len(registered.GetOutputs()))
	for _, o := range registered.GetOutputs() {
		wantOut[o] = true
		if !gotOut[o] {
			mismatch("output "+strconv.Quote(o), "presence", "absent", "declared")
		}
	}
	for _, o := range described.GetOutputs() {
		if !wantOut[o] {
			mismatch("output "+strconv.Quote(o), "presence", "declared", "absent")
		}
	}
	return errors.Join(errs...)
}

// checkDescribed finds the registered function in a process's Describe
// answer and checks it with CheckSpec.
func checkDescribed(registered *sabotv1.FunctionSpec, desc *sabotv1.DescribeResponse) error {
	for _, f := range desc.GetFunctions() {
		if f.GetName() == registered.GetName() {
			return CheckSpec(registered, f)
		}
	}
	names := make([]string, 0, len(desc.GetFunctions()))
	for _, f := range desc.GetFunctions() {
		names = append(names, strconv.Quote(f.GetName()))
	}
	serves := "nothing"
	if len(names) > 0 {
		serves = strings.Join(names, ", ")
	}
	return &SpecError{Function: registered.GetName(), Process: serves}
}

// kindName prints a state kind as "LIST".
func kindName(k sabotv1.StateKind) string {
	return strings.TrimPrefix(k.String(), "STATE_KIND_")
}

// ttlName prints a TTL as "ttl 1m0s" or "no ttl".
func ttlName(ms int64) string {
	if ms == 0 {
		return "no ttl"
	}
	return "ttl " + (time.Duration(ms) * time.Millisecond).String()
}

func lazyName(lazy bool) string {
	if lazy {
		return "lazy"
	}
	return "eager"
}
