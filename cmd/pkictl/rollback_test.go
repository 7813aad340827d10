package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// commitIDs reads show commits -o json.
func commitIDs(t *testing.T, a *agent) (string, []commitRecord) {
	t.Helper()
	out := a.ok(t, "show", "commits", "-o", "json")
	var v struct{ Commit []commitRecord }
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("show commits -o json: %v\n%s", err, out)
	}
	return out, v.Commit
}

// TestCommitHistoryAndRollback: three commits over gNMI (user add and
// delete are gNMI Sets), a restart, show commits, config rollback N over
// NETCONF, another restart; and the rollback refused for bad ids and for a
// viewer.
func TestCommitHistoryAndRollback(t *testing.T) {
	a := startAgent(t)
	_, start := commitIDs(t, a)
	pw := map[string]string{"PKICTL_NEW_PASSWORD": "history-pass-1"}
	for _, args := range [][]string{{"user", "add", "alice", "--role", "operator"}, {"user", "add", "bob", "--role", "viewer"}, {"user", "delete", "alice"}} {
		if r := a.pkictl(t, "", pw, args...); r.code != 0 {
			t.Fatalf("%s: %+v", strings.Join(args, " "), r)
		}
	}
	before, commits := commitIDs(t, a)
	if len(commits) != len(start)+3 {
		t.Fatalf("3 commits made, history went from %d to %d entries:\n%s", len(start), len(commits), before)
	}
	first := commits[len(start)]
	if first.User != "admin" || first.Owner == "" || first.Changes == 0 || !first.RollbackAvailable {
		t.Fatalf("the first commit is listed as %+v", first)
	}

	a = a.restart(t)
	if after, _ := commitIDs(t, a); after != before {
		t.Fatalf("show commits after restart\n%s\nbefore\n%s", after, before)
	}
	want(t, "show commits", a.ok(t, "show", "commits"), "ID", "SESSION", "CHANGES", fmt.Sprint(first.ID))

	// Rollback to the first of the three: alice back, bob gone.
	r := a.pkictl(t, "", nil, "config", "rollback", fmt.Sprint(first.ID))
	if r.code != 0 || !strings.Contains(r.stderr, fmt.Sprintf("rolled back to the configuration of commit %d (commit ", first.ID)) {
		t.Fatalf("config rollback %d: %+v", first.ID, r)
	}
	users := a.ok(t, "user", "list")
	if !strings.Contains(users, "alice") || strings.Contains(users, "bob") {
		t.Fatalf("user list after the rollback:\n%s", users)
	}
	rolled, commits := commitIDs(t, a)
	last := commits[len(commits)-1]
	if last.Comment != fmt.Sprintf("rollback to commit %d", first.ID) || last.User != "admin" {
		t.Fatalf("the rollback commit is listed as %+v", last)
	}

	a = a.restart(t)
	if after, _ := commitIDs(t, a); after != rolled {
		t.Fatalf("show commits after the second restart\n%s\nbefore\n%s", after, rolled)
	}
	if users := a.ok(t, "user", "list"); !strings.Contains(users, "alice") || strings.Contains(users, "bob") {
		t.Fatalf("user list after the second restart:\n%s", users)
	}

	// Every rollback point stayed across both restarts: back to the second
	// commit (alice and bob).
	if r := a.pkictl(t, "", nil, "config", "rollback", fmt.Sprint(first.ID+1)); r.code != 0 {
		t.Fatalf("config rollback %d after two restarts: %+v", first.ID+1, r)
	}
	if users := a.ok(t, "user", "list"); !strings.Contains(users, "alice") || !strings.Contains(users, "bob") {
		t.Fatalf("user list after the rollback to commit %d:\n%s", first.ID+1, users)
	}
	for _, tc := range []struct{ id, want string }{
		{"0", "N is a commit id"},
		{"-1", "not defined"},
		{"18446744073709551616", "N is a commit id"},
		{"x1", "N is a commit id"},
		{"18446744073709551615", "/pks:rollback-configuration/pks:id"},
		{"99999", "commits that can be rolled back to: "},
	} {
		r := a.pkictl(t, "", nil, "config", "rollback", tc.id)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "goroutine") {
			t.Errorf("config rollback %s: %+v; want a refusal saying %q", tc.id, r, tc.want)
		}
	}
	if r := a.pkictl(t, "", nil, "config", "rollback", "1", "2"); r.code == 0 {
		t.Errorf("config rollback 1 2: %+v", r)
	}
	// A viewer reads the history but may not roll back.
	if r := a.pkictl(t, "", pw, "user", "add", "vera", "--role", "viewer"); r.code != 0 {
		t.Fatalf("user add vera: %+v", r)
	}
	vera := map[string]string{"PKICTL_USERNAME": "vera", "PKICTL_PASSWORD": "history-pass-1"}
	if r := a.pkictl(t, "", vera, "show", "commits"); r.code != 0 {
		t.Fatalf("a viewer's show commits: %+v", r)
	}
	if r := a.pkictl(t, "", vera, "config", "rollback", fmt.Sprint(last.ID)); r.code == 0 || !strings.Contains(r.stderr, "needs role admin") {
		t.Fatalf("a viewer's rollback: %+v", r)
	}
}
