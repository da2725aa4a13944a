// Package testkit holds the fixtures orderhub's tests share: fixed RSA keys,
// clients files written from clients.File, and a store that counts its
// commits. The keys are for tests only: they are public in this repository.
package testkit

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"embed"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/orderhub/orderhub/impl/clients"
	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/impl/store"
	"github.com/orderhub/orderhub/openapi"
)

// NumKeys is how many fixed keys Key has.
const NumKeys = 4

// keyFiles are RSA-2048 private keys, PKCS#8 PEM: generating keys in every
// test is slow (under -race especially), and fixed keys make a failure
// repeat.
//
//go:embed testdata/*.pem
var keyFiles embed.FS

// Key returns fixed key n, 0 ≤ n < NumKeys. Tests give each party its own:
// by convention 0 is orderhub's, 1 the first client's.
func Key(tb testing.TB, n int) *rsa.PrivateKey {
	tb.Helper()
	text, err := keyFiles.ReadFile(fmt.Sprintf("testdata/key-%d.pem", n))
	if err != nil {
		tb.Fatalf("testkit: no key %d (there are %d): %v", n, NumKeys, err)
	}
	key, err := signature.ParsePrivateKey(text)
	if err != nil {
		tb.Fatalf("testkit: key %d: %v", n, err)
	}
	return key
}

// SmallKey is a fixed 1024-bit key: below signature.MinKeyBits, so a
// partner key the registry must refuse; and, as orderhub's own key, one that
// signs several times faster where a test's cost is mostly signing (the
// fuzzer). signature.ParsePrivateKey refuses it, so x509 reads it.
func SmallKey(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	text, err := keyFiles.ReadFile("testdata/small-1024.pem")
	if err != nil {
		tb.Fatal(err)
	}
	block, _ := pem.Decode(text)
	if block == nil {
		tb.Fatal("testkit: small-1024.pem holds no PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		tb.Fatalf("testkit: small-1024.pem: %v", err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		tb.Fatal("testkit: small-1024.pem is not an RSA key")
	}
	return rk
}

// Entry is a client of the clients file with key as its version 1, allowed
// ops (none: every operation).
func Entry(tb testing.TB, id string, key *rsa.PublicKey, ops ...string) clients.Entry {
	tb.Helper()
	if len(ops) == 0 {
		ops = []string{clients.AllOperations}
	}
	return clients.Entry{ClientID: id, Operations: ops, Keys: []clients.KeyEntry{{Version: 1, PublicKey: PublicKey(tb, key)}}}
}

// PublicKey is key as the clients file takes it: base64 X.509 DER.
func PublicKey(tb testing.TB, key *rsa.PublicKey) string {
	tb.Helper()
	text, err := signature.MarshalPublicKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return text
}

// ClientsFile writes the clients file of entries in a temporary folder of
// the test and returns its path.
func ClientsFile(tb testing.TB, entries ...clients.Entry) string {
	tb.Helper()
	doc, err := clients.File{Clients: entries}.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "clients.yaml")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// Clients is the registry of entries, checked against the contract's
// partner operations as the service checks its file.
func Clients(tb testing.TB, entries ...clients.Entry) *clients.Source {
	tb.Helper()
	doc, err := clients.File{Clients: entries}.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	reg, err := clients.Parse(doc, PartnerOperations(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return clients.Static(reg)
}

// PartnerOperations are the contract's partner operationIds, sorted.
func PartnerOperations(tb testing.TB) []string {
	tb.Helper()
	cat, err := openapi.Load()
	if err != nil {
		tb.Fatal(err)
	}
	return cat.IDs(openapi.Partner)
}

// CountingStore counts, per requestId, the commits that succeeded and those
// of them that wrote a business effect.
type CountingStore struct {
	store.Store
	mu      sync.Mutex
	commits map[string]int
	effects map[string]int
}

// NewCountingStore counts the commits of st.
func NewCountingStore(st store.Store) *CountingStore {
	return &CountingStore{Store: st, commits: map[string]int{}, effects: map[string]int{}}
}

// Commit commits through the wrapped store and counts what succeeded.
func (s *CountingStore) Commit(ctx context.Context, k store.Key, token string, response []byte, retention time.Duration, effect store.Effect) error {
	err := s.Store.Commit(ctx, k, token, response, retention, effect)
	if err == nil {
		s.mu.Lock()
		s.commits[k.RequestID]++
		if effect != nil {
			s.effects[k.RequestID]++
		}
		s.mu.Unlock()
	}
	return err
}

// Count is how often requestID was committed, and with an effect.
func (s *CountingStore) Count(requestID string) (commits, effects int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits[requestID], s.effects[requestID]
}

// Totals are the commits and the effects of every requestId.
func (s *CountingStore) Totals() (commits, effects int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, c := range s.commits {
		commits += c
		effects += s.effects[id]
	}
	return commits, effects
}
