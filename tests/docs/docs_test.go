// Package docs checks the contract's reference page as a reader sees it:
// orderhub serves the partner edition's page embedded in the binary
// (generated/partner/docs.html, built by make generate or make docs; make
// check-generated keeps it fresh) at /docs, headless Chromium opens it with
// every address but the loopback one out of reach, and the partner
// operations and their result-code tables must render from the page alone.
package docs

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/orderhub/orderhub/generated/partner"
	"github.com/orderhub/orderhub/impl/httpapi"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/tests/testkit"
)

const (
	// screenshotFile is kept as the test's artefact (git-ignored).
	screenshotFile = "../artifacts/docs.png"
)

func TestReferencePageRendersOffline(t *testing.T) {
	page := partner.Docs
	ops := partnerOperations(t)
	srv := startOrderhub(t, nil) // the embedded page, by default
	for _, internal := range []string{"/ops/", "adminToken", "/healthz"} {
		if strings.Contains(string(page), internal) {
			t.Errorf("the partner edition's page names %q", internal)
		}
	}

	// orderhub serves the page as built.
	res, err := http.Get(srv.URL + "/docs")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || string(body) != string(page) {
		t.Fatalf("GET /docs: %d %q, %d bytes; want 200 text/html with the %d bytes of generated/partner/docs.html", res.StatusCode, res.Header.Get("Content-Type"), len(body), len(page))
	}

	b := startBrowser(t)
	ctx := b.ctx
	b.checkOffline(t)
	for i, op := range ops {
		// As a reader would: open the page, then the operation's tag in the
		// side menu, then the operation; Redoc renders an operation when it
		// is shown.
		if err := run(ctx, navigate(srv.URL+"/docs")); err != nil {
			t.Fatalf("opening /docs: %v", err)
		}
		if err := run(ctx, clickLink(op.tag), clickLink(op.summary)); err != nil {
			t.Fatalf("%s: opening it from the menu: %v", op.id, err)
		}
		if err := run(ctx, waitHeading(op.summary, op.deprecated)); err != nil {
			t.Errorf("%s: its summary %q (deprecated: %v) is not shown as a heading: %v", op.id, op.summary, op.deprecated, err)
		}
		if err := run(ctx, waitResultTable(op.codes)); err != nil {
			t.Errorf("%s: no rendered table lists exactly its result codes %v: %v", op.id, op.codes, err)
			continue
		}
		if v, err := b.violations(); err != nil || len(v) > 0 {
			t.Errorf("%s: the page broke its own Content-Security-Policy: %q %v", op.id, v, err)
		}
		// Readable on a laptop and on a wide screen: codes whole, examples
		// inside their boxes, the text given the room.
		for _, width := range []int64{1280, 1920} {
			problems, err := b.layoutProblems(width, op.codes)
			if err != nil || len(problems) > 0 {
				t.Errorf("%s at %d px: %q %v", op.id, width, problems, err)
			}
		}
		if i == 0 {
			shot, err := b.screenshotOfTable(op.codes)
			if err != nil {
				t.Errorf("screenshot: %v", err)
			} else if err := saveArtefact(screenshotFile, shot); err != nil {
				t.Errorf("screenshot: %v", err)
			}
		}
	}

	// The page asked for nothing but orderhub's own address.
	seen, offsite := b.requests(srv.URL)
	if len(seen) == 0 {
		t.Error("the browser reported no request at all: the request log does not work")
	}
	if len(offsite) > 0 {
		t.Errorf("the page requested addresses other than orderhub's:\n%s", strings.Join(offsite, "\n"))
	}
	if exc := b.exceptions(); len(exc) > 0 {
		t.Errorf("the page threw:\n%s", strings.Join(exc, "\n"))
	}
	// The browser's own calls to its vendor's services (updates, accounts)
	// went to the sink, not out: worth seeing, not the page's doing.
	if out := b.sink.attempts(); len(out) > 0 {
		t.Logf("kept from the outside world (the browser's own calls):\n%s", strings.Join(out, "\n"))
	}
}

// partnerOp is a partner operation as the contract describes it.
type partnerOp struct {
	id, tag, summary string
	codes            []string // the result-code table of its description, in order
	deprecated       bool
}

// partnerOperations reads the partner operations (tagged neither
// "operations" nor "service", as orderhub sorts them) from the partner
// edition the page is built from, with the result codes their descriptions
// list.
func partnerOperations(t *testing.T) []partnerOp {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(partner.Spec)
	if err != nil {
		t.Fatalf("loading the contract: %v", err)
	}
	var ops []partnerOp
	for _, path := range doc.Paths.InMatchingOrder() {
		for _, op := range doc.Paths.Value(path).Operations() {
			if len(op.Tags) == 0 || slices.Contains(op.Tags, "operations") || slices.Contains(op.Tags, "service") {
				continue
			}
			ops = append(ops, partnerOp{id: op.OperationID, tag: op.Tags[0], summary: op.Summary, codes: resultCodes(op.Description), deprecated: op.Deprecated})
		}
	}
	slices.SortFunc(ops, func(a, b partnerOp) int { return strings.Compare(a.id, b.id) })
	// The contract's own facts, so that a spec edit cannot make this test
	// check nothing.
	want := map[string][]string{
		"inquireOrderDetail":        {"ORDER_NOT_EXIST", "REQUEST_TRAFFIC_EXCEED_LIMIT"},
		"notifyDeliveryAuditResult": {"REPEAT_REQ_INCONSISTENT", "REQUEST_TRAFFIC_EXCEED_LIMIT"},
		"notifyOrderCompletion":     {"ORDER_NOT_EXIST", "REPEAT_REQ_INCONSISTENT", "REQUEST_TRAFFIC_EXCEED_LIMIT"},
		"notifyOrderChange":         {"ORDER_NOT_EXIST", "ORDER_STATUS_INVALID", "PROCESS_FAIL", "REPEAT_REQ_INCONSISTENT"},
	}
	if len(ops) != len(want) {
		t.Fatalf("the contract has %d partner operations (%v); want %d", len(ops), ops, len(want))
	}
	for _, op := range ops {
		codes, ok := want[op.id]
		if !ok || op.summary == "" {
			t.Fatalf("unexpected partner operation %+v", op)
		}
		for _, c := range append([]string{"SUCCESS", "UNKNOWN_EXCEPTION"}, codes...) {
			if !slices.Contains(op.codes, c) {
				t.Fatalf("%s: its result-code table %v lacks %s", op.id, op.codes, c)
			}
		}
	}
	return ops
}

// resultCodes returns the first column of the description's markdown table
// whose header names resultCode.
func resultCodes(description string) []string {
	var codes []string
	inTable := false
	for line := range strings.Lines(description) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		first := strings.Trim(strings.TrimSpace(cells[0]), "`")
		switch {
		case !inTable:
			inTable = first == "resultCode"
		case strings.HasPrefix(first, "---"):
		default:
			codes = append(codes, first)
		}
	}
	return codes
}

// startOrderhub serves orderhub with the in-memory store and page as its
// reference page (nil: the embedded one).
func startOrderhub(t *testing.T, page []byte) *httptest.Server {
	t.Helper()
	// One registered caller: the registry refuses to be empty. Nobody calls.
	reader := testkit.Entry(t, "docs-reader", &testkit.Key(t, 1).PublicKey, testkit.PartnerOperations(t)[0])
	h, err := httpapi.New(store.NewMemory(nil), httpapi.Config{
		Clients:    testkit.Clients(t, reader),
		SigningKey: testkit.Key(t, 0),
		Docs:       page,
	})
	if err != nil {
		t.Fatalf("httpapi.New: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func saveArtefact(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// waitFor bounds each wait for the page; a whole run takes a few seconds.
const waitFor = 20 * time.Second

var errTimeout = errors.New("timed out")

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, waitFor, errTimeout)
}
