// Package mock checks that a mock made from the partner edition tells the
// truth, as partners build against it: Stoplight Prism (pinned in
// scripts/tools) mocks generated/partner/orderhub.yaml; every named JSON
// example of every operation comes back as written and valid against the
// contract, with its headers' examples; in dynamic mode only the result
// codes a partner operation declares appear.
package mock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/orderhub/orderhub/generated/partner"
	"github.com/orderhub/orderhub/tests/conformance"
	"github.com/orderhub/orderhub/tests/redistest"
)

// prism is the pinned mock server, installed by scripts/ensure-node-tools.sh.
const prism = "../../scripts/tools/node_modules/.bin/prism"

func TestPrismMocksThePartnerEdition(t *testing.T) {
	base := startPrism(t)
	doc, err := openapi3.NewLoader().LoadFromData(partner.Spec)
	if err != nil {
		t.Fatal(err)
	}
	oracle := conformance.New(t, nil)
	checked := 0
	for _, path := range doc.Paths.InMatchingOrder() {
		if get := doc.Paths.Value(path).Get; get != nil {
			checked += checkGetExamples(t, oracle, base+path, get)
		}
		op := doc.Paths.Value(path).Post
		if op == nil {
			continue // a service endpoint: GET, no result codes
		}
		body := requestExample(t, op)
		for code, ref := range op.Responses.Map() {
			mt := ref.Value.Content.Get("application/json")
			if mt == nil {
				continue
			}
			for name, ex := range mt.Examples {
				t.Run(fmt.Sprintf("%s/%s/%s", op.OperationID, code, name), func(t *testing.T) {
					res, got := send(t, base+path, body, "code="+code+", example="+name)
					if fmt.Sprint(res.StatusCode) != code {
						t.Errorf("HTTP %d, want %s", res.StatusCode, code)
					}
					if err := oracle.Check(res.Request, res.StatusCode, res.Header, got); err != nil {
						t.Errorf("does not conform: %v", err)
					}
					if diff := sameJSON(t, got, ex.Value.Value); diff != "" {
						t.Errorf("body is not the example %q: %s", name, diff)
					}
					if sig := res.Header.Get("Signature"); code == "200" && !strings.HasPrefix(sig, "algorithm=RSA256, keyVersion=") {
						t.Errorf("Signature %q, want the header's example", sig)
					}
				})
				checked++
			}
		}
		// Dynamic mode invents values: only declared codes may appear.
		declared := resultCodes(t, op)
		for i := range 20 {
			res, got := send(t, base+path, body, "dynamic=true")
			var env struct{ Result struct{ ResultCode string } }
			if err := json.Unmarshal(got, &env); err != nil {
				t.Fatalf("%s dynamic %d: %v (%s)", op.OperationID, i, err, got)
			}
			if res.StatusCode == http.StatusOK && !slices.Contains(declared, env.Result.ResultCode) {
				t.Errorf("%s dynamic: resultCode %q, not one it declares %v", op.OperationID, env.Result.ResultCode, declared)
			}
		}
	}
	if checked < 10 {
		t.Errorf("checked %d examples: the walk is broken", checked)
	}
}

// checkGetExamples asks for each named JSON example of a GET operation (the
// service endpoints partners see, such as /public-keys) and returns how many
// it checked.
func checkGetExamples(t *testing.T, oracle *conformance.Transport, url string, op *openapi3.Operation) int {
	t.Helper()
	n := 0
	for code, ref := range op.Responses.Map() {
		mt := ref.Value.Content.Get("application/json")
		if mt == nil {
			continue
		}
		for name, ex := range mt.Examples {
			req, err := http.NewRequest(http.MethodGet, url, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Prefer", "code="+code+", example="+name)
			res, got := do(t, req)
			if err := oracle.Check(req, res.StatusCode, res.Header, got); err != nil {
				t.Errorf("%s %s: does not conform: %v", op.OperationID, name, err)
			}
			if diff := sameJSON(t, got, ex.Value.Value); diff != "" {
				t.Errorf("%s: body is not the example %q: %s", op.OperationID, name, diff)
			}
			n++
		}
	}
	return n
}

// startPrism runs Prism on a free port with the partner edition and waits
// until it answers.
func startPrism(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(prism); err != nil {
		t.Fatalf("%s is missing (%v): run scripts/ensure-node-tools.sh", prism, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	spec, err := filepath.Abs("../../generated/partner/orderhub.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(prism, "mock", "--host", "127.0.0.1", "--port", fmt.Sprint(port), spec)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(), "DO_NOT_TRACK=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	err = redistest.Poll(60*time.Second, func() error {
		res, err := http.Get(base + "/public-keys")
		if err == nil {
			res.Body.Close()
		}
		return err
	})
	if err != nil {
		t.Fatalf("prism did not answer: %v\n%s", err, out.String())
	}
	return base
}

// send POSTs body with the signature headers' shapes (Prism checks the
// security schemes are present, not the signature) and a Prefer header.
func send(t *testing.T, url string, body []byte, prefer string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Client-Id", "2022091400000001")
	req.Header.Set("Request-Time", "2019-04-04T12:08:56+05:30")
	req.Header.Set("Signature", "algorithm=RSA256, keyVersion=1, signature=YWJj")
	req.Header.Set("Prefer", prefer)
	return do(t, req)
}

// do sends req to Prism and returns the answer, its request set, and body.
func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	res.Request = req
	return res, got
}

// requestExample is the first request example of op, as JSON.
func requestExample(t *testing.T, op *openapi3.Operation) []byte {
	t.Helper()
	mt := op.RequestBody.Value.Content.Get("application/json")
	for _, ex := range mt.Examples {
		b, err := json.Marshal(ex.Value.Value)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Fatalf("%s has no request example", op.OperationID)
	return nil
}

// resultCodes are the codes op's 200 answer declares.
func resultCodes(t *testing.T, op *openapi3.Operation) []string {
	t.Helper()
	result := op.Responses.Status(200).Value.Content.Get("application/json").Schema.Value.Properties["result"].Value
	var codes []string
	for _, v := range result.Properties["resultCode"].Value.Enum {
		codes = append(codes, fmt.Sprint(v))
	}
	if len(codes) == 0 {
		t.Fatalf("%s declares no result codes", op.OperationID)
	}
	return codes
}

// sameJSON compares got with the example value, whatever the spacing.
func sameJSON(t *testing.T, got []byte, want any) string {
	t.Helper()
	var g any
	if err := json.Unmarshal(got, &g); err != nil {
		return fmt.Sprintf("not JSON: %s", got)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var wv any
	if err := json.Unmarshal(w, &wv); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(wv)
	if !bytes.Equal(gb, wb) {
		return fmt.Sprintf("got %s, want %s", gb, wb)
	}
	return ""
}
