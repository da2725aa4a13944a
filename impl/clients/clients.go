// Package clients is orderhub's registry of partner callers: who may call,
// which operations each caller may call, and the public keys that verify its
// signatures.
//
// The registry is read from a YAML file (JSON works too: JSON is YAML), named
// by the ORDERHUB_CLIENTS environment variable:
//
//	clients:
//	  - clientId: isv-1
//	    operations: [notifyOrderCompletion, inquireOrderDetail]
//	    keys:
//	      - version: 1
//	        publicKey: MIIBIjANBg...   # base64 X.509 SubjectPublicKeyInfo DER
//	        retired: true
//	      - version: 2
//	        publicKey: |
//	          -----BEGIN PUBLIC KEY-----
//	          ...
//	          -----END PUBLIC KEY-----
//
// A Registry is immutable once parsed, so it can be shared by any number of
// request goroutines; a Source holds the registry in force and swaps in a new
// one on Reload.
package clients

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/orderhub/orderhub/impl/signature"
)

// AllOperations in a client's operations list allows every operation.
const AllOperations = "*"

// MaxClientIDLen bounds clientId.
const MaxClientIDLen = 128

// Client is one registered caller. Its unexported fields are fixed when the
// registry is parsed and never change, so a *Client is safe to share.
type Client struct {
	ID string
	// Disabled clients are kept in the registry (so refusals can say why)
	// but are refused: ACCESS_DENIED.
	Disabled bool

	keys   map[int]*rsa.PublicKey // active keys only: retired ones never verify
	latest int                    // highest active version, used when keyVersion is absent
	ops    map[string]bool
	all    bool
}

// Key returns the client's active key with the given version; version 0
// (keyVersion absent from the Signature header) selects the latest active
// key. A retired or unknown version reports false.
func (c *Client) Key(version int) (*rsa.PublicKey, bool) {
	if version == 0 {
		version = c.latest
	}
	k, ok := c.keys[version]
	return k, ok
}

// Allowed reports whether the client may call operationID (the contract's
// operationId). A disabled client may call nothing, so a caller that forgets
// to check Disabled still fails closed.
func (c *Client) Allowed(operationID string) bool {
	if c.Disabled {
		return false
	}
	return c.all || c.ops[operationID]
}

// Registry is a validated, immutable set of clients.
type Registry struct {
	clients map[string]*Client
}

// Lookup returns the client registered as clientID, disabled or not.
func (r *Registry) Lookup(clientID string) (*Client, bool) {
	c, ok := r.clients[clientID]
	return c, ok
}

// Len is the number of registered clients, disabled ones included.
func (r *Registry) Len() int { return len(r.clients) }

// File is the clients file's document: what Parse reads, and what the
// development setup and tests marshal to write one. Field names are the
// file's names; Parse rejects anything else, so a typo such as
// "retird: true" is an error instead of a silently active key.
type File struct {
	Clients []Entry `yaml:"clients"`
}

// Entry is one client of the file.
type Entry struct {
	ClientID   string     `yaml:"clientId"`
	Disabled   bool       `yaml:"disabled,omitempty"`
	Operations []string   `yaml:"operations"`
	Keys       []KeyEntry `yaml:"keys"`
}

// KeyEntry is one of a client's keys: base64 X.509 DER or PEM.
type KeyEntry struct {
	Version   int    `yaml:"version"`
	PublicKey string `yaml:"publicKey"`
	Retired   bool   `yaml:"retired,omitempty"`
}

// Marshal writes f as YAML, the form Parse reads.
func (f File) Marshal() ([]byte, error) {
	return yaml.Marshal(f)
}

// Load reads and parses the registry file at path. Its errors are *Error,
// naming the file.
func Load(path string, knownOps []string) (*Registry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		// The *PathError would repeat the path and the verb; the reason is
		// what is left to say.
		msg := err.Error()
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			msg = pe.Err.Error()
		}
		return nil, &Error{File: path, Msg: msg, err: err}
	}
	r, perr := parse(data, knownOps)
	if perr != nil {
		perr.File = path
		return nil, perr
	}
	return r, nil
}

// Parse reads a registry file's content (YAML or JSON) and validates all of
// it: a registry is either entirely right or refused, never half-loaded.
// knownOps are the operationIds that exist; naming any other is an error, so
// a misspelt operation cannot silently lock a partner out. Errors are
// *Error: they say where the problem is (line and column) and name the
// client and the field as the file spells them, but never print key
// material.
func Parse(data []byte, knownOps []string) (*Registry, error) {
	r, err := parse(data, knownOps)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func parse(data []byte, knownOps []string) (*Registry, *Error) {
	doc, err := decode(data)
	if err != nil {
		return nil, err
	}
	var f File
	if err := doc.Decode(&f); err != nil {
		// check has refused everything Decode would; this is a safety net
		// with yaml's own words.
		return nil, &Error{Msg: err.Error()}
	}
	if len(f.Clients) == 0 {
		// A registry admitting nobody is almost certainly the wrong file.
		return nil, errorAt(findNearest(doc, "clients"), "no clients listed")
	}

	known := make(map[string]bool, len(knownOps))
	for _, op := range knownOps {
		known[op] = true
	}
	r := &Registry{clients: make(map[string]*Client, len(f.Clients))}
	for i, e := range f.Clients {
		c, ferr := newClient(e, known)
		if ferr == nil {
			if _, dup := r.clients[c.ID]; dup {
				ferr = &fieldError{path: []any{"clientId"}, msg: "already registered by an earlier entry"}
			}
		}
		if ferr != nil {
			return nil, errorAt(findNearest(doc, append([]any{"clients", i}, ferr.path...)...), where(i, e.ClientID)+": "+ferr.Error())
		}
		r.clients[c.ID] = c
	}
	return r, nil
}

// where names a client entry for error messages: its position always (the
// id may be the thing that is wrong) and its id when there is a sensible one.
func where(i int, id string) string {
	if id == "" || len(id) > MaxClientIDLen {
		return fmt.Sprintf("clients[%d]", i)
	}
	return fmt.Sprintf("clients[%d] %q", i, id)
}

// fieldError is a client entry's field that is wrong: path leads to it from
// the entry ("keys", 1, "version"), note follows the path in the message.
type fieldError struct {
	path []any
	note string
	msg  string
}

func (e *fieldError) Error() string {
	var b strings.Builder
	b.WriteString(pathString(e.path))
	if e.note != "" {
		b.WriteString(" " + e.note)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.msg)
	return b.String()
}

func newClient(e Entry, known map[string]bool) (*Client, *fieldError) {
	if err := checkClientID(e.ClientID); err != nil {
		return nil, &fieldError{path: []any{"clientId"}, msg: err.Error()}
	}
	c := &Client{
		ID:       e.ClientID,
		Disabled: e.Disabled,
		keys:     make(map[int]*rsa.PublicKey, len(e.Keys)),
		ops:      make(map[string]bool, len(e.Operations)),
	}

	if len(e.Operations) == 0 {
		// Required rather than defaulting to nothing or everything: either
		// default would surprise someone.
		return nil, &fieldError{path: []any{"operations"}, msg: `required (list operationIds, or ["*"] for all)`}
	}
	for j, op := range e.Operations {
		switch {
		case op == AllOperations:
			if len(e.Operations) > 1 {
				return nil, &fieldError{path: []any{"operations", j}, msg: fmt.Sprintf("%q must stand alone", AllOperations)}
			}
			c.all = true
		case !known[op]:
			ids := slices.Sorted(maps.Keys(known))
			return nil, &fieldError{path: []any{"operations", j}, msg: fmt.Sprintf("unknown operation %q%s; the operations are %s, or %q alone for all",
				op, didYouMean(op, ids), strings.Join(ids, ", "), AllOperations)}
		default:
			c.ops[op] = true
		}
	}

	if len(e.Keys) == 0 {
		return nil, &fieldError{path: []any{"keys"}, msg: "at least one key is required"}
	}
	seen := make(map[int]bool, len(e.Keys))
	for j, k := range e.Keys {
		if k.Version < 1 {
			// 0 is taken: it means "no keyVersion in the header, use the latest".
			return nil, &fieldError{path: []any{"keys", j, "version"}, msg: "must be 1 or more"}
		}
		if seen[k.Version] {
			return nil, &fieldError{path: []any{"keys", j, "version"}, msg: fmt.Sprintf("version %d is listed twice", k.Version)}
		}
		seen[k.Version] = true
		// Retired keys are parsed too: a broken entry is an error now, not a
		// surprise on the day someone un-retires it.
		pub, err := parseKey(k.PublicKey)
		if err != nil {
			return nil, &fieldError{path: []any{"keys", j, "publicKey"}, note: fmt.Sprintf("(version %d)", k.Version), msg: err.Error()}
		}
		if k.Retired {
			continue
		}
		c.keys[k.Version] = pub
		c.latest = max(c.latest, k.Version)
	}
	if len(c.keys) == 0 {
		return nil, &fieldError{path: []any{"keys"}, msg: "no active key (every key is retired)"}
	}
	return c, nil
}

// checkClientID keeps ids to visible ASCII: the id travels in the Client-Id
// header, whose surrounding whitespace is trimmed away, so an id with spaces
// or control characters could never match.
func checkClientID(id string) error {
	if id == "" {
		return errors.New("required")
	}
	if len(id) > MaxClientIDLen {
		return fmt.Errorf("%d characters, at most %d allowed", len(id), MaxClientIDLen)
	}
	for _, r := range id {
		if r <= ' ' || r > '~' {
			return errors.New("only visible ASCII characters are allowed")
		}
	}
	return nil
}

// parseKey wraps signature.ParsePublicKey, whose errors describe the problem
// without quoting the key.
func parseKey(text string) (*rsa.PublicKey, error) {
	if strings.TrimSpace(text) == "" {
		return nil, errors.New("required")
	}
	pub, err := signature.ParsePublicKey([]byte(text))
	if err == nil {
		return pub, nil
	}
	// The likeliest paste error is the wrong half of the pair; say so, and
	// never echo it: a private key in a log is a leaked key. Platforms hand
	// out both halves as bare base64, so the armour alone cannot tell.
	if _, perr := signature.ParsePrivateKey([]byte(text)); perr == nil || strings.Contains(text, "PRIVATE KEY") {
		return nil, errors.New("holds a private key; publicKey needs the client's public key (PEM or base64 X.509 DER)")
	}
	return nil, err
}
