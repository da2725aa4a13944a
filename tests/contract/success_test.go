package contract

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/orderhub/orderhub/generated/models"
)

func TestNotifyOrderCompletionSuccess(t *testing.T) {
	e := newEnv(t)
	id := e.newOrder(models.OrderStatusPreparing)

	r := e.call(opCompletion, completion(uid("req"), id))
	r.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
	if got := r.header.Get("Client-Id"); got != e.clientID {
		t.Errorf("Client-Id %q, want the request's %q", got, e.clientID)
	}
	if _, err := time.Parse(time.RFC3339, r.header.Get("Response-Time")); err != nil {
		t.Errorf("Response-Time %q: %v", r.header.Get("Response-Time"), err)
	}
	if got := e.orderStatus(id); got != models.OrderStatusCompleted {
		t.Errorf("order status %s after notifyOrderCompletion, want COMPLETED", got)
	}
}

func TestInquireOrderDetailSuccess(t *testing.T) {
	e := newEnv(t)
	id := uid("order")
	// Raw, so the big integer goes over the wire exactly as written.
	const extendInfo = `{"big":12345678901234567890,"tableNo":"12","price":12.50,"nested":{"items":[{"sku":"A-1","qty":2},{"sku":"B-2","qty":1}],"flags":{"vip":true}}}`
	res, err := e.c.PutOrderWithBodyWithResponse(e.ctx(), id, "application/json",
		strings.NewReader(`{"posOrderId":"pos-`+id+`","orderStatus":"READY","extendInfo":`+extendInfo+`}`), admin)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode() != http.StatusOK {
		t.Fatalf("putOrder: HTTP %d %s", res.StatusCode(), res.Body)
	}

	r := e.call(opInquire, inquiry(id))
	r.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
	var got struct {
		PosOrderID  string          `json:"posOrderId"`
		OrderStatus string          `json:"orderStatus"`
		ExtendInfo  json.RawMessage `json:"extendInfo"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.PosOrderID != "pos-"+id || got.OrderStatus != "READY" {
		t.Errorf("posOrderId %q orderStatus %q, want %q READY", got.PosOrderID, got.OrderStatus, "pos-"+id)
	}
	if diff := sameJSON(t, got.ExtendInfo, []byte(extendInfo)); diff != "" {
		t.Errorf("extendInfo (-want +got):\n%s", diff)
	}
	if !strings.Contains(string(got.ExtendInfo), "12345678901234567890") {
		t.Errorf("the big integer is not kept digit for digit: %s", got.ExtendInfo)
	}

	// The operator API shows the same.
	o, err := e.c.GetOrderWithResponse(e.ctx(), id, admin)
	if err != nil {
		t.Fatal(err)
	}
	var stored struct {
		ExtendInfo json.RawMessage `json:"extendInfo"`
	}
	if err := json.Unmarshal(o.Body, &stored); err != nil {
		t.Fatal(err)
	}
	if diff := sameJSON(t, stored.ExtendInfo, []byte(extendInfo)); diff != "" {
		t.Errorf("GET /ops/orders extendInfo (-want +got):\n%s", diff)
	}
}

func TestNotifyDeliveryAuditResultSuccess(t *testing.T) {
	e := newEnv(t)
	trade := uid("trade")
	start := time.Now().Add(-time.Second)

	send := func(requestID, batch string, status models.DeliveryAuditStatus) {
		t.Helper()
		r := e.call(opAudit, models.NotifyDeliveryAuditResultRequest{RequestID: requestID, TradeID: trade, DeliveryBatchID: batch, DeliveryAuditStatus: status})
		r.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
	}
	if got := e.audits(trade); len(got) != 0 {
		t.Fatalf("audits of a new trade: %+v, want none", got)
	}

	// Received out of order: the list is ordered by deliveryBatchId.
	r2, r1 := uid("req"), uid("req")
	send(r2, "B-2", models.DeliveryAuditStatusAccept)
	send(r1, "B-1", models.DeliveryAuditStatusAccept)
	got := e.audits(trade)
	end := time.Now().Add(time.Second)
	for _, a := range got {
		if a.ReceivedAt.Before(start) || a.ReceivedAt.After(end) {
			t.Errorf("batch %s receivedAt %v, not within the test [%v, %v]", a.DeliveryBatchID, a.ReceivedAt, start, end)
		}
	}
	ignoreTime := cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".ReceivedAt" }, cmp.Ignore())
	want := []models.DeliveryAudit{
		{DeliveryBatchID: "B-1", DeliveryAuditStatus: models.DeliveryAuditStatusAccept, RequestID: r1},
		{DeliveryBatchID: "B-2", DeliveryAuditStatus: models.DeliveryAuditStatusAccept, RequestID: r2},
	}
	if diff := cmp.Diff(want, got, ignoreTime); diff != "" {
		t.Errorf("audits (-want +got):\n%s", diff)
	}

	// A later REJECT for B-2 replaces its ACCEPT.
	r3 := uid("req")
	send(r3, "B-2", models.DeliveryAuditStatusReject)
	want[1] = models.DeliveryAudit{DeliveryBatchID: "B-2", DeliveryAuditStatus: models.DeliveryAuditStatusReject, RequestID: r3}
	if diff := cmp.Diff(want, e.audits(trade), ignoreTime); diff != "" {
		t.Errorf("audits after the REJECT (-want +got):\n%s", diff)
	}
}
