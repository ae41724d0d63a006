// Command cart is an example Sabot function: a shopping cart per customer,
// driven by Invoke only (no pipeline feeds it). The key is the customer;
// the payload is an operation:
//
//	{"op":"add","item":"apple","qty":2}      add qty (default 1) of a catalog item
//	{"op":"remove","item":"apple","qty":1}   remove qty (default: all) of an item
//	{"op":"get"}                             show the cart
//	{"op":"checkout"}                        show the cart as an order and empty it
//
// Every operation replies with the cart: {"items":{"apple":2},"total_cents":100},
// plus "checked_out":true for a checkout.
//
// A bad request — a payload that is not JSON, an unknown op or item, a
// quantity out of range, a checkout of an empty cart — is the caller's
// mistake, not the function's failure: it is answered with the unchanged
// cart and an "error" field, and changes nothing. Returning an error from the
// handler would instead fail the invocation: the worker would retry it, and
// with the default failure policy fail the job, for a typo in a request.
// Errors are returned only for what the function cannot answer (its state
// could not be read).
//
// The cart is a Map state, item → quantity. It is eager, not Lazy: every
// reply shows the whole cart, so each call reads all of it anyway, and
// sending it with the call saves the round trips of lazy reads. A cart
// nobody has changed for a week expires (WithTTL).
package main

import (
	"fmt"
	"log"
	"time"

	sabot "github.com/sabotdev/sabot/sdk/go"
)

// Request is an operation on the cart.
type Request struct {
	Op   string `json:"op"`
	Item string `json:"item,omitempty"`
	Qty  int64  `json:"qty,omitempty"`
}

// Reply is what every operation answers.
type Reply struct {
	Items      map[string]int64 `json:"items"`
	TotalCents int64            `json:"total_cents"`
	CheckedOut bool             `json:"checked_out,omitempty"`
	Error      string           `json:"error,omitempty"`
}

// price is the price in cents of an item the shop sells, and whether it
// sells it.
func price(item string) (int64, bool) {
	switch item {
	case "apple":
		return 50, true
	case "banana":
		return 25, true
	case "bread":
		return 250, true
	case "coffee":
		return 899, true
	case "milk":
		return 120, true
	}
	return 0, false
}

// catalog lists the items price knows.
const catalog = "apple, banana, bread, coffee, milk"

// maxQty is the most of one item a cart holds.
const maxQty = 99

var items = sabot.NewMap("items", sabot.String(), sabot.Int64(), sabot.WithTTL(7*24*time.Hour))

// Cart is the function.
var Cart = sabot.Function{
	Name:      "cart",
	States:    []sabot.State{items},
	OnMessage: onRequest,
}

func onRequest(ctx *sabot.Context, msg sabot.Message) error {
	var req Request
	if err := msg.JSON(&req); err != nil {
		return reject(ctx, msg, "payload is not a JSON request: %v", err)
	}
	switch req.Op {
	case "add":
		if _, ok := price(req.Item); !ok {
			return reject(ctx, msg, "unknown item %q: the shop sells %s", req.Item, catalog)
		}
		if req.Qty == 0 {
			req.Qty = 1
		}
		have, _, err := items.Get(ctx, req.Item)
		if err != nil {
			return err
		}
		if req.Qty < 0 || have+req.Qty > maxQty {
			return reject(ctx, msg, "qty %d: a cart holds 1 to %d of an item (it has %d %s)", req.Qty, maxQty, have, req.Item)
		}
		if err := items.Put(ctx, req.Item, have+req.Qty); err != nil {
			return err
		}
	case "remove":
		if req.Qty < 0 {
			return reject(ctx, msg, "qty %d: remove a positive quantity, or leave it out to remove all", req.Qty)
		}
		have, _, err := items.Get(ctx, req.Item)
		if err != nil {
			return err
		}
		if req.Qty == 0 || req.Qty >= have {
			err = items.Remove(ctx, req.Item) // removing what is not there is fine
		} else {
			err = items.Put(ctx, req.Item, have-req.Qty)
		}
		if err != nil {
			return err
		}
	case "get":
	case "checkout":
		r, err := cart(ctx)
		if err != nil {
			return err
		}
		if len(r.Items) == 0 {
			return reject(ctx, msg, "checkout: the cart is empty")
		}
		if err := items.Clear(ctx); err != nil {
			return err
		}
		r.CheckedOut = true
		return reply(ctx, msg, r)
	default:
		return reject(ctx, msg, "unknown op %q: want add, remove, get or checkout", req.Op)
	}
	r, err := cart(ctx)
	if err != nil {
		return err
	}
	return reply(ctx, msg, r)
}

// cart is the key's cart as it stands, with its total.
func cart(ctx *sabot.Context) (Reply, error) {
	es, err := items.Entries(ctx)
	if err != nil {
		return Reply{}, err
	}
	r := Reply{Items: make(map[string]int64, len(es))}
	for _, e := range es {
		r.Items[e.Key] = e.Value
		p, _ := price(e.Key) // an item no longer sold is free
		r.TotalCents += e.Value * p
	}
	return r, nil
}

// reject answers a bad request with the unchanged cart and the reason.
func reject(ctx *sabot.Context, msg sabot.Message, format string, args ...any) error {
	r, err := cart(ctx)
	if err != nil {
		return err
	}
	r.Error = fmt.Sprintf(format, args...)
	return reply(ctx, msg, r)
}

// reply answers an invoked message; a message nobody waits for (sent by
// another function, say) has its effect without an answer.
func reply(ctx *sabot.Context, msg sabot.Message, r Reply) error {
	if !msg.Invoked() {
		return nil
	}
	return ctx.Reply(r)
}

func main() {
	if err := sabot.Serve(Cart); err != nil {
		log.Fatal(err)
	}
}
