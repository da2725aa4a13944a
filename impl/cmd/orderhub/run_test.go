package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"github.com/orderhub/orderhub/impl/clients"
	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/tests/redistest"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(env(map[string]string{"ORDERHUB_DEV": "1"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":8080" || c.RedisURL != "" || c.Retention != 72*time.Hour || c.FinalRetention != 720*time.Hour || c.Lease != 30*time.Second || c.MaxBodyBytes != 64<<10 ||
		!c.Dev || c.TimeWindow != 5*time.Minute || c.SigningKeyVersion != 1 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestLoadConfigMinReplicas(t *testing.T) {
	for v, want := range map[string]int{"": 0, "0": 0, "1": 1, "2": 2} {
		c, err := loadConfig(env(map[string]string{"ORDERHUB_DEV": "1", "ORDERHUB_REDIS_MIN_REPLICAS": v}))
		if err != nil || c.RedisMinReplicas != want {
			t.Errorf("ORDERHUB_REDIS_MIN_REPLICAS=%q: %d, %v; want %d", v, c.RedisMinReplicas, err, want)
		}
	}
}

func TestLoadConfigRetentionForever(t *testing.T) {
	c, err := loadConfig(env(map[string]string{"ORDERHUB_IDEMPOTENCY_RETENTION": "never", "ORDERHUB_DEV": "1"}))
	if err != nil || c.Retention != 0 || c.FinalRetention != 0 {
		t.Errorf("never: retention %v, final retention %v (want both 0: forever), err %v", c.Retention, c.FinalRetention, err)
	}
}

// TestLoadConfigFinalRetention: final orders and audits are kept at least
// as long as the answers that speak of them.
func TestLoadConfigFinalRetention(t *testing.T) {
	for _, tc := range []struct {
		idem, final string
		want        time.Duration
	}{
		{"", "", 720 * time.Hour},
		{"", "1000h", 1000 * time.Hour},
		{"", "72h", 72 * time.Hour}, // equal to the idempotency retention's default
		{"", "never", 0},
		{"48h", "48h", 48 * time.Hour},
		{"1000h", "", 1000 * time.Hour}, // the default follows a longer idempotency retention
		{"never", "", 0},
		{"never", "NEVER", 0},
	} {
		c, err := loadConfig(env(map[string]string{"ORDERHUB_DEV": "1", "ORDERHUB_IDEMPOTENCY_RETENTION": tc.idem, "ORDERHUB_FINAL_RETENTION": tc.final}))
		if err != nil || c.FinalRetention != tc.want {
			t.Errorf("idempotency %q, final %q: final retention %v, %v; want %v", tc.idem, tc.final, c.FinalRetention, err, tc.want)
		}
	}
	for _, tc := range []struct{ idem, final, want string }{
		{"", "48h", `configuration: ORDERHUB_FINAL_RETENTION="48h" is shorter than ORDERHUB_IDEMPOTENCY_RETENTION (72h, the default): a stored answer must never outlive the order or audit it speaks of`},
		{"100h", "99h", `configuration: ORDERHUB_FINAL_RETENTION="99h" is shorter than ORDERHUB_IDEMPOTENCY_RETENTION (100h): a stored answer must never outlive the order or audit it speaks of`},
		{"never", "720h", `configuration: ORDERHUB_FINAL_RETENTION="720h" ends while ORDERHUB_IDEMPOTENCY_RETENTION="never" keeps answers forever: a stored answer must never outlive the order or audit it speaks of (set ORDERHUB_FINAL_RETENTION=never, or unset it)`},
		{"", "30 days", `configuration: ORDERHUB_FINAL_RETENTION="30 days" is neither never nor a positive duration such as 720h`},
		{"", "-1h", `configuration: ORDERHUB_FINAL_RETENTION="-1h" is neither never nor a positive duration such as 720h`},
	} {
		_, err := loadConfig(env(map[string]string{"ORDERHUB_DEV": "1", "ORDERHUB_IDEMPOTENCY_RETENTION": tc.idem, "ORDERHUB_FINAL_RETENTION": tc.final}))
		if err == nil || err.Error() != tc.want {
			t.Errorf("idempotency %q, final %q:\n got %v\nwant %s", tc.idem, tc.final, err, tc.want)
		}
	}
}

func TestLoadConfigRefusesBadValues(t *testing.T) {
	dev := func(kv map[string]string) map[string]string { kv["ORDERHUB_DEV"] = "1"; return kv }
	for _, tc := range []struct {
		name  string
		kv    map[string]string
		names string // the variable the message must name
	}{
		{"retention below 25h", dev(map[string]string{"ORDERHUB_IDEMPOTENCY_RETENTION": "24h"}), "ORDERHUB_IDEMPOTENCY_RETENTION"},
		{"final retention below the idempotency retention", dev(map[string]string{"ORDERHUB_FINAL_RETENTION": "25h"}), "ORDERHUB_IDEMPOTENCY_RETENTION"},
		{"final retention not a time", dev(map[string]string{"ORDERHUB_FINAL_RETENTION": "a month"}), "ORDERHUB_FINAL_RETENTION"},
		{"retention not a time", dev(map[string]string{"ORDERHUB_IDEMPOTENCY_RETENTION": "three days"}), "ORDERHUB_IDEMPOTENCY_RETENTION"},
		{"negative timeout", dev(map[string]string{"ORDERHUB_REQUEST_TIMEOUT": "-1s"}), "ORDERHUB_REQUEST_TIMEOUT"},
		{"shutdown shorter than a request", dev(map[string]string{"ORDERHUB_SHUTDOWN_TIMEOUT": "2s"}), "ORDERHUB_SHUTDOWN_TIMEOUT"},
		{"body limit too small", dev(map[string]string{"ORDERHUB_MAX_BODY_BYTES": "10"}), "ORDERHUB_MAX_BODY_BYTES"},
		{"log level", dev(map[string]string{"ORDERHUB_LOG_LEVEL": "loud"}), "ORDERHUB_LOG_LEVEL"},
		{"key version", dev(map[string]string{"ORDERHUB_SIGNING_KEY_VERSION": "0"}), "ORDERHUB_SIGNING_KEY_VERSION"},
		{"time window", dev(map[string]string{"ORDERHUB_REQUEST_TIME_WINDOW": "soon"}), "ORDERHUB_REQUEST_TIME_WINDOW"},
		{"earlier key without a version", dev(map[string]string{"ORDERHUB_SIGNING_KEY_EARLIER": "v1.pub"}), "ORDERHUB_SIGNING_KEY_EARLIER"},
		{"earlier key version twice", dev(map[string]string{"ORDERHUB_SIGNING_KEY_EARLIER": "1=a.pub,1=b.pub"}), "ORDERHUB_SIGNING_KEY_EARLIER"},
		{"dev flag", map[string]string{"ORDERHUB_DEV": "yes"}, "ORDERHUB_DEV"},
		{"faults flag", dev(map[string]string{"ORDERHUB_FAULTS": "on"}), "ORDERHUB_FAULTS"},
		{"no keys outside development", map[string]string{}, "ORDERHUB_SIGNING_KEY"},
		{"no clients file", map[string]string{"ORDERHUB_SIGNING_KEY": "key.pem"}, "ORDERHUB_CLIENTS"},
		{"no signing key, even with ORDERHUB_DEV", dev(map[string]string{"ORDERHUB_CLIENTS": "clients.yaml"}), "ORDERHUB_SIGNING_KEY"},
		{"rate limit without a unit", dev(map[string]string{"ORDERHUB_RATE_LIMIT_PER_CLIENT": "100"}), "ORDERHUB_RATE_LIMIT_PER_CLIENT"},
		{"rate limit per day", dev(map[string]string{"ORDERHUB_RATE_LIMIT_PER_CLIENT": "100/d"}), "ORDERHUB_RATE_LIMIT_PER_CLIENT"},
		{"rate limit of zero", dev(map[string]string{"ORDERHUB_RATE_LIMIT_GLOBAL": "0/s"}), "ORDERHUB_RATE_LIMIT_GLOBAL"},
		{"rate limit burst of zero", dev(map[string]string{"ORDERHUB_RATE_LIMIT_GLOBAL": "100/s,burst=0"}), "ORDERHUB_RATE_LIMIT_GLOBAL"},
		{"rate limit in words", dev(map[string]string{"ORDERHUB_RATE_LIMIT_GLOBAL": "100 per second"}), "ORDERHUB_RATE_LIMIT_GLOBAL"},
		{"negative replicas", dev(map[string]string{"ORDERHUB_REDIS_MIN_REPLICAS": "-1"}), "ORDERHUB_REDIS_MIN_REPLICAS"},
		{"replicas in words", dev(map[string]string{"ORDERHUB_REDIS_MIN_REPLICAS": "all"}), "ORDERHUB_REDIS_MIN_REPLICAS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(env(tc.kv))
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("want a configuration error, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.names) {
				t.Errorf("message %q does not name %s", err, tc.names)
			}
		})
	}
}

// TestRunRefusesBadConfig: what the service itself refuses is a
// configuration error too (exit 2), naming the variable at fault.
func TestRunRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		kv    map[string]string
		names string // the variable the message must name
	}{
		{"redis url", map[string]string{"ORDERHUB_REDIS_URL": "http://nowhere"}, "ORDERHUB_REDIS_URL"},
		{"address", map[string]string{"ORDERHUB_ADDR": "127.0.0.1:notaport"}, "ORDERHUB_ADDR"},
		{"lease not above the request timeout", map[string]string{"ORDERHUB_IDEMPOTENCY_LEASE": "5s", "ORDERHUB_REQUEST_TIMEOUT": "5s"}, "ORDERHUB_IDEMPOTENCY_LEASE"},
		// A guarantee the in-memory store cannot give is refused, not ignored.
		{"replicas without redis", map[string]string{"ORDERHUB_REDIS_MIN_REPLICAS": "1"}, "ORDERHUB_REDIS_MIN_REPLICAS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.kv["ORDERHUB_DEV"], tc.kv["ORDERHUB_DEV_DIR"] = "1", dir
			err := run(context.Background(), nil, env(tc.kv), io.Discard, nil)
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("want a configuration error (exit 2), got %v", err)
			}
			if !strings.Contains(err.Error(), tc.names) {
				t.Errorf("message %q does not name %s", err, tc.names)
			}
		})
	}
}

// TestRunRefusesBadFiles pins what an operator reads when a file named by
// a variable is wrong: the variable and its value once, then where in the
// file and what, in the file's terms.
func TestRunRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	clientsFile, keyFile, err := devSetup(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	publicKey := filepath.Join(dir, "orderhub-public.key")
	clientKey := filepath.Join(dir, devClientID+"-private.pem")
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	bad1 := write("bad1.yaml", "clients:\n  - clientID: isv-1\n    operations: [inquireOrderDetail]\n")
	bad2 := write("bad2.yaml", "clients:\n  - clientId: isv-1\n    operations: [inquireOrderDetial]\n")
	bad3 := write("bad3.json", "{\"clients\": [\n  {\"clientId\": \"isv-1\" \"operations\": [\"*\"]}\n]}\n")
	bad4 := write("bad4.yaml", "clients:\n  - clientId: isv-1\n   operations: [inquireOrderDetail]\n")
	garbage := write("garbage.pem", "not a key\n")
	missing := filepath.Join(dir, "missing")

	for _, tc := range []struct {
		name string
		kv   map[string]string
		want string
	}{
		{"unknown field in the clients file", map[string]string{"ORDERHUB_CLIENTS": bad1},
			"configuration: ORDERHUB_CLIENTS=" + bad1 + `: line 2, column 5: clients[0]: unknown field "clientID" (did you mean "clientId"?); a client's fields are clientId, disabled, operations, keys`},
		{"misspelt operation", map[string]string{"ORDERHUB_CLIENTS": bad2},
			"configuration: ORDERHUB_CLIENTS=" + bad2 + `: line 3, column 18: clients[0] "isv-1": operations[0]: unknown operation "inquireOrderDetial" (did you mean "inquireOrderDetail"?); the operations are inquireOrderDetail, notifyDeliveryAuditResult, notifyOrderChange, notifyOrderCompletion, or "*" alone for all`},
		{"broken JSON", map[string]string{"ORDERHUB_CLIENTS": bad3},
			"configuration: ORDERHUB_CLIENTS=" + bad3 + `: line 2, column 24: not valid JSON: invalid character '"' after object key:value pair`},
		{"broken YAML", map[string]string{"ORDERHUB_CLIENTS": bad4},
			"configuration: ORDERHUB_CLIENTS=" + bad4 + `: line 3, column 4: not valid YAML: did not find expected '-' indicator`},
		{"missing clients file", map[string]string{"ORDERHUB_CLIENTS": missing},
			"configuration: ORDERHUB_CLIENTS=" + missing + ": no such file or directory"},
		{"a public key as the signing key", map[string]string{"ORDERHUB_SIGNING_KEY": publicKey},
			"configuration: ORDERHUB_SIGNING_KEY=" + publicKey + " holds a public key; ORDERHUB_SIGNING_KEY needs orderhub's private key (PKCS#8 PEM or base64 DER)"},
		{"no key at all as the signing key", map[string]string{"ORDERHUB_SIGNING_KEY": garbage},
			"configuration: ORDERHUB_SIGNING_KEY=" + garbage + ": not a key: neither PEM nor base64 DER"},
		{"missing signing key", map[string]string{"ORDERHUB_SIGNING_KEY": missing},
			"configuration: ORDERHUB_SIGNING_KEY=" + missing + ": no such file or directory"},
		{"a private key as an earlier key", map[string]string{"ORDERHUB_SIGNING_KEY_VERSION": "2", "ORDERHUB_SIGNING_KEY_EARLIER": "1=" + clientKey},
			"configuration: ORDERHUB_SIGNING_KEY_EARLIER: 1=" + clientKey + " holds a private key; ORDERHUB_SIGNING_KEY_EARLIER needs the public half of orderhub's earlier key (PEM or base64 X.509 DER)"},
		{"missing earlier key", map[string]string{"ORDERHUB_SIGNING_KEY_VERSION": "2", "ORDERHUB_SIGNING_KEY_EARLIER": "1=" + missing},
			"configuration: ORDERHUB_SIGNING_KEY_EARLIER: 1=" + missing + ": no such file or directory"},
		{"missing docs file", map[string]string{"ORDERHUB_DOCS_FILE": missing},
			"configuration: ORDERHUB_DOCS_FILE=" + missing + ": no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kv := map[string]string{"ORDERHUB_CLIENTS": clientsFile, "ORDERHUB_SIGNING_KEY": keyFile, "ORDERHUB_ADDR": "127.0.0.1:0"}
			maps.Copy(kv, tc.kv)
			err := run(context.Background(), nil, env(kv), io.Discard, nil)
			if err == nil || err.Error() != tc.want {
				t.Errorf("\n got %v\nwant %s", err, tc.want)
			}
			var stderr strings.Builder
			if got := exitStatus(err, &stderr); got != 2 || stderr.String() != "orderhub: "+tc.want+"\n" {
				t.Errorf("exit status %d, stderr %q; want 2 and the message", got, stderr.String())
			}
		})
	}
}

// TestRunHelp: orderhub -h lists every setting with its default, on
// stdout, and exits 0; anything else on the command line is refused
// (exit 2) with a pointer to -h.
func TestRunHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help", "help"} {
		var out strings.Builder
		err := run(context.Background(), []string{arg}, env(nil), &out, nil)
		if status := exitStatus(err, io.Discard); status != 0 {
			t.Errorf("orderhub %s: exit status %d (%v)", arg, status, err)
		}
		lines := strings.Split(out.String(), "\n")
		header := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "VARIABLE ") })
		if header < 0 {
			t.Fatalf("orderhub %s: no table header in\n%s", arg, out.String())
		}
		// One row per setting, in order, its columns aligned with the header.
		defCol, meaningCol := strings.Index(lines[header], "DEFAULT"), strings.Index(lines[header], "MEANING")
		for i, s := range settings() {
			row := lines[header+1+i]
			if !strings.HasPrefix(row, s.name+" ") || row[defCol:meaningCol] != s.def+strings.Repeat(" ", meaningCol-defCol-len(s.def)) || row[meaningCol:] != s.meaning {
				t.Errorf("orderhub %s: row %d is %q; want %s, %s, %s in the header's columns", arg, i, row, s.name, s.def, s.meaning)
			}
		}
	}
	var stderr strings.Builder
	err := run(context.Background(), []string{"serve", "--port=8080"}, env(nil), io.Discard, nil)
	want := `orderhub: unexpected arguments "serve" "--port=8080": orderhub takes no arguments, only environment variables; run orderhub -h for the settings` + "\n"
	if status := exitStatus(err, &stderr); status != 2 || stderr.String() != want {
		t.Errorf("orderhub serve --port=8080: exit status %d, stderr %q; want 2, %q", status, stderr.String(), want)
	}
	err = run(context.Background(), []string{"-v"}, env(nil), io.Discard, nil)
	if want := `unexpected argument "-v": orderhub takes no arguments, only environment variables; run orderhub -h for the settings`; err == nil || err.Error() != want {
		t.Errorf("orderhub -v: %v, want %s", err, want)
	}
	if status := exitStatus(errors.New("listen: boom"), io.Discard); status != 1 {
		t.Errorf("a failure that is no configuration error: exit status %d, want 1", status)
	}
}

// TestSettingsMatchREADME: the README's configuration table lists the same
// variables as settings(), with the same defaults.
func TestSettingsMatchREADME(t *testing.T) {
	text, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(text), "\n## Configuration\n")
	if !ok {
		t.Fatal("README.md has no \"## Configuration\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	readme := map[string]string{} // variable: default as the README shows it
	var names []string
	for line := range strings.Lines(section) {
		if !strings.HasPrefix(line, "| `ORDERHUB_") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			t.Fatalf("README row %q has no default column", line)
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		def := strings.TrimSpace(cells[2])
		if value, ok := strings.CutPrefix(def, "`"); ok {
			def, _, _ = strings.Cut(value, "`") // `720h` (30 days) …: the value
		} else {
			def = strings.ReplaceAll(def, "`", "")
		}
		if _, dup := readme[name]; dup {
			t.Errorf("README lists %s twice", name)
		}
		readme[name] = def
		names = append(names, name)
	}
	var listed []string
	for _, s := range settings() {
		listed = append(listed, s.name)
		def, ok := readme[s.name]
		switch {
		case !ok:
			t.Errorf("README's configuration table lacks %s", s.name)
		case def != s.def:
			t.Errorf("%s: README says the default is %q, orderhub -h says %q", s.name, def, s.def)
		}
	}
	for _, name := range names {
		if !slices.Contains(listed, name) {
			t.Errorf("README's configuration table lists %s, which orderhub does not read", name)
		}
	}
}

// TestSettingDefaultsAreTheDefaults: setting a variable to the default its
// row shows changes nothing, so what people read is what orderhub does.
func TestSettingDefaultsAreTheDefaults(t *testing.T) {
	base := map[string]string{"ORDERHUB_DEV": "1"}
	unset, err := loadConfig(env(base))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings() {
		if s.def == "required" || strings.HasPrefix(s.def, "unset") {
			continue
		}
		kv := maps.Clone(base)
		kv[s.name] = s.def
		c, err := loadConfig(env(kv))
		if err != nil {
			t.Errorf("%s=%s, its shown default: %v", s.name, s.def, err)
			continue
		}
		c.finalRetentionSet = unset.finalRetentionSet
		if !reflect.DeepEqual(c, unset) {
			t.Errorf("%s=%s, its shown default, gives %+v; unset gives %+v", s.name, s.def, c, unset)
		}
	}
}

// started is a run of orderhub on a free port, in development mode.
type started struct {
	base    string
	dir     string
	startup []string       // stdout up to the listening line
	lines   chan string    // stdout after the listening line
	reload  chan os.Signal // what main feeds from SIGHUP
	done    chan error
	cancel  context.CancelFunc
}

func start(t *testing.T, kv map[string]string) *started {
	t.Helper()
	dir := t.TempDir()
	all := map[string]string{"ORDERHUB_ADDR": "127.0.0.1:0", "ORDERHUB_ADMIN_TOKEN": "t", "ORDERHUB_DEV": "1", "ORDERHUB_DEV_DIR": dir}
	for k, v := range kv {
		all[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	out, w := io.Pipe()
	s := &started{dir: dir, lines: make(chan string, 100), reload: make(chan os.Signal, 1), done: make(chan error, 1), cancel: cancel}
	go func() {
		s.done <- run(ctx, nil, env(all), w, s.reload)
		w.Close()
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	// Every start-up line is JSON, as a supervisor or another language's
	// harness reads them; the address is the "listening" line's url.
	sc := bufio.NewScanner(out)
	var dev bool
	for sc.Scan() {
		var line struct{ Msg, URL string }
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("a start-up line is not JSON: %q", sc.Text())
		}
		s.startup = append(s.startup, sc.Text())
		dev = dev || line.Msg == devSetupMessage
		if line.Msg == "listening" {
			s.base = line.URL
			break
		}
	}
	if s.base == "" || !dev {
		t.Fatalf("no development notice or listening line: %v", <-s.done)
	}
	// The first line names the build.
	var build struct{ Msg, Version, Revision, Go, Crypto string }
	if err := json.Unmarshal([]byte(s.startup[0]), &build); err != nil || build.Msg != "orderhub" ||
		build.Version == "" || build.Revision == "" || build.Go != runtime.Version() || build.Crypto == "" {
		t.Errorf("first start-up line %s: want the build (version, revision, go, crypto)", s.startup[0])
	}
	go func() { // keep draining, so run never blocks on its log
		for sc.Scan() {
			select {
			case s.lines <- sc.Text():
			default:
			}
		}
	}()
	return s
}

// inquire calls inquireOrderDetail signed as the development client and
// checks the answer's signature with orderhub's development key.
func (s *started) inquire(t *testing.T) (string, *http.Response) {
	t.Helper()
	body, res := s.inquireUnchecked(t)
	pubText, err := os.ReadFile(filepath.Join(s.dir, "orderhub-public.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signature.ParsePublicKey(pubText)
	if err != nil {
		t.Fatal(err)
	}
	if err := signature.VerifyResponse(res, []byte(body), pub); err != nil {
		t.Errorf("response signature: %v", err)
	}
	return body, res
}

// inquireUnchecked is inquire without the signature check.
func (s *started) inquireUnchecked(t *testing.T) (string, *http.Response) {
	t.Helper()
	res, err := s.inquireRaw(t)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return string(body), res
}

// inquireRaw sends the development client's signed inquiry.
func (s *started) inquireRaw(t *testing.T) (*http.Response, error) {
	t.Helper()
	keyText, err := os.ReadFile(filepath.Join(s.dir, "dev-client-private.pem"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := signature.ParsePrivateKey(keyText)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, s.base+"/v2/pos/inquireOrderDetail", strings.NewReader(`{"requestOrderId":"nope"}`))
	req.Header.Set("Content-Type", "application/json")
	signer := &signature.Signer{ClientID: devClientID, KeyVersion: 1, Key: key}
	if err := signer.Edit(req.Context(), req); err != nil {
		t.Fatal(err)
	}
	return http.DefaultClient.Do(req)
}

// TestRunServesUntilCancelled starts the real wiring on a free port with the
// in-memory store and a generated development setup, calls it signed, and
// stops it as SIGTERM would.
func TestRunServesUntilCancelled(t *testing.T) {
	s := start(t, map[string]string{"ORDERHUB_LOG_LEVEL": "error"})
	res, err := http.Get(s.base + "/healthz")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", res, err)
	}
	res.Body.Close()

	body, res := s.inquire(t)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `"ORDER_NOT_EXIST"`) || res.Header.Get("Client-Id") != devClientID {
		t.Errorf("inquire: %d %s %v", res.StatusCode, body, res.Header)
	}

	// Fault rules are off unless ORDERHUB_FAULTS=1.
	if got := s.faultRuleStatus(t); got != http.StatusNotFound {
		t.Errorf("adding a fault rule without ORDERHUB_FAULTS: HTTP %d, want 404", got)
	}

	s.cancel()
	if err := <-s.done; err != nil {
		t.Errorf("run after cancel: %v", err)
	}
	s.done <- nil // for Cleanup
	if _, err := http.Get(s.base + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
	// The shutdown lines are written whatever the log level.
	for {
		line := wait(t, s.lines, "the stopped line")
		if strings.Contains(line, `"msg":"stopped"`) {
			if !strings.Contains(line, `"inFlight":0,"drained":0,"cutOff":0`) {
				t.Errorf("stopped line %s: want nothing in flight", line)
			}
			break
		}
	}
}

// faultRuleStatus adds a fault rule through the operator API and returns
// the HTTP status.
func (s *started) faultRuleStatus(t *testing.T) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.base+"/ops/faults", strings.NewReader(`{"operation":"inquireOrderDetail","action":"dropBeforeProcessing","times":1}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer t")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestRunWithFaults: ORDERHUB_FAULTS=1 says so at start-up and turns the
// fault rules on.
func TestRunWithFaults(t *testing.T) {
	s := start(t, map[string]string{"ORDERHUB_FAULTS": "1"})
	if !slices.ContainsFunc(s.startup, func(l string) bool {
		return strings.Contains(l, `"level":"WARN"`) && strings.Contains(l, "ORDERHUB_FAULTS=1")
	}) {
		t.Errorf("no start-up warning of fault rules in %q", s.startup)
	}
	if got := s.faultRuleStatus(t); got != http.StatusCreated {
		t.Fatalf("adding a fault rule: HTTP %d, want 201", got)
	}
	// The rule drops the next inquiry, and nothing else: no answer at all.
	req, _ := http.NewRequest(http.MethodGet, s.base+"/healthz", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	res.Body.Close()
	if _, err := s.inquireRaw(t); err == nil {
		t.Error("the inquiry was answered despite the rule")
	}
	if _, res := s.inquire(t); res.StatusCode != http.StatusOK {
		t.Errorf("the next inquiry: HTTP %d", res.StatusCode)
	}
}

// TestRunReusesDevelopmentSetup: a second start keeps the keys of the first.
func TestRunReusesDevelopmentSetup(t *testing.T) {
	dir := t.TempDir()
	c1, k1, err := devSetup(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(k1)
	c2, k2, err := devSetup(dir, slog.New(slog.DiscardHandler))
	after, _ := os.ReadFile(k2)
	if err != nil || c1 != c2 || string(before) != string(after) {
		t.Errorf("second setup changed the keys (err %v)", err)
	}
}

// TestRunReloadsClients disables the development client in its file,
// sends a reload as main does on SIGHUP, and sees it refused once the
// reload is logged.
func TestRunReloadsClients(t *testing.T) {
	s := start(t, nil)
	if body, _ := s.inquire(t); !strings.Contains(body, "ORDER_NOT_EXIST") {
		t.Fatalf("before reload: %s", body)
	}
	file := filepath.Join(s.dir, "clients.yaml")
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc clients.File
	if err := yaml.Unmarshal(text, &doc); err != nil || len(doc.Clients) != 1 {
		t.Fatalf("the development clients file: %v %+v", err, doc)
	}
	doc.Clients[0].Disabled = true
	disabled, err := doc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, disabled, 0o600); err != nil {
		t.Fatal(err)
	}
	s.reload <- syscall.SIGHUP
	for line := range s.lines {
		if strings.Contains(line, "clients reloaded") {
			break
		}
		if strings.Contains(line, "clients reload failed") {
			t.Fatal(line)
		}
	}
	// A disabled client is no longer one: refused unsigned.
	if body, res := s.inquireUnchecked(t); !strings.Contains(body, "ACCESS_DENIED") || res.Header.Get("Signature") != "" {
		t.Errorf("after reload: %s, Signature %q", body, res.Header.Get("Signature"))
	}
}

// TestRunOnRedisCluster runs the binary's wiring against a local cluster,
// named by ORDERHUB_REDIS_URL in the form redistest.Cluster.URL gives.
func TestRunOnRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	s := start(t, map[string]string{"ORDERHUB_REDIS_URL": c.URL()})
	if !slices.ContainsFunc(s.startup, func(l string) bool {
		return strings.Contains(l, `"level":"INFO"`) && strings.Contains(l, `"msg":"store reachable","store":"redis cluster `)
	}) {
		t.Errorf("no start-up line saying the cluster answers in %q", s.startup)
	}

	req, err := http.NewRequest(http.MethodPut, s.base+"/ops/orders/cluster-order-1",
		strings.NewReader(`{"posOrderId":"pos-1","orderStatus":"PREPARING"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer t")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"PREPARING"`) {
		t.Fatalf("PUT order: HTTP %d %s", res.StatusCode, body)
	}
	// The order is in the cluster, not in memory.
	var keys atomic.Int64 // ForEachMaster runs f on the masters concurrently
	err = c.Client(t).ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		keys.Add(n)
		return err
	})
	if err != nil || keys.Load() == 0 {
		t.Errorf("keys in the cluster: %d, %v; want the order", keys.Load(), err)
	}
	if body, _ := s.inquire(t); !strings.Contains(body, "ORDER_NOT_EXIST") {
		t.Errorf("inquire: %s", body)
	}

	// Fault rules are off unless ORDERHUB_FAULTS=1.
	if got := s.faultRuleStatus(t); got != http.StatusNotFound {
		t.Errorf("adding a fault rule without ORDERHUB_FAULTS: HTTP %d, want 404", got)
	}

	s.cancel()
	if err := <-s.done; err != nil {
		t.Errorf("run after cancel: %v", err)
	}
	s.done <- nil // for Cleanup
}

// TestRunWithStoreUnreachable: a Redis that does not answer at start-up
// does not stop orderhub; a warning says so and /readyz reports it.
func TestRunWithStoreUnreachable(t *testing.T) {
	// A port that was free a moment ago and has no listener now.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := start(t, map[string]string{"ORDERHUB_REDIS_URL": "redis://" + addr})
	i := slices.IndexFunc(s.startup, func(l string) bool { return strings.Contains(l, `"msg":"store unreachable`) })
	if i < 0 {
		t.Fatalf("no store warning in %q", s.startup)
	}
	var warning struct{ Level, Msg, Store, Err string }
	if err := json.Unmarshal([]byte(s.startup[i]), &warning); err != nil {
		t.Fatal(err)
	}
	if warning.Level != "WARN" || !strings.Contains(warning.Msg, "/readyz") || warning.Store != "redis "+addr || warning.Err == "" {
		t.Errorf("store warning %s: want WARN naming /readyz, the store and the error", s.startup[i])
	}
	res, err := http.Get(s.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz: HTTP %d, want 503", res.StatusCode)
	}
}

// TestRunStartupLines: in-memory, the start-up says so and ends with the
// listening line; no store check is logged, there being nothing to reach.
func TestRunStartupLines(t *testing.T) {
	s := start(t, nil)
	var msgs []string
	for _, l := range s.startup {
		var line struct{ Msg string }
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, line.Msg)
	}
	want := []string{"orderhub", devSetupMessage, "clients registered", "rate limits", "listening"}
	if !slices.Equal(msgs, want) {
		t.Errorf("start-up lines %q, want %q", msgs, want)
	}
	if last := s.startup[len(s.startup)-1]; !strings.Contains(last, `"store":"memory (set ORDERHUB_REDIS_URL for Redis)"`) {
		t.Errorf("listening line %s does not say the store is in memory", last)
	}
}

// TestRunAnswersASlowBody408: a caller that sends its headers and then
// holds back its body is at fault: once the request timeout has passed it
// gets HTTP 408 with the PARAM_ILLEGAL envelope, not a U, and no ERROR line.
func TestRunAnswersASlowBody408(t *testing.T) {
	s := start(t, map[string]string{"ORDERHUB_REQUEST_TIMEOUT": "1s"})
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// One byte of a promised 100, then nothing: the server's read deadline
	// ends the wait, not this test.
	if _, err := fmt.Fprintf(conn, "POST /v2/pos/inquireOrderDetail HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), `"resultCode":"PARAM_ILLEGAL"`) {
		t.Errorf("HTTP %d %s, want 408 PARAM_ILLEGAL", res.StatusCode, body)
	}
	s.cancel()
	<-s.done
	s.done <- nil // for Cleanup
	for {
		select {
		case line := <-s.lines:
			if strings.Contains(line, `"level":"ERROR"`) {
				t.Errorf("a slow caller logged as a server fault: %s", line)
			}
			continue
		default:
		}
		break
	}
}

// TestRunServesProfilesApart: ORDERHUB_PPROF_ADDR serves Go's profiles on
// a listener of its own, named at start-up; the service's port has none.
func TestRunServesProfilesApart(t *testing.T) {
	s := start(t, map[string]string{"ORDERHUB_PPROF_ADDR": "127.0.0.1:0"})
	var profiles string
	for _, l := range s.startup {
		var line struct{ Msg, URL string }
		if json.Unmarshal([]byte(l), &line) == nil && strings.HasPrefix(line.Msg, "profiles served") {
			profiles = line.URL
		}
	}
	if profiles == "" || strings.HasPrefix(profiles, s.base) {
		t.Fatalf("profiles at %q (service at %s): want a listener of their own in %q", profiles, s.base, s.startup)
	}
	res, err := http.Get(profiles + "goroutine?debug=1")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("profiles: %v %v", err, res)
	}
	res.Body.Close()
	res, err = http.Get(s.base + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if strings.Contains(string(body), "goroutine") || !strings.Contains(string(body), "INVALID_API") {
		t.Errorf("the service's port answers /debug/pprof/ with %d %s, want the INVALID_API envelope", res.StatusCode, body)
	}
}
