package function_test

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/worker/function"
)

func TestCheckSpec(t *testing.T) {
	t.Parallel()
	const (
		value = sabotv1.StateKind_STATE_KIND_VALUE
		list  = sabotv1.StateKind_STATE_KIND_LIST
		mp    = sabotv1.StateKind_STATE_KIND_MAP
	)
	state := func(name string, kind sabotv1.StateKind, ttl int64, lazy bool) *sabotv1.StateSpec {
		return &sabotv1.StateSpec{Name: name, Kind: kind, TtlMs: ttl, Lazy: lazy}
	}
	spec := func(states []*sabotv1.StateSpec, outputs ...string) *sabotv1.FunctionSpec {
		return &sabotv1.FunctionSpec{Name: "cart", States: states, Outputs: outputs}
	}
	base := spec([]*sabotv1.StateSpec{state("items", mp, 0, false), state("total", value, 60000, false)}, "alerts")

	for _, tc := range []struct {
		name      string
		described *sabotv1.FunctionSpec
		want      string // "" for a match
	}{
		{"same", proto.Clone(base).(*sabotv1.FunctionSpec), ""},
		{"state order does not matter",
			spec([]*sabotv1.StateSpec{state("total", value, 60000, false), state("items", mp, 0, false)}, "alerts"), ""},
		{"kind",
			spec([]*sabotv1.StateSpec{state("items", list, 0, false), state("total", value, 60000, false)}, "alerts"),
			`function "cart": state "items" is LIST in the process but MAP in the registration (redeploy it)`},
		{"ttl",
			spec([]*sabotv1.StateSpec{state("items", mp, 0, false), state("total", value, 0, false)}, "alerts"),
			`function "cart": state "total" has no ttl in the process but ttl 1m0s in the registration (redeploy it)`},
		{"lazy",
			spec([]*sabotv1.StateSpec{state("items", mp, 0, true), state("total", value, 60000, false)}, "alerts"),
			`function "cart": state "items" is lazy in the process but eager in the registration (redeploy it)`},
		{"state missing in process",
			spec([]*sabotv1.StateSpec{state("items", mp, 0, false)}, "alerts"),
			`function "cart": state "total" is absent in the process but declared in the registration (redeploy it)`},
		{"state missing in registration",
			spec([]*sabotv1.StateSpec{state("items", mp, 0, false), state("total", value, 60000, false), state("extra", value, 0, false)}, "alerts"),
			`function "cart": state "extra" is declared in the process but absent in the registration (redeploy it)`},
		{"output missing in process",
			spec([]*sabotv1.StateSpec{state("items", mp, 0, false), state("total", value, 60000, false)}),
			`function "cart": output "alerts" is absent in the process but declared in the registration (redeploy it)`},
		{"output missing in registration",
			spec([]*sabotv1.StateSpec{state("items", mp, 0, false), state("total", value, 60000, false)}, "alerts", "audit"),
			`function "cart": output "audit" is declared in the process but absent in the registration (redeploy it)`},
		{"several",
			spec([]*sabotv1.StateSpec{state("items", list, 0, false), state("total", value, 60000, true)}, "alerts"),
			`function "cart": state "items" is LIST in the process but MAP in the registration (redeploy it)` + "\n" +
				`function "cart": state "total" is lazy in the process but eager in the registration (redeploy it)`},
		{"not served", nil,
			`function "cart": not served by the process (it serves nothing by that name); redeploy it`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := function.CheckSpec(base, tc.described)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckSpec = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("CheckSpec = %v\nwant %s", err, tc.want)
			}
			if !errors.Is(err, function.ErrSpecMismatch) {
				t.Errorf("error does not wrap ErrSpecMismatch")
			}
			var se *function.SpecError
			if !errors.As(err, &se) || se.Function != "cart" {
				t.Errorf("errors.As(*SpecError) = %+v", se)
			}
		})
	}
}

func ExampleCheckSpec() {
	registered := &sabotv1.FunctionSpec{
		Name:   "cart",
		States: []*sabotv1.StateSpec{{Name: "items", Kind: sabotv1.StateKind_STATE_KIND_MAP}},
	}
	described := &sabotv1.FunctionSpec{
		Name:   "cart",
		States: []*sabotv1.StateSpec{{Name: "items", Kind: sabotv1.StateKind_STATE_KIND_LIST}},
	}
	err := function.CheckSpec(registered, described)
	fmt.Println(err)
	fmt.Println(errors.Is(err, function.ErrSpecMismatch))
	// Output:
	// function "cart": state "items" is LIST in the process but MAP in the registration (redeploy it)
	// true
}
