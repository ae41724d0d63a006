package sabot_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	sabot "github.com/sabotdev/sabot/sdk/go"
)

func TestFunctionValidation(t *testing.T) {
	t.Parallel()
	nop := func(*sabot.Context, sabot.Message) error { return nil }
	v := sabot.NewValue("v", sabot.String())
	for _, tc := range []struct {
		name string
		fns  []sabot.Function
		want string
	}{
		{"no functions", nil, "no functions"},
		{"bad name", []sabot.Function{{Name: "Counter", OnMessage: nop}}, `"Counter": name must match`},
		{"empty name", []sabot.Function{{OnMessage: nop}}, `"": name must match`},
		{"no handler", []sabot.Function{{Name: "f"}}, "OnMessage is nil"},
		{"state twice", []sabot.Function{{Name: "f", OnMessage: nop, States: []sabot.State{v, sabot.NewValue("v", sabot.Int64())}}}, `state "v" declared twice`},
		{"bad state name", []sabot.Function{{Name: "f", OnMessage: nop, States: []sabot.State{sabot.NewList("a b", sabot.String())}}}, `state "a b": name must match`},
		{"nil codec", []sabot.Function{{Name: "f", OnMessage: nop, States: []sabot.State{sabot.NewMap[string, int]("m", sabot.String(), nil)}}}, `state "m": nil codec`},
		{"nil state", []sabot.Function{{Name: "f", OnMessage: nop, States: []sabot.State{(*sabot.Value[int])(nil)}}}, "state 0 is nil"},
		{"negative ttl", []sabot.Function{{Name: "f", OnMessage: nop, States: []sabot.State{sabot.NewValue("v", sabot.String(), sabot.WithTTL(-time.Second))}}}, "negative TTL"},
		{"output twice", []sabot.Function{{Name: "f", OnMessage: nop, Outputs: []string{"o", "o"}}}, `output "o" declared twice`},
		{"bad output", []sabot.Function{{Name: "f", OnMessage: nop, Outputs: []string{"1o"}}}, `output "1o": name must match`},
		{"served twice", []sabot.Function{{Name: "f", OnMessage: nop}, {Name: "f", OnMessage: nop}}, `"f": served twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := sabot.Describe(tc.fns...)
			if !errors.Is(err, sabot.ErrInvalidFunction) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalidFunction with %q", err, tc.want)
			}
			if _, _, err := sabot.NewHandler(tc.fns...); !errors.Is(err, sabot.ErrInvalidFunction) {
				t.Fatalf("NewHandler: %v", err)
			}
		})
	}
	ok := sabot.Function{Name: "f-1", OnMessage: nop, States: []sabot.State{v}, Outputs: []string{"out_1"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid function: %v", err)
	}
}

func TestServeListenerRejectsInvalidFunctions(t *testing.T) {
	t.Parallel()
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := sabot.ServeListener(context.Background(), l, sabot.Function{Name: "f"}); !errors.Is(err, sabot.ErrInvalidFunction) {
		t.Fatalf("got %v", err)
	}
	if _, err := l.Accept(); err == nil {
		t.Fatal("the listener is still open")
	}
}
