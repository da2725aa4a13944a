package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/orderhub/orderhub/generated/client"
	"github.com/orderhub/orderhub/generated/models"
)

// How a cell loads its system.
const (
	closed = "closed" // callers send again as soon as they are answered: the maximum
	open   = "open"   // a fixed rate, half the measured maximum: the latency
	flood  = "flood"  // legitimate closed-loop callers beside unauthenticated flooders
)

// warm is the start of an open-loop cell whose latencies are not counted:
// its first connections are opened. (A closed loop leaves out each
// caller's first request instead.)
const warm = 50 * time.Millisecond

// scenarioInfo describes a scenario for its table.
type scenarioInfo struct {
	name  string
	load  string
	title string
	signs string // how its answers get their signatures
}

// scenarioList is every scenario, in the order of the tables.
func scenarioList() []scenarioInfo {
	return []scenarioInfo{
		{"baseline", closed, "the yardsticks: echo answering one fixed S envelope, bare or RSA-2048-signed anew for each request (same key size, same Sealer, no reuse)", "sign-only: one signature per answer"},
		{"replay", closed, "one signed notifyDeliveryAuditResult sent again and again: the stored answer comes back", "none made: the stored signed bytes are sent"},
		{"unique-audit", closed, "unique notifyDeliveryAuditResult (fresh requestIds), one client", "reused: one client's identical S envelopes within a Response-Time second share one signature"},
		{"unique-audit-fresh", closed, "unique notifyDeliveryAuditResult (fresh requestIds), 4,096 registered clients in turn", "none reused: each answer names another Client-Id, so each is signed anew"},
		{"unique-completion", closed, "unique notifyOrderCompletion of orders created in READY, one client", "reused, as unique-audit"},
		{"inquiry", closed, "inquireOrderDetail of 4,096 existing orders in turn", "none reused: every order's answer differs (posOrderId, extendInfo)"},
		{"mix", closed, "35 % unique audits, 35 % unique completions, 20 % inquiries, 10 % replays", "partly reused (the unique notifications)"},
		{"open", open, "each scenario at 50 % of its measured maximum, open loop: latency counted from each request's scheduled time", "as the closed-loop scenario"},
		{"flood", flood, "legitimate unique notifyDeliveryAuditResult (one client, half the callers) while as many flooders as callers send unauthenticated requests, against the same without a flood", "legitimate: as unique-audit; refusals to strangers unsigned, to the registered id signed within a small budget"},
	}
}

func scenarioNames() []string {
	var names []string
	for _, s := range scenarioList() {
		names = append(names, s.name)
	}
	return names
}

// The flood kinds.
const (
	floodNone    = "none"
	floodEmpty   = "{} without headers"
	floodUnknown = "random unknown Client-Ids"
	floodBadSig  = "registered Client-Id, garbage signatures"
	// floodElsewhere sends the {} flood to bare echo instead: what the
	// flooders' own CPU takes from orderhub on shared cores.
	floodElsewhere = "{} to bare echo (control)"
)

// system is one server under test.
type system struct {
	key      string // "orderhub-go", "sign-boringcrypto", …
	label    string // for tables
	crypto   string // "go" or "boringcrypto"; "" for bare echo and Prism
	proc     *proc
	redis    *redisNode // orderhub's own
	orderhub bool
	target   *target
	gone     bool // exited during the run: its remaining cells are skipped
}

// cell is one scenario on one system: run once per round.
type cell struct {
	scenario string // a scenarioList name, "X@50%" or "flood:kind"
	load     string
	sys      *system
	base     string // open loop and floods: the closed-loop scenario they build on
	flood    string
	callers  int
}

// cellResult is one cell's measurement in one round.
type cellResult struct {
	Scenario    string            `json:"scenario"`
	System      string            `json:"system"`
	Load        string            `json:"load"`
	Round       int               `json:"round"`
	ReqPerSec   float64           `json:"reqPerSec"`
	Offered     float64           `json:"offeredPerSec,omitempty"`
	Requests    uint64            `json:"requests"` // counted in the rate
	Sent        uint64            `json:"sent"`     // all, open-loop warm-up included: the divisor of the per-request counts
	Errors      uint64            `json:"errors"`
	FirstError  string            `json:"firstError,omitempty"`
	Seconds     float64           `json:"seconds"`
	Short       bool              `json:"short,omitempty"` // the signed requests ran out early
	P50Ms       float64           `json:"p50Ms"`
	P99Ms       float64           `json:"p99Ms"`
	P999Ms      float64           `json:"p999Ms"`
	PeakRSS     int64             `json:"peakRSSBytes,omitempty"`
	RedisCmds   map[string]uint64 `json:"redisCommands,omitempty"`
	RedisReads  uint64            `json:"redisReads,omitempty"`
	Signed      float64           `json:"rsaSigned,omitempty"`
	Reused      float64           `json:"signaturesReused,omitempty"`
	FloodPerSec float64           `json:"floodAnsweredPerSec,omitempty"`
	SignSeconds float64           `json:"callerSigningSeconds"`   // preparing this cell
	ForeignCPU  float64           `json:"otherProcessesCPUShare"` // of the whole machine, during the cell
	hist        histogram
}

// bench is one run.
type bench struct {
	cfg        config
	dir        string
	keys       *keys
	signer     *signer
	runID      string
	seq        int
	systems    []*system
	byKey      map[string]*system
	inquiries  map[*system][]call
	inquiredAt map[*system]time.Time
	results    []*cellResult
	peak       map[string]int64 // whole-run peak RSS by system
	notes      []string
	profiles   []string
	adminToken string
	stopped    bool
	waited     time.Duration // for other processes to calm down (settle)
}

func run(ctx context.Context, cfg config) error {
	began := time.Now()
	dir, err := os.MkdirTemp("", "netbench-")
	if err != nil {
		return err
	}
	if cfg.keep {
		fmt.Println("work directory (kept):", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	b := &bench{cfg: cfg, dir: dir, byKey: map[string]*system{}, inquiries: map[*system][]call{}, inquiredAt: map[*system]time.Time{}, peak: map[string]int64{}}
	b.runID = randomHex(4)
	b.adminToken = randomHex(16)
	if b.keys, err = makeKeys(dir); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	b.signer = &signer{key: b.keys.client}
	defer b.stopAll()
	if err := b.startAll(ctx); err != nil {
		return err
	}
	for _, s := range b.systems {
		if s.orderhub {
			if err := b.createInquiryOrders(ctx, s); err != nil {
				return err
			}
		}
	}
	if err := b.warmUp(ctx); err != nil {
		return err
	}
	cellsA, cellsB := b.plan()
	for _, phase := range [][]*cell{cellsA, cellsB} {
		for r := range b.cfg.rounds {
			for _, c := range rotate(phase, r, b.cfg.rounds) {
				if err := ctx.Err(); err != nil {
					return err
				}
				if c.sys.gone {
					continue
				}
				err := b.measure(ctx, c, r)
				var gone *goneError
				if errors.As(err, &gone) && c.sys.key == "prism" {
					// Prism is beside the point: the bench goes on without it.
					c.sys.gone = true
					b.note(fmt.Sprintf("Prism exited during %s, round %d; its later cells are skipped. The end of its log:\n%s", c.scenario, r+1, gone.log))
					continue
				}
				if err != nil {
					return fmt.Errorf("%s on %s, round %d: %w", c.scenario, c.sys.label, r+1, err)
				}
			}
		}
	}
	b.stopAll()
	rep := b.report(time.Since(began))
	rep.print(os.Stdout)
	if err := rep.write(b.cfg.out); err != nil {
		return err
	}
	if err := drawPlot(rep, b.cfg.plot); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	fmt.Printf("\nJSON: %s\nplot: %s\nwall time of the network bench: %s\n", b.cfg.out, b.cfg.plot, time.Since(began).Round(time.Second))
	if b.cfg.compare != "" {
		if err := rep.compare(os.Stdout, b.cfg.compare); err != nil {
			return err
		}
	}
	return nil
}

// warmUp loads every system for a second before the first round, so that
// round 1 does not measure heaps still growing or Prism's JIT compiling.
func (b *bench) warmUp(ctx context.Context) error {
	for _, s := range b.systems {
		rc, err := b.replayCall(ctx, s)
		if err != nil {
			return fmt.Errorf("warm-up of %s: %w", s.label, err)
		}
		r := closedLoop(ctx, s.target, &pool{calls: []call{rc}, repeat: true}, b.cfg.callers, newWindow(0, time.Second), wantS)
		if r.ok == 0 {
			return fmt.Errorf("warm-up of %s: %s", s.label, r.firstErr)
		}
	}
	return nil
}

// rotate starts round r at another cell, so that no system always runs
// first or right after the same neighbour, and slow drift (thermal, other
// tenants) is spread over all.
func rotate(cells []*cell, r, rounds int) []*cell {
	if len(cells) == 0 {
		return nil
	}
	k := r * len(cells) / rounds
	return append(slices.Clone(cells[k:]), cells[:k]...)
}

func (b *bench) wants(scenario string) bool {
	return b.cfg.only == nil || b.cfg.only[scenario]
}

// plan lists phase A (closed loop: the maxima) and phase B (open loop at
// half of them, and the floods).
func (b *bench) plan() (a, bb []*cell) {
	add := func(list *[]*cell, scenario, load, key string) *cell {
		s := b.byKey[key]
		if s == nil {
			return nil
		}
		c := &cell{scenario: scenario, load: load, sys: s, base: scenario, callers: b.cfg.callers}
		*list = append(*list, c)
		return c
	}
	add(&a, "baseline", closed, "bare")
	add(&a, "baseline", closed, "sign-go")
	add(&a, "baseline", closed, "sign-boringcrypto")
	for _, sc := range []string{"replay", "unique-audit", "unique-audit-fresh", "unique-completion", "inquiry", "mix"} {
		if !b.wants(sc) {
			continue
		}
		add(&a, sc, closed, "orderhub-go")
		if sc != "mix" { // the boringcrypto build: the signing-bound scenarios and replays
			add(&a, sc, closed, "orderhub-boringcrypto")
		}
		if sc == "replay" {
			add(&a, sc, closed, "prism")
		}
	}
	if b.wants("open") {
		// Not bare echo: at half its maximum the callers, not the server,
		// would set the latency.
		for _, c := range a {
			if c.sys.key == "orderhub-go" || c.sys.key == "sign-go" {
				o := add(&bb, c.scenario+"@50%", open, c.sys.key)
				o.base = c.scenario
			}
		}
	}
	if b.wants("flood") {
		for _, kind := range []string{floodNone, floodEmpty, floodUnknown, floodBadSig, floodElsewhere} {
			f := add(&bb, "flood:"+kind, flood, "orderhub-go")
			f.base, f.flood, f.callers = "unique-audit", kind, b.cfg.callers/2
		}
	}
	return a, bb
}

// startAll starts every system, each orderhub with a redis-server of its
// own (so that INFO counts only its commands).
func (b *bench) startAll(ctx context.Context) error {
	type build struct{ crypto, orderhub, baseline string }
	builds := []build{{"go", b.cfg.orderhub, b.cfg.baseline}}
	if b.cfg.orderhubBoring != "" {
		builds = append(builds, build{"boringcrypto", b.cfg.orderhubBoring, b.cfg.baselineBoring})
	}
	bare, err := b.startBaseline(ctx, "bare", "bare echo", "", b.cfg.baseline, nil)
	if err != nil {
		return err
	}
	b.add(bare)
	for _, bl := range builds {
		sign, err := b.startBaseline(ctx, "sign-"+bl.crypto, "sign-only ("+bl.crypto+")", bl.crypto, bl.baseline, []string{"-sign", b.keys.orderhubFile})
		if err != nil {
			return err
		}
		b.add(sign)
		oh, err := b.startOrderhub(ctx, bl.crypto, bl.orderhub)
		if err != nil {
			return err
		}
		b.add(oh)
	}
	if b.cfg.prism == "" {
		b.note("Prism not run: " + b.cfg.prismNote)
		return nil
	}
	p, err := b.startPrism()
	if err != nil {
		b.note(fmt.Sprintf("Prism not run: %v", err))
		return nil
	}
	b.add(p)
	return nil
}

// goneError is a cell's system, or its Redis, having exited.
type goneError struct{ log string }

func (e *goneError) Error() string { return "the server exited:\n" + e.log }

// exited reports whether the process of s, or of its Redis, has exited.
func (b *bench) exited(s *system) bool {
	for _, p := range []*proc{s.proc, s.redis.procOrNil()} {
		if p == nil {
			continue
		}
		select {
		case <-p.exited:
			return true
		default:
		}
	}
	return false
}

func (b *bench) add(s *system) {
	var err error
	if s.target, err = newTarget(s.proc.url, 4*b.cfg.callers); err != nil {
		panic(err) // a URL the process printed itself
	}
	b.systems = append(b.systems, s)
	b.byKey[s.key] = s
}

func (b *bench) note(s string) {
	b.notes = append(b.notes, s)
	fmt.Println("note:", s)
}

func (b *bench) stopAll() {
	if b.stopped {
		return
	}
	var wg sync.WaitGroup
	for _, s := range b.systems {
		wg.Go(func() {
			s.target.close()
			s.proc.stop()
			s.redis.stop()
		})
	}
	b.stopped = true
	wg.Wait()
}

func (b *bench) startBaseline(_ context.Context, key, label, crypto, bin string, args []string) (*system, error) {
	p, err := start(b.dir, key, bin, args, []string{"PATH=" + os.Getenv("PATH")})
	if err != nil {
		return nil, err
	}
	if err := p.waitListening(30 * time.Second); err != nil {
		p.stop()
		return nil, err
	}
	if crypto != "" {
		if got := listeningField(p.log, "crypto"); got != crypto {
			p.stop()
			return nil, fmt.Errorf("%s says its crypto build is %q, not %q", key, got, crypto)
		}
	}
	return &system{key: key, label: label, crypto: crypto, proc: p}, nil
}

// startOrderhub runs orderhub as an operator would: the Redis store,
// keys and clients from files, request logs at INFO into a file. Only the
// bench's own ORDERHUB_* variables are passed, so that a developer's
// environment cannot change what is measured.
func (b *bench) startOrderhub(ctx context.Context, crypto, bin string) (*system, error) {
	rd, err := startRedis(b.dir, "redis-"+crypto, b.cfg.redisServer)
	if err != nil {
		return nil, err
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"ORDERHUB_ADDR=127.0.0.1:0",
		"ORDERHUB_REDIS_URL=redis://" + rd.addr + "/0",
		"ORDERHUB_CLIENTS=" + b.keys.clientsFile,
		"ORDERHUB_SIGNING_KEY=" + b.keys.orderhubFile,
		"ORDERHUB_ADMIN_TOKEN=" + b.adminToken,
		"ORDERHUB_LOG_LEVEL=info",
	}
	if len(b.cfg.profile) > 0 && crypto == "go" {
		port, err := freePort()
		if err != nil {
			rd.stop()
			return nil, err
		}
		env = append(env, fmt.Sprintf("%s=127.0.0.1:%d", b.cfg.pprofVar, port))
	}
	p, err := start(b.dir, "orderhub-"+crypto, bin, nil, env)
	if err != nil {
		rd.stop()
		return nil, err
	}
	if err := p.waitListening(60 * time.Second); err != nil {
		p.stop()
		rd.stop()
		return nil, err
	}
	s := &system{key: "orderhub-" + crypto, label: "orderhub (" + crypto + ")", crypto: crypto, proc: p, redis: rd, orderhub: true}
	if got := buildCrypto(ctx, p.url); got != crypto {
		s.proc.stop()
		rd.stop()
		return nil, fmt.Errorf("%s reports crypto build %q in orderhub_build_info, not %q", bin, got, crypto)
	}
	return s, nil
}

// startPrism runs Prism's mock of the partner edition, as tests/mock does.
func (b *bench) startPrism() (*system, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	spec, err := filepath.Abs(b.cfg.spec)
	if err != nil {
		return nil, err
	}
	p, err := start(b.dir, "prism", b.cfg.prism, []string{"mock", "--host", "127.0.0.1", "--port", strconv.Itoa(port), spec},
		[]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "DO_NOT_TRACK=1"})
	if err != nil {
		return nil, err
	}
	p.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := p.waitHTTP(p.url+"/public-keys", 90*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return &system{key: "prism", label: "Prism " + prismVersion(b.cfg.prism) + " mock", proc: p}, nil
}

// prismVersion is the version of the Prism package the launcher belongs
// to (node_modules/.bin/prism → node_modules/@stoplight/prism-cli).
func prismVersion(launcher string) string {
	text, err := os.ReadFile(filepath.Join(filepath.Dir(launcher), "..", "@stoplight", "prism-cli", "package.json"))
	if err != nil {
		return "(version unknown)"
	}
	var pkg struct{ Version string }
	if json.Unmarshal(text, &pkg) != nil || pkg.Version == "" {
		return "(version unknown)"
	}
	return pkg.Version
}

// createInquiryOrders makes the orders the inquiries ask for, each with
// its own posOrderId and extendInfo, so that no two answers are alike.
func (b *bench) createInquiryOrders(ctx context.Context, s *system) error {
	ids := make([]string, freshClients)
	for i := range ids {
		ids[i] = fmt.Sprintf("inq-%04d", i)
	}
	return b.createOrders(ctx, s, ids, models.OrderStatusPreparing)
}

// createOrders puts orders through the operator API, 32 at a time.
func (b *bench) createOrders(ctx context.Context, s *system, ids []string, status models.OrderStatus) error {
	ops, err := client.NewClientWithResponses(s.proc.url, client.WithHTTPClient(&http.Client{Transport: s.target.tr}),
		client.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+b.adminToken)
			return nil
		}))
	if err != nil {
		return err
	}
	errs := make([]error, 32)
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for i := w; i < len(ids) && errs[w] == nil; i += len(errs) {
				info := models.ExtendInfo(fmt.Appendf(nil, `{"table":"%d","bench":"%s"}`, i, ids[i]))
				res, err := ops.PutOrderWithResponse(ctx, ids[i], models.PutOrderRequest{PosOrderID: "pos-" + ids[i], OrderStatus: status, ExtendInfo: &info})
				switch {
				case err != nil:
					errs[w] = err
				case res.JSON200 == nil:
					errs[w] = fmt.Errorf("PUT /ops/orders/%s: HTTP %d %s", ids[i], res.StatusCode(), res.Body)
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// inquiryCalls are the signed inquiries of system s, one per order, signed
// again when older than three minutes so that none nears the 5-minute
// window (a cell lasts seconds).
func (b *bench) inquiryCalls(ctx context.Context, s *system) ([]call, error) {
	if time.Since(b.inquiredAt[s]) < 3*time.Minute {
		return b.inquiries[s], nil
	}
	specs := make([]spec, freshClients)
	for i := range specs {
		specs[i] = inquirySpec(fmt.Sprintf("inq-%04d", i))
	}
	calls, err := b.signer.sign(ctx, specs)
	if err != nil {
		return nil, err
	}
	mrand.New(mrand.NewPCG(1, 2)).Shuffle(len(calls), func(i, j int) { calls[i], calls[j] = calls[j], calls[i] })
	b.inquiries[s], b.inquiredAt[s] = calls, time.Now()
	return calls, nil
}

func (b *bench) nextID() string {
	b.seq++
	return fmt.Sprintf("nb%s-%d", b.runID, b.seq)
}

// replayCall is one signed notification, sent once so that its answer is
// stored when the system keeps any.
func (b *bench) replayCall(ctx context.Context, s *system) (call, error) {
	calls, err := b.signer.sign(ctx, []spec{auditSpec(clientID, b.nextID(), "T-replay")})
	if err != nil {
		return call{}, err
	}
	p := &pool{calls: calls}
	r := closedLoop(ctx, s.target, p, 1, window{until: time.Now().Add(time.Minute)}, wantS)
	if r.errs > 0 {
		return call{}, fmt.Errorf("the first send of the replayed request: %s", r.firstErr)
	}
	return calls[0], nil
}

// requests signs what cell c sends: n new requests, or a few sent round
// and round (repeat).
func (b *bench) requests(ctx context.Context, c *cell, n int) (*pool, error) {
	s := c.sys
	switch c.base {
	case "baseline", "replay":
		rc, err := b.replayCall(ctx, s)
		if err != nil {
			return nil, err
		}
		return &pool{calls: []call{rc}, repeat: true}, nil
	case "inquiry":
		calls, err := b.inquiryCalls(ctx, s)
		return &pool{calls: calls, repeat: true}, err
	}
	specs := make([]spec, 0, n)
	var orders []string
	var replay call
	var inquiries []call
	var slots []byte // the mix's kinds, in a shuffled order
	if c.base == "mix" {
		var err error
		if replay, err = b.replayCall(ctx, s); err != nil {
			return nil, err
		}
		if inquiries, err = b.inquiryCalls(ctx, s); err != nil {
			return nil, err
		}
		pattern := []byte("aaaaaaacccccccqqqqrr") // 7 audits, 7 completions, 4 inquiries, 2 replays in 20
		rng := mrand.New(mrand.NewPCG(3, 4))
		for len(slots) < n {
			rng.Shuffle(len(pattern), func(i, j int) { pattern[i], pattern[j] = pattern[j], pattern[i] })
			slots = append(slots, pattern...)
		}
		slots = slots[:n]
	}
	kind := func(i int) byte {
		switch c.base {
		case "unique-completion":
			return 'c'
		case "mix":
			return slots[i]
		}
		return 'a'
	}
	for i := range n {
		switch kind(i) {
		case 'a':
			caller := clientID
			if c.base == "unique-audit-fresh" {
				caller = freshClient(i)
			}
			specs = append(specs, auditSpec(caller, b.nextID(), "T"+strconv.Itoa(i%1024)))
		case 'c':
			id := b.nextID()
			orders = append(orders, id)
			specs = append(specs, completionSpec(id+"_1", id))
		}
	}
	if len(orders) > 0 {
		if err := b.createOrders(ctx, s, orders, models.OrderStatusReady); err != nil {
			return nil, fmt.Errorf("create the orders to complete: %w", err)
		}
	}
	signed, err := b.signer.sign(ctx, specs)
	if err != nil {
		return nil, err
	}
	if c.base != "mix" {
		return &pool{calls: signed}, nil
	}
	calls := make([]call, n)
	for i := range calls {
		switch slots[i] {
		case 'q':
			calls[i] = inquiries[i%len(inquiries)]
		case 'r':
			calls[i] = replay
		default:
			calls[i], signed = signed[0], signed[1:]
		}
	}
	return &pool{calls: calls}, nil
}

// settle returns once other processes have taken at most -quiet of the
// machine's CPU over the last look (since, the start of the cell's
// preparation, or 300 ms), or when the run's budget of waiting is spent:
// a cell measured while another program computes measures both.
func (b *bench) settle(ctx context.Context, since cpuSample) error {
	const look = 300 * time.Millisecond
	for {
		if d := look - time.Since(since.at); d > 0 {
			time.Sleep(d)
		}
		now, err := sampleCPU(b.pids())
		if err != nil {
			return err
		}
		if foreign(since, now) <= b.cfg.quiet || b.waited >= b.cfg.quietWait || ctx.Err() != nil {
			return ctx.Err()
		}
		b.waited += now.at.Sub(since.at)
		since = now
	}
}

// measured is the median closed-loop rate of a scenario on a system so
// far; 0 when not measured yet.
func (b *bench) measured(scenario, key string) float64 {
	var rates []float64
	for _, r := range b.results {
		if r.Scenario == scenario && r.System == key {
			rates = append(rates, r.ReqPerSec)
		}
	}
	return median(rates)
}

// size is how many new requests a cell may send: its expected rate over
// the cell with a margin. A cell that runs out stops early and says so:
// its rate is still right, over a shorter time.
func (b *bench) size(c *cell) int {
	rate := b.measured(c.base, c.sys.key)
	if rate == 0 {
		signOnly := b.measured("baseline", "sign-"+c.sys.crypto)
		if signOnly == 0 {
			signOnly = 1500
		}
		switch c.base {
		case "unique-audit", "unique-completion", "mix":
			rate = 2.5 * signOnly // their answers reuse signatures
		default:
			rate = 1.2 * signOnly
		}
	}
	switch c.load {
	case open:
		rate /= 2
	case flood:
		rate *= 0.9 // half the callers
	}
	n := int(rate*(warm+b.cfg.dur).Seconds()*1.25) + 4*c.callers
	switch c.base {
	case "unique-audit", "unique-completion", "mix":
		// orderhub answers these faster than the callers sign (the answers
		// reuse signatures): such a cell ends after what the callers sign
		// in about 60 % of its time, or signing would take most of the
		// bench.
		n = min(n, int(0.6*b.signer.rate()*(warm+b.cfg.dur).Seconds()))
	}
	return n
}

// measure runs cell c once and records its result.
func (b *bench) measure(ctx context.Context, c *cell, round int) error {
	s := c.sys
	signingBefore := b.signer.spent
	prepared, err := sampleCPU(b.pids())
	if err != nil {
		return err
	}
	p, err := b.requests(ctx, c, b.size(c))
	if err != nil {
		return err
	}
	if err := b.settle(ctx, prepared); err != nil {
		return err
	}
	var flooders *pool
	floodAt := s
	switch c.flood {
	case floodEmpty, floodElsewhere:
		flooders = &pool{calls: emptyFloodCalls(1), repeat: true}
	case floodUnknown:
		flooders = &pool{calls: signedFloodCalls(freshClients, randomID), repeat: true}
	case floodBadSig:
		flooders = &pool{calls: signedFloodCalls(freshClients, func(int) string { return clientID }), repeat: true}
	}
	if c.flood == floodElsewhere {
		if floodAt = b.byKey["bare"]; floodAt == nil {
			return errors.New("no bare echo to flood")
		}
	}
	var rate float64
	if c.load == open {
		if rate = b.measured(c.base, s.key) / 2; rate == 0 {
			return fmt.Errorf("no closed-loop maximum of %s to take half of", c.base)
		}
	}
	signing := b.signer.spent - signingBefore
	runtime.GC() // the signing's garbage is collected now, not during the cell

	// Before: the peak RSS restarts from here; Redis and signature counts.
	rec := &cellResult{Scenario: c.scenario, System: s.key, Load: c.load, Round: round + 1, SignSeconds: signing.Seconds()}
	hwm, err := peakRSS(s.proc.pid(), true)
	if err != nil {
		return err
	}
	b.peak[s.key] = max(b.peak[s.key], hwm)
	var redisBefore redisStats
	if s.redis != nil {
		if redisBefore, err = s.redis.stats(ctx); err != nil {
			return err
		}
	}
	var signedBefore, reusedBefore float64
	if s.orderhub {
		if signedBefore, reusedBefore, err = signatureCounts(ctx, s.proc.url); err != nil {
			return err
		}
	}
	stopProfile := b.startProfile(ctx, c, round)
	cpuBefore, err := sampleCPU(b.pids())
	if err != nil {
		return err
	}

	w := newWindow(0, b.cfg.dur)
	if c.load == open {
		w = newWindow(warm, b.cfg.dur)
	}
	var res, fl *result
	switch c.load {
	case closed:
		res = closedLoop(ctx, s.target, p, c.callers, w, wantS)
	case open:
		res = openLoop(ctx, s.target, p, rate, w, wantS)
	case flood:
		var wg sync.WaitGroup
		if flooders != nil {
			wg.Go(func() { fl = closedLoop(ctx, floodAt.target, flooders, b.cfg.callers, w, anyAnswer) })
		}
		res = closedLoop(ctx, s.target, p, c.callers, w, wantS)
		wg.Wait()
	}
	cpuAfter, err := sampleCPU(b.pids())
	if err != nil {
		return err
	}
	stopProfile()
	if b.exited(s) {
		return &goneError{tail(s.proc.log)}
	}
	rec.ForeignCPU = foreign(cpuBefore, cpuAfter)

	sent := uint64(p.next.Load())
	if !p.repeat {
		sent = min(sent, uint64(len(p.calls)))
	}
	rec.ReqPerSec, rec.Requests, rec.Sent, rec.Errors = res.rate(), res.ok+res.errs, sent, res.errs
	rec.FirstError, rec.Seconds, rec.Short, rec.Offered = res.firstErr, res.elapsed.Seconds(), res.short, res.offered
	rec.hist = res.hist
	rec.P50Ms, rec.P99Ms, rec.P999Ms = ms(res.hist.quantile(0.5)), ms(res.hist.quantile(0.99)), ms(res.hist.quantile(0.999))
	if fl != nil {
		rec.FloodPerSec = fl.rate()
	}
	if rec.PeakRSS, err = peakRSS(s.proc.pid(), false); err != nil {
		return err
	}
	b.peak[s.key] = max(b.peak[s.key], rec.PeakRSS)
	if s.redis != nil {
		after, err := s.redis.stats(ctx)
		if err != nil {
			return err
		}
		rec.RedisCmds, rec.RedisReads = after.minus(redisBefore)
	}
	if s.orderhub {
		signed, reused, err := signatureCounts(ctx, s.proc.url)
		if err != nil {
			return err
		}
		rec.Signed, rec.Reused = signed-signedBefore, reused-reusedBefore
	}
	if res.sample != nil && (s.orderhub || s.crypto != "") {
		if err := verifyAnswer(res.sample, &b.keys.orderhub.PublicKey); err != nil {
			return fmt.Errorf("an answer does not verify: %w", err)
		}
	}
	if res.ok == 0 {
		return fmt.Errorf("no answer as expected: %s", res.firstErr)
	}
	b.results = append(b.results, rec)
	short := ""
	if rec.Short {
		short = " (ran out of signed requests early)"
	}
	fmt.Printf("round %d  %-30s %-24s %8.0f req/s  p50 %6.2f  p99 %6.2f  p99.9 %6.2f ms  errors %d  other processes %2.0f %% CPU%s\n",
		round+1, c.scenario, s.label, rec.ReqPerSec, rec.P50Ms, rec.P99Ms, rec.P999Ms, rec.Errors, 100*rec.ForeignCPU, short)
	return nil
}

// startProfile collects a CPU profile of the pure-Go orderhub during the
// first cell of each scenario -profile names: from orderhub's pprof
// listener when it serves one, else with perf when installed. It returns
// the function that waits for the profile to be written.
func (b *bench) startProfile(ctx context.Context, c *cell, round int) func() {
	if !b.cfg.profile[c.scenario] || c.sys.key != "orderhub-go" || round != 0 {
		return func() {}
	}
	seconds := int((warm + b.cfg.dur).Seconds())
	dir := filepath.Dir(b.cfg.out)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.note("profile: " + err.Error())
		return func() {}
	}
	base := filepath.Join(dir, "cpu-"+sanitize(c.scenario))
	if addr := pprofAddr(c.sys.proc.cmd.Env, b.cfg.pprofVar); addr != "" {
		if res, err := http.Get("http://" + addr + "/debug/pprof/"); err == nil {
			res.Body.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				if err := fetchProfile(ctx, "http://"+addr+"/debug/pprof/profile?seconds="+strconv.Itoa(seconds), base+".pprof"); err != nil {
					b.note("pprof profile: " + err.Error())
					return
				}
				b.profiles = append(b.profiles, base+".pprof")
				if err := pprofTop(ctx, base+".pprof", base+".pprof.txt"); err != nil {
					b.note("go tool pprof: " + err.Error())
					return
				}
				b.profiles = append(b.profiles, base+".pprof.txt")
			}()
			return func() { <-done }
		}
	}
	perf, err := exec.LookPath("perf")
	if err != nil {
		b.note(fmt.Sprintf("no profile of %s: orderhub serves no pprof at %s and perf is not installed", c.scenario, b.cfg.pprofVar))
		return func() {}
	}
	data := base + ".perf.data"
	cmd := exec.CommandContext(ctx, perf, "record", "-F", "999", "-g", "-p", strconv.Itoa(c.sys.proc.pid()), "-o", data, "--", "sleep", strconv.Itoa(seconds))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.note("perf record: " + err.Error())
		return func() {}
	}
	return func() {
		if err := cmd.Wait(); err != nil {
			b.note(fmt.Sprintf("perf record: %v: %s", err, strings.TrimSpace(stderr.String())))
			return
		}
		if err := perfReport(ctx, perf, data, base+".perf.txt"); err != nil {
			b.note("perf report: " + err.Error())
			return
		}
		b.profiles = append(b.profiles, fmt.Sprintf("%s, %s (perf: orderhub serves no pprof at %s)", data, base+".perf.txt", b.cfg.pprofVar))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
