package store

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/orderhub/orderhub/impl/domain"
)

// Checks and helpers both stores share, so that they reject the same calls.

// checkLease rejects leases that would expire at once (Redis PX needs ≥ 1 ms).
func checkLease(lease time.Duration) error {
	if lease < time.Millisecond {
		return fmt.Errorf("store: lease %v is shorter than 1ms", lease)
	}
	return nil
}

// checkRetention rejects negative retentions; 0 means forever.
func checkRetention(retention time.Duration) error {
	if retention < 0 {
		return fmt.Errorf("store: negative retention %v", retention)
	}
	return nil
}

// checkEffect makes sure the effect writes the entity whose slot the record
// lives in: on Redis Cluster anything else could not be one atomic script,
// and a mistaken caller must not write some other order. An order must
// also be storable (checkOrder), and retentions not negative.
func checkEffect(k Key, e Effect) error {
	switch e := e.(type) {
	case nil:
		return nil
	case PutOrderEffect:
		if k.Scope != ScopeOrder || e.Order.RequestOrderID != k.ScopeID {
			return fmt.Errorf("store: order effect for %q under key scope %s:%q", e.Order.RequestOrderID, k.Scope, k.ScopeID)
		}
		if err := checkRetention(e.Retention); err != nil {
			return err
		}
		return checkOrder(e.Order)
	case RecordAuditEffect:
		if k.Scope != ScopeTrade || e.Audit.TradeID != k.ScopeID {
			return fmt.Errorf("store: audit effect for trade %q under key scope %s:%q", e.Audit.TradeID, k.Scope, k.ScopeID)
		}
		return checkRetention(e.Retention)
	default:
		return fmt.Errorf("store: unknown effect %T", e)
	}
}

// orderRetention is how long o lives after a write that gives it retention
// once final: a non-final order never expires (0).
func orderRetention(o domain.Order, retention time.Duration) time.Duration {
	if !o.Status.Final() {
		return 0
	}
	return retention
}

// checkOrder refuses an extendInfo that is not JSON: Redis stores the order
// as one JSON document, and both stores must refuse the same orders.
func checkOrder(o domain.Order) error {
	if len(o.ExtendInfo) > 0 && !json.Valid(o.ExtendInfo) {
		return errors.New("store: extendInfo is not valid JSON")
	}
	return nil
}

// newToken returns a random lease token. crypto/rand.Read never fails
// (since Go 1.24 it crashes the program instead).
func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// cloneOrder copies o so that no caller shares the stored extendInfo bytes.
func cloneOrder(o domain.Order) domain.Order {
	o.ExtendInfo = slices.Clone(o.ExtendInfo)
	if len(o.ExtendInfo) == 0 {
		o.ExtendInfo = nil // as Redis gives it back (omitempty)
	}
	return o
}
