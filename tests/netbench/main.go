// Command netbench measures orderhub over loopback, as its partners load
// it: it starts a redis-server, orderhub (Redis store, production
// configuration, request logs on), two yardsticks (a bare echo server and
// one that RSA-signs each answer) and, when installed, Prism's mock of the
// partner edition; then it drives them in alternating rounds from a load
// generator built on the generated client and impl/signature, and prints
// one table per scenario, the targets and whether each holds, and
// writes the same as JSON and a PNG plot. make bench runs it; see the
// README's "Reading the benchmark".
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// config is what the flags say.
type config struct {
	orderhub       string // the pure-Go build
	orderhubBoring string // the GOEXPERIMENT=boringcrypto build; "" runs none
	baseline       string
	baselineBoring string
	prism          string // Prism's launcher; "" runs none
	prismNote      string // why Prism does not run
	spec           string // the partner edition Prism mocks
	redisServer    string
	dur            time.Duration
	rounds         int
	callers        int
	out            string // JSON
	plot           string // PNG
	only           map[string]bool
	profile        map[string]bool // the scenarios whose first cell is profiled
	pprofVar       string          // the variable that tells orderhub where to serve pprof
	quiet          float64         // the share of the CPU other processes may take when a cell starts
	quietWait      time.Duration   // how long a run may wait for that in all
	keep           bool
	compare        string // an earlier JSON to compare with
}

func main() {
	var c config
	var only, profile string
	flag.StringVar(&c.orderhub, "orderhub", "", "orderhub binary (go build ./impl/cmd/orderhub)")
	flag.StringVar(&c.orderhubBoring, "orderhub-boring", "", "orderhub built with GOEXPERIMENT=boringcrypto, run beside the pure-Go build (unset: none)")
	flag.StringVar(&c.baseline, "baseline", "", "baseline binary (tests/netbench/cmd/baseline)")
	flag.StringVar(&c.baselineBoring, "baseline-boring", "", "baseline built with GOEXPERIMENT=boringcrypto")
	flag.StringVar(&c.prism, "prism", "", "Prism's launcher (scripts/tools/node_modules/.bin/prism); unset: no Prism")
	flag.StringVar(&c.prismNote, "prism-note", "", "why Prism is not run, printed when -prism is unset")
	flag.StringVar(&c.spec, "spec", "../../generated/partner/orderhub.yaml", "the partner edition Prism mocks")
	flag.StringVar(&c.redisServer, "redis-server", "redis-server", "redis-server binary")
	flag.DurationVar(&c.dur, "time", 2*time.Second, "measured time of each cell in each round (BENCH_TIME)")
	flag.IntVar(&c.rounds, "rounds", 3, "rounds; each runs every cell once, in an order rotated from round to round")
	flag.IntVar(&c.callers, "callers", 32, "concurrent callers of the closed-loop scenarios")
	flag.StringVar(&c.out, "out", "results/netbench.json", "where the JSON results go")
	flag.StringVar(&c.plot, "plot", "results/netbench.png", "where the PNG plot goes")
	flag.StringVar(&only, "only", "", "comma-separated scenarios to run (default: all): "+strings.Join(scenarioNames(), ", "))
	flag.StringVar(&profile, "profile", "", "comma-separated scenarios (e.g. unique-audit,replay@50%) during whose first cell a CPU profile of orderhub is collected: from its pprof listener when it serves one (see -pprof-var), else with perf when installed")
	flag.StringVar(&c.pprofVar, "pprof-var", "ORDERHUB_PPROF_ADDR", "with -profile: the variable set to a free loopback address for orderhub's pprof listener")
	flag.Float64Var(&c.quiet, "quiet", 0.15, "before each cell, wait until other processes take at most this share of the machine's CPU (1: never wait)")
	flag.DurationVar(&c.quietWait, "quiet-wait", 40*time.Second, "how long the whole run may wait for that")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory (keys, clients file, the servers' logs)")
	flag.StringVar(&c.compare, "compare", "", "an earlier JSON result: print each scenario's req/s against it")
	flag.Parse()
	if c.orderhub == "" || c.baseline == "" {
		fmt.Fprintln(os.Stderr, "netbench: -orderhub and -baseline are required (make bench builds and passes them)")
		os.Exit(2)
	}
	if c.rounds < 1 || c.callers < 2 || c.dur < 500*time.Millisecond {
		fmt.Fprintln(os.Stderr, "netbench: -rounds ≥ 1, -callers ≥ 2 and -time ≥ 500ms")
		os.Exit(2)
	}
	c.only, c.profile = set(only), set(profile)
	if only == "" {
		c.only = nil // everything
	}
	for name := range c.only {
		if !slices.Contains(scenarioNames(), name) {
			fmt.Fprintf(os.Stderr, "netbench: -only %s: no such scenario (%s)\n", name, strings.Join(scenarioNames(), ", "))
			os.Exit(2)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "netbench:", err)
		os.Exit(1)
	}
}

// set reads a comma-separated list.
func set(list string) map[string]bool {
	m := map[string]bool{}
	for s := range strings.SplitSeq(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			m[s] = true
		}
	}
	return m
}
