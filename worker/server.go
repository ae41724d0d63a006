package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"

	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/worker/runtime"
)

// server is the worker's HTTP/2 (h2c) endpoint: the network exchange's
// streams and the checkpoint coordination calls of attempts spread over
// workers. One per worker, started by Start and stopped by Close.
type server struct {
	ln    net.Listener
	srv   *http.Server
	net   *runtime.Network
	coord *runtime.Coordination
	done  chan struct{}
}

// listen opens the worker's endpoint on cfg.Listen.
func listen(ctx context.Context, cfg Config, invoke *runtime.Invocations) (*server, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("worker: listen on %s: %w", cfg.Listen, err)
	}
	s := &server{
		ln:    ln,
		net:   runtime.NewNetwork(runtime.NetworkOptions{Logger: cfg.Logger}),
		coord: runtime.NewCoordination(cfg.Logger, nil),
		done:  make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.Handle(s.net.Handler())
	mux.Handle(s.coord.Handler())
	// Replies are small: compressing them is all cost (bench functions).
	mux.Handle(sabotv1connect.NewFunctionServiceHandler(invokeHandler{inv: invoke}, connect.WithCompressMinBytes(4096)))
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	s.srv = &http.Server{Handler: mux, Protocols: p, ReadHeaderTimeout: 10 * time.Second,
		// One stream per channel between two workers: allow many.
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 1000, SendPingTimeout: 15 * time.Second, PingTimeout: 15 * time.Second}}
	return s, nil
}

// serve runs until close.
func (s *server) serve() {
	defer close(s.done)
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		// Only a broken listener gets here; the worker keeps its running
		// attempts, whose peers then fail and restart the jobs.
		_ = err
	}
}

// close stops the endpoint: open streams are cut (the attempts using them
// have been cancelled by then).
func (s *server) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	s.net.Close()
}

// address is the base URL peers dial: advertise if set, else the
// listener's address.
func (s *server) address(advertise string) string {
	if advertise != "" {
		return advertise
	}
	return "http://" + s.ln.Addr().String()
}
