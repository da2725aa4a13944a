package testkit_test

import (
	"context"
	"testing"
	"time"

	"github.com/orderhub/orderhub/impl/clients"
	"github.com/orderhub/orderhub/impl/domain"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/tests/testkit"
)

func TestKeysAreDistinct2048BitKeys(t *testing.T) {
	seen := map[string]int{}
	for n := range testkit.NumKeys {
		k := testkit.Key(t, n)
		if k.N.BitLen() != 2048 {
			t.Errorf("key %d has %d bits", n, k.N.BitLen())
		}
		if m, dup := seen[k.N.String()]; dup {
			t.Errorf("keys %d and %d are the same", m, n)
		}
		seen[k.N.String()] = n
	}
}

// TestClientsFileLoads: what ClientsFile writes is what the service reads.
func TestClientsFileLoads(t *testing.T) {
	a := testkit.Entry(t, "isv-a", &testkit.Key(t, 1).PublicKey)
	b := testkit.Entry(t, "isv-b", &testkit.Key(t, 2).PublicKey, "inquireOrderDetail")
	b.Disabled = true
	reg, err := clients.Load(testkit.ClientsFile(t, a, b), testkit.PartnerOperations(t))
	if err != nil {
		t.Fatal(err)
	}
	ca, okA := reg.Lookup("isv-a")
	cb, okB := reg.Lookup("isv-b")
	if !okA || !okB || !ca.Allowed("notifyOrderCompletion") || !cb.Disabled {
		t.Fatalf("isv-a %v %+v, isv-b %v %+v", okA, ca, okB, cb)
	}
	if k, ok := ca.Key(1); !ok || !k.Equal(&testkit.Key(t, 1).PublicKey) {
		t.Errorf("isv-a's key 1 is not key 1")
	}
	if testkit.Clients(t, a).Current().Len() != 1 {
		t.Error("Clients does not hold the one entry")
	}
}

func TestCountingStore(t *testing.T) {
	st := testkit.NewCountingStore(store.NewMemory(nil))
	ctx := context.Background()
	commit := func(rid string, effect store.Effect) {
		t.Helper()
		k := store.Key{Op: "op", ClientID: "c", RequestID: rid, Scope: store.ScopeTrade, ScopeID: "t-" + rid}
		b, err := st.Begin(ctx, k, "fp", time.Minute)
		if err != nil || b.State != store.Started {
			t.Fatalf("Begin: %v %v", b.State, err)
		}
		if err := st.Commit(ctx, k, b.Token, []byte("answer"), time.Hour, effect); err != nil {
			t.Fatal(err)
		}
	}
	commit("r1", nil)
	commit("r2", store.RecordAuditEffect{Audit: domain.Audit{TradeID: "t-r2", DeliveryBatchID: "b", Status: domain.AuditAccept, RequestID: "r2"}})
	if c, e := st.Count("r2"); c != 1 || e != 1 {
		t.Errorf("r2: %d commits, %d effects; want 1, 1", c, e)
	}
	if c, e := st.Totals(); c != 2 || e != 1 {
		t.Errorf("totals: %d commits, %d effects; want 2, 1", c, e)
	}
}
