package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"
	"github.com/openconfig/ygot/ygot"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/internal/redact"
)

// The value checks of this file say, in operator words, which node a value
// does not fit and by which rule of the model, before ygot sees the value
// (ygot's own texts name Go types and struct fields and quote the value
// whole). Apply checks the kind of every value (boolean, enumeration,
// integer, string, container, list); Validate checks the restrictions
// (range, length, pattern) when ygot's validation fails. Whatever ygot
// still refuses is rendered by modelError.

// checkEdit checks the value of an edit of the node at elems (described
// by e; the root when elems is empty).
func checkEdit(elems []*gnmi.PathElem, e *yang.Entry, v *gnmi.TypedValue) error {
	if e == nil || v == nil {
		return nil
	}
	if e.IsLeaf() || e.IsLeafList() {
		switch x := v.GetValue().(type) {
		case *gnmi.TypedValue_JsonIetfVal:
			return checkLeafJSON(elems, e, x.JsonIetfVal)
		case *gnmi.TypedValue_JsonVal:
			return checkLeafJSON(elems, e, x.JsonVal)
		}
		return checkScalar(elems, e, v, false)
	}
	data, err := jsonBytes(v)
	if err != nil {
		return invalidAt(elems, "%s takes a JSON object, not a scalar value", nodeWords(e))
	}
	doc, err := decodeValueJSON(elems, data)
	if err != nil {
		return err
	}
	return checkNode(elems, e, doc, len(elems) == 0, false)
}

func checkLeafJSON(elems []*gnmi.PathElem, e *yang.Entry, data []byte) error {
	doc, err := decodeValueJSON(elems, data)
	if err != nil {
		return err
	}
	if e.IsLeafList() {
		if arr, ok := doc.([]any); ok {
			for _, el := range arr {
				if err := checkLeaf(elems, e, el, false); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return checkLeaf(elems, e, doc, false)
}

// decodeValueJSON decodes one JSON value with its numbers kept as text.
func decodeValueJSON(elems []*gnmi.PathElem, data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var doc any
	if err := d.Decode(&doc); err != nil {
		if len(bytes.TrimSpace(data)) == 0 {
			return nil, invalidAt(elems, "the value is empty; give a JSON value")
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, invalidAt(elems, "the value is not valid JSON (at byte %d of %d: %s)", se.Offset, len(data), se.Error())
		}
		return nil, invalidAt(elems, "the value is not valid JSON (%d bytes: it ends too soon)", len(data))
	}
	if d.More() {
		return nil, invalidAt(elems, "the value holds more than one JSON value")
	}
	return doc, nil
}

// memberName is the name of an RFC 7951 JSON member without its module
// prefix: "pki-authority:authority" is "authority".
func memberName(k string) string {
	if _, local, ok := strings.Cut(k, ":"); ok {
		return local
	}
	return k
}

// checkNode checks a JSON value for a container, a list entry or the root.
// strict adds the restrictions (range, length, pattern) of leaves.
func checkNode(elems []*gnmi.PathElem, e *yang.Entry, v any, root, strict bool) error {
	obj, ok := v.(map[string]any)
	if !ok {
		return invalidAt(elems, "%s takes a JSON object, not %s", nodeWords(e), jsonWords(v))
	}
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		name := memberName(k)
		child := childEntry(e, name)
		at := appendElemCopy(elems, &gnmi.PathElem{Name: name})
		if child == nil {
			where := "here"
			if root {
				where = "at the root"
			}
			return &api.PathError{Path: api.PathAt(elems), Err: withKind(ErrUnknownPath, fmt.Errorf(
				"there is no element %s %s (the elements are: %s)", redact.Value(name), where, strings.Join(childNames(e), ", ")))}
		}
		if child.ReadOnly() {
			continue // state is not written; ygot keeps what it knows
		}
		if err := checkChild(at, child, obj[k], strict); err != nil {
			return err
		}
	}
	return nil
}

func checkChild(at []*gnmi.PathElem, c *yang.Entry, v any, strict bool) error {
	switch {
	case c.IsLeaf():
		return checkLeaf(at, c, v, strict)
	case c.IsLeafList():
		arr, ok := v.([]any)
		if !ok {
			return invalidAt(at, "%s is a leaf-list: give its values as a JSON array, not %s", c.Name, jsonWords(v))
		}
		for _, el := range arr {
			if err := checkLeaf(at, c, el, strict); err != nil {
				return err
			}
		}
	case c.IsList():
		arr, ok := v.([]any)
		if !ok {
			return invalidAt(at, "%s is a list: give its entries as a JSON array of objects, not %s", c.Name, jsonWords(v))
		}
		seen := map[string]int{}
		for i, el := range arr {
			if err := checkEntryKey(at, c, el, i, seen); err != nil {
				return err
			}
			if err := checkNode(withListKey(at, c, el), c, el, false, strict); err != nil {
				return err
			}
		}
	default:
		return checkNode(at, c, v, false, strict)
	}
	return nil
}

// checkEntryKey checks that entry i of list c (a JSON object; checkNode
// refuses anything else) carries every key leaf, with or without its
// module prefix, and that no earlier entry of the same array (seen: key
// to index) has the same key: ygot would otherwise fail with a Go type
// name, or merge the two entries into one.
func checkEntryKey(at []*gnmi.PathElem, c *yang.Entry, el any, i int, seen map[string]int) error {
	obj, ok := el.(map[string]any)
	if !ok {
		return nil
	}
	keys := strings.Fields(c.Key)
	vals := make([]string, 0, len(keys))
	for _, k := range keys {
		v, ok := jsonMember(obj, k)
		if !ok || v == nil {
			return invalidAt(at, "entry %d of list %s has no key %s: every entry needs its key", i+1, c.Name, k)
		}
		vals = append(vals, fmt.Sprint(v))
	}
	id := strings.Join(vals, "\x00")
	if j, dup := seen[id]; dup {
		words := make([]string, len(keys))
		for n, k := range keys {
			words[n] = k + " " + redact.Value(vals[n])
		}
		return invalidAt(at, "entries %d and %d of list %s have the same key %s: give each entry once", j+1, i+1, c.Name, strings.Join(words, ", "))
	}
	seen[id] = i
	return nil
}

// jsonMember is member name of an RFC 7951 object, written with or
// without a module prefix.
func jsonMember(obj map[string]any, name string) (any, bool) {
	if v, ok := obj[name]; ok {
		return v, true
	}
	for k, v := range obj {
		if i := strings.IndexByte(k, ':'); i >= 0 && k[i+1:] == name {
			return v, true
		}
	}
	return nil, false
}

// childEntry finds the child name of e, looking through choices and cases.
func childEntry(e *yang.Entry, name string) *yang.Entry {
	if e == nil {
		return nil
	}
	if c := e.Dir[name]; c != nil && !c.IsChoice() && !c.IsCase() {
		return c
	}
	for _, c := range e.Dir {
		if c.IsChoice() || c.IsCase() {
			if f := childEntry(c, name); f != nil {
				return f
			}
		}
	}
	return nil
}

func childNames(e *yang.Entry) []string {
	var out []string
	for n, c := range e.Dir {
		if c.IsChoice() || c.IsCase() {
			out = append(out, childNames(c)...)
			continue
		}
		if !c.ReadOnly() && c.RPC == nil && c.Kind != yang.NotificationEntry {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// invalidAt is an ErrInvalid *PathError at elems.
func invalidAt(elems []*gnmi.PathElem, format string, args ...any) error {
	return &api.PathError{Path: api.PathAt(elems), Err: withKind(api.ErrInvalid, fmt.Errorf(format, args...))}
}

// nodeWords names the kind of a schema node.
func nodeWords(e *yang.Entry) string {
	switch {
	case e.Parent == nil:
		return "the root"
	case e.IsList():
		return "an entry of list " + e.Name
	}
	return "container " + e.Name
}

// jsonWords names the kind of a decoded JSON value.
func jsonWords(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	}
	return "an object"
}

// modelError renders an error of ygot (SetNode, Unmarshal, Validate) that
// the checks above did not foresee: the node and ygot's last reason,
// without Go type names and without the value.
func modelError(elems []*gnmi.PathElem, err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, "; "); i >= 0 {
		msg = msg[i+2:]
	}
	msg = strings.TrimPrefix(msg, "rpc error: code = Unknown desc = ")
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return invalidAt(elems, "the value does not fit the model (%s)", redact.Message(msg))
}

// validateError explains a failed ygot validation of the node s at elems:
// the first leaf whose value breaks a restriction, in operator words,
// else ygot's reason without the value.
func validateError(elems []*gnmi.PathElem, s ygot.GoStruct, e *yang.Entry, verr error) error {
	js, err := EmitJSON(s)
	if err == nil {
		if doc, err := decodeValueJSON(elems, js); err == nil {
			if err := checkNode(elems, e, doc, len(elems) == 0, true); err != nil {
				var pe *api.PathError
				if errors.As(err, &pe) {
					pe.Op = "validate"
				}
				return err
			}
		}
	}
	var pe *api.PathError
	errors.As(modelError(elems, verr), &pe)
	pe.Op = "validate"
	return pe
}
