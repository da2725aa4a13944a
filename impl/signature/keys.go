package signature

import (
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
	der, err := decodeKey(text)
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
		return nil, fmt.Errorf("signature: private key: %w", err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("signature: private key is not RSA")
	}
	if rk.N.BitLen() < MinKeyBits {
		return nil, fmt.Errorf("signature: private key has %d bits, want at least %d", rk.N.BitLen(), MinKeyBits)
	}
	return rk, nil
}

// ParsePublicKey reads an X.509 SubjectPublicKeyInfo RSA public key, base64
// DER without armour or PEM ("PUBLIC KEY").
func ParsePublicKey(text []byte) (*rsa.PublicKey, error) {
	der, err := decodeKey(text)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("signature: public key: %w", err)
	}
	rk, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("signature: public key is not RSA")
	}
	if rk.N.BitLen() < MinKeyBits {
		return nil, fmt.Errorf("signature: public key has %d bits, want at least %d", rk.N.BitLen(), MinKeyBits)
	}
	return rk, nil
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

func decodeKey(text []byte) ([]byte, error) {
	if block, _ := pem.Decode(text); block != nil {
		return block.Bytes, nil
	}
	// Base64 as handed out, possibly wrapped over several lines.
	clean := strings.Join(strings.Fields(string(text)), "")
	der, err := base64.StdEncoding.DecodeString(clean)
	if err != nil || len(der) == 0 {
		return nil, errors.New("signature: key is neither PEM nor base64 DER")
	}
	return der, nil
}
