package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderhub/orderhub/impl/signature"
)

func TestParseRequestTime(t *testing.T) {
	want := time.Date(2019, 4, 4, 6, 38, 56, 0, time.UTC)
	for _, v := range []string{"2019-04-04T12:08:56+05:30", "2019-04-04T06:38:56Z", "1554359936000", "2019-04-04T06:38:56.000Z"} {
		got, err := parseRequestTime(v)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v", v, got, err)
		}
	}
	for _, v := range []string{"", "yesterday", "2019-04-04 06:38:56", "2019-04-04T06:38:56"} {
		if _, err := parseRequestTime(v); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

func TestPartnerOperations(t *testing.T) {
	ops, err := PartnerOperations()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ops)
	if want := []string{"inquireOrderDetail", "notifyDeliveryAuditResult", "notifyOrderCompletion"}; !slices.Equal(ops, want) {
		t.Errorf("partner operations %v, want %v", ops, want)
	}
}

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
