package contract

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/store"
)

// codeCase is one way an operation reaches one result code. run sets up,
// sends the request and checks any side effects; the table loop checks the
// answer.
type codeCase struct {
	name string
	// own: the case gets an env of its own (it stops Redis) with these options.
	own        bool
	opts       []envOption
	run        func(t *testing.T, e *env) reply
	httpStatus int // 0: 200
	status     models.ResultStatus
	code       string
	// inMessage must appear in resultMessage (the field at fault);
	// notInMessage must not (the offending values).
	inMessage    string
	notInMessage []string
}

func runCodeCases(t *testing.T, cases []codeCase) {
	t.Helper()
	shared := newEnv(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parallel(t)
			var e *env
			if tc.own {
				e = newEnv(t, tc.opts...)
			} else {
				e = shared.sub(t)
			}
			r := tc.run(t, e)
			want := tc.httpStatus
			if want == 0 {
				want = http.StatusOK
			}
			got := r.wantResult(t, want, tc.status, tc.code, tc.notInMessage...)
			if tc.inMessage != "" && !strings.Contains(got.ResultMessage, tc.inMessage) {
				t.Errorf("resultMessage %q does not name %q", got.ResultMessage, tc.inMessage)
			}
		})
	}
}

// unchanged fails unless the order still has status want.
func unchanged(t *testing.T, e *env, id string, want models.OrderStatus) {
	t.Helper()
	if got := e.orderStatus(id); got != want {
		t.Errorf("order %s is %s, want it untouched (%s)", id, got, want)
	}
}

func TestNotifyOrderCompletionResultCodes(t *testing.T) {
	// paramIllegal sends body for a PREPARING order and checks it stays so.
	paramIllegal := func(contentType string, body func(orderID string) string) func(t *testing.T, e *env) reply {
		return func(t *testing.T, e *env) reply {
			id := e.newOrder(models.OrderStatusPreparing)
			r := e.call(opCompletion, rawBody{contentType, body(id)})
			unchanged(t, e, id, models.OrderStatusPreparing)
			return r
		}
	}
	long := strings.Repeat("L0ngV4lue", 29)[:256]
	finalStatus := func(s models.OrderStatus) codeCase {
		return codeCase{
			name: "ORDER_STATUS_INVALID for a " + string(s) + " order",
			run: func(t *testing.T, e *env) reply {
				id := e.newOrder(s)
				r := e.call(opCompletion, completion(uid("req"), id))
				unchanged(t, e, id, s)
				return r
			},
			status: models.ResultStatusFailure, code: "ORDER_STATUS_INVALID",
		}
	}

	runCodeCases(t, []codeCase{
		{
			name: "SUCCESS",
			run: func(t *testing.T, e *env) reply {
				id := e.newOrder(models.OrderStatusAccepted)
				r := e.call(opCompletion, completion(uid("req"), id))
				unchanged(t, e, id, models.OrderStatusCompleted)
				return r
			},
			status: models.ResultStatusSuccess, code: "SUCCESS",
		},
		{
			name: "SUCCESS again for a COMPLETED order, new requestId",
			run: func(t *testing.T, e *env) reply {
				id := e.newOrder(models.OrderStatusReady)
				e.call(opCompletion, completion(uid("req"), id)).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
				v := e.version(id)
				r := e.call(opCompletion, completion(uid("req"), id))
				if got := e.version(id); got != v {
					t.Errorf("completing a COMPLETED order wrote it again: version %d → %d", v, got)
				}
				unchanged(t, e, id, models.OrderStatusCompleted)
				return r
			},
			status: models.ResultStatusSuccess, code: "SUCCESS",
		},
		{
			name: "SUCCESS for an order created COMPLETED",
			run: func(t *testing.T, e *env) reply {
				return e.call(opCompletion, completion(uid("req"), e.newOrder(models.OrderStatusCompleted)))
			},
			status: models.ResultStatusSuccess, code: "SUCCESS",
		},
		{
			name: "PARAM_ILLEGAL missing requestId",
			run: paramIllegal("application/json", func(id string) string {
				return `{"requestOrderId":"` + id + `"}`
			}),
			status: models.ResultStatusFailure, code: "PARAM_ILLEGAL", inMessage: "requestId",
		},
		{
			name: "PARAM_ILLEGAL requestId of 256 characters",
			run: paramIllegal("application/json", func(id string) string {
				return `{"requestId":"` + long + `","requestOrderId":"` + id + `"}`
			}),
			status: models.ResultStatusFailure, code: "PARAM_ILLEGAL", inMessage: "requestId", notInMessage: []string{long, long[:16]},
		},
		{
			name: "PARAM_ILLEGAL requestOrderId is a number",
			run: paramIllegal("application/json", func(string) string {
				return `{"requestId":"` + uid("req") + `","requestOrderId":8675309}`
			}),
			status: models.ResultStatusFailure, code: "PARAM_ILLEGAL", inMessage: "requestOrderId", notInMessage: []string{"8675309"},
		},
		{
			name: "PARAM_ILLEGAL unknown field",
			run: paramIllegal("application/json", func(id string) string {
				return `{"requestId":"` + uid("req") + `","requestOrderId":"` + id + `","sneaky":"s3cr3t-v4lue"}`
			}),
			status: models.ResultStatusFailure, code: "PARAM_ILLEGAL", notInMessage: []string{"s3cr3t-v4lue"},
		},
		{
			name: "PARAM_ILLEGAL malformed JSON",
			run: paramIllegal("application/json", func(id string) string {
				return `{"requestId":"m4lf0rmed-v4lue","requestOrderId":"` + id + `"`
			}),
			status: models.ResultStatusFailure, code: "PARAM_ILLEGAL", notInMessage: []string{"m4lf0rmed-v4lue"},
		},
		{
			// Not JSON either: one object followed by more bytes.
			name: "PARAM_ILLEGAL trailing data after the JSON object",
			run: paramIllegal("application/json", func(id string) string {
				return `{"requestId":"` + uid("req") + `","requestOrderId":"` + id + `"} tr41ling-v4lue`
			}),
			status: models.ResultStatusFailure, code: "PARAM_ILLEGAL", notInMessage: []string{"tr41ling-v4lue"},
		},
		{
			name:   "PARAM_ILLEGAL empty body",
			run:    paramIllegal("application/json", func(string) string { return "" }),
			status: models.ResultStatusFailure, code: "PARAM_ILLEGAL",
		},
		{
			name: "PARAM_ILLEGAL Content-Type text/plain",
			run: paramIllegal("text/plain", func(id string) string {
				return `{"requestId":"pl41n-t3xt-v4lue","requestOrderId":"` + id + `"}`
			}),
			status: models.ResultStatusFailure, code: "PARAM_ILLEGAL", notInMessage: []string{"pl41n-t3xt-v4lue"},
		},
		{
			// Identity comes first: without a Client-Id there is no key to
			// verify with, so the caller is refused before validation.
			name: "ACCESS_DENIED missing Client-Id header",
			run: func(t *testing.T, e *env) reply {
				id := e.newOrder(models.OrderStatusPreparing)
				r := e.call(opCompletion, completion(uid("req"), id), withoutHeader("Client-Id"))
				unchanged(t, e, id, models.OrderStatusPreparing)
				return r
			},
			status: models.ResultStatusFailure, code: "ACCESS_DENIED",
		},
		{
			name: "ORDER_NOT_EXIST",
			run: func(t *testing.T, e *env) reply {
				return e.call(opCompletion, completion(uid("req"), "n0-such-0rder-"+uid("order")))
			},
			status: models.ResultStatusFailure, code: "ORDER_NOT_EXIST", notInMessage: []string{"n0-such-0rder"},
		},
		finalStatus(models.OrderStatusCancelled),
		finalStatus(models.OrderStatusRejected),
		finalStatus(models.OrderStatusOrderFail),
		{
			name: "REPEAT_REQ_INCONSISTENT same requestId, other requestOrderId",
			run: func(t *testing.T, e *env) reply {
				a, b := e.newOrder(models.OrderStatusPreparing), e.newOrder(models.OrderStatusPreparing)
				rid := uid("req")
				e.call(opCompletion, completion(rid, a)).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
				r := e.call(opCompletion, completion(rid, b))
				unchanged(t, e, b, models.OrderStatusPreparing)
				return r
			},
			status: models.ResultStatusFailure, code: "REPEAT_REQ_INCONSISTENT",
		},
		{
			// NotifyOrderCompletionRequest has additionalProperties: false and
			// two fields: with the same requestId and requestOrderId no other
			// valid body exists. The same content written differently is the
			// same request: it replays the first answer, byte for byte.
			name: "SUCCESS same requestId, same order, same content reformatted",
			run: func(t *testing.T, e *env) reply {
				id, rid := e.newOrder(models.OrderStatusPreparing), uid("req")
				first := e.call(opCompletion, rawBody{"application/json", `{"requestId":"` + rid + `","requestOrderId":"` + id + `"}`})
				again := e.call(opCompletion, rawBody{"application/json", " {\n \"requestOrderId\" : \"" + id + "\",\t\"requestId\":\"" + rid + "\"}\n"})
				if string(again.body) != string(first.body) || again.header.Get("Response-Time") != first.header.Get("Response-Time") {
					t.Errorf("reformatted repeat was not a replay: first %v %q, again %v %q",
						first, first.header.Get("Response-Time"), again, again.header.Get("Response-Time"))
				}
				return again
			},
			status: models.ResultStatusSuccess, code: "SUCCESS",
		},
		{
			name: "UNKNOWN_EXCEPTION while the same request is in progress",
			run: func(t *testing.T, e *env) reply {
				id, rid := e.newOrder(models.OrderStatusPreparing), uid("req")
				body := mustJSON(t, models.NotifyOrderCompletionRequest{RequestID: rid, RequestOrderID: id})
				release := e.holdInProgress(store.Key{Op: "notifyOrderCompletion", RequestID: rid, Scope: store.ScopeOrder, ScopeID: id}, body)
				r := e.call(opCompletion, completion(rid, id))
				unchanged(t, e, id, models.OrderStatusPreparing)
				// Once the other request gives up, the retry is processed.
				release()
				e.call(opCompletion, completion(rid, id)).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
				unchanged(t, e, id, models.OrderStatusCompleted)
				return r
			},
			status: models.ResultStatusUnknown, code: "UNKNOWN_EXCEPTION",
		},
		{
			name: "UNKNOWN_EXCEPTION while Redis is down",
			own:  true, opts: []envOption{withDurableRedis()},
			run: func(t *testing.T, e *env) reply {
				id, rid := e.newOrder(models.OrderStatusPreparing), uid("req")
				e.redis.Stop()
				r := e.call(opCompletion, completion(rid, id))
				// Same service, Redis back (with its data): the retry is
				// processed afresh, so the U was not remembered.
				e.redis.Restart()
				e.call(opCompletion, completion(rid, id)).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
				unchanged(t, e, id, models.OrderStatusCompleted)
				return r
			},
			status: models.ResultStatusUnknown, code: "UNKNOWN_EXCEPTION",
		},
	})
}

func TestInquireOrderDetailResultCodes(t *testing.T) {
	long := strings.Repeat("L0ngV4lue", 29)[:256]
	runCodeCases(t, []codeCase{
		{
			name: "SUCCESS",
			run: func(t *testing.T, e *env) reply {
				id := e.newOrder(models.OrderStatusAccepted)
				r := e.call(opInquire, inquiry(id))
				var got models.InquireOrderDetailAnswer
				if err := json.Unmarshal(r.body, &got); err != nil {
					t.Fatal(err)
				}
				if got.PosOrderID == nil || *got.PosOrderID != "pos-"+id || got.OrderStatus == nil || *got.OrderStatus != models.OrderStatusAccepted {
					t.Errorf("inquire %s: %s", id, r.body)
				}
				return r
			},
			status: models.ResultStatusSuccess, code: "SUCCESS",
		},
		{
			name:   "PARAM_ILLEGAL missing requestOrderId",
			run:    func(t *testing.T, e *env) reply { return e.call(opInquire, rawBody{"application/json", `{}`}) },
			status: models.ResultStatusFailure, code: "PARAM_ILLEGAL", inMessage: "requestOrderId",
		},
		{
			name: "PARAM_ILLEGAL requestOrderId of 256 characters",
			run: func(t *testing.T, e *env) reply {
				return e.call(opInquire, rawBody{"application/json", `{"requestOrderId":"` + long + `"}`})
			},
			status: models.ResultStatusFailure, code: "PARAM_ILLEGAL", inMessage: "requestOrderId", notInMessage: []string{long, long[:16]},
		},
		{
			name: "PARAM_ILLEGAL requestOrderId is a number",
			run: func(t *testing.T, e *env) reply {
				return e.call(opInquire, rawBody{"application/json", `{"requestOrderId":4242424242}`})
			},
			status: models.ResultStatusFailure, code: "PARAM_ILLEGAL", inMessage: "requestOrderId", notInMessage: []string{"4242424242"},
		},
		{
			name: "SUCCESS with unknown fields (additionalProperties: true)",
			run: func(t *testing.T, e *env) reply {
				id := e.newOrder(models.OrderStatusPreparing)
				return e.call(opInquire, rawBody{"application/json", `{"requestOrderId":"` + id + `","merchantId":"m-1","extra":{"n":[1,2,3]}}`})
			},
			status: models.ResultStatusSuccess, code: "SUCCESS",
		},
		{
			name: "ORDER_NOT_EXIST",
			run: func(t *testing.T, e *env) reply {
				r := e.call(opInquire, inquiry("n0-such-0rder-"+uid("order")))
				var got map[string]any
				if err := json.Unmarshal(r.body, &got); err != nil {
					t.Fatal(err)
				}
				if len(got) != 1 {
					t.Errorf("on F only result is sent; got %s", r.body)
				}
				return r
			},
			status: models.ResultStatusFailure, code: "ORDER_NOT_EXIST", notInMessage: []string{"n0-such-0rder"},
		},
		{
			name: "UNKNOWN_EXCEPTION while Redis is down",
			own:  true, opts: []envOption{withDurableRedis()},
			run: func(t *testing.T, e *env) reply {
				id := e.newOrder(models.OrderStatusPreparing)
				e.redis.Stop()
				r := e.call(opInquire, inquiry(id))
				e.redis.Restart()
				e.call(opInquire, inquiry(id)).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
				return r
			},
			status: models.ResultStatusUnknown, code: "UNKNOWN_EXCEPTION",
		},
	})
}

func TestNotifyDeliveryAuditResultResultCodes(t *testing.T) {
	audit := func(rid, trade string, s models.DeliveryAuditStatus) models.NotifyDeliveryAuditResultRequest {
		return models.NotifyDeliveryAuditResultRequest{RequestID: rid, TradeID: trade, DeliveryBatchID: "B-1", DeliveryAuditStatus: s}
	}
	// noAudits fails if anything was recorded for trade.
	noAudits := func(t *testing.T, e *env, trade string) {
		t.Helper()
		if got := e.audits(trade); len(got) != 0 {
			t.Errorf("audits recorded for %s: %+v", trade, got)
		}
	}
	wantOnly := func(t *testing.T, e *env, trade string, want models.DeliveryAudit) {
		t.Helper()
		if diff := cmp.Diff([]models.DeliveryAudit{want}, e.audits(trade), cmpopts.IgnoreFields(models.DeliveryAudit{}, "ReceivedAt")); diff != "" {
			t.Errorf("audits of %s (-want +got):\n%s", trade, diff)
		}
	}
	long := strings.Repeat("T", 65)
	runCodeCases(t, []codeCase{
		{
			name: "SUCCESS",
			run: func(t *testing.T, e *env) reply {
				trade, rid := uid("trade"), uid("req")
				r := e.call(opAudit, audit(rid, trade, models.DeliveryAuditStatusReject))
				wantOnly(t, e, trade, models.DeliveryAudit{DeliveryBatchID: "B-1", DeliveryAuditStatus: models.DeliveryAuditStatusReject, RequestID: rid})
				return r
			},
			status: models.ResultStatusSuccess, code: "SUCCESS",
		},
		{
			name: "PARAM_ILLEGAL deliveryAuditStatus outside its enum",
			run: func(t *testing.T, e *env) reply {
				trade := uid("trade")
				r := e.call(opAudit, audit(uid("req"), trade, "MAYBE"))
				noAudits(t, e, trade)
				return r
			},
			status: models.ResultStatusFailure, code: "PARAM_ILLEGAL", inMessage: "deliveryAuditStatus", notInMessage: []string{"MAYBE"},
		},
		{
			name: "PARAM_ILLEGAL tradeId of 65 characters",
			run: func(t *testing.T, e *env) reply {
				return e.call(opAudit, audit(uid("req"), long, models.DeliveryAuditStatusAccept))
			},
			status: models.ResultStatusFailure, code: "PARAM_ILLEGAL", inMessage: "tradeId", notInMessage: []string{long, "TTTTTTTT"},
		},
		{
			name: "PARAM_ILLEGAL missing deliveryBatchId",
			run: func(t *testing.T, e *env) reply {
				trade := uid("trade")
				r := e.call(opAudit, rawBody{"application/json", `{"requestId":"` + uid("req") + `","tradeId":"` + trade + `","deliveryAuditStatus":"ACCEPT"}`})
				noAudits(t, e, trade)
				return r
			},
			status: models.ResultStatusFailure, code: "PARAM_ILLEGAL", inMessage: "deliveryBatchId",
		},
		{
			name: "REPEAT_REQ_INCONSISTENT same requestId, status changed",
			run: func(t *testing.T, e *env) reply {
				trade, rid := uid("trade"), uid("req")
				e.call(opAudit, audit(rid, trade, models.DeliveryAuditStatusAccept)).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
				r := e.call(opAudit, audit(rid, trade, models.DeliveryAuditStatusReject))
				wantOnly(t, e, trade, models.DeliveryAudit{DeliveryBatchID: "B-1", DeliveryAuditStatus: models.DeliveryAuditStatusAccept, RequestID: rid})
				return r
			},
			status: models.ResultStatusFailure, code: "REPEAT_REQ_INCONSISTENT",
		},
		{
			// The spec: unknown fields are ignored, and count towards the
			// request's identity.
			name: "REPEAT_REQ_INCONSISTENT same requestId, an unknown field added",
			run: func(t *testing.T, e *env) reply {
				trade, rid := uid("trade"), uid("req")
				first := audit(rid, trade, models.DeliveryAuditStatusAccept)
				e.call(opAudit, first).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
				first.Set("note", "resent")
				return e.call(opAudit, first)
			},
			status: models.ResultStatusFailure, code: "REPEAT_REQ_INCONSISTENT", notInMessage: []string{"resent"},
		},
		{
			name: "UNKNOWN_EXCEPTION while the same request is in progress",
			run: func(t *testing.T, e *env) reply {
				trade, rid := uid("trade"), uid("req")
				b := audit(rid, trade, models.DeliveryAuditStatusAccept)
				release := e.holdInProgress(store.Key{Op: "notifyDeliveryAuditResult", RequestID: rid, Scope: store.ScopeTrade, ScopeID: trade}, mustJSON(t, b))
				r := e.call(opAudit, b)
				noAudits(t, e, trade)
				release()
				e.call(opAudit, b).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
				wantOnly(t, e, trade, models.DeliveryAudit{DeliveryBatchID: "B-1", DeliveryAuditStatus: models.DeliveryAuditStatusAccept, RequestID: rid})
				return r
			},
			status: models.ResultStatusUnknown, code: "UNKNOWN_EXCEPTION",
		},
		{
			name: "UNKNOWN_EXCEPTION while Redis is down",
			own:  true, opts: []envOption{withDurableRedis()},
			run: func(t *testing.T, e *env) reply {
				trade, rid := uid("trade"), uid("req")
				b := audit(rid, trade, models.DeliveryAuditStatusAccept)
				e.redis.Stop()
				r := e.call(opAudit, b)
				e.redis.Restart()
				e.call(opAudit, b).wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
				wantOnly(t, e, trade, models.DeliveryAudit{DeliveryBatchID: "B-1", DeliveryAuditStatus: models.DeliveryAuditStatusAccept, RequestID: rid})
				return r
			},
			status: models.ResultStatusUnknown, code: "UNKNOWN_EXCEPTION",
		},
	})
}

func TestUnknownPathIsInvalidAPI(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/v2/pos/nope", "/v2/pds/order/notifyOrderChange", "/"} {
		t.Run(path, func(t *testing.T) {
			e := e.sub(t)
			r := e.raw(http.MethodPost, path, "application/json", []byte(`{"requestId":"x","requestOrderId":"y"}`))
			r.wantResult(t, http.StatusOK, models.ResultStatusFailure, "INVALID_API")
		})
	}
}

func TestNonPostMethodOnPartnerPathIs405(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{pathCompletion, pathInquire, pathAudit} {
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			t.Run(method+path, func(t *testing.T) {
				e := e.sub(t)
				r := e.raw(method, path, "application/json", nil)
				if r.status != http.StatusMethodNotAllowed {
					t.Errorf("HTTP %d, want 405: %v", r.status, r)
				}
				if got := r.header.Values("Allow"); !cmp.Equal(got, []string{"POST"}) {
					t.Errorf("Allow %q, want [POST]", got)
				}
				if res := r.result(t); res.ResultStatus != models.ResultStatusFailure || res.ResultCode == "" {
					t.Errorf("result %+v, want an F envelope", res)
				}
			})
		}
	}
}

func TestBodyOver64KiBIs413(t *testing.T) {
	e := newEnv(t)
	big := strings.Repeat("B1gV4lue", (64<<10)/8+1) // > 64 KiB on its own
	for _, path := range []string{pathCompletion, pathInquire, pathAudit} {
		t.Run(path, func(t *testing.T) {
			e := e.sub(t)
			body := `{"requestId":"` + big + `","requestOrderId":"x","tradeId":"t","deliveryBatchId":"b","deliveryAuditStatus":"ACCEPT"}`
			r := e.raw(http.MethodPost, path, "application/json", []byte(body))
			r.wantResult(t, http.StatusRequestEntityTooLarge, models.ResultStatusFailure, "PARAM_ILLEGAL", big[:32])
		})
	}
	// Exactly 64 KiB is still read (and judged on its content).
	t.Run("64KiB exactly", func(t *testing.T) {
		e := e.sub(t)
		prefix, suffix := `{"requestOrderId":"`, `"}`
		body := prefix + strings.Repeat("p", 64<<10-len(prefix)-len(suffix)) + suffix
		r := e.raw(http.MethodPost, pathInquire, "application/json", []byte(body))
		r.wantResult(t, http.StatusOK, models.ResultStatusFailure, "PARAM_ILLEGAL", "pppppppp")
	})
}

func TestOperatorAPIErrors(t *testing.T) {
	e := newEnv(t)
	type opsCase struct {
		name         string
		send         func(t *testing.T, e *env) reply
		httpStatus   int
		code         string
		notInMessage []string
	}
	put := func(id string, body string) func(t *testing.T, e *env) reply {
		return func(t *testing.T, e *env) reply {
			res, err := e.c.PutOrderWithBodyWithResponse(e.ctx(), id, "application/json", strings.NewReader(body), admin)
			if err != nil {
				t.Fatal(err)
			}
			return reply{res.StatusCode(), res.HTTPResponse.Header, res.Body}
		}
	}
	completed := e.newOrder(models.OrderStatusCompleted)
	fresh := uid("order")
	pad := strings.Repeat("p4dd1ng", 300)
	cases := []opsCase{
		{
			name: "401 without a token",
			send: func(t *testing.T, e *env) reply {
				res, err := e.c.GetOrderWithResponse(e.ctx(), completed)
				if err != nil {
					t.Fatal(err)
				}
				return reply{res.StatusCode(), res.HTTPResponse.Header, res.Body}
			},
			httpStatus: http.StatusUnauthorized, code: "ACCESS_DENIED",
		},
		{
			name: "401 with a wrong token",
			send: func(t *testing.T, e *env) reply {
				res, err := e.c.PutOrderWithResponse(e.ctx(), fresh, models.PutOrderRequest{PosOrderID: "p", OrderStatus: models.OrderStatusAccepted}, bearer("wr0ng-t0ken"))
				if err != nil {
					t.Fatal(err)
				}
				return reply{res.StatusCode(), res.HTTPResponse.Header, res.Body}
			},
			httpStatus: http.StatusUnauthorized, code: "ACCESS_DENIED", notInMessage: []string{"wr0ng-t0ken"},
		},
		{
			name: "401 on the audit list without a token",
			send: func(t *testing.T, e *env) reply {
				res, err := e.c.ListDeliveryAuditsWithResponse(e.ctx(), "T-1")
				if err != nil {
					t.Fatal(err)
				}
				return reply{res.StatusCode(), res.HTTPResponse.Header, res.Body}
			},
			httpStatus: http.StatusUnauthorized, code: "ACCESS_DENIED",
		},
		{
			name: "404 GET of an unknown order",
			send: func(t *testing.T, e *env) reply {
				res, err := e.c.GetOrderWithResponse(e.ctx(), "n0-such-0rder", admin)
				if err != nil {
					t.Fatal(err)
				}
				return reply{res.StatusCode(), res.HTTPResponse.Header, res.Body}
			},
			httpStatus: http.StatusNotFound, code: "ORDER_NOT_EXIST", notInMessage: []string{"n0-such-0rder"},
		},
		{
			name:       "409 COMPLETED → PREPARING",
			send:       put(completed, `{"posOrderId":"p","orderStatus":"PREPARING"}`),
			httpStatus: http.StatusConflict, code: "ORDER_STATUS_INVALID",
		},
		{
			name:       "400 orderStatus outside its enum",
			send:       put(fresh, `{"posOrderId":"p","orderStatus":"B0GUS_STATUS"}`),
			httpStatus: http.StatusBadRequest, code: "PARAM_ILLEGAL", notInMessage: []string{"B0GUS_STATUS"},
		},
		{
			name:       "400 extendInfo over 2048 characters",
			send:       put(fresh, `{"posOrderId":"p","orderStatus":"ACCEPTED","extendInfo":{"pad":"`+pad[:2040]+`"}}`),
			httpStatus: http.StatusBadRequest, code: "PARAM_ILLEGAL", notInMessage: []string{pad[:16]},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.send(t, e.sub(t)).wantResult(t, tc.httpStatus, models.ResultStatusFailure, tc.code, tc.notInMessage...)
		})
	}
	// The limit itself is allowed: 2048 characters serialised.
	t.Run("200 extendInfo of exactly 2048 characters", func(t *testing.T) {
		e := e.sub(t)
		info := `{"pad":"` + pad[:2048-len(`{"pad":""}`)] + `"}`
		if len(info) != 2048 {
			t.Fatalf("test bug: %d characters", len(info))
		}
		r := put(uid("order"), `{"posOrderId":"p","orderStatus":"ACCEPTED","extendInfo":`+info+`}`)(t, e)
		if r.status != http.StatusOK {
			t.Errorf("HTTP %d, want 200: %v", r.status, r)
		}
	})
	// None of the refused writes happened.
	if got := e.orderStatus(completed); got != models.OrderStatusCompleted {
		t.Errorf("completed order is %s after the refused writes", got)
	}
	res, err := e.c.GetOrderWithResponse(e.ctx(), fresh, admin)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode() != http.StatusNotFound {
		t.Errorf("order %s exists after only refused writes: HTTP %d %s", fresh, res.StatusCode(), res.Body)
	}
}

// RFC 9110 §15.5.6: a 405 response MUST carry Allow with the methods the
// resource supports.
func TestNonAllowedMethodOnOperatorPathIs405WithAllow(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		method, path string
		allow        []string
	}{
		{http.MethodDelete, "/ops/orders/o-1", []string{"GET", "PUT"}},
		{http.MethodPost, "/ops/orders/o-1", []string{"GET", "PUT"}},
		{http.MethodPut, "/ops/trades/t-1/deliveryAudits", []string{"GET"}},
	} {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			e := e.sub(t)
			req, err := http.NewRequestWithContext(e.ctx(), tc.method, e.srv.URL+tc.path, strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+adminToken)
			req.Header.Set("Content-Type", "application/json")
			res, err := e.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("HTTP %d, want 405", res.StatusCode)
			}
			var got []string
			for _, v := range res.Header.Values("Allow") {
				for _, m := range strings.Split(v, ",") {
					if m = strings.TrimSpace(m); m != "" && m != http.MethodOptions && m != http.MethodHead {
						got = append(got, m)
					}
				}
			}
			if diff := cmp.Diff(tc.allow, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("Allow %q (-want +got):\n%s", res.Header.Values("Allow"), diff)
			}
		})
	}
}
