package signature

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"regexp"
	"testing"
)

// wireHeader is the one form String writes when it names a key version:
// the form partner SDKs read (tests/conformance checks the same).
var wireHeader = regexp.MustCompile(`^algorithm=RSA256, keyVersion=[1-9][0-9]*, signature=[A-Za-z0-9%]+$`)

// FuzzParseHeader feeds ParseHeader what a caller may put in the Signature
// header. It must never panic; it fails only with ErrMalformed or
// ErrAlgorithm; what it accepts is RSA256 with a non-empty signature, and
// renders (String) to the wire form, which parses back to the same header;
// and a parsed signature never verifies over content it was not made for.
func FuzzParseHeader(f *testing.F) {
	pub, err := ParsePublicKey(readFileF(f, "kat_public.pem"))
	if err != nil {
		f.Fatal(err)
	}
	kat := string(bytes.TrimSpace(readFileF(f, "kat_signature.b64")))
	for _, s := range []string{
		"algorithm=RSA256, keyVersion=1, signature=" + kat,
		"algorithm=RSA256,keyVersion=1,signature=" + kat, // Ant's Go SDK: no spaces
		"signature=" + kat + ", algorithm=RSA256",        // any order, no keyVersion
		"algorithm=RSA256, keyVersion=2, signature=a%2Bb%2F%3D%3D",
		"algorithm=RSA256, keyVersion=1, signature=a+b/", // raw '+' stays '+'
		"algorithm=RSA256, keyVersion=+1, signature=YWJj",
		"algorithm=RSA256, keyVersion=0, signature=YWJj",
		"algorithm=RSA256, keyVersion=-1, signature=YWJj",
		"algorithm=RSA256, keyVersion=99999999999999999999, signature=YWJj",
		"algorithm=RSA256, keyVersion=1, keyVersion=2, signature=YWJj",
		"algorithm=RSA256, signature=%ZZ",
		"algorithm=RSA256, signature=",
		"algorithm=RSA1, keyVersion=1, signature=YWJj",
		"algorithm=rsa256, signature=YWJj",
		"algorithm=RSA256, signature=YWJj,",
		"  algorithm = RSA256 ,signature=YWJj",
		"algorithm=RSA256, signature=YW\nJj",
		"",
		",",
		"=",
		"signature",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h, err := ParseHeader(v)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrAlgorithm) {
				t.Fatalf("ParseHeader(%q): error %v is neither ErrMalformed nor ErrAlgorithm", v, err)
			}
			return
		}
		if h.Algorithm != Algorithm || len(h.Signature) == 0 || h.KeyVersion < 0 {
			t.Fatalf("ParseHeader(%q) accepted %+v", v, h)
		}
		s := h.String()
		if h.KeyVersion > 0 && !wireHeader.MatchString(s) {
			t.Fatalf("String() = %q is not the wire form", s)
		}
		again, err := ParseHeader(s)
		if err != nil {
			t.Fatalf("ParseHeader(%q) = %+v renders to %q, which fails: %v", v, h, s, err)
		}
		if again.Algorithm != h.Algorithm || again.KeyVersion != h.KeyVersion || !bytes.Equal(again.Signature, h.Signature) {
			t.Fatalf("ParseHeader(%q) = %+v renders to %q, which parses to %+v", v, h, s, again)
		}
		if Verify(pub, []byte("content the fuzzer did not sign"), h.Signature) == nil {
			t.Fatalf("signature of %q verifies", v)
		}
	})
}

// FuzzParsePublicKey feeds ParsePublicKey the key text a partner hands
// over (base64 DER or PEM). It must never panic; an accepted key has at
// least MinKeyBits and survives MarshalPublicKey and parsing again.
func FuzzParsePublicKey(f *testing.F) {
	pemKey := readFileF(f, "kat_public.pem")
	k, err := ParsePublicKey(pemKey)
	if err != nil {
		f.Fatal(err)
	}
	b64, err := MarshalPublicKey(k)
	if err != nil {
		f.Fatal(err)
	}
	der, _ := base64.StdEncoding.DecodeString(b64)
	f.Add(pemKey)
	f.Add([]byte(b64))
	f.Add([]byte(b64[:64] + "\n  " + b64[64:] + "\n")) // wrapped over lines
	f.Add(der)                                         // raw DER is not a form we take
	f.Add(readFileF(f, "kat_private.pem"))             // the wrong half
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte("not a key"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, text []byte) {
		k, err := ParsePublicKey(text)
		if err != nil {
			return
		}
		if k.N.BitLen() < MinKeyBits {
			t.Fatalf("accepted a %d-bit key", k.N.BitLen())
		}
		out, err := MarshalPublicKey(k)
		if err != nil {
			t.Fatalf("MarshalPublicKey of an accepted key: %v", err)
		}
		again, err := ParsePublicKey([]byte(out))
		if err != nil || !again.Equal(k) {
			t.Fatalf("accepted key does not survive marshalling: %v", err)
		}
	})
}

func readFileF(f *testing.F, name string) []byte {
	f.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		f.Fatal(err)
	}
	return b
}
