// Package storetest is the behaviour suite every store.Store passes, so that
// the embedded memory store behaves like production Redis.
package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/orderhub/orderhub/impl/domain"
	"github.com/orderhub/orderhub/impl/store"
)

// Lease is the lease the suite gives Begin: a harness whose ExpireLease
// moves a clock must move it at least this far.
const Lease = 30 * time.Second

// retention is how long the suite keeps completed records.
const retention = time.Hour

// Harness is one fresh, empty store and a way to age it.
type Harness struct {
	Store store.Store
	// ExpireLease makes the lease of k's in-progress record lapse now.
	ExpireLease func(k store.Key)
	// Age lets d pass for everything the store keeps with a deadline, as
	// if d went by (a fake clock, or every TTL shortened by d). The
	// retention cases leave a minute's margin around each deadline for the
	// real time a test takes.
	Age func(d time.Duration)
}

type test struct {
	name string
	run  func(t *testing.T, h Harness)
}

// Run runs the suite; newHarness is called once per subtest.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Orders", []test{
			{"GetMissing", testGetMissing},
			{"PutThenGet", testPutThenGet},
			{"PutStale", testPutStale},
			{"ExtendInfoBytes", testExtendInfoBytes},
			{"InvalidExtendInfo", testInvalidExtendInfo},
			{"Copies", testCopies},
		}},
		{"Audits", []test{
			{"Empty", testAuditsEmpty},
			{"RecordReplaceSort", testAuditsRecordReplaceSort},
		}},
		{"Idempotency", []test{
			{"BeginTwice", testBeginTwice},
			{"BeginReadsTheOrder", testBeginReadsTheOrder},
			{"CommitReplays", testCommitReplays},
			{"CommitTwice", testCommitTwice},
			{"FingerprintMismatch", testFingerprintMismatch},
			{"ClaimAcrossEntities", testClaimAcrossEntities},
			{"IndependentClientsAndOps", testIndependentClientsAndOps},
			{"WrongToken", testWrongToken},
			{"CommitConflict", testCommitConflict},
			{"CommitCreatesOrder", testCommitCreatesOrder},
			{"Release", testRelease},
			{"LeaseExpiry", testLeaseExpiry},
			{"RetentionForever", testRetentionForever},
			{"EffectOutsideScope", testEffectOutsideScope},
			{"BadDurations", testBadDurations},
			{"KeyEscaping", testKeyEscaping},
		}},
		{"Retention", []test{
			{"FinalOrderExpires", testFinalOrderExpires},
			{"NonFinalOrderNeverExpires", testNonFinalOrderNeverExpires},
			{"FromLastChange", testRetentionFromLastChange},
			{"ZeroIsForever", testFinalRetentionZero},
			{"CommittedOrder", testCommittedOrderExpires},
			{"Audits", testAuditsExpire},
			{"BadRetention", testBadFinalRetention},
		}},
		{"AnswerOutlivesNothing", []test{
			{"EffectRetentionShorter", testAnswerKeepsEffect},
			{"AnswerWithoutEffect", testAnswerKeepsOrder},
			{"AuditRetentionShorter", testAnswerKeepsAudits},
			{"AnswerForever", testForeverAnswerKeepsOrder},
			{"NonFinalStaysForever", testAnswerLeavesNonFinal},
			{"MissingStaysMissing", testAnswerCreatesNothing},
		}},
		{"Answer", []test{
			{"Stored", testAnswerStored},
			{"NoneStored", testAnswerNoneStored},
			{"Expired", testAnswerExpired},
			{"NamesItsEntity", testAnswerNamesItsEntity},
		}},
		{"Concurrency", []test{
			{"Begin", testConcurrentBegin},
		}},
		{"Ping", []test{
			{"Ping", testPing},
		}},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, newHarness(t)) })
			}
		})
	}
}

// Fixtures.

func order(id string) domain.Order {
	// A zone other than UTC: stores may give the instant back in another
	// location, so times are compared with Equal (which cmp uses).
	at := time.Date(2024, 5, 4, 12, 30, 0, 123456789, time.FixedZone("", 8*3600))
	return domain.Order{
		RequestOrderID: id,
		PosOrderID:     "pos-" + id,
		Status:         domain.OrderSuccess,
		ExtendInfo:     json.RawMessage(`{"table":"7"}`),
		CreatedAt:      at,
		UpdatedAt:      at,
	}
}

func audit(tradeID, batchID string, status domain.AuditStatus, requestID string) domain.Audit {
	return domain.Audit{
		TradeID:         tradeID,
		DeliveryBatchID: batchID,
		Status:          status,
		RequestID:       requestID,
		ReceivedAt:      time.Date(2024, 5, 4, 4, 30, 0, 0, time.UTC),
	}
}

func orderKey(requestID, orderID string) store.Key {
	return store.Key{Op: "notifyOrderCompletion", ClientID: "client-1", RequestID: requestID, Scope: store.ScopeOrder, ScopeID: orderID}
}

func tradeKey(requestID, tradeID string) store.Key {
	return store.Key{Op: "notifyDeliveryAuditResult", ClientID: "client-1", RequestID: requestID, Scope: store.ScopeTrade, ScopeID: tradeID}
}

// Helpers; each fails the test on an unexpected error.

func begin(t *testing.T, s store.Store, k store.Key, fp string) store.Begun {
	t.Helper()
	b, err := s.Begin(t.Context(), k, fp, Lease)
	if err != nil {
		t.Fatalf("Begin(%+v, %q): %v", k, fp, err)
	}
	return b
}

// wantState checks Begin's outcome (and that only Started has a token).
func wantState(t *testing.T, s store.Store, k store.Key, fp string, want store.BeginState) store.Begun {
	t.Helper()
	b := begin(t, s, k, fp)
	if b.State != want {
		t.Fatalf("Begin(%+v, %q) = %v, want %v", k, fp, b.State, want)
	}
	if (b.Token != "") != (want == store.Started) {
		t.Fatalf("Begin(%+v, %q) = %v with token %q", k, fp, b.State, b.Token)
	}
	return b
}

func start(t *testing.T, s store.Store, k store.Key, fp string) string {
	t.Helper()
	return wantState(t, s, k, fp, store.Started).Token
}

func commit(t *testing.T, s store.Store, k store.Key, token string, resp []byte, e store.Effect) {
	t.Helper()
	if err := s.Commit(t.Context(), k, token, resp, retention, e); err != nil {
		t.Fatalf("Commit(%+v): %v", k, err)
	}
}

func put(t *testing.T, s store.Store, o domain.Order) domain.Order {
	t.Helper()
	got, err := s.PutOrder(t.Context(), o)
	if err != nil {
		t.Fatalf("PutOrder(%q, version %d): %v", o.RequestOrderID, o.Version, err)
	}
	return got
}

func get(t *testing.T, s store.Store, id string) domain.Order {
	t.Helper()
	got, err := s.GetOrder(t.Context(), id)
	if err != nil {
		t.Fatalf("GetOrder(%q): %v", id, err)
	}
	return got
}

func wantNoOrder(t *testing.T, s store.Store, id string) {
	t.Helper()
	if o, err := s.GetOrder(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetOrder(%q) = %+v, %v; want ErrNotFound", id, o, err)
	}
}

func wantOrder(t *testing.T, s store.Store, want domain.Order) {
	t.Helper()
	if diff := cmp.Diff(want, get(t, s, want.RequestOrderID)); diff != "" {
		t.Fatalf("GetOrder(%q) (-want +got):\n%s", want.RequestOrderID, diff)
	}
}

func wantReplay(t *testing.T, s store.Store, k store.Key, fp string, resp []byte) {
	t.Helper()
	b := wantState(t, s, k, fp, store.Done)
	if !bytes.Equal(b.Response, resp) {
		t.Fatalf("replayed %q, want %q", b.Response, resp)
	}
}

func final(id string) domain.Order {
	o := order(id)
	o.Status = domain.Completed
	return o
}

func putFor(t *testing.T, s store.Store, o domain.Order, retention time.Duration) domain.Order {
	t.Helper()
	got, err := s.PutOrderRetained(t.Context(), o, retention)
	if err != nil {
		t.Fatalf("PutOrderRetained(%q %s, version %d, %v): %v", o.RequestOrderID, o.Status, o.Version, retention, err)
	}
	return got
}

// commitFor begins k and commits resp with the effect, the answer kept for
// retention.
func commitFor(t *testing.T, s store.Store, k store.Key, resp string, retention time.Duration, e store.Effect) {
	t.Helper()
	tok := start(t, s, k, "fp-"+k.RequestID)
	if err := s.Commit(t.Context(), k, tok, []byte(resp), retention, e); err != nil {
		t.Fatalf("Commit(%+v, %v): %v", k, retention, err)
	}
}

func wantAudits(t *testing.T, s store.Store, tradeID string, n int) {
	t.Helper()
	got, err := s.ListAudits(t.Context(), tradeID)
	if err != nil || len(got) != n {
		t.Fatalf("ListAudits(%q) = %+v, %v; want %d audits", tradeID, got, err, n)
	}
}

func wantAnswer(t *testing.T, s store.Store, k store.Key, want string) {
	t.Helper()
	got, err := s.Answer(t.Context(), k.Op, k.ClientID, k.RequestID)
	if err != nil || string(got) != want {
		t.Fatalf("Answer(%q, %q, %q) = %q, %v; want %q", k.Op, k.ClientID, k.RequestID, got, err, want)
	}
}

func wantNoAnswer(t *testing.T, s store.Store, k store.Key) {
	t.Helper()
	if got, err := s.Answer(t.Context(), k.Op, k.ClientID, k.RequestID); !errors.Is(err, store.ErrNoAnswer) {
		t.Fatalf("Answer(%q, %q, %q) = %q, %v; want ErrNoAnswer", k.Op, k.ClientID, k.RequestID, got, err)
	}
}

// Orders.

func testGetMissing(t *testing.T, h Harness) {
	wantNoOrder(t, h.Store, "o1")
}

func testPutThenGet(t *testing.T, h Harness) {
	want := order("o1")
	want.Version = 1
	got := put(t, h.Store, order("o1"))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("PutOrder returned (-want +got):\n%s", diff)
	}
	wantOrder(t, h.Store, want)

	want.Status = domain.Accepted
	put(t, h.Store, want)
	want.Version = 2
	wantOrder(t, h.Store, want)
}

func testPutStale(t *testing.T, h Harness) {
	stored := put(t, h.Store, order("o1"))
	for _, v := range []int64{0, 2} {
		o := stored
		o.Version, o.Status = v, domain.Cancelled
		if _, err := h.Store.PutOrder(t.Context(), o); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("PutOrder with version %d over version 1: %v, want ErrConflict", v, err)
		}
	}
	wantOrder(t, h.Store, stored)
}

func testExtendInfoBytes(t *testing.T, h Harness) {
	// Spaces, characters encoding/json would escape, a trailing zero and
	// \u escapes: all must come back as given.
	raw := `{ "note" : "a<b & c>d", "price": 1.50, "name":"\u00e9t\u00e9", "nested":{"x":[1, 2]} }`
	o := order("o1")
	o.ExtendInfo = json.RawMessage(raw)
	if got := put(t, h.Store, o); string(got.ExtendInfo) != raw {
		t.Fatalf("PutOrder returned extendInfo %s, want %s", got.ExtendInfo, raw)
	}
	if got := get(t, h.Store, "o1"); string(got.ExtendInfo) != raw {
		t.Fatalf("GetOrder returned extendInfo %s, want %s", got.ExtendInfo, raw)
	}
}

func testInvalidExtendInfo(t *testing.T, h Harness) {
	o := order("o1")
	o.ExtendInfo = json.RawMessage(`{"a":`)
	if _, err := h.Store.PutOrder(t.Context(), o); err == nil || errors.Is(err, store.ErrConflict) {
		t.Fatalf("PutOrder with invalid extendInfo: %v, want a validation error", err)
	}
	wantNoOrder(t, h.Store, "o1")
}

func testCopies(t *testing.T, h Harness) {
	want := order("o1")
	want.Version = 1
	in := order("o1")
	got := put(t, h.Store, in)
	in.ExtendInfo[2] = 'X'
	got.ExtendInfo[2] = 'Y'
	get(t, h.Store, "o1").ExtendInfo[2] = 'Z'
	wantOrder(t, h.Store, want)
}

// Audits.

func testAuditsEmpty(t *testing.T, h Harness) {
	got, err := h.Store.ListAudits(t.Context(), "t1")
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("ListAudits of an unknown trade = %#v, %v; want an empty slice", got, err)
	}
}

func testAuditsRecordReplaceSort(t *testing.T, h Harness) {
	for _, a := range []domain.Audit{
		audit("t1", "b2", domain.AuditAccept, "r1"),
		audit("t1", "b1", domain.AuditAccept, "r2"),
		audit("t2", "b1", domain.AuditReject, "r3"),
		audit("t1", "b2", domain.AuditReject, "r4"), // replaces r1
	} {
		k := tradeKey(a.RequestID, a.TradeID)
		commit(t, h.Store, k, start(t, h.Store, k, "fp-"+a.RequestID), []byte("ok"), store.RecordAuditEffect{Audit: a})
	}
	for trade, want := range map[string][]domain.Audit{
		"t1": {audit("t1", "b1", domain.AuditAccept, "r2"), audit("t1", "b2", domain.AuditReject, "r4")},
		"t2": {audit("t2", "b1", domain.AuditReject, "r3")},
	} {
		got, err := h.Store.ListAudits(t.Context(), trade)
		if err != nil {
			t.Fatalf("ListAudits(%q): %v", trade, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ListAudits(%q) (-want +got):\n%s", trade, diff)
		}
	}
}

// Idempotency.

func testBeginTwice(t *testing.T, h Harness) {
	k := orderKey("r1", "o1")
	start(t, h.Store, k, "fp1")
	wantState(t, h.Store, k, "fp1", store.InProgress)
}

// A new claim on an order's key carries the order as it was, version
// included (nil when there is none): the work needs no read of its own.
func testBeginReadsTheOrder(t *testing.T, h Harness) {
	if b := wantState(t, h.Store, orderKey("r0", "o-none"), "fp1", store.Started); b.Order != nil {
		t.Errorf("Begin on a missing order carries %+v", b.Order)
	}
	stored := put(t, h.Store, domain.Order{RequestOrderID: "o1", PosOrderID: "p1", Status: domain.Ready})
	b := wantState(t, h.Store, orderKey("r1", "o1"), "fp1", store.Started)
	if b.Order == nil || b.Order.Version != stored.Version || b.Order.Status != domain.Ready || b.Order.PosOrderID != "p1" {
		t.Errorf("Begin carries %+v, want the stored order %+v", b.Order, stored)
	}
	put(t, h.Store, domain.Order{RequestOrderID: "t1", PosOrderID: "p", Status: domain.Ready})
	if b := wantState(t, h.Store, tradeKey("r2", "t1"), "fp1", store.Started); b.Order != nil {
		t.Errorf("Begin on a trade's key carries an order: %+v", b.Order)
	}
}

func testCommitReplays(t *testing.T, h Harness) {
	k := orderKey("r1", "o1")
	resp := []byte("{\"result\":{}}\n\x00\xff binary-safe")
	commit(t, h.Store, k, start(t, h.Store, k, "fp1"), resp, nil)
	wantReplay(t, h.Store, k, "fp1", resp)
	wantReplay(t, h.Store, k, "fp1", resp)
}

func testCommitTwice(t *testing.T, h Harness) {
	k := orderKey("r1", "o1")
	tok := start(t, h.Store, k, "fp1")
	commit(t, h.Store, k, tok, []byte("first"), nil)
	if err := h.Store.Commit(t.Context(), k, tok, []byte("second"), retention, nil); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("second Commit: %v, want ErrLeaseLost", err)
	}
	wantReplay(t, h.Store, k, "fp1", []byte("first"))
}

func testFingerprintMismatch(t *testing.T, h Harness) {
	k := orderKey("r1", "o1")
	tok := start(t, h.Store, k, "fp1")
	wantState(t, h.Store, k, "fp2", store.Mismatch)
	commit(t, h.Store, k, tok, []byte("ok"), nil)
	wantState(t, h.Store, k, "fp2", store.Mismatch)
	wantReplay(t, h.Store, k, "fp1", []byte("ok"))
}

func testClaimAcrossEntities(t *testing.T, h Harness) {
	kA, kB := orderKey("r1", "A"), orderKey("r1", "B")
	tok := start(t, h.Store, kA, "fp-A")
	wantState(t, h.Store, kB, "fp-B", store.Mismatch)
	// Still Mismatch (not InProgress): the first try left no record behind.
	wantState(t, h.Store, kB, "fp-B", store.Mismatch)
	commit(t, h.Store, kA, tok, []byte("ok"), nil)
	wantState(t, h.Store, kB, "fp-B", store.Mismatch)
}

func testIndependentClientsAndOps(t *testing.T, h Harness) {
	k := orderKey("r1", "o1")
	start(t, h.Store, k, "fp1")
	other := k
	other.ClientID = "client-2"
	start(t, h.Store, other, "fp2")
	other = k
	other.Op = "notifyOrderChange"
	start(t, h.Store, other, "fp3")
}

func testWrongToken(t *testing.T, h Harness) {
	k := orderKey("r1", "o1")
	tok := start(t, h.Store, k, "fp1")
	if err := h.Store.Commit(t.Context(), k, "not-the-token", []byte("x"), retention, nil); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Commit with a wrong token: %v, want ErrLeaseLost", err)
	}
	wantState(t, h.Store, k, "fp1", store.InProgress)
	commit(t, h.Store, k, tok, []byte("ok"), nil)
	wantReplay(t, h.Store, k, "fp1", []byte("ok"))
}

func testCommitConflict(t *testing.T, h Harness) {
	stored := put(t, h.Store, order("o1"))
	k := orderKey("r1", "o1")
	tok := start(t, h.Store, k, "fp1")

	stale := stored
	stale.Version, stale.Status = 0, domain.Completed
	err := h.Store.Commit(t.Context(), k, tok, []byte("ok"), retention, store.PutOrderEffect{Order: stale})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Commit with a stale order: %v, want ErrConflict", err)
	}
	wantState(t, h.Store, k, "fp1", store.InProgress)
	wantOrder(t, h.Store, stored)

	fresh := stored
	fresh.Status = domain.Completed
	commit(t, h.Store, k, tok, []byte("ok"), store.PutOrderEffect{Order: fresh})
	fresh.Version = 2
	wantOrder(t, h.Store, fresh)
	wantReplay(t, h.Store, k, "fp1", []byte("ok"))
}

func testCommitCreatesOrder(t *testing.T, h Harness) {
	k := orderKey("r1", "o1")
	commit(t, h.Store, k, start(t, h.Store, k, "fp1"), []byte("ok"), store.PutOrderEffect{Order: order("o1")})
	want := order("o1")
	want.Version = 1
	wantOrder(t, h.Store, want)
}

func testRelease(t *testing.T, h Harness) {
	k := orderKey("r1", "o1")
	tok := start(t, h.Store, k, "fp1")
	if err := h.Store.Release(t.Context(), k, "not-the-token"); err != nil {
		t.Fatalf("Release with a wrong token: %v", err)
	}
	wantState(t, h.Store, k, "fp1", store.InProgress)

	if err := h.Store.Release(t.Context(), k, tok); err != nil {
		t.Fatalf("Release: %v", err)
	}
	tok2 := start(t, h.Store, k, "fp1")
	if tok2 == tok {
		t.Fatalf("Begin after Release reused token %q", tok)
	}
	commit(t, h.Store, k, tok2, []byte("ok"), nil)
	// Releasing a completed record does nothing.
	if err := h.Store.Release(t.Context(), k, tok2); err != nil {
		t.Fatalf("Release after Commit: %v", err)
	}
	wantReplay(t, h.Store, k, "fp1", []byte("ok"))
}

func testLeaseExpiry(t *testing.T, h Harness) {
	k := orderKey("r1", "o1")
	tok := start(t, h.Store, k, "fp1")
	h.ExpireLease(k)
	tok2 := start(t, h.Store, k, "fp1")
	if tok2 == tok {
		t.Fatalf("Begin after the lease lapsed reused token %q", tok)
	}
	if err := h.Store.Commit(t.Context(), k, tok, []byte("old"), retention, store.PutOrderEffect{Order: order("o1")}); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Commit with the lapsed token: %v, want ErrLeaseLost", err)
	}
	wantNoOrder(t, h.Store, "o1")
	commit(t, h.Store, k, tok2, []byte("new"), nil)
	wantReplay(t, h.Store, k, "fp1", []byte("new"))
}

func testRetentionForever(t *testing.T, h Harness) {
	k := tradeKey("r1", "t1")
	tok := start(t, h.Store, k, "fp1")
	if err := h.Store.Commit(t.Context(), k, tok, []byte("ok"), 0, nil); err != nil {
		t.Fatalf("Commit with retention 0: %v", err)
	}
	wantReplay(t, h.Store, k, "fp1", []byte("ok"))
}

func testEffectOutsideScope(t *testing.T, h Harness) {
	k := orderKey("r1", "A")
	tok := start(t, h.Store, k, "fp1")
	for _, e := range []store.Effect{
		store.PutOrderEffect{Order: order("B")},                                    // other order
		store.RecordAuditEffect{Audit: audit("A", "b1", domain.AuditAccept, "r1")}, // a trade under an order scope
	} {
		err := h.Store.Commit(t.Context(), k, tok, []byte("ok"), retention, e)
		if err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("Commit(%T) outside the key's scope: %v, want a validation error", e, err)
		}
	}
	wantNoOrder(t, h.Store, "A")
	wantNoOrder(t, h.Store, "B")
	if got, err := h.Store.ListAudits(t.Context(), "A"); err != nil || len(got) != 0 {
		t.Fatalf("ListAudits(A) = %+v, %v; want none", got, err)
	}
	wantState(t, h.Store, k, "fp1", store.InProgress)
}

func testBadDurations(t *testing.T, h Harness) {
	k := orderKey("r1", "o1")
	if _, err := h.Store.Begin(t.Context(), k, "fp1", 0); err == nil {
		t.Fatal("Begin with lease 0 succeeded")
	}
	tok := start(t, h.Store, k, "fp1")
	if err := h.Store.Commit(t.Context(), k, tok, []byte("ok"), -time.Second, nil); err == nil {
		t.Fatal("Commit with a negative retention succeeded")
	}
	wantState(t, h.Store, k, "fp1", store.InProgress)
}

// testKeyEscaping: each pair would share a Redis key if the parts were
// joined with ':' unescaped (a store keyed by structs passes trivially).
func testKeyEscaping(t *testing.T, h Harness) {
	k := orderKey("r", "o1")
	with := func(f func(*store.Key)) store.Key { c := k; f(&c); return c }
	pairs := [][2]store.Key{
		{with(func(k *store.Key) { k.ClientID, k.RequestID = "c", "a:b" }), with(func(k *store.Key) { k.ClientID, k.RequestID = "c:a", "b" })},
		{with(func(k *store.Key) { k.Op, k.ClientID = "op:c", "x" }), with(func(k *store.Key) { k.Op, k.ClientID = "op", "c:x" })},
		{with(func(k *store.Key) { k.RequestID = "a:b" }), with(func(k *store.Key) { k.RequestID = "a%3Ab" })},
	}
	for i, p := range pairs {
		start(t, h.Store, p[0], "fp-first")
		if b := begin(t, h.Store, p[1], "fp-second"); b.State != store.Started {
			t.Errorf("pair %d: Begin(%+v) after Begin(%+v) = %v, want started", i, p[1], p[0], b.State)
		}
	}

	// Entity ids: "o:1" would be written "o%3A1" if '%' were not escaped.
	for _, id := range []string{"o:1", "o%3A1"} {
		put(t, h.Store, order(id)) // version 0: must be new
		k := tradeKey("r-"+id, id)
		commit(t, h.Store, k, start(t, h.Store, k, "fp"), []byte("ok"), store.RecordAuditEffect{Audit: audit(id, "b1", domain.AuditAccept, "r-"+id)})
	}
	for _, id := range []string{"o:1", "o%3A1"} {
		got, err := h.Store.ListAudits(t.Context(), id)
		if err != nil || len(got) != 1 || got[0].TradeID != id {
			t.Errorf("ListAudits(%q) = %+v, %v; want its one audit", id, got, err)
		}
	}
}

// Retention of entities in a final state.

func testFinalOrderExpires(t *testing.T, h Harness) {
	put := putFor(t, h.Store, final("o1"), time.Hour)
	h.Age(time.Hour - time.Minute)
	wantOrder(t, h.Store, put)
	h.Age(2 * time.Minute)
	wantNoOrder(t, h.Store, "o1")
	// Gone means gone: the id is new again (version 0).
	putFor(t, h.Store, order("o1"), time.Hour)
}

func testNonFinalOrderNeverExpires(t *testing.T, h Harness) {
	o := putFor(t, h.Store, order("o1"), time.Hour) // ORDER_SUCCESS
	h.Age(100 * 365 * 24 * time.Hour)
	wantOrder(t, h.Store, o)

	// Its retention starts when it becomes final.
	o.Status = domain.Cancelled
	o = putFor(t, h.Store, o, time.Hour)
	h.Age(time.Hour - time.Minute)
	wantOrder(t, h.Store, o)
	h.Age(2 * time.Minute)
	wantNoOrder(t, h.Store, "o1")
}

func testRetentionFromLastChange(t *testing.T, h Harness) {
	o := putFor(t, h.Store, final("o1"), time.Hour)
	h.Age(40 * time.Minute)
	o.PosOrderID = "pos-changed" // a final status stays, other fields may change
	o = putFor(t, h.Store, o, time.Hour)
	h.Age(40 * time.Minute) // 80 minutes after the first write
	wantOrder(t, h.Store, o)
	h.Age(21 * time.Minute)
	wantNoOrder(t, h.Store, "o1")
}

func testFinalRetentionZero(t *testing.T, h Harness) {
	a := put(t, h.Store, final("a")) // PutOrder: never expires
	b := putFor(t, h.Store, final("b"), 0)
	h.Age(100 * 365 * 24 * time.Hour)
	wantOrder(t, h.Store, a)
	wantOrder(t, h.Store, b)
}

func testCommittedOrderExpires(t *testing.T, h Harness) {
	k := orderKey("r1", "o1")
	commitFor(t, h.Store, k, "ok", 30*time.Minute, store.PutOrderEffect{Order: final("o1"), Retention: time.Hour})
	want := final("o1")
	want.Version = 1
	h.Age(31 * time.Minute)
	wantNoAnswer(t, h.Store, k)
	wantOrder(t, h.Store, want)
	h.Age(30 * time.Minute)
	wantNoOrder(t, h.Store, "o1")

	// A completion that leaves the order non-final never expires it.
	k = orderKey("r2", "o2")
	commitFor(t, h.Store, k, "ok", 30*time.Minute, store.PutOrderEffect{Order: order("o2"), Retention: time.Hour})
	h.Age(100 * 365 * 24 * time.Hour)
	get(t, h.Store, "o2")
}

func testAuditsExpire(t *testing.T, h Harness) {
	record := func(req, batch string) {
		t.Helper()
		commitFor(t, h.Store, tradeKey(req, "t1"), "ok", 10*time.Minute,
			store.RecordAuditEffect{Audit: audit("t1", batch, domain.AuditAccept, req), Retention: time.Hour})
	}
	record("r1", "b1")
	h.Age(40 * time.Minute)
	record("r2", "b2")
	h.Age(40 * time.Minute) // 80 minutes after the first audit, 40 after the last
	wantAudits(t, h.Store, "t1", 2)
	h.Age(21 * time.Minute)
	wantAudits(t, h.Store, "t1", 0)
}

func testBadFinalRetention(t *testing.T, h Harness) {
	if _, err := h.Store.PutOrderRetained(t.Context(), final("o1"), -time.Second); err == nil {
		t.Fatal("PutOrderRetained with a negative retention succeeded")
	}
	wantNoOrder(t, h.Store, "o1")
	k := orderKey("r1", "o1")
	tok := start(t, h.Store, k, "fp1")
	for _, e := range []store.Effect{
		store.PutOrderEffect{Order: final("o1"), Retention: -time.Second},
		store.RecordAuditEffect{Audit: audit("t1", "b1", domain.AuditAccept, "r1"), Retention: -time.Second},
	} {
		if err := h.Store.Commit(t.Context(), k, tok, []byte("ok"), retention, e); err == nil {
			t.Fatalf("Commit(%T) with a negative retention succeeded", e)
		}
	}
	wantNoOrder(t, h.Store, "o1")
	wantState(t, h.Store, k, "fp1", store.InProgress)
}

// A stored answer never outlives the entity it speaks of: a commit leaves
// the entity's deadline no earlier than the record's.

func testAnswerKeepsEffect(t *testing.T, h Harness) {
	k := orderKey("r1", "o1")
	commitFor(t, h.Store, k, "ok", time.Hour, store.PutOrderEffect{Order: final("o1"), Retention: 10 * time.Minute})
	h.Age(time.Hour - time.Minute)
	wantAnswer(t, h.Store, k, "ok")
	get(t, h.Store, "o1")
	h.Age(2 * time.Minute)
	wantNoAnswer(t, h.Store, k)
	wantNoOrder(t, h.Store, "o1")
}

func testAnswerKeepsOrder(t *testing.T, h Harness) {
	o := putFor(t, h.Store, final("o1"), time.Hour)
	h.Age(50 * time.Minute)
	// Say, an F (ORDER_STATUS_INVALID) about the final order: no effect.
	k := orderKey("r1", "o1")
	commitFor(t, h.Store, k, "F", time.Hour, nil)
	h.Age(time.Hour - time.Minute) // 109 minutes after the order's last change
	wantReplay(t, h.Store, k, "fp-r1", []byte("F"))
	wantOrder(t, h.Store, o)
	h.Age(2 * time.Minute)
	wantNoAnswer(t, h.Store, k)
	wantNoOrder(t, h.Store, "o1")
}

func testAnswerKeepsAudits(t *testing.T, h Harness) {
	k := tradeKey("r1", "t1")
	commitFor(t, h.Store, k, "ok", time.Hour, store.RecordAuditEffect{Audit: audit("t1", "b1", domain.AuditAccept, "r1"), Retention: 10 * time.Minute})
	h.Age(time.Hour - time.Minute)
	wantAnswer(t, h.Store, k, "ok")
	wantAudits(t, h.Store, "t1", 1)
	h.Age(2 * time.Minute)
	wantNoAnswer(t, h.Store, k)
	wantAudits(t, h.Store, "t1", 0)
}

func testForeverAnswerKeepsOrder(t *testing.T, h Harness) {
	o := putFor(t, h.Store, final("o1"), 10*time.Minute)
	k := orderKey("r1", "o1")
	commitFor(t, h.Store, k, "ok", 0, nil)
	a := tradeKey("r2", "t1")
	commitFor(t, h.Store, a, "ok", 0, store.RecordAuditEffect{Audit: audit("t1", "b1", domain.AuditAccept, "r2"), Retention: 10 * time.Minute})
	h.Age(100 * 365 * 24 * time.Hour)
	wantAnswer(t, h.Store, k, "ok")
	wantOrder(t, h.Store, o)
	wantAnswer(t, h.Store, a, "ok")
	wantAudits(t, h.Store, "t1", 1)
}

func testAnswerLeavesNonFinal(t *testing.T, h Harness) {
	o := putFor(t, h.Store, order("o1"), 10*time.Minute)
	commitFor(t, h.Store, orderKey("r1", "o1"), "ok", time.Hour, nil)
	h.Age(100 * 365 * 24 * time.Hour)
	wantOrder(t, h.Store, o)
}

func testAnswerCreatesNothing(t *testing.T, h Harness) {
	// Say, an F (ORDER_NOT_EXIST).
	commitFor(t, h.Store, orderKey("r1", "o1"), "F", time.Hour, nil)
	commitFor(t, h.Store, tradeKey("r2", "t1"), "F", 0, nil)
	wantNoOrder(t, h.Store, "o1")
	wantAudits(t, h.Store, "t1", 0)
	// The order made afterwards is new (version 0) and expires as usual.
	putFor(t, h.Store, final("o1"), 10*time.Minute)
	h.Age(11 * time.Minute)
	wantNoOrder(t, h.Store, "o1")
}

// The stored answer, found by operation, caller and requestId alone.

func testAnswerStored(t *testing.T, h Harness) {
	resp := "{\"result\":{}}\n\x00\xff binary-safe"
	for _, k := range []store.Key{orderKey("r1", "o1"), tradeKey("r1", "t1")} {
		commitFor(t, h.Store, k, resp, retention, nil)
		wantAnswer(t, h.Store, k, resp)
	}
}

func testAnswerNoneStored(t *testing.T, h Harness) {
	k := orderKey("r1", "o1")
	wantNoAnswer(t, h.Store, k) // never begun
	tok := start(t, h.Store, k, "fp1")
	wantNoAnswer(t, h.Store, k) // in progress
	if err := h.Store.Release(t.Context(), k, tok); err != nil {
		t.Fatal(err)
	}
	wantNoAnswer(t, h.Store, k) // answered U: the claim lives on, no record

	commit(t, h.Store, k, start(t, h.Store, k, "fp1"), []byte("ok"), nil)
	wantAnswer(t, h.Store, k, "ok")
	for _, other := range []store.Key{
		{Op: k.Op, ClientID: "client-2", RequestID: k.RequestID},
		{Op: "notifyDeliveryAuditResult", ClientID: k.ClientID, RequestID: k.RequestID},
		{Op: k.Op, ClientID: k.ClientID, RequestID: "r2"},
	} {
		wantNoAnswer(t, h.Store, other)
	}
}

func testAnswerExpired(t *testing.T, h Harness) {
	k := tradeKey("r1", "t1")
	commitFor(t, h.Store, k, "ok", 10*time.Minute, nil)
	h.Age(9 * time.Minute)
	wantAnswer(t, h.Store, k, "ok")
	h.Age(2 * time.Minute)
	wantNoAnswer(t, h.Store, k)
}

func testAnswerNamesItsEntity(t *testing.T, h Harness) {
	// Ids a key would have to escape.
	a, b := orderKey("r:1", "o:1%3A{x}"), orderKey("r:1", "B")
	commitFor(t, h.Store, a, "ok", retention, nil)
	// The requestId reused for another order: refused, and the lookup
	// still finds the first.
	wantState(t, h.Store, b, "fp-other", store.Mismatch)
	wantAnswer(t, h.Store, a, "ok")
	wantAnswer(t, h.Store, b, "ok") // the same request: op, client, requestId
}

// Concurrency.

func testConcurrentBegin(t *testing.T, h Harness) {
	const n = 50
	k := orderKey("r1", "o1")
	var (
		wg      sync.WaitGroup
		ready   = make(chan struct{})
		results = make([]store.Begun, n)
		errs    = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-ready
			results[i], errs[i] = h.Store.Begin(t.Context(), k, "fp1", Lease)
		})
	}
	close(ready)
	wg.Wait()

	counts := map[store.BeginState]int{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Begin %d: %v", i, errs[i])
		}
		counts[results[i].State]++
	}
	want := map[store.BeginState]int{store.Started: 1, store.InProgress: n - 1}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Fatalf("outcomes of %d concurrent Begins (-want +got):\n%s", n, diff)
	}
}

func testPing(t *testing.T, h Harness) {
	if err := h.Store.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
