package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/generated/server"
	"github.com/orderhub/orderhub/impl/domain"
	"github.com/orderhub/orderhub/impl/ratelimit"
	"github.com/orderhub/orderhub/impl/store"
)

// maxConflictRetries bounds how often a notification is re-run when the
// order it changes was written by someone else between read and commit.
const maxConflictRetries = 3

// idempotentOp describes an idempotent operation to the middleware.
type idempotentOp struct {
	// id is the contract's operationId, the Op of the key.
	id string
	// key derives the request's idempotency key (without the caller) from
	// the typed request.
	key func(request any) store.Key
	// write renders the handler's typed response.
	write func(response any, w http.ResponseWriter) error
}

// idempotentOps is keyed by the names the strict server gives its
// middlewares (the Go method names).
func idempotentOps() map[string]idempotentOp {
	return map[string]idempotentOp{
		"NotifyOrderCompletion": {
			id: "notifyOrderCompletion",
			key: func(r any) store.Key {
				b := r.(server.NotifyOrderCompletionRequestObject).Body
				return store.Key{RequestID: b.RequestID, Scope: store.ScopeOrder, ScopeID: b.RequestOrderID}
			},
			write: func(r any, w http.ResponseWriter) error {
				return r.(server.NotifyOrderCompletionResponseObject).VisitNotifyOrderCompletionResponse(w)
			},
		},
		"NotifyDeliveryAuditResult": {
			id: "notifyDeliveryAuditResult",
			key: func(r any) store.Key {
				b := r.(server.NotifyDeliveryAuditResultRequestObject).Body
				return store.Key{RequestID: b.RequestID, Scope: store.ScopeTrade, ScopeID: b.TradeID}
			},
			write: func(r any, w http.ResponseWriter) error {
				return r.(server.NotifyDeliveryAuditResultResponseObject).VisitNotifyDeliveryAuditResultResponse(w)
			},
		},
	}
}

// storedResponse is a final answer as remembered, replayed verbatim.
type storedResponse struct {
	Status int         `json:"status"`
	Header http.Header `json:"header"`
	Body   []byte      `json:"body"`
}

// idempotency makes the notifications idempotent on (operation, Client-Id,
// requestId): the first request runs and its final answer (S or F) is stored
// together with its effect, atomically; repeats get that answer byte for byte.
//
// A notification spends rate-limit quota (lim, nil: none) only when it is to
// run: a repeat of a final answer is replayed whatever the limits, so a
// partner whose S was lost on the way never gets a final F for it instead.
func idempotency(st store.Store, seal sealFunc, lease, retention time.Duration, lim ratelimit.Limiter, log *slog.Logger, outcomes *prometheus.CounterVec) server.StrictMiddlewareFunc {
	ops := idempotentOps()
	return func(next server.StrictHandlerFunc, name string) server.StrictHandlerFunc {
		op, ok := ops[name]
		if !ok {
			return next
		}
		return func(c echo.Context, request any) (any, error) {
			ctx := c.Request().Context()
			k := op.key(request)
			k.Op, k.ClientID = op.id, c.Request().Header.Get("Client-Id")
			factsOf(c).partnerID = k.RequestID
			fp, err := fingerprint(rawBody(ctx))
			if err != nil {
				return nil, err
			}
			begun, err := st.Begin(ctx, k, fp, lease)
			if err != nil {
				return nil, fmt.Errorf("idempotency begin: %w", err)
			}
			count := func(outcome string) { outcomes.WithLabelValues(op.id, outcome).Inc() }
			switch begun.State {
			case store.Done:
				count("replay")
				return nil, replay(c, begun.Response)
			case store.Mismatch:
				count("mismatch")
				return nil, domain.ErrRepeatReqInconsistent
			case store.InProgress:
				count("in_progress")
				return nil, domain.ErrInProgress
			}
			count("new")
			t := &txn{seal: seal, st: st, key: k, token: begun.Token, retention: retention, conflicts: func() { count("version_conflict") }}
			stored := false
			defer func() {
				// Nothing was stored (an error, or a panic on its way to the
				// recover middleware): free the requestId so the retry runs.
				// Not the request's context: it may be what failed.
				if !stored {
					if rerr := release(ctx, st, k, t.token); rerr != nil {
						log.WarnContext(ctx, "idempotency release", "err", rerr)
					}
				}
			}()
			if err := limit(ctx, lim, k.ClientID); err != nil {
				return nil, err // refused: nothing stored, the requestId is freed
			}
			err = t.run(c, request, next, op.write)
			stored = err == nil
			return nil, err
		}
	}
}

// releaseTimeout bounds a release. It runs after the request's own deadline
// may have passed (that may be what failed), so it cannot use it; the lease
// frees the requestId anyway when a release does not get through.
const releaseTimeout = 2 * time.Second

// release frees k's requestId for the retry, on a context of its own.
func release(ctx context.Context, st store.Store, k store.Key, token string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	return st.Release(ctx, k, token)
}

// txn is one started idempotent request.
type txn struct {
	seal      sealFunc
	st        store.Store
	key       store.Key
	token     string
	retention time.Duration
	conflicts func() // counts a re-run after a concurrent change
}

// run executes the handler with the response held back, seals and stores a
// final answer with the handler's effect, and only then sends it. An error
// return means nothing was stored (and nothing was sent).
func (t *txn) run(c echo.Context, request any, next server.StrictHandlerFunc, write func(any, http.ResponseWriter) error) error {
	ctx := c.Request().Context()
	for attempt := 0; ; attempt++ {
		eff := &effectSlot{}
		c.SetRequest(c.Request().WithContext(context.WithValue(ctx, effectKey{}, eff)))
		var failed error
		rec := capture(c, func() {
			resp, err := next(c, request)
			if err == nil {
				err = write(resp, c.Response())
			}
			if err == nil {
				return
			}
			if o, known := outcomeOf(err); known && o.status == models.ResultStatusFailure {
				c.Error(err) // a final answer: rendered, stored, replayed
				return
			}
			failed = err
		})
		c.SetRequest(c.Request().WithContext(ctx))
		if failed != nil {
			return failed
		}
		if r, _ := resultOf(rec.Body); r.ResultStatus != models.ResultStatusSuccess && r.ResultStatus != models.ResultStatusFailure {
			// U is never stored: send it and let the retry run afresh.
			if err := release(ctx, t.st, t.key, t.token); err != nil {
				return err
			}
			return flush(c, rec)
		}
		rec.Header.Del(echo.HeaderXRequestID) // each request has its own
		// Sealed now, so that replays send this very signature.
		if err := t.seal(c.Request(), rec.Header, rec.Body); err != nil {
			return err
		}
		stored, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		err = t.st.Commit(ctx, t.key, t.token, stored, t.retention, eff.effect)
		if errors.Is(err, store.ErrConflict) && attempt < maxConflictRetries {
			t.conflicts()
			continue
		}
		if err != nil {
			return fmt.Errorf("idempotency commit: %w", err)
		}
		return flush(c, rec)
	}
}

// capture runs fn with the response written to memory and returns what fn
// wrote; the real response is untouched until flush.
func capture(c echo.Context, fn func()) storedResponse {
	res := c.Response()
	orig := res.Writer
	buf := &bufferedWriter{header: http.Header{}, status: http.StatusOK}
	res.Writer = buf
	defer func() {
		res.Writer = orig
		res.Committed, res.Size, res.Status = false, 0, http.StatusOK
	}()
	fn()
	return storedResponse{Status: buf.status, Header: buf.header, Body: buf.body.Bytes()}
}

// flush sends a captured or stored response.
func flush(c echo.Context, r storedResponse) error {
	noteResult(c, r.Body)
	res := c.Response()
	for k, v := range r.Header {
		res.Header()[k] = v
	}
	// The request id is this request's, never a stored answer's (nor the
	// empty one the generated responses write).
	res.Header().Set(echo.HeaderXRequestID, factsOf(c).requestID)
	res.WriteHeader(r.Status)
	_, err := res.Write(r.Body)
	return err
}

func replay(c echo.Context, raw []byte) error {
	var r storedResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("decoding a stored response: %w", err)
	}
	return flush(c, r)
}

type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bufferedWriter) Header() http.Header         { return w.header }
func (w *bufferedWriter) Write(b []byte) (int, error) { return w.body.Write(b) }
func (w *bufferedWriter) WriteHeader(status int)      { w.status = status }

// resultOf reads the result object of a response body; ok is false when
// the body has none (operator answers, service endpoints).
func resultOf(body []byte) (r models.Result, ok bool) {
	var doc struct {
		Result *models.Result `json:"result"`
	}
	if json.Unmarshal(body, &doc) != nil || doc.Result == nil {
		return models.Result{}, false
	}
	return *doc.Result, true
}

// fingerprint hashes the canonical form of a JSON body: the same content
// gets the same fingerprint whatever its spacing or key order.
func fingerprint(body []byte) (string, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber() // keep numbers as written: no float rounding
	var v any
	if err := d.Decode(&v); err != nil {
		return "", &paramError{"body: is not valid JSON"}
	}
	canon, err := json.Marshal(v) // map keys come out sorted
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:]), nil
}

// effectKey carries the effect slot of an idempotent request in its context.
type effectKey struct{}

type effectSlot struct{ effect store.Effect }

// stage records the write a handler wants; the idempotency middleware
// commits it together with the answer. It fails outside that middleware,
// so a write can never happen without its record.
func stage(ctx context.Context, e store.Effect) error {
	slot, ok := ctx.Value(effectKey{}).(*effectSlot)
	if !ok {
		return errors.New("stage: no idempotent request in context")
	}
	slot.effect = e
	return nil
}
