package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"

	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/pemx"
)

// ErrKeyMaterial: a value holds private key material. It is refused before
// it is stored anywhere (candidate included), and no error quotes it.
var ErrKeyMaterial = errors.New("private key material is not accepted")

// keyMaterialError says which node holds key material, never the value.
func keyMaterialError(op string, at []*gnmi.PathElem) error {
	return &api.PathError{Op: op, Path: api.PathAt(at), Err: withKind(api.ErrInvalid, fmt.Errorf(
		"%w: the value holds a private key, which never belongs in the configuration (keys are generated on the device); refused, nothing was stored",
		ErrKeyMaterial))}
}

// CheckNoKeyMaterial is the screening of one value that comes from outside
// (an rpc input, a certz upload): it returns an error wrapping
// ErrKeyMaterial and ErrInvalid that names where, or nil. The detector is
// pemx.FindPrivateKey, import check 1's.
func CheckNoKeyMaterial(where string, value []byte) error {
	if pemx.FindPrivateKey(value) == nil {
		return nil
	}
	return keyMaterialRefused(where)
}

// keyMaterialRefused is the refusal of an outside value (an rpc input, a
// certz upload) that holds key material: it names where, never the value.
func keyMaterialRefused(where string) error {
	return withKind(api.ErrInvalid, fmt.Errorf("%w: %s holds a private key; refused, nothing was stored (keys are generated on the device and never imported)", ErrKeyMaterial, where))
}

// screenEdits refuses, before anything is applied, an edit whose value
// holds private key material anywhere: a scalar, a leaf-list element, or
// any string of a JSON value. The error names the node.
func screenEdits(edits []Edit) error {
	for _, e := range edits {
		if e.Value == nil {
			continue
		}
		if at, found := keyMaterialIn(e.Path.GetElem(), e.Value); found {
			return keyMaterialError(e.Op.String(), at)
		}
	}
	return nil
}

// screenTree refuses a whole tree (copy-config to candidate) that holds
// private key material.
func screenTree(root *gen.Device) error {
	js, err := EmitJSON(root)
	if err != nil {
		return err
	}
	if at, found := keyMaterialInJSON(nil, js); found {
		return keyMaterialError("replace", at)
	}
	return nil
}

func keyMaterialIn(elems []*gnmi.PathElem, v *gnmi.TypedValue) ([]*gnmi.PathElem, bool) {
	at := elems
	has := func(b []byte) bool { return pemx.FindPrivateKey(b) != nil }
	switch x := v.GetValue().(type) {
	case *gnmi.TypedValue_StringVal:
		return at, has([]byte(x.StringVal))
	case *gnmi.TypedValue_AsciiVal:
		return at, has([]byte(x.AsciiVal))
	case *gnmi.TypedValue_BytesVal:
		return at, has(x.BytesVal)
	case *gnmi.TypedValue_LeaflistVal:
		for _, el := range x.LeaflistVal.GetElement() {
			if _, found := keyMaterialIn(elems, el); found {
				return at, true
			}
		}
	case *gnmi.TypedValue_JsonIetfVal:
		return keyMaterialInJSON(elems, x.JsonIetfVal)
	case *gnmi.TypedValue_JsonVal:
		return keyMaterialInJSON(elems, x.JsonVal)
	}
	return nil, false
}

// keyMaterialInJSON walks a JSON value given at elems and returns the
// path of the first string that holds key material. Malformed JSON is
// screened as one string (the unmarshaller refuses it later).
func keyMaterialInJSON(elems []*gnmi.PathElem, data []byte) ([]*gnmi.PathElem, bool) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return elems, pemx.FindPrivateKey(data) != nil
	}
	var entry *yang.Entry
	if len(elems) == 0 {
		entry = RootEntry()
	} else {
		entry = entryAt(elems)
	}
	return walkJSON(elems, entry, v)
}

func walkJSON(elems []*gnmi.PathElem, e *yang.Entry, v any) ([]*gnmi.PathElem, bool) {
	switch x := v.(type) {
	case string:
		if pemx.FindPrivateKey([]byte(x)) != nil {
			return elems, true
		}
	case []any:
		for _, el := range x {
			at := elems
			if e != nil && e.IsList() {
				at = withListKey(elems, e, el)
			}
			if p, found := walkJSON(at, e, el); found {
				return p, true
			}
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			name := memberName(k)
			// A member name can be the key material too.
			if pemx.FindPrivateKey([]byte(k)) != nil {
				return elems, true
			}
			var child *yang.Entry
			if e != nil {
				child = e.Dir[name]
			}
			at := appendElemCopy(elems, &gnmi.PathElem{Name: name})
			if p, found := walkJSON(at, child, x[k]); found {
				return p, true
			}
		}
	}
	return nil, false
}

// withListKey names a list entry of a JSON array by its key, when the
// entry has it as a short string.
func withListKey(elems []*gnmi.PathElem, e *yang.Entry, el any) []*gnmi.PathElem {
	obj, ok := el.(map[string]any)
	if !ok || len(elems) == 0 || e.Key == "" || strings.Contains(e.Key, " ") {
		return elems
	}
	k, ok := obj[e.Key].(string)
	if !ok || len(k) > 64 || pemx.FindPrivateKey([]byte(k)) != nil {
		return elems
	}
	last := elems[len(elems)-1]
	out := append(append([]*gnmi.PathElem{}, elems[:len(elems)-1]...), &gnmi.PathElem{Name: last.Name, Key: map[string]string{e.Key: k}})
	return out
}

func appendElemCopy(elems []*gnmi.PathElem, pe *gnmi.PathElem) []*gnmi.PathElem {
	out := make([]*gnmi.PathElem, len(elems), len(elems)+1)
	copy(out, elems)
	return append(out, pe)
}
