package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/orderhub/orderhub/generated/client"
	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/impl/signature"
)

// The partner paths, as the contract names them.
const (
	auditPath      = "/v1/delivery/notifyDeliveryAuditResult"
	completionPath = "/v2/pds/order/notifyOrderCompletion"
	inquiryPath    = "/v2/pos/inquireOrderDetail"
)

// clientID is the one registered caller of most scenarios. freshClients
// more are registered with the same key, so that a scenario rotating
// through them gets answers whose signed content (which names the
// Client-Id) is new each time: orderhub reuses a signature only for
// identical content within one Response-Time second.
const (
	clientID     = "bench"
	freshClients = 4096
)

func freshClient(i int) string { return fmt.Sprintf("bench-%04d", i%freshClients) }

// keys are the bench's key pairs, made anew each run.
type keys struct {
	orderhub     *rsa.PrivateKey // signs orderhub's and the sign-only baseline's answers
	orderhubFile string
	client       *rsa.PrivateKey // signs every caller's requests
	clientsFile  string
}

// makeKeys writes orderhub's key and the clients file into dir.
func makeKeys(dir string) (*keys, error) {
	k := &keys{orderhubFile: filepath.Join(dir, "orderhub-private.pem"), clientsFile: filepath.Join(dir, "clients.yaml")}
	var err error
	if k.orderhub, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if k.client, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.orderhub)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(k.orderhubFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	pub, err := signature.MarshalPublicKey(&k.client.PublicKey)
	if err != nil {
		return nil, err
	}
	// Written by hand rather than with impl/clients, so that the bench
	// reads the file format as an operator does.
	var b strings.Builder
	b.WriteString("clients:\n")
	entry := func(id string) {
		fmt.Fprintf(&b, "  - clientId: %s\n    operations: [\"*\"]\n    keys:\n      - version: 1\n        publicKey: %s\n", id, pub)
	}
	entry(clientID)
	for i := range freshClients {
		entry(freshClient(i))
	}
	return k, os.WriteFile(k.clientsFile, []byte(b.String()), 0o600)
}

// spec is a request to sign: its caller and how the generated client
// builds it.
type spec struct {
	clientID string
	build    func(server string) (*http.Request, error)
}

// placeholder is the server the generated builders are given: only the
// path is kept, and the signature does not cover the host.
const placeholder = "http://orderhub.invalid"

func auditSpec(caller, requestID, tradeID string) spec {
	return spec{caller, func(server string) (*http.Request, error) {
		return client.NewNotifyDeliveryAuditResultRequest(server, nil, models.NotifyDeliveryAuditResultRequest{
			RequestID: requestID, TradeID: tradeID, DeliveryBatchID: "B1", DeliveryAuditStatus: models.DeliveryAuditStatusAccept})
	}}
}

func completionSpec(requestID, orderID string) spec {
	return spec{clientID, func(server string) (*http.Request, error) {
		return client.NewNotifyOrderCompletionRequest(server, nil, models.NotifyOrderCompletionRequest{RequestID: requestID, RequestOrderID: orderID})
	}}
}

func inquirySpec(orderID string) spec {
	return spec{clientID, func(server string) (*http.Request, error) {
		return client.NewInquireOrderDetailRequest(server, nil, models.InquireOrderDetailRequest{RequestOrderID: orderID})
	}}
}

// signer signs specs on every core (RSA is the caller's heaviest work: a
// cell's requests are signed just before it runs, so none is older than
// one cell plus its preparation, far inside the 5-minute window).
type signer struct {
	key    *rsa.PrivateKey
	spent  time.Duration // time spent signing, all cells together
	signed int
}

// rate is how many requests a second the callers sign, measured once
// they have signed a few thousand; a pure-Go guess before.
func (s *signer) rate() float64 {
	if s.signed < 2000 {
		return 2000
	}
	return float64(s.signed) / s.spent.Seconds()
}

func (s *signer) sign(ctx context.Context, specs []spec) ([]call, error) {
	t0 := time.Now()
	defer func() { s.spent, s.signed = s.spent+time.Since(t0), s.signed+len(specs) }()
	calls := make([]call, len(specs))
	errs := make([]error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for i := w; i < len(specs) && errs[w] == nil; i += len(errs) {
				calls[i], errs[w] = s.one(ctx, specs[i])
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return calls, nil
}

func (s *signer) one(ctx context.Context, sp spec) (call, error) {
	req, err := sp.build(placeholder)
	if err != nil {
		return call{}, err
	}
	if err := (&signature.Signer{ClientID: sp.clientID, KeyVersion: 1, Key: s.key}).Edit(ctx, req); err != nil {
		return call{}, err
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return call{}, err
	}
	return call{path: req.URL.EscapedPath(), header: req.Header, body: body}, nil
}

// Floods: what the unauthenticated send, never signed by a registered key.

// emptyFloodCalls is `{}` with no security headers at all.
func emptyFloodCalls(n int) []call {
	h := http.Header{"Content-Type": {"application/json"}}
	calls := make([]call, n)
	for i := range calls {
		calls[i] = call{path: auditPath, header: h, body: []byte(`{}`)}
	}
	return calls
}

// signedFloodCalls is a well-formed notification with a random 256-byte
// "signature", from caller(i): random unknown ids, or the registered one.
func signedFloodCalls(n int, caller func(i int) string) []call {
	calls := make([]call, n)
	now := signature.FormatTime(time.Now())
	for i := range calls {
		sig := make([]byte, 256)
		_, _ = rand.Read(sig)
		calls[i] = call{
			path: auditPath,
			header: http.Header{
				"Content-Type": {"application/json"},
				"Client-Id":    {caller(i)},
				"Request-Time": {now},
				"Signature":    {signature.Header{Algorithm: signature.Algorithm, KeyVersion: 1, Signature: sig}.String()},
			},
			body: fmt.Appendf(nil, `{"requestId":"flood-%d","tradeId":"T%d","deliveryBatchId":"B1","deliveryAuditStatus":"ACCEPT"}`, i, i%1024),
		}
	}
	return calls
}

func randomID(int) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "x" + base64.RawURLEncoding.EncodeToString(b)
}

// verifyAnswer checks a sampled answer of orderhub or the sign-only
// baseline: signed with orderhub's key over the request's path, and an S
// envelope the generated models read.
func verifyAnswer(a *answer, key *rsa.PublicKey) error {
	res := &http.Response{StatusCode: a.status, Header: a.header, Request: &http.Request{Method: http.MethodPost, URL: &url.URL{Path: a.path}}}
	if err := signature.VerifyResponse(res, a.body, key); err != nil {
		return err
	}
	var env models.NotifyDeliveryAuditResultAnswer // every answer has the result object
	if err := json.Unmarshal(a.body, &env); err != nil {
		return err
	}
	if env.Result.ResultStatus != models.ResultStatusSuccess {
		return fmt.Errorf("resultStatus %q", env.Result.ResultStatus)
	}
	return nil
}
