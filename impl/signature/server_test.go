package signature

import (
	"crypto/rsa"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// katKey is the known-answer test key: a real 2048-bit key that costs no
// generation.
func katKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	key, err := ParsePrivateKey(readFile(t, "kat_private.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestFormatTime(t *testing.T) {
	at := time.Date(2024, 1, 1, 0, 0, 0, 500, time.FixedZone("", 8*3600))
	if got, want := FormatTime(at), "2024-01-01T00:00:00+08:00"; got != want {
		t.Errorf("FormatTime = %q, want %q", got, want)
	}
	if got, want := FormatTime(at.UTC()), "2023-12-31T16:00:00Z"; got != want {
		t.Errorf("FormatTime(UTC) = %q, want %q", got, want)
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2019, 4, 4, 6, 38, 56, 0, time.UTC)
	for _, v := range []string{"2019-04-04T12:08:56+05:30", "2019-04-04T06:38:56Z", "1554359936000", "2019-04-04T06:38:56.000Z"} {
		got, err := ParseTime(v)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v", v, got, err)
		}
	}
	for _, v := range []string{"", "yesterday", "2019-04-04 06:38:56", "2019-04-04T06:38:56"} {
		_, err := ParseTime(v)
		if err == nil {
			t.Errorf("%q accepted", v)
		} else if err.Error() != "Request-Time is neither ISO 8601 with offset nor epoch milliseconds" {
			t.Errorf("%q: error %q", v, err)
		}
	}
}

// FuzzParseTime feeds ParseTime the Request-Time header. It must never
// panic; an accepted value is epoch milliseconds exactly when it is an
// integer, and otherwise an RFC 3339 time that survives formatting and
// parsing again.
func FuzzParseTime(f *testing.F) {
	now := time.Date(2024, 6, 1, 8, 15, 0, 0, time.UTC)
	const window = 5 * time.Minute
	for _, s := range []string{
		"2019-04-04T12:08:56+05:30", "2024-06-01T08:15:00Z", "2024-06-01T08:15:00.123456789-07:00",
		"1700000000000", "-1", "0", "9223372036854775807", "99999999999999999999", "+1700000000000",
		"2024-06-01 08:15:00Z", "2024-06-01T08:15:00", "2024-02-30T00:00:00Z", "2024-06-01T24:00:00Z",
		"yesterday", "", " 1700000000000",
		// The corpus of the former httpapi FuzzParseRequestTime.
		"1.7e12", "2024-06-01t08:15:00z", "-9223372036854775808", "2024-06-01T08:15:00+23:59",
		"9999-12-31T23:59:59.999999999Z", "0001-01-01T00:00:00Z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		at, err := ParseTime(v)
		if err != nil {
			return
		}
		if ms, perr := strconv.ParseInt(v, 10, 64); perr == nil {
			if !at.Equal(time.UnixMilli(ms)) {
				t.Fatalf("%q read as %v, want epoch ms %d", v, at, ms)
			}
			return
		}
		again, err := time.Parse(time.RFC3339Nano, at.Format(time.RFC3339Nano))
		if err != nil || !again.Equal(at) {
			t.Fatalf("%q read as %v, which does not survive RFC 3339: %v", v, at, err)
		}
		// The window check must see the real distance, saturated or not.
		if d := now.Sub(at); (d <= window && d >= -window) != (at.After(now.Add(-window-1)) && at.Before(now.Add(window+1))) {
			t.Fatalf("%q: distance %v disagrees with the time %v", v, d, at)
		}
	})
}

func TestVerifyRequest(t *testing.T) {
	key := katKey(t)
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("", 8*3600))
	const (
		window = 5 * time.Minute
		path   = "/v2/pos/inquireOrderDetail"
		body   = `{"requestOrderId":"x"}`
	)
	for _, tc := range []struct {
		name    string
		version int           // the Signer's KeyVersion
		epoch   bool          // the Signer sends epoch milliseconds
		skew    time.Duration // the Signer's clock minus the server's
		edit    func(*http.Request)
		body    string // what the server read, when not body
		client  string // the caller's id as the server knows it, when not the Signer's
		want    error
		text    string // in the error's message
		lookup  []int  // the key versions looked up
	}{
		{name: "ISO 8601", version: 1, lookup: []int{1}},
		{name: "epoch milliseconds", version: 1, epoch: true, lookup: []int{1}},
		{name: "no keyVersion selects the latest", version: 0, lookup: []int{0}},
		{name: "at the window's old edge", version: 1, skew: -window, lookup: []int{1}},
		{name: "at the window's new edge", version: 1, epoch: true, skew: window, lookup: []int{1}},
		{name: "tampered body", version: 1, body: body + " ", want: ErrMismatch, lookup: []int{1}},
		{name: "other caller", version: 1, client: "client456", want: ErrMismatch, lookup: []int{1}},
		{name: "Request-Time rewritten as the same instant", version: 1, edit: func(r *http.Request) {
			r.Header.Set("Request-Time", FormatTime(now.UTC()))
		}, want: ErrMismatch, lookup: []int{1}},
		{name: "unknown key version", version: 2, want: ErrUnknownKey, text: "keyVersion 2", lookup: []int{2}},
		{name: "6 minutes old", version: 1, skew: -6 * time.Minute, want: ErrRequestTime, text: "Request-Time is 6m0s away from the server clock", lookup: []int{1}},
		{name: "6 minutes ahead", version: 1, epoch: true, skew: 6*time.Minute + 400*time.Millisecond, want: ErrRequestTime, text: "Request-Time is -6m0s away from the server clock", lookup: []int{1}},
		{name: "unreadable Request-Time", version: 1, edit: func(r *http.Request) {
			r.Header.Set("Request-Time", "yesterday")
		}, want: ErrRequestTime, text: "Request-Time is neither ISO 8601 with offset nor epoch milliseconds", lookup: []int{1}},
		{name: "missing Request-Time", version: 1, edit: func(r *http.Request) {
			r.Header.Del("Request-Time")
		}, want: ErrRequestTime, lookup: []int{1}},
		{name: "missing Signature", version: 1, edit: func(r *http.Request) {
			r.Header.Del("Signature")
		}, want: ErrMalformed},
		{name: "other algorithm", version: 1, edit: func(r *http.Request) {
			r.Header.Set("Signature", strings.Replace(r.Header.Get("Signature"), "RSA256", "RSA512", 1))
		}, want: ErrAlgorithm},
		// The order of the checks: header, key, time, signature.
		{name: "bad header before unknown key", version: 2, edit: func(r *http.Request) {
			r.Header.Set("Signature", r.Header.Get("Signature")+", salt=1")
		}, want: ErrMalformed},
		{name: "unknown key before bad time", version: 2, skew: time.Hour, want: ErrUnknownKey, lookup: []int{2}},
		{name: "bad time before bad signature", version: 1, skew: time.Hour, body: "{}", want: ErrRequestTime, lookup: []int{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Signer{ClientID: "client123", KeyVersion: tc.version, Key: key, EpochMillis: tc.epoch,
				Now: func() time.Time { return now.Add(tc.skew) }}
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
			if err := s.Edit(t.Context(), req); err != nil {
				t.Fatal(err)
			}
			if tc.edit != nil {
				tc.edit(req)
			}
			got, client := body, s.ClientID
			if tc.body != "" {
				got = tc.body
			}
			if tc.client != "" {
				client = tc.client
			}
			var asked []int
			keys := func(v int) (*rsa.PublicKey, bool) {
				asked = append(asked, v)
				return &key.PublicKey, v <= 1
			}
			err := VerifyRequest(req, client, []byte(got), keys, window, now)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if tc.text != "" && !strings.Contains(err.Error(), tc.text) {
				t.Errorf("err %q does not say %q", err, tc.text)
			}
			if !slices.Equal(asked, tc.lookup) {
				t.Errorf("looked up versions %v, want %v", asked, tc.lookup)
			}
		})
	}
}

func TestSealAndVerifyResponse(t *testing.T) {
	key := katKey(t)
	at := time.Date(2024, 1, 1, 0, 0, 1, 0, time.FixedZone("", 8*3600))
	body := []byte(`{"result":{"resultCode":"SUCCESS","resultMessage":"success","resultStatus":"S"}}`)
	for _, tc := range []struct {
		name     string
		version  int
		path     string // as received; Seal is given its escaped form
		clientID string
	}{
		{"echoes Client-Id", 1, "/v2/pos/inquireOrderDetail", "client123"},
		{"removes Client-Id", 1, "/v2/pos/inquireOrderDetail", ""},
		{"other key version", 3, "/v2/pos/inquireOrderDetail", "client123"},
		{"escaped path", 1, "/v2/pos/a%20b%2Fc", "client123"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, tc.path, nil)
			h := http.Header{}
			h.Set("Client-Id", "stale")
			h.Set("Content-Type", "application/json")
			s := Sealer{Key: key, KeyVersion: tc.version, Now: func() time.Time { return at }}
			if _, err := s.Seal(h, req.Method, req.URL.EscapedPath(), tc.clientID, body, nil); err != nil {
				t.Fatal(err)
			}
			if got := h.Get("Response-Time"); got != "2024-01-01T00:00:01+08:00" {
				t.Errorf("Response-Time %q", got)
			}
			if got, ok := h["Client-Id"]; tc.clientID == "" && ok || tc.clientID != "" && (len(got) != 1 || got[0] != tc.clientID) {
				t.Errorf("Client-Id %q, want %q", got, tc.clientID)
			}
			if h.Get("Content-Type") != "application/json" {
				t.Error("Seal touched another header")
			}
			sig := h.Get("Signature")
			if !wireHeader.MatchString(sig) || !strings.HasPrefix(sig, "algorithm=RSA256, keyVersion="+strconv.Itoa(tc.version)+", signature=") {
				t.Errorf("Signature header %q is not the wire form", sig)
			}
			res := &http.Response{Request: req, Header: h}
			if err := VerifyResponse(res, body, &key.PublicKey); err != nil {
				t.Fatal(err)
			}
			if err := VerifyResponse(res, append(body, ' '), &key.PublicKey); !errors.Is(err, ErrMismatch) {
				t.Errorf("tampered body: %v", err)
			}
		})
	}

	// The default clock is the real one.
	h := http.Header{}
	before := time.Now().Truncate(time.Second)
	if _, err := (Sealer{Key: key, KeyVersion: 1}).Seal(h, http.MethodPost, "/x", "c", nil, nil); err != nil {
		t.Fatal(err)
	}
	if ts, err := time.Parse(time.RFC3339, h.Get("Response-Time")); err != nil || ts.Before(before) || ts.After(time.Now()) {
		t.Errorf("Response-Time %q with the default clock: %v", h.Get("Response-Time"), err)
	}

	// A key that cannot sign leaves the headers as they were.
	h = http.Header{"Client-Id": {"stale"}}
	bad := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: big.NewInt(0), E: 65537}}
	_, err := Sealer{Key: bad, KeyVersion: 1, Now: func() time.Time { return at }}.Seal(h, http.MethodPost, "/x", "c", body, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "signing the response: ") {
		t.Errorf("bad key: %v", err)
	}
	if len(h) != 1 || h.Get("Client-Id") != "stale" {
		t.Errorf("headers after a failed Seal: %v", h)
	}
}

// TestSealMemo: identical content within one Response-Time second is signed
// once and the signature reused; a new second or other content signs anew;
// allow is asked only before RSA work, and a refusal leaves no Signature.
func TestSealMemo(t *testing.T) {
	key := katKey(t)
	at := time.Date(2024, 6, 1, 8, 15, 0, 0, time.UTC)
	s := Sealer{Key: key, KeyVersion: 1, Now: func() time.Time { return at }, Memo: &Memo{}}
	asked := 0
	allow := func() bool { asked++; return asked == 1 }
	seal := func(body string) (Sealed, http.Header) {
		t.Helper()
		h := http.Header{}
		how, err := s.Seal(h, http.MethodPost, "/x", "c", []byte(body), allow)
		if err != nil {
			t.Fatal(err)
		}
		return how, h
	}
	how1, h1 := seal(`{"a":1}`)
	how2, h2 := seal(`{"a":1}`)
	if how1 != Signed || how2 != Reused || h1.Get("Signature") != h2.Get("Signature") {
		t.Errorf("same content, same second: %v then %v, signatures equal %v", how1, how2, h1.Get("Signature") == h2.Get("Signature"))
	}
	if how, h := seal(`{"a":2}`); how != Withheld || h.Get("Signature") != "" || h.Get("Client-Id") != "c" || h.Get("Response-Time") == "" {
		t.Errorf("other content, allow refusing: %v %v", how, h)
	}
	at = at.Add(time.Second)
	asked = 0
	if how, h := seal(`{"a":1}`); how != Signed || h.Get("Signature") == h1.Get("Signature") {
		t.Errorf("the next second: %v, same signature %v", how, h.Get("Signature") == h1.Get("Signature"))
	}
	if asked != 1 {
		t.Errorf("allow asked %d times in the new second, want once (reuse asks nothing)", asked)
	}
}
