package function_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"connectrpc.com/connect"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/worker/function"
)

// scripted is a function process served in the test: it echoes like
// echofn, and misbehaves on request. The first message's payload of a
// call picks the behaviour.
type scripted struct{}

func (scripted) Describe(context.Context, *connect.Request[sabotv1.DescribeRequest]) (*connect.Response[sabotv1.DescribeResponse], error) {
	return connect.NewResponse(&sabotv1.DescribeResponse{Sdk: "scripted/1", Functions: []*sabotv1.FunctionSpec{echoSpec()}}), nil
}

func (scripted) Session(ctx context.Context, st *connect.BidiStream[sabotv1.SessionRequest, sabotv1.SessionResponse]) error {
	for {
		req, err := st.Receive()
		if err != nil {
			return nil
		}
		call := req.GetCall()
		res := &sabotv1.CallResult{Id: call.GetId()}
		for _, inv := range call.GetInvocations() {
			ir := &sabotv1.InvocationResult{}
			for _, ev := range inv.GetEvents() {
				ir.Replies = append(ir.Replies, &sabotv1.Reply{Payload: ev.GetMessage().GetPayload()})
			}
			res.Results = append(res.Results, ir)
		}
		var resp *sabotv1.SessionResponse
		switch string(call.GetInvocations()[0].GetEvents()[0].GetMessage().GetPayload()) {
		case "wrong-id":
			res.Id++
		case "short":
			res.Results = res.Results[:0]
		case "stray-read":
			resp = &sabotv1.SessionResponse{Kind: &sabotv1.SessionResponse_Read{Read: &sabotv1.StateRead{Id: 1, CallId: call.GetId() + 100}}}
		case "empty":
			resp = &sabotv1.SessionResponse{}
		case "end":
			return nil
		case "fail":
			return connect.NewError(connect.CodeInternal, errors.New("scripted failure"))
		}
		if resp == nil {
			resp = &sabotv1.SessionResponse{Kind: &sabotv1.SessionResponse_Result{Result: res}}
		}
		if err := st.Send(resp); err != nil {
			return nil
		}
	}
}

func urlFunction(url string) *sabotv1.Function {
	return &sabotv1.Function{Spec: echoSpec(), Source: &sabotv1.Function_Url{Url: url}}
}

func TestURLFunction(t *testing.T) {
	t.Parallel()
	url := serveH2C(t, scripted{})
	h := newHost(t, nil)
	c := open(t, h, urlFunction(url))
	if c.PID() != 0 {
		t.Errorf("PID of a URL function = %d, want 0", c.PID())
	}
	s := session(t, c)
	res, err := s.Call(callCtx(t), &sabotv1.Call{Id: 9, Invocations: []*sabotv1.Invocation{messages("a", "", "hi", "there")}}, nil)
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if got := replies(res.GetResults()[0]); !slices.Equal(got, []string{"hi", "there"}) {
		t.Errorf("replies %q", got)
	}

	bad := urlFunction(url)
	bad.Spec.Outputs = nil
	if _, err := h.Open(t.Context(), bad); !errors.Is(err, function.ErrSpecMismatch) {
		t.Errorf("Open with mismatching spec = %v, want ErrSpecMismatch", err)
	}
}

func TestProtocolViolations(t *testing.T) {
	t.Parallel()
	url := serveH2C(t, scripted{})
	h := newHost(t, nil)
	c := open(t, h, urlFunction(url))

	for _, tc := range []struct {
		payload string
		is      error
		want    string
	}{
		{"wrong-id", function.ErrProtocol, "result for call 8 while call 7 runs"},
		{"short", function.ErrProtocol, "call 7 has 2 invocations but its result has 0"},
		{"stray-read", function.ErrProtocol, "state read 1 for call 107, which is not running (call 7 is)"},
		{"empty", function.ErrProtocol, "empty session response during call 7"},
		{"end", function.ErrProtocol, "the process ended the session without answering call 7"},
		{"fail", nil, "scripted failure"},
	} {
		t.Run(tc.payload, func(t *testing.T) {
			t.Parallel()
			s := session(t, c)
			call := &sabotv1.Call{Id: 7, Invocations: []*sabotv1.Invocation{messages("a", "", tc.payload), messages("b", "", "x")}}
			_, err := s.Call(callCtx(t), call, nil)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("Call = %v, want %v", err, tc.is)
			}
			contains(t, err, `function "echo"`, tc.want)
			if errors.Is(err, function.ErrProcessExited) || errors.Is(err, function.ErrCallTimeout) {
				t.Errorf("misclassified: %v", err)
			}
			if _, err := s.Call(callCtx(t), call, nil); !errors.Is(err, function.ErrSessionBroken) {
				t.Errorf("Call after a violation = %v, want ErrSessionBroken", err)
			}
		})
	}
}

func TestURLFunctionTLS(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.Handle(sabotv1connect.NewFunctionProcessServiceHandler(scripted{}))
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	// The untrusting client below makes the server log a handshake error.
	srv.Config.ErrorLog = slog.NewLogLogger(testLogger(t, nil).Handler(), slog.LevelWarn)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	h := newHostConfig(t, function.HostConfig{TLSConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}})
	c := open(t, h, urlFunction(srv.URL))
	s := session(t, c)
	res, err := s.Call(callCtx(t), &sabotv1.Call{Id: 1, Invocations: []*sabotv1.Invocation{messages("a", "", "secure")}}, nil)
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if got := replies(res.GetResults()[0]); !slices.Equal(got, []string{"secure"}) {
		t.Errorf("replies %q", got)
	}

	// Without the test CA the server is not trusted.
	untrusting := newHost(t, nil)
	if _, err := untrusting.Open(t.Context(), urlFunction(srv.URL)); err == nil {
		t.Error("Open of an untrusted https URL succeeded")
	}
}

func TestSessionCloseAbortsCall(t *testing.T) {
	t.Parallel()
	st, fn := uploadEcho(t)
	h := newHost(t, st, "ECHOFN_SLEEP_ON=sleep")
	c := open(t, h, fn)
	s := session(t, c)
	done := make(chan error, 1)
	go func() {
		_, err := s.Call(callCtx(t), &sabotv1.Call{Id: 1, Invocations: []*sabotv1.Invocation{messages("k", "", "sleep")}}, nil)
		done <- err
	}()
	// Close from another goroutine while the Call may be running (or not
	// yet started): either way the Call ends with ErrClosed.
	s.Close()
	if err := <-done; !errors.Is(err, function.ErrClosed) {
		t.Fatalf("Call = %v, want ErrClosed", err)
	}
	s.Close() // idempotent
}
