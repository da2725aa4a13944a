// Package domain holds orderhub's business facts: orders and their journey,
// delivery audits, and the errors the business rules produce. It knows
// nothing of HTTP or storage.
package domain

import (
	"encoding/json"
	"errors"
	"time"
)

// OrderStatus is a D-Store order status.
type OrderStatus string

// The D-Store order statuses.
const (
	OrderSuccess OrderStatus = "ORDER_SUCCESS"
	Accepted     OrderStatus = "ACCEPTED"
	Preparing    OrderStatus = "PREPARING"
	Ready        OrderStatus = "READY"
	Completed    OrderStatus = "COMPLETED"
	Cancelled    OrderStatus = "CANCELLED"
	Rejected     OrderStatus = "REJECTED"
	OrderFail    OrderStatus = "ORDER_FAIL"
)

// Errors of the business rules; the HTTP layer maps each to a result code.
var (
	ErrOrderStatusInvalid = errors.New("order status does not allow this change")
	ErrExtendInfoTooLong  = errors.New("extendInfo exceeds 2048 characters")
)

// MaxExtendInfo is the longest extendInfo, serialised as JSON.
const MaxExtendInfo = 2048

// Order is a D-Store order as the POS provider knows it.
type Order struct {
	RequestOrderID string          `json:"requestOrderId"`
	PosOrderID     string          `json:"posOrderId"`
	Status         OrderStatus     `json:"orderStatus"`
	ExtendInfo     json.RawMessage `json:"extendInfo,omitempty"`
	// What the POS tells the platform besides the status (notifyOrderChange).
	ShortOrderNumber string     `json:"shortOrderNumber,omitempty"`
	ReadyTime        *time.Time `json:"orderReadyTime,omitempty"` // with the offset it was given in
	DeliveryStatus   string     `json:"deliveryStatus,omitempty"`
	Refunded         *Amount    `json:"refundAmount,omitempty"` // the refund total so far
	CreatedAt        time.Time  `json:"createdAt"`
	UpdatedAt        time.Time  `json:"updatedAt"`
	// Version counts the writes of the order: 0 means never stored. Stores
	// use it for optimistic concurrency.
	Version int64 `json:"version"`
}

// AuditStatus is a WorldTrade delivery audit result.
type AuditStatus string

// The delivery audit results.
const (
	AuditAccept AuditStatus = "ACCEPT"
	AuditReject AuditStatus = "REJECT"
)

// Audit is the latest audit result of one delivery batch of a trade.
type Audit struct {
	TradeID         string      `json:"tradeId"`
	DeliveryBatchID string      `json:"deliveryBatchId"`
	Status          AuditStatus `json:"deliveryAuditStatus"`
	RequestID       string      `json:"requestId"`
	ReceivedAt      time.Time   `json:"receivedAt"`
}
