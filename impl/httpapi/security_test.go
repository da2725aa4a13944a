package httpapi

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/tests/testkit"
)

// TestEveryPartnerAnswerIsSigned sends a signed request and answers of
// several kinds, and checks each verifies with orderhub's key.
func TestEveryPartnerAnswerIsSigned(t *testing.T) {
	h := newTestService(t)
	for _, tc := range []struct{ method, path, body, code string }{
		{"POST", "/v2/pos/inquireOrderDetail", `{"requestOrderId":"none"}`, "ORDER_NOT_EXIST"},
		{"POST", "/v2/pos/inquireOrderDetail", `{"requestOrderId":1}`, "PARAM_ILLEGAL"},
		{"POST", "/v2/pos/nope", `{}`, "INVALID_API"},
		{"POST", "/v2/pos/nope", `not json`, "INVALID_API"},
		{"POST", "/v2/pos/inquireOrderDetail", `{"requestOrderId":"none"} trailing`, "PARAM_ILLEGAL"},
		{"GET", "/v2/pos/inquireOrderDetail", ``, "INVALID_API"},
		{"POST", "/v1/delivery/notifyDeliveryAuditResult", `{"requestId":"r","tradeId":"t","deliveryBatchId":"b","deliveryAuditStatus":"ACCEPT"}`, "SUCCESS"},
	} {
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		if err := h.signer.Edit(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := rec.Result()
		res.Request = req
		if err := signature.VerifyResponse(res, rec.Body.Bytes(), h.pub); err != nil {
			t.Errorf("%s %s: %v (headers %v)", tc.method, tc.path, err, res.Header)
		}
		var got struct{ Result struct{ ResultCode string } }
		if json.Unmarshal(rec.Body.Bytes(), &got); got.Result.ResultCode != tc.code {
			t.Errorf("%s %s: %s, want %s", tc.method, tc.path, rec.Body, tc.code)
		}
		if sig := res.Header.Get("Signature"); !strings.HasPrefix(sig, "algorithm=RSA256, keyVersion=1, signature=") {
			t.Errorf("Signature header %q", sig)
		}
	}
	// The operator API is not signed.
	req := httptest.NewRequest(http.MethodGet, "/ops/orders/x", nil)
	req.Header.Set("Authorization", "Bearer tok")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound || rec.Header().Get("Signature") != "" {
		t.Errorf("ops: %d %v", rec.Code, rec.Header())
	}
}

// TestAnswerWhenSigningFails: an answer that cannot be signed still
// leaves, as an unsigned U the caller retries, never an empty 200.
func TestAnswerWhenSigningFails(t *testing.T) {
	broken := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: big.NewInt(35), E: 5}, D: big.NewInt(5)} // far too small to sign a SHA-256 digest
	h := newTestServiceOn(t, store.NewMemory(nil), func(c *Config) { c.SigningKey = broken })
	req := httptest.NewRequest(http.MethodPost, "/v2/pos/inquireOrderDetail", strings.NewReader(`{"requestOrderId":"none"}`))
	req.Header.Set("Content-Type", "application/json")
	if err := h.signer.Edit(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"resultStatus":"U"`) || rec.Header().Get("Signature") != "" {
		t.Errorf("HTTP %d %q, Signature %q; want 200, an unsigned U", rec.Code, rec.Body, rec.Header().Get("Signature"))
	}
}

// TestAnswersSurviveReserialising: a hop that parses an answer and writes
// it again, as JSON.stringify does (compact, no HTML escapes), gives back
// the very bytes orderhub signed.
func TestAnswersSurviveReserialising(t *testing.T) {
	st := withOrder(t, "o1", "READY")
	h := newTestServiceOn(t, st)
	put := httptest.NewRequest(http.MethodPut, "/ops/orders/o1", strings.NewReader(`{"posOrderId":"p","orderStatus":"COMPLETED","extendInfo":{"z":"<&> é","a":[1.50,123456789012345678901]}}`))
	put.Header.Set("Content-Type", "application/json")
	put.Header.Set("Authorization", "Bearer tok")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, put)
	if rec.Code != http.StatusOK {
		t.Fatalf("putOrder: %d %s", rec.Code, rec.Body)
	}
	for _, body := range []string{`{"requestOrderId":"o1"}`, `{"requestOrderId":"none"}`, `{"requestOrderId":1}`} {
		req := httptest.NewRequest(http.MethodPost, "/v2/pos/inquireOrderDetail", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if err := h.signer.Edit(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		d := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatal(err)
		}
		var again bytes.Buffer
		enc := json.NewEncoder(&again)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		if got := bytes.TrimSuffix(again.Bytes(), []byte("\n")); !bytes.Equal(got, rec.Body.Bytes()) {
			t.Errorf("re-serialised:\n got %s\nwant %s", got, rec.Body)
		}
	}
}

// TestPublicKeys: /public-keys publishes the current key and the earlier
// ones, newest first, in the form Ant's SDKs take (base64 X.509 DER), and
// the current one verifies the answers.
func TestPublicKeys(t *testing.T) {
	earlier := testkit.Key(t, 2)
	h := newTestServiceOn(t, store.NewMemory(nil), func(c *Config) {
		c.SigningKeyVersion = 3
		c.EarlierKeys = map[int]*rsa.PublicKey{2: &earlier.PublicKey}
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/public-keys", nil))
	var doc struct {
		Keys []struct {
			KeyVersion int
			Current    bool
			PublicKey  string
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || rec.Code != http.StatusOK || len(doc.Keys) != 2 {
		t.Fatalf("HTTP %d %s (%v)", rec.Code, rec.Body, err)
	}
	for i, want := range []struct {
		version int
		current bool
		key     *rsa.PublicKey
	}{{3, true, h.pub}, {2, false, &earlier.PublicKey}} {
		got := doc.Keys[i]
		if strings.Contains(got.PublicKey, "-----") {
			t.Errorf("key %d is PEM: the SDKs take bare base64 DER", i)
		}
		k, err := signature.ParsePublicKey([]byte(got.PublicKey))
		if err != nil || got.KeyVersion != want.version || got.Current != want.current || !k.Equal(want.key) {
			t.Errorf("key %d: version %d current %v, equal %v (%v); want version %d current %v", i, got.KeyVersion, got.Current, err == nil && k.Equal(want.key), err, want.version, want.current)
		}
	}
	if rec.Header().Get("Signature") != "" {
		t.Error("/public-keys is signed: a key cannot vouch for itself")
	}
}

// TestSignatureCheckedBeforeValidation: the message signature is checked on
// the raw bytes before the validator reads the body, so a caller that is
// not who it says gets ACCESS_DENIED or INVALID_SIGNATURE, never a
// PARAM_ILLEGAL that describes a body it should not have been heard on. The
// contract's security schemes leave this order to the service
// (authenticate passes them), and the documented codes depend on it.
func TestSignatureCheckedBeforeValidation(t *testing.T) {
	h := newTestService(t)
	bad := `{"requestOrderId":1}` // breaks the contract
	for _, tc := range []struct {
		name, code string
		edit       func(*http.Request)
	}{
		{"signed", "PARAM_ILLEGAL", func(*http.Request) {}},
		{"no Signature", "INVALID_SIGNATURE", func(r *http.Request) { r.Header.Del("Signature") }},
		{"no Request-Time", "INVALID_SIGNATURE", func(r *http.Request) { r.Header.Del("Request-Time") }},
		{"no Client-Id", "ACCESS_DENIED", func(r *http.Request) { r.Header.Del("Client-Id") }},
	} {
		req := httptest.NewRequest(http.MethodPost, "/v2/pos/inquireOrderDetail", strings.NewReader(bad))
		req.Header.Set("Content-Type", "application/json")
		if err := h.signer.Edit(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		tc.edit(req)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !strings.Contains(rec.Body.String(), `"resultCode":"`+tc.code+`"`) {
			t.Errorf("%s: %s, want %s", tc.name, rec.Body, tc.code)
		}
	}
}
