package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"
	"github.com/openconfig/ygot/ytypes"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/internal/redact"
)

// The checks of one leaf value: its type, enum, range, length and patterns.

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
	return invalidAt(at, "%s does not match %s %s", quoted(at, s), what, strings.Join(t.Pattern, " and "))
}

// mismatch says that v does not fit leaf e, which takes want.
func mismatch(at []*gnmi.PathElem, e *yang.Entry, v any, want string) error {
	switch x := v.(type) {
	case string:
		return invalidAt(at, "%s is not %s", quoted(at, x), want)
	case json.Number:
		if IsWriteOnly(at) {
			return invalidAt(at, "a write-only value (a number, not shown) is not %s", want)
		}
		return invalidAt(at, "%s (a number) is not %s", numberWords(x.String()), want)
	case bool:
		return invalidAt(at, "%t (a boolean) is not %s", x, want)
	}
	return invalidAt(at, "%s takes %s, not %s", e.Name, want, jsonWords(v))
}

// quoted is s for an error about the leaf at: redact.Value, or nothing of
// it for a write-only leaf.
func quoted(at []*gnmi.PathElem, s string) string {
	if IsWriteOnly(at) {
		return fmt.Sprintf("a write-only value (%d characters, not shown)", utf8.RuneCountInString(s))
	}
	return redact.Value(s)
}

// numberWords shows a number as it was given, within bounds.
func numberWords(text string) string {
	if len(text) <= redact.MaxQuoted {
		return text
	}
	return redact.Value(text)
}

// CheckValue checks the RFC 7951 value v (a bool, a json.Number, a string)
// of a leaf of type t: its enum, the range of an integer and of its base
// type, the length and the patterns of a string. It is the one value
// checker, used by the datastore and by NETCONF for the values it parses
// from XML; the error says what is wrong in operator words, without the
// path (the caller names it), and matches api.ErrInvalid.
func CheckValue(t *yang.YangType, v any) error {
	err := checkLeaf(nil, &yang.Entry{Name: t.Name, Type: t}, v, true)
	if pe, ok := errors.AsType[*api.PathError](err); ok {
		return pe.Err
	}
	return err
}
