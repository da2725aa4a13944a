package httpapi

import "testing"

// TestAmbiguity checks what wellFormed refuses beyond invalid JSON: member
// names twice in one object, at any depth, and unpaired surrogate escapes.
func TestAmbiguity(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"a":1,"b":2}`, ""},
		{`{"a":1,"a":1}`, "a: appears more than once"},
		{`{"a":1,"\u0061":2}`, "a: appears more than once"}, // the same name, escaped
		{`{"a":1,"A":2}`, ""},                               // names are case-sensitive
		{`{"x":{"a":1},"y":{"a":1}}`, ""},                   // siblings may share names
		{`{"x":{"a":{"a":{"a":1}}}}`, ""},
		{`{"x":[{"a":1},{"a":1,"b":[],"a":2}]}`, "x.a: appears more than once"},
		{`[{"a":1},{"a":2}]`, ""},
		{`[[{"k":1,"k":2}]]`, "k: appears more than once"},
		{`{"x":{"y":1},"x":2}`, "x: appears more than once"},
		{`{"n":1e400,"a":1,"a":2}`, "a: appears more than once"}, // past a number no float64 holds
		{`{"x":{},"y":[],"z":{"x":{},"y":[]}}`, ""},
		{`"a"`, ""},
		{`null`, ""},
		{``, ""},
		{`{"s":"\ud83d\ude00"}`, ""}, // a pair
		{`{"s":"\uD83D\uDE00"}`, ""},
		{`{"s":"\ud800"}`, "body: a string holds an unpaired surrogate escape"},
		{`{"s":"\udc00\ud800"}`, "body: a string holds an unpaired surrogate escape"}, // low then high
		{`{"s":"\ud800\u0041"}`, "body: a string holds an unpaired surrogate escape"},
		{`{"s":"\ud800\n"}`, "body: a string holds an unpaired surrogate escape"},
		{`{"\udfff":1}`, "body: a string holds an unpaired surrogate escape"},
		{`{"s":"\\ud800"}`, ""}, // an escaped backslash, then text
		{`{"s":"\\\ud83d\ude00"}`, ""},
		{`{"s":"\\\ud800"}`, "body: a string holds an unpaired surrogate escape"},
		{`{"s":"\u00e9\u20ac"}`, ""},
	} {
		if got := ambiguity([]byte(tc.body)); got != tc.want {
			t.Errorf("ambiguity(%s) = %q, want %q", tc.body, got, tc.want)
		}
	}
}
