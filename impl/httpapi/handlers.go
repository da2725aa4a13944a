package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/generated/server"
	"github.com/orderhub/orderhub/impl/domain"
	"github.com/orderhub/orderhub/impl/faults"
	"github.com/orderhub/orderhub/impl/ijson"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/openapi"
)

// handlers implements the contract's operations. A partner operation
// answers with an *answer: an idempotent one through runIdempotent, which
// stores it with its effect, the others through reply.
type handlers struct {
	st      store.Store
	now     func() time.Time
	seal    sealer
	idem    *idempotency
	catalog *openapi.Catalog
	faults  *faults.Rules // nil: faults are off
	// finalRetention is how long an order in a final status, or a trade's
	// audits, are kept after their last write (0: forever).
	finalRetention time.Duration
}

var _ server.StrictServerInterface = (*handlers)(nil)

// NotifyOrderCompletion moves the order to COMPLETED; idempotent on
// requestId, its write is committed with the answer.
func (h *handlers) NotifyOrderCompletion(ctx context.Context, req server.NotifyOrderCompletionRequestObject) (server.NotifyOrderCompletionResponseObject, error) {
	b := req.Body
	key := store.Key{RequestID: b.RequestID, Scope: store.ScopeOrder, ScopeID: b.RequestOrderID}
	a, err := runIdempotent(ctx, h.idem, key, func(ctx context.Context, orders orderReader) (models.NotifyOrderCompletionAnswer, store.Effect, error) {
		answer := models.NotifyOrderCompletionAnswer{Result: success()}
		o, err := orders.GetOrder(ctx, b.RequestOrderID)
		if err != nil {
			return answer, nil, err
		}
		if !domain.CanMove(o.Status, domain.Completed) {
			return answer, nil, domain.ErrOrderStatusInvalid
		}
		if o.Status == domain.Completed {
			return answer, nil, nil // converges: nothing to write
		}
		o.Status, o.UpdatedAt = domain.Completed, h.now().UTC()
		return answer, store.PutOrderEffect{Order: o, Retention: h.finalRetention}, nil
	})
	if err != nil {
		return nil, err // not a nil *answer in a non-nil interface
	}
	return a, nil
}

// NotifyOrderChange applies what the partner says changed in an order
// under the journey and refund rules (domain.Order.Apply); idempotent on
// requestId, its write is committed with the answer.
func (h *handlers) NotifyOrderChange(ctx context.Context, req server.NotifyOrderChangeRequestObject) (server.NotifyOrderChangeResponseObject, error) {
	b := req.Body
	change := domain.Change{
		ShortOrderNumber: b.ShortOrderNumber,
		ReadyTime:        b.OrderReadyTime,
		DeliveryStatus:   b.DeliveryStatus,
		Refunded:         amountIn(b.RefundAmount),
	}
	if b.OrderStatus != nil {
		s := domain.OrderStatus(*b.OrderStatus)
		change.Status = &s
	}
	if change.Empty() {
		return nil, &paramError{"body: names no change; send at least one of orderStatus, shortOrderNumber, orderReadyTime, deliveryStatus, refundAmount"}
	}
	key := store.Key{RequestID: b.RequestID, Scope: store.ScopeOrder, ScopeID: b.RequestOrderID}
	a, err := runIdempotent(ctx, h.idem, key, func(ctx context.Context, orders orderReader) (models.NotifyOrderChangeAnswer, store.Effect, error) {
		answer := models.NotifyOrderChangeAnswer{Result: success()}
		o, err := orders.GetOrder(ctx, b.RequestOrderID)
		if err != nil {
			return answer, nil, err
		}
		next, changed, err := o.Apply(change)
		if err != nil || !changed {
			return answer, nil, err // a refusal, or it converges: nothing to write
		}
		next.UpdatedAt = h.now().UTC()
		return answer, store.PutOrderEffect{Order: next, Retention: h.finalRetention}, nil
	})
	if err != nil {
		return nil, err // not a nil *answer in a non-nil interface
	}
	return a, nil
}

// InquireOrderDetail answers D-Store with the order's current state.
func (h *handlers) InquireOrderDetail(ctx context.Context, req server.InquireOrderDetailRequestObject) (server.InquireOrderDetailResponseObject, error) {
	o, err := h.st.GetOrder(ctx, req.Body.RequestOrderID)
	if err != nil {
		return nil, err
	}
	status := models.OrderStatus(o.Status)
	a, err := h.reply(ctx, models.InquireOrderDetailAnswer{
		Result:      success(),
		PosOrderID:  &o.PosOrderID,
		OrderStatus: &status,
		ExtendInfo:  extendInfoOut(o.ExtendInfo),
	})
	if err != nil {
		return nil, err // not a nil *answer in a non-nil interface
	}
	return a, nil
}

// NotifyDeliveryAuditResult records the audit result of a delivery batch;
// idempotent on requestId, its write is committed with the answer.
func (h *handlers) NotifyDeliveryAuditResult(ctx context.Context, req server.NotifyDeliveryAuditResultRequestObject) (server.NotifyDeliveryAuditResultResponseObject, error) {
	b := req.Body
	key := store.Key{RequestID: b.RequestID, Scope: store.ScopeTrade, ScopeID: b.TradeID}
	a, err := runIdempotent(ctx, h.idem, key, func(_ context.Context, _ orderReader) (models.NotifyDeliveryAuditResultAnswer, store.Effect, error) {
		return models.NotifyDeliveryAuditResultAnswer{Result: success()}, store.RecordAuditEffect{Audit: domain.Audit{
			TradeID:         b.TradeID,
			DeliveryBatchID: b.DeliveryBatchID,
			Status:          domain.AuditStatus(b.DeliveryAuditStatus),
			RequestID:       b.RequestID,
			ReceivedAt:      h.now().UTC(),
		}, Retention: h.finalRetention}, nil
	})
	if err != nil {
		return nil, err // not a nil *answer in a non-nil interface
	}
	return a, nil
}

// reply makes the signed S answer of a partner operation that is not
// idempotent. An idempotent one must answer through runIdempotent, which
// also spends its rate-limit quota: refused here, so that a handler cannot
// skip both.
func (h *handlers) reply(ctx context.Context, v any) (*answer, error) {
	f := factsFrom(ctx)
	if f.op.Idempotent {
		return nil, fmt.Errorf("reply: the contract makes %s idempotent: answer through runIdempotent", f.op.ID)
	}
	return h.seal.answer(f, http.StatusOK, success(), v)
}

// PutOrder creates or updates an order under the journey rules.
func (h *handlers) PutOrder(ctx context.Context, req server.PutOrderRequestObject) (server.PutOrderResponseObject, error) {
	info, err := extendInfoIn(req.Body.ExtendInfo)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		o, err := h.st.GetOrder(ctx, req.RequestOrderID)
		now := h.now().UTC()
		switch {
		case errors.Is(err, store.ErrNotFound):
			o = domain.Order{RequestOrderID: req.RequestOrderID, CreatedAt: now}
		case err != nil:
			return nil, err
		case !domain.CanMove(o.Status, domain.OrderStatus(req.Body.OrderStatus)):
			return nil, domain.ErrOrderStatusInvalid
		}
		b := req.Body
		o.PosOrderID, o.Status, o.ExtendInfo, o.UpdatedAt = b.PosOrderID, domain.OrderStatus(b.OrderStatus), info, now
		// PUT replaces: a field left out is cleared.
		o.ShortOrderNumber, o.ReadyTime, o.DeliveryStatus, o.Refunded = deref(b.ShortOrderNumber), b.OrderReadyTime, deref(b.DeliveryStatus), amountIn(b.RefundAmount)
		stored, err := h.st.PutOrderRetained(ctx, o, h.finalRetention)
		if errors.Is(err, store.ErrConflict) && attempt < maxConflictRetries {
			continue // written meanwhile: judge the journey again on fresh state
		}
		if err != nil {
			return nil, err
		}
		return server.PutOrder200JSONResponse(orderOut(stored)), nil
	}
}

// GetOrder reads an order.
func (h *handlers) GetOrder(ctx context.Context, req server.GetOrderRequestObject) (server.GetOrderResponseObject, error) {
	o, err := h.st.GetOrder(ctx, req.RequestOrderID)
	if err != nil {
		return nil, err
	}
	return server.GetOrder200JSONResponse(orderOut(o)), nil
}

// ListDeliveryAudits lists the latest audit result of every batch of a trade.
func (h *handlers) ListDeliveryAudits(ctx context.Context, req server.ListDeliveryAuditsRequestObject) (server.ListDeliveryAuditsResponseObject, error) {
	audits, err := h.st.ListAudits(ctx, req.TradeID)
	if err != nil {
		return nil, err
	}
	out := models.DeliveryAuditList{TradeID: req.TradeID, DeliveryAudits: make([]models.DeliveryAudit, len(audits))}
	for i, a := range audits {
		out.DeliveryAudits[i] = models.DeliveryAudit{
			DeliveryBatchID:     a.DeliveryBatchID,
			DeliveryAuditStatus: models.DeliveryAuditStatus(a.Status),
			RequestID:           a.RequestID,
			ReceivedAt:          a.ReceivedAt,
		}
	}
	return server.ListDeliveryAudits200JSONResponse(out), nil
}

func orderOut(o domain.Order) models.Order {
	out := models.Order{
		RequestOrderID: o.RequestOrderID,
		PosOrderID:     o.PosOrderID,
		OrderStatus:    models.OrderStatus(o.Status),
		ExtendInfo:     extendInfoOut(o.ExtendInfo),
		OrderReadyTime: o.ReadyTime,
		CreatedAt:      o.CreatedAt,
		UpdatedAt:      o.UpdatedAt,
	}
	if o.ShortOrderNumber != "" {
		out.ShortOrderNumber = &o.ShortOrderNumber
	}
	if o.DeliveryStatus != "" {
		out.DeliveryStatus = &o.DeliveryStatus
	}
	if r := o.Refunded; r != nil {
		out.RefundAmount = &models.Amount{Currency: r.Currency, Value: r.Value}
	}
	return out
}

// amountIn is the contract's amount as the domain's.
func amountIn(a *models.Amount) *domain.Amount {
	if a == nil {
		return nil
	}
	return &domain.Amount{Currency: a.Currency, Value: a.Value}
}

// extendInfoIn checks what the contract's schema cannot say of extendInfo:
// every number fits a float64 (others are not interoperable JSON: I-JSON,
// RFC 7493), and it is at most 2048 characters serialised.
func extendInfoIn(info *ijson.Object) (json.RawMessage, error) {
	if info == nil {
		return nil, nil
	}
	if p := ijson.Numbers(*info); p != nil {
		p.Path = append([]string{"extendInfo"}, p.Path...)
		return nil, &paramError{problemText(p)}
	}
	if info.Len() > domain.MaxExtendInfo {
		return nil, domain.ErrExtendInfoTooLong
	}
	return json.RawMessage(*info), nil
}

// extendInfoOut is the stored extendInfo as the contract's type.
func extendInfoOut(raw json.RawMessage) *ijson.Object {
	if len(raw) == 0 {
		return nil
	}
	info := ijson.Object(raw)
	return &info
}
