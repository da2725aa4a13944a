package signature

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// MinKeyBits is the smallest RSA key accepted.
const MinKeyBits = 2048

// ParsePrivateKey reads a PKCS#8 RSA private key, as the platforms hand
// them out (base64 DER without armour) or as PEM ("PRIVATE KEY"; PKCS#1
// "RSA PRIVATE KEY" too).
func ParsePrivateKey(text []byte) (*rsa.PrivateKey, error) {
	der, pemType, err := decodeKey(text)
	if err != nil {
		return nil, err
	}
	var key any
	if key, err = x509.ParsePKCS8PrivateKey(der); err != nil {
		if k1, err1 := x509.ParsePKCS1PrivateKey(der); err1 == nil {
			key, err = k1, nil
		}
	}
	if err != nil {
		// The ASN.1 error would describe DER structures; say what the text
		// is instead, above all when it is the other half of the pair.
		return nil, notThe("private", pemType, der)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s private key; an RSA key is needed", algorithm(key))
	}
	if rk.N.BitLen() < MinKeyBits {
		return nil, fmt.Errorf("the private key has %d bits; at least %d are needed", rk.N.BitLen(), MinKeyBits)
	}
	return rk, nil
}

// ParsePublicKey reads an X.509 SubjectPublicKeyInfo RSA public key, base64
// DER without armour or PEM ("PUBLIC KEY").
func ParsePublicKey(text []byte) (*rsa.PublicKey, error) {
	der, pemType, err := decodeKey(text)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, notThe("public", pemType, der)
	}
	rk, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s public key; an RSA key is needed", algorithm(key))
	}
	if rk.N.BitLen() < MinKeyBits {
		return nil, fmt.Errorf("the public key has %d bits; at least %d are needed", rk.N.BitLen(), MinKeyBits)
	}
	return rk, nil
}

// notThe says what a key text that did not parse as the wanted half
// ("private" or "public") is, as far as can be told, without quoting it.
func notThe(want, pemType string, der []byte) error {
	is := describe(der)
	switch {
	case pemType == "ENCRYPTED PRIVATE KEY" && want == "private":
		return errors.New("an encrypted private key; an unencrypted one is needed")
	case pemType == "ENCRYPTED PRIVATE KEY":
		is = "an encrypted private key"
	case want == "public" && is == "a PKCS#1 public key":
		return errors.New(`a PKCS#1 public key ("RSA PUBLIC KEY"); the X.509 form ("PUBLIC KEY") is needed`)
	case is == "" && pemType != "":
		is = fmt.Sprintf("a PEM %q block without a key in it", pemType)
	case is == "":
		is = "base64 without a key in it"
	}
	if want == "private" {
		return fmt.Errorf("%s; an RSA private key (PKCS#8 or PKCS#1) is needed", is)
	}
	return fmt.Errorf("%s; an RSA public key (X.509 SubjectPublicKeyInfo) is needed", is)
}

// describe names what DER holds, "" when it is none of the usual forms.
func describe(der []byte) string {
	if _, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return "a private key"
	}
	if _, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return "a private key"
	}
	if _, err := x509.ParseECPrivateKey(der); err == nil {
		return "an EC private key"
	}
	if _, err := x509.ParsePKIXPublicKey(der); err == nil {
		return "a public key"
	}
	if _, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return "a PKCS#1 public key"
	}
	if _, err := x509.ParseCertificate(der); err == nil {
		return "a certificate"
	}
	return ""
}

// algorithm names a parsed key's algorithm, for "not RSA" errors.
func algorithm(key any) string {
	switch key.(type) {
	case *ecdsa.PrivateKey, *ecdsa.PublicKey:
		return "an ECDSA"
	case ed25519.PrivateKey, ed25519.PublicKey:
		return "an Ed25519"
	case *ecdh.PrivateKey, *ecdh.PublicKey:
		return "an ECDH"
	}
	return "a non-RSA"
}

// MarshalPrivateKey returns key as base64 PKCS#8 DER, the platforms' form.
func MarshalPrivateKey(key *rsa.PrivateKey) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(der), nil
}

// MarshalPublicKey returns key as base64 X.509 SubjectPublicKeyInfo DER.
func MarshalPublicKey(key *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(der), nil
}

// decodeKey returns a key text's DER and, for PEM, the block's type.
func decodeKey(text []byte) (der []byte, pemType string, err error) {
	if block, _ := pem.Decode(text); block != nil {
		return block.Bytes, block.Type, nil
	}
	// Base64 as handed out, possibly wrapped over several lines.
	clean := strings.Join(strings.Fields(string(text)), "")
	der, err = base64.StdEncoding.DecodeString(clean)
	if err != nil || len(der) == 0 {
		return nil, "", errors.New("not a key: neither PEM nor base64 DER")
	}
	return der, "", nil
}
