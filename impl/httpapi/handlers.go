package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/generated/server"
	"github.com/orderhub/orderhub/impl/domain"
	"github.com/orderhub/orderhub/impl/store"
)

// handlers implements the contract's operations.
type handlers struct {
	st  store.Store
	now func() time.Time
}

var _ server.StrictServerInterface = (*handlers)(nil)

// NotifyOrderCompletion moves the order to COMPLETED. Its write is staged
// and committed by the idempotency middleware together with the answer.
func (h *handlers) NotifyOrderCompletion(ctx context.Context, req server.NotifyOrderCompletionRequestObject) (server.NotifyOrderCompletionResponseObject, error) {
	o, err := h.st.GetOrder(ctx, req.Body.RequestOrderID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, domain.ErrOrderNotExist
	}
	if err != nil {
		return nil, err
	}
	if !domain.CanMove(o.Status, domain.Completed) {
		return nil, domain.ErrOrderStatusInvalid
	}
	if o.Status != domain.Completed {
		o.Status, o.UpdatedAt = domain.Completed, h.now().UTC()
		if err := stage(ctx, store.PutOrderEffect{Order: o}); err != nil {
			return nil, err
		}
	}
	return server.NotifyOrderCompletion200JSONResponse{Body: models.NotifyOrderCompletionResponse{Result: success()}}, nil
}

// InquireOrderDetail answers D-Store with the order's current state.
func (h *handlers) InquireOrderDetail(ctx context.Context, req server.InquireOrderDetailRequestObject) (server.InquireOrderDetailResponseObject, error) {
	o, err := h.st.GetOrder(ctx, req.Body.RequestOrderID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, domain.ErrOrderNotExist
	}
	if err != nil {
		return nil, err
	}
	info, err := extendInfoOut(o.ExtendInfo)
	if err != nil {
		return nil, err
	}
	status := models.OrderStatus(o.Status)
	return server.InquireOrderDetail200JSONResponse{Body: models.InquireOrderDetailResponse{
		Result:      success(),
		PosOrderID:  &o.PosOrderID,
		OrderStatus: &status,
		ExtendInfo:  info,
	}}, nil
}

// NotifyDeliveryAuditResult records the audit result of a delivery batch.
func (h *handlers) NotifyDeliveryAuditResult(ctx context.Context, req server.NotifyDeliveryAuditResultRequestObject) (server.NotifyDeliveryAuditResultResponseObject, error) {
	b := req.Body
	err := stage(ctx, store.RecordAuditEffect{Audit: domain.Audit{
		TradeID:         b.TradeID,
		DeliveryBatchID: b.DeliveryBatchID,
		Status:          domain.AuditStatus(b.DeliveryAuditStatus),
		RequestID:       b.RequestID,
		ReceivedAt:      h.now().UTC(),
	}})
	if err != nil {
		return nil, err
	}
	return server.NotifyDeliveryAuditResult200JSONResponse{Body: models.NotifyDeliveryAuditResultResponse{Result: success()}}, nil
}

// PutOrder creates or updates an order under the journey rules.
func (h *handlers) PutOrder(ctx context.Context, req server.PutOrderRequestObject) (server.PutOrderResponseObject, error) {
	info, err := extendInfoIn(rawBody(ctx))
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
		o.PosOrderID, o.Status, o.ExtendInfo, o.UpdatedAt = req.Body.PosOrderID, domain.OrderStatus(req.Body.OrderStatus), info, now
		stored, err := h.st.PutOrder(ctx, o)
		if errors.Is(err, store.ErrConflict) && attempt < maxConflictRetries {
			continue // written meanwhile: judge the journey again on fresh state
		}
		if err != nil {
			return nil, err
		}
		out, err := orderOut(stored)
		if err != nil {
			return nil, err
		}
		return server.PutOrder200JSONResponse(out), nil
	}
}

// GetOrder reads an order.
func (h *handlers) GetOrder(ctx context.Context, req server.GetOrderRequestObject) (server.GetOrderResponseObject, error) {
	o, err := h.st.GetOrder(ctx, req.RequestOrderID)
	if err != nil {
		return nil, err
	}
	out, err := orderOut(o)
	if err != nil {
		return nil, err
	}
	return server.GetOrder200JSONResponse(out), nil
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

func orderOut(o domain.Order) (models.Order, error) {
	info, err := extendInfoOut(o.ExtendInfo)
	return models.Order{
		RequestOrderID: o.RequestOrderID,
		PosOrderID:     o.PosOrderID,
		OrderStatus:    models.OrderStatus(o.Status),
		ExtendInfo:     info,
		CreatedAt:      o.CreatedAt,
		UpdatedAt:      o.UpdatedAt,
	}, err
}

// extendInfoIn takes extendInfo from the raw (validated) body, compacted,
// so numbers stay exactly as written; it refuses more than 2048 characters.
func extendInfoIn(body []byte) (json.RawMessage, error) {
	var b struct {
		ExtendInfo json.RawMessage `json:"extendInfo"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, &paramError{"body: is not valid JSON"}
	}
	if len(b.ExtendInfo) == 0 || string(b.ExtendInfo) == "null" {
		return nil, nil
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, b.ExtendInfo); err != nil {
		return nil, err
	}
	if utf8.RuneCount(compact.Bytes()) > domain.MaxExtendInfo {
		return nil, domain.ErrExtendInfoTooLong
	}
	return compact.Bytes(), nil
}

// extendInfoOut decodes stored extendInfo with numbers kept as written.
func extendInfoOut(raw json.RawMessage) (*models.ExtendInfo, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var info models.ExtendInfo
	if err := d.Decode(&info); err != nil {
		return nil, err
	}
	return &info, nil
}
