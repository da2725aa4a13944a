package httpapi

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"testing"

	"github.com/orderhub/orderhub/impl/clients"
	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/impl/store"
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
	own, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	caller, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := signature.MarshalPublicKey(&caller.PublicKey)
	reg, err := clients.Parse(fmt.Appendf(nil, `{"clients":[{"clientId":"c","operations":["*"],"keys":[{"version":1,"publicKey":%q}]}]}`, pub), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Clients: clients.Static(reg), SigningKey: own, AdminToken: "tok"}
	for _, f := range configure {
		f(&cfg)
	}
	h, err := New(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return testService{Handler: h, signer: &signature.Signer{ClientID: "c", KeyVersion: 1, Key: caller}, pub: &own.PublicKey}
}
