package contract

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/orderhub/orderhub/openapi"
	"github.com/orderhub/orderhub/tests/conformance"
	"github.com/orderhub/orderhub/tests/testkit"
)

func TestSpecLoadsAndValidates(t *testing.T) {
	doc, err := conformance.Load()
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi %q, want 3.0.3", doc.OpenAPI)
	}
	if doc.Paths.Len() == 0 {
		t.Error("the contract has no paths")
	}
}

// exampleWalker validates, explicitly, every example of the document against
// its schema. It does not rely on doc.Validate (which checks examples too):
// a loader option or a kin-openapi change could turn that off silently.
type exampleWalker struct {
	t       *testing.T
	counts  map[string]int             // examples checked, by kind
	checked map[*openapi3.Example]bool // named examples checked (components included)
	schemas map[*openapi3.Schema]bool  // schemas whose own examples were checked
}

func (w *exampleWalker) check(kind, where string, schema *openapi3.SchemaRef, value any, opts ...openapi3.SchemaValidationOption) {
	w.t.Helper()
	w.counts[kind]++
	if schema == nil || schema.Value == nil {
		w.t.Errorf("%s: example without a schema", where)
		return
	}
	// As a JSON document: what the example stands for on the wire.
	raw, err := json.Marshal(value)
	if err != nil {
		w.t.Errorf("%s: example is not JSON: %v", where, err)
		return
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		w.t.Errorf("%s: %v", where, err)
		return
	}
	opts = append(opts, openapi3.MultiErrors(), openapi3.EnableFormatValidation())
	if err := schema.Value.VisitJSON(v, opts...); err != nil {
		w.t.Errorf("%s: example %s does not match its schema: %v", where, raw, err)
	}
	w.schema(where+" schema", schema)
}

// examples checks a single example and named examples against schema.
func (w *exampleWalker) examples(kind, where string, schema *openapi3.SchemaRef, example any, examples openapi3.Examples, opts ...openapi3.SchemaValidationOption) {
	w.t.Helper()
	if example != nil {
		w.check(kind, where+" example", schema, example, opts...)
	}
	for _, name := range sortedKeys(examples) {
		ex := examples[name]
		if ex == nil || ex.Value == nil {
			w.t.Errorf("%s examples.%s: unresolved", where, name)
			continue
		}
		w.checked[ex.Value] = true
		w.check(kind, where+" examples."+name, schema, ex.Value.Value, opts...)
	}
	if schema != nil {
		w.schema(where+" schema", schema)
	}
}

// schema checks the examples written inside a schema, recursively.
func (w *exampleWalker) schema(where string, ref *openapi3.SchemaRef) {
	w.t.Helper()
	if ref == nil || ref.Value == nil || w.schemas[ref.Value] {
		return
	}
	s := ref.Value
	w.schemas[s] = true
	if ref.Ref != "" {
		where = ref.Ref
	}
	if s.Example != nil {
		w.check("schema", where+" example", ref, s.Example)
	}
	for _, name := range sortedKeys(s.Properties) {
		w.schema(where+".properties."+name, s.Properties[name])
	}
	w.schema(where+".items", s.Items)
	w.schema(where+".additionalProperties", s.AdditionalProperties.Schema)
	w.schema(where+".not", s.Not)
	for i, sub := range append(append(append(openapi3.SchemaRefs{}, s.AllOf...), s.AnyOf...), s.OneOf...) {
		w.schema(fmt.Sprintf("%s.xOf[%d]", where, i), sub)
	}
}

func (w *exampleWalker) parameter(where string, ref *openapi3.ParameterRef) {
	w.t.Helper()
	if ref == nil || ref.Value == nil {
		return
	}
	p := ref.Value
	where = fmt.Sprintf("%s parameter %s %s", where, p.In, p.Name)
	w.examples("parameter", where, p.Schema, p.Example, p.Examples, openapi3.VisitAsRequest())
	w.content("parameter", where, p.Content, openapi3.VisitAsRequest())
}

func (w *exampleWalker) header(where, name string, ref *openapi3.HeaderRef) {
	w.t.Helper()
	if ref == nil || ref.Value == nil {
		return
	}
	h := ref.Value
	where = where + " header " + name
	w.examples("header", where, h.Schema, h.Example, h.Examples, openapi3.VisitAsResponse())
	w.content("header", where, h.Content, openapi3.VisitAsResponse())
}

func (w *exampleWalker) content(kind, where string, content openapi3.Content, opts ...openapi3.SchemaValidationOption) {
	w.t.Helper()
	for _, mediaType := range sortedKeys(content) {
		mt := content[mediaType]
		w.examples(kind, where+" "+mediaType, mt.Schema, mt.Example, mt.Examples, opts...)
	}
}

func (w *exampleWalker) requestBody(where string, ref *openapi3.RequestBodyRef) {
	w.t.Helper()
	if ref == nil || ref.Value == nil {
		return
	}
	w.content("requestBody", where+" requestBody", ref.Value.Content, openapi3.VisitAsRequest())
}

func (w *exampleWalker) response(where string, ref *openapi3.ResponseRef) {
	w.t.Helper()
	if ref == nil || ref.Value == nil {
		return
	}
	for _, name := range sortedKeys(ref.Value.Headers) {
		w.header(where, name, ref.Value.Headers[name])
	}
	w.content("response", where, ref.Value.Content, openapi3.VisitAsResponse())
}

func (w *exampleWalker) document(doc *openapi3.T) {
	w.t.Helper()
	paths := doc.Paths.Map()
	for _, path := range sortedKeys(paths) {
		item := paths[path]
		for _, p := range item.Parameters {
			w.parameter(path, p)
		}
		ops := item.Operations()
		for _, method := range sortedKeys(ops) {
			op := ops[method]
			where := method + " " + path
			for _, p := range op.Parameters {
				w.parameter(where, p)
			}
			w.requestBody(where, op.RequestBody)
			responses := op.Responses.Map()
			for _, code := range sortedKeys(responses) {
				w.response(where+" "+code, responses[code])
			}
		}
	}
	c := doc.Components
	if c == nil {
		return
	}
	for _, name := range sortedKeys(c.Schemas) {
		w.schema("#/components/schemas/"+name, c.Schemas[name])
	}
	for _, name := range sortedKeys(c.Parameters) {
		w.parameter("#/components/parameters/"+name, c.Parameters[name])
	}
	for _, name := range sortedKeys(c.Headers) {
		w.header("#/components/headers", name, c.Headers[name])
	}
	for _, name := range sortedKeys(c.RequestBodies) {
		w.requestBody("#/components/requestBodies/"+name, c.RequestBodies[name])
	}
	for _, name := range sortedKeys(c.Responses) {
		w.response("#/components/responses/"+name, c.Responses[name])
	}
	// A component example has no schema of its own: it is checked where it
	// is used. One used nowhere is checked nowhere.
	for _, name := range sortedKeys(c.Examples) {
		if ex := c.Examples[name]; ex == nil || ex.Value == nil || !w.checked[ex.Value] {
			w.t.Errorf("#/components/examples/%s is used by no schema-bearing object, so nothing checks it", name)
		}
	}
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestSpecExamplesMatchSchemas(t *testing.T) {
	// Loaded without doc.Validate, so what fails here is this walk's finding.
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapi.Spec)
	if err != nil {
		t.Fatalf("loading the contract: %v", err)
	}
	w := &exampleWalker{t: t, counts: map[string]int{}, checked: map[*openapi3.Example]bool{}, schemas: map[*openapi3.Schema]bool{}}
	w.document(doc)
	t.Logf("examples checked: %v", w.counts)
	// The walk must have found the examples the contract is known to have.
	for _, kind := range []string{"parameter", "requestBody", "response", "schema"} {
		if w.counts[kind] == 0 {
			t.Errorf("no %s examples found: the walk is broken", kind)
		}
	}
}

// tableCode is a row of a result-code table in an operation's description.
var tableCode = regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\|")

// TestResultCodeEnumsMatchTables: each partner operation's result code
// enum, what mocks and other languages' clients see, lists exactly the codes
// of the table its description documents, in the same order; every code
// is one of the shared ResultCode's.
func TestResultCodeEnumsMatchTables(t *testing.T) {
	doc, err := conformance.Load()
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]bool{}
	for _, v := range doc.Components.Schemas["ResultCode"].Value.Enum {
		all[fmt.Sprint(v)] = true
	}
	checked := 0
	for path, item := range doc.Paths.Map() {
		op := item.Post
		if op == nil || slices.Contains(op.Tags, "operations") || slices.Contains(op.Tags, "service") {
			continue
		}
		var table []string
		for _, m := range tableCode.FindAllStringSubmatch(op.Description, -1) {
			table = append(table, m[1])
		}
		result := op.Responses.Status(200).Value.Content.Get("application/json").Schema.Value.Properties["result"].Value
		var enum []string
		for _, v := range result.Properties["resultCode"].Value.Enum {
			enum = append(enum, fmt.Sprint(v))
			if !all[fmt.Sprint(v)] {
				t.Errorf("%s: code %v is not a ResultCode", path, v)
			}
		}
		if len(table) == 0 || !slices.Equal(enum, table) {
			t.Errorf("%s: resultCode enum %v, its table %v", path, enum, table)
		}
		checked++
	}
	if want := len(testkit.PartnerOperations(t)); checked != want {
		t.Errorf("checked %d partner operations, want %d", checked, want)
	}
}
