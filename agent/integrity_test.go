package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/gen"
)

func routerPath(name string) string { return fmt.Sprintf("/authority/router[name=%s]", name) }

func strVal(s string) *gnmi.TypedValue {
	return &gnmi.TypedValue{Value: &gnmi.TypedValue_StringVal{StringVal: s}}
}

func boolVal(b bool) *gnmi.TypedValue {
	return &gnmi.TypedValue{Value: &gnmi.TypedValue_BoolVal{BoolVal: b}}
}

// Key leaves of list entries cannot be changed or deleted on their own,
// through any edit (gNMI update, replace, delete; NETCONF operations turn
// into the same edits); writing the key the path names is a no-op.
func TestKeyLeavesAreImmutable(t *testing.T) {
	name := routerPath("a") + "/name"
	for _, tc := range []struct {
		desc    string
		edit    Edit
		wantErr bool
	}{
		{"update of the key leaf to another value", Edit{Op: OpMerge, Path: mustPath(t, name), Value: strVal("b")}, true},
		{"update of the key leaf as json_ietf", Edit{Op: OpMerge, Path: mustPath(t, name), Value: jsonVal(`"b"`)}, true},
		{"replace of the key leaf", Edit{Op: OpReplace, Path: mustPath(t, name), Value: strVal("b")}, true},
		{"remove of the key leaf (gNMI delete)", Edit{Op: OpRemove, Path: mustPath(t, name)}, true},
		{"delete of the key leaf (NETCONF delete)", Edit{Op: OpDelete, Path: mustPath(t, name)}, true},
		{"remove of the key leaf of a missing entry", Edit{Op: OpRemove, Path: mustPath(t, routerPath("x")+"/name")}, true},
		{"remove of a peer's key leaf", Edit{Op: OpRemove, Path: mustPath(t, routerPath("a")+"/peer[name=p]/name")}, true},
		{"merge of the entry with another key", Edit{Op: OpMerge, Path: mustPath(t, routerPath("a")), Value: jsonVal(`{"name": "b"}`)}, true},
		{"replace of the entry with another key", Edit{Op: OpReplace, Path: mustPath(t, routerPath("a")), Value: jsonVal(`{"name": "b", "peer-validation": true}`)}, true},
		{"update of the key leaf to its own value", Edit{Op: OpMerge, Path: mustPath(t, name), Value: strVal("a")}, false},
		{"replace of the key leaf with its own value", Edit{Op: OpReplace, Path: mustPath(t, name), Value: jsonVal(`"a"`)}, false},
		{"update of the whole entry with its name", Edit{Op: OpMerge, Path: mustPath(t, routerPath("a")), Value: jsonVal(`{"name": "a", "peer-validation": false}`)}, false},
		{"create of a new entry through its key leaf", Edit{Op: OpMerge, Path: mustPath(t, routerPath("c")+"/name"), Value: strVal("c")}, false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			s, dir := newTestStore(t, Config{})
			if _, err := commitEdits(t, s, Edit{Op: OpMerge, Path: mustPath(t, routerPath("a")), Value: jsonVal(`{"peer-validation": true, "peer": [{"name": "p", "identifier": "p.example"}]}`)}); err != nil {
				t.Fatal(err)
			}
			before := s.Running()
			_, err := commitEdits(t, s, tc.edit)
			if !tc.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				if !equalTrees(t, reload(t, dir), s.Running()) {
					t.Fatal("disk differs from running")
				}
				return
			}
			var ke *KeyLeafError
			if !errors.As(err, &ke) || !errors.Is(err, api.ErrInvalid) || !errors.Is(err, ErrKeyLeaf) {
				t.Fatalf("err = %v, want a KeyLeafError", err)
			}
			var pe *api.PathError
			if !errors.As(err, &pe) || !strings.HasPrefix(api.PathString(pe.Path), "/authority/router[name=") {
				t.Fatalf("err = %v does not name the path", err)
			}
			if !strings.Contains(err.Error(), "cannot be changed or deleted on its own: delete the entry and create it instead") {
				t.Fatalf("err = %v", err)
			}
			if s.Running() != before {
				t.Fatal("running changed")
			}
		})
	}
}

// The reproduction of issue 10 finding 1: set peer-validation, then set the
// key leaf name to another value. Before, the second Set was acknowledged
// and its journal record did not replay at the next start.
func TestRenamingAnEntryThroughItsKeyNeverBricksTheStore(t *testing.T) {
	s, dir := newTestStore(t, Config{})
	if _, err := commitEdits(t, s, Edit{Op: OpMerge, Path: mustPath(t, routerPath("a")+"/peer-validation"), Value: boolVal(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := commitEdits(t, s, Edit{Op: OpMerge, Path: mustPath(t, routerPath("a")+"/name"), Value: strVal("b")}); !errors.Is(err, ErrKeyLeaf) {
		t.Fatalf("rename through the key leaf: %v", err)
	}
	if _, err := commitEdits(t, s, Edit{Op: OpRemove, Path: mustPath(t, routerPath("a")+"/name")}); !errors.Is(err, ErrKeyLeaf) {
		t.Fatalf("delete of the key leaf: %v", err)
	}
	got := reload(t, dir)
	if !equalTrees(t, got, s.Running()) {
		t.Fatal("disk differs from running")
	}
	if r := got.GetAuthority().GetRouter("a"); r.GetName() != "a" || !r.GetPeerValidation() || len(got.GetAuthority().Router) != 1 {
		t.Fatalf("reloaded routers: %+v", got.GetAuthority().Router)
	}
}

// Defence in depth: a commit whose journal record would not load back is
// refused before anything is saved, whatever made the tree wrong.
func TestCommitWhoseRecordWouldNotReplayIsRefused(t *testing.T) {
	s, dir := newTestStore(t, Config{})
	if _, err := commitEdits(t, s, Edit{Op: OpMerge, Path: mustPath(t, routerPath("a")), Value: jsonVal(`{"peer-validation": true}`)}); err != nil {
		t.Fatal(err)
	}
	before := s.Running()
	tx := s.Begin(Running)
	if err := tx.Apply(Edit{Op: OpMerge, Path: mustPath(t, routerPath("a")+"/peer-validation"), Value: boolVal(false)}); err != nil {
		t.Fatal(err)
	}
	// Break the invariant replay depends on behind the transaction's back:
	// the entry's key leaf no longer matches its list key.
	b := "b"
	tx.Root().GetAuthority().GetRouter("a").Name = &b
	_, err := s.Commit(context.Background(), tx, CommitOptions{User: "alice", Owner: api.Owner{Name: "test"}})
	if !errors.Is(err, ErrPersist) || !strings.Contains(err.Error(), "would not load back at the next start") {
		t.Fatalf("err = %v", err)
	}
	if s.Running() != before {
		t.Fatal("running changed")
	}
	if !equalTrees(t, reload(t, dir), before) {
		t.Fatal("disk changed")
	}
	// The store goes on committing.
	if _, err := commitEdits(t, s, Edit{Op: OpMerge, Path: mustPath(t, routerPath("a")+"/peer-validation"), Value: boolVal(false)}); err != nil {
		t.Fatal(err)
	}
	if !equalTrees(t, reload(t, dir), s.Running()) {
		t.Fatal("disk differs from running")
	}
}

// Two transactions begun from the same running, each writing another leaf
// of one entry: the later commit replays its edits on the running it finds
// and keeps the first one's write (before, it put back the whole entry as
// it was when it began).
func TestStaleTransactionKeepsAConcurrentWrite(t *testing.T) {
	s, _ := newTestStore(t, Config{})
	if _, err := commitEdits(t, s, Edit{Op: OpMerge, Path: mustPath(t, routerPath("a")+"/name"), Value: strVal("a")}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tx1, tx2 := s.Begin(Running), s.Begin(Running)
	if err := tx1.Apply(Edit{Op: OpMerge, Path: mustPath(t, routerPath("a")+"/peer-validation"), Value: boolVal(true)}); err != nil {
		t.Fatal(err)
	}
	if err := tx2.Apply(Edit{Op: OpMerge, Path: mustPath(t, routerPath("a")+"/peering-common-name"), Value: strVal("r.example")}); err != nil {
		t.Fatal(err)
	}
	for _, tx := range []*Tx{tx1, tx2} {
		if _, err := s.Commit(ctx, tx, CommitOptions{Owner: api.Owner{Name: "gnmi"}}); err != nil {
			t.Fatal(err)
		}
	}
	r := s.Running().GetAuthority().GetRouter("a")
	if !r.GetPeerValidation() || r.GetPeeringCommonName() != "r.example" {
		t.Fatalf("router a = %+v: a write was lost", r)
	}
}

// The reproduction of issue 10 finding 3: session 1 edits the candidate; a
// gNMI Set adds router g-1; session 1 commits. Before, g-1 was gone.
func TestCandidateCommitKeepsLaterRunningWrites(t *testing.T) {
	for _, lock := range []bool{false, true} {
		t.Run(fmt.Sprintf("lock=%v", lock), func(t *testing.T) {
			ctx := context.Background()
			s, dir := newTestStore(t, Config{})
			if _, err := commitEdits(t, s, addCRL(t, "http://x/base.crl", 2)); err != nil {
				t.Fatal(err)
			}
			if err := s.EditCandidate(api.NetconfOwner(1), Edit{Op: OpMerge, Path: mustPath(t, "/authority"), Value: jsonVal(`{"router": [{"name": "n-1", "peer-validation": true}]}`)}); err != nil {
				t.Fatal(err)
			}
			if lock {
				// The README's pattern: the lock is taken while editing;
				// then no other owner can commit to running at all.
				if err := s.Lock(Candidate, api.NetconfOwner(1)); err != nil {
					t.Fatal(err)
				}
				_, err := commitEdits(t, s, Edit{Op: OpMerge, Path: mustPath(t, routerPath("g-1")+"/peer-validation"), Value: boolVal(true)})
				var le *LockError
				if !errors.As(err, &le) || le.Holder != api.NetconfOwner(1) || !strings.Contains(err.Error(), "locked by netconf session 1") {
					t.Fatalf("gNMI-style commit under a candidate lock: %v", err)
				}
				if err := s.Unlock(Candidate, api.NetconfOwner(1)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := commitEdits(t, s, Edit{Op: OpMerge, Path: mustPath(t, routerPath("g-1")+"/peer-validation"), Value: boolVal(true)}); err != nil {
				t.Fatal(err)
			}
			// The dirty candidate shows running's change beside its own.
			if c := s.Candidate().GetAuthority(); c.GetRouter("g-1") == nil || c.GetRouter("n-1") == nil {
				t.Fatalf("candidate routers: %v", c.Router)
			}
			if _, err := s.CommitCandidate(ctx, CommitOptions{User: "nc", Owner: api.NetconfOwner(1)}); err != nil {
				t.Fatal(err)
			}
			for _, got := range []*gen.Device{s.Running(), reload(t, dir)} {
				a := got.GetAuthority()
				if a.GetRouter("g-1") == nil || a.GetRouter("n-1") == nil || a.GetCertificateRevocationList("http://x/base.crl") == nil {
					t.Fatalf("after the candidate commit: routers %v, crls %v", a.Router, a.CertificateRevocationList)
				}
			}
		})
	}
}

// An edit inside a missing entry creates the entry; removing that content
// again in the same commit leaves the entry, empty. The entry is what the
// commit changed: its changes name it and it is saved and loads back
// (TestRandomEditsReloadAsAcknowledged seed 1796176202302115200: the
// journal recorded only the removed peer, and router c was gone after a
// restart).
func TestEntryMadeByRemovedContentIsSaved(t *testing.T) {
	s, dir := newTestStore(t, Config{})
	peer := routerPath("c") + "/peer[name=q]"
	tx := s.Begin(Running)
	if err := tx.Apply(
		Edit{Op: OpMerge, Path: mustPath(t, peer+"/identifier"), Value: strVal("id-4")},
		Edit{Op: OpRemove, Path: mustPath(t, peer)},
	); err != nil {
		t.Fatal(err)
	}
	ch, err := tx.Changes()
	if err != nil {
		t.Fatal(err)
	}
	if len(ch) != 1 || api.PathString(ch[0].Path) != routerPath("c")+"/name" {
		t.Fatalf("changes = %v, want router c made", ch)
	}
	if _, err := s.Commit(context.Background(), tx, CommitOptions{User: "alice", Owner: api.Owner{Name: "test"}}); err != nil {
		t.Fatal(err)
	}
	if s.Running().GetAuthority().GetRouter("c") == nil {
		t.Fatal("running has no router c")
	}
	if got := reload(t, dir); !equalTrees(t, got, s.Running()) {
		t.Fatalf("loaded back: routers %v", got.GetAuthority().GetRouter("c"))
	}
}

// The same through the candidate: its edits make router a and remove what
// they wrote inside it, in one edit-config or two, with commits to running
// in between or not; the commit brings router a to running and to disk
// (seeds 1796176170696009897, 1796175998242642353: the entry the candidate
// carried onto running was no change of the commit, so the commit wrote
// nothing, or running had the entry and the disk had not).
func TestCandidateEntryMadeByRemovedContentIsCommitted(t *testing.T) {
	peer := routerPath("a") + "/peer[name=q]"
	merge := Edit{Op: OpMerge, Path: mustPath(t, peer+"/identifier"), Value: strVal("id-2")}
	remove := Edit{Op: OpRemove, Path: mustPath(t, peer)}
	other := Edit{Op: OpMerge, Path: mustPath(t, routerPath("c")+"/peer-validation"), Value: boolVal(true)}
	type step struct {
		toRunning bool // a commit straight to running, else a candidate edit
		edits     []Edit
	}
	for _, tc := range []struct {
		desc  string
		steps []step
	}{
		{"one edit-config", []step{{false, []Edit{merge, remove}}}},
		{"one edit-config, running commit after", []step{{false, []Edit{merge, remove}}, {true, []Edit{other}}}},
		{"two edit-configs, running commit between", []step{{false, []Edit{merge}}, {true, []Edit{other}}, {false, []Edit{remove}}}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			s, dir := newTestStore(t, Config{})
			me := api.NetconfOwner(1)
			for _, st := range tc.steps {
				var err error
				if st.toRunning {
					_, err = commitEdits(t, s, st.edits...)
				} else {
					err = s.EditCandidate(me, st.edits...)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.CommitCandidate(context.Background(), CommitOptions{User: "nc", Owner: me}); err != nil {
				t.Fatal(err)
			}
			if s.Running().GetAuthority().GetRouter("a") == nil {
				t.Fatal("running has no router a")
			}
			if !equalTrees(t, reload(t, dir), s.Running()) {
				t.Fatal("disk differs from running")
			}
		})
	}
}

// An entry the candidate only passed through (the remove of a node inside
// an entry absent at the time) is not the candidate's: when running later
// gains and loses that entry, the commit does not bring it back
// (PKI_PROPERTY_SEED=1796177900484854357), and a remove of a node that running
// gained meanwhile is a conflict, not a silent keep
// (PKI_PROPERTY_SEED=1796174446706415775).
func TestCandidateRemoveOfAnAbsentNode(t *testing.T) {
	ctx := context.Background()
	me := api.NetconfOwner(1)
	remove := Edit{Op: OpRemove, Path: mustPath(t, routerPath("a")+"/peer[name=q]")}
	create := Edit{Op: OpMerge, Path: mustPath(t, routerPath("a")+"/peer-validation"), Value: boolVal(true)}
	drop := Edit{Op: OpRemove, Path: mustPath(t, routerPath("a"))}

	s, _ := newTestStore(t, Config{})
	if err := s.EditCandidate(me, remove); err != nil {
		t.Fatal(err)
	}
	for _, e := range []Edit{create, drop} {
		if _, err := commitEdits(t, s, e); err != nil {
			t.Fatal(err)
		}
		s.Candidate() // a read rebuilds the candidate on the new running
	}
	if _, err := s.CommitCandidate(ctx, CommitOptions{User: "nc", Owner: me}); err != nil {
		t.Fatal(err)
	}
	if s.Running().GetAuthority().GetRouter("a") != nil {
		t.Fatal("the candidate commit brought back router a, which running had deleted")
	}

	s, _ = newTestStore(t, Config{})
	if err := s.EditCandidate(me, Edit{Op: OpRemove, Path: mustPath(t, routerPath("b"))}); err != nil {
		t.Fatal(err)
	}
	if _, err := commitEdits(t, s, Edit{Op: OpMerge, Path: mustPath(t, routerPath("b")+"/peer-validation"), Value: boolVal(true)}); err != nil {
		t.Fatal(err)
	}
	_, err := s.CommitCandidate(ctx, CommitOptions{User: "nc", Owner: me})
	var ce *ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("candidate remove of router b, which running gained after the edit: got %v, want a conflict", err)
	}
	if s.Running().GetAuthority().GetRouter("b") == nil {
		t.Fatal("a refused commit changed running")
	}
}

// Where running changed a node the candidate edited, after the candidate
// edited it, the commit is refused naming the node; elsewhere it merges.
func TestCandidateCommitConflicts(t *testing.T) {
	pv := func(router string, v bool) Edit {
		return Edit{Op: OpMerge, Path: mustPath(t, routerPath(router)+"/peer-validation"), Value: boolVal(v)}
	}
	for _, tc := range []struct {
		desc     string
		cand     []Edit // candidate edits, after the setup commit
		running  []Edit // then committed straight to running
		conflict string // the node named, "" for a clean merge
		check    func(t *testing.T, d *gen.Device)
	}{{
		desc:     "same leaf",
		cand:     []Edit{{Op: OpMerge, Path: mustPath(t, routerPath("a")+"/peering-common-name"), Value: strVal("c")}},
		running:  []Edit{pv("b", true), {Op: OpMerge, Path: mustPath(t, routerPath("a")+"/peering-common-name"), Value: strVal("r")}},
		conflict: routerPath("a") + "/peering-common-name",
	}, {
		desc:    "other leaf of the same entry merges",
		cand:    []Edit{pv("a", false)},
		running: []Edit{{Op: OpMerge, Path: mustPath(t, routerPath("a")+"/peering-common-name"), Value: strVal("x")}},
		check: func(t *testing.T, d *gen.Device) {
			if r := d.GetAuthority().GetRouter("a"); r.GetPeerValidation() || r.GetPeeringCommonName() != "x" {
				t.Errorf("router a = %+v", r)
			}
		},
	}, {
		desc:    "running already holds the candidate's value",
		cand:    []Edit{pv("a", false)},
		running: []Edit{pv("a", false), pv("b", true)},
		check: func(t *testing.T, d *gen.Device) {
			if d.GetAuthority().GetRouter("b") == nil {
				t.Error("router b lost")
			}
		},
	}, {
		desc:     "entry deleted in running under a merge into it",
		cand:     []Edit{pv("a", false)},
		running:  []Edit{{Op: OpDelete, Path: mustPath(t, routerPath("a"))}},
		conflict: routerPath("a") + "/name",
	}, {
		desc:     "entry replaced in the candidate, a leaf inside changed in running",
		cand:     []Edit{{Op: OpReplace, Path: mustPath(t, routerPath("a")), Value: jsonVal(`{"name": "a"}`)}},
		running:  []Edit{{Op: OpMerge, Path: mustPath(t, routerPath("a")+"/peering-common-name"), Value: strVal("x")}},
		conflict: routerPath("a"),
	}, {
		desc:     "entry deleted in the candidate, changed in running",
		cand:     []Edit{{Op: OpDelete, Path: mustPath(t, routerPath("a"))}},
		running:  []Edit{pv("a", false)},
		conflict: routerPath("a"),
	}, {
		// NETCONF edit-config's default merge of <authority> around a
		// delete of one entry is an empty merge of the container: it writes
		// nothing, so a commit elsewhere under it is no conflict.
		desc:    "entry deleted in the candidate under an empty merge of its container, another entry changed in running",
		cand:    []Edit{{Op: OpMerge, Path: mustPath(t, "/authority"), Value: jsonVal(`{}`)}, {Op: OpDelete, Path: mustPath(t, routerPath("a"))}},
		running: []Edit{pv("b", true)},
		check: func(t *testing.T, d *gen.Device) {
			if d.GetAuthority().GetRouter("a") != nil || d.GetAuthority().GetRouter("b") == nil {
				t.Errorf("routers = %v", d.GetAuthority().Router)
			}
		},
	}, {
		desc:     "entry deleted in the candidate under an empty merge of its container, changed in running",
		cand:     []Edit{{Op: OpMerge, Path: mustPath(t, "/authority"), Value: jsonVal(`{}`)}, {Op: OpDelete, Path: mustPath(t, routerPath("a"))}},
		running:  []Edit{pv("a", false)},
		conflict: routerPath("a"),
	}, {
		desc:    "entry deleted in both",
		cand:    []Edit{{Op: OpDelete, Path: mustPath(t, routerPath("a"))}},
		running: []Edit{{Op: OpDelete, Path: mustPath(t, routerPath("a"))}, pv("b", true)},
		check: func(t *testing.T, d *gen.Device) {
			if d.GetAuthority().GetRouter("a") != nil || d.GetAuthority().GetRouter("b") == nil {
				t.Errorf("routers = %v", d.GetAuthority().Router)
			}
		},
	}, {
		desc:     "entry created in both with different values",
		cand:     []Edit{pv("n", true)},
		running:  []Edit{pv("n", false)},
		conflict: routerPath("n") + "/peer-validation",
	}, {
		desc:    "entry created in both, different leaves",
		cand:    []Edit{pv("n", true)},
		running: []Edit{{Op: OpMerge, Path: mustPath(t, routerPath("n")+"/peering-common-name"), Value: strVal("x")}},
		check: func(t *testing.T, d *gen.Device) {
			if r := d.GetAuthority().GetRouter("n"); !r.GetPeerValidation() || r.GetPeeringCommonName() != "x" {
				t.Errorf("router n = %+v", r)
			}
		},
	}, {
		desc:     "candidate replaced as a whole (copy-config)",
		cand:     nil, // see the ReplaceCandidate below
		running:  []Edit{pv("b", true)},
		conflict: "/",
	}} {
		t.Run(tc.desc, func(t *testing.T) {
			ctx := context.Background()
			s, dir := newTestStore(t, Config{})
			if _, err := commitEdits(t, s, pv("a", true)); err != nil {
				t.Fatal(err)
			}
			me := api.NetconfOwner(1)
			if tc.cand == nil {
				tx := s.Begin(Running)
				if err := tx.Apply(addCRL(t, "http://x/whole.crl", 3)); err != nil {
					t.Fatal(err)
				}
				if err := s.ReplaceCandidate(me, tx.Root()); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.EditCandidate(me, tc.cand...); err != nil {
				t.Fatal(err)
			}
			var lastID uint64
			for _, e := range tc.running {
				info, err := commitEdits(t, s, e)
				if err != nil {
					t.Fatal(err)
				}
				lastID = info.ID
			}
			before := s.Running()
			_, err := s.CommitCandidate(ctx, CommitOptions{User: "nc", Owner: me})
			if tc.conflict == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !equalTrees(t, reload(t, dir), s.Running()) {
					t.Fatal("disk differs from running")
				}
				tc.check(t, s.Running())
				return
			}
			var ce *ConflictError
			if !errors.As(err, &ce) || !errors.Is(err, ErrConflict) || ce.Path != tc.conflict {
				t.Fatalf("err = %v, want a conflict at %s", err, tc.conflict)
			}
			if ce.CommitID == 0 || ce.CommitID > lastID || ce.User != "alice" {
				t.Errorf("conflict names commit %d by %q, want one of the running commits by alice", ce.CommitID, ce.User)
			}
			if !strings.Contains(err.Error(), "would undo that change") || !strings.Contains(err.Error(), "discard-changes") {
				t.Errorf("err = %v", err)
			}
			if s.Running() != before || !s.CandidateDirty() {
				t.Fatal("a refused commit changed running or dropped the candidate")
			}
			// Discarding and editing again commits.
			if err := s.DiscardCandidate(me); err != nil {
				t.Fatal(err)
			}
			if err := s.EditCandidate(me, pv("z", true)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CommitCandidate(ctx, CommitOptions{User: "nc", Owner: me}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A NETCONF lock on running or on candidate refuses other owners' commits
// to running (gNMI Set, edit-config on running, candidate commits), naming
// the holder; the holder commits.
func TestLocksBlockOtherWritersOfRunning(t *testing.T) {
	ctx := context.Background()
	for _, ds := range []Datastore{Running, Candidate} {
		t.Run(ds.String(), func(t *testing.T) {
			s, _ := newTestStore(t, Config{})
			holder := api.NetconfOwner(7)
			if err := s.Lock(ds, holder); err != nil {
				t.Fatal(err)
			}
			_, err := commitEdits(t, s, addCRL(t, "http://x/a.crl", 1))
			var le *LockError
			if !errors.As(err, &le) || le.Holder != holder || le.Datastore != ds {
				t.Fatalf("direct commit: %v", err)
			}
			if _, err := s.RollbackTo(ctx, 0, CommitOptions{Owner: api.Owner{Name: "gnmi bob"}}); !errors.As(err, &le) {
				t.Fatalf("rollback by another owner: %v", err)
			}
			tx := s.Begin(Running)
			if err := tx.Apply(addCRL(t, "http://x/a.crl", 1)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Commit(ctx, tx, CommitOptions{Owner: holder}); err != nil {
				t.Fatalf("the holder's commit: %v", err)
			}
			if ds == Running {
				// Another session may edit the candidate, not commit it.
				if err := s.EditCandidate(api.NetconfOwner(8), addCRL(t, "http://x/b.crl", 1)); err != nil {
					t.Fatal(err)
				}
				if _, err := s.CommitCandidate(ctx, CommitOptions{Owner: api.NetconfOwner(8)}); !errors.As(err, &le) || le.Holder != holder {
					t.Fatalf("candidate commit under a running lock: %v", err)
				}
			}
		})
	}
}
