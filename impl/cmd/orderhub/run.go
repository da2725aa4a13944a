package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderhub/orderhub/impl/httpapi"
	"github.com/orderhub/orderhub/impl/store"
)

// run wires orderhub from its configuration and serves until ctx ends, then
// drains in-flight requests.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 {
		return &configError{fmt.Sprintf("orderhub takes no arguments (got %q); configure it with ORDERHUB_* variables", args)}
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))

	st, storeName, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer st.Close()

	h, err := httpapi.New(st, httpapi.Config{
		AdminToken:     cfg.AdminToken,
		Lease:          cfg.Lease,
		Retention:      cfg.Retention,
		RequestTimeout: cfg.RequestTimeout,
		BodyLimit:      cfg.MaxBodyBytes,
		Logger:         log,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return &configError{fmt.Sprintf("ORDERHUB_ADDR=%q: %v", cfg.Addr, err)}
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       cfg.RequestTimeout,
		WriteTimeout:      cfg.RequestTimeout + 5*time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintf(stdout, "orderhub listening on http://%s (store: %s)\n", ln.Addr(), storeName)
	if cfg.AdminToken == "" {
		fmt.Fprintln(stdout, "operator API off: set ORDERHUB_ADMIN_TOKEN to enable /ops/")
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// openStore opens Redis when ORDERHUB_REDIS_URL is set, else the in-memory
// store (state is lost on exit: for trying orderhub out, not production).
func openStore(cfg config) (store.Store, string, error) {
	if cfg.RedisURL == "" {
		return store.NewMemory(nil), "memory (set ORDERHUB_REDIS_URL for Redis)", nil
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, "", &configError{fmt.Sprintf("ORDERHUB_REDIS_URL: %v", err)}
	}
	return store.NewRedis(redis.NewClient(opt)), "redis " + opt.Addr, nil
}
