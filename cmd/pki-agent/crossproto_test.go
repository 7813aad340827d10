package main

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nemith/netconf"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestNemithNETCONFAndGNMIShareOneDatastore drives the binary with
// github.com/nemith/netconf v0.0.2 (base:1.1, chunked) and a gNMI client at
// once: a NETCONF lock on running refuses the gNMI Set naming the session;
// a confirmed commit over NETCONF is confirmed; a gNMI Set made while the
// candidate is clean shows in the candidate, and a later NETCONF candidate
// commit keeps it.
func TestNemithNETCONFAndGNMIShareOneDatastore(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	p := runAgentBinary(t, state)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc := dialNemith(t, ctx, p)
	g := gnmiClient(t, p, state)
	var err error
	setPeerValidation := func(router string) error {
		_, err := g.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{{
			Path: &gpb.Path{Elem: []*gpb.PathElem{{Name: "authority"}, {Name: "router", Key: map[string]string{"name": router}}, {Name: "peer-validation"}}},
			Val:  &gpb.TypedValue{Value: &gpb.TypedValue_BoolVal{BoolVal: true}},
		}}})
		return err
	}

	// A NETCONF lock on running refuses gNMI writes, naming the session.
	if err := nc.Lock(ctx, netconf.Running); err != nil {
		t.Fatal(err)
	}
	err = setPeerValidation("g1")
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), strconv.FormatUint(nc.SessionID(), 10)) {
		t.Fatalf("gNMI Set under a NETCONF lock: %v (session %d)", err, nc.SessionID())
	}
	if err := nc.Unlock(ctx, netconf.Running); err != nil {
		t.Fatal(err)
	}
	if err := setPeerValidation("g1"); err != nil {
		t.Fatalf("gNMI Set after unlock: %v", err)
	}

	// The clean candidate shows the gNMI change; a NETCONF candidate commit
	// (confirmed, then confirmed again) keeps it.
	cand, err := nc.GetConfig(ctx, netconf.Candidate)
	if err != nil || !strings.Contains(string(cand), "<name>g1</name>") {
		t.Fatalf("candidate after gNMI Set: %v %s", err, cand)
	}
	if err := nc.EditConfig(ctx, netconf.Candidate, `<authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>n1</name></router></authority>`); err != nil {
		t.Fatal(err)
	}
	if err := nc.Commit(ctx, netconf.WithConfirmed(), netconf.WithConfirmedTimeout(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := setPeerValidation("g2"); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("gNMI Set with a confirmed commit pending: %v", err)
	}
	if err := nc.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	run, err := nc.GetConfig(ctx, netconf.Running)
	if err != nil || !strings.Contains(string(run), "<name>g1</name>") || !strings.Contains(string(run), "<name>n1</name>") {
		t.Fatalf("running: %v %s", err, run)
	}

	// Errors arrive as rpc-errors the client decodes.
	err = nc.EditConfig(ctx, netconf.Candidate, `<authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>n2</name><bogus/></router></authority>`)
	var rpcErr netconf.RPCError
	if !errors.As(err, &rpcErr) || rpcErr.Tag != netconf.ErrUnknownElement || !strings.Contains(rpcErr.Path, "router") {
		t.Fatalf("unknown element: %#v", err)
	}
}

// dialNemith opens a NETCONF session (github.com/nemith/netconf, base:1.1)
// to the agent as admin; it is closed at the end of the test.
func dialNemith(t *testing.T, ctx context.Context, p *agentProcess) *netconf.Session {
	t.Helper()
	nc, err := dialNC(ctx, logAttr(p.logged(t, "serving NETCONF"), "addr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close(context.Background()) })
	return nc.Session
}

// gnmiClient connects to the agent's gNMI server as admin, trusting the CA
// in the state directory.
func gnmiClient(t testing.TB, p *agentProcess, state string) gpb.GNMIClient {
	t.Helper()
	return gnmiClientAt(t, state, logAttr(p.logged(t, "gNMI listening"), "addr"))
}
