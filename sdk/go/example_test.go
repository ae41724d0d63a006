package sabot_test

import (
	"fmt"
	"time"

	sabot "github.com/sabotdev/sabot/sdk/go"
)

// A counter: each key counts its messages, answers an Invoke with the
// count, and forgets a key a day after its last message. A program serves it
// with sabot.Serve(counter) in main; tests run it with sabottest.
func Example() {
	count := sabot.NewValue("count", sabot.Int64(), sabot.WithTTL(24*time.Hour))
	counter := sabot.Function{
		Name:    "counter",
		States:  []sabot.State{count},
		Outputs: []string{"counts"},
		OnMessage: func(ctx *sabot.Context, msg sabot.Message) error {
			n, _, err := count.Get(ctx)
			if err != nil {
				return err
			}
			if err := count.Set(ctx, n+1); err != nil {
				return err
			}
			if msg.Invoked() {
				return ctx.Reply(n + 1)
			}
			return ctx.Send("counts", map[string]any{"key": ctx.Key(), "count": n + 1})
		},
	}
	if err := counter.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	spec := counter.Spec()
	fmt.Println(spec.GetName(), spec.GetStates()[0].GetName(), spec.GetStates()[0].GetKind(), spec.GetStates()[0].GetTtlMs(), spec.GetOutputs())
	// Output: counter count STATE_KIND_VALUE 86400000 [counts]
}
