package contract

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/store"
)

// change is a notifyOrderChange body for order id with a fresh requestId;
// edit fills in what changes.
func change(id string, edit func(b *models.NotifyOrderChangeRequest)) models.NotifyOrderChangeRequest {
	b := models.NotifyOrderChangeRequest{RequestID: uid("req"), RequestOrderID: id}
	if edit != nil {
		edit(&b)
	}
	return b
}

func toStatus(s models.ChangedOrderStatus) func(b *models.NotifyOrderChangeRequest) {
	return func(b *models.NotifyOrderChangeRequest) { b.OrderStatus = &s }
}

func refunded(currency, value string) func(b *models.NotifyOrderChangeRequest) {
	return func(b *models.NotifyOrderChangeRequest) {
		b.RefundAmount = &models.Amount{Currency: currency, Value: value}
	}
}

func delivery(s string) func(b *models.NotifyOrderChangeRequest) {
	return func(b *models.NotifyOrderChangeRequest) { b.DeliveryStatus = &s }
}

func shortNumber(s string) func(b *models.NotifyOrderChangeRequest) {
	return func(b *models.NotifyOrderChangeRequest) { b.ShortOrderNumber = &s }
}

func readyAt(s string) func(b *models.NotifyOrderChangeRequest) {
	return func(b *models.NotifyOrderChangeRequest) {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			panic(err)
		}
		b.OrderReadyTime = &t
	}
}

// order reads an order whole through the operator API.
func (e *env) order(id string) models.Order {
	e.t.Helper()
	res, err := e.c.GetOrderWithResponse(e.ctx(), id, admin)
	if err != nil || res.JSON200 == nil {
		e.t.Fatalf("getOrder %s: %v %v", id, err, res)
	}
	return *res.JSON200
}

// changeEnvs runs test over the in-memory store and over Redis (a Redis
// Cluster under ORDERHUB_TEST_REDIS=cluster).
func changeEnvs(t *testing.T, test func(t *testing.T, e *env)) {
	for name, opts := range map[string][]envOption{"memory": {withMemoryStore()}, "redis": nil} {
		if name == "memory" && clusterMode() {
			continue // the memory store does not depend on the Redis mode: the single-node run covers it
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, newEnv(t, opts...))
		})
	}
}

func TestNotifyOrderChangeResultCodes(t *testing.T) {
	long := strings.Repeat("L0ngV4lue", 29)[:256]
	runCodeCases(t, []codeCase{
		{
			name: "SUCCESS",
			run: func(t *testing.T, e *env) reply {
				id := e.newOrder(models.OrderStatusAccepted)
				r := e.call(opChange, change(id, toStatus(models.ChangedOrderStatusPreparing)))
				unchanged(t, e, id, models.OrderStatusPreparing)
				return r
			},
			status: models.ResultStatusSuccess, code: "SUCCESS",
		},
		{
			name: "SUCCESS the current status again converges, nothing written",
			run: func(t *testing.T, e *env) reply {
				id := e.newOrder(models.OrderStatusReady)
				v := e.version(id)
				r := e.call(opChange, change(id, toStatus(models.ChangedOrderStatusReady)))
				if got := e.version(id); got != v {
					t.Errorf("a change to the current status wrote the order: version %d → %d", v, got)
				}
				return r
			},
			status: models.ResultStatusSuccess, code: "SUCCESS",
		},
		{
			name: "PARAM_ILLEGAL no change named",
			run: func(t *testing.T, e *env) reply {
				return e.call(opChange, change(e.newOrder(models.OrderStatusAccepted), nil))
			},
			status: models.ResultStatusFailure, code: "PARAM_ILLEGAL", inMessage: "at least one of orderStatus",
		},
		{
			name: "PARAM_ILLEGAL ORDER_FAIL is not this API's status",
			run: func(t *testing.T, e *env) reply {
				id := e.newOrder(models.OrderStatusAccepted)
				r := e.call(opChange, rawBody{"application/json", `{"requestId":"` + uid("req") + `","requestOrderId":"` + id + `","orderStatus":"ORDER_FAIL"}`})
				unchanged(t, e, id, models.OrderStatusAccepted)
				return r
			},
			status: models.ResultStatusFailure, code: "PARAM_ILLEGAL", inMessage: "orderStatus",
		},
		{
			name: "PARAM_ILLEGAL refund value with decimals",
			run: func(t *testing.T, e *env) reply {
				return e.call(opChange, change(e.newOrder(models.OrderStatusAccepted), refunded("SGD", "12.50")))
			},
			status: models.ResultStatusFailure, code: "PARAM_ILLEGAL", inMessage: "refundAmount.value", notInMessage: []string{"12.50"},
		},
		{
			name: "PARAM_ILLEGAL shortOrderNumber of 256 characters",
			run: func(t *testing.T, e *env) reply {
				return e.call(opChange, change(e.newOrder(models.OrderStatusAccepted), shortNumber(long)))
			},
			status: models.ResultStatusFailure, code: "PARAM_ILLEGAL", inMessage: "shortOrderNumber", notInMessage: []string{long[:16]},
		},
		{
			name: "ACCESS_DENIED missing Client-Id header",
			run: func(t *testing.T, e *env) reply {
				id := e.newOrder(models.OrderStatusAccepted)
				r := e.call(opChange, change(id, toStatus(models.ChangedOrderStatusReady)), withoutHeader("Client-Id"))
				unchanged(t, e, id, models.OrderStatusAccepted)
				return r
			},
			status: models.ResultStatusFailure, code: "ACCESS_DENIED",
		},
		{
			name: "INVALID_SIGNATURE missing Signature header",
			run: func(t *testing.T, e *env) reply {
				id := e.newOrder(models.OrderStatusAccepted)
				r := e.call(opChange, change(id, toStatus(models.ChangedOrderStatusReady)), withoutHeader("Signature"))
				unchanged(t, e, id, models.OrderStatusAccepted)
				return r
			},
			status: models.ResultStatusFailure, code: "INVALID_SIGNATURE",
		},
		{
			name: "ORDER_NOT_EXIST",
			run: func(t *testing.T, e *env) reply {
				return e.call(opChange, change("n0-such-0rder-"+uid("order"), delivery("PACKED")))
			},
			status: models.ResultStatusFailure, code: "ORDER_NOT_EXIST", notInMessage: []string{"n0-such-0rder"},
		},
		{
			name: "ORDER_STATUS_INVALID backwards",
			run: func(t *testing.T, e *env) reply {
				id := e.newOrder(models.OrderStatusReady)
				r := e.call(opChange, change(id, toStatus(models.ChangedOrderStatusAccepted)))
				unchanged(t, e, id, models.OrderStatusReady)
				return r
			},
			status: models.ResultStatusFailure, code: "ORDER_STATUS_INVALID",
		},
		{
			name: "PROCESS_FAIL refund total going down",
			run: func(t *testing.T, e *env) reply {
				id := e.newOrder(models.OrderStatusCompleted)
				e.call(opChange, change(id, refunded("SGD", "500"))).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
				return e.call(opChange, change(id, refunded("SGD", "499")))
			},
			status: models.ResultStatusFailure, code: "PROCESS_FAIL", inMessage: "never goes down", notInMessage: []string{"499"},
		},
		{
			name: "PROCESS_FAIL refund in another currency",
			run: func(t *testing.T, e *env) reply {
				id := e.newOrder(models.OrderStatusCompleted)
				e.call(opChange, change(id, refunded("SGD", "500"))).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
				return e.call(opChange, change(id, refunded("USD", "900")))
			},
			status: models.ResultStatusFailure, code: "PROCESS_FAIL", inMessage: "refundAmount.currency", notInMessage: []string{"USD"},
		},
		{
			name: "REPEAT_REQ_INCONSISTENT same requestId, another change",
			run: func(t *testing.T, e *env) reply {
				id := e.newOrder(models.OrderStatusAccepted)
				first := change(id, delivery("PACKED"))
				e.call(opChange, first).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
				again := first
				again.DeliveryStatus = nil
				again.OrderStatus = ptr(models.ChangedOrderStatusReady)
				r := e.call(opChange, again)
				unchanged(t, e, id, models.OrderStatusAccepted)
				return r
			},
			status: models.ResultStatusFailure, code: "REPEAT_REQ_INCONSISTENT",
		},
		{
			name: "REQUEST_TRAFFIC_EXCEED_LIMIT",
			own:  true, opts: []envOption{withRateLimit(limits(t, "1/h", ""), nil)},
			run: func(t *testing.T, e *env) reply {
				id := e.newOrder(models.OrderStatusAccepted)
				e.call(opChange, change(id, delivery("PACKED"))).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
				r := e.call(opChange, change(id, toStatus(models.ChangedOrderStatusReady)))
				unchanged(t, e, id, models.OrderStatusAccepted)
				return r
			},
			status: models.ResultStatusFailure, code: "REQUEST_TRAFFIC_EXCEED_LIMIT",
		},
		{
			name: "UNKNOWN_EXCEPTION while the same request is in progress",
			run: func(t *testing.T, e *env) reply {
				id := e.newOrder(models.OrderStatusAccepted)
				b := change(id, toStatus(models.ChangedOrderStatusReady))
				release := e.holdInProgress(store.Key{Op: "notifyOrderChange", RequestID: b.RequestID, Scope: store.ScopeOrder, ScopeID: id}, mustJSON(t, b))
				r := e.call(opChange, b)
				unchanged(t, e, id, models.OrderStatusAccepted)
				release()
				e.call(opChange, b).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
				unchanged(t, e, id, models.OrderStatusReady)
				return r
			},
			status: models.ResultStatusUnknown, code: "UNKNOWN_EXCEPTION",
		},
		{
			name: "UNKNOWN_EXCEPTION while Redis is down",
			own:  true, opts: []envOption{withDurableRedis()},
			run: func(t *testing.T, e *env) reply {
				id := e.newOrder(models.OrderStatusAccepted)
				b := change(id, toStatus(models.ChangedOrderStatusReady))
				e.redis.Stop()
				r := e.call(opChange, b)
				e.redis.Restart()
				e.call(opChange, b).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
				unchanged(t, e, id, models.OrderStatusReady)
				return r
			},
			status: models.ResultStatusUnknown, code: "UNKNOWN_EXCEPTION",
		},
	})
}

// TestNotifyOrderChangeJourney sends every status this API sets to an
// order in every status there is: the journey, written out.
func TestNotifyOrderChangeJourney(t *testing.T) {
	to := []models.ChangedOrderStatus{
		models.ChangedOrderStatusAccepted, models.ChangedOrderStatusPreparing, models.ChangedOrderStatusReady,
		models.ChangedOrderStatusCompleted, models.ChangedOrderStatusRejected, models.ChangedOrderStatusCancelled,
	}
	// S: allowed (the same status converges); F: ORDER_STATUS_INVALID.
	journey := map[models.OrderStatus]string{
		//                              ACC PRE RDY CMP REJ CAN
		models.OrderStatusOrderSuccess: "S   S   S   S   S   S",
		models.OrderStatusAccepted:     "S   S   S   S   F   S",
		models.OrderStatusPreparing:    "F   S   S   S   F   S",
		models.OrderStatusReady:        "F   F   S   S   F   S",
		models.OrderStatusCompleted:    "F   F   F   S   F   F",
		models.OrderStatusCancelled:    "F   F   F   F   F   S",
		models.OrderStatusRejected:     "F   F   F   F   S   F",
		models.OrderStatusOrderFail:    "F   F   F   F   F   F",
	}
	changeEnvs(t, func(t *testing.T, e *env) {
		for from, row := range journey {
			for i, want := range strings.Fields(row) {
				id := e.newOrder(from)
				r := e.call(opChange, change(id, toStatus(to[i])))
				if want == "S" {
					r.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
					unchanged(t, e, id, models.OrderStatus(to[i]))
				} else {
					r.wantResult(t, http.StatusOK, models.ResultStatusFailure, "ORDER_STATUS_INVALID")
					unchanged(t, e, id, from)
				}
			}
		}
	})
}

// Only the fields sent change; the others stay. Final orders keep their
// status, short number and ready time; deliveries change after COMPLETED
// only; refunds grow after any final status. The inquiry and the
// operator API show the changes.
func TestNotifyOrderChangePartialUpdates(t *testing.T) {
	changeEnvs(t, func(t *testing.T, e *env) {
		ok := func(b models.NotifyOrderChangeRequest) {
			t.Helper()
			e.call(opChange, b).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
		}
		refused := func(b models.NotifyOrderChangeRequest, code string) {
			t.Helper()
			e.call(opChange, b).wantResult(t, http.StatusOK, models.ResultStatusFailure, code)
		}
		id := e.newOrder(models.OrderStatusAccepted)
		ok(change(id, func(b *models.NotifyOrderChangeRequest) {
			shortNumber("A-042")(b)
			readyAt("2024-06-01T08:35:00+08:00")(b)
		}))
		ok(change(id, delivery("PACKED")))
		ok(change(id, toStatus(models.ChangedOrderStatusPreparing)))
		o := e.order(id)
		if o.OrderStatus != models.OrderStatusPreparing || o.ShortOrderNumber == nil || *o.ShortOrderNumber != "A-042" ||
			o.OrderReadyTime == nil || o.OrderReadyTime.Format(time.RFC3339) != "2024-06-01T08:35:00+08:00" ||
			o.DeliveryStatus == nil || *o.DeliveryStatus != "PACKED" || o.PosOrderID != "pos-"+id || o.RefundAmount != nil {
			t.Errorf("after three partial changes: %+v", o)
		}
		inq := e.call(opInquire, inquiry(id))
		if !strings.Contains(string(inq.body), `"orderStatus":"PREPARING"`) {
			t.Errorf("the inquiry does not answer the new status: %s", inq.body)
		}

		ok(change(id, toStatus(models.ChangedOrderStatusCompleted)))
		// Final: the same values converge, others are refused.
		ok(change(id, shortNumber("A-042")))
		ok(change(id, readyAt("2024-06-01T08:35:00+08:00")))
		refused(change(id, shortNumber("B-7")), "ORDER_STATUS_INVALID")
		refused(change(id, readyAt("2024-06-01T09:00:00+08:00")), "ORDER_STATUS_INVALID")
		refused(change(id, readyAt("2024-06-01T00:35:00Z")), "ORDER_STATUS_INVALID") // the same instant, written otherwise
		// After COMPLETED deliveries and refunds go on.
		ok(change(id, delivery("DELIVERED")))
		ok(change(id, refunded("SGD", "300")))
		o = e.order(id)
		if *o.DeliveryStatus != "DELIVERED" || o.RefundAmount == nil || o.RefundAmount.Value != "300" || *o.ShortOrderNumber != "A-042" {
			t.Errorf("after completion: %+v", o)
		}

		cancelled := e.newOrder(models.OrderStatusCancelled)
		refused(change(cancelled, delivery("OUT")), "ORDER_STATUS_INVALID")
		ok(change(cancelled, refunded("SGD", "1000")))

		// The operator PUT sets the same fields, and clears what it leaves out.
		res, err := e.c.PutOrderWithResponse(e.ctx(), id, models.PutOrderRequest{
			PosOrderID: "pos-x", OrderStatus: models.OrderStatusCompleted,
			RefundAmount: &models.Amount{Currency: "SGD", Value: "350"}, DeliveryStatus: ptr("RETURNED"),
		}, admin)
		if err != nil || res.JSON200 == nil || res.JSON200.ShortOrderNumber != nil || res.JSON200.RefundAmount.Value != "350" || *res.JSON200.DeliveryStatus != "RETURNED" {
			t.Errorf("operator PUT: %v %v", err, res)
		}
	})
}

// The refund total never goes down and keeps its currency; the same total
// again converges.
func TestNotifyOrderChangeRefunds(t *testing.T) {
	changeEnvs(t, func(t *testing.T, e *env) {
		id := e.newOrder(models.OrderStatusReady)
		for _, step := range []struct {
			currency, value, code string
		}{
			{"SGD", "100", "SUCCESS"},
			{"SGD", "100", "SUCCESS"},
			{"SGD", "99", "PROCESS_FAIL"},
			{"USD", "200", "PROCESS_FAIL"},
			{"SGD", "0", "PROCESS_FAIL"},
			{"SGD", "150", "SUCCESS"},
			{"SGD", "999999999999999999", "SUCCESS"},
		} {
			r := e.call(opChange, change(id, refunded(step.currency, step.value)))
			status := models.ResultStatusSuccess
			if step.code != "SUCCESS" {
				status = models.ResultStatusFailure
			}
			r.wantResult(t, http.StatusOK, status, step.code)
		}
		if o := e.order(id); o.RefundAmount == nil || *o.RefundAmount != (models.Amount{Currency: "SGD", Value: "999999999999999999"}) {
			t.Errorf("refund total %+v", o.RefundAmount)
		}
	})
}

// A repeat replays the first answer byte for byte, an F too, even when the
// order would now allow the change.
func TestNotifyOrderChangeReplays(t *testing.T) {
	changeEnvs(t, func(t *testing.T, e *env) {
		id := e.newOrder(models.OrderStatusAccepted)
		b := change(id, toStatus(models.ChangedOrderStatusReady))
		first := e.call(opChange, b)
		first.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
		sameAnswer(t, first, e.call(opChange, b))

		refusal := change(id, toStatus(models.ChangedOrderStatusPreparing)) // backwards now
		f := e.call(opChange, refusal)
		f.wantResult(t, http.StatusOK, models.ResultStatusFailure, "ORDER_STATUS_INVALID")
		sameAnswer(t, f, e.call(opChange, refusal))
	})
}

// 50 identical changes at once make one effect; 50 different changes at
// once leave the order as one serial order of the changes answered S
// would: refund totals only grow, so the S ones are those applied in
// increasing order, the last the largest.
func TestNotifyOrderChangeConcurrency(t *testing.T) {
	const n = 50
	changeEnvs(t, func(t *testing.T, e *env) {
		id := e.newOrder(models.OrderStatusAccepted)
		before := e.version(id)
		same := change(id, delivery("PACKED"))
		answers, retries := hammer(t, n, func(ctx context.Context) (reply, error) { return e.send(ctx, opChange, same) })
		t.Logf("identical: %d U answers retried", retries)
		checkAllSame(t, answers)
		if got := e.version(id); got != before+1 {
			t.Errorf("50 identical changes: version %d → %d, want one write", before, got)
		}

		before = e.version(id)
		bodies := make([]models.NotifyOrderChangeRequest, n)
		for i := range bodies {
			bodies[i] = change(id, func(b *models.NotifyOrderChangeRequest) {
				delivery(fmt.Sprintf("D-%d", i))(b)
				refunded("SGD", strconv.Itoa(100+i))(b)
			})
		}
		next := make(chan int, n)
		for i := range n {
			next <- i
		}
		close(next)
		got := make([]reply, n)
		answers, retries = hammer(t, n, func(ctx context.Context) (reply, error) {
			// Each goroutine owns one body: the first call takes it.
			i, ok := <-next
			if !ok {
				return reply{}, fmt.Errorf("test bug: more first calls than bodies")
			}
			r, err := e.send(ctx, opChange, bodies[i])
			for err == nil && statusOf(r.body) == models.ResultStatusUnknown {
				r, err = e.send(ctx, opChange, bodies[i])
			}
			got[i] = r
			return r, err
		})
		t.Logf("different: %d U answers retried", retries)
		_ = answers
		succeeded, highest := 0, -1
		for i, r := range got {
			switch res := r.result(t); res.ResultCode {
			case models.ResultCodeSuccess:
				succeeded++
				highest = max(highest, i)
			case models.ResultCodeProcessFail:
			default:
				t.Errorf("change %d: %s/%s, want SUCCESS or PROCESS_FAIL", i, res.ResultStatus, res.ResultCode)
			}
		}
		for i, r := range got {
			if r.result(t).ResultCode == models.ResultCodeProcessFail && i > highest {
				t.Errorf("change %d refused though no larger total was accepted (largest accepted %d)", i, highest)
			}
		}
		o := e.order(id)
		if o.RefundAmount == nil || o.RefundAmount.Value != strconv.Itoa(100+highest) || o.DeliveryStatus == nil || *o.DeliveryStatus != fmt.Sprintf("D-%d", highest) {
			t.Errorf("final order %+v, want change %d's refund and delivery status", o, highest)
		}
		if v := e.version(id); v != before+int64(succeeded) {
			t.Errorf("%d changes answered S, but the order was written %d times", succeeded, v-before)
		}
	})
}
