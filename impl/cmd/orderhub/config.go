package main

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orderhub/orderhub/impl/httpapi"
	"github.com/orderhub/orderhub/impl/ratelimit"
)

// config is everything orderhub reads from its environment. This file is the
// only code that reads it, through settings(); the README's configuration
// table mirrors that list (a test holds them together).
type config struct {
	Addr           string
	RedisURL       string
	AdminToken     string
	Retention      time.Duration // 0: forever
	FinalRetention time.Duration // 0: forever
	Lease          time.Duration
	RequestTimeout time.Duration
	// ReadHeaderTimeout bounds how long a connection may take to send its
	// headers (slowloris); the body is bounded by RequestTimeout.
	ReadHeaderTimeout time.Duration
	ShutdownTimeout   time.Duration
	MaxBodyBytes      int64
	LogLevel          slog.Level
	// PprofAddr is the address of a listener of its own serving
	// net/http/pprof (empty: none): profiles for operators, never on the
	// partner port.
	PprofAddr string
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

	// RedisMinReplicas: replicas that must acknowledge a commit before
	// its answer is given (0: the master alone).
	RedisMinReplicas int // ORDERHUB_REDIS_MIN_REPLICAS

	finalRetentionSet bool // ORDERHUB_FINAL_RETENTION was given: no default to derive
}

// minRetention covers WorldTrade's 7 retries over 24 h 22 min, with margin.
const minRetention = 25 * time.Hour

// defaultFinalRetention keeps final orders and audits for 30 days.
const defaultFinalRetention = 720 * time.Hour

// configError is a configuration the service refuses to start with.
type configError struct{ msg string }

func (e *configError) Error() string { return "configuration: " + e.msg }

// setting is one environment variable orderhub reads. settings() is the
// one list of them: loadConfig reads through it, orderhub -h prints it,
// and the README's table must name the same variables and defaults.
type setting struct {
	name    string
	def     string // the default as people read it: a value, or what unset means
	meaning string // one line
	// parse sets v, the variable's value ("" when unset), in c. Its error
	// reads after `NAME="v" `: "is not a positive duration…".
	parse func(c *config, v string) error
}

func settings() []setting {
	return []setting{
		{"ORDERHUB_ADDR", ":8080", "listen address, host:port (port 0: any free one, named by the listening line)",
			text(func(c *config) *string { return &c.Addr }, ":8080")},
		{"ORDERHUB_REDIS_URL", "unset: in-memory", "the Redis keeping the state: redis://, rediss://, unix:// or, for a cluster, redis+cluster://; unset keeps it in memory, lost on exit",
			text(func(c *config) *string { return &c.RedisURL }, "")},
		{"ORDERHUB_REDIS_MIN_REPLICAS", "0", "replicas that must acknowledge a notification's commit before its answer is sent or replayed (WAIT, within the request timeout); fewer in time answer U. 0: the master's acknowledgement alone",
			minReplicas},
		{"ORDERHUB_ADMIN_TOKEN", "unset: operator API off", "bearer token of the operator API, /ops/",
			text(func(c *config) *string { return &c.AdminToken }, "")},
		{"ORDERHUB_CLIENTS", "required", "the clients file (YAML or JSON): partner callers, their public keys, their operations; SIGHUP reloads it",
			text(func(c *config) *string { return &c.ClientsFile }, "")},
		{"ORDERHUB_SIGNING_KEY", "required", "file of orderhub's RSA private key (PKCS#8, PEM or base64 DER) signing every partner answer",
			text(func(c *config) *string { return &c.SigningKeyFile }, "")},
		{"ORDERHUB_SIGNING_KEY_VERSION", "1", "the keyVersion orderhub's answers name",
			wholeNumber(func(c *config) *int { return &c.SigningKeyVersion }, httpapi.DefaultSigningKeyVersion)},
		{"ORDERHUB_SIGNING_KEY_EARLIER", "unset", "orderhub's earlier public keys, VERSION=FILE pairs (1=/etc/orderhub/v1.pub), published at /public-keys",
			earlierKeys},
		{"ORDERHUB_REQUEST_TIME_WINDOW", "5m", "how far Request-Time may be from orderhub's clock, either way",
			duration(func(c *config) *time.Duration { return &c.TimeWindow }, httpapi.DefaultTimeWindow)},
		{"ORDERHUB_DEV", "unset", "1: generate a development key pair and client when ORDERHUB_CLIENTS and ORDERHUB_SIGNING_KEY are both unset",
			flag(func(c *config) *bool { return &c.Dev })},
		{"ORDERHUB_DEV_DIR", ".orderhub/dev", "where the development setup lives",
			text(func(c *config) *string { return &c.DevDir }, ".orderhub/dev")},
		{"ORDERHUB_FAULTS", "unset: off", "1: the fault rules of the operator API (/ops/faults), for test instances, never production",
			flag(func(c *config) *bool { return &c.Faults })},
		{"ORDERHUB_IDEMPOTENCY_RETENTION", "72h", "how long final answers are remembered: at least 25h (WorldTrade retries for 24 h 22 min), or never",
			retention},
		{"ORDERHUB_FINAL_RETENTION", "720h", "how long orders in a final status (COMPLETED, CANCELLED, REJECTED, ORDER_FAIL) and delivery audits are kept after their last change, or never; at least ORDERHUB_IDEMPOTENCY_RETENTION (unset: 720h, or that retention when longer or never)",
			finalRetention},
		{"ORDERHUB_IDEMPOTENCY_LEASE", "30s", "how long a request holds its requestId; must exceed ORDERHUB_REQUEST_TIMEOUT",
			duration(func(c *config) *time.Duration { return &c.Lease }, httpapi.DefaultLease)},
		{"ORDERHUB_REQUEST_TIMEOUT", "10s", "bound on each request's work (past it the caller gets U) and on receiving its body (past it, HTTP 408)",
			duration(func(c *config) *time.Duration { return &c.RequestTimeout }, httpapi.DefaultRequestTimeout)},
		{"ORDERHUB_READ_HEADER_TIMEOUT", "5s", "how long a connection may take to send its request headers",
			duration(func(c *config) *time.Duration { return &c.ReadHeaderTimeout }, 5*time.Second)},
		{"ORDERHUB_SHUTDOWN_TIMEOUT", "15s", "on SIGINT/SIGTERM, how long in-flight requests get to finish; at least ORDERHUB_REQUEST_TIMEOUT",
			duration(func(c *config) *time.Duration { return &c.ShutdownTimeout }, 15*time.Second)},
		{"ORDERHUB_MAX_BODY_BYTES", "65536", "largest request body, in bytes (at least 1024); larger gets HTTP 413",
			bodyLimit},
		{"ORDERHUB_RATE_LIMIT_PER_CLIENT", "unset: no limit", "partner calls each Client-Id may make: RATE/UNIT, UNIT s, m or h, optionally ,burst=N (100/s, 6000/m, 100/s,burst=200)",
			rateLimit(func(c *config) *ratelimit.Limit { return &c.RateLimitPerClient })},
		{"ORDERHUB_RATE_LIMIT_GLOBAL", "unset: no limit", "the ceiling on all partner calls together, same form",
			rateLimit(func(c *config) *ratelimit.Limit { return &c.RateLimitGlobal })},
		{"ORDERHUB_LOG_LEVEL", "info", "debug, info, warn or error (the start-up and shutdown lines are always written)",
			logLevel},
		{"ORDERHUB_DOCS_FILE", "unset: the embedded page", "an HTML reference page served at /docs instead of the embedded one",
			text(func(c *config) *string { return &c.DocsFile }, "")},
		{"ORDERHUB_PPROF_ADDR", "unset: off", "host:port of a separate listener serving Go's profiles (/debug/pprof/), never the service's own port; bind it to localhost",
			text(func(c *config) *string { return &c.PprofAddr }, "")},
	}
}

func loadConfig(getenv func(string) string) (config, error) {
	var c config
	var errs []string
	failed := map[string]bool{}
	for _, s := range settings() {
		v := getenv(s.name)
		if err := s.parse(&c, v); err != nil {
			errs = append(errs, fmt.Sprintf("%s=%q %v", s.name, v, err))
			failed[s.name] = true
		}
	}
	// What no one value decides alone.
	if !failed["ORDERHUB_SHUTDOWN_TIMEOUT"] && !failed["ORDERHUB_REQUEST_TIMEOUT"] && c.ShutdownTimeout < c.RequestTimeout {
		errs = append(errs, fmt.Sprintf("ORDERHUB_SHUTDOWN_TIMEOUT (%s) must be at least ORDERHUB_REQUEST_TIMEOUT (%s), or every shutdown cuts off requests that would have finished", c.ShutdownTimeout, c.RequestTimeout))
	}
	if !failed["ORDERHUB_IDEMPOTENCY_RETENTION"] && !failed["ORDERHUB_FINAL_RETENTION"] {
		if msg := c.settleFinalRetention(getenv); msg != "" {
			errs = append(errs, msg)
		}
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
	if len(errs) > 0 {
		return c, &configError{strings.Join(errs, "; ")}
	}
	return c, nil
}

// settleFinalRetention gives the final retention its default and checks it
// against the idempotency retention: a stored answer must never outlive
// the order or audit it speaks of. It returns what is wrong, or "".
func (c *config) settleFinalRetention(getenv func(string) string) string {
	if !c.finalRetentionSet {
		// The default follows a longer or endless idempotency retention
		// rather than refuse a configuration that never named this one.
		c.FinalRetention = max(defaultFinalRetention, c.Retention)
		if c.Retention == 0 {
			c.FinalRetention = 0
		}
		return ""
	}
	idem := getenv("ORDERHUB_IDEMPOTENCY_RETENTION")
	if idem == "" {
		idem = "72h, the default"
	}
	final := getenv("ORDERHUB_FINAL_RETENTION")
	switch {
	case c.FinalRetention == 0 || (c.Retention != 0 && c.FinalRetention >= c.Retention):
		return ""
	case c.Retention == 0:
		return fmt.Sprintf("ORDERHUB_FINAL_RETENTION=%q ends while ORDERHUB_IDEMPOTENCY_RETENTION=%q keeps answers forever: a stored answer must never outlive the order or audit it speaks of (set ORDERHUB_FINAL_RETENTION=never, or unset it)", final, idem)
	default:
		return fmt.Sprintf("ORDERHUB_FINAL_RETENTION=%q is shorter than ORDERHUB_IDEMPOTENCY_RETENTION (%s): a stored answer must never outlive the order or audit it speaks of", final, idem)
	}
}

// usage writes what orderhub -h prints: the settings as a table.
func usage(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "orderhub serves the partner APIs of its contract, openapi/orderhub.yaml.\n"+
		"It takes no arguments: these environment variables configure it.\n\n")
	fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tMEANING")
	for _, s := range settings() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.name, s.def, s.meaning)
	}
	fmt.Fprint(tw, "\nAn invalid value stops orderhub with exit status 2 and a message naming it.\n"+
		"Every line on stdout is JSON; the last start-up line, \"listening\", names the URL.\n"+
		"SIGINT or SIGTERM drains and stops; SIGHUP reloads ORDERHUB_CLIENTS.\n")
	return tw.Flush()
}

// The parsers of the settings.

func text(field func(*config) *string, def string) func(*config, string) error {
	return func(c *config, v string) error {
		*field(c) = or(v, def)
		return nil
	}
}

func duration(field func(*config) *time.Duration, def time.Duration) func(*config, string) error {
	return func(c *config, v string) error {
		*field(c) = def
		if v == "" {
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("is not a positive duration such as 30s or 72h")
		}
		*field(c) = d
		return nil
	}
}

// forever reports whether v asks to keep something forever.
func forever(v string) bool {
	v = strings.ToLower(v)
	return v == "never" || v == "forever"
}

func retention(c *config, v string) error {
	if forever(v) {
		c.Retention = 0
		return nil
	}
	if err := duration(func(c *config) *time.Duration { return &c.Retention }, 72*time.Hour)(c, v); err != nil {
		return fmt.Errorf("is neither never nor a positive duration such as 72h")
	}
	if c.Retention < minRetention {
		c.Retention = 72 * time.Hour
		return fmt.Errorf("is below %.0fh: WorldTrade retries for 24 h 22 min (use \"never\" to keep answers forever)", minRetention.Hours())
	}
	return nil
}

func finalRetention(c *config, v string) error {
	c.finalRetentionSet = v != ""
	if forever(v) {
		c.FinalRetention = 0
		return nil
	}
	if err := duration(func(c *config) *time.Duration { return &c.FinalRetention }, 0)(c, v); err != nil {
		return fmt.Errorf("is neither never nor a positive duration such as 720h")
	}
	return nil
}

func wholeNumber(field func(*config) *int, def int) func(*config, string) error {
	return func(c *config, v string) error {
		*field(c) = def
		if v == "" {
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("is not a whole number of at least 1")
		}
		*field(c) = n
		return nil
	}
}

func minReplicas(c *config, v string) error {
	c.RedisMinReplicas = 0
	if v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return fmt.Errorf("is not a whole number of replicas, 0 or more")
	}
	c.RedisMinReplicas = n
	return nil
}

func bodyLimit(c *config, v string) error {
	c.MaxBodyBytes = httpapi.DefaultBodyLimit
	if v == "" {
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1024 {
		return fmt.Errorf("is not a whole number of bytes of at least 1024")
	}
	c.MaxBodyBytes = n
	return nil
}

func earlierKeys(c *config, v string) error {
	if v == "" {
		return nil
	}
	c.EarlierKeyFiles = map[int]string{}
	for _, pair := range strings.Split(v, ",") {
		version, file, ok := strings.Cut(strings.TrimSpace(pair), "=")
		n, err := strconv.Atoi(version)
		if !ok || err != nil || n < 1 || file == "" || c.EarlierKeyFiles[n] != "" {
			return fmt.Errorf("is not VERSION=FILE pairs, each version once, such as 1=/etc/orderhub/v1.pub")
		}
		c.EarlierKeyFiles[n] = file
	}
	return nil
}

func flag(field func(*config) *bool) func(*config, string) error {
	return func(c *config, v string) error {
		switch v {
		case "", "0", "false":
			*field(c) = false
		case "1", "true":
			*field(c) = true
		default:
			return fmt.Errorf("is not 1 or 0")
		}
		return nil
	}
}

func logLevel(c *config, v string) error {
	c.LogLevel = slog.LevelInfo
	if v == "" {
		return nil
	}
	if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
		return fmt.Errorf("is not one of debug, info, warn, error")
	}
	return nil
}

func rateLimit(field func(*config) *ratelimit.Limit) func(*config, string) error {
	return func(c *config, v string) error {
		l, err := ratelimit.ParseLimit(v)
		if err != nil {
			return fmt.Errorf("is not a rate limit: %v (examples: 100/s, 6000/m, 100/s,burst=200)", err)
		}
		*field(c) = l
		return nil
	}
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
	case "RedisMinReplicas":
		return "ORDERHUB_REDIS_MIN_REPLICAS"
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
