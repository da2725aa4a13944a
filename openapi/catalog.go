package openapi

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Kind says who calls an endpoint.
type Kind int

const (
	Unknown  Kind = iota // not in the contract
	Partner              // the partner APIs: signed messages with the result envelope
	Operator             // the operator API (tag "operations"), under OperatorPrefix, bearer token
	Service              // health, readiness, metrics, the contract itself (tag "service")
)

// String returns "unknown", "partner", "operator" or "service".
func (k Kind) String() string {
	switch k {
	case Unknown:
		return "unknown"
	case Partner:
		return "partner"
	case Operator:
		return "operator"
	case Service:
		return "service"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// OperatorPrefix is the path prefix of the operator API: every operator path
// has it and no other path does (Load checks this).
const OperatorPrefix = "/ops/"

// The tags that set an operation's Kind. An operation with neither is a
// partner API (today tagged D-Store or WorldFirst), so that a new partner's
// tag needs no change here.
const (
	operatorTag = "operations"
	serviceTag  = "service"
)

// idempotentExt marks a partner operation whose repeats (same requestId) get
// the first answer.
const idempotentExt = "x-orderhub-idempotent"

// Operation is one operation of the contract.
type Operation struct {
	ID         string // operationId, as written
	Method     string // "POST", ...
	Path       string // OpenAPI path template, e.g. /ops/orders/{requestOrderId}
	Kind       Kind
	Idempotent bool // x-orderhub-idempotent: repeats with the same requestId get the first answer
	// Partner operations only: the top-level fields of the request body,
	// sorted, and the result codes its answer declares (result.resultCode's
	// enum), in the contract's order. Shared: callers must not modify them.
	Fields      []string
	ResultCodes []string
}

// opKey is a struct, not method+" "+path, so that a lookup builds no string.
type opKey struct{ method, path string }

// Catalog is the contract, parsed and validated once. It is read-only after
// Load and safe for concurrent use.
type Catalog struct {
	doc   *openapi3.T
	ops   map[opKey]Operation
	paths map[string]Kind // path template -> the kind of its operations
	list  []Operation     // sorted by ID
}

// Load parses and validates Spec, and classifies its operations. Errors:
// parse or validation failures; an operation without operationId; a partner
// operation that is not POST; an operator path without OperatorPrefix or a
// non-operator path with it; operations of different kinds on one path;
// x-orderhub-idempotent on a non-partner operation or not a boolean.
func Load() (*Catalog, error) {
	doc, err := parse(Spec)
	if err != nil {
		return nil, err
	}
	return newCatalog(doc)
}

// parse loads and validates a contract, then drops its servers.
func parse(data []byte) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("openapi: loading the contract: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi: the contract is invalid: %w", err)
	}
	// Without servers kin-openapi's router matches paths only, not hosts.
	doc.Servers = nil
	return doc, nil
}

// newCatalog classifies the operations of a parsed, validated contract and
// checks the rules Load documents.
func newCatalog(doc *openapi3.T) (*Catalog, error) {
	c := &Catalog{doc: doc, ops: map[opKey]Operation{}, paths: map[string]Kind{}}
	var errs []error
	ids := map[string]bool{}
	if doc.Paths == nil {
		return nil, errors.New("openapi: the contract has no paths")
	}
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		pathKind := Unknown
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.OperationID == "" {
				errs = append(errs, fmt.Errorf("%s: no operationId", where))
				continue
			}
			if ids[op.OperationID] {
				errs = append(errs, fmt.Errorf("%s: operationId %s is used twice", where, op.OperationID))
			}
			ids[op.OperationID] = true
			kind, err := kindOf(op)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s (%s): %w", where, op.OperationID, err))
				continue
			}
			if kind == Partner && method != "POST" {
				errs = append(errs, fmt.Errorf("%s (%s): a partner operation must be POST", where, op.OperationID))
			}
			idem, err := idempotent(op, kind)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s (%s): %w", where, op.OperationID, err))
			}
			switch {
			case pathKind == Unknown:
				pathKind = kind
			case pathKind != kind:
				errs = append(errs, fmt.Errorf("%s (%s): %s operation on a path that also has %s operations", where, op.OperationID, kind, pathKind))
			}
			o := Operation{ID: op.OperationID, Method: method, Path: path, Kind: kind, Idempotent: idem}
			if kind == Partner {
				if o.Fields, o.ResultCodes, err = partnerShape(op); err != nil {
					errs = append(errs, fmt.Errorf("%s (%s): %w", where, op.OperationID, err))
				}
			}
			c.ops[opKey{method, path}] = o
			c.list = append(c.list, o)
		}
		if pathKind == Unknown {
			continue // no operations, or none that could be classified (reported)
		}
		under := strings.HasPrefix(path, OperatorPrefix)
		switch {
		case pathKind == Operator && !under:
			errs = append(errs, fmt.Errorf("operator path %s is not under %s", path, OperatorPrefix))
		case pathKind != Operator && under:
			errs = append(errs, fmt.Errorf("%s path %s is under %s, which is the operator API's", pathKind, path, OperatorPrefix))
		}
		c.paths[path] = pathKind
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("openapi: the contract breaks orderhub's rules:\n%w", err)
	}
	slices.SortFunc(c.list, func(a, b Operation) int { return strings.Compare(a.ID, b.ID) })
	return c, nil
}

// kindOf classifies an operation by its tags.
func kindOf(op *openapi3.Operation) (Kind, error) {
	operator, service := slices.Contains(op.Tags, operatorTag), slices.Contains(op.Tags, serviceTag)
	switch {
	case operator && service:
		return Unknown, fmt.Errorf("tagged both %q and %q", operatorTag, serviceTag)
	case operator:
		return Operator, nil
	case service:
		return Service, nil
	}
	return Partner, nil
}

// partnerShape reads what a partner operation's schemas say of its
// messages: the request body's top-level fields and the result codes of
// its 200 answer.
func partnerShape(op *openapi3.Operation) (fields, codes []string, err error) {
	if op.RequestBody == nil || op.RequestBody.Value == nil || jsonSchema(op.RequestBody.Value.Content) == nil {
		return nil, nil, errors.New("a partner operation must take a JSON body")
	}
	body := jsonSchema(op.RequestBody.Value.Content)
	fields = slices.Sorted(maps.Keys(body.Properties))
	var answer *openapi3.Schema
	if ok := op.Responses.Status(200); ok != nil && ok.Value != nil {
		answer = jsonSchema(ok.Value.Content)
	}
	if answer == nil || answer.Properties["result"] == nil {
		return nil, nil, errors.New("a partner operation's 200 answer must be JSON with a result")
	}
	code := answer.Properties["result"].Value.Properties["resultCode"]
	if code == nil || len(code.Value.Enum) == 0 {
		return nil, nil, errors.New("a partner operation's result.resultCode must list its codes (enum)")
	}
	for _, v := range code.Value.Enum {
		s, ok := v.(string)
		if !ok {
			return nil, nil, fmt.Errorf("result code %v is not a string", v)
		}
		codes = append(codes, s)
	}
	return fields, codes, nil
}

// jsonSchema is the application/json schema of content, or nil.
func jsonSchema(content openapi3.Content) *openapi3.Schema {
	mt := content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		return nil
	}
	return mt.Schema.Value
}

// idempotent reads x-orderhub-idempotent (kin-openapi decodes extensions
// with encoding/json: a YAML boolean arrives as a bool).
func idempotent(op *openapi3.Operation, kind Kind) (bool, error) {
	v, ok := op.Extensions[idempotentExt]
	if !ok {
		return false, nil
	}
	if kind != Partner {
		return false, fmt.Errorf("%s on a %s operation: only partner operations can be idempotent", idempotentExt, kind)
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%s must be true or false, not %#v", idempotentExt, v)
	}
	return b, nil
}

// Doc returns the parsed contract for request validation, with Servers
// removed (kin-openapi's router would otherwise match on host).
//
// The document is the catalog's: callers must not modify it.
func (c *Catalog) Doc() *openapi3.T { return c.doc }

// Operation returns the operation of method on the path template (as in the
// contract, e.g. /ops/orders/{requestOrderId}). method is matched exactly, as
// HTTP methods are case-sensitive: "POST", not "post".
func (c *Catalog) Operation(method, path string) (Operation, bool) {
	op, ok := c.ops[opKey{method, path}]
	return op, ok
}

// OperationByID returns the operation whose operationId is id.
func (c *Catalog) OperationByID(id string) (Operation, bool) {
	for _, op := range c.list {
		if op.ID == id {
			return op, true
		}
	}
	return Operation{}, false
}

// PathKind says who calls the endpoint at path: for a path template of the
// contract, its operations' kind (whatever the method); for any other path,
// Operator under OperatorPrefix (an unknown operator path is still the
// operator API's), else Unknown.
func (c *Catalog) PathKind(path string) Kind {
	if k, ok := c.paths[path]; ok {
		return k
	}
	if strings.HasPrefix(path, OperatorPrefix) {
		return Operator
	}
	return Unknown
}

// Operations lists every operation, sorted by ID. The slice is the caller's.
func (c *Catalog) Operations() []Operation {
	return slices.Clone(c.list)
}

// IdempotentIDs lists the operationIds of the idempotent (partner)
// operations, the notifications whose answers are stored, sorted.
func (c *Catalog) IdempotentIDs() []string {
	var ids []string
	for _, op := range c.list {
		if op.Idempotent {
			ids = append(ids, op.ID)
		}
	}
	return ids
}

// IDs lists the operationIds of one kind, sorted.
func (c *Catalog) IDs(k Kind) []string {
	var ids []string
	for _, op := range c.list {
		if op.Kind == k {
			ids = append(ids, op.ID)
		}
	}
	return ids
}
