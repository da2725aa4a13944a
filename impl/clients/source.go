package clients

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// Source is the registry in force. Requests read it with Current, which
// never locks; Reload (on SIGHUP, say) parses the file afresh and swaps the
// result in atomically, so a request in flight keeps the registry it started
// with and no request is dropped or sees a half-built registry.
type Source struct {
	path     string // "" for a static source
	knownOps []string
	cur      atomic.Pointer[Registry]
	// reload serialises Reload calls, so that two overlapping reloads
	// cannot publish their results out of order (an older read of the file
	// overwriting a newer one).
	reload sync.Mutex
}

// Open loads the registry file at path and returns a Source serving it.
func Open(path string, knownOps []string) (*Source, error) {
	// Copied: the caller may reuse its slice, and Reload needs it later.
	ops := slices.Clone(knownOps)
	r, err := Load(path, ops)
	if err != nil {
		return nil, err
	}
	s := &Source{path: path, knownOps: ops}
	s.cur.Store(r)
	return s, nil
}

// Static returns a Source that always serves r, for tests and generated
// development setups; it has no file, so Reload fails. A nil r serves an
// empty registry, which refuses everyone, so Current is never nil.
func Static(r *Registry) *Source {
	if r == nil {
		r = &Registry{clients: map[string]*Client{}}
	}
	s := &Source{}
	s.cur.Store(r)
	return s
}

// Current returns the registry in force. Callers should take it once per
// request and use that value throughout, so a concurrent Reload cannot give
// one request two different views.
func (s *Source) Current() *Registry { return s.cur.Load() }

// Reload re-reads the file. On any error the previous registry stays in
// force (a half-saved or mistyped file must not lock every partner out) and
// the error says what is wrong with the file.
func (s *Source) Reload() error {
	if s.path == "" {
		return errors.New("clients: static registry: no file to reload")
	}
	s.reload.Lock()
	defer s.reload.Unlock()
	r, err := Load(s.path, s.knownOps)
	if err != nil {
		return fmt.Errorf("%w (previous registry kept)", err)
	}
	s.cur.Store(r)
	return nil
}
