package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"buf.build/go/protovalidate"
	"connectrpc.com/connect"

	"github.com/sabotdev/sabot/gen/sabot/v1/sabotv1connect"
	"github.com/sabotdev/sabot/internal/invoke"
)

// compressMinBytes is the smallest response the gateway compresses.
const compressMinBytes = 4096

// Gateway is a running gateway.
type Gateway struct {
	cfg  Config
	ln   net.Listener
	srv  *http.Server
	done chan struct{}  // closed when Serve returns
	err  error          // Serve's error; read after done
	rt   *invoke.Router // invoke routing; its mirror runs until Close

	closeOnce sync.Once
}

// Handler returns the gateway's HTTP handler without listening, for
// embedding in another server. Its invoke routing reads etcd on every
// invocation (Start's gateway mirrors etcd instead).
func Handler(cfg Config) (http.Handler, error) {
	cfg.setDefaults()
	h, _, err := newHandler(cfg)
	return h, err
}

// newHandler builds the handler and the invoke router it routes with.
func newHandler(cfg Config) (http.Handler, *invoke.Router, error) {
	validator, err := protovalidate.New()
	if err != nil {
		return nil, nil, fmt.Errorf("gateway: validator: %w", err)
	}
	mux := http.NewServeMux()
	svc := &jobService{cfg: cfg}
	path, h := sabotv1connect.NewJobServiceHandler(svc,
		connect.WithInterceptors(validateInterceptor(validator)),
		connect.WithCompressMinBytes(compressMinBytes),
	)
	mux.Handle(path, h)
	rt := invoke.NewRouter(cfg.Etcd, cfg.Logger)
	fs := &functionService{cfg: cfg, jobs: svc, validator: validator, router: rt}
	path, h = sabotv1connect.NewFunctionServiceHandler(fs,
		connect.WithInterceptors(validateInterceptor(validator)),
		// UploadArtifact carries a whole executable.
		connect.WithReadMaxBytes(artifactReadMaxBytes),
		// Invoke replies are small: compressing them cost ~10% of an
		// invocation's CPU (bench functions' profile).
		connect.WithCompressMinBytes(compressMinBytes),
	)
	mux.Handle(path, h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		// Healthy means etcd answers: without it nothing works.
		if _, err := cfg.Etcd.Get(ctx, "/sabot/v1/healthz"); err != nil {
			http.Error(w, "etcd unreachable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux, rt, nil
}

// Start listens on cfg.Addr and serves until Close.
func Start(ctx context.Context, cfg Config) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	h, rt, err := newHandler(cfg)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("gateway: listen: %w", err)
	}
	// Plain HTTP/1.1 and HTTP/2 without TLS (h2c), so both Connect clients
	// and gRPC clients reach the same port; TLS is terminated in front.
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	g := &Gateway{
		cfg: cfg,
		ln:  ln,
		srv: &http.Server{
			Handler:           h,
			Protocols:         protocols,
			ReadHeaderTimeout: 10 * time.Second,
		},
		done: make(chan struct{}),
		rt:   rt,
	}
	rt.Start()   // owned by g: Close stops it
	go g.serve() // owned by g: Close stops it and waits for done
	cfg.Logger.Info("gateway listening", "addr", g.Addr(), "api", "http://"+g.Addr())
	return g, nil
}

func (g *Gateway) serve() {
	defer close(g.done)
	if err := g.srv.Serve(g.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		g.err = err
	}
}

// Addr is the address the gateway listens on.
func (g *Gateway) Addr() string { return g.ln.Addr().String() }

// Close stops accepting requests, gives in-flight requests until ctx ends to
// finish, then closes their connections. It is idempotent.
func (g *Gateway) Close(ctx context.Context) error {
	var err error
	g.closeOnce.Do(func() {
		if shutdownErr := g.srv.Shutdown(ctx); shutdownErr != nil {
			_ = g.srv.Close()
		}
		<-g.done
		// No request is in flight any more: stop the routing mirror.
		g.rt.Close()
		err = g.err
	})
	return err
}
