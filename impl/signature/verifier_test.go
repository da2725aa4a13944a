package signature

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestVerifier: a call whose answer orderhub signed returns it readable; an
// unsigned answer, or one whose body changed on the way, fails the call.
func TestVerifier(t *testing.T) {
	key := katKey(t)
	const body = `{"result":{"resultCode":"SUCCESS","resultMessage":"success","resultStatus":"S"}}`
	for _, tc := range []struct {
		name    string
		answer  func(w http.ResponseWriter, r *http.Request)
		wantErr bool
	}{
		{"signed", func(w http.ResponseWriter, r *http.Request) {
			if _, err := (Sealer{Key: key, KeyVersion: 1}).Seal(w.Header(), r.Method, r.URL.EscapedPath(), "c", []byte(body), nil); err != nil {
				t.Error(err)
			}
			_, _ = io.WriteString(w, body)
		}, false},
		{"unsigned", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, body) }, true},
		{"changed on the way", func(w http.ResponseWriter, r *http.Request) {
			if _, err := (Sealer{Key: key, KeyVersion: 1}).Seal(w.Header(), r.Method, r.URL.EscapedPath(), "c", []byte(body), nil); err != nil {
				t.Error(err)
			}
			_, _ = io.WriteString(w, strings.Replace(body, `"S"`, `"F"`, 1))
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(tc.answer))
			defer srv.Close()
			hc := &http.Client{Transport: &Verifier{Key: &key.PublicKey}}
			res, err := hc.Post(srv.URL+"/v2/pos/inquireOrderDetail", "application/json", strings.NewReader(`{}`))
			if tc.wantErr {
				if err == nil {
					res.Body.Close()
					t.Fatal("the call succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(got) != body {
				t.Errorf("body %q, want %q", got, body)
			}
		})
	}
}
