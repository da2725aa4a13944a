// Package contract drives orderhub over real HTTP, backed by a real
// redis-server, through the generated client; every request is signed as a
// registered partner would sign it, and every response passes through the
// conformance transport: validated against openapi/orderhub.yaml and, for
// partner APIs, checked to carry orderhub's valid signature.
package contract

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/orderhub/orderhub/generated/client"
	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/clients"
	"github.com/orderhub/orderhub/impl/httpapi"
	"github.com/orderhub/orderhub/impl/ijson"
	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/tests/conformance"
	"github.com/orderhub/orderhub/tests/testkit"
)

const (
	adminToken = "contract-test-admin-token"

	pathCompletion = "/v2/pds/order/notifyOrderCompletion"
	pathInquire    = "/v2/pos/inquireOrderDetail"
	pathAudit      = "/v1/delivery/notifyDeliveryAuditResult"
	pathChange     = "/v2/pos/notifyOrderChange"

	msgUnknown = "An API calling is failed, which is caused by unknown reasons."

	// requestTimeout bounds each request of the service under test, its
	// body's arrival included.
	requestTimeout = 2 * time.Second
)

// testKeys are the RSA key pairs of the suite: testkit's fixed keys.
type testKeys struct {
	orderhub *rsa.PrivateKey // signs orderhub's responses
	client   *rsa.PrivateKey // env.clientID's key, version 1
	alt      *rsa.PrivateKey // another registered key (another client, or a rotation's version 2)
	stranger *rsa.PrivateKey // registered nowhere
}

func keys(t testing.TB) testKeys {
	t.Helper()
	return testKeys{orderhub: testkit.Key(t, 0), client: testkit.Key(t, 1), alt: testkit.Key(t, 2), stranger: testkit.Key(t, 3)}
}

// keyEntry registers key's public half as a client's version v.
func keyEntry(t testing.TB, v int, key *rsa.PrivateKey) clients.KeyEntry {
	t.Helper()
	return clients.KeyEntry{Version: v, PublicKey: testkit.PublicKey(t, &key.PublicKey)}
}

// env is one running orderhub: its own Redis (redis-server or cluster),
// store, HTTP server and clients. Nothing is shared between envs.
type env struct {
	t        *testing.T
	redis    redisProcess
	st       store.Store            // the store itself: Redis, or memory with withMemoryStore
	counting *testkit.CountingStore // what the service was given
	srv      *httptest.Server
	http     *http.Client // with the conformance transport
	c        *client.ClientWithResponses
	clientID string

	keys        testKeys
	pub         *rsa.PublicKey    // orderhub's: every partner response verifies with it
	signer      *signature.Signer // signs as clientID, key version 1
	clients     *clients.Source   // the registry the service reads
	clientsFile string            // its file, with withClientsFile
}

type envConfig struct {
	now               func() time.Time
	signerNow         func() time.Time
	redisArgs         []string
	registry          registryFunc
	clientsFile       bool
	signingKeyVersion int
	timeWindow        time.Duration
	rateLimit         rateLimitHook // withRateLimit
	memory            bool          // withMemoryStore
	faults            bool          // withFaults
	retention         time.Duration // withRetention: answers (0: forever)
	finalRetention    time.Duration // withRetention: final orders and audits (0: forever)
}

type envOption func(*envConfig)

// withStepClock gives the service c.Now, which advances on every reading;
// the signer reads c.Peek, which does not, so that signing leaves the
// service's clock as it is.
func withStepClock(c *stepClock) envOption {
	return func(cfg *envConfig) { cfg.now, cfg.signerNow = c.Now, c.Peek }
}

// registryFunc makes the clients file of an env whose client is clientID;
// ops are every partner operation.
type registryFunc func(t testing.TB, clientID string, k testKeys, ops []string) []clients.Entry

// withRegistry replaces defaultRegistry.
func withRegistry(f registryFunc) envOption {
	return func(c *envConfig) { c.registry = f }
}

// withClientsFile serves the registry from a file through clients.Open, so
// that a test can rewrite it (writeClients) and Reload.
func withClientsFile() envOption {
	return func(c *envConfig) { c.clientsFile = true }
}

func withSigningKeyVersion(v int) envOption {
	return func(c *envConfig) { c.signingKeyVersion = v }
}

func withTimeWindow(d time.Duration) envOption {
	return func(c *envConfig) { c.timeWindow = d }
}

// defaultRegistry registers clientID for every partner operation, listed
// by name, with the client key as version 1.
func defaultRegistry(t testing.TB, id string, k testKeys, ops []string) []clients.Entry {
	return []clients.Entry{testkit.Entry(t, id, &k.client.PublicKey, ops...)}
}

// withMemoryStore keeps the env's state in orderhub's in-memory store, as
// make run and orderhubtest do, instead of a Redis; e.redis is nil.
func withMemoryStore() envOption {
	return func(c *envConfig) { c.memory = true }
}

// withRetention keeps answers for answers and final orders and audits for
// final after their last write (0: forever, as without it).
func withRetention(answers, final time.Duration) envOption {
	return func(c *envConfig) { c.retention, c.finalRetention = answers, final }
}

// withFaults turns on the fault rules of the operator API.
func withFaults() envOption {
	return func(c *envConfig) { c.faults = true }
}

// withDurableRedis makes redis-server write every command to its AOF before
// answering, so data survives Stop (a SIGKILL) and Restart.
func withDurableRedis() envOption {
	return func(c *envConfig) {
		c.redisArgs = append(c.redisArgs, "--appendonly", "yes", "--appendfsync", "always")
	}
}

var seq atomic.Int64

// uid returns an id unique in the test binary, readable in failures.
func uid(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, seq.Add(1))
}

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	var cfg envConfig
	for _, o := range opts {
		o(&cfg)
	}
	var (
		srv redisProcess
		rdb redis.UniversalClient
		st  store.Store
	)
	if cfg.memory {
		st = store.NewMemory(cfg.now)
	} else {
		srv, rdb = startRedis(t, cfg.redisArgs) // a redis-server, or a cluster (ORDERHUB_TEST_REDIS)
		st = store.NewRedis(rdb)
	}
	counting := testkit.NewCountingStore(st)
	e := &env{redis: srv, st: st, counting: counting, clientID: uid("client"), keys: keys(t)}
	e.pub = &e.keys.orderhub.PublicKey
	e.signer = &signature.Signer{ClientID: e.clientID, KeyVersion: 1, Key: e.keys.client, Now: cfg.signerNow}

	if cfg.registry == nil {
		cfg.registry = defaultRegistry
	}
	ops := testkit.PartnerOperations(t)
	entries := cfg.registry(t, e.clientID, e.keys, ops)
	if cfg.clientsFile {
		e.clientsFile = testkit.ClientsFile(t, entries...)
		var err error
		if e.clients, err = clients.Open(e.clientsFile, ops); err != nil {
			t.Fatalf("clients.Open: %v", err)
		}
	} else {
		e.clients = testkit.Clients(t, entries...)
	}

	h, err := httpapi.New(counting, httpapi.Config{
		Clients:           e.clients,
		SigningKey:        e.keys.orderhub,
		SigningKeyVersion: cfg.signingKeyVersion,
		TimeWindow:        cfg.timeWindow,
		AdminToken:        adminToken,
		RequestTimeout:    requestTimeout,
		Retention:         cfg.retention,
		FinalRetention:    cfg.finalRetention,
		Now:               cfg.now,
		RateLimit:         cfg.limiter(rdb),
		// Every answer's signature is checked, refusals to registered
		// clients that did not prove themselves included: more of those
		// than the default budget signs.
		SignedRefusals: 1 << 20,
		Faults:         cfg.faults,
	})
	if err != nil {
		t.Fatalf("httpapi.New: %v", err)
	}
	e.srv = httptest.NewUnstartedServer(h)
	// As the service's own server: a body slower than a request's time is
	// answered 408.
	e.srv.Config.ReadTimeout = requestTimeout
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	e.bind(t)
	return e
}

// writeClients rewrites the registry file (withClientsFile) and reloads it.
func (e *env) writeClients(entries []clients.Entry) {
	e.t.Helper()
	if e.clientsFile == "" {
		e.t.Fatal("test bug: writeClients needs withClientsFile")
	}
	doc, err := clients.File{Clients: entries}.Marshal()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(e.clientsFile, doc, 0o600); err != nil {
		e.t.Fatal(err)
	}
	if err := e.clients.Reload(); err != nil {
		e.t.Fatalf("Reload: %v", err)
	}
}

// bind makes t the test that e's calls and conformance violations are
// reported to.
func (e *env) bind(t *testing.T) {
	t.Helper()
	registered := func(id string) bool {
		cl, ok := e.clients.Current().Lookup(id)
		return ok && !cl.Disabled
	}
	hc := &http.Client{Transport: conformance.New(t, nil, conformance.WithSignatureKey(e.pub, registered)), Timeout: 10 * time.Second}
	c, err := client.NewClientWithResponses(e.srv.URL, client.WithHTTPClient(hc), client.WithRequestEditorFn(e.signer.Edit))
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	e.t, e.http, e.c = t, hc, c
}

// sub is e, the same servers and Client-Id, reporting to subtest t.
func (e *env) sub(t *testing.T) *env {
	t.Helper()
	cp := *e
	cp.bind(t)
	return &cp
}

// effects is how many commits have written a business effect so far.
func (e *env) effects() int {
	_, n := e.counting.Totals()
	return n
}

// stepClock advances by one second on every reading, so an answer computed
// twice differs in its Response-Time.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func newStepClock() *stepClock {
	return &stepClock{t: time.Now().Truncate(time.Second)}
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// Peek reads the clock without advancing it.
func (c *stepClock) Peek() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// reply is what came back over the wire.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) String() string {
	return fmt.Sprintf("HTTP %d %s", r.status, r.body)
}

// result decodes the envelope of the body; a body without one fails.
func (r reply) result(t *testing.T) models.Result {
	t.Helper()
	var env struct {
		Result *models.Result `json:"result"`
	}
	if err := json.Unmarshal(r.body, &env); err != nil || env.Result == nil {
		t.Fatalf("no result envelope in %v (err %v)", r, err)
	}
	return *env.Result
}

// wantResult checks status and code, the UNKNOWN_EXCEPTION and SUCCESS
// messages, and that the message echoes none of the offending values.
func (r reply) wantResult(t *testing.T, httpStatus int, status models.ResultStatus, code string, notInMessage ...string) models.Result {
	t.Helper()
	if r.status != httpStatus {
		t.Errorf("HTTP status %d, want %d (%v)", r.status, httpStatus, r)
	}
	got := r.result(t)
	if got.ResultStatus != status || string(got.ResultCode) != code {
		t.Errorf("result %s/%s (%q), want %s/%s", got.ResultStatus, got.ResultCode, got.ResultMessage, status, code)
	}
	switch code {
	case "SUCCESS":
		if got.ResultMessage != "success" {
			t.Errorf("SUCCESS message %q, want %q", got.ResultMessage, "success")
		}
	case "UNKNOWN_EXCEPTION":
		if got.ResultMessage != msgUnknown {
			t.Errorf("UNKNOWN_EXCEPTION message %q, want %q", got.ResultMessage, msgUnknown)
		}
	}
	if got.ResultMessage == "" {
		t.Errorf("empty resultMessage")
	}
	for _, v := range notInMessage {
		if v != "" && strings.Contains(got.ResultMessage, v) {
			t.Errorf("resultMessage %q echoes the offending value %q", got.ResultMessage, v)
		}
	}
	return got
}

func (e *env) ctx() context.Context { return e.t.Context() }

// bearer authorises an operator call.
func bearer(token string) client.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

var admin = bearer(adminToken)

// withoutHeader removes a header the generated client always sends.
func withoutHeader(name string) client.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Del(name)
		return nil
	}
}

// partnerOperation is a partner operation as the generated client sends
// it: by its <Op>WithBodyWithResponse, with no header values: e's signer,
// the client's request editor, sets Client-Id, Request-Time and Signature.
type partnerOperation struct {
	id   string
	send func(ctx context.Context, e *env, contentType string, body io.Reader, editors []client.RequestEditorFn) (reply, error)
}

var (
	opCompletion = partnerOperation{"notifyOrderCompletion", func(ctx context.Context, e *env, contentType string, body io.Reader, editors []client.RequestEditorFn) (reply, error) {
		//lint:ignore SA1019 deprecated by the platform, still served: its behaviour is tested
		res, err := e.c.NotifyOrderCompletionWithBodyWithResponse(ctx, nil, contentType, body, editors...)
		if err != nil {
			return reply{}, err
		}
		return reply{res.StatusCode(), res.HTTPResponse.Header, res.Body}, nil
	}}
	opInquire = partnerOperation{"inquireOrderDetail", func(ctx context.Context, e *env, contentType string, body io.Reader, editors []client.RequestEditorFn) (reply, error) {
		res, err := e.c.InquireOrderDetailWithBodyWithResponse(ctx, nil, contentType, body, editors...)
		if err != nil {
			return reply{}, err
		}
		return reply{res.StatusCode(), res.HTTPResponse.Header, res.Body}, nil
	}}
	opChange = partnerOperation{"notifyOrderChange", func(ctx context.Context, e *env, contentType string, body io.Reader, editors []client.RequestEditorFn) (reply, error) {
		res, err := e.c.NotifyOrderChangeWithBodyWithResponse(ctx, nil, contentType, body, editors...)
		if err != nil {
			return reply{}, err
		}
		return reply{res.StatusCode(), res.HTTPResponse.Header, res.Body}, nil
	}}
	opAudit = partnerOperation{"notifyDeliveryAuditResult", func(ctx context.Context, e *env, contentType string, body io.Reader, editors []client.RequestEditorFn) (reply, error) {
		res, err := e.c.NotifyDeliveryAuditResultWithBodyWithResponse(ctx, nil, contentType, body, editors...)
		if err != nil {
			return reply{}, err
		}
		return reply{res.StatusCode(), res.HTTPResponse.Header, res.Body}, nil
	}}
)

// requestTime fills the generated client's Request-Time parameter; the

// rawBody is a request body sent as it is, with its Content-Type.
type rawBody struct{ contentType, body string }

// completion is notifyOrderCompletion's body.
func completion(requestID, orderID string) models.NotifyOrderCompletionRequest {
	return models.NotifyOrderCompletionRequest{RequestID: requestID, RequestOrderID: orderID}
}

// inquiry is inquireOrderDetail's body.
func inquiry(orderID string) models.InquireOrderDetailRequest {
	return models.InquireOrderDetailRequest{RequestOrderID: orderID}
}

// call sends body to op with the generated client, signed as e's client,
// through the conformance transport (which checks the answer against the
// contract and orderhub's signature); a failure to send fails the test.
// body is a rawBody, or a request model sent as the client's typed methods
// send it: JSON, as application/json.
func (e *env) call(op partnerOperation, body any, editors ...client.RequestEditorFn) reply {
	e.t.Helper()
	r, err := e.send(e.ctx(), op, body, editors...)
	if err != nil {
		e.t.Fatalf("%s: %v", op.id, err)
	}
	return r
}

// send is call for any goroutine: it returns the error.
func (e *env) send(ctx context.Context, op partnerOperation, body any, editors ...client.RequestEditorFn) (reply, error) {
	raw, ok := body.(rawBody)
	if !ok {
		b, err := json.Marshal(body)
		if err != nil {
			return reply{}, err
		}
		raw = rawBody{"application/json", string(b)}
	}
	return op.send(ctx, e, raw.contentType, strings.NewReader(raw.body), editors)
}

// raw sends any request through the conformance transport, signed by the
// env's signer (Client-Id, Request-Time and Signature set).
func (e *env) raw(method, path, contentType string, body []byte) reply {
	e.t.Helper()
	req := e.request(method, path, contentType, body)
	if err := e.signer.Edit(e.ctx(), req); err != nil {
		e.t.Fatalf("signing: %v", err)
	}
	return e.do(req)
}

// request builds a request to the service, unsigned.
func (e *env) request(method, path, contentType string, body []byte) *http.Request {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.ctx(), method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

// do sends req, as it is, through the conformance transport.
func (e *env) do(req *http.Request) reply {
	e.t.Helper()
	res, err := e.http.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return reply{res.StatusCode, res.Header, b}
}

// putOrder creates or updates an order through the operator API.
func (e *env) putOrder(id string, status models.OrderStatus, info *models.ExtendInfo) models.Order {
	e.t.Helper()
	res, err := e.c.PutOrderWithResponse(e.ctx(), id, models.PutOrderRequest{PosOrderID: "pos-" + id, OrderStatus: status, ExtendInfo: info}, admin)
	if err != nil {
		e.t.Fatalf("putOrder: %v", err)
	}
	if res.JSON200 == nil {
		e.t.Fatalf("putOrder %s %s: HTTP %d %s", id, status, res.StatusCode(), res.Body)
	}
	return *res.JSON200
}

// newOrder creates an order with a fresh id.
func (e *env) newOrder(status models.OrderStatus) string {
	e.t.Helper()
	id := uid("order")
	e.putOrder(id, status, nil)
	return id
}

// orderStatus reads an order's status through the operator API.
func (e *env) orderStatus(id string) models.OrderStatus {
	e.t.Helper()
	res, err := e.c.GetOrderWithResponse(e.ctx(), id, admin)
	if err != nil {
		e.t.Fatalf("getOrder: %v", err)
	}
	if res.JSON200 == nil {
		e.t.Fatalf("getOrder %s: HTTP %d %s", id, res.StatusCode(), res.Body)
	}
	return res.JSON200.OrderStatus
}

// version reads an order's version straight from the store.
func (e *env) version(id string) int64 {
	e.t.Helper()
	o, err := e.st.GetOrder(e.ctx(), id)
	if err != nil {
		e.t.Fatalf("store.GetOrder %s: %v", id, err)
	}
	return o.Version
}

func (e *env) audits(tradeID string) []models.DeliveryAudit {
	e.t.Helper()
	res, err := e.c.ListDeliveryAuditsWithResponse(e.ctx(), tradeID, admin)
	if err != nil {
		e.t.Fatalf("listDeliveryAudits: %v", err)
	}
	if res.JSON200 == nil {
		e.t.Fatalf("listDeliveryAudits %s: HTTP %d %s", tradeID, res.StatusCode(), res.Body)
	}
	if res.JSON200.TradeID != tradeID {
		e.t.Errorf("listDeliveryAudits tradeId %q, want %q", res.JSON200.TradeID, tradeID)
	}
	return res.JSON200.DeliveryAudits
}

// fingerprint is the service's idempotency fingerprint of body.
func fingerprint(t *testing.T, body []byte) string {
	t.Helper()
	fp, err := ijson.Fingerprint(body)
	if err != nil {
		t.Fatalf("fingerprint: %v", err)
	}
	return fp
}

// holdInProgress begins k in the store as a concurrent request would, and
// returns a func that releases it.
func (e *env) holdInProgress(k store.Key, body []byte) (release func()) {
	e.t.Helper()
	k.ClientID = e.clientID
	begun, err := e.st.Begin(e.ctx(), k, fingerprint(e.t, body), time.Minute)
	if err != nil || begun.State != store.Started {
		e.t.Fatalf("store.Begin: %v %v", begun.State, err)
	}
	return func() {
		e.t.Helper()
		if err := e.st.Release(e.ctx(), k, begun.Token); err != nil {
			e.t.Fatalf("store.Release: %v", err)
		}
	}
}

// jsonValue decodes JSON keeping numbers exact.
func jsonValue(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return v
}

// sameJSON reports the semantic difference of two JSON documents.
func sameJSON(t *testing.T, got, want []byte) string {
	t.Helper()
	return cmp.Diff(jsonValue(t, want), jsonValue(t, got))
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
