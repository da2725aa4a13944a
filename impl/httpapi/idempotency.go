package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/domain"
	"github.com/orderhub/orderhub/impl/ijson"
	"github.com/orderhub/orderhub/impl/ratelimit"
	"github.com/orderhub/orderhub/impl/store"
)

// maxConflictRetries bounds how often a notification is re-run when the
// order it changes was written by someone else between read and commit.
const maxConflictRetries = 3

// idempotency runs the idempotent notifications on (operation, Client-Id,
// requestId): the first request runs, and its final answer (S or F) is
// signed and stored together with its effect, atomically, before it is
// sent; repeats get that answer byte for byte.
//
// A notification spends rate-limit quota (limiter, nil: none) only when it
// is to run: a repeat of a final answer is replayed whatever the limits, so
// a partner whose S was lost on the way never gets a final F for it instead.
type idempotency struct {
	st        store.Store
	seal      sealer
	lease     time.Duration
	retention time.Duration
	limiter   ratelimit.Limiter
	log       *slog.Logger
	outcomes  *prometheus.CounterVec
}

// work is an idempotent handler's own part: the typed answer, and the
// effect to commit with it (nil: none). A failure is an error, which the
// error table renders; a final one (F) is stored like an answer. work may
// run more than once: again when the entity changed before the commit. It
// reads orders through orders, which saves the round trip Begin made.
type work[T any] func(ctx context.Context, orders orderReader) (T, store.Effect, error)

// orderReader reads orders for a notification's work.
type orderReader interface {
	GetOrder(ctx context.Context, requestOrderID string) (domain.Order, error)
}

// firstRead serves the order Begin read with the claim, in the same round
// trip, to the work's first read of it; a re-run after a conflict reads
// afresh from the store.
type firstRead struct {
	st    store.Store
	id    string        // the order Begin read ("": none, a trade's key)
	order *domain.Order // as Begin found it (nil: no such order)
}

func (r *firstRead) GetOrder(ctx context.Context, requestOrderID string) (domain.Order, error) {
	if r.id == "" || requestOrderID != r.id {
		return r.st.GetOrder(ctx, requestOrderID)
	}
	r.id = "" // served once
	if r.order == nil {
		return domain.Order{}, store.ErrNotFound
	}
	return *r.order, nil
}

// runIdempotent answers the request ctx carries, whose idempotency key
// (requestId and the entity it acts on) is key, with do's answer or the
// stored one. An error return means nothing was stored and the requestId
// is free again, but for store.ErrNotReplicated: the answer is stored, not
// yet on enough replicas, and the retry replays it once they have it.
func runIdempotent[T any](ctx context.Context, r *idempotency, key store.Key, do work[T]) (*answer, error) {
	f := factsFrom(ctx)
	if !f.op.Idempotent {
		return nil, fmt.Errorf("idempotency: the contract does not make %s idempotent", f.operationID())
	}
	key.Op, key.ClientID = f.op.ID, f.clientID
	f.partnerID = key.RequestID
	fp, err := ijson.Fingerprint(f.body)
	if err != nil {
		return nil, &paramError{"body: is not valid JSON"}
	}
	begun, err := r.st.Begin(ctx, key, fp, r.lease)
	if err != nil {
		return nil, fmt.Errorf("idempotency begin: %w", err)
	}
	count := func(outcome string) { r.outcomes.WithLabelValues(key.Op, outcome).Inc() }
	note := func(outcome string) { count(outcome); f.idem = outcome } // for the log line too
	switch begun.State {
	case store.Done:
		note("replay")
		return replay(f, begun.Response)
	case store.Mismatch:
		note("mismatch")
		return nil, store.ErrRequestMismatch
	case store.InProgress:
		note("in_progress")
		return nil, store.ErrInProgress
	}
	note("new")
	stored := false
	defer func() {
		// Nothing was stored (an error, or a panic on its way to the
		// recover middleware): free the requestId so the retry runs. A
		// commit short of replicas stored its record: Release leaves a
		// done record alone.
		if !stored {
			if err := release(ctx, r.st, key, begun.Token); err != nil {
				r.log.WarnContext(ctx, "idempotency release", "err", err)
			}
		}
	}()
	if err := limit(ctx, r.limiter, key.ClientID); err != nil {
		return nil, err // refused: nothing stored, the requestId is freed
	}
	reads := &firstRead{st: r.st}
	if key.Scope == store.ScopeOrder {
		reads.id, reads.order = key.ScopeID, begun.Order
	}
	for attempt := 0; ; attempt++ {
		a, effect, err := final(ctx, r.seal, f, do, reads)
		if err != nil {
			return nil, err // U: never stored, the retry runs afresh
		}
		record, err := json.Marshal(a)
		if err != nil {
			return nil, err
		}
		err = r.st.Commit(ctx, key, begun.Token, record, r.retention, effect)
		if errors.Is(err, store.ErrConflict) && attempt < maxConflictRetries {
			count("version_conflict")
			continue // written meanwhile: judge again on fresh state
		}
		if err != nil {
			return nil, fmt.Errorf("idempotency commit: %w", err)
		}
		stored = true
		return a, nil
	}
}

// final runs do and makes its final answer, S or F, signed now so that
// replays send this very signature. Any other outcome is an error. An F
// answer changes nothing: its effect is dropped.
func final[T any](ctx context.Context, seal sealer, f *facts, do work[T], orders orderReader) (*answer, store.Effect, error) {
	v, effect, err := do(ctx, orders)
	status, result, body := http.StatusOK, success(), any(v)
	if err != nil {
		o, known := outcomeOf(err)
		if !known || !o.final() {
			return nil, nil, err
		}
		status, result, body, effect = o.partnerHTTP, o.result, models.ErrorResponse{Result: o.result}, nil
	}
	a, err := seal.answer(f, status, result, body)
	return a, effect, err
}

// replay sends a stored answer again. Its result, for the log line and the
// metrics, is read from the stored body: the record is the answer as sent,
// nothing more.
func replay(f *facts, record []byte) (*answer, error) {
	var a answer
	if err := json.Unmarshal(record, &a); err != nil {
		return nil, fmt.Errorf("decoding a stored answer: %w", err)
	}
	var sent models.ErrorResponse // the result, whatever else the body holds
	if json.Unmarshal(a.Body, &sent) == nil {
		f.noteResult(sent.Result)
	}
	return &a, nil
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
