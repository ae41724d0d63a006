package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	sabot "github.com/sabotdev/sabot/sdk/go"
	"github.com/sabotdev/sabot/sdk/go/sabottest"
)

// pay sends one transaction of card to the function.
func pay(t *testing.T, h *sabottest.Harness, card string, amount float64) {
	t.Helper()
	tx := Transaction{Card: card, Amount: amount, Merchant: "corner shop", TS: h.Now()}
	if err := h.Send("fraud", card, tx); err != nil {
		t.Fatal(err)
	}
}

// alerts decodes what the function sent to "alerts".
func alerts(t *testing.T, h *sabottest.Harness) []Alert {
	t.Helper()
	var out []Alert
	for _, r := range h.Outputs("alerts") {
		var a Alert
		if err := json.Unmarshal(r.Payload, &a); err != nil {
			t.Fatalf("alert %s: %v", r.Payload, err)
		}
		if a.Card != r.Key {
			t.Errorf("alert %s sent by the instance of key %q", r.Payload, r.Key)
		}
		out = append(out, a)
	}
	return out
}

func TestVelocityAlert(t *testing.T) {
	t.Parallel()
	h := sabottest.New(t, Fraud)
	for range maxPerWindow {
		pay(t, h, "4111", 20)
	}
	pay(t, h, "9999", 20) // another card's window is its own
	if got := alerts(t, h); len(got) != 0 {
		t.Fatalf("alerts after %d transactions: %+v", maxPerWindow, got)
	}
	pay(t, h, "4111", 20)
	pay(t, h, "4111", 20) // still the same window: no second alert
	got := alerts(t, h)
	if len(got) != 1 {
		t.Fatalf("alerts = %+v, want one", got)
	}
	if a := got[0]; a.Card != "4111" || a.Count != maxPerWindow+1 || !strings.HasPrefix(a.Reason, "velocity:") {
		t.Errorf("alert = %+v, want a velocity alert of card 4111 at count %d", a, maxPerWindow+1)
	}
	w, ok := sabottest.Value(h, window, "fraud", "4111")
	if !ok || w.Count != maxPerWindow+2 || w.Total != 20*(maxPerWindow+2) {
		t.Errorf("window = %+v, %v; want %d transactions totalling %v", w, ok, maxPerWindow+2, 20*(maxPerWindow+2))
	}
}

func TestSpikeAlert(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		history []float64
		amount  float64
		alert   bool
	}{
		{name: "far above the average", history: []float64{10, 20, 30}, amount: 500, alert: true},
		{name: "just above the factor", history: []float64{10, 10, 10}, amount: 50.01, alert: true},
		{name: "at the factor", history: []float64{10, 10, 10}, amount: 50},
		{name: "too little history", history: []float64{10, 10}, amount: 1000},
		{name: "no history", amount: 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := sabottest.New(t, Fraud)
			for _, a := range tt.history {
				pay(t, h, "4111", a)
			}
			pay(t, h, "4111", tt.amount)
			got := alerts(t, h)
			if !tt.alert {
				if len(got) != 0 {
					t.Fatalf("alerts = %+v, want none", got)
				}
				return
			}
			if len(got) != 1 || !strings.HasPrefix(got[0].Reason, "spike:") || got[0].Amount != tt.amount {
				t.Fatalf("alerts = %+v, want one spike alert for %v", got, tt.amount)
			}
		})
	}
}

func TestRecentAmountsAreBounded(t *testing.T) {
	t.Parallel()
	h := sabottest.New(t, Fraud)
	for i := range recentLen + 5 {
		pay(t, h, "4111", float64(i))
		// Keep each window short of the velocity rule.
		if err := h.AdvanceProcessingTime(windowLen); err != nil {
			t.Fatal(err)
		}
	}
	got := sabottest.List(h, recent, "fraud", "4111")
	if len(got) != recentLen || got[0] != 5 || got[len(got)-1] != recentLen+4 {
		t.Errorf("recent = %v, want the last %d amounts, 5 … %d", got, recentLen, recentLen+4)
	}
}

func TestResetTimerEndsTheWindow(t *testing.T) {
	t.Parallel()
	h := sabottest.New(t, Fraud)
	start := h.Now()
	for range maxPerWindow {
		pay(t, h, "4111", 20)
	}
	want := []sabot.Timer{{Name: resetTimer, Time: start.Add(windowLen), Domain: sabot.ProcessingTime}}
	if got := h.Timers("fraud", "4111"); len(got) != 1 || got[0].Name != want[0].Name || !got[0].Time.Equal(want[0].Time) || got[0].Domain != want[0].Domain {
		t.Fatalf("timers = %+v, want %+v", got, want)
	}

	// Just before the window's end nothing fires; at its end the timer
	// clears the window.
	if err := h.AdvanceProcessingTime(windowLen - time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, ok := sabottest.Value(h, window, "fraud", "4111"); !ok {
		t.Fatal("window cleared before its end")
	}
	if err := h.AdvanceProcessingTime(time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if w, ok := sabottest.Value(h, window, "fraud", "4111"); ok {
		t.Fatalf("window = %+v after its reset timer, want none", w)
	}
	if got := h.Timers("fraud", "4111"); len(got) != 0 {
		t.Fatalf("timers = %+v after the reset, want none", got)
	}

	// The next transactions count in a new window, with a timer of its
	// own: as many as the last window held again raise no alert.
	for range maxPerWindow {
		pay(t, h, "4111", 20)
	}
	if got := alerts(t, h); len(got) != 0 {
		t.Fatalf("alerts = %+v, want none: the transactions were in two windows", got)
	}
	w, _ := sabottest.Value(h, window, "fraud", "4111")
	if w.Count != maxPerWindow || !w.Start.Equal(start.Add(windowLen)) {
		t.Errorf("window = %+v, want %d transactions from %v", w, maxPerWindow, start.Add(windowLen))
	}
	if got := h.Timers("fraud", "4111"); len(got) != 1 || !got[0].Time.Equal(start.Add(2*windowLen)) {
		t.Errorf("timers = %+v, want the new window's reset at %v", got, start.Add(2*windowLen))
	}
}

func TestRecentAmountsExpire(t *testing.T) {
	t.Parallel()
	h := sabottest.New(t, Fraud)
	for range minHistory {
		pay(t, h, "4111", 10)
	}
	// A quiet day: the recent amounts expire (and the window's timer
	// fires on the way).
	if err := h.AdvanceProcessingTime(24 * time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := sabottest.List(h, recent, "fraud", "4111"); got != nil {
		t.Fatalf("recent = %v after 24h, want expired", got)
	}
	// With no history left a large amount is no spike: the card starts
	// afresh.
	pay(t, h, "4111", 1000)
	if got := alerts(t, h); len(got) != 0 {
		t.Fatalf("alerts = %+v, want none after the history expired", got)
	}
	if got := sabottest.List(h, recent, "fraud", "4111"); len(got) != 1 || got[0] != 1000 {
		t.Errorf("recent = %v, want [1000]", got)
	}
}

func TestBadTransaction(t *testing.T) {
	t.Parallel()
	h := sabottest.New(t, Fraud)
	err := h.Send("fraud", "4111", "not json")
	var ie *sabottest.InvocationError
	if !errors.As(err, &ie) || !strings.Contains(ie.Message, "fraud: transaction") {
		t.Fatalf("Send(not json) = %v, want the invocation to fail", err)
	}
	if _, ok := sabottest.Value(h, window, "fraud", "4111"); ok {
		t.Error("a failed invocation left a window")
	}
}
