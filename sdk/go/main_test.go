package sabot_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"connectrpc.com/connect"
	"go.uber.org/goleak"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	sabot "github.com/sabotdev/sabot/sdk/go"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		runChild() // a child process of serve_test.go; exits
	}
	// Every server and session a test starts is stopped by its cleanup.
	goleak.VerifyTestMain(m)
}

// serveUnix serves fns with ServeListener on a unix socket in a temporary
// directory and returns a client speaking HTTP/2 without TLS over it, as a
// worker does. The cleanup stops the server and checks that it stopped
// cleanly.
func serveUnix(t *testing.T, fns ...sabot.Function) sabotv1connect.FunctionProcessServiceClient {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fn.sock")
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sabot.ServeListener(ctx, l, fns...) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeListener: %v", err)
		}
	})
	return unixClient(t, path)
}

// unixClient is a function protocol client over the unix socket at path,
// speaking HTTP/2 without TLS as a worker does.
func unixClient(t *testing.T, path string) sabotv1connect.FunctionProcessServiceClient {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{
		Protocols: p,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return sabotv1connect.NewFunctionProcessServiceClient(&http.Client{Transport: tr}, "http://fn")
}

// worker drives one Session as a worker: it sends calls and answers the
// process's lazy reads with answer.
type worker struct {
	t      *testing.T
	stream *connect.BidiStreamForClient[sabotv1.SessionRequest, sabotv1.SessionResponse]
	answer func(*sabotv1.StateRead) *sabotv1.StateReadResult
	reads  []*sabotv1.StateRead // every read received, in order
}

func newWorker(t *testing.T, c sabotv1connect.FunctionProcessServiceClient, answer func(*sabotv1.StateRead) *sabotv1.StateReadResult) *worker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{t: t, stream: c.Session(ctx), answer: answer}
	t.Cleanup(func() {
		// Close our side; the process ends the session once its calls are
		// done.
		_ = w.stream.CloseRequest()
		for {
			if _, err := w.stream.Receive(); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Errorf("session end: %v", err)
				}
				break
			}
		}
		_ = w.stream.CloseResponse()
		cancel()
	})
	return w
}

func (w *worker) send(call *sabotv1.Call) {
	w.t.Helper()
	if err := w.stream.Send(&sabotv1.SessionRequest{Kind: &sabotv1.SessionRequest_Call{Call: call}}); err != nil {
		w.t.Fatalf("send call: %v", err)
	}
}

// next receives until a call result arrives, answering reads meanwhile.
func (w *worker) next() *sabotv1.CallResult {
	w.t.Helper()
	for {
		resp, err := w.stream.Receive()
		if err != nil {
			w.t.Fatalf("receive: %v", err)
		}
		switch k := resp.GetKind().(type) {
		case *sabotv1.SessionResponse_Read:
			w.reads = append(w.reads, k.Read)
			res := w.answer(k.Read)
			res.Id = k.Read.GetId()
			if err := w.stream.Send(&sabotv1.SessionRequest{Kind: &sabotv1.SessionRequest_ReadResult{ReadResult: res}}); err != nil {
				w.t.Fatalf("send read result: %v", err)
			}
		case *sabotv1.SessionResponse_Result:
			return k.Result
		}
	}
}

// call sends a call and waits for its result.
func (w *worker) call(call *sabotv1.Call) *sabotv1.CallResult {
	w.t.Helper()
	w.send(call)
	res := w.next()
	if res.GetId() != call.GetId() {
		w.t.Fatalf("result for call %d, want %d", res.GetId(), call.GetId())
	}
	if len(res.GetResults()) != len(call.GetInvocations()) {
		w.t.Fatalf("%d results for %d invocations", len(res.GetResults()), len(call.GetInvocations()))
	}
	return res
}

func msgEvent(payload string) *sabotv1.Event {
	return &sabotv1.Event{Kind: &sabotv1.Event_Message{Message: &sabotv1.Message{Payload: []byte(payload)}}}
}

func noReads(r *sabotv1.StateRead) *sabotv1.StateReadResult {
	return &sabotv1.StateReadResult{Error: "unexpected read of " + r.GetState()}
}
