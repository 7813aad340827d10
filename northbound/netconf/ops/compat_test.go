package ops

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// github.com/nemith/netconf v0.0.2 sends lock and unlock as <lock xmlns="">:
// a base operation in no namespace is taken as the base operation; other
// elements in no namespace are still refused.
func TestBaseOperationInNoNamespace(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.addr, "alice", "secret")
	c.mustOK(`<lock xmlns=""><target><running/></target></lock>`)
	c.mustOK(`<unlock xmlns=""><target><running/></target></unlock>`)
	if got := c.rpc(`<frobnicate xmlns=""/>`); !strings.Contains(got, "operation-not-supported") {
		t.Fatalf("unknown operation in no namespace: %s", got)
	}
}

// netconf-config-change names the topmost node of each edit (RFC 6470): a
// new list entry is one create, a removed one is one delete, and a changed
// leaf is a replace.
func TestConfigChangeNamesTopmostNodes(t *testing.T) {
	e := newEnv(t)
	a := dial(t, e.addr, "alice", "secret")
	a.mustOK(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><filter><netconf-config-change xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"/></filter></create-subscription>`)
	edits := func() []string {
		t.Helper()
		n, ok := a.notification(5 * time.Second)
		if !ok {
			t.Fatal("no netconf-config-change")
		}
		var out []string
		for _, m := range editRE.FindAllStringSubmatch(n, -1) {
			out = append(out, m[2]+" "+m[1])
		}
		return out
	}
	a.mustOK(editCand(`<router><name>t1</name><peer-validation>true</peer-validation><peer><name>p1</name><identifier>x</identifier></peer></router>`))
	a.mustOK(`<commit/>`)
	if got := edits(); !slices.Equal(got, []string{"create /pka:authority/pka:router[pka:name='t1']"}) {
		t.Fatalf("create: %q", got)
	}
	a.mustOK(editCand(`<router><name>t1</name><peer-validation>false</peer-validation></router>`))
	a.mustOK(`<commit/>`)
	if got := edits(); !slices.Equal(got, []string{"replace /pka:authority/pka:router[pka:name='t1']/pka:peer-validation"}) {
		t.Fatalf("replace: %q", got)
	}
	a.mustOK(editCand(`<router xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:operation="delete"><name>t1</name></router>`))
	a.mustOK(`<commit/>`)
	if got := edits(); !slices.Equal(got, []string{"delete /pka:authority/pka:router[pka:name='t1']"}) {
		t.Fatalf("delete: %q", got)
	}
}

var editRE = regexp.MustCompile(`(?s)<edit><target[^>]*>([^<]*)</target><operation>([^<]*)</operation></edit>`)

// get-config reuses the rendering of an unchanged datastore: filters and
// with-defaults modes must not leak into later answers, and a commit must
// show at once.
func TestGetConfigOfUnchangedDatastoreIsReused(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.addr, "alice", "secret")
	c.mustOK(editCand(router("c1")))
	c.mustOK(`<commit/>`)
	const wd = `<with-defaults xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults">%s</with-defaults>`
	getConfig := func(extra string) string {
		return c.rpc(`<get-config><source><running/></source>` + extra + `</get-config>`)
	}
	if got := getConfig(fmt.Sprintf(wd, "report-all-tagged")); !strings.Contains(got, "fail-soft") {
		t.Fatalf("report-all-tagged: %s", got)
	}
	if got := getConfig(`<filter><authority ` + pka + `><router><name>c1</name><peer/></router></authority></filter>`); strings.Contains(got, "peer-validation") {
		t.Fatalf("filtered: %s", got)
	}
	if got := getConfig(""); strings.Contains(got, "fail-soft") || !strings.Contains(got, "peer-validation") {
		t.Fatalf("explicit after the others: %s", got)
	}
	c.mustOK(editCand(router("c2")))
	c.mustOK(`<commit/>`)
	if got := getConfig(""); !strings.Contains(got, "<name>c2</name>") {
		t.Fatalf("after a commit: %s", got)
	}
}
