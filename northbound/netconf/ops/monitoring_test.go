package ops

import (
	"encoding/xml"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	pkyang "github.com/pkiagent/pkiagent/yang"
)

// TestHelloAdvertisesModulesWithFeatures: every implemented module is in
// the hello with its revision (and ietf-netconf with its features, which
// libnetconf2 clients enable from it); import-only modules are not.
func TestHelloAdvertisesModulesWithFeatures(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.addr, "alice", "secret")
	caps := c.hello.Capabilities
	for _, want := range []string{
		"urn:ietf:params:xml:ns:netconf:base:1.0?module=ietf-netconf&revision=2013-09-29&features=writable-running,candidate,confirmed-commit,rollback-on-error,validate",
		"urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring?module=ietf-netconf-monitoring&revision=2010-10-04",
		"urn:ietf:params:xml:ns:yang:ietf-netconf-notifications?module=ietf-netconf-notifications&revision=2012-02-06",
		"urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults?module=ietf-netconf-with-defaults&revision=2011-06-01",
		"urn:ietf:params:xml:ns:netconf:notification:1.0?module=notifications&revision=2008-07-14",
		"urn:ietf:params:xml:ns:netmod:notification?module=nc-notifications&revision=2008-07-14",
		"urn:ietf:params:xml:ns:yang:ietf-yang-library?module=ietf-yang-library&revision=2019-01-04",
		"urn:pkiagent:yang:pki-authority?module=pki-authority&revision=2026-12-02",
	} {
		if !slices.Contains(caps, want) {
			t.Errorf("hello lacks %s", want)
		}
	}
	yl := regexp.MustCompile(`^urn:ietf:params:netconf:capability:yang-library:1\.1\?revision=2019-01-04&content-id=[0-9a-f]+$`)
	if i := slices.IndexFunc(caps, func(c string) bool { return strings.Contains(c, ":yang-library:") }); i < 0 || !yl.MatchString(caps[i]) {
		t.Errorf("the first yang-library capability must be 1.1 with revision 2019-01-04 (libnetconf2 takes the first): %v", caps)
	}
	for _, c := range caps {
		if strings.Contains(c, "module=ietf-netconf-acm") || strings.Contains(c, "module=ietf-datastores") || strings.Contains(c, "capability:xpath") {
			t.Errorf("hello advertises %s", c)
		}
	}
}

// TestGetSchemaServesEveryModule: get-schema answers for every module in
// /netconf-state/schemas, and refuses others without quoting them whole.
func TestGetSchemaServesEveryModule(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.addr, "victor", "pw")
	listed := c.data(`<get><filter><netconf-state xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><schemas/></netconf-state></filter></get>`)
	for _, m := range pkyang.Served() {
		if !strings.Contains(listed, "<identifier>"+m.Name+"</identifier><version>"+m.Revision+"</version>") {
			t.Errorf("/netconf-state/schemas lacks %s@%s", m.Name, m.Revision)
		}
		got := c.rpc(fmt.Sprintf(`<get-schema xmlns="%s"><identifier>%s</identifier><version>%s</version><format>yang</format></get-schema>`, monNS, m.Name, m.Revision))
		var r struct {
			Data string `xml:"data"`
		}
		if err := xml.Unmarshal([]byte(got), &r); err != nil || !strings.Contains(r.Data, "module "+m.Name+" {") {
			t.Errorf("get-schema %s: %.300s", m.Name, got)
		}
	}
	long := strings.Repeat("x", 5000)
	if e := c.mustErr(`<get-schema xmlns="`+monNS+`"><identifier>`+long+`</identifier></get-schema>`, "invalid-value"); strings.Contains(e.Message, long[:100]) {
		t.Errorf("a long identifier is quoted back: %.200s", e.Message)
	}
	if e := c.mustErr(`<get-schema xmlns="`+monNS+`"><identifier>ietf-interfaces</identifier></get-schema>`, "invalid-value"); strings.Contains(e.Message, "file does not exist") {
		t.Errorf("unknown module: %s", e.Message)
	}
}

// TestMonitoringState: /netconf-state holds the capabilities, the
// datastores with their locks, the sessions with their counters and the
// statistics; /modules-state and /yang-library list every module.
func TestMonitoringState(t *testing.T) {
	e := newEnv(t)
	a := dial(t, e.addr, "alice", "secret")
	b := dial(t, e.addr, "victor", "pw")
	a.mustOK(`<lock><target><candidate/></target></lock>`)
	a.mustErr(`<lock><target><candidate/></target></lock>`, "lock-denied")
	got := b.data(`<get><filter><netconf-state xmlns="` + monNS + `"/></filter></get>`)
	for _, want := range []string{
		"<capability>urn:ietf:params:netconf:capability:candidate:1.0</capability>",
		"<datastore><name>running</name></datastore>",
		fmt.Sprintf("<datastore><name>candidate</name><locks><global-lock><locked-by-session>%d</locked-by-session><locked-time>", a.id),
		fmt.Sprintf("<session-id>%d</session-id><transport>ncm:netconf-ssh</transport><username>alice</username><source-host>127.0.0.1</source-host><login-time>", a.id),
		// alice: hello get, lock, lock refused.
		"<in-rpcs>3</in-rpcs><in-bad-rpcs>0</in-bad-rpcs><out-rpc-errors>1</out-rpc-errors><out-notifications>0</out-notifications>",
		fmt.Sprintf("<session-id>%d</session-id><transport>ncm:netconf-ssh</transport><username>victor</username>", b.id),
		"<statistics><netconf-start-time>",
		"<in-bad-hellos>0</in-bad-hellos><in-sessions>2</in-sessions><dropped-sessions>0</dropped-sessions>",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("netconf-state lacks %s:\n%s", want, got)
		}
	}
	a.mustOK(`<unlock><target><candidate/></target></unlock>`)
	if got := b.data(`<get><filter><netconf-state xmlns="` + monNS + `"><datastores/></netconf-state></filter></get>`); strings.Contains(got, "<locks>") {
		t.Errorf("lock still reported after unlock: %s", got)
	}

	ms := b.data(`<get><filter><modules-state xmlns="` + ylibNS + `"/></filter></get>`)
	lib := b.data(`<get><filter><yang-library xmlns="` + ylibNS + `"/></filter></get>`)
	for _, m := range pkyang.Served() {
		conf := "implement"
		if m.ImportOnly {
			conf = "import"
		}
		feats := ""
		for _, f := range m.Features {
			feats += "<feature>" + f + "</feature>"
		}
		if want := "<module><name>" + m.Name + "</name><revision>" + m.Revision + "</revision><namespace>" + m.Namespace + "</namespace>" + feats + "<conformance-type>" + conf + "</conformance-type></module>"; !strings.Contains(ms, want) {
			t.Errorf("modules-state lacks %s", want)
		}
		tag := "module"
		if m.ImportOnly {
			tag = "import-only-module"
		}
		if want := "<" + tag + "><name>" + m.Name + "</name><revision>" + m.Revision + "</revision><namespace>" + m.Namespace + "</namespace>" + feats + "</" + tag + ">"; !strings.Contains(lib, want) {
			t.Errorf("yang-library lacks %s", want)
		}
	}
	if !strings.Contains(lib, `<datastore xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores"><name>ds:candidate</name><schema>complete</schema></datastore>`) {
		t.Errorf("yang-library datastores: %s", lib)
	}
	if got := b.data(`<get><filter><netconf xmlns="urn:ietf:params:xml:ns:netmod:notification"/></filter></get>`); !strings.Contains(got, "<stream><name>NETCONF</name>") || !strings.Contains(got, "<replaySupport>true</replaySupport>") {
		t.Errorf("/netconf/streams: %s", got)
	}
}
