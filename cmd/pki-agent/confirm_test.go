package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmi/proto/gnmi_ext"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestConfirmedCommitOneMachineAcrossProtocols: over the real binary, one
// confirmed-commit state machine serves NETCONF and gNMI. A NETCONF
// confirmed commit with persist is left pending by another session's
// confirming commit that the PKI engine refuses (before, that commit
// confirmed it); a gNMI Set is refused while it is pending; a gNMI confirm
// with the persist token as its id confirms it; the audit log records the
// start and the completion.
func TestConfirmedCommitOneMachineAcrossProtocols(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	p := runAgentBinary(t, state)
	ncAddr := logAttr(p.logged(t, "serving NETCONF"), "addr")
	gnmiAddr := logAttr(p.logged(t, "gNMI listening"), "addr")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, b := dialNETCONF(t, ncAddr), dialNETCONF(t, ncAddr)
	g := gnmiClientAt(t, state, gnmiAddr)

	const ns = `xmlns="urn:pkiagent:yang:pki-authority"`
	mustOK := func(c *ncClient, op string) {
		t.Helper()
		if r := c.rpc(op); !strings.Contains(r, "<ok/>") {
			t.Fatalf("%.100s: %s", op, r)
		}
	}
	mustOK(a, `<edit-config><target><candidate/></target><config><authority `+ns+`><router><name>cc1</name></router></authority></config></edit-config>`)
	mustOK(a, `<commit><confirmed/><confirm-timeout>600</confirm-timeout><persist>tok-1</persist></commit>`)

	mustOK(b, `<edit-config><target><candidate/></target><config><authority `+ns+`><trusted-ca-certificate><name>bad</name><content>not a certificate</content></trusted-ca-certificate></authority></config></edit-config>`)
	if r := b.rpc(`<commit><persist-id>tok-1</persist-id></commit>`); !strings.Contains(r, "<error-tag>invalid-value</error-tag>") {
		t.Fatalf("confirming commit the engine refuses: %s", r)
	}
	mustOK(b, `<discard-changes/>`)

	set := func(ext *gnmi_ext.Commit, update bool) error {
		req := &gpb.SetRequest{}
		if ext != nil {
			req.Extension = []*gnmi_ext.Extension{{Ext: &gnmi_ext.Extension_Commit{Commit: ext}}}
		}
		if update {
			req.Update = []*gpb.Update{{
				Path: &gpb.Path{Elem: []*gpb.PathElem{{Name: "authority"}, {Name: "router", Key: map[string]string{"name": "g1"}}, {Name: "peer-validation"}}},
				Val:  &gpb.TypedValue{Value: &gpb.TypedValue_BoolVal{BoolVal: true}},
			}}
		}
		_, err := g.Set(ctx, req)
		return err
	}
	if err := set(nil, true); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("gNMI Set while a confirmed commit is pending: %v", err)
	}
	confirm := func(id string) *gnmi_ext.Commit {
		return &gnmi_ext.Commit{Id: id, Action: &gnmi_ext.Commit_Confirm{Confirm: &gnmi_ext.CommitConfirm{}}}
	}
	if err := set(confirm("tok-2"), false); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("gNMI confirm with another id: %v", err)
	}
	if err := set(confirm("tok-1"), false); err != nil {
		t.Fatalf("gNMI confirm of the NETCONF confirmed commit (still pending after the refused commit): %v", err)
	}
	if r := b.rpc(`<cancel-commit><persist-id>tok-1</persist-id></cancel-commit>`); !strings.Contains(r, "<error-tag>operation-failed</error-tag>") {
		t.Fatalf("cancel-commit after the confirmation: %s", r)
	}
	if err := set(nil, true); err != nil {
		t.Fatalf("gNMI Set after the confirmation: %v", err)
	}
	if r := a.rpc(`<get-config><source><running/></source></get-config>`); !strings.Contains(r, "<name>cc1</name>") || !strings.Contains(r, "<name>g1</name>") {
		t.Fatalf("running: %s", r)
	}
	log, err := os.ReadFile(filepath.Join(state, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, `"type":"system.confirmed_commit"`) {
			for _, e := range []string{"start", "extend", "complete", "cancel", "timeout"} {
				if strings.Contains(l, `"confirm-event":"`+e+`"`) {
					events = append(events, e)
				}
			}
		}
	}
	if strings.Join(events, " ") != "start complete" {
		t.Fatalf("audited confirmed-commit events %v, want [start complete]:\n%s", events, log)
	}
}
