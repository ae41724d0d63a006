package runtime

import "github.com/sabotdev/sabot/internal/jobgraph"

// SetOperatorHook sets cfg's operatorHook for external tests, which can
// use the shared harness (internal/testkit imports this package through
// the worker, so in-package tests cannot).
func SetOperatorHook(cfg *Config, hook func(v *jobgraph.Vertex, info TaskInfo) Operator) {
	cfg.operatorHook = hook
}
