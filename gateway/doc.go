// Package gateway serves Sabot's public API: the ConnectRPC JobService (and
// later invocation routing and the web UI) plus GET /healthz.
//
// The gateway is stateless: every request reads or writes etcd through
// internal/cluster, so any number of gateways can serve the same cluster.
// Every request message is checked against its protovalidate rules by one
// interceptor before a handler sees it; a bad request gets InvalidArgument
// naming each bad field (the violations also travel as a
// buf.validate.Violations error detail for programs). A deployed spec is
// then resolved by internal/jobgraph — the same rules workers run it by — so
// a graph that could never run is rejected at deploy rather than failing
// later.
//
// Errors reach callers through one mapper (errors.go): context errors keep
// their codes, not-found and invalid input get stable codes, and anything
// else is Internal with its detail logged, not returned.
//
// Concurrency: handlers run on net/http's goroutines and share nothing but
// the etcd client. Start owns the HTTP server; Close stops it.
package gateway
