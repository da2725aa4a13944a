package docs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromium is Debian's browser (package chromium, installed by
// scripts/ensure-chromium.sh) itself, not its /usr/bin/chromium launcher: the
// launcher adds Debian's flags (remote extensions) and Google API keys, which
// have the browser call more of Google's services in the background.
const chromium = "/usr/lib/chromium/chromium"

// browser is a headless Chromium whose only reachable address is the
// loopback one: names other than 127.0.0.1 do not resolve, and everything not
// on the loopback address goes to sink, a proxy that answers nothing and
// records who tried.
type browser struct {
	ctx  context.Context
	sink *sink

	mu   sync.Mutex
	urls []string // every request the page made
	exc  []string // uncaught exceptions of the page
}

// quietFeatures turns off browser features that call Google's services by
// themselves (time, optimization hints, media router, ...). What is left
// (account and update checks, which no flag found stops) ends at the sink.
const quietFeatures = "site-per-process,Translate,BlinkGenPropertyTrees," + // chromedp's defaults
	"OptimizationHints,OptimizationGuideModelDownloading,OptimizationHintsFetching," +
	"NetworkTimeServiceQuerying,MediaRouter,DialMediaRouteProvider,AutofillServerCommunication," +
	"CertificateTransparencyComponentUpdater"

func startBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s is missing (%v): run scripts/ensure-chromium.sh", chromium, err)
	}
	b := &browser{sink: startSink(t)}
	profile, err := os.MkdirTemp("", "orderhub-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(profile),
		// Its own process group, so that the cleanup can stop every helper
		// process, not only the browser chromedp waits for: a helper still
		// writing to the profile would make its removal fail.
		chromedp.ModifyCmdFunc(func(c *exec.Cmd) {
			c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			cmd = c
		}),
		chromedp.WindowSize(1280, 1600), // a result-code table fits in the screenshot
		chromedp.NoSandbox,              // Chromium refuses its sandbox as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("disable-features", quietFeatures),
		chromedp.Flag("disable-field-trial-config", true),
		chromedp.Flag("no-service-autorun", true),
		chromedp.Flag("disable-component-extensions-with-background-pages", true),
		// Loopback addresses bypass a proxy by Chromium's own rule; all
		// else goes to the sink.
		chromedp.ProxyServer("http://"+b.sink.addr()),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		if cmd != nil && cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		// A helper killed in the middle of a write may still finish that
		// one write: a second removal takes what it left.
		if os.RemoveAll(profile) != nil {
			if err := os.RemoveAll(profile); err != nil {
				t.Errorf("removing the browser profile: %v", err)
			}
		}
	})
	b.ctx = ctx

	chromedp.ListenTarget(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.urls = append(b.urls, ev.Request.URL)
		case *runtime.EventExceptionThrown:
			b.exc = append(b.exc, ev.ExceptionDetails.Error())
		}
	})
	// Starts the browser; network.Enable makes the page report its
	// requests; the script records the page's Content-Security-Policy
	// violations (what it tried to load against its own policy).
	if err := chromedp.Run(ctx, network.Enable(), chromedp.ActionFunc(func(ctx context.Context) error {
		_, err := page.AddScriptToEvaluateOnNewDocument(recordViolationsJS).Do(ctx)
		return err
	})); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	return b
}

// probeURL names a host that exists nowhere; checkOffline asks for it.
const probeURL = "http://offline-probe.example/"

// checkOffline shows that the guard works: a page outside the loopback
// address does not load, and the request for it ends at the sink. Run it
// before anything else, so that the sink's first lines are comparable.
func (b *browser) checkOffline(t *testing.T) {
	t.Helper()
	err := run(b.ctx, chromedp.Navigate(probeURL))
	if err == nil {
		t.Fatalf("%s loaded: the browser is not kept offline", probeURL)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(probeURL, "http://"), "/")
	if !slices.ContainsFunc(b.sink.attempts(), func(line string) bool { return strings.Contains(line, host) }) {
		t.Fatalf("%s failed (%v) but never reached the sink %v: the proxy is not in use", probeURL, err, b.sink.attempts())
	}
	b.mu.Lock()
	b.urls = nil // the probe is not the page's request
	b.mu.Unlock()
}

// requests returns the URLs the page requested, and those among them that
// are neither under origin nor inline (data:, blob:, about:).
func (b *browser) requests(origin string) (all, offsite []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range b.urls {
		if u != origin && !strings.HasPrefix(u, origin+"/") &&
			!strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "blob:") && !strings.HasPrefix(u, "about:") {
			offsite = append(offsite, u)
		}
	}
	return append([]string(nil), b.urls...), offsite
}

const recordViolationsJS = `window.__violations = [];
document.addEventListener("securitypolicyviolation", e => window.__violations.push(e.violatedDirective + " " + e.blockedURI));`

// violations returns what the page in view tried to load against its
// Content-Security-Policy.
func (b *browser) violations() ([]string, error) {
	var v []string
	err := run(b.ctx, chromedp.Evaluate(`window.__violations || []`, &v))
	return v, err
}

func (b *browser) exceptions() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.exc...)
}

// run runs the actions, each wait bounded by waitFor.
func run(ctx context.Context, actions ...chromedp.Action) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return fmt.Errorf("%w (%v)", err, cause)
		}
		return err
	}
	return nil
}

// navigate opens url and waits until Redoc has hydrated the page (its side
// menu answers clicks).
func navigate(url string) chromedp.Action {
	var ok bool
	return chromedp.Tasks{
		chromedp.Navigate(url),
		chromedp.Poll(`document.readyState === "complete" && !!document.querySelector("#redoc a[href]")`, &ok),
	}
}

// clickLink clicks the first shown link whose text starts with text, once
// one is shown. The click is the element's own (not a mouse event at its
// place on the screen), so a menu that is still moving cannot take it.
func clickLink(text string) chromedp.Action {
	var ok bool
	return chromedp.PollFunction(`(text) => {
		const a = [...document.querySelectorAll("#redoc a")].find(a => a.offsetParent !== null && a.innerText.trim().startsWith(text));
		if (!a) return false;
		a.click();
		return true;
	}`, &ok, chromedp.WithPollingArgs(text))
}

// waitHeading waits until a heading reads text.
func waitHeading(text string, deprecated bool) chromedp.Action {
	var ok bool
	if deprecated { // Redoc marks it in the heading itself: the reader sees it
		return chromedp.Poll(fmt.Sprintf(`[...document.querySelectorAll("h1, h2, h3")].some(h => { const t = h.innerText.trim(); return t.startsWith(%s) && /deprecated/i.test(t.slice(%d)); })`, jsString(text), len(text)), &ok)
	}
	return chromedp.Poll(fmt.Sprintf(`[...document.querySelectorAll("h1, h2, h3")].some(h => h.innerText.trim() === %s)`, jsString(text)), &ok)
}

// findTableJS is a function expression: the rendered table whose header
// names resultCode and resultStatus and whose first column is exactly the
// given codes, or null.
const findTableJS = `(codes) => [...document.querySelectorAll("table")].find(t => {
	const head = [...t.querySelectorAll("thead th, tr:first-child th")].map(c => c.innerText.trim());
	if (!head.includes("resultCode") || !head.includes("resultStatus")) return false;
	const first = [...t.querySelectorAll("tbody tr")].map(r => r.cells[0] ? r.cells[0].innerText.trim() : "");
	return first.length === codes.length && first.every((c, i) => c === codes[i]);
}) || null`

// waitResultTable waits until a table of exactly codes is rendered.
func waitResultTable(codes []string) chromedp.Action {
	var ok bool
	return chromedp.Poll(fmt.Sprintf(`!!(%s)(%s)`, findTableJS, jsValue(codes)), &ok)
}

// screenshotOfTable scrolls the table of codes into view and captures the
// window.
func (b *browser) screenshotOfTable(codes []string) ([]byte, error) {
	var shot []byte
	var found bool
	err := run(b.ctx,
		chromedp.Evaluate(fmt.Sprintf(`(() => { const t = (%s)(%s); if (t) t.scrollIntoView({block: "center"}); return !!t; })()`, findTableJS, jsValue(codes)), &found),
		chromedp.CaptureScreenshot(&shot),
	)
	if err == nil && !found {
		err = fmt.Errorf("the table of %v is gone", codes)
	}
	return shot, err
}

// layoutProblemsJS is a function expression: what a reader would find hard
// to read around the table of the given codes, as sentences (none: []). A
// result code broken over two lines; an example block whose text runs out
// of its box; a table squeezed into less than half the window.
const layoutProblemsJS = `(codes) => {
	const t = (` + findTableJS + `)(codes);
	if (!t) return ["the table of codes is not rendered"];
	const out = [];
	for (const c of t.querySelectorAll("tbody tr td:first-child code")) {
		if (c.getClientRects().length > 1) out.push("the code " + c.innerText + " wraps inside the word");
	}
	for (const pre of document.querySelectorAll("#redoc pre")) {
		if (pre.offsetParent === null) continue;
		// Its own text, or a line inside it, wider than the box shows.
		const widest = Math.max(pre.scrollWidth, ...[...pre.querySelectorAll("*")].map(e => e.scrollWidth));
		if (widest > pre.clientWidth + 1) {
			out.push("an example block overflows its box by " + (widest - pre.clientWidth) + " px: " + pre.innerText.slice(0, 60));
		}
	}
	const w = t.getBoundingClientRect().width;
	if (w < window.innerWidth / 2) out.push("the table is " + Math.round(w) + " px wide in a " + window.innerWidth + " px window");
	return out;
}`

// layoutProblems sizes the window to width, waits for the table of codes,
// and returns what a reader would find hard to read there.
func (b *browser) layoutProblems(width int64, codes []string) ([]string, error) {
	var problems []string
	err := run(b.ctx,
		chromedp.EmulateViewport(width, 1200),
		waitResultTable(codes),
		chromedp.Evaluate(fmt.Sprintf(`(%s)(%s)`, layoutProblemsJS, jsValue(codes)), &problems),
	)
	return problems, err
}

func jsValue(v any) string {
	out, err := json.Marshal(v)
	if err != nil {
		panic(err) // strings and string slices always marshal
	}
	return string(out)
}

func jsString(s string) string { return jsValue(s) }

// sink stands for the outside world: a proxy on the loopback address that
// reads each request line, records it and hangs up.
type sink struct {
	ln net.Listener
	wg sync.WaitGroup

	mu   sync.Mutex
	seen []string
}

func startSink(t *testing.T) *sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{ln: ln}
	s.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // closed by Cleanup
			}
			s.wg.Go(func() { s.refuse(conn) })
		}
	})
	t.Cleanup(func() { _ = ln.Close(); s.wg.Wait() })
	return s
}

func (s *sink) addr() string { return s.ln.Addr().String() }

func (s *sink) refuse(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil && line == "" {
		line = "(a connection that sent no request line: " + err.Error() + ")"
	}
	s.mu.Lock()
	s.seen = append(s.seen, strings.TrimSpace(line))
	s.mu.Unlock()
}

// attempts are the request lines the proxy received, e.g. "CONNECT host:443".
func (s *sink) attempts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}
