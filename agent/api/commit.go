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
// pointer) diffs as an empty one.
func DiffNodes(old, cur reflect.Value, prefix []*gnmi.PathElem) ([]Change, error) {
	if !old.IsValid() && !cur.IsValid() {
		return nil, nil
	}
	var typ reflect.Type
	if cur.IsValid() {
		typ = cur.Type()
	} else {
		typ = old.Type()
	}
	if !old.IsValid() || old.IsNil() {
		old = reflect.New(typ.Elem())
	}
	if !cur.IsValid() || cur.IsNil() {
		cur = reflect.New(typ.Elem())
	}
	n, err := ygot.Diff(old.Interface().(ygot.GoStruct), cur.Interface().(ygot.GoStruct))
	if err != nil {
		return nil, fmt.Errorf("diff at %s: %w", PathString(&gnmi.Path{Elem: prefix}), err)
	}
	out := make([]Change, 0, len(n.GetUpdate())+len(n.GetDelete()))
	for _, d := range n.GetDelete() {
		out = append(out, Change{Path: joinPath(prefix, d)})
	}
	for _, u := range n.GetUpdate() {
		out = append(out, Change{Path: joinPath(prefix, u.GetPath()), Value: u.GetVal()})
	}
	return out, nil
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
