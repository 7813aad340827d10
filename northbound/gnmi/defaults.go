package gnmi

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"
	"github.com/openconfig/ygot/ygot"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/gen"
)

// Defaults: Get and Subscribe report a config leaf left at its YANG
// default with its default value, as NETCONF's with-defaults report-all
// does: in every list entry and every non-presence container that holds
// such a leaf (so /authority/crl-settings/discover-from-certificates is
// true before anything is configured). A leaf with no default that is not
// set stays absent (NotFound). State (config false) has no defaults.

// fillDefaults sets every unset leaf of root that has a default and removes
// the containers that stay empty. root must be private to the caller.
// ygot's PopulateDefaults builds every container on the way; since the
// model has no presence container (TestNoPresenceContainers), pruning the
// empty ones leaves exactly those that hold a default.
func fillDefaults(root *gen.Device) {
	root.PopulateDefaults()
	ygot.PruneEmptyBranches(root)
}

// defaultsCache keeps the defaulted copy of the last running tree read,
// so Gets of an unchanged running do not copy it again. Trees are
// immutable: a new commit is a new root pointer.
type defaultsCache struct {
	mu  sync.Mutex
	src *gen.Device
	out *gen.Device
}

// get returns running with its defaults filled in. The result is shared:
// read-only.
func (c *defaultsCache) get(running *gen.Device) (*gen.Device, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.src == running && c.out != nil {
		return c.out, nil
	}
	cp, err := ygot.DeepCopy(running)
	if err != nil {
		return nil, fmt.Errorf("copying running to add its defaults: %w", err)
	}
	out := cp.(*gen.Device)
	fillDefaults(out)
	c.src, c.out = running, out
	return out, nil
}

// defaultLeaves caches, per generated struct type, a fresh struct of that
// type holding only its default values (read-only).
var defaultLeaves sync.Map // reflect.Type -> reflect.Value

func defaultsOf(t reflect.Type) reflect.Value {
	if v, ok := defaultLeaves.Load(t); ok {
		return v.(reflect.Value)
	}
	v := reflect.New(t.Elem())
	if p, ok := v.Interface().(interface{ PopulateDefaults() }); ok {
		p.PopulateDefaults()
	}
	defaultLeaves.Store(t, v)
	return v
}

// typeAt returns the generated struct type of the container or list entry
// at elems (a concrete path), and its schema entry.
func typeAt(elems []*gnmi.PathElem) (reflect.Type, *yang.Entry, bool) {
	t := reflect.TypeOf(&gen.Device{})
	e := agent.RootEntry()
	for _, pe := range elems {
		ce := e.Dir[pe.Name]
		if ce == nil || ce.IsLeaf() || ce.IsLeafList() {
			return nil, nil, false
		}
		fi := -1
		for _, f := range agent.StructFields(t.Elem()) {
			if f.Name == pe.Name {
				fi = f.Index
			}
		}
		if fi < 0 {
			return nil, nil, false
		}
		ft := t.Elem().Field(fi).Type
		if ft.Kind() == reflect.Map {
			ft = ft.Elem()
		}
		if ft.Kind() != reflect.Ptr || ft.Elem().Kind() != reflect.Struct {
			return nil, nil, false
		}
		t, e = ft, ce
	}
	return t, e, true
}

// defaultLeafValues returns the defaulted leaves at and under the container
// or list entry at elems (not under nested list entries, which have their
// own keys), as typed values.
func defaultLeafValues(elems []*gnmi.PathElem) []seen {
	t, e, ok := typeAt(elems)
	if !ok || e.ReadOnly() {
		return nil
	}
	var out []seen
	var rec func(v reflect.Value, e *yang.Entry, cur []*gnmi.PathElem)
	rec = func(v reflect.Value, e *yang.Entry, cur []*gnmi.PathElem) {
		_ = children(v, e, nil, cur, func(cv reflect.Value, ce *yang.Entry, path []*gnmi.PathElem, _ reflect.Value, _ int) error {
			switch {
			case ce.ReadOnly() || ce.IsList():
			case ce.IsLeaf():
				if tv, err := leafValue(cv); err == nil {
					out = append(out, seen{path: path, val: tv})
				}
			case ce.IsContainer():
				rec(cv, ce, path)
			}
			return nil
		})
	}
	rec(defaultsOf(t), e, elems)
	return out
}

// defaultOf returns the default value of the leaf at elems, if it has one.
func defaultOf(elems []*gnmi.PathElem) (*gnmi.TypedValue, bool) {
	if len(elems) == 0 {
		return nil, false
	}
	leaf := elems[len(elems)-1]
	for _, d := range defaultLeafValues(elems[:len(elems)-1]) {
		if d.path[len(d.path)-1].Name == leaf.Name && len(d.path) == len(elems) {
			return d.val, true
		}
	}
	return nil, false
}

// entryAt returns the schema entry at a concrete path, nil if none.
func entryAt(elems []*gnmi.PathElem) *yang.Entry {
	e := agent.RootEntry()
	for _, pe := range elems {
		if e = e.Dir[pe.Name]; e == nil {
			return nil
		}
	}
	return e
}

// keyLeafOf reports whether the leaf at elems is the key of the list entry
// that holds it, and returns the entry's path.
func keyLeafOf(elems []*gnmi.PathElem) ([]*gnmi.PathElem, bool) {
	if len(elems) < 2 {
		return nil, false
	}
	entry := elems[:len(elems)-1]
	le := entryAt(entry)
	if le == nil || !le.IsList() || len(entry[len(entry)-1].Key) == 0 {
		return nil, false
	}
	return entry, le.Key == elems[len(elems)-1].Name
}

// withDefaultChanges completes the leaf changes of a config commit with
// what they mean for leaves at their default, so ON_CHANGE subscribers
// see what a Get shows: a new list entry brings its defaulted leaves, a
// deleted one takes them away, and a leaf deleted from an entry (or a
// container) that stays goes back to its default value.
func withDefaultChanges(chs []api.Change) []api.Change {
	inEvent := make(map[string]bool, len(chs))
	created := map[string][]*gnmi.PathElem{}
	deleted := map[string][]*gnmi.PathElem{}
	for _, c := range chs {
		elems := c.Path.GetElem()
		inEvent[api.PathString(c.Path)] = true
		if entry, ok := keyLeafOf(elems); ok {
			k := api.PathString(&gnmi.Path{Elem: entry})
			if c.Value != nil {
				created[k] = entry
			} else {
				deleted[k] = entry
			}
		}
	}
	underDeleted := func(elems []*gnmi.PathElem) bool {
		for i := len(elems) - 1; i > 0; i-- {
			if _, ok := deleted[api.PathString(&gnmi.Path{Elem: elems[:i]})]; ok {
				return true
			}
		}
		return false
	}
	out := make([]api.Change, 0, len(chs))
	for _, c := range chs {
		if c.Value == nil && !underDeleted(c.Path.GetElem()) {
			if tv, ok := defaultOf(c.Path.GetElem()); ok {
				c = api.Change{Path: c.Path, Value: tv}
			}
		}
		out = append(out, c)
	}
	add := func(entries map[string][]*gnmi.PathElem, del bool) {
		for _, k := range slices.Sorted(maps.Keys(entries)) {
			for _, d := range defaultLeafValues(entries[k]) {
				p := &gnmi.Path{Elem: d.path}
				if inEvent[api.PathString(p)] {
					continue
				}
				if del {
					out = append(out, api.Change{Path: p})
				} else {
					out = append(out, api.Change{Path: p, Value: d.val})
				}
			}
		}
	}
	add(deleted, true)
	add(created, false)
	return out
}
