package store

import (
	"container/heap"
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/orderhub/orderhub/impl/domain"
)

// Memory is the embedded Store: everything in maps under one mutex. Leases
// and retentions are checked against now(), so a test with a fake clock can
// let time pass without sleeping. An expired entry is dropped when it is
// touched; every write also sweeps a few deadlines that have passed
// (sweepBatch), so that what nobody touches again is dropped too and memory
// follows what is live, as Redis' own expiry does.
type Memory struct {
	now func() time.Time

	mu        sync.Mutex
	orders    map[string]storedOrder
	audits    map[string]*tradeAudits // by tradeID
	claims    map[claimID]claim
	records   map[Key]*record
	deadlines deadlines
}

var _ Store = (*Memory)(nil)

type storedOrder struct {
	order   domain.Order
	expires time.Time // zero: never
}

// tradeAudits are the audits of one trade, which expire together.
type tradeAudits struct {
	byBatch map[string]domain.Audit
	expires time.Time // zero: never
}

// claimID is what a requestId is unique within: operation and caller.
type claimID struct{ op, clientID, requestID string }

// claim binds a requestId to the fingerprint of its first body, and names
// the entity that request acted on, where its record is.
type claim struct {
	fingerprint string
	scope       ScopeKind
	scopeID     string
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
		orders:  map[string]storedOrder{},
		audits:  map[string]*tradeAudits{},
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

// retain is an entity's deadline after a write that keeps it d from now
// (0: forever), never earlier than the one it had: a stored answer may need
// it longer. Redis: PEXPIRE unless PTTL is longer, PERSIST for 0.
func retain(cur, now time.Time, d time.Duration) time.Time {
	if d == 0 {
		return time.Time{}
	}
	if at := now.Add(d); cur.IsZero() || cur.Before(at) {
		return at
	}
	return cur
}

// outlive is an entity's deadline once an answer about it is stored for d
// from now (0: forever): not before the answer's. An entity without a
// deadline keeps none. Redis: PEXPIRE GT, PERSIST for 0.
func outlive(cur, now time.Time, d time.Duration) time.Time {
	if d == 0 {
		return time.Time{}
	}
	if at := now.Add(d); !cur.IsZero() && cur.Before(at) {
		return at
	}
	return cur
}

// GetOrder implements Store.
func (m *Memory) GetOrder(_ context.Context, requestOrderID string) (domain.Order, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	so, ok := m.liveOrder(requestOrderID, m.now())
	if !ok {
		return domain.Order{}, ErrNotFound
	}
	return cloneOrder(so.order), nil
}

// PutOrder implements Store.
func (m *Memory) PutOrder(ctx context.Context, o domain.Order) (domain.Order, error) {
	return m.PutOrderRetained(ctx, o, 0)
}

// PutOrderRetained implements Store.
func (m *Memory) PutOrderRetained(_ context.Context, o domain.Order, retention time.Duration) (domain.Order, error) {
	if err := checkRetention(retention); err != nil {
		return domain.Order{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)
	return m.putOrder(o, retention, now)
}

func (m *Memory) putOrder(o domain.Order, retention time.Duration, now time.Time) (domain.Order, error) {
	if err := checkOrder(o); err != nil {
		return domain.Order{}, err
	}
	cur, _ := m.liveOrder(o.RequestOrderID, now)
	if cur.order.Version != o.Version { // absent: version 0
		return domain.Order{}, ErrConflict
	}
	o = cloneOrder(o)
	o.Version++
	so := storedOrder{order: o, expires: retain(cur.expires, now, orderRetention(o, retention))}
	m.orders[o.RequestOrderID] = so
	m.expireAt(Key{Scope: ScopeOrder, ScopeID: o.RequestOrderID}, dueEntity, cur.expires, so.expires)
	return cloneOrder(o), nil
}

// ListAudits implements Store.
func (m *Memory) ListAudits(_ context.Context, tradeID string) ([]domain.Audit, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ta := m.liveTrade(tradeID, m.now())
	if ta == nil {
		return []domain.Audit{}, nil
	}
	out := make([]domain.Audit, 0, len(ta.byBatch))
	for _, batch := range slices.Sorted(maps.Keys(ta.byBatch)) {
		out = append(out, ta.byBatch[batch])
	}
	return out, nil
}

func (m *Memory) recordAudit(a domain.Audit, retention time.Duration, now time.Time) {
	ta := m.liveTrade(a.TradeID, now)
	if ta == nil {
		ta = &tradeAudits{byBatch: map[string]domain.Audit{}}
		m.audits[a.TradeID] = ta
	}
	ta.byBatch[a.DeliveryBatchID] = a
	was := ta.expires
	ta.expires = retain(ta.expires, now, retention)
	m.expireAt(Key{Scope: ScopeTrade, ScopeID: a.TradeID}, dueEntity, was, ta.expires)
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
	m.sweep(now)

	// HSET when none: a live claim keeps its fingerprint and entity; PEXPIRE
	// GT: it lives at least a lease more, so it cannot lapse before this
	// request commits.
	cid := claimID{k.Op, k.ClientID, k.RequestID}
	prev, claimed := m.liveClaim(cid, now)
	switch {
	case !claimed:
		m.claims[cid] = claim{fingerprint: fingerprint, scope: k.Scope, scopeID: k.ScopeID, expires: now.Add(lease)}
		m.expireAt(k, dueClaim, time.Time{}, now.Add(lease))
	case !prev.expires.IsZero() && prev.expires.Before(now.Add(lease)):
		c := prev
		c.expires = now.Add(lease)
		m.claims[cid] = c
		m.expireAt(k, dueClaim, prev.expires, c.expires)
	}

	rec := m.liveRecord(k, now)
	switch {
	case rec == nil && claimed && prev.fingerprint != fingerprint:
		// The requestId was used for another entity with another body.
		return Begun{State: Mismatch}, nil
	case rec == nil:
		token := newToken()
		m.records[k] = &record{token: token, fingerprint: fingerprint, expires: now.Add(lease)}
		m.expireAt(k, dueRecord, time.Time{}, now.Add(lease))
		begun := Begun{State: Started, Token: token}
		if so, ok := m.liveOrder(k.ScopeID, now); k.Scope == ScopeOrder && ok {
			o := cloneOrder(so.order)
			begun.Order = &o
		}
		return begun, nil
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
	m.sweep(now)

	// As on Redis, where the claim is another slot's key extended in the
	// same round trip as the commit script, whatever the script decides.
	cid := claimID{k.Op, k.ClientID, k.RequestID}
	if c, ok := m.liveClaim(cid, now); ok {
		was := c.expires
		c.expires = expiry(now, retention)
		m.claims[cid] = c
		m.expireAt(k, dueClaim, was, c.expires)
	}

	rec := m.liveRecord(k, now)
	if rec == nil || rec.done || rec.token != token {
		return ErrLeaseLost
	}
	switch e := effect.(type) {
	case PutOrderEffect:
		if _, err := m.putOrder(e.Order, e.Retention, now); err != nil {
			return err
		}
	case RecordAuditEffect:
		m.recordAudit(e.Audit, e.Retention, now)
	}
	m.outliveAnswer(k, retention, now)
	was := rec.expires
	*rec = record{
		done:        true,
		fingerprint: rec.fingerprint,
		response:    slices.Clone(response),
		expires:     expiry(now, retention),
	}
	m.expireAt(k, dueRecord, was, rec.expires)
	return nil
}

// outliveAnswer makes the entity of k's scope, if it exists, live at least
// as long as the answer stored about it for retention.
func (m *Memory) outliveAnswer(k Key, retention time.Duration, now time.Time) {
	entity := Key{Scope: k.Scope, ScopeID: k.ScopeID}
	switch k.Scope {
	case ScopeOrder:
		if so, ok := m.liveOrder(k.ScopeID, now); ok {
			was := so.expires
			so.expires = outlive(so.expires, now, retention)
			m.orders[k.ScopeID] = so
			m.expireAt(entity, dueEntity, was, so.expires)
		}
	case ScopeTrade:
		if ta := m.liveTrade(k.ScopeID, now); ta != nil {
			was := ta.expires
			ta.expires = outlive(ta.expires, now, retention)
			m.expireAt(entity, dueEntity, was, ta.expires)
		}
	}
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

// Answer implements Store: the claim names the entity, whose record holds
// the answer.
func (m *Memory) Answer(_ context.Context, op, clientID, requestID string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	c, ok := m.liveClaim(claimID{op, clientID, requestID}, now)
	if !ok {
		return nil, ErrNoAnswer
	}
	rec := m.liveRecord(Key{Op: op, ClientID: clientID, RequestID: requestID, Scope: c.scope, ScopeID: c.scopeID}, now)
	if rec == nil || !rec.done {
		return nil, ErrNoAnswer
	}
	return slices.Clone(rec.response), nil
}

// Ping implements Store: memory is always reachable.
func (m *Memory) Ping(context.Context) error { return nil }

// Close implements Store: there is nothing to release.
func (m *Memory) Close() error { return nil }

// The live* methods return an entry, dropping it if it has expired.

func (m *Memory) liveOrder(id string, now time.Time) (storedOrder, bool) {
	so, ok := m.orders[id]
	if ok && !live(so.expires, now) {
		delete(m.orders, id)
		return storedOrder{}, false
	}
	return so, ok
}

func (m *Memory) liveTrade(id string, now time.Time) *tradeAudits {
	ta, ok := m.audits[id]
	if ok && !live(ta.expires, now) {
		delete(m.audits, id)
		return nil
	}
	return ta
}

func (m *Memory) liveClaim(cid claimID, now time.Time) (claim, bool) {
	c, ok := m.claims[cid]
	if ok && !live(c.expires, now) {
		delete(m.claims, cid)
		return claim{}, false
	}
	return c, ok
}

func (m *Memory) liveRecord(k Key, now time.Time) *record {
	rec, ok := m.records[k]
	if ok && !live(rec.expires, now) {
		delete(m.records, k)
		return nil
	}
	return rec
}

// sweepBatch bounds the deadlines one write sweeps, so that no write pays
// for a backlog; each write sets at most a few deadlines, so sweeping keeps
// up with them.
const sweepBatch = 16

// dueKind says which map a deadline's key is in.
type dueKind uint8

const (
	dueEntity dueKind = iota // orders or audits, by Scope and ScopeID
	dueClaim                 // claims, by Op, ClientID and RequestID
	dueRecord                // records, by the whole key
)

// deadline is a moment an entry was due to expire. An entry given a later
// deadline since is still live then and is kept; that later deadline has
// an item of its own.
type deadline struct {
	at   time.Time
	kind dueKind
	key  Key
}

// deadlines is a min-heap of deadlines by at (container/heap).
type deadlines []deadline

func (d deadlines) Len() int           { return len(d) }
func (d deadlines) Less(i, j int) bool { return d[i].at.Before(d[j].at) }
func (d deadlines) Swap(i, j int)      { d[i], d[j] = d[j], d[i] }
func (d *deadlines) Push(x any)        { *d = append(*d, x.(deadline)) }
func (d *deadlines) Pop() any {
	old := *d
	x := old[len(old)-1]
	*d = old[:len(old)-1]
	return x
}

// expireAt notes that k's entry of kind, which expired at was, now
// expires at at (zero: never). An unchanged deadline has its item already.
func (m *Memory) expireAt(k Key, kind dueKind, was, at time.Time) {
	if !at.IsZero() && !at.Equal(was) {
		heap.Push(&m.deadlines, deadline{at: at, kind: kind, key: k})
	}
}

// sweep drops the entries of up to sweepBatch deadlines that have passed.
func (m *Memory) sweep(now time.Time) {
	for range sweepBatch {
		if len(m.deadlines) == 0 || now.Before(m.deadlines[0].at) {
			return
		}
		d := heap.Pop(&m.deadlines).(deadline)
		switch k := d.key; d.kind {
		case dueEntity:
			if k.Scope == ScopeOrder {
				m.liveOrder(k.ScopeID, now)
			} else {
				m.liveTrade(k.ScopeID, now)
			}
		case dueClaim:
			m.liveClaim(claimID{k.Op, k.ClientID, k.RequestID}, now)
		case dueRecord:
			m.liveRecord(k, now)
		}
	}
}
