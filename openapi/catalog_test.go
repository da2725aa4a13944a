package openapi

import (
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/go-cmp/cmp"
)

func mustLoad(t *testing.T) *Catalog {
	t.Helper()
	c, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestLoadDropsServers(t *testing.T) {
	if a := mustLoad(t); a.Doc().Servers != nil {
		t.Errorf("Doc().Servers = %v, want nil", a.Doc().Servers)
	}
}

func TestPartnerOperations(t *testing.T) {
	c := mustLoad(t)
	want := []string{"inquireOrderDetail", "notifyDeliveryAuditResult", "notifyOrderChange", "notifyOrderCompletion"}
	if got := c.IDs(Partner); !slices.Equal(got, want) {
		t.Errorf("IDs(Partner) = %v, want %v", got, want)
	}
	var idem []string
	for _, op := range c.Operations() {
		if op.Idempotent {
			idem = append(idem, op.ID)
		}
	}
	if want := []string{"notifyDeliveryAuditResult", "notifyOrderChange", "notifyOrderCompletion"}; !slices.Equal(idem, want) || !slices.Equal(c.IdempotentIDs(), want) {
		t.Errorf("idempotent operations = %v, want %v", idem, want)
	}
}

func TestKindsCoverEveryOperation(t *testing.T) {
	c := mustLoad(t)
	n := 0
	for _, k := range []Kind{Partner, Operator, Service} {
		ids := c.IDs(k)
		if len(ids) == 0 {
			t.Errorf("no %s operations", k)
		}
		if !slices.IsSorted(ids) {
			t.Errorf("IDs(%s) not sorted: %v", k, ids)
		}
		n += len(ids)
	}
	if got := len(c.Operations()); n != got {
		t.Errorf("the kinds list %d operations, Operations %d", n, got)
	}
	if ids := c.IDs(Unknown); len(ids) != 0 {
		t.Errorf("IDs(Unknown) = %v, want none", ids)
	}
}

func TestOperation(t *testing.T) {
	c := mustLoad(t)
	op, ok := c.Operation("POST", "/v2/pos/inquireOrderDetail")
	want := Operation{ID: "inquireOrderDetail", Method: "POST", Path: "/v2/pos/inquireOrderDetail", Kind: Partner,
		Fields:      []string{"requestOrderId"},
		ResultCodes: []string{"SUCCESS", "PARAM_ILLEGAL", "ACCESS_DENIED", "INVALID_SIGNATURE", "ORDER_NOT_EXIST", "REQUEST_TRAFFIC_EXCEED_LIMIT", "UNKNOWN_EXCEPTION"},
	}
	if !ok || !cmp.Equal(op, want) {
		t.Errorf("Operation(POST, /v2/pos/inquireOrderDetail) = %+v, %v; want %+v, true", op, ok, want)
	}
	op, ok = c.Operation("POST", "/v2/pds/order/notifyOrderCompletion")
	if !ok || !op.Idempotent || op.Kind != Partner {
		t.Errorf("Operation(POST, notifyOrderCompletion) = %+v, %v; want an idempotent partner operation", op, ok)
	}
	op, ok = c.Operation("GET", "/ops/orders/{requestOrderId}")
	if !ok || op.ID != "getOrder" || op.Kind != Operator || op.Idempotent {
		t.Errorf("Operation(GET, /ops/orders/{requestOrderId}) = %+v, %v; want getOrder, operator", op, ok)
	}
	for _, m := range [][2]string{
		{"GET", "/v2/pos/inquireOrderDetail"},
		{"post", "/v2/pos/inquireOrderDetail"},
		{"GET", "/ops/orders/abc"},
		{"GET", "/nope"},
	} {
		if op, ok := c.Operation(m[0], m[1]); ok {
			t.Errorf("Operation(%s, %s) = %+v, want not found", m[0], m[1], op)
		}
	}
}

func TestPathKind(t *testing.T) {
	c := mustLoad(t)
	for path, want := range map[string]Kind{
		"/v2/pos/inquireOrderDetail":             Partner,
		"/v1/delivery/notifyDeliveryAuditResult": Partner,
		"/ops/orders/{requestOrderId}":           Operator,
		"/ops/nothing-here":                      Operator,
		"/ops/orders/abc":                        Operator,
		"/healthz":                               Service,
		"/openapi.yaml":                          Service,
		"/nope":                                  Unknown,
		"/ops":                                   Unknown,
		"":                                       Unknown,
	} {
		if got := c.PathKind(path); got != want {
			t.Errorf("PathKind(%q) = %s, want %s", path, got, want)
		}
	}
}

func TestOperatorPrefix(t *testing.T) {
	c := mustLoad(t)
	for _, op := range c.Operations() {
		if under := strings.HasPrefix(op.Path, OperatorPrefix); under != (op.Kind == Operator) {
			t.Errorf("%s %s (%s): kind %s, under %s: %v", op.Method, op.Path, op.ID, op.Kind, OperatorPrefix, under)
		}
	}
}

func TestOperationsSorted(t *testing.T) {
	c := mustLoad(t)
	ops := c.Operations()
	if !slices.IsSortedFunc(ops, func(a, b Operation) int { return strings.Compare(a.ID, b.ID) }) {
		t.Errorf("Operations not sorted by ID: %v", ops)
	}
	// The caller's copy: changing it leaves the catalog alone.
	ops[0].ID = "changed"
	if c.Operations()[0].ID == "changed" {
		t.Error("Operations returned the catalog's own slice")
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{Unknown: "unknown", Partner: "partner", Operator: "operator", Service: "service", Kind(9): "Kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

func TestLookupsDoNotAllocate(t *testing.T) {
	c := mustLoad(t)
	var sink Kind
	allocs := testing.AllocsPerRun(100, func() {
		op, _ := c.Operation("POST", "/v1/delivery/notifyDeliveryAuditResult")
		sink += op.Kind
		sink += c.PathKind("/ops/orders/{requestOrderId}")
		sink += c.PathKind("/ops/orders/abc")
		sink += c.PathKind("/nope")
	})
	if allocs != 0 {
		t.Errorf("lookups allocate %v times per run", allocs)
	}
	_ = sink
}

// contract is a small valid contract: a partner operation, an operator
// operation and a service operation, with extra placed in the paths.
func contract(extra string) []byte {
	return []byte(`openapi: 3.0.3
info: {title: test, version: "1"}
servers: [{url: /}]
paths:
  /v1/partner/notify:
    post:
      operationId: notify
      tags: [D-Store]
      x-orderhub-idempotent: true
      requestBody:
        content:
          application/json:
            schema: {type: object, properties: {requestId: {type: string}, tradeId: {type: string}}}
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema:
                type: object
                properties:
                  result: {type: object, properties: {resultCode: {type: string, enum: [SUCCESS, UNKNOWN_EXCEPTION]}}}
  /ops/things/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    get:
      operationId: getThing
      tags: [operations]
      responses: {'200': {description: ok}}
  /healthz:
    get:
      operationId: getHealthz
      tags: [service]
      responses: {'200': {description: ok}}
` + extra)
}

func loadData(t *testing.T, data []byte) (*Catalog, error) {
	t.Helper()
	doc, err := parse(data)
	if err != nil {
		t.Fatalf("parse: %v", err) // the bad contracts are bad for orderhub only
	}
	return newCatalog(doc)
}

func TestNewCatalogAcceptsGoodContract(t *testing.T) {
	c, err := loadData(t, contract(""))
	if err != nil {
		t.Fatalf("newCatalog: %v", err)
	}
	if c.Doc().Servers != nil {
		t.Error("servers kept")
	}
	want := []Operation{
		{ID: "getHealthz", Method: "GET", Path: "/healthz", Kind: Service},
		{ID: "getThing", Method: "GET", Path: "/ops/things/{id}", Kind: Operator},
		{ID: "notify", Method: "POST", Path: "/v1/partner/notify", Kind: Partner, Idempotent: true,
			Fields: []string{"requestId", "tradeId"}, ResultCodes: []string{"SUCCESS", "UNKNOWN_EXCEPTION"}},
	}
	if got := c.Operations(); !cmp.Equal(got, want) {
		t.Errorf("Operations = %+v, want %+v", got, want)
	}
	c, err = loadData(t, []byte(strings.Replace(string(contract("")), "x-orderhub-idempotent: true", "x-orderhub-idempotent: false", 1)))
	if err != nil {
		t.Fatalf("newCatalog with x-orderhub-idempotent: false: %v", err)
	}
	if op, _ := c.Operation("POST", "/v1/partner/notify"); op.Idempotent {
		t.Error("x-orderhub-idempotent: false read as true")
	}
}

func TestNewCatalogRefusesBadContracts(t *testing.T) {
	for name, tc := range map[string]struct {
		extra, want string
	}{
		"GET partner operation": {`  /v1/partner/inquire:
    get:
      operationId: inquire
      tags: [WorldFirst]
      responses: {'200': {description: ok}}
`, "must be POST"},
		"operator path outside /ops/": {`  /admin/things:
    get:
      operationId: listThings
      tags: [operations]
      responses: {'200': {description: ok}}
`, "not under /ops/"},
		"service path under /ops/": {`  /ops/healthz:
    get:
      operationId: getOpsHealthz
      tags: [service]
      responses: {'200': {description: ok}}
`, "is under /ops/"},
		"idempotent not a boolean": {`  /v1/partner/other:
    post:
      operationId: other
      tags: [D-Store]
      x-orderhub-idempotent: "yes"
      responses: {'200': {description: ok}}
`, "must be true or false"},
		"idempotent null": {`  /v1/partner/other:
    post:
      operationId: other
      tags: [D-Store]
      x-orderhub-idempotent: null
      responses: {'200': {description: ok}}
`, "must be true or false"},
		"idempotent operator operation": {`  /ops/orders:
    post:
      operationId: putOrder
      tags: [operations]
      x-orderhub-idempotent: true
      responses: {'200': {description: ok}}
`, "only partner operations"},
		"partner operation without a body": {`  /v1/partner/bodiless:
    post:
      operationId: bodiless
      tags: [D-Store]
      responses: {'200': {description: ok}}
`, "must take a JSON body"},
		"partner answer without result codes": {`  /v1/partner/codeless:
    post:
      operationId: codeless
      tags: [D-Store]
      requestBody: {content: {application/json: {schema: {type: object}}}}
      responses: {'200': {description: ok, content: {application/json: {schema: {type: object, properties: {result: {type: object}}}}}}}
`, "must list its codes"},
		"no operationId": {`  /v1/partner/anonymous:
    post:
      tags: [D-Store]
      responses: {'200': {description: ok}}
`, "no operationId"},
		"mixed kinds on one path": {`  /v1/partner/mixed:
    post:
      operationId: mixedPost
      tags: [D-Store]
      responses: {'200': {description: ok}}
    get:
      operationId: mixedGet
      tags: [service]
      responses: {'200': {description: ok}}
`, "also has"},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := loadData(t, contract(tc.extra))
			if err == nil {
				t.Fatalf("accepted: %+v", c.Operations())
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestParseRefusesInvalidContract(t *testing.T) {
	if _, err := parse([]byte("openapi: 3.0.3\ninfo: {title: test}\npaths: {}\n")); err == nil {
		t.Error("parse accepted a contract without info.version")
	}
	if _, err := parse([]byte("{")); err == nil {
		t.Error("parse accepted garbage")
	}
}

// TestIdempotentExtensionType pins what kin-openapi stores for the
// extension, and that anything but a boolean is refused.
func TestIdempotentExtensionType(t *testing.T) {
	c := mustLoad(t)
	v := c.Doc().Paths.Value("/v2/pds/order/notifyOrderCompletion").Post.Extensions[idempotentExt]
	if v != true {
		t.Errorf("kin-openapi stores %s as %T %#v, want bool true", idempotentExt, v, v)
	}
	for _, v := range []any{nil, "true", 1.0} {
		op := &openapi3.Operation{Extensions: map[string]any{idempotentExt: v}}
		if _, err := idempotent(op, Partner); err == nil {
			t.Errorf("idempotent(%#v) accepted", v)
		}
	}
}
