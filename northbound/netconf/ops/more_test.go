package ops

import (
	"fmt"
	"strings"
	"testing"
	"time"

	jnc "github.com/Juniper/go-netconf/netconf"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/agent/api"
)

// TestGoNetconfClient runs the candidate workflow with go-netconf v0.1.1
// (base:1.0, end-of-message framing).
func TestGoNetconfClient(t *testing.T) {
	e := newEnv(t)
	a, err := jnc.DialSSH(e.addr, jnc.SSHConfigPassword("alice", "secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := jnc.DialSSH(e.addr, jnc.SSHConfigPassword("bob", "secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	exec := func(s *jnc.Session, m string) *jnc.RPCReply {
		t.Helper()
		r, err := s.Exec(jnc.RawMethod(m))
		if err != nil && (r == nil || len(r.Errors) == 0) {
			t.Fatalf("%s: %v", m, err)
		}
		return r
	}
	ok := func(s *jnc.Session, m string) {
		t.Helper()
		if r := exec(s, m); len(r.Errors) > 0 || !strings.Contains(r.RawReply, "<ok/>") {
			t.Fatalf("%s: %s", m, r.RawReply)
		}
	}
	ok(a, `<lock><target><candidate/></target></lock>`)
	if r := exec(b, `<lock><target><candidate/></target></lock>`); len(r.Errors) != 1 || r.Errors[0].Tag != "lock-denied" ||
		!strings.Contains(r.Errors[0].Info, fmt.Sprintf("<session-id>%d</session-id>", a.SessionID)) {
		t.Fatalf("second lock: %s", r.RawReply)
	}
	ok(a, editCand(router("g1")))
	ok(a, `<validate><source><candidate/></source></validate>`)
	ok(a, `<commit><confirmed/><persist>p</persist></commit>`)
	ok(a, `<unlock><target><candidate/></target></unlock>`)
	ok(b, `<commit><persist-id>p</persist-id></commit>`)
	if r := exec(b, `<get-config><source><running/></source></get-config>`); !strings.Contains(r.RawReply, "<name>g1</name>") {
		t.Fatalf("running: %s", r.RawReply)
	}
	// A base:1.0 client gets operation-failed, never malformed-message.
	if r := exec(b, editCand(`<router><name>g1</name><bogus/></router>`)); len(r.Errors) != 1 || r.Errors[0].Tag != "unknown-element" ||
		r.Errors[0].Path != "/pka:authority/pka:router[pka:name='g1']/pka:bogus" {
		t.Fatalf("unknown element: %s", r.RawReply)
	}
	ok(b, `<lock><target><running/></target></lock>`)
	ok(a, fmt.Sprintf(`<kill-session><session-id>%d</session-id></kill-session>`, b.SessionID))
	if h, locked := e.store.LockHolder(agent.Running); locked {
		t.Fatalf("running still locked by %s after kill-session", h)
	}
}

func TestFiltersAndWithDefaults(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.addr, "alice", "secret")
	c.mustOK(editCand(router("r1") + router("r2") + `<router><name>r3</name><certificate-failure-action>fail-soft</certificate-failure-action></router>`))
	c.mustOK(`<commit/>`)
	for _, tc := range []struct{ desc, filter, want string }{
		{"content match on a key", `<authority ` + pka + `><router><name>r2</name></router></authority>`,
			`<authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>r2</name><peer-validation>true</peer-validation><peer><name>p1</name><identifier>cn-r2</identifier></peer></router></authority>`},
		{"selection under a key match", `<authority ` + pka + `><router><name>r1</name><peer><identifier/></peer></router></authority>`,
			`<authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>r1</name><peer><name>p1</name><identifier>cn-r1</identifier></peer></router></authority>`},
		// A list entry always comes with its keys, selected or not, or the
		// entries could not be told apart.
		{"keys of list entries come with a selection below them", `<authority ` + pka + `><router><peer><identifier/></peer></router></authority>`,
			`<authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>r1</name><peer><name>p1</name><identifier>cn-r1</identifier></peer></router><router><name>r2</name><peer><name>p1</name><identifier>cn-r2</identifier></peer></router></authority>`},
		{"keys come with a content match on a non-key leaf below the entry", `<authority ` + pka + `><router><peer><identifier>cn-r2</identifier></peer></router></authority>`,
			`<authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>r2</name><peer><name>p1</name><identifier>cn-r2</identifier></peer></router></authority>`},
		{"keys come with a selected leaf", `<authority ` + pka + `><router><certificate-failure-action/></router></authority>`,
			`<authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>r3</name><certificate-failure-action>fail-soft</certificate-failure-action></router></authority>`},
		{"two instances unite", `<authority ` + pka + `><router><name>r1</name><peer-validation/></router><router><name>r3</name></router></authority>`,
			`<authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>r1</name><peer-validation>true</peer-validation></router><router><name>r3</name><certificate-failure-action>fail-soft</certificate-failure-action></router></authority>`},
		{"content match on a non-key leaf", `<authority ` + pka + `><router><peer-validation>true</peer-validation><name/></router></authority>`,
			`<authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>r1</name><peer-validation>true</peer-validation></router><router><name>r2</name><peer-validation>true</peer-validation></router></authority>`},
		{"prefixed filter", `<x:authority xmlns:x="urn:pkiagent:yang:pki-authority"><x:router><x:name>none</x:name></x:router></x:authority>`, ``},
		{"other namespace", `<authority xmlns="urn:other"/>`, ``},
		{"empty filter", ``, ``},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got := c.data(`<get-config><source><running/></source><filter type="subtree">` + tc.filter + `</filter></get-config>`)
			if got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
	wd := func(mode string) string {
		return c.data(`<get-config><source><running/></source><filter><authority ` + pka + `><router><name>r3</name></router></authority></filter>` +
			`<with-defaults xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults">` + mode + `</with-defaults></get-config>`)
	}
	if got := wd("explicit"); !strings.Contains(got, "fail-soft") || strings.Contains(got, "peer-validation") {
		t.Errorf("explicit: %s", got)
	}
	if got := wd("trim"); strings.Contains(got, "fail-soft") || !strings.Contains(got, "<name>r3</name>") {
		t.Errorf("trim: %s", got)
	}
	if got := wd("report-all"); !strings.Contains(got, "<peer-validation>false</peer-validation>") || !strings.Contains(got, "fail-soft") {
		t.Errorf("report-all: %s", got)
	}
	if got := wd("report-all-tagged"); !strings.Contains(got, `<peer-validation xmlns:wd="urn:ietf:params:xml:ns:netconf:default:1.0" wd:default="true">false</peer-validation>`) {
		t.Errorf("report-all-tagged: %s", got)
	}
	c.mustErr(`<get><with-defaults xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults">all</with-defaults></get>`, "invalid-value")
	if got := c.data(`<get><filter><netconf-state xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"/></filter></get>`); !strings.Contains(got, "<identifier>pki-authority</identifier>") {
		t.Errorf("netconf-state: %s", got)
	}
	if got := c.data(`<get><filter><modules-state xmlns="urn:ietf:params:xml:ns:yang:ietf-yang-library"><module><namespace/></module></modules-state></filter></get>`); !strings.Contains(got, "<module><name>pki-authority</name><revision>") {
		t.Errorf("yang-library modules without their keys: %s", got)
	}
}

func TestNotifications(t *testing.T) {
	e := newEnv(t)
	a := dial(t, e.addr, "alice", "secret")
	before := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	// Replay: the session-start of a and an alarm published before the subscription.
	e.bus.Publish(api.Event{Kind: api.EventNotification, Time: time.Now(), Notification: &api.Notification{
		Module: "pki-authority", Name: "alarm-notification",
		Leaves: []api.Leaf{{Name: "action", Value: "raised"}, {Name: "id", Value: "crl-unreachable:http://a"}, {Name: "severity", Value: "major"}},
	}})
	deadline := time.Now().Add(5 * time.Second)
	for e.h.replay.Next() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	a.mustOK(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><filter><alarm-notification ` + pka + `/><netconf-config-change xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"/></filter><startTime>` + before + `</startTime></create-subscription>`)
	want := []string{
		`<alarm-notification xmlns="urn:pkiagent:yang:pki-authority"><action>raised</action><id>crl-unreachable:http://a</id><severity>major</severity></alarm-notification>`,
		`<replayComplete xmlns="urn:ietf:params:xml:ns:netmod:notification"/>`, // RFC 5277 section 4, module nc-notifications
		`<changed-by><username>bob</username>`,
	}
	b := dial(t, e.addr, "bob", "secret")
	b.mustOK(editCand(router("n1")))
	b.mustOK(`<commit/>`)
	a.mustErr(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"/>`, "in-use")
	for _, w := range want {
		n, ok := a.notification(5 * time.Second)
		if !ok || !strings.Contains(n, w) {
			t.Fatalf("notification %q, want one with %s", n, w)
		}
		if w == want[2] && (!strings.Contains(n, fmt.Sprintf("<session-id>%d</session-id>", b.id)) || !strings.Contains(n, "pka:router[pka:name='n1']")) {
			t.Fatalf("config change: %s", n)
		}
	}
	// interleave: rpcs keep working.
	a.data(`<get-config><source><running/></source></get-config>`)
	a.mustErr(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><stream>OTHER</stream></create-subscription>`, "invalid-value")

	// stopTime in the past ends the subscription after the replay.
	c := dial(t, e.addr, "alice", "secret")
	c.mustOK(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><filter><netconf-session-start xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"/></filter><startTime>` + before + `</startTime><stopTime>` + time.Now().UTC().Format(time.RFC3339Nano) + `</stopTime></create-subscription>`)
	var got []string
	for {
		n, ok := c.notification(5 * time.Second)
		if !ok {
			t.Fatalf("no notificationComplete; got %v", got)
		}
		got = append(got, n)
		if strings.Contains(n, "notificationComplete") {
			break
		}
	}
	if len(got) != 5 || !strings.Contains(got[3], "replayComplete") { // 3 session starts, replayComplete, notificationComplete
		t.Fatalf("replay with stopTime: %q", got)
	}
}

// ncclient (and libnetconf2) send the <filter> of create-subscription in
// the base namespace, as in <get>; it is accepted and applied.
func TestCreateSubscriptionFilterInBaseNamespace(t *testing.T) {
	e := newEnv(t)
	a := dial(t, e.addr, "alice", "secret")
	a.mustOK(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><filter xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" type="subtree"><netconf-config-change xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"/></filter></create-subscription>`)
	b := dial(t, e.addr, "bob", "secret") // its netconf-session-start is filtered out
	e.bus.Publish(api.Event{Kind: api.EventNotification, Time: time.Now(), Notification: &api.Notification{
		Module: "pki-authority", Name: "alarm-notification",
		Leaves: []api.Leaf{{Name: "action", Value: "raised"}, {Name: "id", Value: "crl-unreachable:http://a"}},
	}})
	b.mustOK(editCand(router("f1")))
	b.mustOK(`<commit/>`)
	n, ok := a.notification(5 * time.Second)
	if !ok || !strings.Contains(n, "<netconf-config-change") || !strings.Contains(n, "pka:router[pka:name='f1']") {
		t.Fatalf("first notification %q, want the netconf-config-change of the commit only", n)
	}
	a.mustErr(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><filter xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" type="xpath" select="/x"/></create-subscription>`, "operation-not-supported")
	c := dial(t, e.addr, "alice", "secret")
	c.mustErr(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><filter xmlns="urn:other"/></create-subscription>`, "unknown-element")
}

func TestPKIRPCs(t *testing.T) {
	e := newEnv(t)
	admin := dial(t, e.addr, "alice", "secret")
	op := dial(t, e.addr, "olga", "pw")
	viewer := dial(t, e.addr, "victor", "pw")
	got := op.rpc(`<generate-private-key ` + pka + `><name>k1</name></generate-private-key>`)
	if !strings.Contains(got, `<name xmlns="urn:pkiagent:yang:pki-authority">k1</name><key-algorithm xmlns="urn:pkiagent:yang:pki-authority">ecc-secp256r1</key-algorithm><key-storage xmlns="urn:pkiagent:yang:pki-authority">file</key-storage>`) {
		t.Fatalf("generate-private-key: %s", got)
	}
	if r := op.mustErr(`<generate-private-key `+pka+`><name>k1</name></generate-private-key>`, "invalid-value"); r.Path != "/pka:generate-private-key/pka:name" {
		t.Errorf("error-path %q", r.Path)
	}
	viewer.mustErr(`<generate-private-key `+pka+`><name>k2</name></generate-private-key>`, "access-denied")
	viewer.mustErr(editCand(router("v")), "access-denied")
	if r := admin.mustErr(`<generate-private-key `+pka+`><name>k2</name><algorithm>dsa</algorithm></generate-private-key>`, "invalid-value"); r.Path != "/pka:generate-private-key/pka:algorithm" {
		t.Errorf("error-path %q", r.Path)
	}
	if r := admin.mustErr(`<generate-csr `+pka+`><name>k1</name></generate-csr>`, "missing-element"); r.Path != "/pka:generate-csr/pka:common-name" {
		t.Errorf("error-path %q", r.Path)
	}
	admin.mustErr(`<generate-csr `+pka+`><name>k1</name><common-name>x</common-name><bogus/></generate-csr>`, "unknown-element")
	if got := admin.rpc(`<generate-csr ` + pka + `><name>k1</name><common-name>r.example</common-name><subject-alt-name><dns>a.example</dns><dns>b.example</dns></subject-alt-name></generate-csr>`); !strings.Contains(got, "CSR for r.example a.example,b.example") {
		t.Fatalf("generate-csr: %s", got)
	}
	if got := admin.rpc(`<refresh-certificate-revocation-list ` + pka + `/>`); !strings.Contains(got, `<result xmlns="urn:pkiagent:yang:pki-authority"><url>http://a/x.crl</url><success>true</success></result>`) {
		t.Fatalf("refresh: %s", got)
	}
	admin.mustErr(`<import-certificate `+pka+`><name>k1</name><certificate>x</certificate></import-certificate>`, "invalid-value")
	if got := admin.rpc(`<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><identifier>pki-authority</identifier><format>yang</format></get-schema>`); !strings.Contains(got, "module pki-authority {") {
		t.Fatalf("get-schema: %.300s", got)
	}
	admin.mustErr(`<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><identifier>nope</identifier></get-schema>`, "invalid-value")
}
