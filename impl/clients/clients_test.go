package clients_test

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/orderhub/orderhub/impl/clients"
	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/tests/testkit"
)

var ops = []string{"notifyOrderCompletion", "inquireOrderDetail", "notifyDeliveryAuditResult"}

// testKeys are three distinct valid keys: testkit's fixed client keys.
// (testkit imports clients, so these tests are package clients_test.)
type testKeys struct {
	k1, k2, k3 *rsa.PrivateKey
}

func keys(t *testing.T) testKeys {
	t.Helper()
	return testKeys{testkit.Key(t, 1), testkit.Key(t, 2), testkit.Key(t, 3)}
}

// smallKey is a 1024-bit public key, below signature.MinKeyBits, as base64
// DER.
func smallKey(t *testing.T) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&testkit.SmallKey(t).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// b64 is a public key as the platforms hand it out: base64 DER, one line.
func b64(t *testing.T, k *rsa.PrivateKey) string {
	t.Helper()
	s, err := signature.MarshalPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pemKey is a public key as PEM, indented to sit in a YAML block scalar.
func pemKey(t *testing.T, k *rsa.PrivateKey, indent string) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	p := strings.TrimSuffix(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "\n")
	return indent + strings.ReplaceAll(p, "\n", "\n"+indent)
}

func mustParse(t *testing.T, text string) *clients.Registry {
	t.Helper()
	r, err := clients.Parse([]byte(text), ops)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return r
}

func lookup(t *testing.T, r *clients.Registry, id string) *clients.Client {
	t.Helper()
	c, ok := r.Lookup(id)
	if !ok {
		t.Fatalf("Lookup(%q): not found", id)
	}
	return c
}

// wantKey checks that c.Key(version) is k's public half (nil: not found).
func wantKey(t *testing.T, c *clients.Client, version int, k *rsa.PrivateKey) {
	t.Helper()
	got, ok := c.Key(version)
	switch {
	case k == nil && ok:
		t.Errorf("%s Key(%d): found, want not found", c.ID, version)
	case k != nil && !ok:
		t.Errorf("%s Key(%d): not found", c.ID, version)
	case k != nil && !got.Equal(&k.PublicKey):
		t.Errorf("%s Key(%d): wrong key", c.ID, version)
	}
}

func TestParseYAML(t *testing.T) {
	tk := keys(t)
	r := mustParse(t, fmt.Sprintf(`
# two partners, base64 and PEM keys
clients:
  - clientId: isv-1
    operations: [notifyOrderCompletion, inquireOrderDetail]
    keys:
      - version: 1
        publicKey: %s
      - version: 2
        publicKey: |
%s
  - clientId: worldtrade
    disabled: true
    operations: ["*"]
    keys:
      - version: 7
        publicKey: %s
`, b64(t, tk.k1), pemKey(t, tk.k2, "          "), b64(t, tk.k3)))

	if r.Len() != 2 {
		t.Errorf("Len = %d, want 2", r.Len())
	}
	c := lookup(t, r, "isv-1")
	if c.ID != "isv-1" || c.Disabled {
		t.Errorf("isv-1: ID %q, Disabled %v", c.ID, c.Disabled)
	}
	wantKey(t, c, 1, tk.k1) // base64 DER
	wantKey(t, c, 2, tk.k2) // PEM
	wantKey(t, c, 0, tk.k2) // absent keyVersion: the latest
	wantKey(t, c, 3, nil)
	wantKey(t, c, -1, nil)

	w := lookup(t, r, "worldtrade")
	if !w.Disabled {
		t.Error("worldtrade: Disabled not read")
	}
	wantKey(t, w, 7, tk.k3)
	wantKey(t, w, 0, tk.k3)

	if _, ok := r.Lookup("nobody"); ok {
		t.Error("Lookup(nobody): found")
	}
}

func TestParseJSON(t *testing.T) {
	tk := keys(t)
	r := mustParse(t, fmt.Sprintf(`{
  "clients": [
    {"clientId": "isv-1", "operations": ["inquireOrderDetail"],
     "keys": [{"version": 1, "publicKey": %q}, {"version": 3, "publicKey": %q, "retired": false}]},
    {"clientId": "isv-2", "disabled": false, "operations": ["*"],
     "keys": [{"version": 1, "publicKey": %q}]}
  ]
}`, b64(t, tk.k1), pemKey(t, tk.k2, ""), b64(t, tk.k3)))

	if r.Len() != 2 {
		t.Errorf("Len = %d, want 2", r.Len())
	}
	c := lookup(t, r, "isv-1")
	wantKey(t, c, 1, tk.k1)
	wantKey(t, c, 3, tk.k2) // PEM inside a JSON string, newlines escaped
	wantKey(t, c, 0, tk.k2)
	wantKey(t, c, 2, nil)
	wantKey(t, lookup(t, r, "isv-2"), 0, tk.k3)
}

func TestRetiredKey(t *testing.T) {
	tk := keys(t)
	// The highest version is retired: "latest" means the latest active key.
	r := mustParse(t, fmt.Sprintf(`
clients:
  - clientId: isv-1
    operations: ["*"]
    keys:
      - {version: 1, publicKey: %s}
      - {version: 2, publicKey: %s, retired: true}
`, b64(t, tk.k1), b64(t, tk.k2)))
	c := lookup(t, r, "isv-1")
	wantKey(t, c, 2, nil)
	wantKey(t, c, 1, tk.k1)
	wantKey(t, c, 0, tk.k1)
}

func TestAllowed(t *testing.T) {
	tk := keys(t)
	r := mustParse(t, fmt.Sprintf(`
clients:
  - {clientId: listed, operations: [inquireOrderDetail], keys: [{version: 1, publicKey: %[1]s}]}
  - {clientId: star, operations: ["*"], keys: [{version: 1, publicKey: %[1]s}]}
  - {clientId: off, disabled: true, operations: ["*"], keys: [{version: 1, publicKey: %[1]s}]}
`, b64(t, tk.k1)))

	for _, tc := range []struct {
		client, op string
		want       bool
	}{
		{"listed", "inquireOrderDetail", true},
		{"listed", "notifyOrderCompletion", false},
		{"listed", "", false},
		{"star", "inquireOrderDetail", true},
		{"star", "notifyDeliveryAuditResult", true},
		{"off", "inquireOrderDetail", false}, // disabled: nothing is allowed
	} {
		if got := lookup(t, r, tc.client).Allowed(tc.op); got != tc.want {
			t.Errorf("%s.Allowed(%q) = %v, want %v", tc.client, tc.op, got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tk := keys(t)
	good := b64(t, tk.k1)
	small := smallKey(t)
	private, err := signature.MarshalPrivateKey(tk.k2)
	if err != nil {
		t.Fatal(err)
	}
	privatePEM := "-----BEGIN PRIVATE KEY-----\n" + private + "\n-----END PRIVATE KEY-----"
	// Key texts that must never show up in an error.
	secrets := []string{good, small, private}

	// entry builds one client entry in flow style.
	entry := func(id, opsList, keyList string) string {
		return fmt.Sprintf("  - {clientId: %q, operations: %s, keys: %s}\n", id, opsList, keyList)
	}
	key := func(v int, text string) string { return fmt.Sprintf("{version: %d, publicKey: %q}", v, text) }
	ok := entry("isv-1", "[inquireOrderDetail]", "["+key(1, good)+"]")

	for _, tc := range []struct {
		name, text string
		want       []string // substrings of the error
	}{
		{"empty file", "", []string{"empty"}},
		{"no clients", "clients: []\n", []string{"no clients"}},
		{"duplicate clientId",
			"clients:\n" + ok + ok,
			[]string{`clients[1] "isv-1"`, "clientId", "already registered"}},
		{"duplicate version",
			"clients:\n" + entry("isv-1", "[inquireOrderDetail]", "["+key(1, good)+", "+key(1, good)+"]"),
			[]string{`clients[0] "isv-1"`, "keys[1].version", "twice"}},
		{"version 0",
			"clients:\n" + entry("isv-1", "[inquireOrderDetail]", "[{publicKey: "+good+"}]"),
			[]string{"keys[0].version", "1 or more"}},
		{"no active key",
			"clients:\n" + entry("isv-1", "[inquireOrderDetail]", "[{version: 1, publicKey: "+good+", retired: true}]"),
			[]string{`"isv-1"`, "keys", "no active key"}},
		{"no keys",
			"clients:\n" + entry("isv-1", "[inquireOrderDetail]", "[]"),
			[]string{`"isv-1"`, "keys", "at least one"}},
		{"unknown operation",
			"clients:\n" + ok + entry("isv-2", "[inquireOrderDetail, notifyOrderCompletoin]", "["+key(1, good)+"]"),
			[]string{`clients[1] "isv-2"`, "operations[1]", `"notifyOrderCompletoin"`}},
		{"no operations",
			"clients:\n" + entry("isv-1", "[]", "["+key(1, good)+"]"),
			[]string{`"isv-1"`, "operations", "required"}},
		{"star with others",
			"clients:\n" + entry("isv-1", `["*", inquireOrderDetail]`, "["+key(1, good)+"]"),
			[]string{`"isv-1"`, "operations[0]", "alone"}},
		{"unknown field in a key",
			"clients:\n  - clientId: isv-1\n    operations: [inquireOrderDetail]\n    keys:\n      - version: 1\n        publicKey: " + good + "\n        retird: true\n",
			[]string{"retird"}},
		{"unknown field in a client",
			"clients:\n  - clientID: isv-1\n    operations: [inquireOrderDetail]\n    keys: [" + key(1, good) + "]\n",
			[]string{"clientID"}},
		{"unknown top-level field",
			"client:\n" + ok,
			[]string{"client"}},
		{"empty clientId",
			"clients:\n" + ok + entry("", "[inquireOrderDetail]", "["+key(1, good)+"]"),
			[]string{"clients[1]", "clientId", "required"}},
		{"clientId too long",
			"clients:\n" + entry(strings.Repeat("x", 129), "[inquireOrderDetail]", "["+key(1, good)+"]"),
			[]string{"clients[0]: clientId", "at most 128"}},
		{"clientId with a space",
			"clients:\n" + entry("isv 1", "[inquireOrderDetail]", "["+key(1, good)+"]"),
			[]string{"clients[0]", "clientId", "visible ASCII"}},
		{"bad key",
			"clients:\n" + entry("isv-1", "[inquireOrderDetail]", "["+key(1, good)+", "+key(2, good[:len(good)/2]+"!"+good[len(good)/2:])+"]"),
			[]string{`"isv-1"`, "keys[1].publicKey", "version 2"}},
		{"truncated key",
			"clients:\n" + entry("isv-1", "[inquireOrderDetail]", "["+key(1, good[:len(good)-8])+"]"),
			[]string{`"isv-1"`, "keys[0].publicKey"}},
		{"missing key",
			"clients:\n" + entry("isv-1", "[inquireOrderDetail]", "[{version: 1}]"),
			[]string{`"isv-1"`, "keys[0].publicKey", "required"}},
		{"key below 2048 bits",
			"clients:\n" + entry("isv-1", "[inquireOrderDetail]", "["+key(1, small)+"]"),
			[]string{`"isv-1"`, "keys[0].publicKey", "1024 bits"}},
		{"private key pasted (base64)",
			"clients:\n" + entry("isv-1", "[inquireOrderDetail]", "["+key(1, private)+"]"),
			[]string{`"isv-1"`, "keys[0].publicKey", "private key"}},
		{"private key pasted (PEM)",
			"clients:\n" + entry("isv-1", "[inquireOrderDetail]", "["+key(1, privatePEM)+"]"),
			[]string{`"isv-1"`, "keys[0].publicKey", "private key"}},
		{"wrong type",
			"clients:\n" + entry("isv-1", "[inquireOrderDetail]", "[{version: "+good+", publicKey: "+good+"}]"),
			[]string{`clients[0] "isv-1"`, "keys[0].version", "expected a whole number, found text"}},
		{"two documents",
			"clients:\n" + ok + "---\nclients:\n" + ok,
			[]string{"line 3, column 1", "second YAML document"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := clients.Parse([]byte(tc.text), ops)
			if err == nil {
				t.Fatal("Parse: no error")
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			noKeyMaterial(t, msg, secrets...)
		})
	}
}

// TestParseErrorMessages pins what an operator reads for each kind of
// mistake: the place (line and column), the field as the file spells it,
// and what would be right, never a Go type.
func TestParseErrorMessages(t *testing.T) {
	tk := keys(t)
	private, err := signature.MarshalPrivateKey(tk.k2)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, text, want string
	}{
		{"unknown field in a client", `clients:
  - clientID: isv-1
    operations: [inquireOrderDetail]
    keys: [{version: 1, publicKey: x}]
`, `line 2, column 5: clients[0]: unknown field "clientID" (did you mean "clientId"?); a client's fields are clientId, disabled, operations, keys`},
		{"unknown field in a key", `clients:
  - clientId: isv-1
    operations: [inquireOrderDetail]
    keys:
      - version: 1
        publicKey: x
        retird: true
`, `line 7, column 9: clients[0] "isv-1": keys[0]: unknown field "retird" (did you mean "retired"?); a key's fields are version, publicKey, retired`},
		{"unknown top-level field", "client:\n  - clientId: isv-1\n",
			`line 1, column 1: unknown field "client" (did you mean "clients"?); the file's only field is clients`},
		{"unknown field, nothing near it", "clients:\n  - clientId: isv-1\n    owner: ops\n",
			`line 3, column 5: clients[0] "isv-1": unknown field "owner"; a client's fields are clientId, disabled, operations, keys`},
		{"unknown field in JSON", `{"clients": [
  {"clientId": "isv-1", "operation": ["*"], "keys": []}
]}`, `line 2, column 25: clients[0] "isv-1": unknown field "operation" (did you mean "operations"?); a client's fields are clientId, disabled, operations, keys`},
		{"a field twice", "clients:\n  - clientId: isv-1\n    clientId: isv-2\n",
			`line 3, column 5: clients[0] "isv-2": clientId is given twice (first on line 2)`},
		{"broken YAML: indentation", `clients:
  - clientId: isv-1
   operations: [inquireOrderDetail]
`, `line 3, column 4: not valid YAML: did not find expected '-' indicator`},
		{"broken YAML: a tab", "clients:\n  - clientId: isv-1\n\toperations: [inquireOrderDetail]\n",
			`line 3, column 1: not valid YAML: found a tab character that violates indentation`},
		{"broken YAML: unclosed quote", "clients:\n  - clientId: \"isv-1\n    operations: [inquireOrderDetail]\n",
			`line 2, column 15: not valid YAML: found unexpected end of stream`},
		{"broken JSON: a missing comma", `{
  "clients": [
    {"clientId": "isv-1" "operations": ["*"]}
  ]
}`, `line 3, column 26: not valid JSON: invalid character '"' after object key:value pair`},
		{"broken JSON: cut short", "{\"clients\": [\n  {\"clientId\": \"isv-1\"",
			`line 2, column 22: not valid JSON: unexpected end of JSON input`},
		{"misspelt operation", `clients:
  - clientId: isv-1
    operations: [inquireOrderDetail, notifyOrderCompletoin]
    keys: [{version: 1, publicKey: x}]
`, `line 3, column 38: clients[0] "isv-1": operations[1]: unknown operation "notifyOrderCompletoin" (did you mean "notifyOrderCompletion"?); the operations are inquireOrderDetail, notifyDeliveryAuditResult, notifyOrderCompletion, or "*" alone for all`},
		{"operations not a list", "clients:\n  - clientId: isv-1\n    operations: inquireOrderDetail\n",
			`line 3, column 17: clients[0] "isv-1": operations: expected a list, found text`},
		{"version not a number", `clients:
  - clientId: isv-1
    operations: ["*"]
    keys:
      - version: one
        publicKey: x
`, `line 5, column 18: clients[0] "isv-1": keys[0].version: expected a whole number, found text`},
		{"disabled not a flag", "clients:\n  - clientId: isv-1\n    disabled: 2\n",
			`line 3, column 15: clients[0] "isv-1": disabled: expected true or false, found 2`},
		{"a client not a mapping", "clients:\n  - isv-1\n",
			`line 2, column 5: clients[0]: expected a client's fields (clientId, disabled, operations, keys), found text`},
		{"private key pasted", `clients:
  - clientId: isv-1
    operations: ["*"]
    keys:
      - version: 1
        publicKey: ` + private + `
`, `line 6, column 20: clients[0] "isv-1": keys[0].publicKey (version 1): holds a private key; publicKey needs the client's public key (PEM or base64 X.509 DER)`},
		{"not a key", `clients:
  - clientId: isv-1
    operations: ["*"]
    keys:
      - version: 1
        publicKey: not-a-key!
`, `line 6, column 20: clients[0] "isv-1": keys[0].publicKey (version 1): not a key: neither PEM nor base64 DER`},
		{"missing key", `clients:
  - clientId: isv-1
    operations: ["*"]
    keys:
      - version: 1
`, `line 5, column 9: clients[0] "isv-1": keys[0].publicKey (version 1): required`},
		{"no clients", "clients: []\n", `line 1, column 10: no clients listed`},
		{"two documents", "clients: []\n---\nclients: []\n",
			`line 2, column 1: a second YAML document begins here; the file must hold one (a stray "---"?)`},
		{"empty", "# nothing yet\n", `the file is empty`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := clients.Parse([]byte(tc.text), ops)
			if err == nil {
				t.Fatal("Parse: no error")
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got %s\nwant %s", err, tc.want)
			}
			noKeyMaterial(t, err.Error(), private)
		})
	}
}

// TestLoadErrorsNameTheFile: the file's path comes first, once.
func TestLoadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	_, err := clients.Load(missing, ops)
	if want := missing + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("missing file: %v, want %s", err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v is not fs.ErrNotExist", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "clients:\n  - clientID: isv-1\n")
	_, err = clients.Load(bad, ops)
	want := bad + `: line 2, column 5: clients[0]: unknown field "clientID" (did you mean "clientId"?); a client's fields are clientId, disabled, operations, keys`
	if err == nil || err.Error() != want {
		t.Errorf("bad file:\n got %v\nwant %s", err, want)
	}
	var fe *clients.Error
	if !errors.As(err, &fe) || fe.File != bad || fe.Line != 2 || fe.Column != 5 {
		t.Errorf("bad file: %#v, want a *clients.Error at %s line 2, column 5", err, bad)
	}
}

// noKeyMaterial fails if msg quotes any 12 consecutive characters of the
// keys. (All 2048-bit keys share their first base64 characters, the DER
// header; 12 is past what any error could quote by chance.)
func noKeyMaterial(t *testing.T, msg string, keyTexts ...string) {
	t.Helper()
	const window = 12
	for _, k := range keyTexts {
		for i := 0; i+window <= len(k); i++ {
			if strings.Contains(msg, k[i:i+window]) {
				t.Fatalf("error quotes key material (%q): %s", k[i:i+window], msg)
			}
		}
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// rotation returns a one-client file with keys 1 and 2, key 1 retired or not.
func rotation(t *testing.T, tk testKeys, retire1 bool) string {
	return fmt.Sprintf(`clients:
  - clientId: isv-1
    operations: ["*"]
    keys:
      - version: 1
        publicKey: %s
        retired: %v
      - version: 2
        publicKey: %s
`, b64(t, tk.k1), retire1, b64(t, tk.k2))
}

func TestReloadRotation(t *testing.T) {
	tk := keys(t)
	path := filepath.Join(t.TempDir(), "clients.yaml")
	writeFile(t, path, rotation(t, tk, false))

	s, err := clients.Open(path, ops)
	if err != nil {
		t.Fatal(err)
	}
	c := lookup(t, s.Current(), "isv-1")
	wantKey(t, c, 1, tk.k1)
	wantKey(t, c, 2, tk.k2)

	// Step two of the rotation: retire version 1.
	writeFile(t, path, rotation(t, tk, true))
	if err := s.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	c = lookup(t, s.Current(), "isv-1")
	wantKey(t, c, 1, nil)
	wantKey(t, c, 2, tk.k2)
	wantKey(t, c, 0, tk.k2)

	// A broken file is refused and the previous registry stays in force.
	before := s.Current()
	writeFile(t, path, "clients:\n  - clientId: isv-1\n    operations: [\"*\"]\n    keys: [{version: 1, publicKey: nonsense}]\n")
	err = s.Reload()
	if err == nil {
		t.Fatal("Reload of a broken file: no error")
	}
	for _, w := range []string{path, `"isv-1"`, "keys[0].publicKey", "previous registry kept"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Reload error %q does not mention %q", err, w)
		}
	}
	if s.Current() != before {
		t.Error("Reload of a broken file replaced the registry")
	}
	wantKey(t, lookup(t, s.Current(), "isv-1"), 2, tk.k2)

	// So is a vanished file.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil {
		t.Error("Reload of a missing file: no error")
	}
	if s.Current() != before {
		t.Error("Reload of a missing file replaced the registry")
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	if _, err := clients.Open(missing, ops); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Open(missing) = %v, want an error naming the file", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "clients: {}\n")
	if _, err := clients.Open(bad, ops); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("Open(bad) = %v, want an error naming the file", err)
	}
}

func TestStatic(t *testing.T) {
	tk := keys(t)
	r := mustParse(t, rotation(t, tk, false))
	s := clients.Static(r)
	if s.Current() != r {
		t.Error("Static: Current is not the registry given")
	}
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "no file") {
		t.Errorf("Static Reload = %v, want a \"no file\" error", err)
	}
	if s.Current() != r {
		t.Error("Static: Reload replaced the registry")
	}

	empty := clients.Static(nil).Current()
	if empty == nil || empty.Len() != 0 {
		t.Fatalf("Static(nil).Current() = %v, want an empty registry", empty)
	}
	if _, ok := empty.Lookup("isv-1"); ok {
		t.Error("empty registry: Lookup found a client")
	}
}

// TestConcurrentReload reads the registry from many goroutines while another
// reloads it repeatedly; run with -race. Both file versions keep key 2 as the
// latest, so every reader must always see it, whichever registry it gets.
func TestConcurrentReload(t *testing.T) {
	tk := keys(t)
	path := filepath.Join(t.TempDir(), "clients.yaml")
	files := []string{rotation(t, tk, false), rotation(t, tk, true)}
	writeFile(t, path, files[0])
	s, err := clients.Open(path, ops)
	if err != nil {
		t.Fatal(err)
	}

	const readers, reads, reloads = 8, 2000, 50
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range readers {
		wg.Go(func() {
			<-start
			for range reads {
				c, ok := s.Current().Lookup("isv-1")
				if !ok {
					t.Error("isv-1 vanished during reload")
					return
				}
				if k, ok := c.Key(0); !ok || !k.Equal(&tk.k2.PublicKey) {
					t.Error("Key(0) is not key 2 during reload")
					return
				}
				if !c.Allowed("inquireOrderDetail") {
					t.Error("Allowed changed during reload")
					return
				}
			}
		})
	}
	wg.Go(func() {
		<-start
		for i := range reloads {
			// Rewriting the file is safe here: only this goroutine reads it.
			if err := os.WriteFile(path, []byte(files[i%2]), 0o600); err != nil {
				t.Error(err) // not Fatal: this is not the test's goroutine
				return
			}
			if err := s.Reload(); err != nil {
				t.Errorf("Reload %d: %v", i, err)
				return
			}
		}
	})
	close(start)
	wg.Wait()
}
