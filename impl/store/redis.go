package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderhub/orderhub/impl/domain"
)

// Redis is the production Store. Key layout (every variable part escaped,
// see esc; the braces are the Redis Cluster hash tag, always one entity):
//
//	orderhub:order:{o:<id>}                                 hash json, ver
//	orderhub:audits:{t:<tradeId>}                           hash <batchId> → audit JSON
//	orderhub:idem:{<scope>:<scopeId>}:<op>:<client>:<reqId> hash state (P|D), token, fp, resp[, unconfirmed]
//	orderhub:claim:{<op>:<client>:<reqId>}                  hash fp, e (<scope>:<scopeId>, unescaped)
//
// A record shares its entity's slot, so Commit writes both in one script,
// TTLs included: a final order or a trade's audits expire (their retention
// after the last write) and never before an answer stored about them. The
// claim lives in the requestId's own slot and is written by a separate
// script in the same round trip; it names the entity so that Answer finds
// the record. Claims of earlier versions are strings, the fingerprint
// alone: still honoured, their answers replayed, but not found by Answer.
// Lua never decodes JSON: Go builds every document, so extendInfo comes
// back byte for byte.
//
// With MinReplicas n > 0 (see there) a record is stored as unconfirmed,
// and its answer is given only once n replicas acknowledged it.
type Redis struct {
	c                                             redis.UniversalClient
	begin, claim, commit, release, putCS, confirm *redis.Script
	minReplicas                                   int
}

var _ Store = (*Redis)(nil)

// RedisOption configures NewRedis.
type RedisOption func(*Redis)

// MinReplicas makes Commit return (and Begin replay) an answer only once n
// replicas of the record's master acknowledged it, by WAIT pipelined on
// the connection that wrote it, bounded by the context's deadline: Redis
// replicates asynchronously, and a master that dies before its replica
// received an acknowledged commit takes the effect and its answer with it.
// When fewer acknowledge in time, the call returns ErrNotReplicated and the
// record stays unconfirmed until a replay confirms it. 0 (the default):
// the answer once the master has it, in one round trip. With n > 0, c must
// be a single node (*redis.Client, Sentinel's too) or a
// *redis.ClusterClient.
func MinReplicas(n int) RedisOption {
	return func(r *Redis) { r.minReplicas = max(n, 0) }
}

// NewRedis returns a Store over c: a single node, Sentinel or Cluster.
func NewRedis(c redis.UniversalClient, opts ...RedisOption) *Redis {
	r := &Redis{
		c:       c,
		begin:   redis.NewScript(beginLua),
		claim:   redis.NewScript(claimLua),
		commit:  redis.NewScript(commitLua),
		release: redis.NewScript(releaseLua),
		putCS:   redis.NewScript(putOrderLua),
		confirm: redis.NewScript(confirmLua),
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// beginLua: KEYS[1] record, KEYS[2] (optional) the order it acts on, in
// the same slot; ARGV fingerprint, new token, lease ms. A new claim's reply
// carries the order's document (false: none), so the work needs no read of
// its own; a done record's reply says whether its replication is
// unconfirmed.
const beginLua = `
local r = redis.call('HMGET', KEYS[1], 'state', 'fp', 'resp', 'unconfirmed')
if not r[1] then
  redis.call('HSET', KEYS[1], 'state', 'P', 'token', ARGV[2], 'fp', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  if KEYS[2] then return {'S', redis.call('HGET', KEYS[2], 'json')} end
  return {'S'}
end
if r[2] ~= ARGV[1] then return {'M'} end
if r[1] == 'P' then return {'P'} end
if r[4] then return {'D', r[3], 'u'} end
return {'D', r[3]}
`

// claimLua: KEYS[1] claim; ARGV fingerprint, entity, lease ms. With no
// claim, binds the requestId to the fingerprint and the entity for a lease
// and returns nil; otherwise returns the fingerprint bound, and the claim
// (one left by an attempt that answered U) lives at least a lease more, so
// it cannot lapse before this request commits: GT never shortens it, nor
// touches one kept forever.
const claimLua = `
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'e', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return false
end
redis.call('PEXPIRE', KEYS[1], ARGV[3], 'GT')
if t == 'string' then return redis.call('GET', KEYS[1]) end
return redis.call('HGET', KEYS[1], 'fp')
`

// retainLua defines retain(key, ms), shared by the scripts that write an
// entity: the key lives ms from now (0: forever), or longer if it already
// had longer, which a stored answer may need. A key without a deadline
// (PTTL -1: a non-final order until now) gets one.
const retainLua = `
local function retain(key, ms)
  if ms == '0' then
    redis.call('PERSIST', key)
  elseif redis.call('PTTL', key) < tonumber(ms) then
    redis.call('PEXPIRE', key, ms)
  end
end
`

// commitLua: KEYS[1] record, KEYS[2] the entity of the key's scope (order
// or audits). ARGV token, response, retention ms (0: forever), "1" when the
// record is to stay unconfirmed until replicas acknowledge it (else ""),
// effect kind ("" for none, "order" or "audit"), the entity's retention ms
// after the effect (0: forever), then "order": expected version, order
// JSON, new version; "audit": batch, JSON.
const commitLua = retainLua + `
local r = redis.call('HMGET', KEYS[1], 'state', 'token')
if r[1] ~= 'P' or r[2] ~= ARGV[1] then return 'lost' end
if ARGV[5] == 'order' then
  if (redis.call('HGET', KEYS[2], 'ver') or '0') ~= ARGV[7] then return 'conflict' end
  redis.call('HSET', KEYS[2], 'json', ARGV[8], 'ver', ARGV[9])
  retain(KEYS[2], ARGV[6])
elseif ARGV[5] == 'audit' then
  redis.call('HSET', KEYS[2], ARGV[7], ARGV[8])
  retain(KEYS[2], ARGV[6])
end
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'state', 'D', 'resp', ARGV[2], 'unconfirmed', '1')
else
  redis.call('HSET', KEYS[1], 'state', 'D', 'resp', ARGV[2])
end
redis.call('HDEL', KEYS[1], 'token')
-- The answer speaks of the entity: the entity must outlive it. GT leaves
-- a key without a deadline alone, and a missing one stays missing.
if ARGV[3] == '0' then
  redis.call('PERSIST', KEYS[1])
  if KEYS[2] then redis.call('PERSIST', KEYS[2]) end
else
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  if KEYS[2] then redis.call('PEXPIRE', KEYS[2], ARGV[3], 'GT') end
end
return 'ok'
`

// releaseLua: KEYS[1] record; ARGV token.
const releaseLua = `
local r = redis.call('HMGET', KEYS[1], 'state', 'token')
if r[1] == 'P' and r[2] == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 'ok'
`

// confirmLua: KEYS[1] record. A write to an unconfirmed record, so that a
// WAIT after it on the same connection covers the record's commit (which
// precedes it in the replication stream); a WAIT after a read proves
// nothing, as the connection's replication offset did not move. "gone":
// no done record (lost in a failover, or expired); "confirmed": another
// replay confirmed it meanwhile; "pending": written, WAIT decides.
const confirmLua = `
local r = redis.call('HMGET', KEYS[1], 'state', 'unconfirmed')
if r[1] ~= 'D' then return 'gone' end
if not r[2] then return 'confirmed' end
redis.call('HINCRBY', KEYS[1], 'unconfirmed', 1)
return 'pending'
`

// putOrderLua: KEYS[1] order; ARGV expected version, order JSON, new
// version, its retention ms after this write (0: forever).
const putOrderLua = retainLua + `
if (redis.call('HGET', KEYS[1], 'ver') or '0') ~= ARGV[1] then return 'conflict' end
redis.call('HSET', KEYS[1], 'json', ARGV[2], 'ver', ARGV[3])
retain(KEYS[1], ARGV[4])
return 'ok'
`

// esc makes a key part unambiguous: no ':' to fake a separator, no braces
// to move the hash tag, and '%' escaped so that escapes cannot be forged.
func esc(s string) string {
	if !strings.ContainsAny(s, "%:{}") {
		return s
	}
	var b strings.Builder
	for i := range len(s) {
		switch c := s[i]; c {
		case '%', ':', '{', '}':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// tag is the hash tag of an entity.
func tag(scope ScopeKind, id string) string {
	return "{" + esc(string(scope)) + ":" + esc(id) + "}"
}

// The Redis key layout, exported for those who inspect Redis: operators,
// and the tests that expire or intercept a key by name.

// OrderKey is the key of an order.
func OrderKey(id string) string { return "orderhub:order:" + tag(ScopeOrder, id) }

// AuditsKey is the key of a trade's delivery audits.
func AuditsKey(tradeID string) string { return "orderhub:audits:" + tag(ScopeTrade, tradeID) }

// ClaimKey is the key of the write-once claim binding k's requestId to its
// body, in the requestId's own slot.
func ClaimKey(k Key) string {
	return "orderhub:claim:{" + esc(k.Op) + ":" + esc(k.ClientID) + ":" + esc(k.RequestID) + "}"
}

// RecordKey is the key of k's idempotency record, in the slot of the entity
// it acts on.
func RecordKey(k Key) string {
	return "orderhub:idem:" + tag(k.Scope, k.ScopeID) + ":" + esc(k.Op) + ":" + esc(k.ClientID) + ":" + esc(k.RequestID)
}

// entityKey is the key of the entity k's scope names; "" for a scope
// without one.
func entityKey(k Key) string {
	switch k.Scope {
	case ScopeOrder:
		return OrderKey(k.ScopeID)
	case ScopeTrade:
		return AuditsKey(k.ScopeID)
	}
	return ""
}

// claimEntity is how a claim names k's entity: raw, as it is only read back
// (Answer), never part of a key.
func claimEntity(k Key) string { return string(k.Scope) + ":" + k.ScopeID }

// millis rounds d up to whole milliseconds, so that a short positive
// duration never becomes 0 (which means "forever" to Commit).
func millis(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// evalAgain runs s with EVAL when a pipelined EVALSHA found it missing from
// the server's script cache (restart, SCRIPT FLUSH, a new cluster node). The
// script did not run then, so running it now is safe; EVAL caches it again.
func evalAgain(ctx context.Context, c redis.Scripter, s *redis.Script, cmd *redis.Cmd, keys []string, args ...any) *redis.Cmd {
	if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		return s.Eval(ctx, c, keys, args...)
	}
	return cmd
}

// encodeOrder returns o as JSON with extendInfo spliced in verbatim:
// encoding/json would compact it and escape '<', '>' and '&'. The caller has
// checked (checkOrder) that extendInfo is valid JSON.
func encodeOrder(o domain.Order) (string, error) {
	raw := o.ExtendInfo
	o.ExtendInfo = nil // omitted; b is {"requestOrderId":...}
	b, err := json.Marshal(o)
	if err != nil || len(raw) == 0 {
		return string(b), err
	}
	return `{"extendInfo":` + string(raw) + "," + string(b[1:]), nil
}

// GetOrder implements Store.
func (r *Redis) GetOrder(ctx context.Context, requestOrderID string) (domain.Order, error) {
	doc, err := r.c.HGet(ctx, OrderKey(requestOrderID), "json").Result()
	if errors.Is(err, redis.Nil) {
		return domain.Order{}, ErrNotFound
	}
	if err != nil {
		return domain.Order{}, err
	}
	var o domain.Order
	if err := json.Unmarshal([]byte(doc), &o); err != nil {
		return domain.Order{}, fmt.Errorf("store: order %q: %w", requestOrderID, err)
	}
	return o, nil
}

// PutOrder implements Store.
func (r *Redis) PutOrder(ctx context.Context, o domain.Order) (domain.Order, error) {
	return r.PutOrderRetained(ctx, o, 0)
}

// PutOrderRetained implements Store: the write and the order's TTL in one
// script.
func (r *Redis) PutOrderRetained(ctx context.Context, o domain.Order, retention time.Duration) (domain.Order, error) {
	if err := checkRetention(retention); err != nil {
		return domain.Order{}, err
	}
	if err := checkOrder(o); err != nil {
		return domain.Order{}, err
	}
	expected := o.Version
	o.Version++
	doc, err := encodeOrder(o)
	if err != nil {
		return domain.Order{}, err
	}
	res, err := r.putCS.Run(ctx, r.c, []string{OrderKey(o.RequestOrderID)}, expected, doc, o.Version, millis(orderRetention(o, retention))).Text()
	if err != nil {
		return domain.Order{}, err
	}
	if res == "conflict" {
		return domain.Order{}, ErrConflict
	}
	return cloneOrder(o), nil
}

// ListAudits implements Store.
func (r *Redis) ListAudits(ctx context.Context, tradeID string) ([]domain.Audit, error) {
	docs, err := r.c.HGetAll(ctx, AuditsKey(tradeID)).Result()
	if err != nil {
		return nil, err
	}
	out := make([]domain.Audit, 0, len(docs))
	for batch, doc := range docs {
		var a domain.Audit
		if err := json.Unmarshal([]byte(doc), &a); err != nil {
			return nil, fmt.Errorf("store: audit %q/%q: %w", tradeID, batch, err)
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b domain.Audit) int { return cmp.Compare(a.DeliveryBatchID, b.DeliveryBatchID) })
	return out, nil
}

// Begin implements Store in one round trip: the begin script on the record
// and the claim script, pipelined. The record goes first so that the
// claim's deadline is not before the record's.
//
// A record found for the key's own entity decides the outcome; the claim
// only stops a new record (the requestId was used for another entity with
// another body). So a claim lost early and retaken by another body cannot
// turn the original request's replay into a mismatch.
func (r *Redis) Begin(ctx context.Context, k Key, fingerprint string, lease time.Duration) (Begun, error) {
	if err := checkLease(lease); err != nil {
		return Begun{}, err
	}
	token := newToken()
	keys, args := []string{RecordKey(k)}, []any{fingerprint, token, millis(lease)}
	if k.Scope == ScopeOrder {
		keys = append(keys, OrderKey(k.ScopeID)) // read with the claim: one round trip less
	}
	claimKeys, claimArgs := []string{ClaimKey(k)}, []any{fingerprint, claimEntity(k), millis(lease)}
	var begin, claim *redis.Cmd
	// Each command carries its own error; the pipeline's is the first of them.
	_, _ = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		begin = r.begin.EvalSha(ctx, p, keys, args...)
		claim = r.claim.EvalSha(ctx, p, claimKeys, claimArgs...)
		return nil
	})
	found, err := evalAgain(ctx, r.c, r.begin, begin, keys, args...).Slice()
	if err != nil {
		return Begun{}, err
	}
	prev, claimErr := evalAgain(ctx, r.c, r.claim, claim, claimKeys, claimArgs...).Text()
	if errors.Is(claimErr, redis.Nil) { // no claim yet: ours is set now
		prev, claimErr = fingerprint, nil
	}

	var state string
	if len(found) > 0 {
		state, _ = found[0].(string)
	}
	switch state {
	case "S":
		if claimErr != nil || prev != fingerprint {
			// Not ours to process: give back the record just created.
			if err := r.Release(ctx, k, token); err != nil && claimErr == nil {
				claimErr = err
			}
			if claimErr != nil {
				return Begun{}, claimErr
			}
			return Begun{State: Mismatch}, nil // used for another entity
		}
		begun := Begun{State: Started, Token: token}
		if k.Scope == ScopeOrder && len(found) > 1 {
			if doc, ok := found[1].(string); ok {
				var o domain.Order
				if err := json.Unmarshal([]byte(doc), &o); err != nil {
					return Begun{}, fmt.Errorf("store: order %q: %w", k.ScopeID, err)
				}
				begun.Order = &o
			}
		}
		return begun, nil
	case "M":
		return Begun{State: Mismatch}, nil
	case "P":
		return Begun{State: InProgress}, nil
	case "D":
		if len(found) >= 2 {
			if resp, ok := found[1].(string); ok {
				// A third element: the record's replication is unconfirmed.
				// With MinReplicas 0 it is replayed as it is, as ever.
				if len(found) == 3 && r.minReplicas > 0 {
					if err := r.confirmReplay(ctx, k); err != nil {
						return Begun{}, err
					}
				}
				return Begun{State: Done, Response: []byte(resp)}, nil
			}
		}
	}
	return Begun{}, fmt.Errorf("store: unexpected begin reply %v", found)
}

// confirmReplay confirms an unconfirmed record before its answer is
// replayed: its commit may never have reached a replica (the commit's WAIT
// fell short and the caller got U), and the replay must not answer S for
// what a failover would lose. A write to the record and WAIT, on its
// master's connection, then the flag cleared: two round trips more than
// the replay of a confirmed record.
func (r *Redis) confirmReplay(ctx context.Context, k Key) error {
	key := RecordKey(k)
	res, acked, waitErr, err := r.replicated(ctx, r.confirm, []string{key}, nil, nil)
	switch {
	case err != nil:
		return err
	case res == "confirmed":
		return nil
	case res == "gone":
		// Begin saw it a moment ago: a failover or its expiry came between.
		// The retry decides afresh.
		return fmt.Errorf("%w: the record was gone when confirming it", ErrNotReplicated)
	case acked < int64(r.minReplicas):
		return r.notReplicated(acked, waitErr)
	}
	// Its error is not checked: a record left unconfirmed is confirmed
	// again by its next replay.
	r.c.HDel(ctx, key, "unconfirmed")
	return nil
}

// Commit implements Store: one script writes the effect and completes the
// record, and in the same round trip the claim is made to live as long as
// the record. The claim is in another slot, so this is a separate command:
// a crash between the two only lets the claim expire early (a reuse of the
// requestId for another entity goes undetected then), never loses an effect.
func (r *Redis) Commit(ctx context.Context, k Key, token string, response []byte, retention time.Duration, effect Effect) error {
	if err := checkRetention(retention); err != nil {
		return err
	}
	if err := checkEffect(k, effect); err != nil {
		return err
	}
	keys := []string{RecordKey(k)}
	if ek := entityKey(k); ek != "" {
		keys = append(keys, ek) // checkEffect: the effect's entity is this one
	}
	unconfirmed := ""
	if r.minReplicas > 0 {
		unconfirmed = "1"
	}
	args := []any{token, response, millis(retention), unconfirmed}
	switch e := effect.(type) {
	case nil:
		args = append(args, "", 0)
	case PutOrderEffect:
		o := e.Order
		o.Version++
		doc, err := encodeOrder(o)
		if err != nil {
			return err
		}
		args = append(args, "order", millis(orderRetention(o, e.Retention)), e.Order.Version, doc, o.Version)
	case RecordAuditEffect:
		doc, err := json.Marshal(e.Audit)
		if err != nil {
			return err
		}
		args = append(args, "audit", millis(e.Retention), e.Audit.DeliveryBatchID, doc)
	}

	if r.minReplicas > 0 {
		return r.commitReplicated(ctx, k, keys, args, retention)
	}
	var commit *redis.Cmd
	_, _ = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		commit = r.commit.EvalSha(ctx, p, keys, args...)
		extendClaim(ctx, p, k, retention)
		return nil
	})
	res, err := evalAgain(ctx, r.c, r.commit, commit, keys, args...).Text()
	return commitOutcome(res, err)
}

// commitOutcome is the error of the commit script's reply.
func commitOutcome(res string, err error) error {
	switch {
	case err != nil:
		return err
	case res == "lost":
		return ErrLeaseLost
	case res == "conflict":
		return ErrConflict
	}
	return nil
}

// extendClaim makes k's claim live as long as its record: retention, or
// forever. Its outcome is not checked: a claim that was not extended only
// expires early (see Commit), and the commit's answer is what counts.
func extendClaim(ctx context.Context, p redis.Pipeliner, k Key, retention time.Duration) {
	if retention == 0 {
		p.Persist(ctx, ClaimKey(k))
	} else {
		p.PExpire(ctx, ClaimKey(k), time.Duration(millis(retention))*time.Millisecond)
	}
}

// commitReplicated is Commit with MinReplicas: the script, which leaves
// the record unconfirmed, and WAIT in one round trip on the record's
// master; then, once enough replicas acknowledged, the flag cleared, so
// that replays need no confirmation. On one node the claim's extension
// rides in the first round trip (WAIT covers it too); on a Cluster it is
// another master's and goes in the second, not waited for (its loss only
// lets the claim expire early, as above). Two round trips; one on a single
// node when WAIT falls short. A commit that fell short leaves its record
// unconfirmed, not in progress: Release leaves it alone, and the retry's
// Begin confirms it before replaying it.
func (r *Redis) commitReplicated(ctx context.Context, k Key, keys []string, args []any, retention time.Duration) error {
	_, cluster := r.c.(*redis.ClusterClient)
	var claimFirst func(redis.Pipeliner)
	if !cluster {
		claimFirst = func(p redis.Pipeliner) { extendClaim(ctx, p, k, retention) }
	}
	res, acked, waitErr, err := r.replicated(ctx, r.commit, keys, args, claimFirst)
	confirmed := err == nil && res == "ok" && acked >= int64(r.minReplicas)
	if cluster || confirmed {
		_, _ = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			if cluster {
				extendClaim(ctx, p, k, retention)
			}
			if confirmed {
				// Not checked: a record left unconfirmed is confirmed
				// again by its first replay.
				p.HDel(ctx, keys[0], "unconfirmed")
			}
			return nil
		})
	}
	if err := commitOutcome(res, err); err != nil || confirmed {
		return err
	}
	return r.notReplicated(acked, waitErr)
}

// notReplicated is ErrNotReplicated saying how many replicas acknowledged,
// and why WAIT failed if it did.
func (r *Redis) notReplicated(acked int64, waitErr error) error {
	if waitErr != nil {
		return fmt.Errorf("%w: WAIT %d: %v", ErrNotReplicated, r.minReplicas, waitErr)
	}
	return fmt.Errorf("%w: %d of %d replicas acknowledged in time", ErrNotReplicated, acked, r.minReplicas)
}

// replicated runs script s over keys on the master of keys[0] followed,
// on the same connection and in the same round trip, by WAIT for
// MinReplicas: WAIT covers the writes of its own connection only, cannot
// run inside a script, and on a Cluster a keyless command would go to any
// master. between adds commands in between (nil: none). It returns the
// script's reply (err: the script's error) and how many replicas
// acknowledged (waitErr: WAIT's own error).
//
// The script goes as EVAL, its text, not EVALSHA: after a NOSCRIPT (a
// restarted or newly promoted master) a second attempt would wait a second
// time, for the WAIT behind the failed EVALSHA blocks all the same. Redis
// caches the script by its text; the cost is the bytes sent.
func (r *Redis) replicated(ctx context.Context, s *redis.Script, keys []string, args []any, between func(redis.Pipeliner)) (res string, acked int64, waitErr, err error) {
	m, err := r.master(ctx, keys[0])
	if err != nil {
		return "", 0, nil, err
	}
	var cmd *redis.Cmd
	var wait *redis.IntCmd
	_, _ = m.Pipelined(ctx, func(p redis.Pipeliner) error {
		cmd = s.Eval(ctx, p, keys, args...)
		if between != nil {
			between(p)
		}
		// Pipeliner lacks Wait; its timeout is in whole milliseconds.
		timeout := waitTimeout(ctx, m.Options().ReadTimeout)
		wait = redis.NewIntCmd(ctx, "wait", r.minReplicas, timeout.Milliseconds())
		_ = p.Process(ctx, wait) // queued: its error is the command's
		return nil
	})
	if cc, ok := r.c.(*redis.ClusterClient); ok && cmd.Err() != nil {
		// The slot map may be stale (MOVED, or a dead master after a
		// failover): the cluster client reloads it on its own commands'
		// errors, and this one bypassed it. A reload in the background;
		// the partner's retry finds the new master.
		cc.ReloadState(ctx)
	}
	res, err = cmd.Text()
	acked, waitErr = wait.Result()
	return res, acked, waitErr, err
}

// master is the client of the master holding key: the node itself, or on a
// Cluster the master of key's slot as the client's slot map has it.
func (r *Redis) master(ctx context.Context, key string) (*redis.Client, error) {
	switch c := r.c.(type) {
	case *redis.ClusterClient:
		return c.MasterForKey(ctx, key)
	case *redis.Client:
		return c, nil
	}
	return nil, fmt.Errorf("store: MinReplicas needs a single-node or cluster client, not a %T", r.c)
}

// noDeadlineWait bounds WAIT on a context without a deadline: WAIT's 0
// waits forever. orderhub's requests always have one.
const noDeadlineWait = time.Second

// redisTimerSlack is how late Redis may end a WAIT: it checks blocked
// clients' timeouts when its event loop wakes, which an idle server does on
// its timer, every 1/hz (hz 10 by default: 100 ms).
const redisTimerSlack = 100 * time.Millisecond

// waitTimeout is how long WAIT may block: the context's remaining time,
// within readTimeout (the client's bound on reading a pipeline's replies:
// go-redis extends it for a WAIT sent alone, not in a pipeline), less
// redisTimerSlack and a tenth (at most 100 ms) for the reply and what
// follows it; never below 1 ms, as 0 would be forever.
func waitTimeout(ctx context.Context, readTimeout time.Duration) time.Duration {
	d := noDeadlineWait
	if deadline, ok := ctx.Deadline(); ok {
		d = time.Until(deadline)
	}
	if readTimeout > 0 {
		d = min(d, readTimeout)
	}
	d -= redisTimerSlack + min(d/10, 100*time.Millisecond)
	return max(d, time.Millisecond)
}

// Release implements Store.
func (r *Redis) Release(ctx context.Context, k Key, token string) error {
	return r.release.Run(ctx, r.c, []string{RecordKey(k)}, token).Err()
}

// Answer implements Store in two round trips: the claim names the entity,
// whose slot holds the record.
func (r *Redis) Answer(ctx context.Context, op, clientID, requestID string) ([]byte, error) {
	k := Key{Op: op, ClientID: clientID, RequestID: requestID}
	entity, err := r.c.HGet(ctx, ClaimKey(k), "e").Result()
	switch {
	case errors.Is(err, redis.Nil), redis.HasErrorPrefix(err, "WRONGTYPE"):
		// No claim, or an earlier version's, which does not say where the
		// record is.
		return nil, ErrNoAnswer
	case err != nil:
		return nil, err
	}
	scope, id, ok := strings.Cut(entity, ":")
	if !ok {
		return nil, fmt.Errorf("store: the claim of %q names no entity: %q", requestID, entity)
	}
	k.Scope, k.ScopeID = ScopeKind(scope), id
	found, err := r.c.HMGet(ctx, RecordKey(k), "state", "resp").Result()
	if err != nil {
		return nil, err
	}
	if state, _ := found[0].(string); state != "D" {
		return nil, ErrNoAnswer // none, or still in progress
	}
	resp, ok := found[1].(string)
	if !ok {
		return nil, fmt.Errorf("store: the record of %q has no response", requestID)
	}
	return []byte(resp), nil
}

// Ping implements Store. A cluster is reachable while any master answers:
// a request whose keys live on a live master is served, and the client's
// PING, sent to one master in turn, failed on a third of the calls while one
// of three was down.
func (r *Redis) Ping(ctx context.Context) error {
	if _, ok := r.c.(*redis.ClusterClient); !ok {
		return r.c.Ping(ctx).Err()
	}
	nodes, unreachable, err := r.PingNodes(ctx)
	switch {
	case err != nil:
		return err
	case len(unreachable) == nodes:
		return fmt.Errorf("no Redis master answers PING: %s", strings.Join(unreachable, ", "))
	}
	return nil
}

// nodePingTimeout bounds each node's PING in PingNodes: a frozen node
// accepts connections and never answers, and a readiness probe must answer
// within its own timeout (a second by default on Kubernetes).
const nodePingTimeout = 500 * time.Millisecond

// PingNodes pings every master, concurrently: a cluster's masters as the
// latest slot map (read afresh here) has them, else the one node. It
// returns how many there are and the addresses of those that did not
// answer, sorted; an error only when not even the slot map could be read.
func (r *Redis) PingNodes(ctx context.Context) (nodes int, unreachable []string, err error) {
	ping := func(ctx context.Context, c redis.UniversalClient) error {
		ctx, cancel := context.WithTimeout(ctx, nodePingTimeout)
		defer cancel()
		return c.Ping(ctx).Err()
	}
	cc, ok := r.c.(*redis.ClusterClient)
	if !ok {
		if ping(ctx, r.c) != nil {
			addr := "redis"
			if c, ok := r.c.(*redis.Client); ok {
				addr = c.Options().Addr
			}
			unreachable = []string{addr}
		}
		return 1, unreachable, nil
	}
	var mu sync.Mutex
	err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		err := ping(ctx, c)
		mu.Lock()
		defer mu.Unlock()
		nodes++
		if err != nil {
			unreachable = append(unreachable, c.Options().Addr)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	slices.Sort(unreachable)
	return nodes, unreachable, nil
}

// Close implements Store: it closes the client given to NewRedis.
func (r *Redis) Close() error { return r.c.Close() }
