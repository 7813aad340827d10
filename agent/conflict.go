package agent

import (
	"bytes"
	"fmt"
	"reflect"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
)

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
		if h.info.ID <= r.seenID || h.root == nil {
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
