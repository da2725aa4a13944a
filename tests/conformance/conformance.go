// Package conformance checks, in tests, that every response orderhub sends
// conforms to openapi/orderhub.yaml: Transport is an http.RoundTripper that
// validates each response (status, headers, body) and reports violations.
package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/orderhub/orderhub/openapi"
)

// Transport validates every response that passes through it against the
// contract and fails the test on a violation. Requests are not validated:
// tests send invalid ones on purpose.
type Transport struct {
	t        testing.TB
	base     http.RoundTripper
	doc      *openapi3.T
	router   routers.Router
	envelope *openapi3.Schema
}

// New loads the contract and wraps base (nil: http.DefaultTransport).
func New(t testing.TB, base http.RoundTripper) *Transport {
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
	return &Transport{t: t, base: base, doc: doc, router: router, envelope: doc.Components.Schemas["ErrorResponse"].Value}
}

// Load parses and validates the contract, with servers removed so routes
// match on path alone.
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
	return res, nil
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
