// Command fraud is an example Sabot function: a fraud detector for card
// transactions, keyed by card.
//
// Each message is a transaction {"card","amount","merchant","ts"}. Per card
// the function keeps
//
//   - the current window — {count, total, start} — a Value. A window opens
//     with the card's first transaction and lasts windowLen of processing
//     time: a processing-time timer "reset" at start+windowLen clears it
//     (OnTimer), and the next transaction opens a new one. Its TTL of an
//     hour is a backstop: whatever happens to timers, an idle card holds
//     no window for long;
//   - the card's recent amounts, a lazy List (read only when needed, not
//     sent with every call) of at most recentLen amounts that expires a day
//     after the card's last transaction.
//
// It sends an alert {"card","reason","amount","count"} to the output
// "alerts" when a card makes more than maxPerWindow transactions in one
// window (once per window), and when an amount is more than spikeFactor
// times the average of the card's recent amounts (given at least
// minHistory of them).
//
// examples/functions/fraud/sabot.yaml runs it between two Kafka topics;
// README.md shows how.
package main

import (
	"fmt"
	"log"
	"time"

	sabot "github.com/sabotdev/sabot/sdk/go"
)

// The detector's rules.
const (
	// windowLen is how long a card's window lasts, from its first
	// transaction.
	windowLen = 30 * time.Second
	// maxPerWindow is the most transactions a card may make in a window
	// without an alert.
	maxPerWindow = 5
	// spikeFactor: an amount above spikeFactor times the recent average is
	// suspicious.
	spikeFactor = 5.0
	// minHistory is how many recent amounts the spike rule needs.
	minHistory = 3
	// recentLen is how many recent amounts a card keeps.
	recentLen = 20
)

// Transaction is one card payment, as the input rows carry it.
type Transaction struct {
	Card     string    `json:"card"`
	Amount   float64   `json:"amount"`
	Merchant string    `json:"merchant"`
	TS       time.Time `json:"ts"`
}

// Window is a card's current window.
type Window struct {
	Count int64     `json:"count"`
	Total float64   `json:"total"`
	Start time.Time `json:"start"` // processing time of its first transaction
}

// Alert is what the function sends to "alerts"; its fields are the
// columns sabot.yaml declares for the output.
type Alert struct {
	Card   string  `json:"card"`
	Reason string  `json:"reason"`
	Amount float64 `json:"amount"`
	Count  int64   `json:"count"`
}

// resetTimer is the name of the timer that ends a window.
const resetTimer = "reset"

var (
	window = sabot.NewValue("window", sabot.JSON[Window](), sabot.WithTTL(time.Hour))
	recent = sabot.NewList("recent", sabot.JSON[float64](), sabot.Lazy(), sabot.WithTTL(24*time.Hour))
)

// Fraud is the function.
var Fraud = sabot.Function{
	Name:      "fraud",
	States:    []sabot.State{window, recent},
	Outputs:   []string{"alerts"},
	OnMessage: onTransaction,
	OnTimer:   onTimer,
}

func onTransaction(ctx *sabot.Context, msg sabot.Message) error {
	var tx Transaction
	if err := msg.JSON(&tx); err != nil {
		// A malformed transaction fails the invocation; with
		// on_failure: dead_letter the pipeline sets it aside.
		return fmt.Errorf("fraud: transaction: %w", err)
	}
	if tx.Card == "" {
		tx.Card = ctx.Key()
	}

	// The velocity rule: count the transaction in the card's window,
	// opening one (and its reset timer) if there is none.
	w, ok, err := window.Get(ctx)
	if err != nil {
		return err
	}
	if now := ctx.ProcessingTime(); !ok || !now.Before(w.Start.Add(windowLen)) {
		// No window, or one past its end whose timer has not fired yet:
		// a new window starts.
		w = Window{Start: now}
		if err := ctx.SetTimer(resetTimer, w.Start.Add(windowLen)); err != nil {
			return err
		}
	}
	w.Count++
	w.Total += tx.Amount
	if err := window.Set(ctx, w); err != nil {
		return err
	}
	if w.Count == maxPerWindow+1 { // alert once per window
		reason := fmt.Sprintf("velocity: %d transactions in %s", w.Count, windowLen)
		if err := ctx.Send("alerts", Alert{Card: tx.Card, Reason: reason, Amount: tx.Amount, Count: w.Count}); err != nil {
			return err
		}
	}

	// The spike rule: compare with the recent amounts (a read from the
	// worker: the list is lazy), then remember this one.
	amounts, err := recent.Get(ctx)
	if err != nil {
		return err
	}
	if len(amounts) >= minHistory {
		avg := mean(amounts)
		if avg > 0 && tx.Amount > spikeFactor*avg {
			reason := fmt.Sprintf("spike: %.2f is %.1fx the recent average %.2f", tx.Amount, tx.Amount/avg, avg)
			if err := ctx.Send("alerts", Alert{Card: tx.Card, Reason: reason, Amount: tx.Amount, Count: w.Count}); err != nil {
				return err
			}
		}
	}
	if len(amounts) < recentLen {
		return recent.Append(ctx, tx.Amount)
	}
	return recent.Replace(ctx, append(amounts[len(amounts)-recentLen+1:], tx.Amount))
}

// onTimer ends the card's window when its reset timer fires.
func onTimer(ctx *sabot.Context, t sabot.Timer) error {
	if t.Name != resetTimer {
		return nil
	}
	w, ok, err := window.Get(ctx)
	if err != nil || !ok {
		return err
	}
	// Clear only a window that has ended by the timer's time. If this
	// timer was late and a transaction already replaced its window, the
	// new window ends later and has a timer of its own.
	if t.Time.Before(w.Start.Add(windowLen)) {
		return nil
	}
	return window.Clear(ctx)
}

func mean(xs []float64) float64 {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

func main() {
	if err := sabot.Serve(Fraud); err != nil {
		log.Fatal(err)
	}
}
