package agent

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"
)

// reopen opens the store in dir; stop closes it (at the latest, at cleanup).
func reopen(t *testing.T, dir string, cfg Config) (s *Store, stop func()) {
	t.Helper()
	s, d, err := OpenStore(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { s.Close(); d.Close() }) }
	t.Cleanup(stop)
	return s, stop
}

// committed returns the history without the initial entry (id 0).
func committed(s *Store) []CommitInfo {
	var out []CommitInfo
	for _, h := range s.History() {
		if h.ID != 0 {
			out = append(out, h)
		}
	}
	return out
}

func ids(h []CommitInfo) []uint64 {
	out := make([]uint64, len(h))
	for i, c := range h {
		out[i] = c.ID
	}
	return out
}

func TestHistoryPersistedBoundedAndReloaded(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{History: 4}
	s, d, err := OpenStore(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if _, err := commitEdits(t, s, addCRL(t, fmt.Sprintf("http://x/%d.crl", i), i+1)); err != nil {
			t.Fatal(err)
		}
	}
	before := committed(s)
	if got := ids(before); !reflect.DeepEqual(got, []uint64{3, 4, 5, 6}) {
		t.Fatalf("history in memory %v, want the last 4", got)
	}
	if before[3].Owner != "test" || before[3].User != "alice" || before[3].Changes != 2 {
		t.Fatalf("commit 6 recorded as %+v", before[3])
	}
	s.Close()
	d.Close()

	s, stop := reopen(t, dir, cfg)
	if got := committed(s); !reflect.DeepEqual(got, before) {
		t.Fatalf("history after restart\n%+v\nwant\n%+v", got, before)
	}
	// Commit 3's tree is in the journal: it can be rolled back to.
	info, err := s.RollbackTo(context.Background(), 3, CommitOptions{User: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Running().GetAuthority().GetCertificateRevocationList("http://x/3.crl") != nil {
		t.Fatal("rollback to commit 3 kept a CRL commit 4 added")
	}
	after := committed(s)
	if got := ids(after); !reflect.DeepEqual(got, []uint64{4, 5, 6, 7}) || after[3].Comment != "rollback to commit 3" || after[3] != info {
		t.Fatalf("history after the rollback %+v", after)
	}

	// The rollback's record holds the subtrees it changed: every rollback
	// point stays, across a restart too.
	stop()
	s, _ = reopen(t, dir, cfg)
	if got := committed(s); !reflect.DeepEqual(got, after) {
		t.Fatalf("history after the second restart\n%+v\nwant\n%+v", got, after)
	}
	if _, err := s.RollbackTo(context.Background(), 5, CommitOptions{User: "ops"}); err != nil {
		t.Fatalf("rollback to commit 5 after a rollback and a restart: %v", err)
	}
	if s.Running().GetAuthority().GetCertificateRevocationList("http://x/4.crl") == nil || s.Running().GetAuthority().GetCertificateRevocationList("http://x/5.crl") != nil {
		t.Fatal("rollback to commit 5 did not restore its CRLs")
	}
	_, err = s.RollbackTo(context.Background(), 2, CommitOptions{User: "ops"})
	if !errors.Is(err, ErrNoSuchCommit) || !strings.Contains(err.Error(), "keeps the last 4") || !strings.Contains(err.Error(), "rolled back to: 5, 6, 7, 8") {
		t.Fatalf("rollback to a commit out of the history: %v", err)
	}
	st, err := s.State()
	if err != nil {
		t.Fatal(err)
	}
	hist := st.GetSystem().GetCommitHistory()
	if len(hist.Commit) != 4 || !hist.GetCommit(5).GetRollbackAvailable() || hist.GetCommit(8).GetComment() != "rollback to commit 5" || hist.GetCommit(8).GetConfirmedPending() {
		t.Fatalf("state /system/commit-history: %+v", hist.Commit)
	}
}

func TestHistorySurvivesCompaction(t *testing.T) {
	dir := t.TempDir()
	s, stop := reopen(t, dir, Config{History: 3})
	for i := range compactRecords + 2 {
		if _, err := commitEdits(t, s, addCRL(t, "http://x/c.crl", 1+i%100)); err != nil {
			t.Fatal(err)
		}
	}
	want := committed(s)
	// The commit before the snapshot keeps its record, not its tree, from
	// the snapshot on (as after a restart).
	check := func(when string) {
		t.Helper()
		_, err := s.RollbackTo(context.Background(), want[0].ID, CommitOptions{User: "ops"})
		if !errors.Is(err, ErrNoSuchCommit) || !strings.Contains(err.Error(), "not kept") || !strings.Contains(err.Error(), fmt.Sprintf("rolled back to: %d, %d", want[1].ID, want[2].ID)) {
			t.Fatalf("%s: rollback to a commit whose tree is gone: %v", when, err)
		}
		st, err := s.State()
		if err != nil {
			t.Fatal(err)
		}
		if h := st.GetSystem().GetCommitHistory(); h.GetCommit(want[0].ID).GetRollbackAvailable() || !h.GetCommit(want[2].ID).GetRollbackAvailable() {
			t.Fatalf("%s: rollback-available: %+v", when, h.Commit)
		}
	}
	check("before a restart")
	stop()
	s, _ = reopen(t, dir, Config{History: 3})
	if got := committed(s); !reflect.DeepEqual(got, want) || len(got) != 3 {
		t.Fatalf("history after a compaction and restart %v, want %v", ids(got), ids(want))
	}
	check("after a restart")
}

func TestRollbackRPC(t *testing.T) {
	s, _ := newTestStore(t, Config{})
	if _, err := commitEdits(t, s, addCRL(t, "http://x/a.crl", 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := commitEdits(t, s, addCRL(t, "http://x/b.crl", 1)); err != nil {
		t.Fatal(err)
	}
	admin := api.Caller{User: "root", Role: api.RoleAdmin}
	owner := api.Owner{Protocol: "netconf", Session: 7}
	for _, tc := range []struct{ in, want string }{
		{`{"id":"0"}`, "from 1 to"},
		{`{"id":"18446744073709551616"}`, "from 1 to"},
		{`{"id":"18446744073709551615"}`, "no such commit"},
		{`{"id":"x"}`, "from 1 to"},
		{`{"id":"1","other":1}`, "unknown field"},
	} {
		_, err := s.InvokeSystemRPC(context.Background(), admin, owner, "rollback-configuration", []byte(tc.in))
		ie, ok := errors.AsType[*api.InputError](err)
		if !ok || !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("input %s: %v; want an invalid input saying %q", tc.in, err, tc.want)
		} else if tc.want != "unknown field" && ie.Leaf != "id" {
			t.Errorf("input %s: error names leaf %q, want id", tc.in, ie.Leaf)
		}
	}
	for _, role := range []string{api.RoleViewer, api.RoleOperator} {
		_, err := s.InvokeSystemRPC(context.Background(), api.Caller{User: "v", Role: role}, owner, "rollback-configuration", []byte(`{"id":"1"}`))
		if !errors.Is(err, ErrAccessDenied) {
			t.Errorf("role %s: %v, want access denied", role, err)
		}
	}
	if err := s.Lock(Running, api.Owner{Protocol: "netconf", Session: 9}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InvokeSystemRPC(context.Background(), admin, owner, "rollback-configuration", []byte(`{"id":"1"}`)); !errors.Is(err, ErrLocked) {
		t.Errorf("rollback while another session locks running: %v", err)
	}
	s.Unlock(Running, api.Owner{Protocol: "netconf", Session: 9})
	out, err := s.InvokeSystemRPC(context.Background(), admin, owner, "rollback-configuration", []byte(`{"id":"1"}`))
	if err != nil || string(out) != `{"id":"3"}` {
		t.Fatalf("rollback: %s %v", out, err)
	}
	if s.Running().GetAuthority().GetCertificateRevocationList("http://x/b.crl") != nil {
		t.Fatal("rollback to commit 1 kept commit 2's CRL")
	}
	if h := committed(s); h[len(h)-1].User != "root" || h[len(h)-1].Owner != "netconf session 7" {
		t.Fatalf("rollback commit recorded as %+v", h[len(h)-1])
	}
}

// A rollback is a commit like any other: one that fails validation is
// refused with the validator's reason, and changes nothing.
func TestRollbackRefusedByValidation(t *testing.T) {
	v := &recorder{}
	s, _ := newTestStore(t, Config{Validators: []api.Validator{v}})
	for _, url := range []string{"http://x/a.crl", "http://x/b.crl"} {
		if _, err := commitEdits(t, s, addCRL(t, url, 1)); err != nil {
			t.Fatal(err)
		}
	}
	before := s.Running()
	v.failValid = errors.New("a CRL source is needed by router r1")
	_, err := s.InvokeSystemRPC(context.Background(), api.Caller{User: "root", Role: api.RoleAdmin}, api.Owner{Name: "t"}, "rollback-configuration", []byte(`{"id":"1"}`))
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "needed by router r1") {
		t.Fatalf("rollback refused by validation: %v", err)
	}
	if s.Running() != before || len(committed(s)) != 2 {
		t.Fatal("a refused rollback changed running or the history")
	}
}

// The history marks a confirmed commit while it is pending.
func TestHistoryMarksPendingConfirmedCommit(t *testing.T) {
	r := newConfirmRig(t)
	pending := func() map[uint64]bool {
		st, err := r.s.State()
		if err != nil {
			t.Fatal(err)
		}
		out := map[uint64]bool{}
		for id, c := range st.GetSystem().GetCommitHistory().Commit {
			out[id] = c.GetConfirmedPending()
		}
		return out
	}
	if err := r.gnmi("a", "", 0); err != nil {
		t.Fatal(err)
	}
	if err := r.netconf("b", "", 10*time.Minute, ""); err != nil {
		t.Fatal(err)
	}
	if got := pending(); !reflect.DeepEqual(got, map[uint64]bool{1: false, 2: true}) {
		t.Fatalf("confirmed-pending while commit 2 waits: %v", got)
	}
	if err := r.s.Confirm(CommitOptions{User: "u-b", Owner: api.Owner{Name: "b"}}); err != nil {
		t.Fatal(err)
	}
	if got := pending(); !reflect.DeepEqual(got, map[uint64]bool{1: false, 2: false}) {
		t.Fatalf("confirmed-pending after the confirm: %v", got)
	}
}

// FuzzRollbackInput: in a store without commits, any input of rpc
// rollback-configuration is refused as invalid input.
func FuzzRollbackInput(f *testing.F) {
	for _, s := range []string{`{"id":"1"}`, `{"id":1}`, `{"id":"0"}`, `{"id":"18446744073709551616"}`, `{"id":null}`, `{}`, `[]`, `{"id":"1"} x`, `{"id":"-1"}`, `{"id":"1","x":2}`} {
		f.Add([]byte(s))
	}
	s := New(Config{})
	f.Cleanup(s.Close)
	admin := api.Caller{User: "root", Role: api.RoleAdmin}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := s.InvokeSystemRPC(context.Background(), admin, api.Owner{Name: "fuzz"}, "rollback-configuration", in)
		if err == nil {
			t.Fatalf("input %q rolled back (%s) in a store without commits", in, out)
		}
		if _, ok := errors.AsType[*api.InputError](err); !ok || !errors.Is(err, api.ErrInvalid) {
			t.Fatalf("input %q: %v is no invalid-input error", in, err)
		}
	})
}
