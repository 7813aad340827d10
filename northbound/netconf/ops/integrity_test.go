package ops

import (
	"fmt"
	"strings"
	"testing"
)

const ncOp = `xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"`

// An operation on a key element other than merge is refused with
// operation-not-supported and the key's error-path (before, with the
// default merge it was silently ignored, and with default-operation none a
// delete left an entry without its key); a merge of the key is the entry's
// own name and changes nothing.
func TestKeyElementOperationsRefused(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.addr, "alice", "secret")
	c.mustOK(editCand(router("r1")))
	c.mustOK(`<commit/>`)
	const keyPath = "/pka:authority/pka:router[pka:name='r1']/pka:name"
	for _, tc := range []struct{ desc, op string }{
		{"delete on the key", editCand(`<router><name ` + ncOp + ` nc:operation="delete">r1</name></router>`)},
		{"remove on the key", editCand(`<router><name ` + ncOp + ` nc:operation="remove">r1</name><peer-validation>false</peer-validation></router>`)},
		{"replace on the key", editCand(`<router><name ` + ncOp + ` nc:operation="replace">r1</name></router>`)},
		{"create on the key", editCand(`<router><name ` + ncOp + ` nc:operation="create">r1</name></router>`)},
		{"delete on the key, default-operation none", `<edit-config><target><candidate/></target><default-operation>none</default-operation><config><authority ` + pka + `><router><name ` + ncOp + ` nc:operation="delete">r1</name></router></authority></config></edit-config>`},
		{"delete on the key, on running", `<edit-config><target><running/></target><default-operation>none</default-operation><config><authority ` + pka + `><router><name ` + ncOp + ` nc:operation="delete">r1</name></router></authority></config></edit-config>`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got := c.mustErr(tc.op, "operation-not-supported")
			if got.Path != keyPath || got.Type != "application" ||
				!strings.Contains(got.Message, "key leaf name of /authority/router[name=r1] cannot be changed or deleted on its own: delete the entry and create it instead") {
				t.Errorf("error-path %q, type %q, message %q", got.Path, got.Type, got.Message)
			}
		})
	}
	c.mustOK(editCand(`<router><name ` + ncOp + ` nc:operation="merge">r1</name><peer-validation>false</peer-validation></router>`))
	c.mustOK(`<commit/>`)
	got := c.data(`<get-config><source><running/></source></get-config>`)
	if !strings.Contains(got, "<router><name>r1</name><peer-validation>false</peer-validation>") {
		t.Fatalf("running: %s", got)
	}
}

// A candidate commit over a node running changed after the candidate edited
// it is refused with resource-denied and the node's error-path; a lock on
// the candidate refuses another session's edit-config on running.
func TestCandidateCommitConflictIsResourceDenied(t *testing.T) {
	e := newEnv(t)
	a := dial(t, e.addr, "alice", "secret")
	b := dial(t, e.addr, "bob", "secret")
	a.mustOK(editCand(router("r1")))
	a.mustOK(`<commit/>`)

	editRunning := func(cfg string) string {
		return `<edit-config><target><running/></target><config><authority ` + pka + `>` + cfg + `</authority></config></edit-config>`
	}
	a.mustOK(`<lock><target><candidate/></target></lock>`)
	a.mustOK(editCand(`<router><name>r1</name><peering-common-name>from-a</peering-common-name></router>`))
	if got := b.mustErr(editRunning(`<router><name>r9</name></router>`), "in-use"); got.SessionID != fmt.Sprint(a.id) ||
		!strings.Contains(got.Message, fmt.Sprintf("locked by netconf session %d", a.id)) {
		t.Fatalf("edit-config of running under another session's candidate lock: %+v", got)
	}
	a.mustOK(`<unlock><target><candidate/></target></unlock>`)
	// b changes another router and then the node a edited.
	b.mustOK(editRunning(`<router><name>r2</name></router>`))
	b.mustOK(editRunning(`<router><name>r1</name><peering-common-name>from-b</peering-common-name></router>`))
	got := a.mustErr(`<commit/>`, "resource-denied")
	if got.Path != "/pka:authority/pka:router[pka:name='r1']/pka:peering-common-name" || got.Type != "application" ||
		!strings.Contains(got.Message, "was changed in running by commit 3 (bob) after the candidate edited it") {
		t.Fatalf("conflict: %+v", got)
	}
	if r := e.store.Running().GetAuthority().GetRouter("r1"); r.GetPeeringCommonName() != "from-b" {
		t.Fatalf("running r1 = %+v", r)
	}
	// The candidate shows running's other change beside its own edit.
	cand := a.data(`<get-config><source><candidate/></source></get-config>`)
	if !strings.Contains(cand, "<name>r2</name>") || !strings.Contains(cand, "from-a") {
		t.Fatalf("candidate: %s", cand)
	}
	a.mustOK(`<discard-changes/>`)
	a.mustOK(editCand(`<router><name>r3</name></router>`))
	b.mustOK(editRunning(`<router><name>r4</name></router>`))
	a.mustOK(`<commit/>`)
	run := a.data(`<get-config><source><running/></source></get-config>`)
	for _, r := range []string{"r1", "r2", "r3", "r4"} {
		if !strings.Contains(run, "<name>"+r+"</name>") {
			t.Fatalf("running lacks %s: %s", r, run)
		}
	}
}
