package main

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/orderhub/orderhub/impl/clients"
	"github.com/orderhub/orderhub/impl/faults"
	"github.com/orderhub/orderhub/impl/httpapi"
	"github.com/orderhub/orderhub/impl/orderhub"
	"github.com/orderhub/orderhub/impl/signature"
)

// run wires orderhub from its configuration and serves until ctx ends, then
// drains in-flight requests. Each value on reload (SIGHUP, from main)
// reloads the clients file.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, reload <-chan os.Signal) error {
	if len(args) > 0 {
		return &configError{fmt.Sprintf("orderhub takes no arguments (got %q); configure it with ORDERHUB_* variables", args)}
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	// Every line on stdout is JSON. The start-up lines say what is in force
	// whatever the log level: a supervisor or another language's test
	// harness reads the address from the "listening" line.
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	startup := slog.New(slog.NewJSONHandler(stdout, nil))

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
		ClientsFile:       cfg.ClientsFile,
		SigningKey:        signingKey,
		SigningKeyVersion: cfg.SigningKeyVersion,
		EarlierKeys:       earlier,
		AdminToken:        cfg.AdminToken,
		Limits:            cfg.Limits(),
		TimeWindow:        cfg.TimeWindow,
		Lease:             cfg.Lease,
		Retention:         cfg.Retention,
		RequestTimeout:    cfg.RequestTimeout,
		BodyLimit:         cfg.MaxBodyBytes,
		Logger:            log,
		Docs:              docs,
		Faults:            cfg.Faults,
	})
	if err != nil {
		var ce *httpapi.ConfigError
		if errors.As(err, &ce) {
			return &configError{variable(ce.Field) + ": " + ce.Reason}
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
	startup.Info("listening", "url", "http://"+ln.Addr().String(), "addr", ln.Addr().String(), "store", storeName)

	reloadCtx, stopReloading := context.WithCancel(ctx)
	defer stopReloading()
	go reloadClients(reloadCtx, reload, svc.Clients, log)
	return serve(ctx, srv, ln, cfg.ShutdownTimeout, log)
}

// reloadClients reloads the clients file on every reload until ctx ends;
// requests keep flowing meanwhile, and a broken file leaves the previous
// registry in force.
func reloadClients(ctx context.Context, reload <-chan os.Signal, callers *clients.Source, log *slog.Logger) {
	for {
		select {
		case <-reload:
			if err := callers.Reload(); err != nil {
				log.Error("clients reload failed", "err", err)
			} else {
				log.Info("clients reloaded", "clients", callers.Current().Len())
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
func serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration, log *slog.Logger) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", grace.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close() // closes the remaining connections, cancelling their requests' contexts
		<-served
		return fmt.Errorf("shutdown: requests still in flight after the %s grace period were cut off: %w", grace, err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// readSigningKey reads orderhub's private key (PKCS#8, PEM or base64 DER).
func readSigningKey(file string) (*rsa.PrivateKey, error) {
	text, err := os.ReadFile(file)
	if err != nil {
		return nil, &configError{fmt.Sprintf("ORDERHUB_SIGNING_KEY: %v", err)}
	}
	key, err := signature.ParsePrivateKey(text)
	if err != nil {
		return nil, &configError{fmt.Sprintf("ORDERHUB_SIGNING_KEY %s: %v", file, err)}
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
			return nil, &configError{fmt.Sprintf("ORDERHUB_SIGNING_KEY_EARLIER: %v", err)}
		}
		if keys[v], err = signature.ParsePublicKey(text); err != nil {
			return nil, &configError{fmt.Sprintf("ORDERHUB_SIGNING_KEY_EARLIER version %d, %s: %v", v, file, err)}
		}
	}
	return keys, nil
}

// readDocs reads the reference page ORDERHUB_DOCS_FILE names; nil without
// one (the embedded page is served). A named file must exist.
func readDocs(cfg config) ([]byte, error) {
	if cfg.DocsFile == "" {
		return nil, nil
	}
	page, err := os.ReadFile(cfg.DocsFile)
	if err != nil {
		return nil, &configError{fmt.Sprintf("ORDERHUB_DOCS_FILE: %v", err)}
	}
	return page, nil
}
