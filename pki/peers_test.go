package pki

import (
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/testpki"
)

func routerElem(name string) *gnmi.PathElem {
	return &gnmi.PathElem{Name: "router", Key: map[string]string{"name": name}}
}

// peerFixture: trusted root h[0], issuing CA h[1] whose CRL is served and
// configured, routers soft (fail-soft), hard (fail-hard), off (no
// peer-validation), each with peer "p" whose identifier is "peer-1".
type peerFixture struct {
	*fixture
	h   []*testpki.Cert
	srv *crlServer
}

func newPeerFixture(t *testing.T) *peerFixture {
	t.Helper()
	f := newFixture(t)
	h := testpki.Must(f.gen.Hierarchy(2))
	if err := f.setTrusted(t, "corp", string(testpki.PEM(h[0], h[1])), "strict"); err != nil {
		t.Fatal(err)
	}
	srv := newCRLServer(t)
	srv.serve(http.StatusOK, mustCRL(t, h[1], testpki.CRLOptions{Number: 1}))
	f.run(t)
	for _, r := range []struct{ name, cfg string }{
		{"soft", `{"peer-validation": true, "peer": [{"name": "p", "identifier": "peer-1"}]}`},
		{"hard", `{"peer-validation": true, "certificate-failure-action": "fail-hard", "peer": [{"name": "p", "identifier": "peer-1"}, {"name": "anon"}]}`},
		{"off", `{"peer": [{"name": "p", "identifier": "peer-1"}]}`},
	} {
		if err := f.merge(t, r.cfg, routerElem(r.name)); err != nil {
			t.Fatalf("router %s: %v", r.name, err)
		}
	}
	if err := f.merge(t, `{}`, crlEntry(srv.url)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "CRL fetched", func() bool { return f.crlState(t, srv.url).GetLastSuccess() != "" })
	return &peerFixture{fixture: f, h: h, srv: srv}
}

func (p *peerFixture) peerPEM(t *testing.T, cn string, o testpki.Options) (string, *testpki.Cert) {
	t.Helper()
	o.CN = cn
	c := testpki.Must(p.gen.Issue(p.h[1], o))
	return string(testpki.PEM(c, p.h[1])), c
}

func (p *peerFixture) validate(t *testing.T, router, pem string) api.ValidatePeerOutput {
	t.Helper()
	out, err := p.engine.ValidatePeerCertificate(context.Background(), admin, api.ValidatePeerInput{Router: router, Peer: "p", Certificate: pem})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (p *peerFixture) peerState(t *testing.T, router string) *gen.PkiAuthority_Authority_Router_Peer_State {
	return p.state(t).GetAuthority().GetRouter(router).GetPeer("p").GetState()
}

func TestValidatePeerCertificate(t *testing.T) {
	p := newPeerFixture(t)
	if st := p.peerState(t, "soft"); st.GetStatus() != gen.PkiAuthority_PeerStatus_unknown {
		t.Fatalf("initial status %v", st.GetStatus())
	}
	stranger := testpki.Must(p.gen.Root(testpki.Options{CN: "Stranger CA"}))
	revokedPEM, revoked := p.peerPEM(t, "peer-1", testpki.Options{})
	p.srv.serve(http.StatusOK, mustCRL(t, p.h[1], testpki.CRLOptions{Number: 2, Revoked: []*big.Int{revoked.Cert.SerialNumber}}))
	if _, err := p.engine.RefreshCRL(context.Background(), admin, api.RefreshCRLInput{URL: p.srv.url}); err != nil {
		t.Fatal(err)
	}
	valid, _ := p.peerPEM(t, "peer-1", testpki.Options{})
	expired, _ := p.peerPEM(t, "peer-1", testpki.Options{NotBefore: t0.AddDate(-1, 0, 0), NotAfter: t0.Add(-time.Minute)})
	mismatch, _ := p.peerPEM(t, "peer-2", testpki.Options{})
	unknown := string(testpki.PEM(testpki.Must(p.gen.Issue(stranger, testpki.Options{CN: "peer-1"}))))

	for _, tc := range []struct {
		desc, pem, result, reason string
		status                    gen.E_PkiAuthority_PeerStatus
	}{
		{desc: "valid", pem: valid, result: "valid", status: gen.PkiAuthority_PeerStatus_valid},
		{desc: "expired", pem: expired, result: "expired", reason: "expired at", status: gen.PkiAuthority_PeerStatus_expired},
		{desc: "revoked", pem: revokedPEM, result: "revoked", reason: "is revoked by a CRL", status: gen.PkiAuthority_PeerStatus_revoked},
		{desc: "unknown issuer", pem: unknown, result: "invalid", reason: "does not chain to any trusted-ca-certificate", status: gen.PkiAuthority_PeerStatus_invalid},
		{desc: "CN mismatch", pem: mismatch, result: "invalid", reason: `subject CN "peer-2" does not match the peer's identifier "peer-1"`, status: gen.PkiAuthority_PeerStatus_invalid},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			out := p.validate(t, "soft", tc.pem)
			if out.Result != tc.result || !strings.Contains(out.Reason, tc.reason) {
				t.Fatalf("got %+v, want %s with %q", out, tc.result, tc.reason)
			}
			st := p.peerState(t, "soft")
			if st.GetStatus() != tc.status || st.GetLastValidated() != t0.Format(timeFormat) || (tc.reason != "" && !strings.Contains(st.GetReason(), tc.reason)) {
				t.Fatalf("state %v %q %q", st.GetStatus(), st.GetReason(), st.GetLastValidated())
			}
			a := p.alarm("peer-certificate:soft/p")
			if (a != nil) != (tc.result != "valid") {
				t.Fatalf("alarm %v for %s", a, tc.result)
			}
			if a != nil && (a.GetSeverity() != gen.PkiAuthority_Severity_critical || a.GetCategory() != gen.PkiAuthority_AlarmCategory_peer_certificate) {
				t.Fatalf("fail-soft alarm %v %v", a.GetSeverity(), a.GetCategory())
			}
		})
	}
	pc := p.state(t).GetStats().GetSecurity().GetPeerCertificate()
	if pc.GetExpired() != 1 || pc.GetRevoked() != 1 || pc.GetInvalid() != 2 {
		t.Fatalf("peer counters %+v", pc)
	}
	// Fail-soft: one raise for the run of failures (it was cleared by
	// the valid certificate first), nothing more.
	p.engine.revocation.m.Stop()
	if got := strings.Join(alarmActions(p.notifications("alarm-notification"), "peer-certificate:soft/p"), ","); got != "raised critical" {
		t.Fatalf("alarm notifications %s", got)
	}
}

func TestPeerFailHardSeveredUntilValid(t *testing.T) {
	p := newPeerFixture(t)
	valid, _ := p.peerPEM(t, "peer-1", testpki.Options{})
	mismatch, _ := p.peerPEM(t, "someone-else", testpki.Options{})
	expired, _ := p.peerPEM(t, "peer-1", testpki.Options{NotBefore: t0.AddDate(-1, 0, 0), NotAfter: t0.Add(-time.Minute)})

	if out := p.validate(t, "hard", mismatch); out.Result != "invalid" || !strings.Contains(out.Reason, "severed by fail-hard") {
		t.Fatalf("first failure %+v", out)
	}
	if st := p.peerState(t, "hard"); st.GetStatus() != gen.PkiAuthority_PeerStatus_severed {
		t.Fatalf("status %v", st.GetStatus())
	}
	if a := p.alarm("peer-certificate:hard/p"); a == nil || a.GetSeverity() != gen.PkiAuthority_Severity_critical {
		t.Fatalf("fail-hard alarm %v", a)
	}
	// Another failure: still severed, no second alarm.
	p.validate(t, "hard", expired)
	if st := p.peerState(t, "hard"); st.GetStatus() != gen.PkiAuthority_PeerStatus_severed || !strings.Contains(st.GetReason(), "expired") {
		t.Fatalf("after a second failure %v %q", st.GetStatus(), st.GetReason())
	}
	// A valid certificate lifts it and clears the alarm.
	if out := p.validate(t, "hard", valid); out.Result != "valid" || out.Reason != "" {
		t.Fatalf("recovery %+v", out)
	}
	if st := p.peerState(t, "hard"); st.GetStatus() != gen.PkiAuthority_PeerStatus_valid || st.GetReason() != "" {
		t.Fatalf("after recovery %v %q", st.GetStatus(), st.GetReason())
	}
	if p.alarm("peer-certificate:hard/p") != nil {
		t.Fatal("alarm not cleared")
	}
	p.engine.revocation.m.Stop()
	if got := strings.Join(alarmActions(p.notifications("alarm-notification"), "peer-certificate:hard/p"), ","); got != "raised critical,cleared critical" {
		t.Fatalf("alarm notifications %s", got)
	}
}

// TestAcceptedPeerRevokedByNewCRL: a peer that validated turns revoked
// (severed under fail-hard) when the next CRL lists its certificate.
func TestAcceptedPeerRevokedByNewCRL(t *testing.T) {
	p := newPeerFixture(t)
	pem, c := p.peerPEM(t, "peer-1", testpki.Options{})
	if out := p.validate(t, "hard", pem); out.Result != "valid" {
		t.Fatalf("%+v", out)
	}
	p.srv.serve(http.StatusOK, mustCRL(t, p.h[1], testpki.CRLOptions{Number: 2, Revoked: []*big.Int{c.Cert.SerialNumber}}))
	if _, err := p.engine.RefreshCRL(context.Background(), admin, api.RefreshCRLInput{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "peer severed", func() bool { return p.peerState(t, "hard").GetStatus() == gen.PkiAuthority_PeerStatus_severed })
	if st := p.peerState(t, "hard"); !strings.Contains(st.GetReason(), "revoked") {
		t.Fatalf("reason %q", st.GetReason())
	}
	if p.state(t).GetStats().GetSecurity().GetPeerCertificate().GetRevoked() != 1 {
		t.Fatal("revoked counter")
	}
	// Presenting it again is refused from the cache even if the CA drops
	// it from a later CRL.
	p.srv.serve(http.StatusOK, mustCRL(t, p.h[1], testpki.CRLOptions{Number: 3}))
	p.engine.RefreshCRL(context.Background(), admin, api.RefreshCRLInput{})
	if out := p.validate(t, "hard", pem); out.Result != "revoked" || !strings.Contains(out.Reason, "known bad certificate") {
		t.Fatalf("%+v", out)
	}
}

func TestValidatePeerErrors(t *testing.T) {
	p := newPeerFixture(t)
	pem, c := p.peerPEM(t, "peer-1", testpki.Options{})
	for _, tc := range []struct {
		desc string
		in   api.ValidatePeerInput
		want error
		msg  string
	}{
		{desc: "router without peer-validation", in: api.ValidatePeerInput{Router: "off", Peer: "p", Certificate: pem}, want: api.ErrInvalid, msg: "set authority/router[name=off]/peer-validation true"},
		{desc: "unknown router", in: api.ValidatePeerInput{Router: "nope", Peer: "p", Certificate: pem}, want: api.ErrMissing, msg: `router "nope" is not configured`},
		{desc: "unknown peer", in: api.ValidatePeerInput{Router: "soft", Peer: "q", Certificate: pem}, want: api.ErrMissing, msg: `router "soft" has no peer "q"`},
		{desc: "peer without identifier", in: api.ValidatePeerInput{Router: "hard", Peer: "anon", Certificate: pem}, want: api.ErrInvalid, msg: "no identifier configured"},
		{desc: "private key in the input", in: api.ValidatePeerInput{Router: "soft", Peer: "p", Certificate: pem + string(c.KeyPEM())}, want: api.ErrInvalid, msg: "private key"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := p.engine.ValidatePeerCertificate(context.Background(), admin, tc.in)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v with %q", err, tc.want, tc.msg)
			}
			if strings.Contains(err.Error(), strings.Split(string(c.KeyPEM()), "\n")[1][:20]) {
				t.Fatal("key material echoed")
			}
		})
	}
	// Through the generic rpc dispatch, output as the YANG names it.
	out, err := agent.InvokeRPC(context.Background(), p.engine, admin, "validate-peer-certificate", []byte(`{"router":"soft","peer":"p","certificate":`+jsonString(pem)+`}`))
	if err != nil || string(out) != `{"result":"valid"}` {
		t.Fatalf("%s %v", out, err)
	}
	// Dropping the peer from the configuration drops its state and alarm.
	p.validate(t, "soft", "garbage")
	if p.alarm("peer-certificate:soft/p") == nil {
		t.Fatal("no alarm")
	}
	tx := p.store.Begin(agent.Running)
	if err := tx.Apply(agent.Edit{Op: agent.OpDelete, Path: &gnmi.Path{Elem: []*gnmi.PathElem{{Name: "authority"}, routerElem("soft")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.store.Commit(context.Background(), tx, agent.CommitOptions{User: "admin"}); err != nil {
		t.Fatal(err)
	}
	if p.alarm("peer-certificate:soft/p") != nil {
		t.Fatal("alarm of a removed router kept")
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// A verdict is about the identity it was given for: when the peer is
// configured with another identifier, its state and alarm go.
func TestPeerIdentifierChangeDropsTheVerdict(t *testing.T) {
	p := newPeerFixture(t)
	mismatch, _ := p.peerPEM(t, "someone-else", testpki.Options{})
	if out := p.validate(t, "soft", mismatch); out.Result != "invalid" {
		t.Fatalf("%+v", out)
	}
	if p.alarm("peer-certificate:soft/p") == nil {
		t.Fatal("no alarm")
	}
	// Same identifier re-committed (another leaf changed): the verdict holds.
	if err := p.merge(t, `{"certificate-failure-action": "fail-soft"}`, routerElem("soft")); err != nil {
		t.Fatal(err)
	}
	if st := p.peerState(t, "soft"); st.GetStatus() != gen.PkiAuthority_PeerStatus_invalid {
		t.Fatalf("status after an unrelated commit: %v", st.GetStatus())
	}
	if err := p.merge(t, `{"peer": [{"name": "p", "identifier": "someone-else"}]}`, routerElem("soft")); err != nil {
		t.Fatal(err)
	}
	if st := p.peerState(t, "soft"); st.GetStatus() == gen.PkiAuthority_PeerStatus_invalid {
		t.Fatalf("verdict for the old identifier kept: %v %q", st.GetStatus(), st.GetReason())
	}
	if p.alarm("peer-certificate:soft/p") != nil {
		t.Fatal("alarm for the old identifier kept")
	}
	if out := p.validate(t, "soft", mismatch); out.Result != "valid" {
		t.Fatalf("the certificate of the new identifier: %+v", out)
	}
}
