package clients

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Error is a clients file the registry refuses: where the problem is and
// what it is, in the file's own terms (its field names, its lines and
// columns), never in Go's.
type Error struct {
	File   string // the file's path; "" for Parse
	Line   int    // 1-based; 0 when the problem has no one place
	Column int    // 1-based; 0 when only the line is known
	Msg    string
	err    error // the cause, when there is one worth matching (a missing file)
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File + ": ")
	}
	switch {
	case e.Line > 0 && e.Column > 0:
		fmt.Fprintf(&b, "line %d, column %d: ", e.Line, e.Column)
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the cause: errors.Is(err, fs.ErrNotExist) holds for a
// missing file.
func (e *Error) Unwrap() error { return e.err }

// errorAt is an Error at n's position (none for a nil n).
func errorAt(n *yaml.Node, msg string) *Error {
	e := &Error{Msg: msg}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	return e
}

// decode parses data, one YAML (or JSON) document, and checks it against
// File field by field, so that every mistake is reported where it is and
// in the file's terms. It returns the document's root node.
func decode(data []byte) (*yaml.Node, *Error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Msg: "the file is empty"}
		}
		return nil, syntaxError(data, err)
	}
	// A second document would be ignored by a single Decode: refuse it
	// rather than serve half of what the operator wrote.
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, errorAt(&extra, `a second YAML document begins here; the file must hold one (a stray "---"?)`)
	case !errors.Is(err, io.EOF):
		return nil, syntaxError(data, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, &Error{Msg: "the file is empty"}
	}
	root := doc.Content[0]
	c := checker{root: root, visiting: map[*yaml.Node]bool{}}
	if err := c.check(root, reflect.TypeFor[File](), nil); err != nil {
		return nil, err
	}
	return root, nil
}

// checker walks a document alongside the Go type it decodes into.
type checker struct {
	root     *yaml.Node
	visiting map[*yaml.Node]bool // alias targets being walked: an alias may point at its own ancestor
}

func (c *checker) check(n *yaml.Node, t reflect.Type, path []any) *Error {
	if n.Kind == yaml.AliasNode {
		if c.visiting[n.Alias] {
			return c.errorAt(n, path, fmt.Sprintf("the alias *%s refers to a value that contains it", n.Value))
		}
		c.visiting[n.Alias] = true
		defer delete(c.visiting, n.Alias)
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil // an absent value: required ones are checked afterwards
	}
	switch t.Kind() {
	case reflect.Struct:
		return c.checkFields(n, t, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return c.errorAt(n, path, "expected a list, found "+found(n))
		}
		for i, item := range n.Content {
			if err := c.check(item, t.Elem(), append(slices.Clip(path), i)); err != nil {
				return err
			}
		}
		return nil
	default:
		// A scalar: whatever yaml turns into t is fine ("yes" is true, say).
		if n.Kind != yaml.ScalarNode || n.Decode(reflect.New(t).Interface()) != nil {
			return c.errorAt(n, path, "expected "+scalarNoun(t)+", found "+found(n))
		}
		return nil
	}
}

// checkFields checks a mapping against struct type t: every key one of its
// fields, once.
func (c *checker) checkFields(n *yaml.Node, t reflect.Type, path []any) *Error {
	names, types := fieldsOf(t)
	owner := ownerOf(t)
	if n.Kind != yaml.MappingNode {
		return c.errorAt(n, path, fmt.Sprintf("expected %s fields (%s), found %s", owner, strings.Join(names, ", "), found(n)))
	}
	seen := map[string]*yaml.Node{}
	for k := 0; k+1 < len(n.Content); k += 2 {
		key, val := n.Content[k], n.Content[k+1]
		if key.ShortTag() == "!!merge" { // "<<: *defaults": yaml merges those fields in
			merged := []*yaml.Node{val}
			if val.Kind == yaml.SequenceNode {
				merged = val.Content
			}
			for _, m := range merged {
				if err := c.check(m, t, path); err != nil {
					return err
				}
			}
			continue
		}
		ft, ok := types[key.Value]
		if !ok {
			list := owner + " fields are " + strings.Join(names, ", ")
			if len(names) == 1 {
				list = owner + " only field is " + names[0]
			}
			return c.errorAt(key, path, fmt.Sprintf("unknown field %q%s; %s", key.Value, didYouMean(key.Value, names), list))
		}
		if first, dup := seen[key.Value]; dup {
			return c.errorAt(key, path, fmt.Sprintf("%s is given twice (first on line %d)", key.Value, first.Line))
		}
		seen[key.Value] = key
		if err := c.check(val, ft, append(slices.Clip(path), key.Value)); err != nil {
			return err
		}
	}
	return nil
}

// errorAt is an Error at n naming the place path leads to, the way parse
// names client entries: clients[1] "isv-2": keys[0].version.
func (c *checker) errorAt(n *yaml.Node, path []any, msg string) *Error {
	if len(path) >= 2 && path[0] == "clients" {
		if i, ok := path[1].(int); ok {
			var id string
			if idNode := find(c.root, "clients", i, "clientId"); idNode != nil && idNode.Kind == yaml.ScalarNode {
				id = idNode.Value
			}
			at := where(i, id)
			if rest := pathString(path[2:]); rest != "" {
				at += ": " + rest
			}
			return errorAt(n, at+": "+msg)
		}
	}
	if at := pathString(path); at != "" {
		msg = at + ": " + msg
	}
	return errorAt(n, msg)
}

// fieldsOf lists struct type t's fields as the file spells them, in
// order, and their types.
func fieldsOf(t reflect.Type) ([]string, map[string]reflect.Type) {
	var names []string
	types := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		names = append(names, name)
		types[name] = f.Type
	}
	return names, types
}

// ownerOf names whose fields a struct type's are, for messages.
func ownerOf(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Entry]():
		return "a client's"
	case reflect.TypeFor[KeyEntry]():
		return "a key's"
	}
	return "the file's"
}

func scalarNoun(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	}
	return "a single value"
}

// found describes what a node holds without quoting text, which may be
// key material.
func found(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!int", "!!float", "!!bool":
		return n.Value
	case "!!str":
		return "text"
	}
	return "a " + strings.TrimPrefix(n.ShortTag(), "!!")
}

// find returns the node path leads to from n (mapping keys and sequence
// indexes), or nil.
func find(n *yaml.Node, path ...any) *yaml.Node {
	for _, step := range path {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		var next *yaml.Node
		switch s := step.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for k := 0; k+1 < len(n.Content); k += 2 {
					if n.Content[k].Value == s {
						next = n.Content[k+1]
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && s < len(n.Content) {
				next = n.Content[s]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// findNearest is find, falling back to the deepest node on the way: the
// place to point at when the field itself is absent.
func findNearest(n *yaml.Node, path ...any) *yaml.Node {
	for i := len(path); i >= 0; i-- {
		if m := find(n, path[:i]...); m != nil {
			return m
		}
	}
	return nil
}

// pathString writes a path as the messages do: keys[1].version.
func pathString(path []any) string {
	var b strings.Builder
	for _, step := range path {
		switch s := step.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", s)
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s)
		}
	}
	return b.String()
}

// didYouMean suggests the candidate nearest to s, when one is near enough
// to be the intended spelling.
func didYouMean(s string, candidates []string) string {
	best, bestDist := "", 3 // at most two edits
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance counts the insertions, deletions, substitutions and swaps
// of neighbours that turn a into b.
func editDistance(a, b string) int {
	x, y := []rune(a), []rune(b)
	d := make([][]int, len(x)+1)
	for i := range d {
		d[i] = make([]int, len(y)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(x); i++ {
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(x)][len(y)]
}

// yamlProblem splits one of yaml's syntax errors, "yaml: line 3: did not
// find expected key", into the problem and the line (0 when none).
func yamlProblem(err error) (problem string, line int) {
	problem = strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(problem, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(n); err == nil {
				return after, l
			}
		}
	}
	return problem, 0
}

// syntaxError says where data stops being valid JSON or YAML. JSON gets
// encoding/json's offset and words. yaml reports a line only, and for
// some errors the line where the enclosing block began, so the place is
// found as the shortest prefix of data that fails with the same problem:
// the point where the text stopped being valid.
func syntaxError(data []byte, err error) *Error {
	if looksLikeJSON(data) {
		var v any
		if se, ok := errors.AsType[*json.SyntaxError](json.Unmarshal(data, &v)); ok {
			line, col := position(data, int(se.Offset)-1)
			return &Error{Line: line, Column: col, Msg: "not valid JSON: " + se.Error()}
		}
	}
	problem, line := yamlProblem(err)
	k := sort.Search(len(data)+1, func(k int) bool {
		err := parseAll(data[:k])
		if err == nil {
			return false
		}
		p, _ := yamlProblem(err)
		return p == problem
	})
	e := &Error{Line: line, Msg: "not valid YAML: " + problem}
	if k > 0 && k <= len(data) {
		e.Line, e.Column = position(data, k-1)
	}
	return e
}

// parseAll parses every document of data, for syntax errors only.
func parseAll(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

func looksLikeJSON(data []byte) bool {
	t := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\uFEFF")), " \t\r\n")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

// position is the 1-based line and column (in characters) of data's byte
// at offset.
func position(data []byte, offset int) (line, column int) {
	offset = max(0, min(offset, len(data)))
	before := data[:offset]
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	return bytes.Count(before, []byte("\n")) + 1, utf8.RuneCount(before[lineStart:]) + 1
}
