package contract

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/orderhub/orderhub/generated/client"
	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/store"
)

// lookup asks the operator API what orderhub answered (op, clientID,
// requestID).
func (e *env) lookup(op, clientID, requestID string, editors ...client.RequestEditorFn) *client.GetStoredAnswerHTTPResponse {
	e.t.Helper()
	if editors == nil {
		editors = []client.RequestEditorFn{admin}
	}
	res, err := e.c.GetStoredAnswerWithResponse(e.ctx(), &models.GetStoredAnswerParams{Operation: op, ClientID: clientID, RequestID: requestID}, editors...)
	if err != nil {
		e.t.Fatalf("getStoredAnswer: %v", err)
	}
	return res
}

// wantStored fails unless the lookup of (op, e's client, requestID) gives
// sent back: its status, its headers and its body, byte for byte.
func (e *env) wantStored(op, requestID string, sent reply) {
	e.t.Helper()
	res := e.lookup(op, e.clientID, requestID)
	if res.JSON200 == nil {
		e.t.Fatalf("getStoredAnswer %s %q: HTTP %d %s", op, requestID, res.StatusCode(), res.Body)
	}
	got := *res.JSON200
	want := models.StoredAnswer{
		Operation: op,
		ClientID:  e.clientID,
		RequestID: requestID,
		Status:    sent.status,
		Headers:   map[string]string{},
		Body:      sent.body,
	}
	for _, h := range []string{"Client-Id", "Content-Type", "Response-Time", "Signature"} {
		want.Headers[h] = sent.header.Get(h)
	}
	if diff := cmp.Diff(want, got, cmp.Transformer("text", func(b []byte) string { return string(b) })); diff != "" {
		e.t.Errorf("stored answer of %s %q (-sent +stored):\n%s", op, requestID, diff)
	}
}

// wantNotStored fails unless the lookup answers 404 ANSWER_NOT_EXIST.
func (e *env) wantNotStored(op, clientID, requestID string) {
	e.t.Helper()
	res := e.lookup(op, clientID, requestID)
	r := reply{res.StatusCode(), res.HTTPResponse.Header, res.Body}
	r.wantResult(e.t, http.StatusNotFound, models.ResultStatusFailure, "ANSWER_NOT_EXIST", requestID)
}

func TestStoredAnswerLookup(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []envOption
	}{
		{"redis", nil},
		{"memory", []envOption{withMemoryStore()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)

			t.Run("S", func(t *testing.T) {
				e := e.sub(t)
				id, rid := e.newOrder(models.OrderStatusReady), uid("req")
				sent := e.call(opCompletion, completion(rid, id))
				sent.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
				e.wantStored(opCompletion.id, rid, sent)
			})
			t.Run("F", func(t *testing.T) {
				e := e.sub(t)
				rid := uid("req")
				sent := e.call(opCompletion, completion(rid, uid("missing")))
				sent.wantResult(t, http.StatusOK, models.ResultStatusFailure, "ORDER_NOT_EXIST")
				e.wantStored(opCompletion.id, rid, sent)
			})
			t.Run("AnyVisibleRequestId", func(t *testing.T) {
				e := e.sub(t)
				rid := uid(`a&b=c/d?e%f#g:h{i}"j'k+l`)
				b := models.NotifyDeliveryAuditResultRequest{RequestID: rid, TradeID: uid("t:{x}"), DeliveryBatchID: "B-1", DeliveryAuditStatus: models.DeliveryAuditStatusReject}
				sent := e.call(opAudit, b)
				sent.wantResult(t, http.StatusOK, models.ResultStatusSuccess, "SUCCESS")
				e.wantStored(opAudit.id, rid, sent)
				// By operation: the same requestId of the other one is not it.
				e.wantNotStored(opCompletion.id, e.clientID, rid)
			})
			t.Run("NoneStored", func(t *testing.T) {
				e := e.sub(t)
				e.wantNotStored(opCompletion.id, e.clientID, uid("never-sent"))

				id, rid := e.newOrder(models.OrderStatusReady), uid("req")
				body := mustJSON(t, completion(rid, id))
				release := e.holdInProgress(store.Key{Op: opCompletion.id, RequestID: rid, Scope: store.ScopeOrder, ScopeID: id}, body)
				e.wantNotStored(opCompletion.id, e.clientID, rid) // in progress
				release()
				e.wantNotStored(opCompletion.id, e.clientID, rid) // freed, as after a U

				sent := e.call(opCompletion, completion(rid, id))
				e.wantStored(opCompletion.id, rid, sent)
				e.wantNotStored(opCompletion.id, uid("another-client"), rid)
			})
			t.Run("NotIdempotent", func(t *testing.T) {
				e := e.sub(t)
				for _, op := range []string{opInquire.id, "putOrder", "noSuchOperation"} {
					res := e.lookup(op, e.clientID, "r1")
					r := reply{res.StatusCode(), res.HTTPResponse.Header, res.Body}
					got := r.wantResult(t, http.StatusBadRequest, models.ResultStatusFailure, "PARAM_ILLEGAL")
					if want := "one of " + strings.Join(idempotentOps(t), ", "); !strings.Contains(got.ResultMessage, want) {
						t.Errorf("operation %q: resultMessage %q does not list %q", op, got.ResultMessage, want)
					}
				}
				// The contract's own bounds, checked before the handler.
				res := e.lookup(opAudit.id, e.clientID, strings.Repeat("r", 256))
				reply{res.StatusCode(), res.HTTPResponse.Header, res.Body}.wantResult(t, http.StatusBadRequest, models.ResultStatusFailure, "PARAM_ILLEGAL")
			})
			t.Run("Token", func(t *testing.T) {
				e := e.sub(t)
				res := e.lookup(opAudit.id, e.clientID, "r1", bearer("wrong"))
				reply{res.StatusCode(), res.HTTPResponse.Header, res.Body}.wantResult(t, http.StatusUnauthorized, models.ResultStatusFailure, "ACCESS_DENIED")
			})
		})
	}
}

// An answer is looked up for as long as it is replayed: the idempotency
// retention, on the service's clock.
func TestStoredAnswerExpires(t *testing.T) {
	clock := newManualClock()
	e := newEnv(t, withMemoryStore(), withManualClock(clock), withRetention(time.Hour, 2*time.Hour))
	id, rid := e.newOrder(models.OrderStatusReady), uid("req")
	sent := e.call(opCompletion, completion(rid, id))
	clock.Advance(time.Hour - time.Second)
	e.wantStored(opCompletion.id, rid, sent)
	clock.Advance(time.Second)
	e.wantNotStored(opCompletion.id, e.clientID, rid)
}
