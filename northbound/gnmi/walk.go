package gnmi

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"
	"github.com/openconfig/ygot/ygot"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/gen"
)

// node is one place in a tree that a path pattern selected.
type node struct {
	path  []*gnmi.PathElem
	entry *yang.Entry
	// v is a struct pointer (container, list entry, root) or, for a leaf,
	// the field value.
	v reflect.Value
	// parent is the struct holding a leaf, fi the field index.
	parent reflect.Value
	fi     int
}

func (n node) isLeaf() bool { return n.entry.IsLeaf() || n.entry.IsLeafList() }

// maxWalk bounds how many nodes one pattern may select.
const maxWalk = 1 << 20

// walk calls fn for every node of root that pat selects, in schema and
// key order. Unset nodes are skipped. A trailing "..." selects the node
// itself (its whole subtree).
func walk(root *gen.Device, pat []*gnmi.PathElem, fn func(node) error) error {
	seen := map[string]bool{}
	count := 0
	var rec func(v reflect.Value, e *yang.Entry, pat, cur []*gnmi.PathElem) error
	emit := func(n node) error {
		if hasDots(pat) {
			k := api.PathString(&gnmi.Path{Elem: n.path})
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		count++
		if count > maxWalk {
			return fmt.Errorf("%w: the path selects more than %d nodes; narrow it", errPath, maxWalk)
		}
		return fn(n)
	}
	rec = func(v reflect.Value, e *yang.Entry, p, cur []*gnmi.PathElem) error {
		if len(p) == 0 || (len(p) == 1 && p[0].Name == "...") {
			return emit(node{path: cur, entry: e, v: v})
		}
		pe := p[0]
		if pe.Name == "..." {
			if err := rec(v, e, p[1:], cur); err != nil {
				return err
			}
			return children(v, e, nil, cur, func(cv reflect.Value, ce *yang.Entry, ncur []*gnmi.PathElem, parent reflect.Value, fi int) error {
				if ce.IsLeaf() || ce.IsLeafList() {
					if matchLeafTail(p[1:], ncur[len(ncur)-1]) {
						return emit(node{path: ncur, entry: ce, v: cv, parent: parent, fi: fi})
					}
					return nil
				}
				return rec(cv, ce, p, ncur)
			})
		}
		return children(v, e, pe, cur, func(cv reflect.Value, ce *yang.Entry, ncur []*gnmi.PathElem, parent reflect.Value, fi int) error {
			if ce.IsLeaf() || ce.IsLeafList() {
				if len(p) == 1 {
					return emit(node{path: ncur, entry: ce, v: cv, parent: parent, fi: fi})
				}
				return nil
			}
			return rec(cv, ce, p[1:], ncur)
		})
	}
	return rec(reflect.ValueOf(root), agent.RootEntry(), pat, nil)
}

func hasDots(pat []*gnmi.PathElem) bool {
	for _, pe := range pat {
		if pe.Name == "..." {
			return true
		}
	}
	return false
}

// matchLeafTail reports whether a leaf reached under "..." matches what
// follows the "..." (a single element naming it, or "*").
func matchLeafTail(rest []*gnmi.PathElem, leaf *gnmi.PathElem) bool {
	return len(rest) == 1 && (rest[0].Name == "*" || rest[0].Name == leaf.Name) && len(rest[0].Key) == 0
}

// children calls fn for each set child of struct v that pe selects (every
// child when pe is nil).
func children(v reflect.Value, e *yang.Entry, pe *gnmi.PathElem, cur []*gnmi.PathElem, fn func(cv reflect.Value, ce *yang.Entry, path []*gnmi.PathElem, parent reflect.Value, fi int) error) error {
	if !v.IsValid() || v.IsNil() {
		return nil
	}
	s := v.Elem()
	for _, f := range agent.StructFields(s.Type()) {
		if pe != nil && pe.Name != "*" && pe.Name != f.Name {
			continue
		}
		ce := e.Dir[f.Name]
		if ce == nil {
			continue
		}
		fv := s.Field(f.Index)
		if fv.IsZero() {
			continue
		}
		path := func(key map[string]string) []*gnmi.PathElem {
			out := make([]*gnmi.PathElem, len(cur), len(cur)+1)
			copy(out, cur)
			return append(out, &gnmi.PathElem{Name: f.Name, Key: key})
		}
		switch {
		case ce.IsList():
			if fv.Kind() != reflect.Map {
				continue
			}
			keys := fv.MapKeys()
			sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i].Interface()) < fmt.Sprint(keys[j].Interface()) })
			for _, k := range keys {
				ks := fmt.Sprint(k.Interface())
				if pe != nil && pe.Name != "*" {
					if want, ok := pe.Key[ce.Key]; ok && want != "*" && want != ks {
						continue
					}
				}
				if err := fn(fv.MapIndex(k), ce, path(map[string]string{ce.Key: ks}), v, f.Index); err != nil {
					return err
				}
			}
		default:
			if err := fn(fv, ce, path(nil), v, f.Index); err != nil {
				return err
			}
		}
	}
	return nil
}

// leaves calls fn for every set leaf at or under n, with its typed value.
func leaves(n node, fn func(path []*gnmi.PathElem, tv *gnmi.TypedValue) error) error {
	if n.isLeaf() {
		tv, err := leafValue(n.v)
		if err != nil {
			return err
		}
		return fn(n.path, tv)
	}
	return walkAll(n.v, n.entry, n.path, fn)
}

func walkAll(v reflect.Value, e *yang.Entry, cur []*gnmi.PathElem, fn func([]*gnmi.PathElem, *gnmi.TypedValue) error) error {
	return children(v, e, nil, cur, func(cv reflect.Value, ce *yang.Entry, path []*gnmi.PathElem, _ reflect.Value, _ int) error {
		if ce.IsLeaf() || ce.IsLeafList() {
			tv, err := leafValue(cv)
			if err != nil {
				return err
			}
			return fn(path, tv)
		}
		return walkAll(cv, ce, path, fn)
	})
}

// leafValue encodes a leaf's Go value as a typed scalar (PROTO encoding).
func leafValue(v reflect.Value) (*gnmi.TypedValue, error) {
	tv, err := ygot.EncodeTypedValue(v.Interface(), gnmi.Encoding_PROTO)
	if err != nil {
		return nil, fmt.Errorf("encoding a leaf value: %w", err)
	}
	return tv, nil
}

// nodeJSON renders n as RFC 7951 JSON (lists as arrays of entries, 64-bit
// numbers as strings): with module-qualified top-level names when ietf
// (JSON_IETF), without any module name for JSON, which is what clients
// using the JSON encoding (gnmic's default) send back in a Set.
func nodeJSON(n node, ietf bool) ([]byte, error) {
	if !n.isLeaf() {
		gs, ok := n.v.Interface().(ygot.GoStruct)
		if !ok {
			return nil, fmt.Errorf("node %s is not a generated struct", api.PathString(&gnmi.Path{Elem: n.path}))
		}
		return emit(gs, ietf)
	}
	// A leaf: emit a copy of its parent holding only the leaf, and take the
	// one member out.
	pt := n.parent.Type().Elem()
	only := reflect.New(pt)
	only.Elem().Field(n.fi).Set(n.v)
	b, err := emit(only.Interface().(ygot.GoStruct), ietf)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for _, raw := range m {
		return raw, nil
	}
	return nil, fmt.Errorf("leaf %s rendered empty", api.PathString(&gnmi.Path{Elem: n.path}))
}

func emit(gs ygot.GoStruct, ietf bool) ([]byte, error) {
	if ietf {
		return agent.EmitJSON(gs)
	}
	s, err := ygot.EmitJSON(gs, &ygot.EmitJSONConfig{Format: ygot.RFC7951, SkipValidation: true})
	return []byte(s), err
}

// leafJSON renders a typed scalar as JSON for the JSON encodings of
// subscription updates, as a Get renders the leaf: 64-bit integers are
// strings (RFC 7951) when wide.
func leafJSON(tv *gnmi.TypedValue, wide bool) ([]byte, error) {
	var v any
	switch x := tv.GetValue().(type) {
	case *gnmi.TypedValue_StringVal:
		v = x.StringVal
	case *gnmi.TypedValue_BoolVal:
		v = x.BoolVal
	case *gnmi.TypedValue_UintVal:
		v = x.UintVal
		if wide {
			v = fmt.Sprint(x.UintVal)
		}
	case *gnmi.TypedValue_IntVal:
		v = x.IntVal
		if wide {
			v = fmt.Sprint(x.IntVal)
		}
	case *gnmi.TypedValue_DoubleVal:
		v = x.DoubleVal
	case *gnmi.TypedValue_FloatVal:
		v = x.FloatVal
	case *gnmi.TypedValue_BytesVal:
		v = x.BytesVal
	case *gnmi.TypedValue_LeaflistVal:
		var out []json.RawMessage
		for _, e := range x.LeaflistVal.GetElement() {
			b, err := leafJSON(e, wide)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
		if out == nil {
			out = []json.RawMessage{}
		}
		return json.Marshal(out)
	case *gnmi.TypedValue_JsonIetfVal:
		return x.JsonIetfVal, nil
	case *gnmi.TypedValue_JsonVal:
		return x.JsonVal, nil
	default:
		return nil, fmt.Errorf("value of type %T has no JSON form", tv.GetValue())
	}
	return json.Marshal(v)
}

// encodeLeaf turns the typed scalar of the leaf at path into the requested
// encoding.
func encodeLeaf(path []*gnmi.PathElem, tv *gnmi.TypedValue, enc gnmi.Encoding) (*gnmi.TypedValue, error) {
	switch enc {
	case gnmi.Encoding_JSON:
		b, err := leafJSON(tv, wideLeaf(path))
		if err != nil {
			return nil, err
		}
		return &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonVal{JsonVal: b}}, nil
	case gnmi.Encoding_JSON_IETF:
		b, err := leafJSON(tv, wideLeaf(path))
		if err != nil {
			return nil, err
		}
		return &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: b}}, nil
	}
	return tv, nil
}

// wideLeaf reports whether the leaf at path is a 64-bit number, which
// RFC 7951 encodes as a JSON string.
func wideLeaf(path []*gnmi.PathElem) bool {
	e := agent.RootEntry()
	for _, pe := range path {
		if e = e.Dir[pe.Name]; e == nil {
			return false
		}
	}
	if e.Type == nil {
		return false
	}
	switch e.Type.Kind {
	case yang.Yint64, yang.Yuint64, yang.Ydecimal64:
		return true
	}
	return false
}
