package store

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/orderhub/orderhub/impl/domain"
)

// Memory is the embedded Store: everything in maps under one mutex. Leases
// and retentions are checked against now() when a record is touched, so a
// test with a fake clock can let time pass without sleeping. Expired entries
// are dropped only when touched: fine for development and tests, which is
// what Memory is for.
type Memory struct {
	now func() time.Time

	mu      sync.Mutex
	orders  map[string]domain.Order
	audits  map[string]map[string]domain.Audit // tradeID → batchID → audit
	claims  map[claimID]claim
	records map[Key]*record
}

var _ Store = (*Memory)(nil)

// claimID is what a requestId is unique within: operation and caller.
type claimID struct{ op, clientID, requestID string }

// claim binds a requestId to the fingerprint of its first body.
type claim struct {
	fingerprint string
	expires     time.Time // zero: never
}

type record struct {
	done        bool // false: in progress, held with token
	token       string
	fingerprint string
	response    []byte
	expires     time.Time // zero: never
}

// NewMemory returns an empty Memory reading the time from now (nil:
// time.Now).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{
		now:     now,
		orders:  map[string]domain.Order{},
		audits:  map[string]map[string]domain.Audit{},
		claims:  map[claimID]claim{},
		records: map[Key]*record{},
	}
}

// live reports whether something expiring at expires still exists at now;
// like Redis, a key is gone from the instant its deadline is reached.
func live(expires, now time.Time) bool {
	return expires.IsZero() || now.Before(expires)
}

// expiry returns the deadline d from now; 0 means never.
func expiry(now time.Time, d time.Duration) time.Time {
	if d == 0 {
		return time.Time{}
	}
	return now.Add(d)
}

// GetOrder implements Store.
func (m *Memory) GetOrder(_ context.Context, requestOrderID string) (domain.Order, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.orders[requestOrderID]
	if !ok {
		return domain.Order{}, ErrNotFound
	}
	return cloneOrder(o), nil
}

// PutOrder implements Store.
func (m *Memory) PutOrder(_ context.Context, o domain.Order) (domain.Order, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.putOrder(o)
}

func (m *Memory) putOrder(o domain.Order) (domain.Order, error) {
	if err := checkOrder(o); err != nil {
		return domain.Order{}, err
	}
	if m.orders[o.RequestOrderID].Version != o.Version { // absent: version 0
		return domain.Order{}, ErrConflict
	}
	o = cloneOrder(o)
	o.Version++
	m.orders[o.RequestOrderID] = o
	return cloneOrder(o), nil
}

// ListAudits implements Store.
func (m *Memory) ListAudits(_ context.Context, tradeID string) ([]domain.Audit, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	byBatch := m.audits[tradeID]
	out := make([]domain.Audit, 0, len(byBatch))
	for _, batch := range slices.Sorted(maps.Keys(byBatch)) {
		out = append(out, byBatch[batch])
	}
	return out, nil
}

// Begin implements Store. It follows the Redis store step by step (claim
// first, then the record of the key's scope) so that both behave alike.
func (m *Memory) Begin(_ context.Context, k Key, fingerprint string, lease time.Duration) (Begun, error) {
	if err := checkLease(lease); err != nil {
		return Begun{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()

	// SET NX: a live claim keeps its fingerprint; PEXPIRE GT: it lives at
	// least a lease more, so it cannot lapse before this request commits.
	cid := claimID{k.Op, k.ClientID, k.RequestID}
	prev, claimed := m.claims[cid]
	claimed = claimed && live(prev.expires, now)
	switch {
	case !claimed:
		m.claims[cid] = claim{fingerprint: fingerprint, expires: now.Add(lease)}
	case !prev.expires.IsZero() && prev.expires.Before(now.Add(lease)):
		m.claims[cid] = claim{fingerprint: prev.fingerprint, expires: now.Add(lease)}
	}

	rec := m.liveRecord(k, now)
	switch {
	case rec == nil && claimed && prev.fingerprint != fingerprint:
		// The requestId was used for another entity with another body.
		return Begun{State: Mismatch}, nil
	case rec == nil:
		token := newToken()
		m.records[k] = &record{token: token, fingerprint: fingerprint, expires: now.Add(lease)}
		return Begun{State: Started, Token: token}, nil
	case rec.fingerprint != fingerprint:
		return Begun{State: Mismatch}, nil
	case !rec.done:
		return Begun{State: InProgress}, nil
	}
	return Begun{State: Done, Response: slices.Clone(rec.response)}, nil
}

// Commit implements Store.
func (m *Memory) Commit(_ context.Context, k Key, token string, response []byte, retention time.Duration, effect Effect) error {
	if err := checkRetention(retention); err != nil {
		return err
	}
	if err := checkEffect(k, effect); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()

	// As on Redis, where the claim is another slot's key extended in the
	// same round trip as the commit script, whatever the script decides.
	cid := claimID{k.Op, k.ClientID, k.RequestID}
	if c, ok := m.claims[cid]; ok && live(c.expires, now) {
		c.expires = expiry(now, retention)
		m.claims[cid] = c
	}

	rec := m.liveRecord(k, now)
	if rec == nil || rec.done || rec.token != token {
		return ErrLeaseLost
	}
	switch e := effect.(type) {
	case PutOrderEffect:
		if _, err := m.putOrder(e.Order); err != nil {
			return err
		}
	case RecordAuditEffect:
		a := e.Audit
		if m.audits[a.TradeID] == nil {
			m.audits[a.TradeID] = map[string]domain.Audit{}
		}
		m.audits[a.TradeID][a.DeliveryBatchID] = a
	}
	*rec = record{
		done:        true,
		fingerprint: rec.fingerprint,
		response:    slices.Clone(response),
		expires:     expiry(now, retention),
	}
	return nil
}

// Release implements Store.
func (m *Memory) Release(_ context.Context, k Key, token string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rec := m.liveRecord(k, m.now()); rec != nil && !rec.done && rec.token == token {
		delete(m.records, k)
	}
	return nil
}

// Ping implements Store: memory is always reachable.
func (m *Memory) Ping(context.Context) error { return nil }

// Close implements Store: there is nothing to release.
func (m *Memory) Close() error { return nil }

// liveRecord returns k's record, dropping it if it has expired.
func (m *Memory) liveRecord(k Key, now time.Time) *record {
	rec, ok := m.records[k]
	if ok && !live(rec.expires, now) {
		delete(m.records, k)
		return nil
	}
	return rec
}
