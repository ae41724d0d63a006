// Command echofn is a function process for the tests of worker/function,
// written against the generated protocol by hand (not with sdk/go). It
// serves FunctionProcessService on the unix socket named by
// SABOT_FUNCTION_LISTEN ("unix://<path>").
//
// Describe answers with ECHOFN_SPEC (a protojson DescribeResponse) or a
// fixed spec: function "echo" (state "count", a VALUE; state "items", a
// lazy LIST with a 1 min TTL; output "out") and function "other".
//
// Session answers each call with one result per invocation: every message
// is replied to with its payload, and state "count" (decimal) is set to
// its eager value plus the number of messages. A message with payload
// "read" first asks the worker for a page of "items" and replies
// "items:<a>,<b>,…" (or "error:<text>").
//
// Failure injection by environment: ECHOFN_FAIL_START=<text> prints text
// to stderr and exits 2 before listening; ECHOFN_HANG_START=1 never
// listens; ECHOFN_CRASH_ON=<payload> exits 3 on a message with that
// payload; ECHOFN_SLEEP_ON=<payload> blocks on such a message until the
// session ends.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
)

func main() {
	if msg := os.Getenv("ECHOFN_FAIL_START"); msg != "" {
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(2)
	}
	if os.Getenv("ECHOFN_HANG_START") != "" {
		fmt.Fprintln(os.Stderr, "echofn: hanging before listening")
		select {} // until a signal ends the process
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "echofn:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := os.Getenv("SABOT_FUNCTION_LISTEN")
	path, ok := strings.CutPrefix(listen, "unix://")
	if !ok {
		return fmt.Errorf("SABOT_FUNCTION_LISTEN %q is not unix://<path>", listen)
	}
	desc := &sabotv1.DescribeResponse{
		Sdk: "echofn/1",
		Functions: []*sabotv1.FunctionSpec{
			{
				Name: "echo",
				States: []*sabotv1.StateSpec{
					{Name: "count", Kind: sabotv1.StateKind_STATE_KIND_VALUE},
					{Name: "items", Kind: sabotv1.StateKind_STATE_KIND_LIST, TtlMs: 60000, Lazy: true},
				},
				Outputs: []string{"out"},
			},
			{Name: "other"},
		},
	}
	if js := os.Getenv("ECHOFN_SPEC"); js != "" {
		desc = &sabotv1.DescribeResponse{}
		if err := protojson.Unmarshal([]byte(js), desc); err != nil {
			return fmt.Errorf("ECHOFN_SPEC: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(sabotv1connect.NewFunctionProcessServiceHandler(&server{
		desc:    desc,
		crashOn: os.Getenv("ECHOFN_CRASH_ON"),
		sleepOn: os.Getenv("ECHOFN_SLEEP_ON"),
	}))
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: p}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	fmt.Println("echofn: serving on", path)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type server struct {
	desc             *sabotv1.DescribeResponse
	crashOn, sleepOn string
}

func (s *server) Describe(context.Context, *connect.Request[sabotv1.DescribeRequest]) (*connect.Response[sabotv1.DescribeResponse], error) {
	return connect.NewResponse(s.desc), nil
}

func (s *server) Session(ctx context.Context, st *connect.BidiStream[sabotv1.SessionRequest, sabotv1.SessionResponse]) error {
	var readID uint64
	for {
		req, err := st.Receive()
		if err != nil {
			// The worker ended the session (io.EOF) or it broke.
			return nil
		}
		call := req.GetCall()
		if call == nil {
			return connect.NewError(connect.CodeInvalidArgument, errors.New("expected a call"))
		}
		fmt.Printf("echofn: call %d with %d invocations\n", call.GetId(), len(call.GetInvocations()))
		res := &sabotv1.CallResult{Id: call.GetId()}
		for _, inv := range call.GetInvocations() {
			count := 0
			for _, sv := range inv.GetState() {
				if sv.GetState() == "count" {
					count, _ = strconv.Atoi(string(sv.GetBytes()))
				}
			}
			ir := &sabotv1.InvocationResult{}
			for _, ev := range inv.GetEvents() {
				m := ev.GetMessage()
				if m == nil {
					continue
				}
				count++
				payload := string(m.GetPayload())
				switch {
				case s.crashOn != "" && payload == s.crashOn:
					fmt.Fprintln(os.Stderr, "echofn: crashing on", payload)
					os.Exit(3)
				case s.sleepOn != "" && payload == s.sleepOn:
					<-ctx.Done()
					return nil
				case payload == "read":
					readID++
					read := &sabotv1.StateRead{
						Id: readID, CallId: call.GetId(), Key: inv.GetKey(), State: "items",
						What: &sabotv1.StateRead_Page{Page: &sabotv1.Page{Limit: 10}},
					}
					if err := st.Send(&sabotv1.SessionResponse{Kind: &sabotv1.SessionResponse_Read{Read: read}}); err != nil {
						return err
					}
					ans, err := st.Receive()
					if err != nil {
						return err
					}
					rr := ans.GetReadResult()
					switch {
					case rr == nil || rr.GetId() != readID:
						return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("expected the answer to read %d, got %v", readID, ans))
					case rr.GetError() != "":
						payload = "error:" + rr.GetError()
					default:
						items := make([]string, 0, len(rr.GetItems()))
						for _, it := range rr.GetItems() {
							items = append(items, string(it))
						}
						payload = "items:" + strings.Join(items, ",")
					}
				}
				ir.Replies = append(ir.Replies, &sabotv1.Reply{ReplyId: m.GetReplyId(), Payload: []byte(payload)})
			}
			ir.Mutations = append(ir.Mutations, &sabotv1.StateMutation{
				State: "count",
				Op:    &sabotv1.StateMutation_Set{Set: []byte(strconv.Itoa(count))},
			})
			res.Results = append(res.Results, ir)
		}
		if err := st.Send(&sabotv1.SessionResponse{Kind: &sabotv1.SessionResponse_Result{Result: res}}); err != nil {
			return err
		}
	}
}
