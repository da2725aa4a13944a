// Package downstream is a partner's test suite, in a Go module of its own:
// it can use only what a downstream team can import (the generated client
// and models, impl/signature, impl/orderhubtest), and it is what such a team
// would copy. make test runs it.
package downstream

import (
	"testing"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/orderhubtest"
)

func TestOrderJourney(t *testing.T) {
	hub := orderhubtest.New(t) // the whole setup
	ctx := t.Context()

	order, err := hub.Ops.PutOrderWithResponse(ctx, "o1", models.PutOrderRequest{PosOrderID: "pos-1", OrderStatus: models.OrderStatusPreparing})
	if err != nil || order.JSON200 == nil {
		t.Fatalf("create the order: %v %s", err, order.Body)
	}

	// A partner call with its checks: the signature is verified by the
	// client itself.
	done, err := hub.Client.NotifyOrderCompletionWithResponse(ctx, nil, models.NotifyOrderCompletionRequest{RequestID: "o1_1", RequestOrderID: "o1"})
	if err != nil || done.JSON200.Result.ResultStatus != models.ResultStatusSuccess {
		t.Fatalf("complete: %v %s", err, done.Body)
	}

	// The same requestId again: the first answer, byte for byte.
	again, err := hub.Client.NotifyOrderCompletionWithResponse(ctx, nil, models.NotifyOrderCompletionRequest{RequestID: "o1_1", RequestOrderID: "o1"})
	if err != nil || string(again.Body) != string(done.Body) {
		t.Errorf("replay: %v %s, want %s", err, again.Body, done.Body)
	}

	detail, err := hub.Client.InquireOrderDetailWithResponse(ctx, nil, models.InquireOrderDetailRequest{RequestOrderID: "o1"})
	if err != nil || *detail.JSON200.OrderStatus != models.OrderStatusCompleted {
		t.Errorf("inquire: %v %s", err, detail.Body)
	}

	audit, err := hub.Client.NotifyDeliveryAuditResultWithResponse(ctx, nil, models.NotifyDeliveryAuditResultRequest{
		RequestID: "a1", TradeID: "T1", DeliveryBatchID: "B1", DeliveryAuditStatus: models.DeliveryAuditStatusAccept})
	if err != nil || audit.JSON200.Result.ResultStatus != models.ResultStatusSuccess {
		t.Errorf("audit: %v %s", err, audit.Body)
	}
}

// TestRefusalIsFinal: an order that was cancelled cannot be completed: F
// ORDER_STATUS_INVALID, signed like every answer to the client.
func TestRefusalIsFinal(t *testing.T) {
	hub := orderhubtest.New(t)
	ctx := t.Context()
	if _, err := hub.Ops.PutOrderWithResponse(ctx, "o2", models.PutOrderRequest{PosOrderID: "pos-2", OrderStatus: models.OrderStatusCancelled}); err != nil {
		t.Fatal(err)
	}
	res, err := hub.Client.NotifyOrderCompletionWithResponse(ctx, nil, models.NotifyOrderCompletionRequest{RequestID: "o2_1", RequestOrderID: "o2"})
	if err != nil || res.JSON200.Result.ResultCode != models.ResultCodeOrderStatusInvalid {
		t.Errorf("complete a cancelled order: %v %s", err, res.Body)
	}
}
