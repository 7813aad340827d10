package ops

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const pka = `xmlns="urn:pkiagent:yang:pki-authority"`

func router(name string) string {
	return `<router><name>` + name + `</name><peer-validation>true</peer-validation><peer><name>p1</name><identifier>cn-` + name + `</identifier></peer></router>`
}

func editCand(cfg string) string {
	return `<edit-config><target><candidate/></target><config><authority ` + pka + `>` + cfg + `</authority></config></edit-config>`
}

func TestEditCommitGetConfig(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.addr, "alice", "secret")
	c.mustOK(editCand(router("r1") + `<crl-settings><discover-from-certificates>false</discover-from-certificates></crl-settings>`))
	if got := c.data(`<get-config><source><running/></source></get-config>`); strings.Contains(got, "r1") {
		t.Fatalf("running has the candidate's change before commit: %s", got)
	}
	c.mustOK(`<validate><source><candidate/></source></validate>`)
	c.mustOK(`<commit/>`)
	got := c.data(`<get-config><source><running/></source></get-config>`)
	want := `<authority xmlns="urn:pkiagent:yang:pki-authority"><crl-settings><discover-from-certificates>false</discover-from-certificates></crl-settings><router><name>r1</name><peer-validation>true</peer-validation><peer><name>p1</name><identifier>cn-r1</identifier></peer></router></authority>`
	if got != want {
		t.Fatalf("running:\n got %s\nwant %s", got, want)
	}
}

func TestCandidateWorkflowLocksAndConfirmedCommit(t *testing.T) {
	e := newEnv(t)
	a := dial(t, e.addr, "alice", "secret")
	b := dial(t, e.addr, "bob", "secret")
	a.mustOK(`<lock><target><candidate/></target></lock>`)
	if got := b.mustErr(`<lock><target><candidate/></target></lock>`, "lock-denied"); got.SessionID != fmt.Sprint(a.id) || got.Type != "protocol" {
		t.Fatalf("lock-denied names session %q, want %d: %+v", got.SessionID, a.id, got)
	}
	if got := b.mustErr(editCand(router("rb")), "in-use"); !strings.Contains(got.Message, fmt.Sprintf("netconf session %d", a.id)) {
		t.Fatalf("in-use message %q does not name the holder", got.Message)
	}
	b.mustErr(`<unlock><target><candidate/></target></unlock>`, "in-use")
	a.mustOK(editCand(router("r1")))
	a.mustOK(`<validate><source><candidate/></source></validate>`)
	a.mustOK(`<commit><confirmed/><confirm-timeout>120</confirm-timeout><persist>tok-1</persist></commit>`)
	a.mustOK(`<unlock><target><candidate/></target></unlock>`)
	if p, ok := e.store.Pending(); !ok || p.PersistID != "tok-1" {
		t.Fatalf("pending = %+v, %v", p, ok)
	}
	// Another session confirms with the persist-id; a wrong one is refused.
	b.mustErr(`<commit><persist-id>nope</persist-id></commit>`, "invalid-value")
	b.mustOK(`<commit><persist-id>tok-1</persist-id></commit>`)
	if _, ok := e.store.Pending(); ok {
		t.Fatal("still pending after the confirming commit")
	}
	if got := a.data(`<get-config><source><running/></source></get-config>`); !strings.Contains(got, "<name>r1</name>") {
		t.Fatalf("running after confirm: %s", got)
	}
	b.mustErr(`<cancel-commit/>`, "operation-failed")

	// A confirmed commit cancelled by another session with its persist-id
	// rolls running back.
	a.mustOK(editCand(router("r2")))
	a.mustOK(`<commit><confirmed/><persist>tok-2</persist></commit>`)
	b.mustErr(`<cancel-commit/>`, "invalid-value")
	b.mustOK(`<cancel-commit><persist-id>tok-2</persist-id></cancel-commit>`)
	if got := a.data(`<get-config><source><running/></source></get-config>`); strings.Contains(got, "r2") || !strings.Contains(got, "r1") {
		t.Fatalf("running after cancel-commit: %s", got)
	}

	// A candidate A modified cannot be locked by B.
	a.mustOK(editCand(router("r3")))
	b.mustErr(`<lock><target><candidate/></target></lock>`, "resource-denied")
	a.mustOK(`<discard-changes/>`)
	b.mustOK(`<lock><target><candidate/></target></lock>`)
	b.mustOK(`<lock><target><running/></target></lock>`)
	// kill-session releases B's locks.
	a.mustErr(fmt.Sprintf(`<kill-session><session-id>%d</session-id></kill-session>`, a.id), "invalid-value")
	a.mustOK(fmt.Sprintf(`<kill-session><session-id>%d</session-id></kill-session>`, b.id))
	a.mustOK(`<lock><target><candidate/></target></lock>`)
	a.mustOK(`<lock><target><running/></target></lock>`)
	a.mustErr(`<kill-session><session-id>999</session-id></kill-session>`, "invalid-value")
}

func TestConfirmedCommitRollsBackWhenSessionEndsOrTimesOut(t *testing.T) {
	e := newEnv(t)
	a := dial(t, e.addr, "alice", "secret")
	a.mustOK(editCand(router("r1")))
	a.mustOK(`<commit><confirmed/><confirm-timeout>1</confirm-timeout></commit>`)
	if got := a.data(`<get-config><source><running/></source></get-config>`); !strings.Contains(got, "r1") {
		t.Fatalf("running: %s", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.store.Running().GetAuthority().GetRouter("r1") != nil {
		if time.Now().After(deadline) {
			t.Fatal("confirmed commit not rolled back after its timeout")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Without persist, the end of the session rolls back.
	b := dial(t, e.addr, "bob", "secret")
	b.mustOK(editCand(router("r2")))
	b.mustOK(`<commit><confirmed/></commit>`)
	a.mustErr(`<commit><confirmed/></commit>`, "in-use")
	b.close()
	deadline = time.Now().Add(5 * time.Second)
	for e.store.Running().GetAuthority().GetRouter("r2") != nil {
		if time.Now().After(deadline) {
			t.Fatal("confirmed commit not rolled back at session end")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEditConfigErrors(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.addr, "alice", "secret")
	c.mustOK(editCand(`<trusted-ca-certificate><name>x</name><content>PEM</content></trusted-ca-certificate>`))
	for _, tc := range []struct {
		desc, op, tag, path string
	}{{
		desc: "unknown element",
		op:   editCand(`<router><name>r</name><bogus>1</bogus></router>`),
		tag:  "unknown-element", path: "/pka:authority/pka:router[pka:name='r']/pka:bogus",
	}, {
		desc: "bad enum",
		op:   editCand(`<trusted-ca-certificate><name>x</name><validation-mode>lax</validation-mode></trusted-ca-certificate>`),
		tag:  "invalid-value", path: "/pka:authority/pka:trusted-ca-certificate[pka:name='x']/pka:validation-mode",
	}, {
		desc: "out of range",
		op:   editCand(`<certificate-revocation-list><url>http://a/b.crl</url><polling-interval>0</polling-interval></certificate-revocation-list>`),
		tag:  "invalid-value", path: "/pka:authority/pka:certificate-revocation-list[pka:url='http://a/b.crl']/pka:polling-interval",
	}, {
		desc: "bad boolean",
		op:   editCand(`<router><name>r</name><peer-validation>yes</peer-validation></router>`),
		tag:  "invalid-value", path: "/pka:authority/pka:router[pka:name='r']/pka:peer-validation",
	}, {
		desc: "pattern",
		op:   editCand(`<router><name>bad name</name></router>`),
		tag:  "invalid-value", path: "/pka:authority/pka:router/pka:name",
	}, {
		desc: "missing key",
		op:   editCand(`<router><peer-validation>true</peer-validation></router>`),
		tag:  "missing-element", path: "/pka:authority/pka:router",
	}, {
		desc: "create existing",
		op:   editCand(`<trusted-ca-certificate xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:operation="create"><name>x</name><content>PEM2</content></trusted-ca-certificate>`),
		tag:  "data-exists", path: "/pka:authority/pka:trusted-ca-certificate[pka:name='x']",
	}, {
		desc: "delete missing",
		op:   editCand(`<router xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:operation="delete"><name>nope</name></router>`),
		tag:  "data-missing", path: "/pka:authority/pka:router[pka:name='nope']",
	}, {
		desc: "state is read-only",
		op:   `<edit-config><target><candidate/></target><config><alarms ` + pka + `/></config></edit-config>`,
		tag:  "invalid-value", path: "/pka:alarms",
	}, {
		desc: "foreign namespace",
		op:   `<edit-config><target><candidate/></target><config><authority xmlns="urn:other"/></config></edit-config>`,
		tag:  "unknown-namespace",
	}, {
		desc: "bad operation",
		op:   editCand(`<router xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:operation="zap"><name>r</name></router>`),
		tag:  "bad-attribute",
	}, {
		desc: "none needs the parent",
		op:   `<edit-config><target><candidate/></target><default-operation>none</default-operation><config><authority ` + pka + `><router><name>zz</name><peer xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:operation="create"><name>p</name></peer></router></authority></config></edit-config>`,
		tag:  "data-missing", path: "/pka:authority/pka:router[pka:name='zz']",
	}, {
		desc: "missing mandatory at validate",
		op:   `<validate><source><config><authority ` + pka + `><trusted-ca-certificate><name>y</name></trusted-ca-certificate></authority></config></source></validate>`,
		tag:  "invalid-value", path: "/pka:authority/pka:trusted-ca-certificate[pka:name='y']/pka:content",
	}, {
		desc: "startup",
		op:   `<delete-config><target><startup/></target></delete-config>`,
		tag:  "operation-not-supported",
	}, {
		desc: "delete running",
		op:   `<delete-config><target><running/></target></delete-config>`,
		tag:  "operation-failed",
	}, {
		desc: "unknown operation",
		op:   `<frobnicate/>`,
		tag:  "operation-not-supported",
	}, {
		desc: "xpath filter",
		op:   `<get><filter type="xpath" select="/authority"/></get>`,
		tag:  "operation-not-supported",
	}} {
		t.Run(tc.desc, func(t *testing.T) {
			got := c.mustErr(tc.op, tc.tag)
			if got.Path != tc.path || got.Severity != "error" || got.Message == "" {
				t.Errorf("error-path %q (want %q), severity %q, message %q", got.Path, tc.path, got.Severity, got.Message)
			}
		})
	}
	// Nothing of the failed edits reached the candidate.
	if got := c.data(`<get-config><source><candidate/></source></get-config>`); strings.Contains(got, "<router>") {
		t.Fatalf("candidate after failed edits: %s", got)
	}
	// Remove of a missing node is fine; delete then works once present.
	c.mustOK(editCand(`<router xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:operation="remove"><name>nope</name></router>`))
	c.mustOK(editCand(`<trusted-ca-certificate xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:operation="delete"><name>x</name></trusted-ca-certificate>`))
}

func TestMalformedXMLEndsOnlyThatSession(t *testing.T) {
	e := newEnv(t)
	a := dial(t, e.addr, "alice", "secret")
	b := dial(t, e.addr, "bob", "secret")
	a.mustOK(`<lock><target><running/></target></lock>`)
	if err := a.fw.WriteMessage([]byte(`<rpc message-id="9" xmlns="` + ncNS + `"><get><filter></get></rpc>`)); err != nil {
		t.Fatal(err)
	}
	r := <-a.replies
	if p := parse(t, r); len(p.Errors) != 1 || p.Errors[0].Tag != "malformed-message" {
		t.Fatalf("reply to malformed XML: %s", r)
	}
	select {
	case _, ok := <-a.replies:
		if ok {
			t.Fatal("session still answers after malformed XML")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("session not closed after malformed XML")
	}
	b.data(`<get/>`)
	// The closed session's lock is released.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if r := parse(t, b.rpc(`<lock><target><running/></target></lock>`)); r.OK != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lock of the closed session not released")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
