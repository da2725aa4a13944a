package orderhub_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/orderhub/orderhub/impl/httpapi"
	"github.com/orderhub/orderhub/impl/orderhub"
	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/tests/testkit"
)

// TestOpenServes assembles an orderhub on the in-memory store, as a test
// server would, and calls it as a registered client.
func TestOpenServes(t *testing.T) {
	own, caller := testkit.Key(t, 0), testkit.Key(t, 1)
	svc, err := orderhub.Open(orderhub.Config{
		ClientsFile: testkit.ClientsFile(t, testkit.Entry(t, "isv-1", &caller.PublicKey)),
		SigningKey:  own,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	if svc.Store != "memory" || svc.Clients.Current().Len() != 1 {
		t.Errorf("store %q, %d clients; want memory, 1", svc.Store, svc.Clients.Current().Len())
	}

	req := httptest.NewRequest(http.MethodPost, "/v2/pos/inquireOrderDetail", strings.NewReader(`{"requestOrderId":"none"}`))
	req.Header.Set("Content-Type", "application/json")
	if err := (&signature.Signer{ClientID: "isv-1", KeyVersion: 1, Key: caller}).Edit(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	svc.Handler.ServeHTTP(rec, req)
	res := rec.Result()
	res.Request = req
	if err := signature.VerifyResponse(res, rec.Body.Bytes(), &own.PublicKey); err != nil {
		t.Errorf("answer not signed by orderhub's key: %v", err)
	}
	if !strings.Contains(rec.Body.String(), `"resultCode":"ORDER_NOT_EXIST"`) {
		t.Errorf("answer %s, want ORDER_NOT_EXIST", rec.Body)
	}
}

// TestOpenRefuses: what Open cannot work with names the Config field.
func TestOpenRefuses(t *testing.T) {
	key := testkit.Key(t, 0)
	good := testkit.ClientsFile(t, testkit.Entry(t, "isv-1", &testkit.Key(t, 1).PublicKey))
	for _, tc := range []struct {
		name  string
		cfg   orderhub.Config
		field string
	}{
		{"no clients file", orderhub.Config{ClientsFile: t.TempDir() + "/missing.yaml", SigningKey: key}, "ClientsFile"},
		{"not a Redis URL", orderhub.Config{ClientsFile: good, SigningKey: key, RedisURL: "http://nowhere"}, "RedisURL"},
		{"lease within a request", orderhub.Config{ClientsFile: good, SigningKey: key, Lease: 5 * time.Second, RequestTimeout: 5 * time.Second}, "Lease"},
		{"replicas without Redis", orderhub.Config{ClientsFile: good, SigningKey: key, RedisMinReplicas: 1}, "RedisMinReplicas"},
		{"negative replicas", orderhub.Config{ClientsFile: good, SigningKey: key, RedisURL: "redis://127.0.0.1:1", RedisMinReplicas: -1}, "RedisMinReplicas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, err := orderhub.Open(tc.cfg)
			var ce *httpapi.ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				if svc != nil {
					_ = svc.Close()
				}
				t.Fatalf("Open: %v, want a ConfigError of %s", err, tc.field)
			}
		})
	}
}
