package main

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/sabotdev/sabot/sdk/go/sabottest"
)

// invoke sends payload to alice's cart and decodes the reply.
func invoke(t *testing.T, h *sabottest.Harness, payload string) Reply {
	t.Helper()
	b, err := h.Invoke("cart", "alice", payload)
	if err != nil {
		t.Fatalf("invoke %s: %v", payload, err)
	}
	var r Reply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("invoke %s: reply %q: %v", payload, b, err)
	}
	return r
}

// stored is alice's cart as the worker keeps it.
func stored(h *sabottest.Harness) map[string]int64 {
	m := map[string]int64{}
	for _, e := range sabottest.Map(h, items, "cart", "alice") {
		m[e.Key] = e.Value
	}
	return m
}

func TestCart(t *testing.T) {
	t.Parallel()
	type step struct {
		req   string
		items map[string]int64
		total int64
		err   string // a substring of the reply's error; "" for none
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "add", steps: []step{
			{req: `{"op":"add","item":"apple","qty":2}`, items: map[string]int64{"apple": 2}, total: 100},
			{req: `{"op":"add","item":"coffee"}`, items: map[string]int64{"apple": 2, "coffee": 1}, total: 999},
			{req: `{"op":"add","item":"apple","qty":3}`, items: map[string]int64{"apple": 5, "coffee": 1}, total: 1149},
		}},
		{name: "remove", steps: []step{
			{req: `{"op":"add","item":"milk","qty":3}`, items: map[string]int64{"milk": 3}, total: 360},
			{req: `{"op":"remove","item":"milk","qty":1}`, items: map[string]int64{"milk": 2}, total: 240},
			{req: `{"op":"remove","item":"bread"}`, items: map[string]int64{"milk": 2}, total: 240},
			{req: `{"op":"remove","item":"milk"}`, items: map[string]int64{}},
		}},
		{name: "remove more than there is", steps: []step{
			{req: `{"op":"add","item":"banana","qty":2}`, items: map[string]int64{"banana": 2}, total: 50},
			{req: `{"op":"remove","item":"banana","qty":5}`, items: map[string]int64{}},
		}},
		{name: "get", steps: []step{
			{req: `{"op":"get"}`, items: map[string]int64{}},
			{req: `{"op":"add","item":"bread"}`, items: map[string]int64{"bread": 1}, total: 250},
			{req: `{"op":"get"}`, items: map[string]int64{"bread": 1}, total: 250},
		}},
		{name: "bad requests change nothing", steps: []step{
			{req: `{"op":"add","item":"apple"}`, items: map[string]int64{"apple": 1}, total: 50},
			{req: `not json`, items: map[string]int64{"apple": 1}, total: 50, err: "not a JSON request"},
			{req: `{"op":"buy","item":"apple"}`, items: map[string]int64{"apple": 1}, total: 50, err: `unknown op "buy"`},
			{req: `{"op":"add","item":"caviar"}`, items: map[string]int64{"apple": 1}, total: 50, err: `unknown item "caviar"`},
			{req: `{"op":"add","item":"apple","qty":-1}`, items: map[string]int64{"apple": 1}, total: 50, err: "qty -1"},
			{req: `{"op":"add","item":"apple","qty":99}`, items: map[string]int64{"apple": 1}, total: 50, err: "qty 99"},
			{req: `{"op":"remove","item":"apple","qty":-2}`, items: map[string]int64{"apple": 1}, total: 50, err: "qty -2"},
		}},
		{name: "checkout of an empty cart", steps: []step{
			{req: `{"op":"checkout"}`, items: map[string]int64{}, err: "empty"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := sabottest.New(t, Cart)
			for _, s := range tt.steps {
				r := invoke(t, h, s.req)
				if !maps.Equal(r.Items, s.items) || r.TotalCents != s.total || r.CheckedOut {
					t.Errorf("%s: reply %+v, want items %v, total %d", s.req, r, s.items, s.total)
				}
				if s.err == "" && r.Error != "" || !strings.Contains(r.Error, s.err) {
					t.Errorf("%s: reply error %q, want %q", s.req, r.Error, s.err)
				}
				if got := stored(h); !maps.Equal(got, s.items) {
					t.Errorf("%s: stored cart %v, want %v", s.req, got, s.items)
				}
			}
		})
	}
}

func TestCheckout(t *testing.T) {
	t.Parallel()
	h := sabottest.New(t, Cart)
	invoke(t, h, `{"op":"add","item":"apple","qty":2}`)
	invoke(t, h, `{"op":"add","item":"bread"}`)
	r := invoke(t, h, `{"op":"checkout"}`)
	want := map[string]int64{"apple": 2, "bread": 1}
	if !r.CheckedOut || !maps.Equal(r.Items, want) || r.TotalCents != 350 || r.Error != "" {
		t.Fatalf("checkout reply %+v, want the order %v for 350 cents", r, want)
	}
	if got := stored(h); len(got) != 0 {
		t.Fatalf("cart after checkout %v, want empty", got)
	}
	if r := invoke(t, h, `{"op":"get"}`); len(r.Items) != 0 || r.TotalCents != 0 {
		t.Fatalf("get after checkout %+v, want an empty cart", r)
	}
}

func TestCartsAreSeparate(t *testing.T) {
	t.Parallel()
	h := sabottest.New(t, Cart)
	invoke(t, h, `{"op":"add","item":"apple"}`)
	b, err := h.Invoke("cart", "bob", `{"op":"add","item":"milk"}`)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"items":{"milk":1},"total_cents":120}` {
		t.Errorf("bob's reply %s", b)
	}
	if got := stored(h); !maps.Equal(got, map[string]int64{"apple": 1}) {
		t.Errorf("alice's cart %v, want one apple", got)
	}
}

func TestAbandonedCartExpires(t *testing.T) {
	t.Parallel()
	h := sabottest.New(t, Cart)
	invoke(t, h, `{"op":"add","item":"apple"}`)
	if err := h.AdvanceProcessingTime(7*24*time.Hour - time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if got := stored(h); len(got) != 1 {
		t.Fatalf("cart %v before a week passed, want one apple", got)
	}
	if err := h.AdvanceProcessingTime(time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if r := invoke(t, h, `{"op":"get"}`); len(r.Items) != 0 {
		t.Fatalf("cart %+v after a week untouched, want it expired", r)
	}
}

// TestStreamedMessage: a message nobody waits for (sent by another
// function) has its effect without a reply.
func TestStreamedMessage(t *testing.T) {
	t.Parallel()
	h := sabottest.New(t, Cart)
	if err := h.Send("cart", "alice", `{"op":"add","item":"coffee"}`); err != nil {
		t.Fatal(err)
	}
	if got := stored(h); !maps.Equal(got, map[string]int64{"coffee": 1}) {
		t.Errorf("cart %v, want one coffee", got)
	}
}
