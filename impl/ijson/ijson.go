// Package ijson holds orderhub's rules for JSON texts, after I-JSON
// (RFC 7493): what makes a text ambiguous or not interoperable, its
// canonical form and fingerprint, and Object, a JSON object kept as text.
//
// It reports what is wrong; callers turn that into their own errors.
package ijson

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Problem is what makes a JSON text unfit: where (the member names leading
// to it; empty for the whole text) and what.
type Problem struct {
	Path   []string
	Reason string // e.g. "appears more than once", "a string holds an unpaired surrogate escape", "holds a number a float64 cannot hold"
}

// Error is the path joined with dots, then the reason; just the reason when
// the path is empty.
func (p *Problem) Error() string {
	if len(p.Path) == 0 {
		return p.Reason
	}
	return strings.Join(p.Path, ".") + ": " + p.Reason
}

// The reasons a Problem gives.
const (
	reasonDuplicate = "appears more than once"
	reasonSurrogate = "a string holds an unpaired surrogate escape"
	reasonNumber    = "holds a number a float64 cannot hold"
)

// Ambiguity returns what makes the valid JSON text raw mean different things
// to different readers, or nil (I-JSON, RFC 7493, forbids both): an unpaired
// surrogate escape (Path empty), which decodes to U+FFFD, so that different
// texts would read the same; or a member name twice in one object, at any
// depth (Path = the names leading to the duplicate, including it), which
// some readers take last-wins and others first-wins. Surrogates are checked
// first. raw must be valid JSON (check json.Valid first).
func Ambiguity(raw []byte) *Problem {
	if unpairedSurrogate(raw) {
		return &Problem{Reason: reasonSurrogate}
	}
	return walk(raw, func(f *frame, name string, dup bool) *Problem {
		if dup {
			return &Problem{Path: slices.Concat(f.path, []string{name}), Reason: reasonDuplicate}
		}
		return nil
	}, nil)
}

// Numbers returns a Problem when a number in the valid JSON text raw does not
// fit a float64 (for example 1e400): not interoperable JSON (RFC 7493 §2.2).
// Path = the member names leading to the number. Integers beyond 2^53 that do
// fit the float64 range are fine (they are kept as written elsewhere), and so
// are numbers too small to tell from zero (1e-400): reading them as 0 is a
// rounding, not a different value's worth of overflow.
func Numbers(raw []byte) *Problem {
	return walk(raw, nil, func(f *frame, tok json.Token) *Problem {
		n, ok := tok.(json.Number)
		if !ok {
			return nil
		}
		if _, err := strconv.ParseFloat(string(n), 64); err != nil {
			return &Problem{Path: f.valuePath(), Reason: reasonNumber}
		}
		return nil
	})
}

// frame is an object or array being walked.
type frame struct {
	keys    map[string]bool // nil in an array
	path    []string        // the member names leading here
	wantKey bool
	key     string // the member whose value comes next
}

// valuePath is a fresh copy of the member names leading to the value that
// comes next in f (f nil: the whole text).
func (f *frame) valuePath() []string {
	if f == nil {
		return nil
	}
	if f.keys == nil {
		return slices.Clone(f.path)
	}
	return slices.Concat(f.path, []string{f.key})
}

// walk reads the valid JSON text raw token by token, numbers as written. It
// calls onName (if not nil) for each member name, with the object's frame
// and whether the name already appeared in that object, and onScalar (if not
// nil) for each string, number, boolean and null value, with the frame it is
// in (nil at the top). It stops at the first Problem either returns.
func walk(raw []byte, onName func(f *frame, name string, dup bool) *Problem, onScalar func(f *frame, tok json.Token) *Problem) *Problem {
	var stack []*frame
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber() // 1e400 is valid JSON but no float64: read on past it
	for {
		tok, err := d.Token()
		if err != nil {
			return nil // io.EOF: raw is valid JSON, so nothing else
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if s, ok := tok.(string); ok && top != nil && top.wantKey {
			dup := top.keys[s]
			if onName != nil {
				if p := onName(top, s, dup); p != nil {
					return p
				}
			}
			top.keys[s], top.key, top.wantKey = true, s, false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			f := &frame{}
			if top != nil {
				f.path = top.path
				if top.keys != nil {
					f.path = append(slices.Clip(top.path), top.key)
				}
			}
			if tok == json.Delim('{') {
				f.keys, f.wantKey = map[string]bool{}, true
			}
			stack = append(stack, f)
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 {
				top = stack[len(stack)-1]
			} else {
				top = nil
			}
		default:
			if onScalar != nil {
				if p := onScalar(top, tok); p != nil {
					return p
				}
			}
		}
		// A value has ended: in an object, a member name comes next.
		if top != nil && top.keys != nil {
			top.wantKey = true
		}
	}
}

// unpairedSurrogate reports whether a string of the valid JSON raw holds a
// \uD800-\uDFFF escape that is not a high-low pair.
func unpairedSurrogate(raw []byte) bool {
	hex4 := func(i int) rune {
		if i+4 > len(raw) {
			return -1
		}
		n, err := strconv.ParseUint(string(raw[i:i+4]), 16, 16)
		if err != nil {
			return -1
		}
		return rune(n)
	}
	// In valid JSON a backslash appears only in strings, as an escape.
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if i+1 < len(raw) && raw[i+1] != 'u' {
			i++ // a one-character escape, \\ included
			continue
		}
		switch r := hex4(i + 2); {
		case utf16.IsSurrogate(r) && r < 0xDC00:
			j := i + 6
			if j+1 < len(raw) && raw[j] == '\\' && raw[j+1] == 'u' {
				if lo := hex4(j + 2); utf16.IsSurrogate(lo) && lo >= 0xDC00 {
					i = j + 5
					continue
				}
			}
			return true
		case utf16.IsSurrogate(r):
			return true
		}
		i += 5
	}
	return false
}

// Canonical returns the JSON text raw in canonical form: object members
// sorted by name at every depth, no insignificant space, numbers exactly as
// written, strings as encoding/json writes them (HTML characters escaped,
// invalid UTF-8 and unpaired surrogates as U+FFFD; a name given twice keeps
// its last value). The same content in any order or spacing gives the same
// bytes. raw must hold exactly one JSON value.
func Canonical(raw []byte) ([]byte, error) {
	return canonical(raw, true)
}

// canonical is Canonical, with HTML characters escaped or not.
func canonical(raw []byte, escapeHTML bool) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber() // keep numbers as written: no float rounding
	var v any
	if err := d.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("ijson: no JSON value")
		}
		return nil, fmt.Errorf("ijson: %w", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("ijson: data after the JSON value")
	}
	var out bytes.Buffer
	e := json.NewEncoder(&out) // map keys come out sorted
	e.SetEscapeHTML(escapeHTML)
	if err := e.Encode(v); err != nil {
		return nil, fmt.Errorf("ijson: %w", err)
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}

// Fingerprint is the hex SHA-256 of Canonical(raw): an idempotency
// fingerprint, the same whatever the spacing or member order of raw.
func Fingerprint(raw []byte) (string, error) {
	canon, err := Canonical(raw)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:]), nil
}

// Object is a JSON object kept as text (the Go type of the contract's
// extendInfo): numbers digit for digit, never decoded into a map.
type Object []byte

// UnmarshalJSON keeps the object in canonical form, without HTML escapes:
// the generated server binds a body by re-encoding what the validator
// decoded, so member order and escapes as sent are gone by then anyway, and
// one form makes Len the same however the object was written. It refuses a
// JSON value other than an object; null leaves the Object empty. It does
// not check numbers: callers check Numbers explicitly.
func (o *Object) UnmarshalJSON(b []byte) error {
	c, err := canonical(b, false)
	if err != nil {
		return err
	}
	switch {
	case string(c) == "null":
		*o = nil
		return nil
	case c[0] != '{':
		return errors.New("ijson: not a JSON object")
	}
	*o = c
	return nil
}

// MarshalJSON writes the canonical form, so answers are the same bytes
// whatever form the object was stored in; without HTML escapes, which an
// encoder adds when it escapes (encoding/json's default). An empty Object
// marshals as null.
func (o Object) MarshalJSON() ([]byte, error) {
	if len(o) == 0 {
		return []byte("null"), nil
	}
	if t := bytes.TrimLeft(o, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, errors.New("ijson: not a JSON object")
	}
	return canonical(o, false)
}

// Len is the length in characters (runes) of the text as UnmarshalJSON
// keeps it, what the contract's "at most 2048 characters serialised" counts.
func (o Object) Len() int {
	return utf8.RuneCount(o)
}
