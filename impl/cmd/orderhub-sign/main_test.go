package main

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orderhub/orderhub/impl/signature"
	"github.com/orderhub/orderhub/tests/testkit"
)

// TestPrintsAVerifiableRequest signs a body and checks the printed Signature
// verifies over the printed Request-Time and the exact body.
func TestPrintsAVerifiableRequest(t *testing.T) {
	key := testkit.Key(t, 1)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	file := filepath.Join(t.TempDir(), "k.pem")
	os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)

	body := `{"requestOrderId":"a \"quoted\" id"}`
	var out strings.Builder
	if err := run([]string{"-key", file, "-client", "c1", "-path", "/v2/pos/inquireOrderDetail", "-body", body}, &out); err != nil {
		t.Fatal(err)
	}
	headers := map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if v, ok := strings.CutPrefix(line, `header = "`); ok {
			k, val, _ := strings.Cut(strings.TrimSuffix(v, `"`), ": ")
			headers[k] = strings.ReplaceAll(val, `\"`, `"`)
		}
	}
	if !strings.Contains(out.String(), `data-binary = "{\"requestOrderId\":\"a \\\"quoted\\\" id\"}"`) {
		t.Errorf("body not escaped for curl:\n%s", out.String())
	}
	h, err := signature.ParseHeader(headers["Signature"])
	if err != nil {
		t.Fatal(err)
	}
	content := signature.Content("POST", "/v2/pos/inquireOrderDetail", "c1", headers["Request-Time"], []byte(body))
	if err := signature.Verify(&key.PublicKey, content, h.Signature); err != nil {
		t.Errorf("printed signature does not verify: %v\n%s", err, out.String())
	}
	if err := run([]string{"-key", file}, &out); err == nil {
		t.Error("missing -path and -body accepted")
	}
}
