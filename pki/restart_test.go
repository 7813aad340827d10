package pki

import (
	"context"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/google/go-cmp/cmp"
	"github.com/openconfig/ygot/ygot"

	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/internal/persist"
	"github.com/pkiagent/pkiagent/internal/testpki"
)

// restart stops f's engine and store as at process exit and builds a new
// engine on the same state directory, loaded with the running
// configuration, at time at.
func restart(t *testing.T, f *fixture, at time.Time) *fixture {
	t.Helper()
	f.engine.revocation.m.Stop()
	f.close()
	f2 := newFixtureIn(t, f.dir, clock.NewFake(at))
	if err := f2.engine.Load(context.Background(), f2.store.Running()); err != nil {
		t.Fatal(err)
	}
	return f2
}

// TestRootIssuedCertificateStaysRevokedAfterRestart is finding 2 of issue
// 10: a certificate issued directly by a trusted root, revoked by the
// root's CRL, stays revoked after a restart, with the same alarm (time
// included) and the revoked counter still 1; also when its file was
// written by an older agent that dropped the root (a one-element chain).
func TestRootIssuedCertificateStaysRevokedAfterRestart(t *testing.T) {
	f := newFixture(t)
	root := testpki.Must(f.gen.Root(testpki.Options{CN: "root only"}))
	if err := f.setTrusted(t, "corp", string(testpki.PEM(root)), "strict"); err != nil {
		t.Fatal(err)
	}
	srv := newCRLServer(t)
	srv.serve(http.StatusOK, mustCRL(t, root, testpki.CRLOptions{Number: 1}))
	f.run(t)
	leaf := provisionWithCDP(t, f, root, "router", srv.url)
	if got := f.state(t).GetCertificates().GetCertificate("router").GetStatus(); got != gen.PkiAuthority_CertificateStatus_valid {
		t.Fatalf("before revocation: %v", got)
	}
	srv.serve(http.StatusOK, mustCRL(t, root, testpki.CRLOptions{Number: 2, Revoked: []*big.Int{leaf.Cert.SerialNumber}}))
	if _, err := f.engine.RefreshCRL(context.Background(), admin, api.RefreshCRLInput{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "certificate revoked", func() bool {
		return f.state(t).GetCertificates().GetCertificate("router").GetStatus() == gen.PkiAuthority_CertificateStatus_revoked
	})
	before := f.alarm("certificate:router")
	if before.GetCategory() != gen.PkiAuthority_AlarmCategory_certificate_revoked || before.GetSeverity() != gen.PkiAuthority_Severity_critical {
		t.Fatalf("alarm before the restart: %v %v", before.GetCategory(), before.GetSeverity())
	}

	check := func(f *fixture, when string) {
		t.Helper()
		st := f.state(t)
		if got := st.GetCertificates().GetCertificate("router").GetStatus(); got != gen.PkiAuthority_CertificateStatus_revoked {
			t.Fatalf("%s: status %v", when, got)
		}
		a := st.GetAlarms().GetAlarm("certificate:router")
		if a.GetCategory() != gen.PkiAuthority_AlarmCategory_certificate_revoked || a.GetTimeRaised() != before.GetTimeRaised() || a.GetText() != before.GetText() {
			t.Fatalf("%s: alarm %v %q raised %s, want raised %s", when, a.GetCategory(), a.GetText(), a.GetTimeRaised(), before.GetTimeRaised())
		}
		if got := st.GetStats().GetSecurity().GetCertificate().GetRevoked(); got != 1 {
			t.Fatalf("%s: stats/security/certificate/revoked = %d, want 1", when, got)
		}
	}
	f = restart(t, f, t0.Add(time.Minute))
	check(f, "after a restart")

	// A file written by an older agent holds the leaf alone.
	path := filepath.Join(f.dir, "certs", "router.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	f = restart(t, f, t0.Add(2*time.Minute))
	check(f, "after a restart with a one-element chain on disk")
}

// stateJSON is the whole state tree as RFC 7951 JSON.
func stateJSON(t *testing.T, f *fixture) string {
	t.Helper()
	js, err := ygot.EmitJSON(f.state(t), &ygot.EmitJSONConfig{Format: ygot.RFC7951, Indent: " "})
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestRestartKeepsPeerVerdictsAlarmsAndCounters is finding 9 of issue 10
// inside the engine: after a restart the whole state tree is what it was
// (a fail-hard peer still severed with its alarm and its time, a valid
// peer still valid, every counter, the CRL source's state, since its
// schedule resumes), and the restored verdicts still act: the valid peer
// turns revoked when the CRL lists its certificate (its accepted path was
// kept), the severed one is lifted only by a valid certificate.
func TestRestartKeepsPeerVerdictsAlarmsAndCounters(t *testing.T) {
	p := newPeerFixture(t)
	ctx := context.Background()
	valid, validCert := p.peerPEM(t, "peer-1", testpki.Options{})
	mismatch, _ := p.peerPEM(t, "someone-else", testpki.Options{})
	if out := p.validate(t, "hard", mismatch); out.Result != "invalid" {
		t.Fatalf("hard: %+v", out)
	}
	if out := p.validate(t, "soft", valid); out.Result != "valid" {
		t.Fatalf("soft: %+v", out)
	}
	if _, err := p.engine.GenerateCSR(ctx, admin, api.GenerateCSRInput{Name: "nokey", CommonName: "x"}); err == nil {
		t.Fatal("CSR without a key")
	}
	before := stateJSON(t, p.fixture)
	for _, want := range []string{`"status": "severed"`, `"peer-certificate:hard/p"`, `"invalid": "1"`, `"failure": "1"`} {
		if !strings.Contains(before, want) {
			t.Fatalf("state before the restart lacks %s:\n%s", want, before)
		}
	}

	f := restart(t, p.fixture, t0.Add(time.Minute))
	f.run(t)
	if diff := cmp.Diff(before, stateJSON(t, f)); diff != "" {
		t.Fatalf("state after a restart (-before +after):\n%s", diff)
	}

	// The restored valid peer is re-checked against the next CRL.
	p.srv.serve(http.StatusOK, mustCRL(t, p.h[1], testpki.CRLOptions{Number: 2, Revoked: []*big.Int{validCert.Cert.SerialNumber}}))
	if _, err := f.engine.RefreshCRL(ctx, admin, api.RefreshCRLInput{}); err != nil {
		t.Fatal(err)
	}
	st := f.state(t)
	if got := st.GetAuthority().GetRouter("soft").GetPeer("p").GetState().GetStatus(); got != gen.PkiAuthority_PeerStatus_revoked {
		t.Fatalf("restored valid peer after its certificate was revoked: %v", got)
	}
	if got := st.GetStats().GetSecurity().GetPeerCertificate().GetRevoked(); got != 1 {
		t.Fatalf("peer-certificate/revoked = %d", got)
	}
	// Only a valid certificate lifts the severed peer.
	p2 := &peerFixture{fixture: f, h: p.h, srv: p.srv}
	again, _ := p2.peerPEM(t, "peer-1", testpki.Options{})
	if out := p2.validate(t, "hard", again); out.Result != "valid" {
		t.Fatalf("hard after the restart: %+v", out)
	}
	if f.alarm("peer-certificate:hard/p") != nil {
		t.Fatal("severed peer's alarm not cleared by a valid certificate")
	}

	// And that survives the next restart too.
	lifted := stateJSON(t, f)
	f = restart(t, f, t0.Add(2*time.Minute))
	if diff := cmp.Diff(lifted, stateJSON(t, f)); diff != "" {
		t.Fatalf("state after a second restart (-before +after):\n%s", diff)
	}
}

// TestRegradedAlarmTimeRaised: an alarm re-graded (minor to major as the
// certificate nears its end) carries the time of the re-grade, and a
// restart keeps it.
func TestRegradedAlarmTimeRaised(t *testing.T) {
	f := newFixture(t)
	h := testpki.Must(f.gen.Hierarchy(2))
	if err := f.setTrusted(t, "corp", string(testpki.PEM(h[0])), "strict"); err != nil {
		t.Fatal(err)
	}
	if _, err := provision(t, f, h[1], "router", t0.AddDate(0, 0, 20)); err != nil {
		t.Fatal(err)
	}
	if a := f.alarm("certificate:router"); a.GetSeverity() != gen.PkiAuthority_Severity_minor || a.GetTimeRaised() != "2026-11-23T12:00:00Z" {
		t.Fatalf("raised: %v %s", a.GetSeverity(), a.GetTimeRaised())
	}
	f.clock.Set(t0.AddDate(0, 0, 14))
	f.engine.Evaluate()
	if a := f.alarm("certificate:router"); a.GetSeverity() != gen.PkiAuthority_Severity_major || a.GetTimeRaised() != "2026-12-07T12:00:00Z" {
		t.Fatalf("re-graded: %v %s", a.GetSeverity(), a.GetTimeRaised())
	}
	f = restart(t, f, t0.AddDate(0, 0, 15))
	if a := f.alarm("certificate:router"); a.GetSeverity() != gen.PkiAuthority_Severity_major || a.GetTimeRaised() != "2026-12-07T12:00:00Z" {
		t.Fatalf("after a restart: %v %s", a.GetSeverity(), a.GetTimeRaised())
	}
}

// TestDamagedPKIStateStopsTheStart: a damaged pki-state.json is an error
// naming it, as a damaged running.json is.
func TestDamagedPKIStateStopsTheStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pki-state.json")
	if err := os.WriteFile(path, []byte(`{"alarms": [{"id": "x", "severity": "loud"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(context.Background(), Config{StateDir: dir, Clock: clock.NewFake(t0)})
	if err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, persist.ErrCorrupt) {
		t.Fatalf("New with a damaged %s: %v", path, err)
	}
	if err := os.WriteFile(path, []byte(`{not json`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), Config{StateDir: dir, Clock: clock.NewFake(t0)}); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("New with %s not JSON: %v", path, err)
	}
}

// TestPKIStateCompaction: when the journal is folded into the snapshot
// (every compactRecords changes), the snapshot alone brings back the same
// state, and the journal starts again empty.
func TestPKIStateCompaction(t *testing.T) {
	p := newPeerFixture(t)
	valid, _ := p.peerPEM(t, "peer-1", testpki.Options{})
	mismatch, _ := p.peerPEM(t, "someone-else", testpki.Options{})
	p.validate(t, "hard", mismatch)
	p.engine.mu.Lock()
	p.engine.durable.compact = true
	p.engine.mu.Unlock()
	p.validate(t, "soft", valid) // this change writes the snapshot
	if n, _ := p.engine.durable.dir.JournalSize(); n != 0 {
		t.Fatalf("journal after compaction: %d records", n)
	}
	snap, err := os.ReadFile(filepath.Join(p.dir, "pki-state.json"))
	if err != nil || !strings.Contains(string(snap), `"severed"`) {
		t.Fatalf("snapshot: %v %.300s", err, snap)
	}
	if fi, _ := os.Stat(filepath.Join(p.dir, "pki-state.json")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot mode %v", fi.Mode())
	}
	before := stateJSON(t, p.fixture)
	f := restart(t, p.fixture, t0.Add(time.Minute))
	if diff := cmp.Diff(before, stateJSON(t, f)); diff != "" {
		t.Fatalf("state after a restart from the snapshot (-before +after):\n%s", diff)
	}
}

// TestKnownBadPeerCertificateSurvivesRestart: a peer certificate found
// revoked stays refused after a restart although the CA's next CRL no
// longer lists it, as it does without a restart.
func TestKnownBadPeerCertificateSurvivesRestart(t *testing.T) {
	p := newPeerFixture(t)
	ctx := context.Background()
	pemChain, c := p.peerPEM(t, "peer-1", testpki.Options{})
	p.srv.serve(http.StatusOK, mustCRL(t, p.h[1], testpki.CRLOptions{Number: 2, Revoked: []*big.Int{c.Cert.SerialNumber}}))
	if _, err := p.engine.RefreshCRL(ctx, admin, api.RefreshCRLInput{}); err != nil {
		t.Fatal(err)
	}
	if out := p.validate(t, "soft", pemChain); out.Result != "revoked" {
		t.Fatalf("first: %+v", out)
	}
	p.srv.serve(http.StatusOK, mustCRL(t, p.h[1], testpki.CRLOptions{Number: 3}))
	if _, err := p.engine.RefreshCRL(ctx, admin, api.RefreshCRLInput{}); err != nil {
		t.Fatal(err)
	}
	f := restart(t, p.fixture, t0.Add(time.Minute))
	f.run(t)
	p2 := &peerFixture{fixture: f, h: p.h, srv: p.srv}
	if out := p2.validate(t, "soft", pemChain); out.Result != "revoked" || !strings.Contains(out.Reason, "known bad certificate") {
		t.Fatalf("after a restart: %+v", out)
	}
	// From the snapshot too.
	f.engine.mu.Lock()
	f.engine.durable.compact = true
	f.engine.mu.Unlock()
	p2.validate(t, "hard", pemChain)
	f = restart(t, f, t0.Add(2*time.Minute))
	p3 := &peerFixture{fixture: f, h: p.h, srv: p.srv}
	if out := p3.validate(t, "soft", pemChain); out.Result != "revoked" || !strings.Contains(out.Reason, "known bad certificate") {
		t.Fatalf("after a restart from the snapshot: %+v", out)
	}
}

// TestStateWrittenByMainLoads: a state directory written by the engine
// before it became reconcilers (commit 8bfbfe4 of main: running, the
// alarms, peer verdicts and counters; no keys) loads, and the state tree
// is what that engine showed.
func TestStateWrittenByMainLoads(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/state-from-main")); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(dir, "want-state.json"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureIn(t, dir, clock.NewFake(t0.Add(time.Minute)))
	if err := f.engine.Load(context.Background(), f.store.Running()); err != nil {
		t.Fatal(err)
	}
	// The engine's state: the store's commit history (which that agent did
	// not serve) is not the engine's.
	st := f.state(t)
	st.System = nil
	js, err := ygot.EmitJSON(st, &ygot.EmitJSONConfig{Format: ygot.RFC7951, Indent: " "})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), js); diff != "" {
		t.Errorf("state loaded from a directory written by main (-main +now):\n%s", diff)
	}
}
