// Package store keeps orderhub's state: orders, delivery audits and the
// idempotency records of the notifications. Redis is production; Memory is
// the embedded default. Both pass the same behaviour suite (storetest).
//
// An idempotency record lives in the hash slot of the entity its effect
// touches (Scope), so that the effect and the completion of the record are
// one atomic script even on Redis Cluster. A second, write-once claim in the
// requestId's own slot binds the requestId to the body's fingerprint, so a
// requestId reused for another entity is still caught; the claim also names
// the entity, so that a stored answer can be found by requestId alone.
//
// Entities in a final state expire: an order whose status is final lives for
// the retention its last write gave it, a trade's audits for the retention of
// the last audit written, and never less than any answer stored about them
// (Commit), so that no stored answer outlives what it speaks of.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/orderhub/orderhub/impl/domain"
)

// Errors of the store. Anything else a store returns is an infrastructure
// fault (the caller answers U and the client retries).
var (
	// ErrNotFound: no such order.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: the order's version is not the expected one (someone
	// wrote it since it was read); read again and retry.
	ErrConflict = errors.New("store: version conflict")
	// ErrLeaseLost: the idempotency record is no longer held with this
	// token (its lease expired and another request took it over).
	ErrLeaseLost = errors.New("store: idempotency lease lost")

	// The idempotency protocol's answers to a Begin that cannot start:
	// ErrRequestMismatch for Mismatch (the requestId was used with another
	// body: final), ErrInProgress for InProgress (retry later).
	ErrRequestMismatch = errors.New("store: requestId reused with a different body")
	ErrInProgress      = errors.New("store: the same requestId is being processed")

	// ErrNoAnswer: no answer is stored for the request (never answered,
	// still in progress, answered U, or expired).
	ErrNoAnswer = errors.New("store: no answer stored")

	// ErrNotReplicated: fewer replicas than the store requires (Redis
	// MinReplicas) acknowledged a commit, or a replay's confirmation, in
	// time. The record is stored but unconfirmed: the caller answers U,
	// and the retry replays the answer once the replicas have it, or runs
	// afresh if a failover lost the record.
	ErrNotReplicated = errors.New("store: not acknowledged by enough replicas in time")
)

// Store is everything orderhub persists.
type Store interface {
	// GetOrder returns the order, or ErrNotFound.
	GetOrder(ctx context.Context, requestOrderID string) (domain.Order, error)
	// PutOrder stores o if the stored version equals o.Version (0: the order
	// must not exist yet), else ErrConflict. It returns the order as stored,
	// with Version incremented. The order never expires: PutOrderRetained
	// with retention 0.
	PutOrder(ctx context.Context, o domain.Order) (domain.Order, error)
	// PutOrderRetained is PutOrder for an order that, once its status is
	// final, expires retention after this write (0: never), or later when a
	// stored answer about it lives longer; a non-final order never expires.
	PutOrderRetained(ctx context.Context, o domain.Order, retention time.Duration) (domain.Order, error)
	// ListAudits returns the audits of a trade ordered by DeliveryBatchID;
	// empty (not an error) when there are none.
	ListAudits(ctx context.Context, tradeID string) ([]domain.Audit, error)

	// Begin starts processing the request identified by k whose canonical
	// body hashes to fingerprint. In one round trip it binds k's requestId to
	// the fingerprint and creates an in-progress record held for lease.
	// A stored answer whose replication is unconfirmed is confirmed before
	// it is returned (Done), or ErrNotReplicated.
	Begin(ctx context.Context, k Key, fingerprint string, lease time.Duration) (Begun, error)
	// Commit applies the effect (nil: none) and completes the record with
	// the response, atomically; the record then lives for retention (0:
	// forever), and the entity of k's scope, when it exists, at least as
	// long: the answer speaks of it. ErrLeaseLost when token no longer
	// holds the record; ErrConflict when a PutOrder effect's expected
	// version does not match (nothing is written then, and the record stays
	// in progress); ErrNotReplicated when all is written but too few
	// replicas acknowledged it (the record is done, unconfirmed).
	Commit(ctx context.Context, k Key, token string, response []byte, retention time.Duration, effect Effect) error
	// Release drops an in-progress record held with token, so that a retry
	// is processed afresh. Releasing a record not held with token is a no-op.
	Release(ctx context.Context, k Key, token string) error
	// Answer returns the response Commit stored for the request (op,
	// clientID, requestID), whatever entity it named, or ErrNoAnswer.
	Answer(ctx context.Context, op, clientID, requestID string) ([]byte, error)

	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's connections.
	Close() error
}

// ScopeKind names the kind of entity an idempotent request acts on.
type ScopeKind string

// The scopes of the idempotent operations.
const (
	ScopeOrder ScopeKind = "o" // ID is a requestOrderId
	ScopeTrade ScopeKind = "t" // ID is a tradeId
)

// Key identifies an idempotent request: operation, caller and requestId,
// plus the entity its effect acts on.
type Key struct {
	Op        string
	ClientID  string
	RequestID string
	Scope     ScopeKind
	ScopeID   string
}

// BeginState is what Begin found.
type BeginState int

// The outcomes of Begin.
const (
	// Started: the caller holds a new in-progress record (Begun.Token).
	Started BeginState = iota + 1
	// InProgress: another request holds the record.
	InProgress
	// Done: the request was answered before; Begun.Response is the answer.
	Done
	// Mismatch: the requestId was used with a different fingerprint.
	Mismatch
)

func (s BeginState) String() string {
	switch s {
	case Started:
		return "started"
	case InProgress:
		return "in progress"
	case Done:
		return "done"
	case Mismatch:
		return "mismatch"
	}
	return "unknown"
}

// Begun is the result of Begin.
type Begun struct {
	State    BeginState
	Token    string // with Started
	Response []byte // with Done: exactly the bytes given to Commit
	// Order is, with Started on a ScopeOrder key, the order as Begin found
	// it in the same round trip (nil: no such order), so that the work
	// needs no read of its own; its Version guards the commit as a fresh
	// read's would.
	Order *domain.Order
}

// Effect is a business write committed together with an idempotency record:
// PutOrderEffect or RecordAuditEffect.
type Effect interface{ effect() }

// PutOrderEffect stores Order if the stored version equals Order.Version,
// as PutOrderRetained does with Retention. Its RequestOrderID must be the
// key's ScopeID (ScopeOrder).
type PutOrderEffect struct {
	Order domain.Order
	// Retention is how long the order lives after this write once its
	// status is final (0: forever).
	Retention time.Duration
}

// RecordAuditEffect records Audit as the latest result of its delivery
// batch. Its TradeID must be the key's ScopeID (ScopeTrade).
type RecordAuditEffect struct {
	Audit domain.Audit
	// Retention is how long the trade's audits live after this write (0:
	// forever).
	Retention time.Duration
}

func (PutOrderEffect) effect()    {}
func (RecordAuditEffect) effect() {}
