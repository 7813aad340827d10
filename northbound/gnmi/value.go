package gnmi

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

	"github.com/pkiagent/pkiagent/agent"
	yangmod "github.com/pkiagent/pkiagent/yang"
)

// checkJSONValue refuses, naming where, a JSON value for the node at elems
// that is null or holds a null anywhere (a member, a list entry, a
// leaf-list element): gNMI deletes with delete, and ygot would otherwise
// create the node empty. RFC 7951 writes a leaf of type empty as [null];
// that one is a value. It also refuses state (config false) members, which
// ygot would store into running as if they were config: what a Get of type
// ALL returns is not written back whole. Malformed JSON is refused with
// where it breaks.
func checkJSONValue(elems []*gnmi.PathElem, data []byte) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("%w: the value is not valid JSON: %s at byte %d", errValue, se.Error(), se.Offset)
		}
		return fmt.Errorf("%w: the value is not valid JSON: %s", errValue, err.Error())
	}
	if d.More() {
		return fmt.Errorf("%w: the value holds more than one JSON value; send one object, array or scalar", errValue)
	}
	if v == nil {
		return fmt.Errorf("%w: the value is null: a value is required; to delete use delete", errValue)
	}
	return nullsAt(entryAt(elems), elems, v)
}

func nullsAt(e *yang.Entry, at []*gnmi.PathElem, v any) error {
	switch x := v.(type) {
	case nil:
		return fmt.Errorf("%w: %s is null in the value: a value is required; to delete use delete", errValue, api.PathString(&gnmi.Path{Elem: at}))
	case []any:
		if e != nil && e.IsLeaf() && e.Type != nil && e.Type.Kind == yang.Yempty && len(x) == 1 && x[0] == nil {
			return nil
		}
		for _, el := range x {
			if err := nullsAt(e, at, el); err != nil {
				return err
			}
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			name := k
			if mod, local, ok := strings.Cut(k, ":"); ok {
				if !dataModule(mod) {
					return fmt.Errorf("%w: member %s under %s: module %s is not served; use %q or no module name", errValue, quoteName(k), api.PathString(&gnmi.Path{Elem: at}), quoteName(mod), yangmod.Main.Name)
				}
				name = local
			}
			var ce *yang.Entry
			if e != nil {
				ce = e.Dir[name]
			}
			child := append(slices.Clip(at), &gnmi.PathElem{Name: name})
			if ce == nil && e != nil && e.IsDir() {
				return fmt.Errorf("%w: unknown element %s in the value under %s; %s", errValue, quoteName(name), api.PathString(&gnmi.Path{Elem: at}), childNames(e, at))
			}
			if ce != nil && ce.ReadOnly() && !e.ReadOnly() {
				return fmt.Errorf("%w: %s is state (config false) and cannot be written; a Set value holds config only (a Get of type CONFIG returns what can be written back)", errValue, api.PathString(&gnmi.Path{Elem: child}))
			}
			if ce != nil && ce.IsList() {
				if entries, ok := x[k].([]any); ok {
					for _, en := range entries {
						if err := nullsAt(ce, entryPath(child, ce, en), en); err != nil {
							return err
						}
					}
					continue
				}
			}
			if err := nullsAt(ce, child, x[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

// entryPath is the path of a list entry given as a JSON object: the list's
// path with the key taken from the object, when it has one.
func entryPath(list []*gnmi.PathElem, e *yang.Entry, v any) []*gnmi.PathElem {
	obj, ok := v.(map[string]any)
	if !ok {
		return list
	}
	for k, kv := range obj {
		if _, local, ok := strings.Cut(k, ":"); ok {
			k = local
		}
		if k == e.Key && kv != nil {
			out := slices.Clone(list)
			out[len(out)-1] = &gnmi.PathElem{Name: out[len(out)-1].GetName(), Key: map[string]string{e.Key: fmt.Sprint(kv)}}
			return out
		}
	}
	return list
}

// valueKind names the field of a TypedValue as the gNMI proto does
// (ascii_val, proto_bytes, ...), for errors.
func valueKind(tv *gnmi.TypedValue) string {
	m := tv.ProtoReflect()
	if f := m.WhichOneof(m.Descriptor().Oneofs().ByName("value")); f != nil {
		return string(f.Name())
	}
	return "none"
}

// listEntries splits the Set of a whole list (a path ending at a list with
// no key, such as /authority/router) into one edit per entry: the value
// must be a JSON array of entries, as a Get writes lists, each carrying its
// key. Only update (merge) is taken: a replace of the whole list would
// also remove the entries it does not name, which is the replace of the
// list's parent. ok is false when the path does not end at a keyless list.
func listEntries(prefix *gnmi.Path, u *gnmi.Update, op agent.Op) (edits []agent.Edit, ok bool, err error) {
	elems, err := fullPath(prefix, u.GetPath(), true)
	if err != nil || len(elems) == 0 || hasWildcard(elems[:len(elems)-1]) {
		return nil, false, nil
	}
	last := elems[len(elems)-1]
	le := entryAt(elems)
	if le == nil || !le.IsList() || len(last.GetKey()) > 0 {
		return nil, false, nil
	}
	at := api.PathString(&gnmi.Path{Elem: elems})
	if op != agent.OpMerge {
		parent := api.PathString(&gnmi.Path{Elem: elems[:len(elems)-1]})
		return nil, true, fmt.Errorf("%w: %s is a whole list: replace its parent %s, or each entry %s[%s=...]", errPath, at, parent, at, le.Key)
	}
	var data []byte
	ietf := false
	switch x := u.GetVal().GetValue().(type) {
	case *gnmi.TypedValue_JsonVal:
		data = x.JsonVal
	case *gnmi.TypedValue_JsonIetfVal:
		data, ietf = x.JsonIetfVal, true
	default:
		return nil, true, fmt.Errorf("%w: %s is a list: its value is a JSON array of entries (json_val or json_ietf_val), or set one entry at %s[%s=...]", errValue, at, at, le.Key)
	}
	if err := checkJSONValue(elems[:len(elems)-1], []byte(`{"`+last.GetName()+`":`+string(data)+`}`)); err != nil {
		return nil, true, err
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, true, fmt.Errorf("%w: %s is a list: its value is a JSON array of entries, or set one entry at %s[%s=...]", errValue, at, at, le.Key)
	}
	for i, raw := range entries {
		var obj map[string]any
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, true, fmt.Errorf("%w: entry %d of %s is not a JSON object", errValue, i+1, at)
		}
		path := entryPath(elems, le, obj)
		if len(path[len(path)-1].GetKey()) == 0 {
			return nil, true, fmt.Errorf("%w: entry %d of %s has no key %q", errValue, i+1, at, le.Key)
		}
		v := &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonVal{JsonVal: raw}}
		if ietf {
			v = &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: raw}}
		}
		edits = append(edits, agent.Edit{Op: op, Path: &gnmi.Path{Elem: path}, Value: v})
	}
	return edits, true, nil
}
