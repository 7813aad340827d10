package agent

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"
	"github.com/openconfig/ygot/ygot"

	"github.com/pkiagent/pkiagent/gen"
)

// A dirty candidate is kept as the nodes its edits wrote (regions) on top
// of running. Each region remembers the running tree it was edited over.
// When running moves (a gNMI Set, another session's edit-config on
// running), the candidate is rebuilt as the new running with the regions
// grafted back from the candidate, so readers of the candidate see other
// people's commits too, and a commit of the candidate applies only its own
// edits. A region that running changed since it was edited is a conflict:
// committing would undo that change, so the commit is refused naming the
// node (see ConflictError).
//
// A merge writes the leaves its value holds, so its regions are those
// leaves; replace, create, delete and remove write the whole subtree at
// their path, which is one region. A root edit (copy-config to candidate,
// an edit of "/") is the region "/": any commit to running since conflicts.

// candRegion is one node the candidate's edits wrote.
type candRegion struct {
	elems []*gnmi.PathElem
	// seen is running when the node was first edited, seenID its commit.
	seen   *gen.Device
	seenID uint64
	// existence marks the key leaf of an entry on the path of an edit: it
	// is not grafted, it only makes the deletion of that entry in running
	// a conflict (the candidate would bring it back in part).
	existence bool
}

// ConflictError refuses a candidate commit that would undo changes made to
// running after the candidate was edited at the same nodes. It matches
// ErrConflict.
type ConflictError struct {
	Path     string // the first conflicting node, e.g. /authority/router[name=a]
	Elems    []*gnmi.PathElem
	CommitID uint64 // the running commit that changed it, 0 when unknown
	User     string // who made that commit
	More     int    // further conflicting nodes
}

func (e *ConflictError) Error() string {
	by := "by a commit"
	if e.CommitID != 0 {
		by = fmt.Sprintf("by commit %d", e.CommitID)
		if e.User != "" {
			by += " (" + e.User + ")"
		}
	}
	what := e.Path + " was changed in running " + by + " after the candidate edited it"
	if e.Path == "/" {
		what = "the candidate was replaced as a whole, and running was changed " + by + " since"
	}
	more := ""
	if e.More > 0 {
		more = fmt.Sprintf(" (and %d more conflicting nodes)", e.More)
	}
	return fmt.Sprintf("%s%s; committing the candidate would undo that change: discard the candidate changes (discard-changes) and edit again", what, more)
}

func (e *ConflictError) Unwrap() error { return ErrConflict }

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
	if !v.IsValid() || v.IsNil() || e == nil {
		return
	}
	s := v.Elem()
	for name, child := range e.Dir {
		if child.ReadOnly() {
			continue
		}
		fi, ok := fieldIndex(s.Type(), name)
		if !ok {
			continue
		}
		f := s.Field(fi)
		here := func(pe *gnmi.PathElem) []*gnmi.PathElem {
			p := make([]*gnmi.PathElem, len(prefix), len(prefix)+1)
			copy(p, prefix)
			return append(p, pe)
		}
		switch {
		case child.IsLeaf() || child.IsLeafList():
			if !f.IsZero() {
				*out = append(*out, here(&gnmi.PathElem{Name: name}))
			}
		case child.IsList():
			for it := f.MapRange(); it.Next(); {
				setLeaves(it.Value(), child, here(&gnmi.PathElem{Name: name, Key: map[string]string{child.Key: fmt.Sprint(it.Key().Interface())}}), out)
			}
		default:
			setLeaves(f, child, here(&gnmi.PathElem{Name: name}), out)
		}
	}
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

// addRegions records the regions of an edit made over running tree seen.
// A node edited before keeps its first tree: running may have changed it
// in between, and the candidate's value hid that change.
func (s *Store) addRegions(write, exist [][]*gnmi.PathElem, seen *gen.Device, seenID uint64) {
	if s.candRegions == nil {
		s.candRegions = map[string]*candRegion{}
	}
	for _, group := range []struct {
		paths     [][]*gnmi.PathElem
		existence bool
	}{{write, false}, {exist, true}} {
		for _, elems := range group.paths {
			k := prefixString(elems)
			if r, ok := s.candRegions[k]; ok {
				r.existence = r.existence && group.existence
				continue
			}
			s.candRegions[k] = &candRegion{elems: elems, seen: seen, seenID: seenID, existence: group.existence}
		}
	}
}

// sortedRegions returns the regions, shorter paths first, so a subtree is
// grafted before the nodes inside it.
func (s *Store) sortedRegions() []*candRegion {
	out := make([]*candRegion, 0, len(s.candRegions))
	for _, r := range s.candRegions {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if len(out[i].elems) != len(out[j].elems) {
			return len(out[i].elems) < len(out[j].elems)
		}
		return prefixString(out[i].elems) < prefixString(out[j].elems)
	})
	return out
}

// candidateTxLocked returns a transaction from running whose tree is the
// candidate's regions grafted on running; s.mu must be held.
func (s *Store) candidateTxLocked() (*Tx, error) {
	if r, ok := s.candRegions["/"]; ok && !r.existence {
		return newTxFromTrees(s.running, s.candidate), nil
	}
	tx := newTx(s.running)
	for _, r := range s.sortedRegions() {
		if r.existence {
			continue
		}
		if err := tx.graft(s.candidate, r.elems); err != nil {
			return nil, fmt.Errorf("carry the candidate's edit of %s onto running: %w", prefixString(r.elems), err)
		}
	}
	return tx, nil
}

// rebaseCandidateLocked rebuilds a dirty candidate on the current running
// when running moved since it was built; s.mu must be held for writing.
func (s *Store) rebaseCandidateLocked() error {
	if s.candidate == s.running || s.candBase == s.running {
		return nil
	}
	tx, err := s.candidateTxLocked()
	if err != nil {
		return err
	}
	s.candidate, s.candBase = tx.Root(), s.running
	return nil
}

// conflictLocked reports the regions running changed since they were
// edited in a way the candidate would undo; s.mu must be held and the
// candidate rebased.
func (s *Store) conflictLocked() error {
	var first *ConflictError
	n := 0
	for _, r := range s.sortedRegions() {
		if r.seen == s.running {
			continue
		}
		seen, _ := lookup(r.seen, r.elems)
		run, _ := lookup(s.running, r.elems)
		if r.existence {
			// Only the deletion of an entry the candidate edits inside.
			if !seen.IsValid() || run.IsValid() {
				continue
			}
			if cand, _ := lookup(s.candidate, r.elems); !cand.IsValid() {
				continue // the candidate deletes the entry too
			}
		} else {
			if sameNode(seen, run) {
				continue
			}
			if cand, _ := lookup(s.candidate, r.elems); sameNode(cand, run) {
				continue // running already holds what the candidate wants
			}
		}
		n++
		if first == nil {
			first = &ConflictError{Path: prefixString(r.elems), Elems: r.elems}
			first.CommitID, first.User = s.changedBy(r, seen)
		}
	}
	if first == nil {
		return nil
	}
	first.More = n - 1
	return first
}

// changedBy names the first commit after r was edited that changed it.
func (s *Store) changedBy(r *candRegion, seen reflect.Value) (uint64, string) {
	for _, h := range s.history {
		if h.info.ID <= r.seenID {
			continue
		}
		v, _ := lookup(h.root, r.elems)
		if !sameNode(seen, v) {
			return h.info.ID, h.info.User
		}
	}
	return 0, ""
}

// sameNode reports whether two nodes found at elems (struct pointers, leaf
// values, or invalid when absent) hold the same configuration.
func sameNode(a, b reflect.Value) bool {
	switch {
	case !a.IsValid() || !b.IsValid():
		return a.IsValid() == b.IsValid()
	case a.Kind() == reflect.Pointer && b.Kind() == reflect.Pointer && a.Pointer() == b.Pointer():
		return true
	case reflect.DeepEqual(a.Interface(), b.Interface()):
		return true
	}
	as, ok := a.Interface().(ygot.GoStruct)
	if !ok {
		return false
	}
	// Equal content may differ in form (an empty list map against none):
	// compare what would be saved.
	ja, err := EmitJSON(as)
	if err != nil {
		return false
	}
	jb, err := EmitJSON(b.Interface().(ygot.GoStruct))
	return err == nil && bytes.Equal(ja, jb)
}

// graft sets the node at elems of t to the one in from (sharing it: trees
// are immutable), or removes it when from has none. A key leaf missing in
// from is left alone: its entry's own region removes the entry.
func (t *Tx) graft(from *gen.Device, elems []*gnmi.PathElem) error {
	src, err := lookup(from, elems)
	if err != nil {
		return err
	}
	if !src.IsValid() {
		if _, _, isKey := keyLeafOf(elems); isKey {
			return nil
		}
		return t.apply(Edit{Op: OpRemove, Path: &gnmi.Path{Elem: elems}})
	}
	loc, _, err := resolve(reflect.ValueOf(t.root), elems, t.cow, true)
	if err != nil {
		return err
	}
	f := loc.parent.Elem().Field(loc.field)
	if loc.isList() {
		f.SetMapIndex(loc.key, src)
	} else {
		f.Set(src)
	}
	t.touch(elems)
	return nil
}
