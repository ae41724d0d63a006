package sabot

import (
	"errors"
	"fmt"
	"strings"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
)

// SDK is the name and protocol version this SDK reports in Describe.
const SDK = "sabot-go/1"

// Function is a keyed function: the worker partitions its messages by key
// and calls the handlers with one key's events in order, never two events of
// the same key at once. Different keys run concurrently, so handlers must
// not share mutable data except through state.
type Function struct {
	// Name is the function's name: lower-case letters, digits and '-',
	// starting with a letter, at most 64 bytes. Addresses are "name/key".
	Name string
	// States are the states the handlers use; using another one fails
	// with ErrUndeclaredState. Names are unique within the function.
	States []State
	// Outputs are the named outputs the function may Send to; a pipeline
	// binds each to a sink.
	Outputs []string
	// OnMessage handles one message of a key. Required. A returned error
	// (or a panic) fails the whole invocation: nothing it did is applied,
	// and the worker decides whether to retry.
	OnMessage func(ctx *Context, msg Message) error
	// OnTimer handles a fired timer of a key. Optional; without it, setting
	// a timer fails with ErrNoTimerHandler.
	OnTimer func(ctx *Context, t Timer) error
}

// Limits of a declaration, as the protocol validates them.
const (
	maxNameLen = 64
	maxStates  = 64
	maxOutputs = 16
)

// Validate reports what is wrong with the function (its name, states,
// outputs, handlers), wrapping ErrInvalidFunction.
func (f Function) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w %q: "+format, append([]any{ErrInvalidFunction, f.Name}, args...)...))
	}
	if !validFunctionName(f.Name) {
		bad("name must match ^[a-z][a-z0-9-]*$ and be at most %d bytes", maxNameLen)
	}
	if f.OnMessage == nil {
		bad("OnMessage is nil")
	}
	if len(f.States) > maxStates {
		bad("%d states, at most %d", len(f.States), maxStates)
	}
	seen := make(map[string]bool, len(f.States))
	for i, s := range f.States {
		if s == nil || s.decl() == nil {
			bad("state %d is nil", i)
			continue
		}
		d := s.decl()
		switch {
		case !validStateName(d.name):
			bad("state %q: name must match ^[A-Za-z_][A-Za-z0-9_.-]*$ and be at most %d bytes", d.name, maxNameLen)
		case seen[d.name]:
			bad("state %q declared twice", d.name)
		case d.noCodec:
			bad("state %q: nil codec", d.name)
		case d.ttl < 0:
			bad("state %q: negative TTL %v", d.name, d.ttl)
		}
		seen[d.name] = true
	}
	if len(f.Outputs) > maxOutputs {
		bad("%d outputs, at most %d", len(f.Outputs), maxOutputs)
	}
	outs := make(map[string]bool, len(f.Outputs))
	for _, o := range f.Outputs {
		switch {
		case !validOutputName(o):
			bad("output %q: name must match ^[A-Za-z_][A-Za-z0-9_-]*$", o)
		case outs[o]:
			bad("output %q declared twice", o)
		}
		outs[o] = true
	}
	return errors.Join(errs...)
}

// Spec is the function's declaration as the protocol carries it (Describe,
// deploy). It does not validate.
func (f Function) Spec() *sabotv1.FunctionSpec {
	s := &sabotv1.FunctionSpec{Name: f.Name, Outputs: append([]string(nil), f.Outputs...)}
	for _, st := range f.States {
		if st != nil && st.decl() != nil {
			s.States = append(s.States, st.Spec())
		}
	}
	return s
}

// Describe validates fns as one function process (at least one function,
// unique names) and returns what the process's Describe answers.
func Describe(fns ...Function) (*sabotv1.DescribeResponse, error) {
	if len(fns) == 0 {
		return nil, fmt.Errorf("%w: no functions", ErrInvalidFunction)
	}
	var errs []error
	names := make(map[string]bool, len(fns))
	resp := &sabotv1.DescribeResponse{Sdk: SDK}
	for _, f := range fns {
		if err := f.Validate(); err != nil {
			errs = append(errs, err)
		}
		if names[f.Name] {
			errs = append(errs, fmt.Errorf("%w %q: served twice", ErrInvalidFunction, f.Name))
		}
		names[f.Name] = true
		resp.Functions = append(resp.Functions, f.Spec())
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return resp, nil
}

// function is a validated Function as the engine runs it.
type function struct {
	Function
	decls []*stateDecl // in States order: a Context's slots follow it
}

func compileFunction(f Function) *function {
	fn := &function{Function: f, decls: make([]*stateDecl, len(f.States))}
	for i, s := range f.States {
		fn.decls[i] = s.decl()
	}
	return fn
}

// stateIndex is the index of the named state in decls, or -1.
func (f *function) stateIndex(name string) int {
	for i, d := range f.decls {
		if d.name == name {
			return i
		}
	}
	return -1
}

func validFunctionName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

func validStateName(s string) bool { return validIdent(s, "_.-", maxNameLen) }

func validOutputName(s string) bool { return validIdent(s, "_-", 0) }

// validIdent: a letter or '_', then letters, digits and extra.
func validIdent(s, extra string, maxLen int) bool {
	if len(s) == 0 || (maxLen > 0 && len(s) > maxLen) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if letter || i > 0 && (c >= '0' && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			continue
		}
		return false
	}
	return true
}
