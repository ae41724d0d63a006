package scheduler

import clientv3 "go.etcd.io/etcd/client/v3"

// Reconciler exposes one reconcile pass fenced by fence, for tests of the
// leadership fence.
type Reconciler = reconciler

// NewReconciler returns a reconciler writing through cli under fence.
func NewReconciler(cli *clientv3.Client, fence clientv3.Cmp) *Reconciler {
	cfg := Config{Etcd: cli}
	cfg.setDefaults()
	return &reconciler{cfg: cfg, kv: cli, fence: fence}
}

// Reconcile runs one pass.
var Reconcile = (*reconciler).reconcile
