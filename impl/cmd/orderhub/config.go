package main

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/orderhub/orderhub/impl/httpapi"
	"github.com/orderhub/orderhub/impl/ratelimit"
)

// config is everything orderhub reads from its environment. This file is the
// only code that reads it; the README's configuration table mirrors it.
type config struct {
	Addr           string
	RedisURL       string
	AdminToken     string
	Retention      time.Duration // 0: forever
	Lease          time.Duration
	RequestTimeout time.Duration
	// ReadHeaderTimeout bounds how long a connection may take to send its
	// headers (slowloris); the body is bounded by RequestTimeout.
	ReadHeaderTimeout time.Duration
	ShutdownTimeout   time.Duration
	MaxBodyBytes      int64
	LogLevel          slog.Level
	// DocsFile is an HTML reference page served at /docs instead of the
	// partner edition's page embedded in the binary (empty: that one).
	DocsFile string

	ClientsFile       string // ORDERHUB_CLIENTS
	SigningKeyFile    string // ORDERHUB_SIGNING_KEY
	SigningKeyVersion int
	// EarlierKeyFiles are the public key files of orderhub's earlier key
	// versions, published at /public-keys (ORDERHUB_SIGNING_KEY_EARLIER,
	// "1=/path/v1.pub,2=/path/v2.pub").
	EarlierKeyFiles map[int]string
	TimeWindow      time.Duration
	// Dev generates a development key pair and client when ClientsFile and
	// SigningKeyFile are both unset (make run); DevDir holds them.
	Dev    bool
	DevDir string
	// Faults turns on the fault rules of the operator API, for test
	// instances (ORDERHUB_FAULTS=1).
	Faults bool

	// Rate limits of partner calls; the zero Limit is none.
	RateLimitPerClient ratelimit.Limit // ORDERHUB_RATE_LIMIT_PER_CLIENT
	RateLimitGlobal    ratelimit.Limit // ORDERHUB_RATE_LIMIT_GLOBAL
}

// minRetention covers WorldTrade's 7 retries over 24 h 22 min, with margin.
const minRetention = 25 * time.Hour

// configError is a configuration the service refuses to start with.
type configError struct{ msg string }

func (e *configError) Error() string { return "configuration: " + e.msg }

func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		Addr:           or(getenv("ORDERHUB_ADDR"), ":8080"),
		RedisURL:       getenv("ORDERHUB_REDIS_URL"),
		AdminToken:     getenv("ORDERHUB_ADMIN_TOKEN"),
		ClientsFile:    getenv("ORDERHUB_CLIENTS"),
		SigningKeyFile: getenv("ORDERHUB_SIGNING_KEY"),
		DevDir:         or(getenv("ORDERHUB_DEV_DIR"), ".orderhub/dev"),
		DocsFile:       getenv("ORDERHUB_DOCS_FILE"),
	}
	var errs []string
	dur := func(name string, def time.Duration) time.Duration {
		v := getenv(name)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Sprintf("%s=%q is not a positive duration such as 30s or 72h", name, v))
			return def
		}
		return d
	}
	switch v := strings.ToLower(getenv("ORDERHUB_IDEMPOTENCY_RETENTION")); v {
	case "never", "forever":
		c.Retention = 0
	default:
		c.Retention = dur("ORDERHUB_IDEMPOTENCY_RETENTION", 72*time.Hour)
		if c.Retention < minRetention {
			errs = append(errs, fmt.Sprintf("ORDERHUB_IDEMPOTENCY_RETENTION=%s is below %s: WorldTrade retries for 24 h 22 min (use \"never\" to keep answers forever)", c.Retention, minRetention))
		}
	}
	c.Lease = dur("ORDERHUB_IDEMPOTENCY_LEASE", httpapi.DefaultLease)
	c.RequestTimeout = dur("ORDERHUB_REQUEST_TIMEOUT", httpapi.DefaultRequestTimeout)
	c.ReadHeaderTimeout = dur("ORDERHUB_READ_HEADER_TIMEOUT", 5*time.Second)
	c.ShutdownTimeout = dur("ORDERHUB_SHUTDOWN_TIMEOUT", 15*time.Second)
	if c.ShutdownTimeout < c.RequestTimeout {
		errs = append(errs, fmt.Sprintf("ORDERHUB_SHUTDOWN_TIMEOUT (%s) must be at least ORDERHUB_REQUEST_TIMEOUT (%s), or every shutdown cuts off requests that would have finished", c.ShutdownTimeout, c.RequestTimeout))
	}
	c.MaxBodyBytes = httpapi.DefaultBodyLimit
	if v := getenv("ORDERHUB_MAX_BODY_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1024 {
			errs = append(errs, fmt.Sprintf("ORDERHUB_MAX_BODY_BYTES=%q is not a whole number of bytes of at least 1024", v))
		} else {
			c.MaxBodyBytes = n
		}
	}
	c.TimeWindow = dur("ORDERHUB_REQUEST_TIME_WINDOW", httpapi.DefaultTimeWindow)
	c.SigningKeyVersion = httpapi.DefaultSigningKeyVersion
	if v := getenv("ORDERHUB_SIGNING_KEY_VERSION"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Sprintf("ORDERHUB_SIGNING_KEY_VERSION=%q is not a whole number of at least 1", v))
		} else {
			c.SigningKeyVersion = n
		}
	}
	if v := getenv("ORDERHUB_SIGNING_KEY_EARLIER"); v != "" {
		c.EarlierKeyFiles = map[int]string{}
		for _, pair := range strings.Split(v, ",") {
			version, file, ok := strings.Cut(strings.TrimSpace(pair), "=")
			n, err := strconv.Atoi(version)
			if !ok || err != nil || n < 1 || file == "" || c.EarlierKeyFiles[n] != "" {
				errs = append(errs, fmt.Sprintf("ORDERHUB_SIGNING_KEY_EARLIER=%q: want VERSION=FILE pairs, each version once, such as 1=/etc/orderhub/v1.pub", v))
				break
			}
			c.EarlierKeyFiles[n] = file
		}
	}
	switch v := getenv("ORDERHUB_DEV"); v {
	case "", "0", "false":
	case "1", "true":
		c.Dev = true
	default:
		errs = append(errs, fmt.Sprintf("ORDERHUB_DEV=%q is not 1 or 0", v))
	}
	if !c.Dev || c.ClientsFile != "" || c.SigningKeyFile != "" {
		if c.ClientsFile == "" {
			errs = append(errs, "ORDERHUB_CLIENTS is not set: name the file of partner clients and their public keys")
		}
		if c.SigningKeyFile == "" {
			errs = append(errs, "ORDERHUB_SIGNING_KEY is not set: name the file of orderhub's PKCS#8 private key")
		}
		c.Dev = false
	}
	switch v := getenv("ORDERHUB_FAULTS"); v {
	case "", "0", "false":
	case "1", "true":
		c.Faults = true
	default:
		errs = append(errs, fmt.Sprintf("ORDERHUB_FAULTS=%q is not 1 or 0", v))
	}
	if v := getenv("ORDERHUB_LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			errs = append(errs, fmt.Sprintf("ORDERHUB_LOG_LEVEL=%q is not one of debug, info, warn, error", v))
		}
	}
	for _, l := range []struct {
		name string
		dst  *ratelimit.Limit
	}{{"ORDERHUB_RATE_LIMIT_PER_CLIENT", &c.RateLimitPerClient}, {"ORDERHUB_RATE_LIMIT_GLOBAL", &c.RateLimitGlobal}} {
		v := getenv(l.name)
		var err error
		if *l.dst, err = ratelimit.ParseLimit(v); err != nil {
			errs = append(errs, fmt.Sprintf("%s=%q: %v (examples: 100/s, 6000/m, 100/s,burst=200)", l.name, v, err))
		}
	}
	if len(errs) > 0 {
		return c, &configError{strings.Join(errs, "; ")}
	}
	return c, nil
}

// variable names the variable behind a field the service itself checks
// (httpapi.ConfigError), so that its refusal speaks of what the operator set.
func variable(field string) string {
	switch field {
	case "Lease":
		return "ORDERHUB_IDEMPOTENCY_LEASE"
	case "ClientsFile":
		return "ORDERHUB_CLIENTS"
	case "RedisURL":
		return "ORDERHUB_REDIS_URL"
	case "EarlierKeys":
		return "ORDERHUB_SIGNING_KEY_EARLIER"
	}
	return field
}

// Limits are the rate limits of partner calls.
func (c config) Limits() ratelimit.Limits {
	return ratelimit.Limits{PerClient: c.RateLimitPerClient, Global: c.RateLimitGlobal}
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
