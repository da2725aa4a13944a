// Package orderhubtest runs orderhub inside a test, as the realistic
// counterpart of code that calls its partner APIs: one call starts it in
// the process on a loopback port, with fresh keys, one registered partner
// client and the in-memory store (or a Redis), and hands back clients that
// sign every request and check every answer's signature. Its fault rules
// are on: a test scripts U answers, delays and lost answers with Inject.
//
//	hub := orderhubtest.New(t)
//	res, err := hub.Client.InquireOrderDetailWithResponse(ctx, nil, models.InquireOrderDetailRequest{RequestOrderID: "o1"})
//	hub.Inject(t, orderhubtest.Answer("notifyDeliveryAuditResult", models.ResultCodeUnknownException).ForRequestID("r1").Times(1))
package orderhubtest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/orderhub/orderhub/generated/client"
	"github.com/orderhub/orderhub/impl/clients"
	"github.com/orderhub/orderhub/impl/orderhub"
	"github.com/orderhub/orderhub/impl/signature"
)

// Server is an orderhub running in the process.
type Server struct {
	// URL is its base address, http://127.0.0.1:<port>.
	URL string
	// Client calls the partner APIs as the registered client: it signs
	// every request, and a call whose answer orderhub did not sign fails.
	Client *client.ClientWithResponses
	// Ops calls the operator API (create and read orders, list audits).
	Ops *client.ClientWithResponses
	// ClientID and ClientKey are the registered client's; Key is
	// orderhub's own (its public half verifies the answers).
	ClientID   string
	ClientKey  *rsa.PrivateKey
	Key        *rsa.PrivateKey
	AdminToken string

	srv *httptest.Server
	svc *orderhub.Service
	dir string
}

// Option changes what Start sets up.
type Option func(*setup)

type setup struct {
	redisURL, clientID string
}

// WithRedis keeps orderhub's state in the Redis that url names (as
// ORDERHUB_REDIS_URL) instead of memory.
func WithRedis(url string) Option { return func(s *setup) { s.redisURL = url } }

// WithClientID registers the partner client as id (default "isv-1").
func WithClientID(id string) Option { return func(s *setup) { s.clientID = id } }

// New starts an orderhub for tb and stops it when tb ends; any failure
// fails tb.
func New(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s, err := Start(tb.Context(), opts...)
	if err != nil {
		tb.Fatalf("orderhubtest: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("orderhubtest: %v", err)
		}
	})
	return s
}

// Start is New for code without a testing.TB (examples, programs): the
// caller must Close the server.
func Start(_ context.Context, opts ...Option) (*Server, error) {
	cfg := setup{clientID: "isv-1"}
	for _, o := range opts {
		o(&cfg)
	}
	own, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	caller, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "orderhubtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{ClientID: cfg.clientID, ClientKey: caller, Key: own, AdminToken: rand.Text(), dir: dir}
	if err := s.start(cfg); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

func (s *Server) start(cfg setup) error {
	pub, err := signature.MarshalPublicKey(&s.ClientKey.PublicKey)
	if err != nil {
		return err
	}
	doc, err := clients.File{Clients: []clients.Entry{{
		ClientID:   cfg.clientID,
		Operations: []string{clients.AllOperations},
		Keys:       []clients.KeyEntry{{Version: 1, PublicKey: pub}},
	}}}.Marshal()
	if err != nil {
		return err
	}
	file := filepath.Join(s.dir, "clients.yaml")
	if err := os.WriteFile(file, doc, 0o600); err != nil {
		return err
	}
	if s.svc, err = orderhub.Open(orderhub.Config{
		RedisURL:    cfg.redisURL,
		ClientsFile: file,
		SigningKey:  s.Key,
		AdminToken:  s.AdminToken,
		Faults:      true, // scripted faults: AddFault
	}); err != nil {
		return err
	}
	s.srv = httptest.NewServer(s.svc.Handler)
	s.URL = s.srv.URL

	signer := &signature.Signer{ClientID: cfg.clientID, KeyVersion: 1, Key: s.ClientKey}
	verified := &http.Client{Transport: &signature.Verifier{Key: &s.Key.PublicKey}}
	if s.Client, err = client.NewClientWithResponses(s.URL, client.WithHTTPClient(verified), client.WithRequestEditorFn(signer.Edit)); err != nil {
		return err
	}
	bearer := client.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+s.AdminToken)
		return nil
	})
	if s.Ops, err = client.NewClientWithResponses(s.URL, bearer); err != nil {
		return err
	}
	return nil
}

// Close stops the server and releases its store and files.
func (s *Server) Close() error {
	if s.srv != nil {
		s.srv.Close()
	}
	var errs []error
	if s.svc != nil {
		errs = append(errs, s.svc.Close())
	}
	if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", s.dir, err))
	}
	return errors.Join(errs...)
}
