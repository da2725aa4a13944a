package signature

import (
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKnownAnswer checks Content and Sign against a vector made with
// OpenSSL (testdata/README.md says how).
func TestKnownAnswer(t *testing.T) {
	key, err := ParsePrivateKey(readFile(t, "kat_private.pem"))
	if err != nil {
		t.Fatal(err)
	}
	content := Content("POST", "/v2/pos/inquireOrderDetail", "client123", "2024-01-01T00:00:00+08:00", []byte(`{"requestOrderId":"x"}`))
	if want := readFile(t, "kat_content.txt"); !bytes.Equal(content, want) {
		t.Fatalf("content:\n%q\nwant\n%q", content, want)
	}
	sig, err := Sign(key, content)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(readFile(t, "kat_signature.b64")))
	if got := base64.StdEncoding.EncodeToString(sig); got != want {
		t.Fatalf("signature:\n%s\nwant (openssl)\n%s", got, want)
	}
	// The header escapes base64's '+', '/' and '=' as a URL query does.
	h := Header{Algorithm: Algorithm, KeyVersion: 1, Signature: sig}.String()
	wantHeader := "algorithm=RSA256, keyVersion=1, signature=" + strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(want)
	if h != wantHeader {
		t.Fatalf("header:\n%s\nwant\n%s", h, wantHeader)
	}
	pub, err := ParsePublicKey(readFile(t, "kat_public.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(pub, content, sig); err != nil {
		t.Fatal(err)
	}
}

func TestParseHeader(t *testing.T) {
	sig := []byte{0xfb, 0xff, 0xfe, 0x01} // base64 "+//+AQ==": every escapable character
	b64 := base64.StdEncoding.EncodeToString(sig)
	escaped := strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(b64)
	for name, tc := range map[string]struct {
		in      string
		version int
		err     error
	}{
		"docs style":              {"algorithm=RSA256, keyVersion=1, signature=" + escaped, 1, nil},
		"Go SDK style, no spaces": {"algorithm=RSA256,keyVersion=2,signature=" + escaped, 2, nil},
		"pairs in another order":  {"signature=" + escaped + ", algorithm=RSA256, keyVersion=3", 3, nil},
		"raw base64 with +":       {"algorithm=RSA256, keyVersion=1, signature=" + b64, 1, nil},
		"no keyVersion":           {"algorithm=RSA256, signature=" + escaped, 0, nil},
		"extra spaces":            {"  algorithm=RSA256 ,  keyVersion=1 ,signature=" + escaped + "  ", 1, nil},
		"other algorithm":         {"algorithm=RSA512, keyVersion=1, signature=" + escaped, 0, ErrAlgorithm},
		"no algorithm":            {"keyVersion=1, signature=" + escaped, 0, ErrMalformed},
		"no signature":            {"algorithm=RSA256, keyVersion=1", 0, ErrMalformed},
		"empty signature":         {"algorithm=RSA256, keyVersion=1, signature=", 0, ErrMalformed},
		"bad base64":              {"algorithm=RSA256, keyVersion=1, signature=%%%", 0, ErrMalformed},
		"bad escaping":            {"algorithm=RSA256, keyVersion=1, signature=abc%2", 0, ErrMalformed},
		"not base64":              {"algorithm=RSA256, keyVersion=1, signature=***", 0, ErrMalformed},
		"keyVersion not a number": {"algorithm=RSA256, keyVersion=one, signature=" + escaped, 0, ErrMalformed},
		"keyVersion zero":         {"algorithm=RSA256, keyVersion=0, signature=" + escaped, 0, ErrMalformed},
		"duplicate pair":          {"algorithm=RSA256, algorithm=RSA256, signature=" + escaped, 0, ErrMalformed},
		"unknown pair":            {"algorithm=RSA256, salt=1, signature=" + escaped, 0, ErrMalformed},
		"no equals":               {"algorithm, signature=" + escaped, 0, ErrMalformed},
		"empty":                   {"", 0, ErrMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			h, err := ParseHeader(tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err == nil && (h.KeyVersion != tc.version || !bytes.Equal(h.Signature, sig)) {
				t.Errorf("parsed %+v", h)
			}
		})
	}
}

func TestKeysRoundTrip(t *testing.T) {
	key, err := ParsePrivateKey(readFile(t, "kat_private.pem"))
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := MarshalPrivateKey(key)
	pub, _ := MarshalPublicKey(&key.PublicKey)
	// Base64 DER, also wrapped over lines as files often are.
	wrapped := pub[:40] + "\n" + pub[40:]
	if _, err := ParsePrivateKey([]byte(priv)); err != nil {
		t.Error(err)
	}
	if k, err := ParsePublicKey([]byte(wrapped)); err != nil || !k.Equal(&key.PublicKey) {
		t.Errorf("public key: %v", err)
	}
	if _, err := ParsePublicKey([]byte("not a key")); err == nil {
		t.Error("garbage accepted as a public key")
	}
	// A 1024-bit key as base64 DER, the form the platforms hand out.
	small, _ := pem.Decode(readFile(t, "small_public.pem"))
	if small == nil {
		t.Fatal("small_public.pem: no PEM block")
	}
	smallPub := base64.StdEncoding.EncodeToString(small.Bytes)
	if _, err := ParsePublicKey([]byte(smallPub)); err == nil {
		t.Error("1024-bit key accepted")
	} else if !strings.Contains(err.Error(), "1024 bits") {
		t.Errorf("1024-bit key refused for another reason: %v", err) // a broken fixture
	}
}

// TestSignerAndVerifyResponse signs a request as a partner would and
// verifies it as orderhub does, then the other way round for the response.
func TestSignerAndVerifyResponse(t *testing.T) {
	key, err := ParsePrivateKey(readFile(t, "kat_private.pem"))
	if err != nil {
		t.Fatal(err)
	}
	fixed := time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("", 8*3600))
	for _, epoch := range []bool{false, true} {
		s := &Signer{ClientID: "client123", KeyVersion: 1, Key: key, Now: func() time.Time { return fixed }, EpochMillis: epoch}
		req := httptest.NewRequest(http.MethodPost, "/v2/pos/inquireOrderDetail", strings.NewReader(`{"requestOrderId":"x"}`))
		if err := s.Edit(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		wantTime := "2024-01-01T00:00:00+08:00"
		if epoch {
			wantTime = "1704038400000"
		}
		if req.Header.Get("Request-Time") != wantTime || req.Header.Get("Client-Id") != "client123" {
			t.Fatalf("headers %v", req.Header)
		}
		h, err := ParseHeader(req.Header.Get("Signature"))
		if err != nil {
			t.Fatal(err)
		}
		body := new(bytes.Buffer)
		body.ReadFrom(req.Body)
		content := Content("POST", "/v2/pos/inquireOrderDetail", "client123", wantTime, body.Bytes())
		if err := Verify(&key.PublicKey, content, h.Signature); err != nil {
			t.Fatalf("epoch=%v: %v", epoch, err)
		}
		if !epoch && base64.StdEncoding.EncodeToString(h.Signature) != strings.TrimSpace(string(readFile(t, "kat_signature.b64"))) {
			t.Error("Signer's signature differs from the OpenSSL vector")
		}
	}

	// A response signed by orderhub verifies; any change does not.
	respBody := []byte(`{"result":{"resultCode":"SUCCESS","resultMessage":"success","resultStatus":"S"}}`)
	req := httptest.NewRequest(http.MethodPost, "/v2/pos/inquireOrderDetail", nil)
	sig, _ := Sign(key, Content("POST", "/v2/pos/inquireOrderDetail", "client123", "2024-01-01T00:00:01+08:00", respBody))
	res := &http.Response{Request: req, Header: http.Header{}}
	res.Header.Set("Client-Id", "client123")
	res.Header.Set("Response-Time", "2024-01-01T00:00:01+08:00")
	res.Header.Set("Signature", Header{Algorithm: Algorithm, KeyVersion: 1, Signature: sig}.String())
	if err := VerifyResponse(res, respBody, &key.PublicKey); err != nil {
		t.Fatal(err)
	}
	if err := VerifyResponse(res, append([]byte(" "), respBody...), &key.PublicKey); !errors.Is(err, ErrMismatch) {
		t.Errorf("tampered body: %v", err)
	}
	res.Header.Set("Response-Time", "2024-01-01T00:00:02+08:00")
	if err := VerifyResponse(res, respBody, &key.PublicKey); !errors.Is(err, ErrMismatch) {
		t.Errorf("tampered time: %v", err)
	}
}
