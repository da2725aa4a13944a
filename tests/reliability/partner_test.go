package reliability

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orderhub/orderhub/generated/client"
	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/tests/conformance"
)

const (
	pathCompletion = "/v2/pds/order/notifyOrderCompletion"
	pathAudit      = "/v1/delivery/notifyDeliveryAuditResult"

	msgUnknown = "An API calling is failed, which is caused by unknown reasons."
)

// partner calls orderhub as a registered client: requests signed with its
// key, every response checked by the conformance transport against the
// contract and orderhub's signature.
type partner struct {
	t        *testing.T
	clientID string
	signer   *signature.Signer
	http     *http.Client
	// conformance checks responses against the contract; pub is
	// orderhub's key, which every partner answer must verify with.
	conformance *conformance.Transport
	pub         *rsa.PublicKey
}

// checkEvery makes the partner check every response it receives against
// the contract and orderhub's signature; without it, the test checks the
// answers it picks with conforms (kin-openapi validation under -race costs
// more than the request itself).
type checkEvery bool

func newPartner(t *testing.T, clientID string, k testKeys, every checkEvery) *partner {
	t.Helper()
	// Enough idle connections for every sender: a new TCP connection per
	// request would fill the port range with TIME_WAIT in a long run.
	base := &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute}
	t.Cleanup(base.CloseIdleConnections)
	p := &partner{
		t:           t,
		clientID:    clientID,
		signer:      &signature.Signer{ClientID: clientID, KeyVersion: 1, Key: k.client},
		http:        &http.Client{Transport: base, Timeout: 30 * time.Second}, // a bound for a hung test, not a measure
		conformance: conformance.New(t, base, conformance.WithSignatureKey(&k.orderhub.PublicKey, conformance.Clients(clientID))),
		pub:         &k.orderhub.PublicKey,
	}
	if every {
		p.http.Transport = p.conformance
	}
	return p
}

// conforms checks one answer against the contract and, being a partner
// API's, orderhub's signature.
func (p *partner) conforms(a answer) error {
	if err := p.conformance.Check(a.req, a.status, a.header, a.body); err != nil {
		return fmt.Errorf("contract: %w", err)
	}
	if err := conformance.CheckSignature(p.pub, a.req, a.header, a.body); err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	return nil
}

// api is the generated client of the orderhub at baseURL, sending operator
// calls with the admin token.
func (p *partner) api(baseURL string) *client.ClientWithResponses {
	c, err := client.NewClientWithResponses(baseURL, client.WithHTTPClient(p.http),
		client.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			if strings.HasPrefix(req.URL.Path, "/ops/") {
				req.Header.Set("Authorization", "Bearer "+adminToken)
			}
			return nil
		}))
	if err != nil {
		p.t.Fatalf("client: %v", err) // only for a malformed URL
	}
	return c
}

// note is one notification, signed once: every send of it, first or
// replay, carries the same bytes and headers.
type note struct {
	path      string // pathCompletion or pathAudit
	requestID string
	orderID   string // completion: the order it completes
	tradeID   string // audit: the trade and batch it records
	batchID   string
	created   int64 // completion: the order's version before (markCreated)
	body      []byte
	signed    http.Header // Client-Id, Request-Time, Signature
}

func (n *note) String() string { return n.path + " " + n.requestID }

// completion is a signed notifyOrderCompletion of orderID.
func (p *partner) completion(requestID, orderID string) *note {
	p.t.Helper()
	return p.sign(&note{path: pathCompletion, requestID: requestID, orderID: orderID},
		models.NotifyOrderCompletionRequest{RequestID: requestID, RequestOrderID: orderID})
}

// audit is a signed notifyDeliveryAuditResult of batchID of tradeID.
func (p *partner) audit(requestID, tradeID, batchID string) *note {
	p.t.Helper()
	return p.sign(&note{path: pathAudit, requestID: requestID, tradeID: tradeID, batchID: batchID},
		models.NotifyDeliveryAuditResultRequest{RequestID: requestID, TradeID: tradeID, DeliveryBatchID: batchID, DeliveryAuditStatus: models.DeliveryAuditStatusAccept})
}

// sign encodes body and signs it with signature.Signer as a send would.
func (p *partner) sign(n *note, body any) *note {
	p.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		p.t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, "http://orderhub"+n.path, bytes.NewReader(b))
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.signer.Edit(context.Background(), req); err != nil {
		p.t.Fatalf("signing %s: %v", n.path, err)
	}
	n.body, n.signed = b, req.Header.Clone()
	return n
}

// presigned is a request editor that puts the note's signed headers on.
func (n *note) presigned(_ context.Context, req *http.Request) error {
	for _, h := range []string{"Client-Id", "Request-Time", "Signature"} {
		req.Header.Set(h, n.signed.Get(h))
	}
	return nil
}

// answer is one response as it came over the wire.
type answer struct {
	req    *http.Request // what was sent
	status int
	header http.Header
	body   []byte
	result models.Result // zero when the body has no envelope
	took   time.Duration
}

func (a answer) String() string {
	return fmt.Sprintf("HTTP %d %s (%s)", a.status, a.body, a.took.Round(time.Millisecond))
}

func (a answer) is(s models.ResultStatus) bool {
	return a.status == http.StatusOK && a.result.ResultStatus == s
}

// final: S or F, which the partner must not send again; U and transport
// failures are to be retried.
func (a answer) final() bool {
	return a.is(models.ResultStatusSuccess) || a.is(models.ResultStatusFailure)
}

// unknown reports whether a is the U answer the contract prescribes.
func (a answer) unknown() bool {
	return a.is(models.ResultStatusUnknown) && a.result.ResultCode == "UNKNOWN_EXCEPTION" && a.result.ResultMessage == msgUnknown
}

// send posts n, exactly as signed, to the orderhub at baseURL through the
// generated client.
func (p *partner) send(ctx context.Context, baseURL string, n *note) (answer, error) {
	c := p.api(baseURL)
	start := time.Now()
	var (
		res  *http.Response
		body []byte
		err  error
	)
	switch n.path {
	case pathCompletion:
		var r *client.NotifyOrderCompletionHTTPResponse
		//lint:ignore SA1019 deprecated by the platform, still served: its behaviour is tested
		if r, err = c.NotifyOrderCompletionWithBodyWithResponse(ctx, nil, "application/json", bytes.NewReader(n.body), n.presigned); err == nil {
			res, body = r.HTTPResponse, r.Body
		}
	case pathAudit:
		var r *client.NotifyDeliveryAuditResultHTTPResponse
		if r, err = c.NotifyDeliveryAuditResultWithBodyWithResponse(ctx, nil, "application/json", bytes.NewReader(n.body), n.presigned); err == nil {
			res, body = r.HTTPResponse, r.Body
		}
	default:
		return answer{}, fmt.Errorf("test bug: no operation at %s", n.path)
	}
	if err != nil {
		return answer{}, err
	}
	a := answer{req: res.Request, status: res.StatusCode, header: res.Header, body: body, took: time.Since(start)}
	var env struct {
		Result models.Result `json:"result"`
	}
	if json.Unmarshal(body, &env) == nil {
		a.result = env.Result
	}
	return a, nil
}

// untilFinal sends n until the answer is final (S or F), retrying U
// answers and transport failures every `every`, for at most within. It
// returns the final answer and how many sends it took; an answer that is
// neither final nor the contract's U ends it at once, as an error.
func (p *partner) untilFinal(ctx context.Context, baseURL string, n *note, within, every time.Duration) (answer, int, error) {
	var final, last answer
	var odd, lastErr error
	sends := 0
	err := poll(ctx, within, every, func() (bool, error) {
		sends++
		a, err := p.send(ctx, baseURL, n)
		switch {
		case err != nil:
			lastErr = err
			return false, nil
		case a.final():
			final = a
			return true, nil
		case !a.unknown():
			odd = fmt.Errorf("%v: neither final nor U/UNKNOWN_EXCEPTION: %v", n, a)
			return true, nil
		}
		last = a
		return false, nil
	})
	switch {
	case odd != nil:
		return answer{}, sends, odd
	case err != nil:
		return answer{}, sends, fmt.Errorf("%v: no final answer after %d sends (%w); last U %v, last transport error %v", n, sends, err, last, lastErr)
	}
	return final, sends, nil
}

// putOrder creates an order through the operator API.
func (p *partner) putOrder(ctx context.Context, baseURL, id string, status models.OrderStatus) error {
	res, err := p.api(baseURL).PutOrderWithResponse(ctx, id, models.PutOrderRequest{PosOrderID: "pos-" + id, OrderStatus: status})
	if err != nil {
		return fmt.Errorf("putOrder %s: %w", id, err)
	}
	if res.JSON200 == nil {
		return fmt.Errorf("putOrder %s: HTTP %d %s", id, res.StatusCode(), res.Body)
	}
	return nil
}

// order reads an order through the operator API.
func (p *partner) order(ctx context.Context, baseURL, id string) (models.Order, error) {
	res, err := p.api(baseURL).GetOrderWithResponse(ctx, id)
	if err != nil {
		return models.Order{}, fmt.Errorf("getOrder %s: %w", id, err)
	}
	if res.JSON200 == nil {
		return models.Order{}, fmt.Errorf("getOrder %s: HTTP %d %s", id, res.StatusCode(), res.Body)
	}
	return *res.JSON200, nil
}

// audits lists a trade's delivery audits through the operator API.
func (p *partner) audits(ctx context.Context, baseURL, tradeID string) ([]models.DeliveryAudit, error) {
	res, err := p.api(baseURL).ListDeliveryAuditsWithResponse(ctx, tradeID)
	if err != nil {
		return nil, fmt.Errorf("listDeliveryAudits %s: %w", tradeID, err)
	}
	if res.JSON200 == nil {
		return nil, fmt.Errorf("listDeliveryAudits %s: HTTP %d %s", tradeID, res.StatusCode(), res.Body)
	}
	return res.JSON200.DeliveryAudits, nil
}
