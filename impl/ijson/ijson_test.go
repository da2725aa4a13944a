package ijson_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/orderhub/orderhub/impl/ijson"
)

// TestAmbiguity checks what makes a valid text ambiguous: member names twice
// in one object, at any depth, and unpaired surrogate escapes.
func TestAmbiguity(t *testing.T) {
	dup := func(path ...string) *ijson.Problem {
		return &ijson.Problem{Path: path, Reason: "appears more than once"}
	}
	surrogate := &ijson.Problem{Reason: "a string holds an unpaired surrogate escape"}
	for _, tc := range []struct {
		body string
		want *ijson.Problem
	}{
		{`{"a":1,"b":2}`, nil},
		{`{"a":1,"a":1}`, dup("a")},
		{`{"a":1,"\u0061":2}`, dup("a")},   // the same name, escaped
		{`{"a":1,"A":2}`, nil},             // names are case-sensitive
		{`{"x":{"a":1},"y":{"a":1}}`, nil}, // siblings may share names
		{`{"x":{"a":{"a":{"a":1}}}}`, nil},
		{`{"x":[{"a":1},{"a":1,"b":[],"a":2}]}`, dup("x", "a")},
		{`[{"a":1},{"a":2}]`, nil},
		{`[[{"k":1,"k":2}]]`, dup("k")},
		{`{"x":{"y":1},"x":2}`, dup("x")},
		{`{"n":1e400,"a":1,"a":2}`, dup("a")}, // past a number no float64 holds
		{`{"x":{},"y":[],"z":{"x":{},"y":[]}}`, nil},
		{`{"x":{"y":{"z":1,"z":2}}}`, dup("x", "y", "z")},
		{`"a"`, nil},
		{`null`, nil},
		{``, nil},
		{`{"s":"\ud83d\ude00"}`, nil}, // a pair
		{`{"s":"\uD83D\uDE00"}`, nil},
		{`{"s":"\ud800"}`, surrogate},
		{`{"s":"\udc00\ud800"}`, surrogate}, // low then high
		{`{"s":"\ud800\u0041"}`, surrogate},
		{`{"s":"\ud800\n"}`, surrogate},
		{`{"\udfff":1}`, surrogate},
		{`{"s":"\\ud800"}`, nil}, // an escaped backslash, then text
		{`{"s":"\\\ud83d\ude00"}`, nil},
		{`{"s":"\\\ud800"}`, surrogate},
		{`{"s":"\u00e9\u20ac"}`, nil},
		{`{"a":1,"a":"\ud800"}`, surrogate}, // surrogates are checked first
	} {
		if got := ijson.Ambiguity([]byte(tc.body)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Ambiguity(%s) = %#v, want %#v", tc.body, got, tc.want)
		}
	}
}

func TestProblemError(t *testing.T) {
	for _, tc := range []struct {
		p    ijson.Problem
		want string
	}{
		{ijson.Problem{Path: []string{"x", "a"}, Reason: "appears more than once"}, "x.a: appears more than once"},
		{ijson.Problem{Reason: "a string holds an unpaired surrogate escape"}, "a string holds an unpaired surrogate escape"},
	} {
		if got := tc.p.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

// TestNumbers checks that numbers no float64 holds are refused, and nothing
// else.
func TestNumbers(t *testing.T) {
	bad := func(path ...string) *ijson.Problem {
		return &ijson.Problem{Path: path, Reason: "holds a number a float64 cannot hold"}
	}
	for _, tc := range []struct {
		body string
		want *ijson.Problem
	}{
		{`{"a":1e400}`, bad("a")},
		{`{"a":-1e400}`, bad("a")},
		{`{"a":[{"b":1e999}]}`, bad("a", "b")},
		{`{"x":{"y":[1,2,[3,1E+309]]}}`, bad("x", "y")},
		{`1e400`, bad()},
		{`[1e400]`, bad()},
		{`{"a":1,"b":2e400,"c":3e400}`, bad("b")}, // the first one
		{`{"a":123456789012345678901234567890123456789}`, nil},
		{`{"a":-123456789012345678901234567890123456789}`, nil},
		{`{"a":1.7976931348623157e308}`, nil}, // the largest float64
		{`{"a":1e-400}`, nil},                 // rounds to zero: not an overflow
		{`{"a":1.5}`, nil},
		{`{"a":0}`, nil},
		{`{"a":-0}`, nil},
		{`{"a":"1e400","1e400":true,"b":null}`, nil}, // strings, not numbers
		{`{}`, nil},
		{``, nil},
	} {
		if got := ijson.Numbers([]byte(tc.body)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Numbers(%s) = %#v, want %#v", tc.body, got, tc.want)
		}
	}
}

func TestCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{` { "b" : 1 , "a" : [ 2 , { "d" : 1e400 , "c" : 0.10 } ] } `, `{"a":[2,{"c":0.10,"d":1e400}],"b":1}`},
		{`{"n":123456789012345678901234567890123456789}`, `{"n":123456789012345678901234567890123456789}`},
		{`{"s":"<a href=\"x\">&amp;</a>"}`, `{"s":"\u003ca href=\"x\"\u003e\u0026amp;\u003c/a\u003e"}`},
		{`{"s":"\/\u00e9é\u2028"}`, `{"s":"/éé\u2028"}`},
		{`{"a":1,"a":2}`, `{"a":2}`}, // last wins, as encoding/json reads it
		{`"x"`, `"x"`},
		{`null`, `null`},
	} {
		got, err := ijson.Canonical([]byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("Canonical(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{``, ` `, `{`, `{"a":1} {"b":2}`, `1 2`, `{} x`} {
		if got, err := ijson.Canonical([]byte(in)); err == nil {
			t.Errorf("Canonical(%q) = %s, want an error", in, got)
		}
	}
}

func TestFingerprint(t *testing.T) {
	fp := func(s string) string {
		t.Helper()
		f, err := ijson.Fingerprint([]byte(s))
		if err != nil {
			t.Fatalf("Fingerprint(%s): %v", s, err)
		}
		return f
	}
	base := fp(`{"requestId":"r1","order":{"status":"READY","n":10,"tags":["a","b"]}}`)
	if len(base) != 64 || strings.Trim(base, "0123456789abcdef") != "" {
		t.Errorf("fingerprint %q is not 64 hex digits", base)
	}
	for _, same := range []string{
		`{"order":{"tags":["a","b"],"n":10,"status":"READY"},"requestId":"r1"}`,
		"{\n  \"requestId\" : \"r1\",\n  \"order\" : { \"n\" : 10, \"status\" : \"READY\", \"tags\" : [ \"a\" , \"b\" ] }\n}\n",
		`{"requestId":"\u0072\u0031","order":{"status":"READY","n":10,"tags":["a","b"]}}`,
	} {
		if got := fp(same); got != base {
			t.Errorf("Fingerprint(%s) = %s, want %s (the same content)", same, got, base)
		}
	}
	for _, other := range []string{
		`{"requestId":"r2","order":{"status":"READY","n":10,"tags":["a","b"]}}`,
		`{"requestId":"r1","order":{"status":"READY","n":10.0,"tags":["a","b"]}}`, // numbers as written
		`{"requestId":"r1","order":{"status":"READY","n":10,"tags":["b","a"]}}`,   // arrays keep their order
		`{"requestId":"r1","order":{"status":"READY","n":10,"tags":["a","b"],"x":null}}`,
	} {
		if got := fp(other); got == base {
			t.Errorf("Fingerprint(%s) = %s, the same as different content", other, got)
		}
	}
	if _, err := ijson.Fingerprint(nil); err == nil {
		t.Error("Fingerprint(nil): want an error")
	}
}

// referenceIn and referenceOut are how extendInfo was taken in and given out
// before Object: the raw member compacted, then decoded with numbers as
// written into a map and encoded again.
func referenceIn(body []byte) (json.RawMessage, error) {
	var b struct {
		ExtendInfo json.RawMessage `json:"extendInfo"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, err
	}
	if len(b.ExtendInfo) == 0 || string(b.ExtendInfo) == "null" {
		return nil, nil
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, b.ExtendInfo); err != nil {
		return nil, err
	}
	return compact.Bytes(), nil
}

// referenceKept is the form Object keeps: decoded with numbers as written,
// encoded again with members sorted and no HTML escapes.
func referenceKept(t *testing.T, raw json.RawMessage) []byte {
	t.Helper()
	info, err := referenceOut(raw)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	e := json.NewEncoder(&out)
	e.SetEscapeHTML(false)
	if err := e.Encode(info); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n"))
}

func referenceOut(raw json.RawMessage) (*map[string]any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var info map[string]any
	if err := d.Decode(&info); err != nil {
		return nil, err
	}
	return &info, nil
}

type withObject struct {
	ID         string        `json:"id"`
	ExtendInfo *ijson.Object `json:"extendInfo,omitempty"`
}

type withMap struct {
	ID         string          `json:"id"`
	ExtendInfo *map[string]any `json:"extendInfo,omitempty"`
}

var objectBodies = []string{
	`{"id":"1"}`,
	`{"id":"1","extendInfo":null}`,
	`{"id":"1","extendInfo":{}}`,
	`{"id":"1","extendInfo":{ "b" : 2 , "a" : 1 }}`,
	`{"id":"1","extendInfo":{"z":{"y":{"x":[1,{"d":4,"c":3}],"w":true},"v":null},"a":[[],{}]}}`,
	`{"id":"1","extendInfo":{"big":123456789012345678901234567890123456789,"neg":-9007199254740993,"f":1.50,"e":1E+2,"z":-0}}`,
	`{"id":"1","extendInfo":{"html":"<script>alert(\"&\")</script>","amp":"a&b"}}`,
	`{"id":"1","extendInfo":{"uni":"é€😀","esc":"\u00e9\u20ac\ud83d\ude00","ls":"\u2028\u2029","ctl":"\u0001\t\n"}}`,
	`{"id":"1","extendInfo":{"url":"https:\/\/example.com\/a\/b","back":"a\\b","q":"\""}}`,
	`{"id":"1","extendInfo":{"\u00e9":1,"é2":2,"<k>":3,"A":4,"a":5}}`,
	`{"id":"1","extendInfo":{"bad":"\ud800","nul":"\u0000"}}`,
	"{\"id\":\"1\",\"extendInfo\":{\"raw\":\"\xff\xfe\"}}", // invalid UTF-8, as encoding/json reads it
	`{"id":"1","extendInfo":{"a":1,"a":2}}`,
	"{\"id\":\"1\",\"extendInfo\":\n\t{\n\t\t\"k\" : [ 1 ,\t2 ]\n\t}\n}",
}

// TestObjectRoundTrip checks Object in a struct field, through encoding/json:
// absent and null are nil, the text is kept in canonical form, and it
// marshals exactly as the reference did.
func TestObjectRoundTrip(t *testing.T) {
	for _, body := range objectBodies {
		var got withObject
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Errorf("Unmarshal(%s): %v", body, err)
			continue
		}
		in, err := referenceIn([]byte(body))
		if err != nil {
			t.Fatalf("referenceIn(%s): %v", body, err)
		}
		if in == nil {
			if got.ExtendInfo != nil {
				t.Errorf("Unmarshal(%s): extendInfo = %q, want nil", body, *got.ExtendInfo)
			}
		} else if kept := referenceKept(t, in); got.ExtendInfo == nil || !bytes.Equal(*got.ExtendInfo, kept) {
			t.Errorf("Unmarshal(%s): extendInfo = %v, want %q (canonical, no HTML escapes)", body, got.ExtendInfo, kept)
		} else if n := got.ExtendInfo.Len(); n != len([]rune(string(kept))) {
			t.Errorf("Len(%s) = %d, want %d", kept, n, len([]rune(string(kept))))
		}

		out, err := referenceOut(in)
		if err != nil {
			t.Fatalf("referenceOut(%s): %v", in, err)
		}
		want, err := json.Marshal(withMap{ID: "1", ExtendInfo: out})
		if err != nil {
			t.Fatal(err)
		}
		if enc, err := json.Marshal(got); err != nil || !bytes.Equal(enc, want) {
			t.Errorf("Marshal(%s) = %s, %v; want %s", body, enc, err, want)
		}
		// An encoder, as echo uses, gives the same.
		var a, b bytes.Buffer
		if err := json.NewEncoder(&a).Encode(got); err != nil {
			t.Fatal(err)
		}
		if err := json.NewEncoder(&b).Encode(withMap{ID: "1", ExtendInfo: out}); err != nil {
			t.Fatal(err)
		}
		if a.String() != b.String() {
			t.Errorf("Encode(%s) = %s, want %s", body, a.String(), b.String())
		}
		if got.ExtendInfo == nil {
			continue
		}
		// Object and *Object marshal alike.
		direct, err1 := json.Marshal(*got.ExtendInfo)
		viaPtr, err2 := json.Marshal(got.ExtendInfo)
		ref, err3 := json.Marshal(out)
		if err1 != nil || err2 != nil || err3 != nil || !bytes.Equal(direct, ref) || !bytes.Equal(viaPtr, ref) {
			t.Errorf("Marshal(%s) = %s, %s (%v, %v), want %s (%v)", in, direct, viaPtr, err1, err2, ref, err3)
		}
		// Marshalled text reads back into an equal canonical form.
		var again withObject
		if err := json.Unmarshal(want, &again); err != nil {
			t.Fatalf("Unmarshal(%s): %v", want, err)
		}
		if enc, _ := json.Marshal(again); !bytes.Equal(enc, want) {
			t.Errorf("round trip of %s gives %s", want, enc)
		}
	}
}

func TestObjectOrderFree(t *testing.T) {
	var a, b ijson.Object
	if err := json.Unmarshal([]byte(`{"b":[1,{"y":2,"x":1}],"a":"é"}`), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(`{ "a" : "\u00e9", "b" : [ 1, { "x" : 1, "y" : 2 } ] }`), &b); err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Fatalf("kept as %s and %s: want one canonical form", a, b)
	}
	ea, _ := json.Marshal(a)
	eb, _ := json.Marshal(b)
	if string(ea) != string(eb) || string(ea) != `{"a":"é","b":[1,{"x":1,"y":2}]}` {
		t.Errorf("Marshal = %s and %s, want both %s", ea, eb, `{"a":"é","b":[1,{"x":1,"y":2}]}`)
	}
}

func TestObjectEdges(t *testing.T) {
	if enc, err := json.Marshal(ijson.Object(nil)); err != nil || string(enc) != "null" {
		t.Errorf("Marshal(empty Object) = %s, %v; want null", enc, err)
	}
	if enc, err := json.Marshal(withObject{ID: "1", ExtendInfo: new(ijson.Object)}); err != nil || string(enc) != `{"id":"1","extendInfo":null}` {
		t.Errorf("Marshal(pointer to empty Object) = %s, %v", enc, err)
	}
	if enc, err := json.Marshal(withObject{ID: "1"}); err != nil || string(enc) != `{"id":"1"}` {
		t.Errorf("Marshal(nil *Object) = %s, %v; want the member omitted", enc, err)
	}
	for _, v := range []string{`[1]`, `"s"`, `1`, `true`} {
		var got withObject
		if err := json.Unmarshal([]byte(`{"id":"1","extendInfo":`+v+`}`), &got); err == nil {
			t.Errorf("Unmarshal of extendInfo %s: want an error, got %q", v, *got.ExtendInfo)
		}
		if enc, err := json.Marshal(ijson.Object(v)); err == nil {
			t.Errorf("Marshal(Object(%s)) = %s, want an error", v, enc)
		}
	}
	// Numbers are not checked on the way in: callers use Numbers.
	var o ijson.Object
	if err := json.Unmarshal([]byte(`{"n": 1e400}`), &o); err != nil || string(o) != `{"n":1e400}` {
		t.Errorf("Unmarshal 1e400: %q, %v", o, err)
	}
	if p := ijson.Numbers(o); p == nil || p.Error() != "n: holds a number a float64 cannot hold" {
		t.Errorf("Numbers(%s) = %v", o, p)
	}
	if n := ijson.Object(`{"s":"é😀"}`).Len(); n != 10 {
		t.Errorf("Len = %d, want 10 characters", n)
	}
}

// FuzzCanonical checks that the canonical form is a fixed point, and that
// any text encoding/json decodes has a fingerprint.
func FuzzCanonical(f *testing.F) {
	for _, s := range objectBodies {
		f.Add([]byte(s))
	}
	for _, s := range []string{`1e400`, `[]`, `"\ud800"`, `{"a":1,"a":{"b":[null,true,-0.0e-0]}}`, ` "\/" `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber() // decodes 1e400 too: the canonical form keeps it
		var v any
		if d.Decode(&v) != nil {
			return
		}
		c1, err := ijson.Canonical(raw)
		if err != nil {
			t.Fatalf("Canonical(%q): %v", raw, err)
		}
		c2, err := ijson.Canonical(c1)
		if err != nil {
			t.Fatalf("Canonical(%q) (of %q): %v", c1, raw, err)
		}
		if !bytes.Equal(c1, c2) {
			t.Fatalf("Canonical(%q) = %q, but Canonical of that = %q", raw, c1, c2)
		}
		if _, err := ijson.Fingerprint(raw); err != nil {
			t.Fatalf("Fingerprint(%q): %v", raw, err)
		}
	})
}
