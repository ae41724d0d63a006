// Command counter is the function the platform's tests deploy: a running
// count per key, sent to the output "counts" as {"key","count"} with each
// message, and replied to invocations. Payload fields drive the failure
// tests: {"op":"get"} replies the count without counting; {"panic":true}
// panics; {"sleep_ms":N} sleeps; {"bad_output":true} sends a payload that
// is not JSON to "counts"; {"delay_ms":N} also sends the function itself
// a message "later" after N ms (counted like any message when it
// arrives); {"exit":true} exits the process.
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"os"
	"time"

	sabot "github.com/sabotdev/sabot/sdk/go"
)

type input struct {
	Op        string `json:"op"`
	Panic     bool   `json:"panic"`
	SleepMs   int    `json:"sleep_ms"`
	BadOutput bool   `json:"bad_output"`
	DelayMs   int    `json:"delay_ms"`
	Exit      bool   `json:"exit"`
	Seq       int64  `json:"seq"`
	FSeq      int64  `json:"fseq"`
}

// forward, set by SABOT_COUNTER_FORWARD=1 in the environment, makes every
// fifth streamed message of a key (seq divisible by 5) also send one
// message {"fseq": count} to the counter of key "f"+key: a message between
// keys that another subtask may own. A forwarded message that arrives
// before one sent earlier fails (they must keep their order).
var forward = os.Getenv("SABOT_COUNTER_FORWARD") == "1"

type countRow struct {
	Key   string `json:"key"`
	Count int64  `json:"count"`
}

var (
	count = sabot.NewValue("count", sabot.Int64())
	// lastFrom is, per sending key, the fseq of its last forwarded message:
	// forwarded messages must arrive in the order they were sent.
	lastFrom = sabot.NewMap("last_from", sabot.String(), sabot.Int64(), sabot.Lazy())
)

// Counter is the function.
var Counter = sabot.Function{
	Name:    "counter",
	States:  []sabot.State{count, lastFrom},
	Outputs: []string{"counts"},
	OnMessage: func(ctx *sabot.Context, msg sabot.Message) error {
		var in input
		if len(msg.Payload) > 0 && msg.Payload[0] == '{' {
			if err := msg.JSON(&in); err != nil {
				return fmt.Errorf("payload: %w", err)
			}
		}
		switch {
		case in.Exit:
			os.Exit(3)
		case in.Panic:
			panic("counter: asked to panic on key " + ctx.Key())
		case in.SleepMs > 0:
			time.Sleep(time.Duration(in.SleepMs) * time.Millisecond)
		}
		if msg.From != "" && in.FSeq > 0 {
			last, _, err := lastFrom.Get(ctx, msg.From)
			if err != nil {
				return err
			}
			if in.FSeq <= last {
				return fmt.Errorf("message %d from %s arrived after %d: out of order", in.FSeq, msg.From, last)
			}
			if err := lastFrom.Put(ctx, msg.From, in.FSeq); err != nil {
				return err
			}
		}
		n, _, err := count.Get(ctx)
		if err != nil {
			return err
		}
		if in.Op == "get" {
			return ctx.Reply(countRow{Key: ctx.Key(), Count: n})
		}
		n++
		if err := count.Set(ctx, n); err != nil {
			return err
		}
		if in.BadOutput {
			if err := ctx.Send("counts", "this is not JSON"); err != nil {
				return err
			}
		} else if err := ctx.Send("counts", countRow{Key: ctx.Key(), Count: n}); err != nil {
			return err
		}
		if forward && in.Seq > 0 && in.Seq%5 == 0 {
			// fseq is the sender's count: it grows in the order messages
			// are sent (seq does not: a key's records come from several
			// partitions).
			if err := ctx.SendTo("counter/f"+ctx.Key(), map[string]int64{"fseq": n}, 0); err != nil {
				return err
			}
		}
		if in.DelayMs > 0 {
			later, _ := json.Marshal(map[string]string{"op": "later"})
			if err := ctx.SendTo("counter/"+ctx.Key(), later, time.Duration(in.DelayMs)*time.Millisecond); err != nil {
				return err
			}
		}
		if msg.Invoked() {
			return ctx.Reply(countRow{Key: ctx.Key(), Count: n})
		}
		return nil
	},
}

func main() {
	if err := sabot.Serve(Counter); err != nil {
		log.Fatal(err)
	}
}
