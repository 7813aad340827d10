package ops

import (
	"strings"
	"testing"
)

const pks = `xmlns="urn:pkiagent:yang:pki-agent-system"`

func rollback(id string) string {
	return `<rollback-configuration ` + pks + `><id>` + id + `</id></rollback-configuration>`
}

// TestRollbackConfiguration: the rpc of module pki-agent-system, its
// history in get, and its errors as the brief names them.
func TestRollbackConfiguration(t *testing.T) {
	e := newEnv(t)
	alice := dial(t, e.addr, "alice", "secret")
	for _, r := range []string{"r1", "r2"} {
		alice.mustOK(editCand(router(r)))
		alice.mustOK(`<commit/>`)
	}
	hist := alice.data(`<get><filter type="subtree"><system ` + pks + `><commit-history/></system></filter></get>`)
	for _, want := range []string{"<id>1</id>", "<id>2</id>", "<comment>NETCONF commit</comment>", "<rollback-available>true</rollback-available>"} {
		if !strings.Contains(hist, want) {
			t.Fatalf("get of /system/commit-history lacks %s:\n%s", want, hist)
		}
	}

	victor := dial(t, e.addr, "victor", "pw")
	victor.mustErr(rollback("1"), "access-denied")
	olga := dial(t, e.addr, "olga", "pw")
	olga.mustErr(rollback("1"), "access-denied")

	for _, id := range []string{"99", "0", "18446744073709551616", "x"} {
		if re := alice.mustErr(rollback(id), "invalid-value"); re.Path != "/pks:rollback-configuration/pks:id" {
			t.Errorf("rollback to %s: error-path %q", id, re.Path)
		}
	}
	if re := alice.mustErr(rollback("99"), "invalid-value"); !strings.Contains(re.Message, "rolled back to: 1, 2") {
		t.Errorf("unknown id: %q does not say which ids can be rolled back to", re.Message)
	}
	alice.mustErr(`<rollback-configuration `+pks+`/>`, "missing-element")

	bob := dial(t, e.addr, "bob", "secret")
	bob.mustOK(`<lock><target><running/></target></lock>`)
	alice.mustErr(rollback("1"), "in-use")
	bob.mustOK(`<unlock><target><running/></target></unlock>`)

	if out := alice.rpc(rollback("1")); !strings.Contains(out, `<id `+pks+`>3</id>`) {
		t.Fatalf("rollback to commit 1: %s", out)
	}
	if got := alice.data(`<get-config><source><running/></source></get-config>`); !strings.Contains(got, "r1") || strings.Contains(got, "r2") {
		t.Fatalf("running after the rollback to commit 1: %s", got)
	}
	if hist := alice.data(`<get><filter type="subtree"><system ` + pks + `><commit-history/></system></filter></get>`); !strings.Contains(hist, "<comment>rollback to commit 1</comment>") {
		t.Fatalf("history lacks the rollback commit:\n%s", hist)
	}
}
