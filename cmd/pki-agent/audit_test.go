package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"golang.org/x/crypto/ssh"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/northbound/auth"
)

// TestAuditOfRefusalsAndCommits drives the binary: refused logins (gNMI
// and SSH; a burst from one address coalesced into its first record and a
// summary), operations refused to a viewer (gNMI Set, NETCONF edit-config
// and an rpc) are in DIR/audit.log with permitted false, a commit with
// who, its id and the paths it changed with permitted true; no password is
// ever written.
func TestAuditOfRefusalsAndCommits(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	os.MkdirAll(state, 0o700)
	var users []auth.User
	for _, u := range []struct{ name, role, pw string }{{"admin", "admin", adminPassword}, {"vera", "viewer", "vera-pass"}} {
		h, err := auth.HashPassword(u.pw)
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, auth.User{Name: u.name, Role: u.role, Hash: h})
	}
	if err := auth.Save(filepath.Join(state, "users.json"), users); err != nil {
		t.Fatal(err)
	}
	p := runAgentBinary(t, state)
	gnmiAddr := logAttr(p.logged(t, "gNMI listening"), "addr")
	ncAddr := logAttr(p.logged(t, "serving NETCONF"), "addr")
	caPEM, err := os.ReadFile(filepath.Join(state, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	gnmiAs := func(user, pw string) gpb.GNMIClient {
		cc, err := grpc.NewClient(gnmiAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "localhost"})),
			grpc.WithPerRPCCredentials(userPassword{user, pw}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return gpb.NewGNMIClient(cc)
	}

	// Three wrong passwords over gNMI from 127.0.0.1: one record and a
	// summary of two.
	for i := range 3 {
		_, err := gnmiAs("admin", "wrong-gnmi-"+string(rune('a'+i))).Capabilities(ctx, &gpb.CapabilityRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("wrong password over gNMI: %v", err)
		}
	}
	// One over SSH from 127.0.0.3.
	c, err := dialerFrom("127.0.0.3").DialContext(ctx, "tcp", ncAddr)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := ssh.NewClientConn(c, ncAddr, &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.Password("wrong-ssh")},
		HostKeyCallback: ssh.InsecureIgnoreHostKey()}); err == nil {
		t.Fatal("wrong SSH password accepted")
	}
	c.Close()

	// The viewer may not write.
	_, err = gnmiAs("vera", "vera-pass").Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{{
		Path: &gpb.Path{Elem: []*gpb.PathElem{{Name: "authority"}, {Name: "router", Key: map[string]string{"name": "v1"}}, {Name: "peer-validation"}}},
		Val:  &gpb.TypedValue{Value: &gpb.TypedValue_BoolVal{BoolVal: true}},
	}}})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("viewer Set: %v", err)
	}
	const ns = `xmlns="urn:pkiagent:yang:pki-authority"`
	v := dialNETCONFAs(t, ncAddr, "vera", "vera-pass")
	if r := v.rpc(`<edit-config><target><candidate/></target><config><authority ` + ns + `><router><name>v2</name></router></authority></config></edit-config>`); !strings.Contains(r, "access-denied") {
		t.Fatalf("viewer edit-config: %s", r)
	}
	if r := v.rpc(`<generate-private-key ` + ns + `><name>vk</name></generate-private-key>`); !strings.Contains(r, "access-denied") {
		t.Fatalf("viewer generate-private-key: %s", r)
	}

	// The admin commits.
	a := dialNETCONF(t, ncAddr)
	if r := a.rpc(`<edit-config><target><candidate/></target><config><authority ` + ns + `><router><name>audit-r1</name><peer-validation>true</peer-validation></router></authority></config></edit-config>`); !strings.Contains(r, "<ok/>") {
		t.Fatalf("edit-config: %s", r)
	}
	if r := a.rpc(`<commit/>`); !strings.Contains(r, "<ok/>") {
		t.Fatalf("commit: %s", r)
	}
	if err := p.stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, p.log())
	}

	raw, err := os.ReadFile(filepath.Join(state, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "wrong-") || strings.Contains(string(raw), "vera-pass") || strings.Contains(string(raw), adminPassword) {
		t.Fatalf("a password is in the audit log:\n%s", raw)
	}
	var evs []audit.Event
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var ev audit.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		evs = append(evs, ev)
	}
	find := func(desc string, match func(audit.Event) bool) audit.Event {
		t.Helper()
		for _, ev := range evs {
			if match(ev) {
				return ev
			}
		}
		t.Fatalf("no audit record of %s in:\n%s", desc, raw)
		return audit.Event{}
	}
	login := func(ev audit.Event, proto, src string) bool {
		return ev.Type == "system.login" && !ev.Permitted && ev.User == "admin" && ev.Detail["protocol"] == proto && ev.Detail["source"] == src
	}
	n := 0
	for _, ev := range evs {
		if login(ev, "gnmi", "127.0.0.1") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d records of the 3 refused gNMI logins, want the first and a summary", n)
	}
	find("the summary of refused gNMI logins", func(ev audit.Event) bool {
		return login(ev, "gnmi", "127.0.0.1") && ev.Detail["coalesced"] == float64(2)
	})
	find("the refused SSH login", func(ev audit.Event) bool { return login(ev, "netconf", "127.0.0.3") })
	find("the viewer's refused Set", func(ev audit.Event) bool {
		return ev.Type == "system.set" && !ev.Permitted && ev.User == "vera" && ev.Detail["protocol"] == "gnmi"
	})
	find("the viewer's refused edit-config", func(ev audit.Event) bool {
		return ev.Type == "system.edit_config" && !ev.Permitted && ev.User == "vera" && ev.Detail["protocol"] == "netconf"
	})
	find("the viewer's refused rpc", func(ev audit.Event) bool {
		return ev.Type == "system.generate_private_key" && !ev.Permitted && ev.User == "vera"
	})
	commit := find("the commit", func(ev audit.Event) bool { return ev.Type == "system.commit" && ev.Permitted && ev.User == "admin" })
	paths, _ := commit.Detail["updated"].([]any)
	if commit.Detail["commit-id"] == nil || len(paths) == 0 || !strings.Contains(paths[0].(string), "router[name=audit-r1]") {
		t.Fatalf("commit record %+v", commit)
	}
}
