// Package conformance checks, in tests, that every response orderhub sends
// conforms to openapi/orderhub.yaml: Transport is an http.RoundTripper that
// validates each response (status, headers, body) and reports violations.
// With WithSignatureKey it also checks that every partner response (any
// path outside /ops/) carries orderhub's valid signature.
package conformance

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/orderhub/orderhub/openapi"
)

// Bodies the contract declares as text are checked as text: kin-openapi has
// no decoder of text/html (the reference page), and decodes application/yaml
// into a document, which the contract's `type: string` (YAML text, as
// /openapi.yaml and /ops/openapi.yaml answer) would refuse.
func init() {
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	openapi3filter.RegisterBodyDecoder("application/yaml", yamlBody)
}

func yamlBody(body io.Reader, h http.Header, schema *openapi3.SchemaRef, enc openapi3filter.EncodingFn) (any, error) {
	if schema != nil && schema.Value != nil && schema.Value.Type.Is(openapi3.TypeString) {
		return openapi3filter.PlainBodyDecoder(body, h, schema, enc)
	}
	return openapi3filter.YamlBodyDecoder(body, h, schema, enc)
}

// Transport validates every response that passes through it against the
// contract and fails the test on a violation. Requests are not validated:
// tests send invalid ones on purpose.
type Transport struct {
	t          testing.TB
	base       http.RoundTripper
	doc        *openapi3.T
	router     routers.Router
	envelope   *openapi3.Schema
	sigKey     *rsa.PublicKey             // nil: signatures are not checked
	registered func(clientID string) bool // the registered, enabled clients: answered signed
	unsigned   map[string]bool            // paths of the "service" endpoints
}

// Option configures a Transport.
type Option func(*Transport)

// WithSignatureKey makes the Transport check, on every response to a path
// outside /ops/ and the endpoints tagged "service", the contract's rule of
// which answers are signed: a request whose Client-Id registered reports as
// a registered, enabled client gets an answer signed by orderhub with the
// private half of key (see CheckSignature); any other gets an unsigned one
// that does not echo its Client-Id (see CheckUnsigned). The service signs
// refusals to a registered client that did not prove itself only within a
// budget: a test that sends many of those sets the budget above what it
// sends.
func WithSignatureKey(key *rsa.PublicKey, registered func(clientID string) bool) Option {
	return func(tr *Transport) { tr.sigKey, tr.registered = key, registered }
}

// Clients reports the ids given as the registered, enabled clients.
func Clients(ids ...string) func(clientID string) bool {
	return func(clientID string) bool { return slices.Contains(ids, clientID) }
}

// New loads the contract and wraps base (nil: http.DefaultTransport).
func New(t testing.TB, base http.RoundTripper, opts ...Option) *Transport {
	t.Helper()
	doc, err := Load()
	if err != nil {
		t.Fatalf("conformance: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("conformance: router: %v", err)
	}
	if base == nil {
		base = http.DefaultTransport
	}
	tr := &Transport{t: t, base: base, doc: doc, router: router, envelope: doc.Components.Schemas["ErrorResponse"].Value, unsigned: map[string]bool{}}
	for path, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			if slices.Contains(op.Tags, "service") {
				tr.unsigned[path] = true
			}
		}
	}
	for _, o := range opts {
		o(tr)
	}
	return tr
}

// Load parses and validates the contract, with servers removed so routes
// match on path alone. This oracle keeps its own parse and its own idea of
// which endpoints are signed (not openapi.Catalog, which the service uses),
// on purpose: a misclassification in the catalog must not be mirrored here.
func Load() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapi.Spec)
	if err != nil {
		return nil, fmt.Errorf("loading the contract: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("the contract is invalid: %w", err)
	}
	doc.Servers = nil
	return doc, nil
}

// RoundTrip sends req and validates the response.
func (tr *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := tr.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	if verr := tr.Check(req, res.StatusCode, res.Header, body); verr != nil {
		tr.t.Errorf("conformance: %s %s → %d: %v\nbody: %s", req.Method, req.URL.Path, res.StatusCode, verr, body)
	}
	if tr.sigKey != nil && !strings.HasPrefix(req.URL.Path, "/ops/") && !tr.unsigned[req.URL.Path] {
		check := func() error { return CheckUnsigned(res.Header) }
		if tr.registered(req.Header.Get("Client-Id")) {
			check = func() error { return CheckSignature(tr.sigKey, req, res.Header, body) }
		}
		if serr := check(); serr != nil {
			tr.t.Errorf("conformance: %s %s → %d: response signature: %v\nheaders: %v\nbody: %s", req.Method, req.URL.Path, res.StatusCode, serr, res.Header, body)
		}
	}
	return res, nil
}

// CheckUnsigned checks a partner refusal to a caller that is no registered,
// enabled client: no Signature (signing for strangers would hand them the
// service's CPU) and no Client-Id echoed.
func CheckUnsigned(header http.Header) error {
	if v := header.Values("Signature"); len(v) > 0 {
		return fmt.Errorf("signed (%q) for a caller that is no registered client", v)
	}
	if v := header.Values("Client-Id"); len(v) > 0 {
		return fmt.Errorf("Client-Id %q echoed to a caller that is no registered client", v)
	}
	return nil
}

// echoedClientID is a request Client-Id the response must echo: 1 to 128
// visible ASCII characters. Others (none, longer, control or non-ASCII
// bytes) must not be echoed at all.
var echoedClientID = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)

// signatureHeader is the one form orderhub writes: the three pairs, in this
// order (the Java SDK reads the third item), the value base64 then
// URL-query-escaped (so no raw '+', '/' or '=').
var signatureHeader = regexp.MustCompile(`^algorithm=RSA256, keyVersion=([1-9][0-9]*), signature=([A-Za-z0-9%]+)$`)

// CheckSignature checks a partner response to req the way a partner SDK
// does, independently of orderhub's own signature package: exactly one
// Signature header of the form `algorithm=RSA256, keyVersion=N,
// signature=<escaped base64>`, a Response-Time in ISO 8601 with offset, the
// request's Client-Id echoed (and none when the request had none or one
// that is not 1 to 128 visible ASCII characters), and an
// RSASSA-PKCS1-v1_5 SHA-256 signature by key over
// `<METHOD> <path>\n<Client-Id>.<Response-Time>.<body>`.
func CheckSignature(key *rsa.PublicKey, req *http.Request, header http.Header, body []byte) error {
	sigs := header.Values("Signature")
	if len(sigs) != 1 {
		return fmt.Errorf("%d Signature headers, want exactly 1", len(sigs))
	}
	m := signatureHeader.FindStringSubmatch(sigs[0])
	if m == nil {
		return fmt.Errorf("the Signature header %q is not `algorithm=RSA256, keyVersion=N, signature=<escaped base64>`", sigs[0])
	}
	b64, err := url.QueryUnescape(m[2])
	if err != nil {
		return fmt.Errorf("signature value is not URL-escaped: %w", err)
	}
	sig, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return fmt.Errorf("signature value is not base64: %w", err)
	}
	times := header.Values("Response-Time")
	if len(times) != 1 {
		return fmt.Errorf("%d Response-Time headers, want exactly 1", len(times))
	}
	if _, err := time.Parse(time.RFC3339, times[0]); err != nil {
		return fmt.Errorf("Response-Time %q is not ISO 8601 with offset", times[0])
	}
	clientID := header.Get("Client-Id")
	if sent := req.Header.Get("Client-Id"); echoedClientID.MatchString(sent) {
		if got := header.Values("Client-Id"); len(got) != 1 || got[0] != sent {
			return fmt.Errorf("Client-Id %q, want the request's %q echoed", got, sent)
		}
	} else if len(header.Values("Client-Id")) != 0 {
		return fmt.Errorf("Client-Id %q on a response to a request without a usable one (%q)", header.Values("Client-Id"), sent)
	}
	content := fmt.Sprintf("%s %s\n%s.%s.%s", req.Method, req.URL.EscapedPath(), clientID, times[0], body)
	sum := sha256.Sum256([]byte(content))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig); err != nil {
		return errors.New("the signature does not verify with orderhub's public key")
	}
	return nil
}

// Check validates one response to req. A response to a request the contract
// has no operation for (an unknown path or method) must still be the
// result envelope.
func (tr *Transport) Check(req *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := tr.router.FindRoute(req)
	if err != nil {
		var v any
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			return fmt.Errorf("no operation for this request, and the body is not JSON: %w", err)
		}
		return tr.envelope.VisitJSON(v)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status:  status,
		Header:  header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), in)
}
