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

// deliver is the retry logic under test, as a partner's code would have
// it: send the notification, and send it again, same requestId, while the
// answer is U or never arrived; at most attempts times.
func deliver(t *testing.T, attempts int, send func() (*models.Result, error)) (models.Result, int) {
	t.Helper()
	for n := 1; n <= attempts; n++ {
		r, err := send()
		switch {
		case err != nil:
			t.Logf("attempt %d: no answer (%v): retrying", n, err)
		case r.ResultStatus == models.ResultStatusUnknown:
			t.Logf("attempt %d: U: retrying", n)
		default:
			return *r, n
		}
	}
	t.Fatalf("no final answer in %d attempts", attempts)
	return models.Result{}, 0
}

// TestRetryAfterUnknown: orderhub answers U once; the retry with the same
// requestId is processed afresh, and the audit is recorded once.
func TestRetryAfterUnknown(t *testing.T) {
	hub := orderhubtest.New(t)
	ctx := t.Context()
	hub.Inject(t, orderhubtest.Answer("notifyDeliveryAuditResult", models.ResultCodeUnknownException).ForRequestID("a2").Times(1))

	body := models.NotifyDeliveryAuditResultRequest{RequestID: "a2", TradeID: "T2", DeliveryBatchID: "B1", DeliveryAuditStatus: models.DeliveryAuditStatusReject}
	result, attempts := deliver(t, 3, func() (*models.Result, error) {
		res, err := hub.Client.NotifyDeliveryAuditResultWithResponse(ctx, nil, body)
		if err != nil {
			return nil, err
		}
		return &res.JSON200.Result, nil
	})
	if result.ResultStatus != models.ResultStatusSuccess || attempts != 2 {
		t.Errorf("result %+v after %d attempts, want S after 2", result, attempts)
	}
	audits, err := hub.Ops.ListDeliveryAuditsWithResponse(ctx, "T2")
	if err != nil || len(audits.JSON200.DeliveryAudits) != 1 || audits.JSON200.DeliveryAudits[0].RequestID != "a2" {
		t.Errorf("audits of T2: %v %s, want the one of a2", err, audits.Body)
	}
}

// TestRetryAfterLostAnswer: orderhub completes the order and the answer
// is lost on the way; the retry gets the stored answer, and the order was
// completed once.
func TestRetryAfterLostAnswer(t *testing.T) {
	hub := orderhubtest.New(t)
	ctx := t.Context()
	if _, err := hub.Ops.PutOrderWithResponse(ctx, "o3", models.PutOrderRequest{PosOrderID: "pos-3", OrderStatus: models.OrderStatusReady}); err != nil {
		t.Fatal(err)
	}
	hub.Inject(t, orderhubtest.DropAfterCommit("notifyOrderCompletion").ForOrder("o3").Times(1))

	body := models.NotifyOrderCompletionRequest{RequestID: "o3_1", RequestOrderID: "o3"}
	var last []byte
	result, attempts := deliver(t, 3, func() (*models.Result, error) {
		res, err := hub.Client.NotifyOrderCompletionWithResponse(ctx, nil, body)
		if err != nil {
			return nil, err
		}
		last = res.Body
		return &res.JSON200.Result, nil
	})
	if result.ResultStatus != models.ResultStatusSuccess || attempts != 2 {
		t.Errorf("result %+v after %d attempts, want S after 2", result, attempts)
	}
	// Any repeat gets the stored answer: the same bytes, signature and
	// Response-Time included.
	again, err := hub.Client.NotifyOrderCompletionWithResponse(ctx, nil, body)
	if err != nil || string(again.Body) != string(last) || again.HTTPResponse.Header.Get("Signature") == "" {
		t.Errorf("replay: %v %s, want %s", err, again.Body, last)
	}
	detail, err := hub.Client.InquireOrderDetailWithResponse(ctx, nil, models.InquireOrderDetailRequest{RequestOrderID: "o3"})
	if err != nil || *detail.JSON200.OrderStatus != models.OrderStatusCompleted {
		t.Errorf("inquire: %v %s", err, detail.Body)
	}
}
