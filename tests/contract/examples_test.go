package contract

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/orderhub/orderhub/generated/models"
	"github.com/orderhub/orderhub/tests/conformance"
)

// The examples of the contract, run against the service: for every partner
// operation, each scenario sends a request example (or a body of its own)
// and must get a response example exactly.

// seedOrderID is the order of the D-Store seed sample.
const seedOrderID = "pds_2109220000232584_2022050400309038584_1"

// seedAnswer is the D-Store seed sample's answer, byte for byte.
const seedAnswer = `{"result":{"resultCode":"SUCCESS","resultMessage":"success","resultStatus":"S"}}`

type exampleScenario struct {
	name string
	// request names the request example sent; edit, if set, changes a copy
	// of it first. body replaces the request example entirely.
	request string
	edit    func(map[string]any)
	body    func() []byte
	// setup runs before the request, fault just before it.
	setup func(t *testing.T, e *env, doc *openapi3.T)
	fault func(e *env)
	// slow sends the body's headers and first byte only, then waits for the
	// service's read deadline.
	slow bool
	// storeFree: the answer comes before any store call (a body too large or
	// too slow), so the run on Redis Clusters, which is about the store,
	// leaves it to the single-node run.
	storeFree bool
	// The answer: HTTP status and the name of the response example under it.
	status   int
	response string
	exact    string // if set, the body (less a trailing newline) byte for byte
}

// oversized is a JSON body over the 64 KiB the service reads.
func oversized() []byte {
	return []byte(`{"requestId":"` + strings.Repeat("x", 65<<10) + `"}`)
}

func stopRedis(e *env) { e.redis.Stop() }

// putExampleOrder stores the order the examples talk about, with the body of
// putOrder's own request example.
func putExampleOrder(t *testing.T, e *env, doc *openapi3.T) {
	t.Helper()
	ex := requestExamples(t, doc, "/ops/orders/{requestOrderId}", http.MethodPut)["preparing"]
	res, err := e.c.PutOrderWithBodyWithResponse(e.ctx(), seedOrderID, "application/json", bytes.NewReader(mustJSON(t, ex)), admin)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode() != http.StatusOK {
		t.Fatalf("putOrder example: HTTP %d %s", res.StatusCode(), res.Body)
	}
}

type partnerOp struct {
	path      string
	send      func(e *env, body []byte) reply
	scenarios []exampleScenario
}

func partnerOps() map[string]partnerOp {
	return map[string]partnerOp{
		"notifyOrderCompletion": {
			path: pathCompletion,
			send: func(e *env, b []byte) reply { return e.call(opCompletion, rawBody{"application/json", string(b)}) },
			scenarios: []exampleScenario{
				{name: "seed", request: "seed", setup: putExampleOrder, status: 200, response: "success", exact: seedAnswer},
				{name: "unknown order", request: "unknownOrder", status: 200, response: "orderNotExist"},
				{name: "Redis down", request: "seed", setup: putExampleOrder, fault: stopRedis, status: 200, response: "unknownException"},
				{name: "too large", body: oversized, status: 413, response: "tooLarge", storeFree: true},
				{name: "too slow", request: "seed", slow: true, status: 408, response: "tooSlow", storeFree: true},
			},
		},
		"inquireOrderDetail": {
			path: pathInquire,
			send: func(e *env, b []byte) reply { return e.call(opInquire, rawBody{"application/json", string(b)}) },
			scenarios: []exampleScenario{
				{name: "inquire", request: "inquire", setup: putExampleOrder, status: 200, response: "success"},
				{name: "unknown order", request: "unknownOrder", status: 200, response: "orderNotExist"},
				{name: "Redis down", request: "inquire", setup: putExampleOrder, fault: stopRedis, status: 200, response: "unknownException"},
				{name: "too large", body: oversized, status: 413, response: "tooLarge", storeFree: true},
				{name: "too slow", request: "inquire", slow: true, status: 408, response: "tooSlow", storeFree: true},
			},
		},
		"notifyOrderChange": {
			path: pathChange,
			send: func(e *env, b []byte) reply { return e.call(opChange, rawBody{"application/json", string(b)}) },
			scenarios: []exampleScenario{
				{name: "preparing", request: "preparing", setup: putExampleOrder, status: 200, response: "success", exact: seedAnswer},
				{name: "refund", request: "refund", setup: putExampleOrder, status: 200, response: "success"},
				{
					name: "refund total down", request: "refund",
					setup: func(t *testing.T, e *env, doc *openapi3.T) {
						t.Helper()
						putExampleOrder(t, e, doc)
						more := models.NotifyOrderChangeRequest{RequestID: uid("req"), RequestOrderID: seedOrderID, RefundAmount: &models.Amount{Currency: "SGD", Value: "2000"}}
						if r := e.call(opChange, more); statusOf(r.body) != "S" {
							t.Fatalf("first refund: %v", r)
						}
					},
					status: 200, response: "refundDown",
				},
				{name: "backwards", request: "backwards", setup: putExampleOrder, status: 200, response: "orderStatusInvalid"},
				{name: "unknown order", request: "unknownOrder", status: 200, response: "orderNotExist"},
				{name: "Redis down", request: "preparing", setup: putExampleOrder, fault: stopRedis, status: 200, response: "unknownException"},
				{name: "too large", body: oversized, status: 413, response: "tooLarge", storeFree: true},
				{name: "too slow", request: "preparing", slow: true, status: 408, response: "tooSlow", storeFree: true},
			},
		},
		"notifyDeliveryAuditResult": {
			path: pathAudit,
			send: func(e *env, b []byte) reply { return e.call(opAudit, rawBody{"application/json", string(b)}) },
			scenarios: []exampleScenario{
				{name: "accept", request: "accept", status: 200, response: "success"},
				{name: "reject", request: "reject", status: 200, response: "success"},
				{
					name: "requestId reused with another status", request: "accept",
					setup: func(t *testing.T, e *env, doc *openapi3.T) {
						t.Helper()
						first := requestExamples(t, doc, pathAudit, http.MethodPost)["accept"]
						if r := e.call(opAudit, first); statusOf(r.body) != "S" {
							t.Fatalf("first accept: %v", r)
						}
					},
					edit:   func(m map[string]any) { m["deliveryAuditStatus"] = "REJECT" },
					status: 200, response: "repeatReqInconsistent",
				},
				{name: "Redis down", request: "accept", fault: stopRedis, status: 200, response: "unknownException"},
				{name: "too large", body: oversized, status: 413, response: "tooLarge", storeFree: true},
				{name: "too slow", request: "accept", slow: true, status: 408, response: "tooSlow", storeFree: true},
			},
		},
	}
}

// operation finds the operation at path and method.
func operation(t *testing.T, doc *openapi3.T, path, method string) *openapi3.Operation {
	t.Helper()
	item := doc.Paths.Value(path)
	if item == nil || item.GetOperation(method) == nil {
		t.Fatalf("the contract has no %s %s", method, path)
	}
	return item.GetOperation(method)
}

// requestExamples are the request body examples of an operation, by name.
func requestExamples(t *testing.T, doc *openapi3.T, path, method string) map[string]any {
	t.Helper()
	out := map[string]any{}
	op := operation(t, doc, path, method)
	if op.RequestBody == nil || op.RequestBody.Value == nil {
		return out
	}
	if mt := op.RequestBody.Value.Content.Get("application/json"); mt != nil {
		for name, ex := range mt.Examples {
			out[name] = ex.Value.Value
		}
	}
	return out
}

// responseKey names a response example: HTTP status and example name.
type responseKey struct {
	status int
	name   string
}

func (k responseKey) String() string { return fmt.Sprintf("%d %s", k.status, k.name) }

// responseExamples are the response examples of an operation.
func responseExamples(t *testing.T, doc *openapi3.T, path, method string) map[responseKey]any {
	t.Helper()
	out := map[responseKey]any{}
	for code, ref := range operation(t, doc, path, method).Responses.Map() {
		var status int
		if _, err := fmt.Sscanf(code, "%d", &status); err != nil {
			t.Fatalf("response %q of %s: not a status code", code, path)
		}
		if mt := ref.Value.Content.Get("application/json"); mt != nil {
			for name, ex := range mt.Examples {
				out[responseKey{status, name}] = ex.Value.Value
			}
		}
	}
	return out
}

func TestSpecExamplesRunAgainstTheService(t *testing.T) {
	doc, err := conformance.Load()
	if err != nil {
		t.Fatal(err)
	}
	for opID, op := range partnerOps() {
		reqs := requestExamples(t, doc, op.path, http.MethodPost)
		resps := responseExamples(t, doc, op.path, http.MethodPost)
		for _, sc := range op.scenarios {
			if sc.storeFree && clusterMode() {
				continue
			}
			t.Run(opID+"/"+sc.name, func(t *testing.T) {
				parallel(t)
				e := newEnv(t)
				var body []byte
				switch {
				case sc.body != nil:
					body = sc.body()
				default:
					ex, ok := reqs[sc.request]
					if !ok {
						t.Fatalf("no request example %q", sc.request)
					}
					var m map[string]any
					if err := json.Unmarshal(mustJSON(t, ex), &m); err != nil { // a copy
						t.Fatal(err)
					}
					if sc.edit != nil {
						sc.edit(m)
					}
					body = mustJSON(t, m)
				}
				want, ok := resps[responseKey{sc.status, sc.response}]
				if !ok {
					t.Fatalf("no response example %q under %d", sc.response, sc.status)
				}
				if sc.setup != nil {
					sc.setup(t, e, doc)
				}
				if sc.fault != nil {
					sc.fault(e)
				}
				var r reply
				if sc.slow {
					r = e.sendSlowly(t, op.path, body)
				} else {
					r = op.send(e, body)
				}
				if r.status != sc.status {
					t.Errorf("HTTP %d, want %d", r.status, sc.status)
				}
				if diff := sameJSON(t, r.body, mustJSON(t, want)); diff != "" {
					t.Errorf("body is not the example %q (-example +got):\n%s", sc.response, diff)
				}
				if sc.exact != "" {
					if got := strings.TrimSuffix(string(r.body), "\n"); got != sc.exact {
						t.Errorf("body, byte for byte:\n got %s\nwant %s", got, sc.exact)
					}
				}
			})
		}
	}
}

// TestSpecExamplesAreAllCovered fails when the contract gains a partner
// operation, a request example or a response example that no scenario of
// TestSpecExamplesRunAgainstTheService exercises, or when a scenario names
// an example the contract does not have.
func TestSpecExamplesAreAllCovered(t *testing.T) {
	doc, err := conformance.Load()
	if err != nil {
		t.Fatal(err)
	}
	ops := partnerOps()
	var inSpec []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if slices.Contains(op.Tags, "operations") || slices.Contains(op.Tags, "service") {
				continue // the operator API and service endpoints: covered by the other tests
			}
			inSpec = append(inSpec, op.OperationID)
			p, ok := ops[op.OperationID]
			if !ok {
				t.Errorf("partner operation %s (%s %s) has no example scenarios", op.OperationID, method, path)
				continue
			}
			if p.path != path || method != http.MethodPost {
				t.Errorf("%s is %s %s in the contract, the scenarios use POST %s", op.OperationID, method, path, p.path)
				continue
			}
			reqs := requestExamples(t, doc, path, method)
			resps := responseExamples(t, doc, path, method)
			usedReq := map[string]bool{}
			usedResp := map[responseKey]bool{}
			for _, sc := range p.scenarios {
				if sc.body == nil {
					if _, ok := reqs[sc.request]; !ok {
						t.Errorf("%s scenario %q: no request example %q", op.OperationID, sc.name, sc.request)
					}
					usedReq[sc.request] = true
				}
				k := responseKey{sc.status, sc.response}
				if _, ok := resps[k]; !ok {
					t.Errorf("%s scenario %q: no response example %v", op.OperationID, sc.name, k)
				}
				usedResp[k] = true
			}
			for name := range reqs {
				if !usedReq[name] {
					t.Errorf("%s: request example %q is sent by no scenario", op.OperationID, name)
				}
			}
			for k := range resps {
				if !usedResp[k] {
					t.Errorf("%s: response example %v is produced by no scenario", op.OperationID, k)
				}
			}
		}
	}
	var inTable []string
	for id := range ops {
		inTable = append(inTable, id)
	}
	sort.Strings(inSpec)
	sort.Strings(inTable)
	if !slices.Equal(inSpec, inTable) {
		t.Errorf("partner operations: contract %v, scenarios %v", inSpec, inTable)
	}
}

// sendSlowly sends the headers of a POST to path and the first byte of
// body, then nothing: the service's read deadline ends the wait, not the
// test, and its answer comes back on the same connection.
func (e *env) sendSlowly(t *testing.T, path string, body []byte) reply {
	t.Helper()
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: orderhub\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body[:1]); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: res.StatusCode, header: res.Header, body: b}
}
