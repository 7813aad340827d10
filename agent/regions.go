package agent

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"
	"github.com/openconfig/ygot/ygot"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
)

// editRegions returns the nodes the edits of tx wrote, each with the keys
// of the entries on its path as existence regions.
func editRegions(tx *Tx) ([][]*gnmi.PathElem, [][]*gnmi.PathElem, error) {
	var write, exist [][]*gnmi.PathElem
	for _, e := range tx.edits {
		elems := e.Path.GetElem()
		paths := [][]*gnmi.PathElem{elems}
		if e.Op == OpMerge {
			leaves, err := mergedLeaves(tx.root, e)
			if err != nil {
				return nil, nil, err
			}
			paths = leaves
		}
		write = append(write, paths...)
		for _, p := range paths {
			exist = append(exist, entryKeys(p)...)
		}
	}
	return write, exist, nil
}

// mergedLeaves returns the leaves a merge edit writes: the leaves of its
// value, under its path.
func mergedLeaves(root *gen.Device, e Edit) ([][]*gnmi.PathElem, error) {
	elems := e.Path.GetElem()
	var typ reflect.Type
	if len(elems) == 0 {
		typ = reflect.TypeOf(root)
	} else {
		if en := entryAt(elems); en == nil || en.IsLeaf() || en.IsLeafList() {
			return [][]*gnmi.PathElem{elems}, nil
		}
		// The merge made the node, so the tree has it and its type.
		v, err := lookup(root, elems)
		if err != nil {
			return nil, err
		}
		if !v.IsValid() {
			return [][]*gnmi.PathElem{elems}, nil
		}
		typ = v.Type()
	}
	data, err := jsonBytes(e.Value)
	if err != nil {
		return nil, err
	}
	fresh := reflect.New(typ.Elem())
	if err := gen.Unmarshal(data, fresh.Interface().(ygot.GoStruct)); err != nil {
		return nil, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	schemaOf := RootEntry()
	if len(elems) > 0 {
		schemaOf = entryAt(elems)
	}
	var out [][]*gnmi.PathElem
	setLeaves(fresh, schemaOf, elems, &out)
	if len(out) == 0 && makesNode(schemaOf) {
		out = append(out, elems) // an empty value still makes the node
	}
	return out, nil
}

// makesNode says whether an empty merge at e writes something: a list
// entry (it exists then) or a presence container. An empty merge of a
// non-presence container or of the root writes nothing, so it is no
// region: NETCONF's default merge of <authority> around a delete of one
// entry would otherwise make any commit under /authority a conflict.
func makesNode(e *yang.Entry) bool {
	if e == nil || e.Parent == nil {
		return false
	}
	if e.IsList() {
		return true
	}
	c, ok := e.Node.(*yang.Container)
	return ok && c.Presence != nil
}

// setLeaves appends the paths of the configured leaves and leaf-lists in
// the struct v of schema e found at prefix. (ygot.Diff against an empty
// node finds the same, at many times the cost.)
func setLeaves(v reflect.Value, e *yang.Entry, prefix []*gnmi.PathElem, out *[][]*gnmi.PathElem) {
	_ = configFields(v, e, func(name string, child *yang.Entry, f reflect.Value) error {
		switch {
		case child.IsLeaf() || child.IsLeafList():
			if !f.IsZero() {
				*out = append(*out, appendElemCopy(prefix, &gnmi.PathElem{Name: name}))
			}
		case child.IsList():
			for it := f.MapRange(); it.Next(); {
				setLeaves(it.Value(), child, appendElemCopy(prefix, &gnmi.PathElem{Name: name, Key: map[string]string{child.Key: fmt.Sprint(it.Key().Interface())}}), out)
			}
		default:
			setLeaves(f, child, appendElemCopy(prefix, &gnmi.PathElem{Name: name}), out)
		}
		return nil
	})
}

// entryKeys returns the key leaf paths of the list entries on elems.
func entryKeys(elems []*gnmi.PathElem) [][]*gnmi.PathElem {
	var out [][]*gnmi.PathElem
	e := RootEntry()
	for i, pe := range elems {
		if e = e.Dir[pe.Name]; e == nil {
			break
		}
		if !e.IsList() {
			continue
		}
		for _, k := range strings.Fields(e.Key) {
			p := make([]*gnmi.PathElem, i+1, i+2)
			copy(p, elems[:i+1])
			out = append(out, append(p, &gnmi.PathElem{Name: k}))
		}
	}
	return out
}
