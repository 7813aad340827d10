package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"
	"github.com/openconfig/ygot/ygot"
	"github.com/openconfig/ygot/ytypes"

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
			return &api.PathError{Path: prefixString(elems), Err: withKind(ErrUnknownPath, fmt.Errorf(
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

// checkLeaf checks one JSON value (RFC 7951) of leaf e.
func checkLeaf(at []*gnmi.PathElem, e *yang.Entry, v any, strict bool) error {
	t := e.Type
	if t == nil {
		return nil
	}
	if v == nil {
		if t.Kind == yang.Yempty {
			return nil
		}
		return invalidAt(at, "null is not a value of %s; to remove it, delete it", e.Name)
	}
	switch t.Kind {
	case yang.Ybool:
		if _, ok := v.(bool); !ok {
			return mismatch(at, e, v, "a boolean (true or false)")
		}
	case yang.Yenum:
		s, ok := v.(string)
		if !ok || t.Enum == nil || !t.Enum.IsDefined(s) {
			return mismatch(at, e, v, "one of "+strings.Join(t.Enum.Names(), ", "))
		}
	case yang.Yint8, yang.Yint16, yang.Yint32, yang.Yint64, yang.Yuint8, yang.Yuint16, yang.Yuint32, yang.Yuint64:
		var text string
		switch n := v.(type) {
		case json.Number:
			text = n.String()
		case string:
			if t.Kind != yang.Yint64 && t.Kind != yang.Yuint64 {
				return invalidAt(at, "%s is a string; %s is an integer (%s%s): give a JSON number", redact.Value(n), e.Name, t.Kind, rangeWords(t))
			}
			text = n
		default:
			return mismatch(at, e, v, fmt.Sprintf("an integer (%s%s)", t.Kind, rangeWords(t)))
		}
		return checkInt(at, e, text, strict)
	case yang.Ystring:
		s, ok := v.(string)
		if !ok {
			return mismatch(at, e, v, "a string")
		}
		if strict {
			return checkString(at, e, s)
		}
	}
	return nil
}

// checkScalar checks a gNMI scalar TypedValue of leaf e.
func checkScalar(at []*gnmi.PathElem, e *yang.Entry, v *gnmi.TypedValue, strict bool) error {
	switch x := v.GetValue().(type) {
	case *gnmi.TypedValue_StringVal:
		return checkLeaf(at, e, x.StringVal, strict)
	case *gnmi.TypedValue_BoolVal:
		return checkLeaf(at, e, x.BoolVal, strict)
	case *gnmi.TypedValue_IntVal:
		if isInt(e.Type) {
			return checkInt(at, e, strconv.FormatInt(x.IntVal, 10), strict)
		}
		return checkLeaf(at, e, json.Number(strconv.FormatInt(x.IntVal, 10)), strict)
	case *gnmi.TypedValue_UintVal:
		if isInt(e.Type) {
			return checkInt(at, e, strconv.FormatUint(x.UintVal, 10), strict)
		}
		return checkLeaf(at, e, json.Number(strconv.FormatUint(x.UintVal, 10)), strict)
	case *gnmi.TypedValue_DoubleVal:
		if isInt(e.Type) {
			return invalidAt(at, "%v is not an integer (%s%s)", x.DoubleVal, e.Type.Kind, rangeWords(e.Type))
		}
	case *gnmi.TypedValue_LeaflistVal:
		if !e.IsLeafList() {
			return invalidAt(at, "%s is a single leaf; a list of values (leaflist_val) does not fit it", e.Name)
		}
		for _, el := range x.LeaflistVal.GetElement() {
			if err := checkScalar(at, e, el, strict); err != nil {
				return err
			}
		}
	}
	return nil
}

func isInt(t *yang.YangType) bool {
	if t == nil {
		return false
	}
	switch t.Kind {
	case yang.Yint8, yang.Yint16, yang.Yint32, yang.Yint64, yang.Yuint8, yang.Yuint16, yang.Yuint32, yang.Yuint64:
		return true
	}
	return false
}

var intBits = map[yang.TypeKind]int{
	yang.Yint8: 8, yang.Yint16: 16, yang.Yint32: 32, yang.Yint64: 64,
	yang.Yuint8: 8, yang.Yuint16: 16, yang.Yuint32: 32, yang.Yuint64: 64,
}

// checkInt checks the decimal text of an integer against the leaf's type;
// strict adds its YANG range.
func checkInt(at []*gnmi.PathElem, e *yang.Entry, text string, strict bool) error {
	t := e.Type
	bits := intBits[t.Kind]
	signed := t.Kind == yang.Yint8 || t.Kind == yang.Yint16 || t.Kind == yang.Yint32 || t.Kind == yang.Yint64
	var rangeErr error
	if signed {
		n, err := strconv.ParseInt(text, 10, bits)
		if err != nil {
			return intError(at, e, text, err)
		}
		rangeErr = ytypes.ValidateIntRestrictions(t, n)
	} else {
		n, err := strconv.ParseUint(text, 10, bits)
		if err != nil {
			if strings.HasPrefix(text, "-") {
				if _, err2 := strconv.ParseInt(text, 10, 64); err2 == nil {
					return invalidAt(at, "%s is outside the range %s", text, effectiveRange(t))
				}
			}
			return intError(at, e, text, err)
		}
		rangeErr = ytypes.ValidateUintRestrictions(t, n)
	}
	if strict && rangeErr != nil {
		return invalidAt(at, "%s is outside the range %s", text, effectiveRange(t))
	}
	return nil
}

func intError(at []*gnmi.PathElem, e *yang.Entry, text string, err error) error {
	if errors.Is(err, strconv.ErrRange) {
		return invalidAt(at, "%s is outside the range %s", numberWords(text), effectiveRange(e.Type))
	}
	if strings.ContainsAny(text, ".eE") {
		return invalidAt(at, "%s is not an integer; every number in this model is an integer", numberWords(text))
	}
	return invalidAt(at, "%s is not an integer (%s%s)", redact.Value(text), e.Type.Kind, rangeWords(e.Type))
}

// effectiveRange is the YANG range of t, else the range of its base type.
func effectiveRange(t *yang.YangType) string {
	if len(t.Range) > 0 {
		return t.Range.String()
	}
	bits := intBits[t.Kind]
	switch t.Kind {
	case yang.Yint8, yang.Yint16, yang.Yint32, yang.Yint64:
		return fmt.Sprintf("%d..%d", -(int64(1) << (bits - 1)), int64(1)<<(bits-1)-1)
	}
	return fmt.Sprintf("0..%d", uint64(1)<<bits-1)
}

func rangeWords(t *yang.YangType) string { return ", " + effectiveRange(t) }

// checkString checks the length and the patterns of a string leaf.
func checkString(at []*gnmi.PathElem, e *yang.Entry, s string) error {
	t := e.Type
	if ytypes.ValidateStringRestrictions(t, s) == nil {
		return nil
	}
	n := utf8.RuneCountInString(s)
	if len(t.Length) > 0 {
		if ytypes.ValidateStringRestrictions(&yang.YangType{Kind: yang.Ystring, Length: t.Length}, s) != nil {
			return invalidAt(at, "a value of %d characters is outside the allowed length %s", n, t.Length)
		}
	}
	what := "the pattern"
	if t.Name != "" && t.Name != "string" {
		what = "the pattern of type " + t.Name
	}
	return invalidAt(at, "%s does not match %s %s", redact.Value(s), what, strings.Join(t.Pattern, " and "))
}

// invalidAt is an ErrInvalid *PathError at elems.
func invalidAt(elems []*gnmi.PathElem, format string, args ...any) error {
	return &api.PathError{Path: prefixString(elems), Err: withKind(api.ErrInvalid, fmt.Errorf(format, args...))}
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

// mismatch says that v does not fit leaf e, which takes want.
func mismatch(at []*gnmi.PathElem, e *yang.Entry, v any, want string) error {
	switch x := v.(type) {
	case string:
		return invalidAt(at, "%s is not %s", redact.Value(x), want)
	case json.Number:
		return invalidAt(at, "%s (a number) is not %s", numberWords(x.String()), want)
	case bool:
		return invalidAt(at, "%t (a boolean) is not %s", x, want)
	}
	return invalidAt(at, "%s takes %s, not %s", e.Name, want, jsonWords(v))
}

// numberWords shows a number as it was given, within bounds.
func numberWords(text string) string {
	if len(text) <= redact.MaxQuoted {
		return text
	}
	return redact.Value(text)
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
