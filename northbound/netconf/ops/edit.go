package ops

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
)

// editOps maps the edit-config operation attribute to agent operations.
var editOps = map[string]agent.Op{
	"merge": agent.OpMerge, "replace": agent.OpReplace, "create": agent.OpCreate,
	"delete": agent.OpDelete, "remove": agent.OpRemove,
}

// editConv turns the <config> of an edit-config into datastore edits
// (RFC 6241 section 7.2): every element with an operation attribute, and
// each top-level element unless default-operation is none, becomes one
// edit whose value is its subtree minus the descendants that carry their
// own operation (those follow as edits of their own). A merge of a
// container is the merge of each of its children, so an edit carries the
// finest path it touches: merging one router under <authority> is an edit
// of that router, and the commit validates and diffs that entry, not every
// list of the container.
type editConv struct {
	defaultOp string // merge, replace or none
	// exists reports whether a node is in the target datastore (for the
	// data-missing rule of default-operation none); nil skips the check.
	exists func(elems []*gnmi.PathElem) bool
	edits  []agent.Edit
}

// convertConfig returns the edits of a <config> element.
func convertConfig(cfg *node, defaultOp string, exists func([]*gnmi.PathElem) bool) ([]agent.Edit, error) {
	c := &editConv{defaultOp: defaultOp, exists: exists}
	root := schemaRoot()
	for _, n := range cfg.children {
		e, elem, err := resolveChild(n, root, nil)
		if err != nil {
			return nil, err
		}
		op, explicit, err := operationOf(n)
		if err != nil {
			return nil, err
		}
		if !explicit && defaultOp != "none" {
			op, explicit = defaultOp, true
		}
		if err := c.walk(n, e, []*gnmi.PathElem{elem}, op, explicit); err != nil {
			return nil, err
		}
	}
	return c.edits, nil
}

// walk handles element n of schema e at path: an edit when explicit,
// else (default-operation none) a search for descendants with operations.
func (c *editConv) walk(n *node, e *yang.Entry, path []*gnmi.PathElem, op string, explicit bool) error {
	if !explicit {
		for _, ch := range n.children {
			ce, elem, err := resolveChild(ch, e, path)
			if err != nil {
				return err
			}
			chOp, chExplicit, err := operationOf(ch)
			if err != nil {
				return err
			}
			if ce.IsLeaf() && !chExplicit {
				continue // key or ignored leaf (default-operation none)
			}
			if chExplicit && chOp != "merge" && isKeyOf(e, ch.name.Local) {
				return keyOperation(chOp, appendElem(path, elem))
			}
			if err := c.walk(ch, ce, appendElem(path, elem), chOp, chExplicit); err != nil {
				return err
			}
		}
		return nil
	}
	aop := editOps[op]
	if aop == agent.OpMerge && mergesByChild(n, e) {
		return c.mergeChildren(n, e, path)
	}
	if c.defaultOp == "none" && c.exists != nil && (aop == agent.OpMerge || aop == agent.OpReplace || aop == agent.OpCreate) &&
		len(path) > 1 && !c.exists(path[:len(path)-1]) {
		return ncxml.DataMissing(fmt.Sprintf("%s does not exist, and default-operation none does not create it: add operation=\"merge\" on an ancestor",
			api.PathString(&gnmi.Path{Elem: path[:len(path)-1]}))).WithPath(xpathOf(path[:len(path)-1]), pathNS)
	}
	if aop == agent.OpDelete || aop == agent.OpRemove {
		c.edits = append(c.edits, agent.Edit{Op: aop, Path: &gnmi.Path{Elem: path}})
		return nil
	}
	var deferred []pending
	v, err := toJSON(n, e, path, &deferred)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode value of %s: %w", api.PathString(&gnmi.Path{Elem: path}), err)
	}
	c.edits = append(c.edits, agent.Edit{Op: aop, Path: &gnmi.Path{Elem: path},
		Value: &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: raw}}})
	for _, d := range deferred {
		if err := c.walk(d.n, d.e, d.path, d.op, true); err != nil {
			return err
		}
	}
	return nil
}

// mergesByChild reports whether a merge of element n (schema e) is the
// merge of each of its children: n is a container without presence whose
// children are each one edit of their own, that is not a leaf-list (its
// elements are merged as one value).
func mergesByChild(n *node, e *yang.Entry) bool {
	if !e.IsContainer() || e.Extra["presence"] != nil || n.hasText() {
		return false
	}
	for _, ch := range n.children {
		if ce := e.Dir[ch.name.Local]; ce != nil && ce.IsLeafList() {
			return false
		}
	}
	return true
}

// mergeChildren edits each child of container n (at path) as a merge, or
// with its own operation. A child that appears twice is refused, as in a
// value. The container exists or is created by this merge, so the
// data-missing rule of default-operation none does not apply below it.
func (c *editConv) mergeChildren(n *node, e *yang.Entry, path []*gnmi.PathElem) error {
	exists := c.exists
	c.exists = nil
	defer func() { c.exists = exists }()
	seen := map[string]bool{}
	for _, ch := range n.children {
		ce, elem, err := resolveChild(ch, e, path)
		if err != nil {
			return err
		}
		cpath := appendElem(path, elem)
		id := api.PathString(&gnmi.Path{Elem: cpath})
		if seen[id] {
			return ncxml.BadElement(ncxml.Application, ce.Name,
				fmt.Sprintf("%s appears more than once", id)).WithPath(xpathOf(cpath), pathNS)
		}
		seen[id] = true
		op, explicit, err := operationOf(ch)
		if err != nil {
			return err
		}
		if !explicit {
			op = "merge"
		} else if op != "merge" && isKeyOf(e, ch.name.Local) {
			return keyOperation(op, cpath)
		}
		if err := c.walk(ch, ce, cpath, op, true); err != nil {
			return err
		}
	}
	return nil
}

// isKeyOf reports whether name is a key leaf of list e.
func isKeyOf(e *yang.Entry, name string) bool {
	return e.IsList() && strings.Contains(" "+e.Key+" ", " "+name+" ")
}

// keyOperation refuses an operation other than merge on a key element
// (path ends at the key leaf): an entry is renamed or removed as a whole,
// with the operation on the entry. A merge of the key is the entry's own
// name, which changes nothing.
func keyOperation(op string, path []*gnmi.PathElem) error {
	key := path[len(path)-1].Name
	ke := &agent.KeyLeafError{Key: key, Entry: api.PathString(&gnmi.Path{Elem: path[:len(path)-1]})}
	return ncxml.OperationNotSupported(ncxml.Application,
		fmt.Sprintf("operation %q on key <%s>: %v (put the operation on the <%s> element)", op, key, ke, path[len(path)-2].Name)).
		WithPath(xpathOf(path), pathNS)
}

// pending is a descendant with its own operation, edited after its
// ancestor's edit.
type pending struct {
	n    *node
	e    *yang.Entry
	path []*gnmi.PathElem
	op   string
}

func appendElem(path []*gnmi.PathElem, e *gnmi.PathElem) []*gnmi.PathElem {
	out := make([]*gnmi.PathElem, len(path), len(path)+1)
	copy(out, path)
	return append(out, e)
}

// operationOf reads the nc:operation attribute (an unqualified one is
// accepted too).
func operationOf(n *node) (string, bool, error) {
	v, ok := n.attr(ncxml.BaseNS, "operation", true)
	if !ok {
		return "", false, nil
	}
	if _, known := editOps[v]; !known {
		return "", false, ncxml.BadAttribute(ncxml.Protocol, "operation", n.name.Local,
			fmt.Sprintf("operation %q on <%s> is not one of merge, replace, create, delete, remove", v, n.name.Local))
	}
	return v, true, nil
}

// resolveChild finds the schema entry of element n under parent entry pe
// (at parent path) and its path element, with the keys of a list entry.
func resolveChild(n *node, pe *yang.Entry, parent []*gnmi.PathElem) (*yang.Entry, *gnmi.PathElem, error) {
	here := appendElem(parent, &gnmi.PathElem{Name: n.name.Local})
	e := pe.Dir[n.name.Local]
	if _, ours := moduleOf(n.name.Space); !ours || (e != nil && isData(e) && n.name.Space != nsOf(e)) {
		want := dataNamespaces()
		if e != nil && isData(e) {
			want = nsOf(e)
		}
		ue := ncxml.UnknownNamespace(ncxml.Application, n.name.Local, n.name.Space,
			fmt.Sprintf("<%s> is in namespace %q; this server's data is in %s", n.name.Local, n.name.Space, want))
		if len(parent) > 0 {
			ue.WithPath(xpathOf(parent), pathNS)
		}
		return nil, nil, ue
	}
	if e == nil || !isData(e) {
		where := "the top level"
		if len(parent) > 0 {
			where = api.PathString(&gnmi.Path{Elem: parent})
		}
		return nil, nil, ncxml.UnknownElement(ncxml.Application, n.name.Local,
			fmt.Sprintf("%s has no element <%s> in the data model", where, n.name.Local)).WithPath(xpathOf(here), pathNS)
	}
	if e.ReadOnly() {
		return nil, nil, ncxml.InvalidValue(ncxml.Application,
			fmt.Sprintf("%s is state (config false) and cannot be configured", api.PathString(&gnmi.Path{Elem: here}))).WithPath(xpathOf(here), pathNS)
	}
	elem := &gnmi.PathElem{Name: n.name.Local}
	if e.IsList() {
		elem.Key = map[string]string{}
		for _, k := range keys(e) {
			kn := n.child(k)
			if kn == nil || len(kn.children) > 0 {
				return nil, nil, ncxml.MissingElement(ncxml.Application, k,
					fmt.Sprintf("list entry %s has no key <%s>; every entry needs its key", api.PathString(&gnmi.Path{Elem: here}), k)).
					WithPath(xpathOf(here), pathNS)
			}
			if kn.name.Space != nsOf(e) {
				return nil, nil, ncxml.UnknownNamespace(ncxml.Application, k, kn.name.Space, fmt.Sprintf("key <%s> is in namespace %q, not %s", k, kn.name.Space, nsOf(e)))
			}
			v, err := leafValue(e.Dir[k].Type, kn.text)
			if err != nil {
				return nil, nil, ncxml.InvalidValue(ncxml.Application, fmt.Sprintf("key %s of %s: %v", k, api.PathString(&gnmi.Path{Elem: here}), err)).
					WithPath(xpathOf(append(here, &gnmi.PathElem{Name: k})), pathNS)
			}
			elem.Key[k] = jsonText(v)
		}
	}
	return e, elem, nil
}

// toJSON converts element n of schema e to its RFC 7951 value. Descendants
// with an operation attribute are left out and added to deferred (when
// deferred is nil they are refused: rpc input).
func toJSON(n *node, e *yang.Entry, path []*gnmi.PathElem, deferred *[]pending) (any, error) {
	if e.IsLeaf() || e.IsLeafList() {
		if len(n.children) > 0 {
			return nil, ncxml.BadElement(ncxml.Application, n.name.Local,
				fmt.Sprintf("%s is a leaf and holds a value, not elements", api.PathString(&gnmi.Path{Elem: path}))).WithPath(xpathOf(path), pathNS)
		}
		v, err := leafValue(e.Type, n.text)
		if err != nil {
			return nil, ncxml.InvalidValue(ncxml.Application, fmt.Sprintf("%s: %v", api.PathString(&gnmi.Path{Elem: path}), err)).WithPath(xpathOf(path), pathNS)
		}
		return v, nil
	}
	if n.hasText() {
		return nil, ncxml.BadElement(ncxml.Application, n.name.Local,
			fmt.Sprintf("%s holds elements, not text", api.PathString(&gnmi.Path{Elem: path}))).WithPath(xpathOf(path), pathNS)
	}
	obj := map[string]any{}
	for _, ch := range n.children {
		ce, elem, err := resolveChild(ch, e, path)
		if err != nil {
			return nil, err
		}
		cpath := appendElem(path, elem)
		op, explicit, err := operationOf(ch)
		if err != nil {
			return nil, err
		}
		isKey := isKeyOf(e, ch.name.Local)
		if explicit && isKey && op != "merge" {
			return nil, keyOperation(op, cpath)
		}
		if explicit && !isKey {
			if deferred == nil {
				return nil, ncxml.UnknownAttribute(ncxml.Application, "operation", ch.name.Local, "operation attributes are not allowed here")
			}
			*deferred = append(*deferred, pending{n: ch, e: ce, path: cpath, op: op})
			continue
		}
		v, err := toJSON(ch, ce, cpath, deferred)
		if err != nil {
			return nil, err
		}
		switch {
		case ce.IsList() || ce.IsLeafList():
			arr, _ := obj[ce.Name].([]any)
			obj[ce.Name] = append(arr, v)
		default:
			if _, dup := obj[ce.Name]; dup {
				return nil, ncxml.BadElement(ncxml.Application, ce.Name,
					fmt.Sprintf("%s appears more than once", api.PathString(&gnmi.Path{Elem: cpath}))).WithPath(xpathOf(cpath), pathNS)
			}
			obj[ce.Name] = v
		}
	}
	return obj, nil
}
