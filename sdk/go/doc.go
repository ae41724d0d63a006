// Package sabot is the Go SDK for writing Sabot functions: keyed functions
// with state, timers and outputs that Sabot's workers call over the function
// protocol (proto/sabot/v1/function.proto).
//
// # Model
//
// A Function handles the messages of a key, one at a time and in order. Its
// state lives in the worker, not in the function process: each call brings
// the key's eagerly declared state, the handler reads and writes it through
// the declarations (Value, List, Map), and the call's result carries the
// writes back as mutations, which the worker applies atomically with its
// checkpoints. A function process is therefore stateless and may be
// restarted, scaled or replaced at any time.
//
// Declare state once, at package level, and list it on the function:
//
//	var count = sabot.NewValue("count", sabot.Int64())
//
//	var counter = sabot.Function{
//		Name:   "counter",
//		States: []sabot.State{count},
//		OnMessage: func(ctx *sabot.Context, msg sabot.Message) error {
//			n, _, err := count.Get(ctx)
//			if err != nil {
//				return err
//			}
//			return count.Set(ctx, n+1)
//		},
//	}
//
//	func main() {
//		if err := sabot.Serve(counter); err != nil {
//			log.Fatal(err)
//		}
//	}
//
// # Invocations and failures
//
// The worker batches the events of a key into an invocation, and the
// invocations of distinct keys into a call. The effects of an invocation
// (state writes, messages, timers, replies) are applied together or not at
// all: a handler that returns an error or panics fails the invocation, and
// nothing of it, not even the events handled before, is applied. Reads see
// the invocation's own earlier writes ("read your writes"), across its
// events.
//
// # Concurrency
//
// Invocations of one call run concurrently (at most GOMAXPROCS at a time),
// and calls of a session may overlap; one key's events never do. Handlers
// must therefore share no mutable data except through state. Declarations
// and codecs are immutable and shared.
//
// # Testing
//
// Package sabottest runs functions through this package's real call path,
// with an in-memory store standing in for the worker.
package sabot
