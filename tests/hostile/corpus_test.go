package hostile

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"

	"golang.org/x/tools/txtar"
)

// hostileCase is one request of the corpus and what orderhub must answer.
// The format is described in testdata/README.md.
type hostileCase struct {
	name        string // archive/section
	method      string
	path        string
	contentType string // "" with noContentType: no header at all
	noCT        bool
	sign        string // partner paths: how the request is signed
	auth        string // operator paths: which bearer token is sent
	setHeaders  [][2]string
	addHeaders  [][2]string
	body        []byte
	chunked     bool // sent without Content-Length

	wantHTTP         int
	wantStatus       string // "" when the answer has no result (HEAD, operator success)
	wantCode         string
	wantMessage      []string
	notInMessage     []string
	wantAllow        string
	thenGet          string // an operator path read after the case
	thenContains     []string
	thenLacks        []string
	wantRequestIDNew bool // the response's X-Request-Id is not the one sent
}

// signModes are the values of `sign:`.
var signModes = map[string]bool{
	"valid":          true, // Client-Id, ISO 8601 Request-Time, Signature by the client's key
	"epoch-millis":   true, // the same with Request-Time in epoch milliseconds
	"none":           true, // none of the three headers
	"garbage":        true, // valid Client-Id and Request-Time, a Signature of base64 garbage
	"tampered":       true, // a valid signature of other bytes than the body sent
	"wrong-key":      true, // the client's Client-Id, signed with a key registered nowhere
	"unknown-client": true, // a Client-Id registered nowhere
	"stale":          true, // signed with a Request-Time ten minutes old
	"future":         true, // signed with a Request-Time ten minutes ahead
}

var authModes = map[string]bool{"valid": true, "none": true, "wrong": true}

// loadCorpus reads every archive under dir.
func loadCorpus(dir string) ([]hostileCase, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.txtar"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.txtar under %s", dir)
	}
	var all []hostileCase
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		cases, err := parseArchive(strings.TrimSuffix(filepath.Base(f), ".txtar"), data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		all = append(all, cases...)
	}
	return all, nil
}

// parseArchive reads one archive: its comment holds `key: value` defaults
// for every case (and # comments), each file is a case.
func parseArchive(family string, data []byte) ([]hostileCase, error) {
	a := txtar.Parse(data)
	defaults, err := fields(string(a.Comment))
	if err != nil {
		return nil, fmt.Errorf("archive comment: %w", err)
	}
	seen := map[string]bool{}
	cases := make([]hostileCase, 0, len(a.Files))
	for _, f := range a.Files {
		if seen[f.Name] {
			return nil, fmt.Errorf("case %q appears twice", f.Name)
		}
		seen[f.Name] = true
		c, err := parseCase(family+"/"+f.Name, defaults, f.Data)
		if err != nil {
			return nil, fmt.Errorf("case %q: %w", f.Name, err)
		}
		cases = append(cases, c)
	}
	return cases, nil
}

type field struct{ key, value string }

// fields reads `key: value` lines; blank lines and # comments are skipped.
func fields(text string) ([]field, error) {
	var out []field
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\n")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %q is not `key: value`", line)
		}
		out = append(out, field{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return out, nil
}

// parseCase reads a case section: `key: value` lines, an empty line, then
// the body, exactly, except for the final newline that txtar adds.
func parseCase(name string, defaults []field, data []byte) (hostileCase, error) {
	if bytes.Contains(data, []byte("\ntemplate: yes\n")) || bytes.HasPrefix(data, []byte("template: yes\n")) {
		expanded, err := expand(data)
		if err != nil {
			return hostileCase{}, err
		}
		data = expanded
	}
	head, body, _ := bytes.Cut(data, []byte("\n\n"))
	if bytes.HasPrefix(data, []byte("\n")) {
		head, body = nil, data[1:]
	}
	body = bytes.TrimSuffix(body, []byte("\n"))
	own, err := fields(string(head))
	if err != nil {
		return hostileCase{}, err
	}
	c := hostileCase{name: name, method: http.MethodPost, contentType: "application/json"}
	var (
		padTo  int
		quoted string
	)
	for _, f := range append(append([]field{}, defaults...), own...) {
		switch f.key {
		case "method":
			c.method = f.value
		case "path":
			c.path = f.value
		case "content-type":
			c.contentType, c.noCT = f.value, f.value == "none"
		case "sign":
			if !signModes[f.value] {
				return c, fmt.Errorf("unknown sign mode %q", f.value)
			}
			c.sign = f.value
		case "auth":
			if !authModes[f.value] {
				return c, fmt.Errorf("unknown auth mode %q", f.value)
			}
			c.auth = f.value
		case "header", "add-header":
			k, v, ok := strings.Cut(f.value, ":")
			if !ok {
				return c, fmt.Errorf("%s %q is not `Name: value`", f.key, f.value)
			}
			h := [2]string{strings.TrimSpace(k), strings.TrimSpace(v)}
			if f.key == "header" {
				c.setHeaders = append(c.setHeaders, h)
			} else {
				c.addHeaders = append(c.addHeaders, h)
			}
		case "body-quoted":
			if quoted, err = strconv.Unquote(f.value); err != nil {
				return c, fmt.Errorf("body-quoted: %w", err)
			}
		case "template":
			// Expanded above, over the whole section.
		case "pad-to":
			if padTo, err = strconv.Atoi(f.value); err != nil || padTo <= 0 {
				return c, fmt.Errorf("pad-to %q is not a positive size", f.value)
			}
		case "chunked":
			c.chunked = f.value == "yes"
		case "expect":
			if err := c.parseExpect(f.value); err != nil {
				return c, err
			}
		case "message":
			c.wantMessage = append(c.wantMessage, f.value)
		case "not-in-message":
			c.notInMessage = append(c.notInMessage, f.value)
		case "allow":
			c.wantAllow = f.value
		case "then-get":
			c.thenGet = f.value
		case "then-contains":
			c.thenContains = append(c.thenContains, f.value)
		case "then-lacks":
			c.thenLacks = append(c.thenLacks, f.value)
		case "request-id":
			c.wantRequestIDNew = f.value == "replaced"
		default:
			return c, fmt.Errorf("unknown key %q", f.key)
		}
	}
	if c.path == "" || c.wantHTTP == 0 {
		return c, fmt.Errorf("path and expect are required")
	}
	if quoted != "" {
		if len(bytes.TrimSpace(body)) > 0 {
			return c, fmt.Errorf("both body-quoted and a body")
		}
		body = []byte(quoted)
	}
	if padTo > 0 {
		if len(body) > padTo {
			return c, fmt.Errorf("body of %d bytes is longer than pad-to %d", len(body), padTo)
		}
		body = append(body, bytes.Repeat([]byte(" "), padTo-len(body))...)
	}
	c.body = body
	if isOps(c.path) {
		if c.sign != "" {
			return c, fmt.Errorf("sign applies to partner paths; operator paths take auth")
		}
		if c.auth == "" {
			c.auth = "valid"
		}
	} else if c.sign == "" {
		c.sign = "valid"
	}
	return c, nil
}

// parseExpect reads `<HTTP status> [<resultStatus> <resultCode>]`.
func (c *hostileCase) parseExpect(v string) error {
	parts := strings.Fields(v)
	if len(parts) != 1 && len(parts) != 3 {
		return fmt.Errorf("expect %q is not `<HTTP> [<S|F|U> <CODE>]`", v)
	}
	n, err := strconv.Atoi(parts[0])
	if err != nil || n < 100 || n > 599 {
		return fmt.Errorf("expect %q: bad HTTP status", v)
	}
	c.wantHTTP = n
	if len(parts) == 3 {
		if !strings.Contains("SFU", parts[1]) || len(parts[1]) != 1 {
			return fmt.Errorf("expect %q: resultStatus must be S, F or U", v)
		}
		c.wantStatus, c.wantCode = parts[1], parts[2]
	}
	return nil
}

// expand runs a case section as a text/template with `repeat`, for long
// values that would be unreadable spelt out.
func expand(body []byte) ([]byte, error) {
	tmpl, err := template.New("body").Funcs(template.FuncMap{"repeat": strings.Repeat}).Parse(string(body))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, nil); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func isOps(path string) bool { return strings.HasPrefix(path, "/ops/") }
