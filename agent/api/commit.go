package api

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"

	"github.com/pkiagent/pkiagent/gen"
)

// Commit is what validators and appliers see of a commit: the running tree
// before and after, and the leaves that change. Trees are read-only.
type Commit struct {
	ID      uint64
	User    string
	Old     *gen.Device
	New     *gen.Device
	Changes []Change

	staged []Event
}

// Stage queues ev, an event the commit causes (an alarm raised, state
// that changes), for the bus. Appliers stage instead of publishing: the
// store publishes the staged events once the commit is saved, right after
// its config event and before any later commit's, and drops them when the
// commit fails, so subscribers never see a commit that did not happen.
// Stage is for the goroutine running Apply (not safe for concurrent use).
func (c *Commit) Stage(ev Event) { c.staged = append(c.staged, ev) }

// Staged returns the events staged so far, in the order staged.
func (c *Commit) Staged() []Event { return c.staged }

// Validator checks the semantics of a commit beyond the YANG model (for
// example PEM that parses and a CA chain that verifies). It must not have
// side effects.
type Validator interface {
	Validate(ctx context.Context, c *Commit) error
}

// Applier reconciles a subsystem (the PKI engine) with a new running tree.
// Apply must be all or nothing: when it returns an error the subsystem is
// as it was under c.Old. The events the change causes are staged on c
// (Commit.Stage), never published by the applier itself. The store calls
// Apply again with Old and New swapped to undo a commit that fails after
// Apply succeeded, unless the applier is a Finisher.
type Applier interface {
	Apply(ctx context.Context, c *Commit) error
}

// Finisher is an Applier whose Apply only prepares the change: the
// subsystem holds it, unseen by readers, until the store calls Finish
// once with the outcome, under the store's lock, from the goroutine that
// called Apply.
//
// committed true: the commit was saved, and its events are published
// right after Finish returns (so the subsystem may save its own state
// first); the subsystem makes the change visible and may act on the world
// (start fetching a new CRL source).
//
// committed false: the commit failed after Apply succeeded; the subsystem
// returns exactly to its state before Apply (alarm times and counters
// included), and the store does not call Apply to undo it.
type Finisher interface {
	Applier
	Finish(ctx context.Context, c *Commit, committed bool)
}

// StateSource fills config-false data into a tree (the PKI engine's state).
type StateSource interface {
	// State returns a tree holding only state; the caller may not modify it.
	State() *gen.Device
}

// Change is one leaf that changed. Value is nil when the leaf was deleted.
type Change struct {
	Path  *gnmi.Path
	Value *gnmi.TypedValue
}

// Diff returns the leaf-level differences between two whole trees.
func Diff(old, cur *gen.Device) ([]Change, error) {
	return DiffNodes(reflect.ValueOf(old), reflect.ValueOf(cur), nil)
}

// DiffNodes returns the leaf-level differences between two nodes of the
// same generated struct type found at prefix; the paths of the changes
// start with prefix. A node that is absent (an invalid Value or a nil
// pointer) diffs as an empty one. Deletes come before updates.
//
// The cost follows the change, not the trees: subtrees the two share (the
// same pointer, as copy-on-write leaves every node a commit did not touch)
// are skipped, and keyed lists are diffed entry by entry. Only the leaves
// of one struct at a time go through ygot.Diff, whose walk of a whole list
// is quadratic in its length (ygot v0.36.0 util.Walk calls MapKeys inside
// its loop over the keys).
func DiffNodes(old, cur reflect.Value, prefix []*gnmi.PathElem) ([]Change, error) {
	var d differ
	if err := d.node(old, cur, prefix); err != nil {
		return nil, err
	}
	return append(d.deletes, d.updates...), nil
}

type differ struct{ deletes, updates []Change }

func (d *differ) node(old, cur reflect.Value, prefix []*gnmi.PathElem) error {
	if !old.IsValid() && !cur.IsValid() {
		return nil
	}
	var typ reflect.Type
	if cur.IsValid() {
		typ = cur.Type()
	} else {
		typ = old.Type()
	}
	oldNil, curNil := !old.IsValid() || old.IsNil(), !cur.IsValid() || cur.IsNil()
	if oldNil && curNil || !oldNil && !curNil && old.Pointer() == cur.Pointer() {
		return nil // absent in both, or the same immutable subtree
	}
	if oldNil {
		old = reflect.New(typ.Elem())
	}
	if curNil {
		cur = reflect.New(typ.Elem())
	}
	// The struct's own leaves (and leaf-lists): ygot.Diff over shallow
	// copies without the child containers and lists, which follow.
	st := typ.Elem()
	oldLeaves, curLeaves := reflect.New(st), reflect.New(st)
	oldLeaves.Elem().Set(old.Elem())
	curLeaves.Elem().Set(cur.Elem())
	type child struct {
		name  string
		field int
	}
	var children []child
	for i := range st.NumField() {
		f := st.Field(i)
		k := f.Type.Kind()
		if k != reflect.Map && !(k == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct) {
			continue
		}
		name := f.Tag.Get("path")
		if name == "" || strings.ContainsAny(name, "/|") || k == reflect.Map && f.Type.Key().Kind() != reflect.String {
			continue // left to ygot.Diff, with the leaves
		}
		oldLeaves.Elem().Field(i).SetZero()
		curLeaves.Elem().Field(i).SetZero()
		children = append(children, child{name, i})
	}
	n, err := ygot.Diff(oldLeaves.Interface().(ygot.GoStruct), curLeaves.Interface().(ygot.GoStruct))
	if err != nil {
		return fmt.Errorf("diff at %s: %w", PathString(&gnmi.Path{Elem: prefix}), err)
	}
	for _, p := range n.GetDelete() {
		d.deletes = append(d.deletes, Change{Path: joinPath(prefix, p)})
	}
	for _, u := range n.GetUpdate() {
		d.updates = append(d.updates, Change{Path: joinPath(prefix, u.GetPath()), Value: u.GetVal()})
	}
	for _, c := range children {
		of, cf := old.Elem().Field(c.field), cur.Elem().Field(c.field)
		if of.Kind() == reflect.Pointer {
			if err := d.node(of, cf, appendElem(prefix, &gnmi.PathElem{Name: c.name})); err != nil {
				return err
			}
			continue
		}
		if of.Pointer() == cf.Pointer() {
			continue // the same list
		}
		// Entries of cur, then those only old has; an entry both share is
		// skipped without allocating.
		k := reflect.New(cf.Type().Key()).Elem()
		e := reflect.New(cf.Type().Elem()).Elem()
		for it := cf.MapRange(); it.Next(); {
			k.SetIterKey(it)
			e.SetIterValue(it)
			oe := of.MapIndex(k)
			if oe.IsValid() && oe.Pointer() == e.Pointer() {
				continue
			}
			if err := d.entry(c.name, prefix, oe, e); err != nil {
				return err
			}
		}
		for it := of.MapRange(); it.Next(); {
			k.SetIterKey(it)
			if cf.MapIndex(k).IsValid() {
				continue
			}
			e.SetIterValue(it)
			if err := d.entry(c.name, prefix, e, reflect.Value{}); err != nil {
				return err
			}
		}
	}
	return nil
}

// entry diffs one entry of list name under prefix.
func (d *differ) entry(name string, prefix []*gnmi.PathElem, old, cur reflect.Value) error {
	elem, err := listElem(name, old, cur)
	if err != nil {
		return fmt.Errorf("diff at %s: %w", PathString(&gnmi.Path{Elem: prefix}), err)
	}
	return d.node(old, cur, appendElem(prefix, elem))
}

// listElem is the path element of a list entry, named by the keys of
// whichever of old and cur is present.
func listElem(name string, old, cur reflect.Value) (*gnmi.PathElem, error) {
	e := cur
	if !e.IsValid() || e.IsNil() {
		e = old
	}
	kh, ok := e.Interface().(ygot.KeyHelperGoStruct)
	if !ok {
		return nil, fmt.Errorf("list %s: entry type %s has no keys", name, e.Type())
	}
	km, err := kh.ΛListKeyMap()
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", name, err)
	}
	keys := make(map[string]string, len(km))
	for k, v := range km {
		keys[k] = fmt.Sprint(v)
	}
	return &gnmi.PathElem{Name: name, Key: keys}, nil
}

func appendElem(prefix []*gnmi.PathElem, e *gnmi.PathElem) []*gnmi.PathElem {
	out := make([]*gnmi.PathElem, len(prefix), len(prefix)+1)
	copy(out, prefix)
	return append(out, e)
}

func joinPath(prefix []*gnmi.PathElem, p *gnmi.Path) *gnmi.Path {
	elems := make([]*gnmi.PathElem, 0, len(prefix)+len(p.GetElem()))
	elems = append(elems, prefix...)
	elems = append(elems, p.GetElem()...)
	return &gnmi.Path{Elem: elems}
}

// PathString renders a path the way operators read it, in gNMI path
// syntax: /a/b[key=value]/c, keys sorted, with "]" and "\\" in key values
// escaped. (ygot.PathToString collapses the "//" of URL keys.)
func PathString(p *gnmi.Path) string {
	if p == nil || len(p.Elem) == 0 {
		return "/"
	}
	var b strings.Builder
	for _, e := range p.Elem {
		b.WriteByte('/')
		b.WriteString(e.Name)
		keys := make([]string, 0, len(e.Key))
		for k := range e.Key {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b.WriteByte('[')
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(keyEscaper.Replace(e.Key[k]))
			b.WriteByte(']')
		}
	}
	return b.String()
}

var keyEscaper = strings.NewReplacer(`\`, `\\`, `]`, `\]`)
