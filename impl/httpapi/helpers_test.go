package httpapi

import (
	"crypto/rsa"
	"net/http"
	"testing"

	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/tests/testkit"
)

// testService is orderhub over the in-memory store with one registered
// client, "c", allowed every operation.
type testService struct {
	http.Handler
	signer *signature.Signer
	pub    *rsa.PublicKey // orderhub's
}

func newTestService(t *testing.T) testService {
	return newTestServiceOn(t, store.NewMemory(nil))
}

func newTestServiceOn(t *testing.T, st store.Store, configure ...func(*Config)) testService {
	t.Helper()
	own, caller := testkit.Key(t, 0), testkit.Key(t, 1)
	cfg := Config{Clients: testkit.Clients(t, testkit.Entry(t, "c", &caller.PublicKey)), SigningKey: own, AdminToken: "tok"}
	for _, f := range configure {
		f(&cfg)
	}
	h, err := New(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return testService{Handler: h, signer: &signature.Signer{ClientID: "c", KeyVersion: 1, Key: caller}, pub: &own.PublicKey}
}
