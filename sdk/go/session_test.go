package sabot_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	sabot "github.com/sabotdev/sabot/sdk/go"
)

func TestDescribe(t *testing.T) {
	t.Parallel()
	c := serveUnix(t, childFunctions()...)
	resp, err := c.Describe(context.Background(), connect.NewRequest(&sabotv1.DescribeRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	want, err := sabot.Describe(childFunctions()...)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(resp.Msg, want) || resp.Msg.GetSdk() != sabot.SDK {
		t.Fatalf("describe: got %v, want %v", resp.Msg, want)
	}
}

// lazyFixture is a worker's store for the lazy test: per key, a list of 7
// items, a map of 5 entries and a value, served in pages of at most 3 so
// that the SDK must page.
func lazyAnswer(r *sabotv1.StateRead) *sabotv1.StateReadResult {
	key := string(r.GetKey())
	const pageMax = 3
	var items [][]byte
	for i := range 7 {
		items = append(items, fmt.Appendf(nil, "%s-%d", key, i))
	}
	mapKeys := []string{"a", "b", "c", "d", "e"}
	mapVal := func(k string) []byte { b, _ := sabot.Int64().Encode(int64(k[0]-'a') + 1); return b }
	res := &sabotv1.StateReadResult{}
	switch r.GetState() {
	case "profile":
		res.Found, res.Value = true, []byte("profile of "+key)
	case "events":
		off := int(r.GetPage().GetOffset())
		end := min(off+min(int(r.GetPage().GetLimit()), pageMax), len(items))
		res.Items, res.More = items[off:end], end < len(items)
	case "prices":
		if k, ok := r.GetWhat().(*sabotv1.StateRead_MapKey); ok {
			if slices.Contains(mapKeys, string(k.MapKey)) {
				res.Found, res.Value = true, mapVal(string(k.MapKey))
			}
			break
		}
		for _, k := range mapKeys {
			if k <= string(r.GetPage().GetAfter()) {
				continue
			}
			if len(res.Entries) == pageMax {
				res.More = true
				break
			}
			res.Entries = append(res.Entries, &sabotv1.MapEntry{Key: []byte(k), Value: mapVal(k)})
		}
	default:
		res.Error = "no such state " + r.GetState()
	}
	return res
}

type lazySummary struct {
	Items        []string
	B            int64
	Entries      []string
	C            int64
	Profile      string
	ProfileAgain string
}

func TestLazyStatePagesOverSession(t *testing.T) {
	t.Parallel()
	events := sabot.NewList("events", sabot.String(), sabot.Lazy())
	prices := sabot.NewMap("prices", sabot.String(), sabot.Int64(), sabot.Lazy())
	profile := sabot.NewValue("profile", sabot.String(), sabot.Lazy())
	fn := sabot.Function{
		Name:    "lazy",
		States:  []sabot.State{events, prices, profile},
		Outputs: []string{"out"},
		OnMessage: func(ctx *sabot.Context, _ sabot.Message) error {
			var s lazySummary
			// A write before the first read is recorded without a read
			// and shows in the read.
			if err := events.Append(ctx, "new"); err != nil {
				return err
			}
			var err error
			if s.Items, err = events.Get(ctx); err != nil {
				return err
			}
			if s.B, _, err = prices.Get(ctx, "b"); err != nil {
				return err
			}
			if err := prices.Put(ctx, "z", 26); err != nil {
				return err
			}
			if err := prices.Remove(ctx, "a"); err != nil {
				return err
			}
			es, err := prices.Entries(ctx)
			if err != nil {
				return err
			}
			for _, e := range es {
				s.Entries = append(s.Entries, fmt.Sprintf("%s=%d", e.Key, e.Value))
			}
			if s.C, _, err = prices.Get(ctx, "c"); err != nil { // known now: no read
				return err
			}
			if s.Profile, _, err = profile.Get(ctx); err != nil {
				return err
			}
			if s.ProfileAgain, _, err = profile.Get(ctx); err != nil { // cached: no read
				return err
			}
			return ctx.Send("out", s)
		},
	}
	w := newWorker(t, serveUnix(t, fn), lazyAnswer)
	keys := []string{"k1", "k2", "k3"}
	call := &sabotv1.Call{Id: 1}
	for _, k := range keys {
		call.Invocations = append(call.Invocations, &sabotv1.Invocation{Function: "lazy", Key: []byte(k), Events: []*sabotv1.Event{msgEvent("go")}})
	}
	res := w.call(call)

	for i, k := range keys {
		r := res.GetResults()[i]
		if r.GetError() != "" {
			t.Fatalf("%s: %s", k, r.GetError())
		}
		var got lazySummary
		if len(r.GetMessages()) != 1 || r.GetMessages()[0].GetOutput() != "out" {
			t.Fatalf("%s: messages %v", k, r.GetMessages())
		}
		if err := json.Unmarshal(r.GetMessages()[0].GetPayload(), &got); err != nil {
			t.Fatal(err)
		}
		want := lazySummary{
			Items:        []string{k + "-0", k + "-1", k + "-2", k + "-3", k + "-4", k + "-5", k + "-6", "new"},
			B:            2,
			Entries:      []string{"b=2", "c=3", "d=4", "e=5", "z=26"},
			C:            3,
			Profile:      "profile of " + k,
			ProfileAgain: "profile of " + k,
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s read\n %+v\nwant\n %+v", k, got, want)
		}
		wantMuts := []string{
			`state:"events" append:{items:"new"}`,
			`state:"prices" put:{key:"z" value:"\x80\x00\x00\x00\x00\x00\x00\x1a"}`,
			`state:"prices" remove:"a"`,
		}
		if got := mutationStrings(r.GetMutations()); !slices.Equal(got, wantMuts) {
			t.Fatalf("%s mutations\n %q\nwant\n %q", k, got, wantMuts)
		}
	}

	// Per key: list pages at offsets 0, 3, 6; one map key read; map pages
	// after "", "c"; one value read. Nothing else.
	perKey := map[string][]string{}
	for _, r := range w.reads {
		if r.GetCallId() != 1 {
			t.Fatalf("read for call %d", r.GetCallId())
		}
		var what string
		switch x := r.GetWhat().(type) {
		case *sabotv1.StateRead_Page:
			what = fmt.Sprintf("page(off=%d,after=%q,limit=%d)", x.Page.GetOffset(), x.Page.GetAfter(), x.Page.GetLimit())
		case *sabotv1.StateRead_MapKey:
			what = fmt.Sprintf("key(%q)", x.MapKey)
		case *sabotv1.StateRead_Value:
			what = "value"
		}
		perKey[string(r.GetKey())] = append(perKey[string(r.GetKey())], r.GetState()+" "+what)
	}
	for _, k := range keys {
		want := []string{
			`events page(off=0,after="",limit=512)`,
			`events page(off=3,after="",limit=512)`,
			`events page(off=6,after="",limit=512)`,
			`prices key("b")`,
			`prices page(off=0,after="",limit=512)`,
			`prices page(off=0,after="c",limit=512)`,
			`profile value`,
		}
		if !slices.Equal(perKey[k], want) {
			t.Fatalf("reads of %s:\n %q\nwant\n %q", k, perKey[k], want)
		}
	}
}

func mutationStrings(ms []*sabotv1.StateMutation) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = strings.Join(strings.Fields(fmt.Sprint(m)), " ")
	}
	return out
}

func TestReadYourWritesAndCompaction(t *testing.T) {
	t.Parallel()
	name := sabot.NewValue("name", sabot.String())
	tags := sabot.NewList("tags", sabot.String())
	attrs := sabot.NewMap("attrs", sabot.String(), sabot.String())
	fn := sabot.Function{
		Name:    "rw",
		States:  []sabot.State{name, tags, attrs},
		Outputs: []string{"seen"},
		OnMessage: func(ctx *sabot.Context, m sabot.Message) error {
			// Each event reports what it sees, then writes.
			n, ok, err := name.Get(ctx)
			if err != nil {
				return err
			}
			ts, err := tags.Get(ctx)
			if err != nil {
				return err
			}
			es, err := attrs.Entries(ctx)
			if err != nil {
				return err
			}
			v, _, err := attrs.Get(ctx, "k")
			if err != nil {
				return err
			}
			if err := ctx.Send("seen", fmt.Sprintf("name=%q/%v tags=%q entries=%d k=%q", n, ok, ts, len(es), v)); err != nil {
				return err
			}
			switch string(m.Payload) {
			case "first":
				return errors.Join(name.Set(ctx, "x"), name.Set(ctx, "y"), tags.Clear(ctx), tags.Append(ctx, "t1"),
					attrs.Put(ctx, "k", "v1"), attrs.Put(ctx, "k", "v2"), attrs.Put(ctx, "j", "w"))
			case "second":
				return errors.Join(name.Clear(ctx), tags.Append(ctx, "t2"), attrs.Remove(ctx, "j"))
			}
			return nil
		},
	}
	w := newWorker(t, serveUnix(t, fn), noReads)
	res := w.call(&sabotv1.Call{Id: 7, Invocations: []*sabotv1.Invocation{{
		Function: "rw",
		Key:      []byte("k"),
		Events:   []*sabotv1.Event{msgEvent("first"), msgEvent("second"), msgEvent("third")},
		State: []*sabotv1.StateValue{
			{State: "name", Value: &sabotv1.StateValue_Bytes{Bytes: []byte("stored")}},
			{State: "tags", Value: &sabotv1.StateValue_List{List: &sabotv1.ListValue{Items: [][]byte{[]byte("old")}}}},
			{State: "attrs", Value: &sabotv1.StateValue_Map{Map: &sabotv1.MapValue{Entries: []*sabotv1.MapEntry{{Key: []byte("k"), Value: []byte("v0")}}}}},
		},
	}}})
	r := res.GetResults()[0]
	if r.GetError() != "" {
		t.Fatal(r.GetError())
	}
	var seen []string
	for _, m := range r.GetMessages() {
		seen = append(seen, string(m.GetPayload()))
	}
	wantSeen := []string{
		`name="stored"/true tags=["old"] entries=1 k="v0"`,
		`name="y"/true tags=["t1"] entries=2 k="v2"`,
		`name=""/false tags=["t1" "t2"] entries=1 k="v2"`,
	}
	if !slices.Equal(seen, wantSeen) {
		t.Fatalf("seen\n %q\nwant\n %q", seen, wantSeen)
	}
	// Compacted: the value's last write only; clear+append+append is one
	// replace; a map key's last put only.
	wantMuts := []string{
		`state:"name" clear:true`,
		`state:"tags" replace:{items:"t1" items:"t2"}`,
		`state:"attrs" put:{key:"k" value:"v2"}`,
		`state:"attrs" remove:"j"`,
	}
	if got := mutationStrings(r.GetMutations()); !slices.Equal(got, wantMuts) {
		t.Fatalf("mutations\n %q\nwant\n %q", got, wantMuts)
	}
}

func TestErrorsAndPanicsFailOnlyTheirInvocation(t *testing.T) {
	t.Parallel()
	count := sabot.NewValue("count", sabot.Int64())
	set := func(ctx *sabot.Context) error { return count.Set(ctx, 1) }
	fns := []sabot.Function{
		{Name: "ok", States: []sabot.State{count}, OnMessage: func(ctx *sabot.Context, _ sabot.Message) error { return set(ctx) }},
		{Name: "fails", States: []sabot.State{count}, OnMessage: func(ctx *sabot.Context, _ sabot.Message) error {
			if err := set(ctx); err != nil {
				return err
			}
			return errors.New("nope")
		}},
		{Name: "panics", States: []sabot.State{count}, OnMessage: func(ctx *sabot.Context, _ sabot.Message) error {
			if err := set(ctx); err != nil {
				return err
			}
			panic("boom")
		}},
	}
	w := newWorker(t, serveUnix(t, fns...), noReads)
	inv := func(fn string) *sabotv1.Invocation {
		return &sabotv1.Invocation{Function: fn, Key: []byte(fn), Events: []*sabotv1.Event{msgEvent("a"), msgEvent("b")}}
	}
	for id := range uint64(3) { // the process keeps serving after failures
		res := w.call(&sabotv1.Call{Id: id, Invocations: []*sabotv1.Invocation{inv("ok"), inv("fails"), inv("panics"), inv("ghost")}})
		rs := res.GetResults()
		if rs[0].GetError() != "" || len(rs[0].GetMutations()) != 1 {
			t.Fatalf("ok: %v", rs[0])
		}
		for i, want := range []string{
			"nope",
			"panic: boom\n",
			`sabot: unknown function "ghost" (serving fails, ok, panics)`,
		} {
			r := rs[i+1]
			if !strings.HasPrefix(r.GetError(), want) || len(r.GetMutations())+len(r.GetMessages())+len(r.GetTimers())+len(r.GetReplies()) != 0 {
				t.Fatalf("result %d: %v, want only an error starting %q", i+1, r, want)
			}
		}
		// The panic's stack starts at the handler, in this file.
		stack := rs[2].GetError()
		if !strings.Contains(stack, "session_test.go:") || strings.Contains(stack, "runtime.gopanic") {
			t.Fatalf("panic error has not the handler's stack:\n%s", stack)
		}
	}
}

func TestCallsRunConcurrentlyOnASession(t *testing.T) {
	t.Parallel()
	profile := sabot.NewValue("profile", sabot.String(), sabot.Lazy())
	fns := []sabot.Function{
		{Name: "reader", States: []sabot.State{profile}, Outputs: []string{"out"}, OnMessage: func(ctx *sabot.Context, _ sabot.Message) error {
			p, _, err := profile.Get(ctx)
			if err != nil {
				return err
			}
			return ctx.Send("out", p)
		}},
		{Name: "quick", Outputs: []string{"out"}, OnMessage: func(ctx *sabot.Context, _ sabot.Message) error {
			return ctx.Send("out", "quick")
		}},
	}
	w := newWorker(t, serveUnix(t, fns...), noReads)
	w.send(&sabotv1.Call{Id: 1, Invocations: []*sabotv1.Invocation{{Function: "reader", Key: []byte("a"), Events: []*sabotv1.Event{msgEvent("")}}}})
	resp, err := w.stream.Receive()
	if err != nil {
		t.Fatal(err)
	}
	read := resp.GetRead()
	if read == nil || read.GetCallId() != 1 || read.GetState() != "profile" || !read.GetValue() {
		t.Fatalf("want a value read of call 1, got %v", resp)
	}
	// Call 1 waits for its read; call 2 overtakes it.
	w.send(&sabotv1.Call{Id: 2, Invocations: []*sabotv1.Invocation{{Function: "quick", Key: []byte("b"), Events: []*sabotv1.Event{msgEvent("")}}}})
	if resp, err = w.stream.Receive(); err != nil || resp.GetResult().GetId() != 2 {
		t.Fatalf("want the result of call 2, got %v, %v", resp, err)
	}
	if err := w.stream.Send(&sabotv1.SessionRequest{Kind: &sabotv1.SessionRequest_ReadResult{ReadResult: &sabotv1.StateReadResult{
		Id: read.GetId(), Found: true, Value: []byte("hello"),
	}}}); err != nil {
		t.Fatal(err)
	}
	res := w.next()
	if res.GetId() != 1 || string(res.GetResults()[0].GetMessages()[0].GetPayload()) != "hello" {
		t.Fatalf("call 1: %v", res)
	}
}

func TestSessionEndCancelsRunningCalls(t *testing.T) {
	t.Parallel()
	started, cancelled := make(chan struct{}), make(chan error, 1)
	fn := sabot.Function{Name: "waiter", OnMessage: func(ctx *sabot.Context, _ sabot.Message) error {
		close(started)
		<-ctx.Context().Done()
		cancelled <- ctx.Context().Err()
		return ctx.Context().Err()
	}}
	c := serveUnix(t, fn)
	ctx, cancel := context.WithCancel(context.Background())
	stream := c.Session(ctx)
	if err := stream.Send(&sabotv1.SessionRequest{Kind: &sabotv1.SessionRequest_Call{Call: &sabotv1.Call{Id: 1, Invocations: []*sabotv1.Invocation{
		{Function: "waiter", Key: []byte("k"), Events: []*sabotv1.Event{msgEvent("")}},
	}}}}); err != nil {
		t.Fatal(err)
	}
	<-started
	cancel() // the worker goes away
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler context: %v", err)
	}
	_ = stream.CloseResponse()
	// The process still serves.
	if _, err := c.Describe(context.Background(), connect.NewRequest(&sabotv1.DescribeRequest{})); err != nil {
		t.Fatal(err)
	}
}

func TestServeListenerStopDrainsRunningCalls(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	fn := sabot.Function{Name: "slow", Outputs: []string{"out"}, OnMessage: func(ctx *sabot.Context, _ sabot.Message) error {
		close(started)
		<-release
		return ctx.Send("out", "done")
	}}
	path := filepath.Join(t.TempDir(), "fn.sock")
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error, 1)
	go func() { served <- sabot.ServeListener(ctx, l, fn) }()
	c := unixClient(t, path)
	stream := c.Session(context.Background())
	defer stream.CloseResponse() //nolint:errcheck // cleanup
	if err := stream.Send(&sabotv1.SessionRequest{Kind: &sabotv1.SessionRequest_Call{Call: &sabotv1.Call{Id: 1, Invocations: []*sabotv1.Invocation{
		{Function: "slow", Key: []byte("k"), Events: []*sabotv1.Event{msgEvent("")}},
	}}}}); err != nil {
		t.Fatal(err)
	}
	<-started
	stop() // the process stops with a call running
	close(release)
	resp, err := stream.Receive()
	if err != nil || resp.GetResult().GetId() != 1 || resp.GetResult().GetResults()[0].GetError() != "" {
		t.Fatalf("want the running call's result, got %v, %v", resp, err)
	}
	if _, err := stream.Receive(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the drain: %v, want the session to end", err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ServeListener did not return")
	}
}
