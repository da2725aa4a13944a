package orderhubtest_test

import (
	"net/http"
	"testing"

	"github.com/orderhub/orderhub/generated/client"
	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/orderhubtest"
	"github.com/orderhub/orderhub/impl/signature"
)

// TestJourney is what a downstream suite does with one line of setup:
// create an order, complete it, see the replay, inquire, post an audit.
func TestJourney(t *testing.T) {
	hub := orderhubtest.New(t)
	ctx := t.Context()

	put, err := hub.Ops.PutOrderWithResponse(ctx, "o1", models.PutOrderRequest{PosOrderID: "pos-1", OrderStatus: models.OrderStatusReady})
	if err != nil || put.JSON200 == nil {
		t.Fatalf("putOrder: %v %s", err, put.Body)
	}
	completion := models.NotifyOrderCompletionRequest{RequestID: "o1_1", RequestOrderID: "o1"}
	first, err := hub.Client.NotifyOrderCompletionWithResponse(ctx, nil, completion)
	if err != nil || first.JSON200 == nil || first.JSON200.Result.ResultStatus != models.ResultStatusSuccess {
		t.Fatalf("notifyOrderCompletion: %v %s", err, first.Body)
	}
	again, err := hub.Client.NotifyOrderCompletionWithResponse(ctx, nil, completion)
	if err != nil || string(again.Body) != string(first.Body) || again.HTTPResponse.Header.Get("Signature") != first.HTTPResponse.Header.Get("Signature") {
		t.Errorf("the replay is not the first answer: %v %s", err, again.Body)
	}
	inq, err := hub.Client.InquireOrderDetailWithResponse(ctx, nil, models.InquireOrderDetailRequest{RequestOrderID: "o1"})
	if err != nil || inq.JSON200 == nil || inq.JSON200.OrderStatus == nil || *inq.JSON200.OrderStatus != models.OrderStatusCompleted {
		t.Errorf("inquireOrderDetail: %v %s", err, inq.Body)
	}
	audit, err := hub.Client.NotifyDeliveryAuditResultWithResponse(ctx, nil, models.NotifyDeliveryAuditResultRequest{
		RequestID: "a1", TradeID: "T1", DeliveryBatchID: "B1", DeliveryAuditStatus: models.DeliveryAuditStatusAccept})
	if err != nil || audit.JSON200 == nil || audit.JSON200.Result.ResultStatus != models.ResultStatusSuccess {
		t.Errorf("notifyDeliveryAuditResult: %v %s", err, audit.Body)
	}
	list, err := hub.Ops.ListDeliveryAuditsWithResponse(ctx, "T1")
	if err != nil || list.JSON200 == nil || len(list.JSON200.DeliveryAudits) != 1 {
		t.Errorf("listDeliveryAudits: %v %s", err, list.Body)
	}
}

// TestAnswersAreChecked: a client made like hub.Client refuses an answer
// orderhub did not sign, here the unsigned refusal to a caller that does
// not sign as a registered client.
func TestAnswersAreChecked(t *testing.T) {
	hub := orderhubtest.New(t, orderhubtest.WithClientID("isv-2"))
	if hub.ClientID != "isv-2" {
		t.Fatalf("ClientID %q", hub.ClientID)
	}
	verifying := &http.Client{Transport: &signature.Verifier{Key: &hub.Key.PublicKey}}
	stranger, err := client.NewClientWithResponses(hub.URL, client.WithHTTPClient(verifying))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stranger.InquireOrderDetailWithResponse(t.Context(), nil, models.InquireOrderDetailRequest{RequestOrderID: "o1"}); err == nil {
		t.Error("an unsigned answer was accepted")
	}
}
