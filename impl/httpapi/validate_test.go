package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestParamIllegalMessages checks that contract violations name every field
// at fault and never quote the values sent.
func TestParamIllegalMessages(t *testing.T) {
	h := newTestService(t)
	long := strings.Repeat("Z", 300)
	for _, tc := range []struct {
		name, path, body string
		want             []string
	}{
		{"many problems at once", "/v2/pds/order/notifyOrderCompletion",
			`{"requestId":12,"SECRET_FIELD":"SECRETVALUE","requestOrderId":"` + long + `"}`,
			[]string{"SECRET_FIELD: is not an allowed field", "requestId: must be of type string", "requestOrderId: exceeds the maximum length 255"}},
		{"missing field", "/v1/delivery/notifyDeliveryAuditResult",
			`{"requestId":"r","tradeId":"t","deliveryAuditStatus":"ACCEPT"}`,
			[]string{"deliveryBatchId: is required"}},
		{"enum", "/v1/delivery/notifyDeliveryAuditResult",
			`{"requestId":"r","tradeId":"t","deliveryBatchId":"b","deliveryAuditStatus":"SECRETVALUE"}`,
			[]string{"deliveryAuditStatus: must be one of ACCEPT, REJECT"}},
		{"null", "/v2/pos/inquireOrderDetail", `{"requestOrderId":null}`,
			[]string{"requestOrderId: must not be null"}},
		{"empty string", "/v2/pos/inquireOrderDetail", `{"requestOrderId":""}`,
			[]string{"requestOrderId: must not be empty"}},
		{"malformed JSON", "/v2/pos/inquireOrderDetail", `{"requestOrderId":"SECRETVALUE`,
			[]string{"body: is not valid JSON"}},
		{"empty body", "/v2/pos/inquireOrderDetail", ``,
			[]string{"body: is required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			if err := h.signer.Edit(t.Context(), req); err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var got struct {
				Result struct{ ResultStatus, ResultCode, ResultMessage string }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusOK {
				t.Fatalf("HTTP %d, body %s", rec.Code, rec.Body)
			}
			r := got.Result
			if r.ResultStatus != "F" || r.ResultCode != "PARAM_ILLEGAL" {
				t.Fatalf("result %+v", r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.ResultMessage, w) {
					t.Errorf("message %q lacks %q", r.ResultMessage, w)
				}
			}
			if strings.Contains(r.ResultMessage, "SECRETVALUE") || strings.Contains(r.ResultMessage, "ZZZ") {
				t.Errorf("message %q echoes a value", r.ResultMessage)
			}
		})
	}
}

func TestClip(t *testing.T) {
	s := strings.Repeat("é", 700) // 2 bytes a rune
	got := clip(s, maxMessage)
	if len(got) > maxMessage || !strings.HasSuffix(got, "…") || !json.Valid([]byte(`"`+got+`"`)) {
		t.Errorf("clip: %d bytes, suffix %q", len(got), got[len(got)-4:])
	}
	if clip("short", 10) != "short" {
		t.Error("clip changed a short string")
	}
}
