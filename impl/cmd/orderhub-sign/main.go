// Command orderhub-sign signs one partner API request and prints it as a
// curl config (headers and exact body), for trying orderhub from a shell:
//
//	go run ./impl/cmd/orderhub-sign -path /v2/pos/inquireOrderDetail \
//	  -body '{"requestOrderId":"pds_1"}' | curl -K - localhost:8080/v2/pos/inquireOrderDetail
//
// The defaults are the development client that `make run` generates.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/orderhub/orderhub/impl/signature"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "orderhub-sign:", err)
		os.Exit(2)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("orderhub-sign", flag.ContinueOnError)
	keyFile := fs.String("key", ".orderhub/dev/dev-client-private.pem", "the caller's private key (PKCS#8, PEM or base64 DER)")
	clientID := fs.String("client", "dev-client", "the caller's Client-Id")
	version := fs.Int("key-version", 1, "the key's version (0 leaves keyVersion out)")
	path := fs.String("path", "", "the API path, e.g. /v2/pos/inquireOrderDetail")
	body := fs.String("body", "", "the exact JSON body")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" || *body == "" {
		return fmt.Errorf("-path and -body are required")
	}
	text, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	key, err := signature.ParsePrivateKey(text)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, *path, strings.NewReader(*body))
	if err != nil {
		return err
	}
	s := &signature.Signer{ClientID: *clientID, KeyVersion: *version, Key: key}
	if err := s.Edit(context.Background(), req); err != nil {
		return err
	}
	q := func(v string) string { return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) }
	fmt.Fprintf(out, "request = \"POST\"\n")
	fmt.Fprintf(out, "header = \"Content-Type: application/json; charset=UTF-8\"\n")
	for _, h := range []string{"Client-Id", "Request-Time", "Signature"} {
		fmt.Fprintf(out, "header = \"%s: %s\"\n", h, q(req.Header.Get(h)))
	}
	fmt.Fprintf(out, "data-binary = \"%s\"\n", q(*body))
	return nil
}
