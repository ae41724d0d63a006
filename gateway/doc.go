// Package gateway serves Sabot's public API: the ConnectRPC JobService and
// FunctionService (function registry, artifacts, invoke routing) plus GET
// /healthz.
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
// Functions: DeployFunction stores a registration under
// /sabot/v1/functions/<name> (version+1) and, in the same etcd
// transaction, requests a redeploy of every job running the function (the
// scheduler's rescale path: stop with a savepoint, swap the registration,
// restart) or deploys the function's own job. Invoke routes a request to
// the worker owning the key's key group (invoke.go has the rules) and
// retries while the job restarts or rescales.
//
// Concurrency: handlers run on net/http's goroutines and share the etcd
// client and the invoke router, whose mirror of jobs, assignments and
// workers is kept by one goroutine following etcd watches. Start owns the
// HTTP server and that goroutine; Close stops both.
package gateway
