package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/orderhub/orderhub/impl/signature"
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
