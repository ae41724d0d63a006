// Package etcdserver starts a single-member etcd inside the current process,
// with go.etcd.io/etcd/server/v3/embed. `sabot dev` uses it as the platform's
// metadata store and the test harness (internal/testkit) uses it for every
// test that needs etcd, so both run the same server production talks to.
//
// # Addresses
//
// ClientAddr and PeerAddr may use port 0: etcd binds a free port, and
// [Server.Endpoints] reports the port actually bound (read from the listener,
// not from the configuration). Callers build their own clients with
// go.etcd.io/etcd/client/v3 from those endpoints; this package hands out no
// client so that it has nothing to close on a caller's behalf.
//
// # Restarts
//
// Starting again on the same Dir keeps the data. This works with port 0 too,
// although the member's peer URL then differs from run to run: a member that
// finds its write-ahead log in Dir restarts from it and ignores the initial
// cluster configuration, and a single-member cluster never dials its own peer
// URL, so the stale URL recorded in the membership is harmless. The member
// name must stay the same across restarts (the default does). Only one Server
// may use a Dir at a time; etcd locks the write-ahead log.
//
// # Logging
//
// etcd logs through zap. Its records are forwarded to Config.Logger with
// etcd's info level lowered to slog's debug level (etcd is chatty at info
// about its own internals), warnings and errors kept as they are, except
// for two warnings every single-node dev server prints and the errors etcd
// reports about its own orderly shutdown, which go to debug too. Nothing is
// written to stderr directly and no global logger (zap, grpclog) is replaced.
//
// # Concurrency
//
// A Server's methods are safe for concurrent use. Close is idempotent.
package etcdserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Defaults applied by Start to zero Config fields.
const (
	// DefaultName is the member name. It names the member directory's owner
	// in etcd's membership, so it must not change between restarts on one
	// Dir.
	DefaultName = "sabot"
	// DefaultClientAddr binds a free loopback port.
	DefaultClientAddr = "127.0.0.1:0"
	// DefaultPeerAddr binds a free loopback port. A single member never
	// dials its peer URL; the listener exists because etcd requires one.
	DefaultPeerAddr = "127.0.0.1:0"
)

// Sentinel errors. Start wraps them; inspect with errors.Is.
var (
	// ErrConfig reports an invalid Config.
	ErrConfig = errors.New("etcdserver: invalid config")
	// ErrStopped reports that etcd stopped before it became ready.
	ErrStopped = errors.New("etcdserver: stopped before ready")
)

// Config configures an embedded etcd. The zero value of every field except
// Dir has a default.
type Config struct {
	// Dir is etcd's data directory (write-ahead log and bbolt backend).
	// Required. It is created if missing; an existing one is reopened with
	// its data.
	Dir string
	// Name is the member name. Default DefaultName.
	Name string
	// ClientAddr is the host:port clients connect to. Port 0 picks a free
	// port; Endpoints reports it. Default DefaultClientAddr.
	ClientAddr string
	// PeerAddr is the host:port of the raft peer listener. Port 0 picks a
	// free port. Default DefaultPeerAddr.
	PeerAddr string
	// Logger receives etcd's log records (see the package doc). Default:
	// discard.
	Logger *slog.Logger
}

// Validate reports a missing Dir or an address that is not host:port.
func (c Config) Validate() error {
	if c.Dir == "" {
		return fmt.Errorf("%w: Dir is required", ErrConfig)
	}
	for _, a := range []struct{ name, addr string }{{"ClientAddr", c.ClientAddr}, {"PeerAddr", c.PeerAddr}} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%w: %s %q: %w", ErrConfig, a.name, a.addr, err)
		}
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.ClientAddr == "" {
		c.ClientAddr = DefaultClientAddr
	}
	if c.PeerAddr == "" {
		c.PeerAddr = DefaultPeerAddr
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server is a running embedded etcd.
type Server struct {
	e         *embed.Etcd
	endpoints []string
	closing   *atomic.Bool // shared with the log core; see slogCore
	closeOnce sync.Once
}

// Start starts etcd and returns once it serves clients (it has elected
// itself leader and applied its own membership). It gives up when ctx is
// done, and stops whatever it started before returning an error.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("etcdserver: start: %w", err)
	}

	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.Dir
	curl := url.URL{Scheme: "http", Host: cfg.ClientAddr}
	purl := url.URL{Scheme: "http", Host: cfg.PeerAddr}
	ec.ListenClientUrls = []url.URL{curl}
	ec.AdvertiseClientUrls = []url.URL{curl}
	ec.ListenPeerUrls = []url.URL{purl}
	ec.AdvertisePeerUrls = []url.URL{purl}
	// Only read when Dir holds no write-ahead log yet (see the package doc).
	ec.InitialCluster = ec.InitialClusterFromName(cfg.Name)
	closing := new(atomic.Bool)
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(newSlogCore(cfg.Logger.Handler(), closing)))

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("etcdserver: start: %w", err)
	}
	s := &Server{e: e, closing: closing}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		s.Close()
		if err == nil {
			err = ErrStopped
		}
		return nil, fmt.Errorf("etcdserver: waiting for ready: %w", err)
	case <-e.Server.StopNotify():
		s.Close()
		return nil, ErrStopped
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("etcdserver: waiting for ready: %w", ctx.Err())
	}
	// The listeners know the bound port; the configured URL may say 0.
	for _, l := range e.Clients {
		s.endpoints = append(s.endpoints, "http://"+l.Addr().String())
	}
	return s, nil
}

// Endpoints returns the client URLs etcd serves on, e.g.
// "http://127.0.0.1:41234", with the ports actually bound.
func (s *Server) Endpoints() []string {
	return append([]string(nil), s.endpoints...)
}

// Err returns a channel that receives an error if etcd fails while running,
// and is closed once etcd has stopped.
func (s *Server) Err() <-chan error { return s.e.Err() }

// Close stops etcd and waits for it: client connections get up to etcd's
// request timeout (about 7 s by default) to finish in-flight requests, so
// close clients with open watches first to stop at once. Close is
// idempotent and safe to call concurrently; later calls return at once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		// embed.Etcd.Close stops intake (client listeners, gRPC servers),
		// stops the raft loop, closes peer listeners and waits for every
		// handler goroutine, then closes the backend.
		s.e.Close()
	})
}
