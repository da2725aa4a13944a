package httpapi

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/orderhub/orderhub/generated/partner"
	"github.com/orderhub/orderhub/openapi"
)

// The contract's two editions, both built from openapi/orderhub.yaml:
//
//   - the partner edition (generated/partner, Redocly's bundle without what
//     the source marks x-internal), for anyone: /openapi.yaml, /openapi.json
//     and its reference page, /docs;
//   - the full edition, the source as written, for the operator (the
//     validator asks for the adminToken, as on every /ops/ path):
//     /ops/openapi.yaml and /ops/openapi.json.
//
// The generated server leaves these operations out (generated/server's
// cfg.yaml): they serve fixed bytes, prepared once here.
func editionEndpoints(e *echo.Echo, docs []byte) error {
	partnerJSON, err := yamlToJSON(partner.Spec)
	if err != nil {
		return fmt.Errorf("httpapi: the partner edition as JSON: %w", err)
	}
	fullJSON, err := yamlToJSON(openapi.Spec)
	if err != nil {
		return fmt.Errorf("httpapi: the contract as JSON: %w", err)
	}
	page := newDocsPage(docs)
	yamlBlob := func(doc []byte) echo.HandlerFunc {
		return func(c echo.Context) error { return c.Blob(http.StatusOK, "application/yaml", doc) }
	}
	jsonBlob := func(doc []byte) echo.HandlerFunc {
		return func(c echo.Context) error { return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, doc) }
	}
	e.GET("/openapi.yaml", yamlBlob(partner.Spec))
	e.GET("/openapi.json", jsonBlob(partnerJSON))
	e.GET("/docs", page.serve)
	e.GET("/ops/openapi.yaml", yamlBlob(openapi.Spec))
	e.GET("/ops/openapi.json", jsonBlob(fullJSON))
	return nil
}

// docsPage is the reference page, plain and gzip-compressed (about 2.6 MB
// and 0.7 MB for the embedded one). It is compressed on the first request
// that accepts gzip, not when the handler is built: most handlers (tests)
// never serve it.
type docsPage struct {
	plain []byte
	once  sync.Once
	gz    []byte // nil when compressing failed: the plain page is served
}

// newDocsPage prepares page (nil: the partner edition's embedded page).
func newDocsPage(page []byte) *docsPage {
	if page == nil {
		page = partner.Docs
	}
	return &docsPage{plain: page}
}

func (p *docsPage) serve(c echo.Context) error {
	h := c.Response().Header()
	h.Add(echo.HeaderVary, echo.HeaderAcceptEncoding)
	body := p.plain
	if acceptsGzip(c.Request().Header.Values(echo.HeaderAcceptEncoding)) {
		p.once.Do(func() { p.gz, _ = gzipped(p.plain) })
		if p.gz != nil {
			h.Set(echo.HeaderContentEncoding, "gzip")
			body = p.gz
		}
	}
	h.Set(echo.HeaderContentLength, strconv.Itoa(len(body)))
	return c.Blob(http.StatusOK, echo.MIMETextHTMLCharsetUTF8, body)
}

func gzipped(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// acceptsGzip reads Accept-Encoding (RFC 9110 12.5.3): gzip (or x-gzip)
// listed with a non-zero weight. A "*" is not taken for gzip: the plain page
// is always acceptable.
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(item, ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			if coding != "gzip" && coding != "x-gzip" {
				continue
			}
			if q, ok := weight(params); ok && q > 0 {
				return true
			}
		}
	}
	return false
}

// weight returns the q parameter of an Accept-Encoding item (1 without one);
// false when it is malformed.
func weight(params string) (float64, bool) {
	for _, p := range strings.Split(params, ";") {
		name, value, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(name), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			return q, err == nil && q >= 0 && q <= 1
		}
	}
	return 1, true
}
