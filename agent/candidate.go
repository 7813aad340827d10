package agent

import (
	"fmt"
	"sort"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent/api"
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
	// created marks an existence region whose entry the candidate's own
	// edits made: only such an entry is carried onto running.
	created bool
}

// EditCandidate applies edits to the shared candidate as one unit: all of
// them or none. It fails if another owner holds the candidate lock.
func (s *Store) EditCandidate(owner api.Owner, edits ...Edit) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	err := s.checkWritable(Candidate, owner)
	if err == nil {
		err = s.rebaseCandidateLocked()
	}
	base, seen, seenID := s.candidate, s.running, s.lastID
	s.mu.Unlock()
	if err != nil {
		return err
	}
	tx := newTx(base)
	if err := tx.Apply(edits...); err != nil {
		return err
	}
	if len(edits) == 0 {
		return nil
	}
	// An edit that changed nothing (the remove of an absent node) is still
	// the candidate's edit: if running gains the node before the commit,
	// the commit must not silently keep or undo that write.
	write, exist, err := editRegions(tx)
	if err != nil {
		return err
	}
	created := map[string]bool{}
	for _, keyElems := range exist {
		entry := keyElems[:len(keyElems)-1]
		before, _ := lookup(base, entry)
		after, _ := lookup(tx.Root(), entry)
		if !before.IsValid() && after.IsValid() {
			created[prefixString(keyElems)] = true
		}
	}
	s.mu.Lock()
	s.addRegions(write, exist, created, seen, seenID)
	s.candidate, s.candBase = tx.Root(), seen
	s.dirtyBy[owner] = true
	s.mu.Unlock()
	return nil
}

// ReplaceCandidate sets the candidate to root (copy-config). The whole
// tree is then the candidate's edit: a commit of it is refused when running
// changed after the replace, since it would undo that change.
func (s *Store) ReplaceCandidate(owner api.Owner, root *gen.Device) error {
	if root == s.Running() {
		// The reader's view of running (copy-config running to
		// candidate): running itself, with its secrets.
		root = s.runningTree()
	}
	if root != s.runningTree() {
		if err := screenTree(root); err != nil {
			return err
		}
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkWritable(Candidate, owner); err != nil {
		return err
	}
	if root == s.running {
		s.resetCandidateLocked()
		return nil
	}
	s.candRegions = nil
	s.addRegions([][]*gnmi.PathElem{nil}, nil, nil, s.running, s.lastID)
	s.candidate, s.candBase = root, s.running
	s.dirtyBy[owner] = true
	return nil
}

// DiscardCandidate resets the candidate to running.
func (s *Store) DiscardCandidate(owner api.Owner) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkWritable(Candidate, owner); err != nil {
		return err
	}
	s.resetCandidateLocked()
	return nil
}

// resetCandidateLocked makes the candidate a clean view of running again;
// s.mu must be held for writing.
func (s *Store) resetCandidateLocked() {
	s.candidate = s.running
	s.dirtyBy = map[api.Owner]bool{}
	s.candRegions = nil
	s.candBase = s.running
}

// addRegions records the regions of an edit made over running tree seen.
// A node edited before keeps its first tree: running may have changed it
// in between, and the candidate's value hid that change.
func (s *Store) addRegions(write, exist [][]*gnmi.PathElem, created map[string]bool, seen *gen.Device, seenID uint64) {
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
				r.created = r.created || created[k]
				continue
			}
			s.candRegions[k] = &candRegion{elems: elems, seen: seen, seenID: seenID, existence: group.existence, created: created[k]}
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
			if !r.created {
				continue
			}
			// An entry the candidate's edits made as the parent of what
			// they wrote stays, even when those edits removed its content.
			if err := tx.ensureEntry(s.candidate, r.elems); err != nil {
				return nil, fmt.Errorf("carry the candidate's entry %s onto running: %w", prefixString(r.elems), err)
			}
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

// ensureEntry creates the list entry whose key leaf is at keyElems, with
// only its key, when from has it and t does not.
func (t *Tx) ensureEntry(from *gen.Device, keyElems []*gnmi.PathElem) error {
	elems := keyElems[:len(keyElems)-1]
	if src, err := lookup(from, elems); err != nil || !src.IsValid() {
		return err
	}
	loc, err := t.locate(elems, true)
	if err != nil || !loc.isList() {
		return err
	}
	if _, exists := loc.get(); exists {
		return nil
	}
	f := loc.parent.Elem().Field(loc.field)
	v := newListEntry(f.Type().Elem(), loc.entry, loc.key.String())
	t.cow.own(v)
	f.SetMapIndex(loc.key, v)
	t.touch(elems)
	return nil
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
	loc, err := t.locate(elems, true)
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
