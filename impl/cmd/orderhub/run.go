package main

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/orderhub/orderhub/impl/buildinfo"
	"github.com/orderhub/orderhub/impl/faults"
	"github.com/orderhub/orderhub/impl/httpapi"
	"github.com/orderhub/orderhub/impl/orderhub"
	"github.com/orderhub/orderhub/impl/signature"
)

// storePingTimeout bounds the start-up check of the store: long enough for
// a healthy Redis across a network, short enough not to delay a start.
const storePingTimeout = 2 * time.Second

// run wires orderhub from its configuration and serves until ctx ends, then
// drains in-flight requests. Each value on reload (SIGHUP, from main)
// reloads the clients file. With -h (--help, help) it writes the settings
// to stdout instead.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, reload <-chan os.Signal) error {
	if len(args) == 1 && isHelp(args[0]) {
		return usage(stdout)
	}
	if len(args) > 0 {
		return &usageError{args}
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	// Every line on stdout is JSON. The start-up and shutdown lines say what
	// is in force whatever the log level: a supervisor or another language's
	// test harness reads the address from the "listening" line.
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	// go-redis has one logger per process, and run is the process: its
	// messages (a failed dial, a cluster reload) become JSON lines here.
	orderhub.RedisLogsTo(log)
	startup := slog.New(slog.NewJSONHandler(stdout, nil))
	build := buildinfo.Read()
	startup.Info("orderhub", "version", build.Version, "revision", build.Revision, "go", build.GoVersion, "crypto", build.Crypto)

	if cfg.Dev {
		if cfg.ClientsFile, cfg.SigningKeyFile, err = devSetup(cfg.DevDir, startup); err != nil {
			return fmt.Errorf("development setup in %s: %w", cfg.DevDir, err)
		}
	}
	signingKey, err := readSigningKey(cfg.SigningKeyFile)
	if err != nil {
		return err
	}
	earlier, err := readEarlierKeys(cfg.EarlierKeyFiles)
	if err != nil {
		return err
	}
	docs, err := readDocs(cfg)
	if err != nil {
		return err
	}
	svc, err := orderhub.Open(orderhub.Config{
		RedisURL:          cfg.RedisURL,
		RedisMinReplicas:  cfg.RedisMinReplicas,
		ClientsFile:       cfg.ClientsFile,
		SigningKey:        signingKey,
		SigningKeyVersion: cfg.SigningKeyVersion,
		EarlierKeys:       earlier,
		AdminToken:        cfg.AdminToken,
		Limits:            cfg.Limits(),
		TimeWindow:        cfg.TimeWindow,
		Lease:             cfg.Lease,
		Retention:         cfg.Retention,
		FinalRetention:    cfg.FinalRetention,
		RequestTimeout:    cfg.RequestTimeout,
		BodyLimit:         cfg.MaxBodyBytes,
		Logger:            log,
		Docs:              docs,
		Faults:            cfg.Faults,
	})
	if err != nil {
		if ce, ok := errors.AsType[*httpapi.ConfigError](err); ok {
			return &configError{refusal(ce, cfg)}
		}
		return err
	}
	defer svc.Close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return &configError{fmt.Sprintf("ORDERHUB_ADDR=%q: %v", cfg.Addr, err)}
	}
	srv := &http.Server{
		Handler:           svc.Handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.RequestTimeout, // a body slower than this is answered 408
		WriteTimeout:      cfg.RequestTimeout + 5*time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	if cfg.Faults {
		srv.WriteTimeout += faults.MaxDelay // a delayed answer still gets out
	}
	storeName := svc.Store
	if cfg.RedisURL == "" {
		storeName += " (set ORDERHUB_REDIS_URL for Redis)"
	} else {
		// An unreachable store is not a reason to refuse to start: Redis
		// may come up after orderhub, and /readyz keeps the traffic away
		// meanwhile. But the operator should not have to guess.
		pingCtx, cancel := context.WithTimeout(ctx, storePingTimeout)
		err := svc.Ping(pingCtx)
		cancel()
		if err != nil {
			startup.Warn("store unreachable: orderhub starts anyway, and /readyz answers 503 until the store answers", "store", svc.Store, "err", err.Error())
		} else {
			startup.Info("store reachable", "store", svc.Store)
		}
	}
	limits := svc.Limits
	if cfg.Limits().Off() {
		limits += " (set ORDERHUB_RATE_LIMIT_PER_CLIENT or ORDERHUB_RATE_LIMIT_GLOBAL)"
	}
	startup.Info("clients registered", "clients", svc.Clients.Current().Len(), "file", cfg.ClientsFile, "reload", "SIGHUP")
	startup.Info("rate limits", "limits", limits)
	if cfg.AdminToken == "" {
		startup.Info("operator API off: set ORDERHUB_ADMIN_TOKEN to enable /ops/")
	}
	if cfg.Faults {
		startup.Warn("fault rules on (ORDERHUB_FAULTS=1): /ops/faults scripts answers, delays and dropped connections; a test instance, never production")
	}
	if cfg.PprofAddr != "" {
		stopProfiles, err := serveProfiles(cfg.PprofAddr, startup)
		if err != nil {
			return err
		}
		defer stopProfiles()
	}
	startup.Info("listening", "url", "http://"+ln.Addr().String(), "addr", ln.Addr().String(), "store", storeName)

	reloadCtx, stopReloading := context.WithCancel(ctx)
	defer stopReloading()
	go reloadClients(reloadCtx, reload, svc, log)
	return serve(ctx, srv, ln, cfg.ShutdownTimeout, startup)
}

// serveProfiles serves net/http/pprof on a listener of its own at addr
// (ORDERHUB_PPROF_ADDR): never on the partner port, and only when asked.
// The returned func closes it.
func serveProfiles(addr string, startup *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &configError{fmt.Sprintf("ORDERHUB_PPROF_ADDR=%q: %v", addr, err)}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	startup.Warn("profiles served (ORDERHUB_PPROF_ADDR): Go's pprof endpoints, for operators only", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return func() { _ = srv.Close() }, nil
}

// isHelp reports whether arg asks for the settings.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// usageError is a command line orderhub does not take: it has no
// arguments, only settings.
type usageError struct{ args []string }

func (e *usageError) Error() string {
	quoted := make([]string, len(e.args))
	for i, a := range e.args {
		quoted[i] = strconv.Quote(a)
	}
	what := "argument"
	if len(e.args) > 1 {
		what = "arguments"
	}
	return fmt.Sprintf("unexpected %s %s: orderhub takes no arguments, only environment variables; run orderhub -h for the settings", what, strings.Join(quoted, " "))
}

// refusal words a refusal of orderhub.Open by the variable the operator
// set: ORDERHUB_CLIENTS=clients.yaml: line 3, column 5: …
func refusal(ce *httpapi.ConfigError, cfg config) string {
	name := variable(ce.Field)
	// The clients file's errors begin with the file's name (*clients.Error):
	// it is the variable's value, said once.
	if ce.Field == "ClientsFile" && strings.HasPrefix(ce.Reason, cfg.ClientsFile+": ") {
		return name + "=" + ce.Reason
	}
	return name + ": " + ce.Reason
}

// reloadClients reloads the clients file on every reload until ctx ends;
// requests keep flowing meanwhile, and a broken file leaves the previous
// registry in force.
func reloadClients(ctx context.Context, reload <-chan os.Signal, svc *orderhub.Service, log *slog.Logger) {
	for {
		select {
		case <-reload:
			if err := svc.ReloadClients(); err != nil {
				log.Error("clients reload failed", "err", err)
			} else {
				log.Info("clients reloaded", "clients", svc.Clients.Current().Len())
			}
		case <-ctx.Done():
			return
		}
	}
}

// serve answers on ln until ctx ends, then drains: the listener closes at
// once (new connections are refused, so a load balancer moves on), idle
// keep-alive connections are closed, and the requests in flight get up to
// grace to finish. One still running then is cut off with its connection,
// and serve returns an error saying so: the process exits, never hangs.
// log gets the shutdown lines: how many requests were in flight, how many
// finished and how many were cut off.
func serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration, log *slog.Logger) error {
	counted := &counting{next: srv.Handler}
	if counted.next == nil {
		counted.next = http.DefaultServeMux // what a nil Handler means
	}
	srv.Handler = counted
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	began := time.Now()
	finishedBefore, inFlight := counted.snapshot()
	log.Info("shutting down", "grace", grace.String(), "inFlight", inFlight)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	// Counted before Close: what is still running now is what gets cut off.
	finished, cutOff := counted.snapshot()
	drained := finished - finishedBefore
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelWarn
		_ = srv.Close() // closes the remaining connections, cancelling their requests' contexts
	}
	servedErr := <-served
	log.Log(context.Background(), level, "stopped", "inFlight", drained+cutOff, "drained", drained, "cutOff", cutOff,
		"took", time.Since(began).Round(time.Millisecond).String())
	if err != nil {
		return fmt.Errorf("shutdown: %d of %d requests in flight were cut off after the %s grace period: %w", cutOff, drained+cutOff, grace, err)
	}
	if !errors.Is(servedErr, http.ErrServerClosed) {
		return servedErr
	}
	return nil
}

// counting counts the requests in its handler, for the shutdown lines.
type counting struct {
	next              http.Handler
	started, finished atomic.Int64
}

func (h *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.started.Add(1)
	defer h.finished.Add(1) // deferred: a panicking handler has finished too
	h.next.ServeHTTP(w, r)
}

// snapshot returns how many requests have finished and how many are in
// the handler. finished is read first: started can then only be ahead.
func (h *counting) snapshot() (finished, inFlight int64) {
	finished = h.finished.Load()
	return finished, h.started.Load() - finished
}

// readSigningKey reads orderhub's private key (PKCS#8, PEM or base64 DER).
func readSigningKey(file string) (*rsa.PrivateKey, error) {
	text, err := os.ReadFile(file)
	if err != nil {
		return nil, &configError{fmt.Sprintf("ORDERHUB_SIGNING_KEY=%s: %v", file, reason(err))}
	}
	key, err := signature.ParsePrivateKey(text)
	if err != nil {
		// The likeliest mistake is the other half of the pair: say so
		// plainly rather than how its structure differs.
		if _, perr := signature.ParsePublicKey(text); perr == nil {
			return nil, &configError{fmt.Sprintf("ORDERHUB_SIGNING_KEY=%s holds a public key; ORDERHUB_SIGNING_KEY needs orderhub's private key (PKCS#8 PEM or base64 DER)", file)}
		}
		return nil, &configError{fmt.Sprintf("ORDERHUB_SIGNING_KEY=%s: %v", file, err)}
	}
	return key, nil
}

// readEarlierKeys reads the public keys of orderhub's earlier versions
// (PEM or base64 X.509 DER; a private key file is refused: publish only
// public halves).
func readEarlierKeys(files map[int]string) (map[int]*rsa.PublicKey, error) {
	keys := make(map[int]*rsa.PublicKey, len(files))
	for v, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			return nil, &configError{fmt.Sprintf("ORDERHUB_SIGNING_KEY_EARLIER: %d=%s: %v", v, file, reason(err))}
		}
		if keys[v], err = signature.ParsePublicKey(text); err != nil {
			if _, perr := signature.ParsePrivateKey(text); perr == nil {
				return nil, &configError{fmt.Sprintf("ORDERHUB_SIGNING_KEY_EARLIER: %d=%s holds a private key; ORDERHUB_SIGNING_KEY_EARLIER needs the public half of orderhub's earlier key (PEM or base64 X.509 DER)", v, file)}
			}
			return nil, &configError{fmt.Sprintf("ORDERHUB_SIGNING_KEY_EARLIER: %d=%s: %v", v, file, err)}
		}
	}
	return keys, nil
}

// reason is a file error without the path and verb the message already
// gives: "no such file or directory".
func reason(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}

// readDocs reads the reference page ORDERHUB_DOCS_FILE names; nil without
// one (the embedded page is served). A named file must exist.
func readDocs(cfg config) ([]byte, error) {
	if cfg.DocsFile == "" {
		return nil, nil
	}
	page, err := os.ReadFile(cfg.DocsFile)
	if err != nil {
		return nil, &configError{fmt.Sprintf("ORDERHUB_DOCS_FILE=%s: %v", cfg.DocsFile, reason(err))}
	}
	return page, nil
}
