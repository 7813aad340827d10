package ops

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var confirmEvent = regexp.MustCompile(`<netconf-confirmed-commit[^>]*>(.*?)</netconf-confirmed-commit>`)

// confirmEvents collects the netconf-confirmed-commit notifications of c
// until none comes for a while, as "EVENT session-id".
func confirmEvents(c *client) []string {
	var out []string
	for {
		n, ok := c.notification(300 * time.Millisecond)
		if !ok {
			return out
		}
		m := confirmEvent.FindStringSubmatch(n)
		if m == nil {
			continue
		}
		ev := regexp.MustCompile(`<confirm-event>(\w+)</confirm-event>`).FindStringSubmatch(m[1])
		sid := regexp.MustCompile(`<session-id>(\d+)</session-id>`).FindStringSubmatch(m[1])
		s := ev[1]
		if sid != nil {
			s += " " + sid[1]
		}
		out = append(out, s)
	}
}

// TestFailedCommitLeavesConfirmedCommitPending: a commit that fails
// validation changes nothing about a pending confirmed commit, whether it
// carries the persist-id (another session) or is the owner's plain
// <commit/>; the same commit, once valid, confirms it. Subscribers hear
// netconf-confirmed-commit (RFC 6470) for the transitions only, naming the
// session that made each.
func TestFailedCommitLeavesConfirmedCommitPending(t *testing.T) {
	e := newEnv(t)
	a := dial(t, e.addr, "alice", "secret")
	b := dial(t, e.addr, "bob", "secret")
	w := dial(t, e.addr, "alice", "secret")
	w.mustOK(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"/>`)
	invalid := editCand(`<trusted-ca-certificate><name>root</name><validation-mode>warn</validation-mode></trusted-ca-certificate>`) // content is mandatory

	// With persist: another session's confirming commit that fails.
	a.mustOK(editCand(router("r1")))
	a.mustOK(`<commit><confirmed/><persist>tok</persist></commit>`)
	before, _ := e.store.Pending()
	b.mustOK(invalid)
	b.mustErr(`<commit><persist-id>tok</persist-id></commit>`, "invalid-value")
	if after, ok := e.store.Pending(); !ok || after != before {
		t.Fatalf("a confirming commit that failed validation changed the pending commit: %+v -> %+v (%v)", before, after, ok)
	}
	b.mustOK(`<discard-changes/>`)
	b.mustOK(`<commit><persist-id>tok</persist-id></commit>`)
	if _, ok := e.store.Pending(); ok {
		t.Fatal("still pending after a valid confirming commit")
	}

	// Without persist: the owner's plain commit that fails.
	a.mustOK(editCand(router("r2")))
	a.mustOK(`<commit><confirmed/><confirm-timeout>300</confirm-timeout></commit>`)
	before, _ = e.store.Pending()
	a.mustOK(invalid)
	a.mustErr(`<commit/>`, "invalid-value")
	if after, ok := e.store.Pending(); !ok || after != before {
		t.Fatalf("the owner's commit that failed validation changed the pending commit: %+v -> %+v (%v)", before, after, ok)
	}
	a.mustOK(`<discard-changes/>`)
	a.mustOK(`<commit/>`)
	if _, ok := e.store.Pending(); ok {
		t.Fatal("still pending after the owner's valid commit")
	}

	want := []string{
		fmt.Sprintf("start %d", a.id), fmt.Sprintf("complete %d", b.id),
		fmt.Sprintf("start %d", a.id), fmt.Sprintf("complete %d", a.id),
	}
	if d := cmp.Diff(want, confirmEvents(w)); d != "" {
		t.Fatalf("netconf-confirmed-commit (-want +got):\n%s", d)
	}
	if got := w.rpc(`<get-config><source><running/></source></get-config>`); !strings.Contains(got, "r1") || !strings.Contains(got, "r2") {
		t.Fatalf("running: %s", got)
	}
}

// TestConfirmedCommitTimeoutNotification: the rollback of a confirmed
// commit that timed out is a netconf-config-change by the server and a
// netconf-confirmed-commit timeout without session parameters (RFC 6470).
func TestConfirmedCommitTimeoutNotification(t *testing.T) {
	e := newEnv(t)
	a := dial(t, e.addr, "alice", "secret")
	w := dial(t, e.addr, "bob", "secret")
	w.mustOK(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"/>`)
	a.mustOK(editCand(router("r1")))
	a.mustOK(`<commit><confirmed/><confirm-timeout>1</confirm-timeout><persist>tok</persist></commit>`)
	var rollback, timeout string
	deadline := time.After(10 * time.Second)
	for timeout == "" {
		select {
		case <-deadline:
			t.Fatal("no timeout notification within 10 s")
		default:
		}
		n, ok := w.notification(time.Second)
		switch {
		case !ok:
		case strings.Contains(n, "<confirm-event>timeout</confirm-event>"):
			timeout = n
		case strings.Contains(n, "netconf-config-change") && strings.Contains(n, "<operation>delete</operation>"):
			rollback = n
		}
	}
	if !strings.Contains(rollback, "<changed-by><server/></changed-by>") {
		t.Fatalf("rollback not reported as made by the server: %q", rollback)
	}
	if strings.Contains(timeout, "<session-id>") || strings.Contains(timeout, "<username>") {
		t.Fatalf("timeout carries session parameters: %s", timeout)
	}
	if _, ok := e.store.Pending(); ok {
		t.Fatal("still pending after the timeout")
	}
}
