package testkit_test

import (
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sabotdev/sabot/internal/testkit"
)

func TestStartEtcd(t *testing.T) {
	t.Parallel()
	e := testkit.StartEtcd(t)
	if _, err := e.Client.Put(t.Context(), "/sabot/v1/test", "x"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	// A second session sees the write and can take part in a transaction
	// on its revision, as a second process would.
	other := e.NewClient(t)
	resp, err := other.Get(t.Context(), "/sabot/v1/test")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("Get from second client = %v, %v", resp, err)
	}
	rev := resp.Kvs[0].ModRevision
	txn, err := other.Txn(t.Context()).
		If(clientv3.Compare(clientv3.ModRevision("/sabot/v1/test"), "=", rev)).
		Then(clientv3.OpPut("/sabot/v1/test", "y")).
		Commit()
	if err != nil || !txn.Succeeded {
		t.Fatalf("CAS = %v, %v; want success", txn, err)
	}
}

// TestStartEtcdParallel starts several servers at once: port 0 everywhere
// means no two tests clash.
func TestStartEtcdParallel(t *testing.T) {
	t.Parallel()
	seen := make(chan string, 4)
	t.Run("group", func(t *testing.T) {
		for range 4 {
			t.Run("etcd", func(t *testing.T) {
				t.Parallel()
				e := testkit.StartEtcd(t)
				if _, err := e.Client.Put(t.Context(), "k", "v"); err != nil {
					t.Fatalf("Put: %v", err)
				}
				seen <- e.Endpoints[0]
			})
		}
	})
	close(seen)
	uniq := map[string]bool{}
	for ep := range seen {
		if uniq[ep] {
			t.Fatalf("endpoint %s used twice", ep)
		}
		uniq[ep] = true
	}
}
