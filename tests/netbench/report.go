package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// summary is one scenario on one system over all rounds: the medians of
// the rounds' rates and latency percentiles, per-request counts over all
// requests sent.
type summary struct {
	Scenario        string             `json:"scenario"`
	Base            string             `json:"baseScenario"`
	System          string             `json:"system"`
	Label           string             `json:"label"`
	Load            string             `json:"load"`
	Flood           string             `json:"flood,omitempty"`
	ReqPerSec       float64            `json:"reqPerSec"`
	ByRound         []float64          `json:"reqPerSecByRound"`
	Offered         float64            `json:"offeredPerSec,omitempty"`
	P50Ms           float64            `json:"p50Ms"` // median over the rounds of each round's
	P99Ms           float64            `json:"p99Ms"`
	P999Ms          float64            `json:"p999Ms"`
	MergedP99Ms     float64            `json:"mergedP99Ms"` // over all rounds' requests together
	MergedP999Ms    float64            `json:"mergedP999Ms"`
	Requests        uint64             `json:"requests"`
	Errors          uint64             `json:"errors"`
	FirstError      string             `json:"firstError,omitempty"`
	ShortRounds     int                `json:"shortRounds,omitempty"`
	PeakRSSMiB      float64            `json:"peakRSSMiB"`
	RedisCmds       *float64           `json:"redisCommandsPerRequest,omitempty"`
	RedisRoundTrips *float64           `json:"redisRoundTripsPerRequest,omitempty"`
	RedisByCommand  map[string]float64 `json:"redisCommandsPerRequestByName,omitempty"`
	Signs           *float64           `json:"rsaSignaturesPerRequest,omitempty"`
	XSignOnly       float64            `json:"xSignOnly,omitempty"`
	XBare           float64            `json:"xBareEcho,omitempty"`
	XWithout        float64            `json:"xWithoutFlood,omitempty"`
	FloodPerSec     float64            `json:"floodAnsweredPerSec,omitempty"`
	SignsPerSec     float64            `json:"rsaSignaturesPerSecond,omitempty"`
}

// targetResult is one of the targets, measured.
type targetResult struct {
	Target   string  `json:"target"`
	Measured string  `json:"measured"`
	Value    float64 `json:"value"`
	Holds    bool    `json:"holds"`
}

type meta struct {
	Date          string   `json:"date"`
	Commit        string   `json:"commit"`
	GoVersion     string   `json:"goVersion"`
	CPU           string   `json:"cpu"`
	Cores         int      `json:"cores"`
	BenchTime     string   `json:"benchTime"`
	Rounds        int      `json:"rounds"`
	Callers       int      `json:"callers"`
	Crypto        []string `json:"crypto"`
	WallSeconds   float64  `json:"wallSeconds"`
	SigningSecond float64  `json:"callerSigningSeconds"`
	ForeignCPU    float64  `json:"otherProcessesCPUShare"` // mean over the cells
	WaitedSeconds float64  `json:"waitedForQuietSeconds"`
	SignRate      float64  `json:"callerSignaturesPerSecond"`
}

type report struct {
	Meta      meta               `json:"meta"`
	Summaries []*summary         `json:"scenarios"`
	Targets   []targetResult     `json:"targets"`
	PeakRSS   map[string]float64 `json:"peakRSSMiBWholeRun"`
	Notes     []string           `json:"notes,omitempty"`
	Profiles  []string           `json:"profiles,omitempty"`
	Cells     []*cellResult      `json:"cells"`
	labels    map[string]string
}

const mib = 1 << 20

func (b *bench) report(wall time.Duration) *report {
	rep := &report{
		Meta: meta{
			Date: time.Now().UTC().Format(time.RFC3339), Commit: commit(), GoVersion: runtime.Version(),
			CPU: cpuModel(), Cores: runtime.NumCPU(), BenchTime: b.cfg.dur.String(), Rounds: b.cfg.rounds,
			Callers: b.cfg.callers, WallSeconds: wall.Seconds(), SigningSecond: b.signer.spent.Seconds(),
			WaitedSeconds: b.waited.Seconds(), SignRate: b.signer.rate(),
		},
		PeakRSS: map[string]float64{}, Notes: b.notes, Profiles: b.profiles, Cells: b.results,
		labels: map[string]string{},
	}
	for _, s := range b.systems {
		rep.labels[s.key] = s.label
	}
	for _, c := range b.results {
		rep.Meta.ForeignCPU += c.ForeignCPU / float64(len(b.results))
	}
	for key, v := range b.peak {
		rep.PeakRSS[key] = float64(v) / mib
	}
	for _, key := range []string{"orderhub-go", "orderhub-boringcrypto"} {
		if _, ok := b.peak[key]; ok {
			rep.Meta.Crypto = append(rep.Meta.Crypto, strings.TrimPrefix(key, "orderhub-"))
		}
	}
	type id struct{ scenario, system string }
	groups := map[id][]*cellResult{}
	var order []id
	for _, r := range b.results {
		k := id{r.Scenario, r.System}
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	for _, k := range order {
		rep.Summaries = append(rep.Summaries, summarize(groups[k], rep.labels[k.system]))
	}
	for _, s := range rep.Summaries {
		s.Base, s.Flood = s.Scenario, ""
		if base, _, ok := strings.Cut(s.Scenario, "@"); ok {
			s.Base = base
		}
		if kind, ok := strings.CutPrefix(s.Scenario, "flood:"); ok {
			s.Base, s.Flood = "flood", kind
		}
	}
	rep.ratios()
	rep.Targets = rep.targets()
	return rep
}

func summarize(rs []*cellResult, label string) *summary {
	first := rs[0]
	s := &summary{Scenario: first.Scenario, System: first.System, Label: label, Load: first.Load}
	var h histogram
	var sent uint64
	var cmds = map[string]uint64{}
	var reads uint64
	var signed, seconds float64
	var floods, p50, p99, p999 []float64
	for _, r := range rs {
		p50, p99, p999 = append(p50, r.P50Ms), append(p99, r.P99Ms), append(p999, r.P999Ms)
		s.ByRound = append(s.ByRound, r.ReqPerSec)
		s.Offered = max(s.Offered, r.Offered)
		h.merge(&r.hist)
		s.Requests += r.Requests
		s.Errors += r.Errors
		if s.FirstError == "" {
			s.FirstError = r.FirstError
		}
		if r.Short {
			s.ShortRounds++
		}
		s.PeakRSSMiB = max(s.PeakRSSMiB, float64(r.PeakRSS)/mib)
		sent += r.Sent
		for c, n := range r.RedisCmds {
			cmds[c] += n
		}
		reads += r.RedisReads
		signed += r.Signed
		seconds += r.Seconds
		floods = append(floods, r.FloodPerSec)
	}
	s.ReqPerSec = median(s.ByRound)
	// Medians, like the rate: one round disturbed by another program does
	// not decide the figure.
	s.P50Ms, s.P99Ms, s.P999Ms = median(p50), median(p99), median(p999)
	s.MergedP99Ms, s.MergedP999Ms = ms(h.quantile(0.99)), ms(h.quantile(0.999))
	if strings.HasPrefix(first.System, "orderhub-") && sent > 0 {
		var total uint64
		s.RedisByCommand = map[string]float64{}
		for c, n := range cmds {
			total += n
			s.RedisByCommand[c] = float64(n) / float64(sent)
		}
		s.RedisCmds = ptr(float64(total) / float64(sent))
		s.RedisRoundTrips = ptr(float64(reads) / float64(sent))
		s.Signs = ptr(signed / float64(sent))
		if seconds > 0 {
			s.SignsPerSec = signed / seconds
		}
	}
	if first.Load == flood {
		s.FloodPerSec = median(floods)
	}
	return s
}

func ptr(v float64) *float64 { return &v }

func (rep *report) find(scenario, system string) *summary {
	for _, s := range rep.Summaries {
		if s.Scenario == scenario && s.System == system {
			return s
		}
	}
	return nil
}

// ratios sets each closed-loop maximum against the baselines of the same
// run: sign-only of the same crypto build, and bare echo.
func (rep *report) ratios() {
	bare := rep.find("baseline", "bare")
	for _, s := range rep.Summaries {
		switch s.Load {
		case closed:
			crypto := "go"
			if strings.HasSuffix(s.System, "boringcrypto") {
				crypto = "boringcrypto"
			}
			if so := rep.find("baseline", "sign-"+crypto); so != nil && so.ReqPerSec > 0 {
				s.XSignOnly = s.ReqPerSec / so.ReqPerSec
			}
			if bare != nil && bare.ReqPerSec > 0 {
				s.XBare = s.ReqPerSec / bare.ReqPerSec
			}
		case flood:
			if none := rep.find("flood:"+floodNone, s.System); none != nil && none.ReqPerSec > 0 {
				s.XWithout = s.ReqPerSec / none.ReqPerSec
			}
		}
	}
}

// targets are the issue's, each measured in this run.
func (rep *report) targets() []targetResult {
	var ts []targetResult
	add := func(target, measured string, value float64, holds bool) {
		ts = append(ts, targetResult{target, measured, value, holds})
	}
	for _, crypto := range rep.Meta.Crypto {
		sys := "orderhub-" + crypto
		for _, sc := range []string{"unique-audit-fresh", "unique-audit", "unique-completion"} {
			if s := rep.find(sc, sys); s != nil && s.XSignOnly > 0 {
				add(fmt.Sprintf("unique notifications ≥ 0.90 × sign-only (%s): %s", crypto, sc),
					fmt.Sprintf("%.2f ×, %.2f RSA signatures/req", s.XSignOnly, deref(s.Signs)), s.XSignOnly, s.XSignOnly >= 0.90)
			}
		}
		if s := rep.find("replay", sys); s != nil && s.XBare > 0 {
			add(fmt.Sprintf("replays ≥ 0.35 × bare echo (%s)", crypto), fmt.Sprintf("%.2f ×", s.XBare), s.XBare, s.XBare >= 0.35)
		}
		if s := rep.find("inquiry", sys); s != nil && s.XSignOnly > 0 {
			add(fmt.Sprintf("inquiries ≥ 0.95 × sign-only (%s)", crypto), fmt.Sprintf("%.2f ×", s.XSignOnly), s.XSignOnly, s.XSignOnly >= 0.95)
		}
	}
	for _, s := range rep.Summaries {
		if s.Load == open && strings.HasPrefix(s.System, "orderhub-") {
			add(fmt.Sprintf("at 50 %% load p99 ≤ 5 ms, p99.9 ≤ 10 ms: %s", s.Base),
				fmt.Sprintf("p99 %.2f ms, p99.9 %.2f ms at %.0f req/s", s.P99Ms, s.P999Ms, s.ReqPerSec), s.P99Ms, s.P99Ms <= 5 && s.P999Ms <= 10)
		}
	}
	for _, s := range rep.Summaries {
		if s.Load == flood && s.Flood != floodNone && s.Flood != floodElsewhere && s.XWithout > 0 {
			add("under a flood, legitimate ≥ 0.7 × without: "+s.Flood, fmt.Sprintf("%.2f ×", s.XWithout), s.XWithout, s.XWithout >= 0.7)
		}
	}
	for _, crypto := range rep.Meta.Crypto {
		if v, ok := rep.PeakRSS["orderhub-"+crypto]; ok {
			add(fmt.Sprintf("peak RSS ≤ 64 MiB over the whole bench (%s, Redis store)", crypto), fmt.Sprintf("%.1f MiB", v), v, v <= 64)
		}
	}
	rt := func(sc string, limit float64, what string) {
		if s := rep.find(sc, "orderhub-go"); s != nil && s.RedisRoundTrips != nil {
			v := *s.RedisRoundTrips
			add(what, fmt.Sprintf("%.2f round trips, %.2f commands per request (%s)", v, deref(s.RedisCmds), commandList(s.RedisByCommand)), v, v <= limit+0.05)
		}
	}
	rt("replay", 1, "Redis: 1 round trip per replay")
	rt("unique-audit", 2, "Redis: ≤ 2 round trips per first-time notifyDeliveryAuditResult (no rate limits)")
	rt("unique-completion", 2, "Redis: ≤ 2 round trips per first-time notifyOrderCompletion (no rate limits)")
	return ts
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

func commandList(m map[string]float64) string {
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(m)) {
		if m[c] >= 0.005 {
			parts = append(parts, fmt.Sprintf("%s %.2f", c, m[c]))
		}
	}
	return strings.Join(parts, ", ")
}

// print writes the tables, in Markdown so that the README can show them.
func (rep *report) print(w io.Writer) {
	m := rep.Meta
	fmt.Fprintf(w, "\n%s, %s, %d cores (%s), %s; %d rounds of %s per cell, %d callers\n",
		m.Date, m.Commit, m.Cores, m.CPU, m.GoVersion, m.Rounds, m.BenchTime, m.Callers)
	for _, info := range scenarioList() {
		if info.load != closed {
			continue
		}
		rows := rep.rowsOf(info.name)
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n### %s\n\n%s. Signatures: %s.\n\n", info.name, info.title, info.signs)
		fmt.Fprintln(w, "| system | load | req/s | p50 ms | p99 ms | p99.9 ms | errors | peak RSS MiB | Redis commands/req | Redis round trips/req | RSA signs/req | × sign-only | × bare echo |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
		for _, s := range rows {
			load := fmt.Sprintf("max (%d callers)", m.Callers)
			if s.Load == open {
				load = fmt.Sprintf("50 %% (%.0f/s offered)", s.Offered)
			}
			if s.ShortRounds > 0 {
				load += fmt.Sprintf(" †%d", s.ShortRounds)
			}
			fmt.Fprintf(w, "| %s | %s | %.0f | %.2f | %.2f | %.2f | %d | %.1f | %s | %s | %s | %s | %s |\n",
				s.Label, load, s.ReqPerSec, s.P50Ms, s.P99Ms, s.P999Ms, s.Errors, s.PeakRSSMiB,
				opt(s.RedisCmds), opt(s.RedisRoundTrips), opt(s.Signs), ratio(s.XSignOnly), ratio(s.XBare))
		}
	}
	var floods []*summary
	for _, s := range rep.Summaries {
		if s.Load == flood {
			floods = append(floods, s)
		}
	}
	if len(floods) > 0 {
		info := scenarioList()[len(scenarioList())-1]
		fmt.Fprintf(w, "\n### flood\n\n%s. Signatures: %s.\n\n", info.title, info.signs)
		fmt.Fprintln(w, "| flood | legitimate req/s | × without | p50 ms | p99 ms | p99.9 ms | errors | flood answered/s | RSA signatures/s | peak RSS MiB | Redis cmds/legit req |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
		for _, s := range floods {
			fl := "–"
			if s.Flood != floodNone {
				fl = fmt.Sprintf("%.0f", s.FloodPerSec)
			}
			fmt.Fprintf(w, "| %s | %.0f | %s | %.2f | %.2f | %.2f | %d | %s | %.1f | %.1f | %s |\n",
				s.Flood, s.ReqPerSec, ratio(s.XWithout), s.P50Ms, s.P99Ms, s.P999Ms, s.Errors, fl, s.SignsPerSec, s.PeakRSSMiB, opt(s.RedisCmds))
		}
	}
	if rep.hasShort() {
		fmt.Fprintf(w, "\n† rounds that ended when their signed requests ran out, before BENCH_TIME: the callers sign about %.0f requests a second on these cores, and where orderhub answers faster (its answers reuse signatures) a cell gets what they sign in 60 %% of its time. The rate is over the shorter time.\n", m.SignRate)
	}
	fmt.Fprintln(w, "\nRedis commands include those its Lua scripts run (INFO commandstats); round trips are Redis' read events (total_reads_processed), so a pipeline counts once.")
	fmt.Fprintf(w, "\nPeak RSS over the whole run:")
	for _, k := range slices.Sorted(maps.Keys(rep.PeakRSS)) {
		fmt.Fprintf(w, " %s %.1f MiB;", k, rep.PeakRSS[k])
	}
	fmt.Fprintf(w, " the callers spent %.0f s signing, outside the timed parts.\n", m.SigningSecond)
	if worst := rep.worstForeign(); worst != nil {
		fmt.Fprintf(w, "Other processes on the machine took %.0f %% of its CPU on average during the cells, at most %.0f %% (%s on %s, round %d)%s; the bench waited %.0f s for them to calm down.\n",
			100*m.ForeignCPU, 100*worst.ForeignCPU, worst.Scenario, worst.System, worst.Round, quietness(m.ForeignCPU), m.WaitedSeconds)
	}
	if so, sb := rep.find("baseline", "sign-go"), rep.find("baseline", "sign-boringcrypto"); so != nil && sb != nil && so.ReqPerSec > 0 {
		fmt.Fprintf(w, "sign-only boringcrypto / sign-only go: %.2f ×.\n", sb.ReqPerSec/so.ReqPerSec)
	}
	fmt.Fprintln(w, "\n### targets (issue 19)")
	fmt.Fprintln(w, "\n| target | measured | holds |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, t := range rep.Targets {
		holds := "**no**"
		if t.Holds {
			holds = "yes"
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", t.Target, t.Measured, holds)
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "\nnote:", n)
	}
	for _, p := range rep.Profiles {
		fmt.Fprintln(w, "profile:", p)
	}
}

// worstForeign is the cell during which other processes took the most CPU.
func (rep *report) worstForeign() *cellResult {
	var worst *cellResult
	for _, c := range rep.Cells {
		if worst == nil || c.ForeignCPU > worst.ForeignCPU {
			worst = c
		}
	}
	return worst
}

func quietness(share float64) string {
	if share > 0.05 {
		return ": the machine was not quiet, and the figures are lower and noisier than on a machine of its own"
	}
	return ""
}

// rowsOf are a closed-loop scenario's rows: each system's maximum, then
// the open-loop run at half of it.
func (rep *report) rowsOf(scenario string) []*summary {
	var maxima, halves []*summary
	for _, s := range rep.Summaries {
		switch {
		case s.Scenario == scenario:
			maxima = append(maxima, s)
		case s.Load == open && s.Base == scenario:
			halves = append(halves, s)
		}
	}
	return append(maxima, halves...)
}

func (rep *report) hasShort() bool {
	for _, s := range rep.Summaries {
		if s.ShortRounds > 0 {
			return true
		}
	}
	return false
}

func opt(p *float64) string {
	if p == nil {
		return "–"
	}
	return fmt.Sprintf("%.2f", *p)
}

func ratio(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", v)
}

func (rep *report) write(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// compare prints each scenario's rate against an earlier run's JSON.
func (rep *report) compare(w io.Writer, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var old report
	if err := json.Unmarshal(b, &old); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(w, "\n### against %s (%s, %s)\n\n| scenario | system | then req/s | now req/s | now/then | then p99 ms | now p99 ms |\n|---|---|---|---|---|---|---|\n", path, old.Meta.Commit, old.Meta.Date)
	for _, s := range rep.Summaries {
		o := old.find(s.Scenario, s.System)
		if o == nil || o.ReqPerSec == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %.0f | %.2f | %.2f | %.2f |\n", s.Scenario, s.Label, o.ReqPerSec, s.ReqPerSec, s.ReqPerSec/o.ReqPerSec, o.P99Ms, s.P99Ms)
	}
	return nil
}

// commit names the working tree measured: the commit, "-dirty" when it
// has changes.
func commit() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty", "--abbrev=12").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
