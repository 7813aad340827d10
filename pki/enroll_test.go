package pki

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/internal/testpki"
	"github.com/pkiagent/pkiagent/pki/cmp"
	"github.com/pkiagent/pkiagent/pki/keystore/tpm"
)

// signingCA is the CA side of the engine's enrollments in these tests: it
// checks each request's protection as a CMP server would (the PBM secret
// of an ir, the certificate in force signing a kur) and really signs the
// requested key and subject with its CA. The CMP wire itself is tested in
// pki/cmp against its own responder and openssl cmp; here the subject is
// the engine's lifecycle.
type signingCA struct {
	gen    *testpki.Generator
	ca     *testpki.Cert
	secret string
	clock  clock.Clock
	life   time.Duration

	mu       sync.Mutex
	requests []cmp.Request
	fail     error                                   // answer every request with this
	issue    func(req cmp.Request) *x509.Certificate // replaces the signing
	during   func()                                  // runs while a request is with the CA
}

func (c *signingCA) Enroll(_ context.Context, req cmp.Request) (*cmp.Result, error) {
	c.mu.Lock()
	c.requests = append(c.requests, req)
	fail, issue, during := c.fail, c.issue, c.during
	c.mu.Unlock()
	tid := []byte{0xab, 0xcd, byte(len(c.requests))}
	if during != nil {
		during()
	}
	if fail != nil {
		return nil, &cmp.Error{Kind: fail, Msg: "the CA is failing", TransactionID: tid}
	}
	switch p := req.Protection.(type) {
	case cmp.PBM:
		if string(p.Secret) != c.secret {
			return nil, &cmp.Error{Kind: cmp.ErrRejected, Msg: "the CA rejected the ir request: wrong pbm value", FailInfo: []string{"badMessageCheck"}, TransactionID: tid}
		}
	case cmp.Signature:
		if _, err := p.Cert.Verify(x509.VerifyOptions{Roots: testpki.Pool(c.ca), CurrentTime: c.clock.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return nil, &cmp.Error{Kind: cmp.ErrRejected, Msg: "signature by an unknown certificate", TransactionID: tid}
		}
	}
	var cert *x509.Certificate
	if issue != nil {
		cert = issue(req)
	} else {
		now := c.clock.Now()
		subj := req.Subject
		cert = testpki.Must(c.gen.Issue(c.ca, testpki.Options{Subject: &subj, Key: req.Key, DNSNames: req.DNSNames, NotBefore: now, NotAfter: now.Add(c.life)})).Cert
	}
	return &cmp.Result{Cert: cert, Chain: []*x509.Certificate{cert, c.ca.Cert}, TransactionID: tid}, nil
}

func (c *signingCA) last() cmp.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests[len(c.requests)-1]
}

func (c *signingCA) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.requests)
}

func (c *signingCA) set(fn func(c *signingCA)) {
	c.mu.Lock()
	fn(c)
	c.mu.Unlock()
}

const enrollConfigJSON = `{
  "ca-profile": [{"name": "lab", "url": "http://ca.lab.invalid/pkix/", "trusted-ca": "ca",
                  "cmpv2": {"reference": "3078", "secret": "insta-s3cret"}}],
  "client-certificate": [{"name": "r1", "enrollment": {"ca-profile": "lab", "subject": "C=NL,O=Lab,CN=r1",
                          "subject-alt-name": {"dns": ["r1.lab"]}, "retry-interval": 60}}]
}`

// newEnrollFixture has a trusted CA "ca" and the engine enrolling from a
// signingCA of it, with its loops running.
func newEnrollFixture(t *testing.T, dir string, fc *clock.Fake, ca *signingCA, opts ...func(*Config)) *fixture {
	t.Helper()
	f := newFixtureIn(t, dir, fc, opts...)
	f.engine.enroll.dial = func(caProfile, *x509.CertPool, pkix.Name) caClient { return ca }
	if err := f.engine.Load(context.Background(), f.store.Sealed()); err != nil {
		t.Fatal(err)
	}
	f.run(t)
	return f
}

func newSigningCA(t *testing.T, fc clock.Clock) *signingCA {
	g := testpki.New(t0)
	ca := testpki.Must(g.Root(testpki.Options{Subject: &pkix.Name{CommonName: "Lab CMP CA"}, NotBefore: t0.Add(-time.Hour), NotAfter: t0.AddDate(5, 0, 0)}))
	return &signingCA{gen: g, ca: ca, secret: "insta-s3cret", clock: fc, life: 100 * 24 * time.Hour}
}

func (f *fixture) cert(name string) *gen.PkiAuthority_Certificates_Certificate {
	st, _ := f.store.State()
	return st.GetCertificates().GetCertificate(name)
}

func (f *fixture) enrollState(name string) *gen.PkiAuthority_Authority_ClientCertificate_State {
	st, _ := f.store.State()
	return st.GetAuthority().GetClientCertificate(name).GetState()
}

// waitFor polls cond for up to 5 s of real time (the enrollment loop runs
// on its own goroutine).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// waitIdle waits for the attempt in progress on name to end well.
func (f *fixture) waitIdle(t *testing.T, name string) {
	t.Helper()
	waitFor(t, name+" idle", func() bool {
		st := f.enrollState(name)
		return st.GetEnrollmentStatus() == gen.PkiAuthority_Authority_ClientCertificate_State_EnrollmentStatus_idle && st.GetLastSuccess() != ""
	})
}

func publicOf(t *testing.T, f *fixture, name string) crypto.PublicKey {
	t.Helper()
	s, err := f.keys.Signer(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s.Public()
}

// TestEnrollmentLifecycle: a configured enrollment enrolls at once (ir,
// PBM), renews at 80% of the lifetime with a new key (kur signed by the
// certificate in force), a failing CA raises certificate-enrollment-failed
// and keeps the certificate in force, the retry clears it, and a restart
// keeps the certificate, the counters and the enrollment state.
func TestEnrollmentLifecycle(t *testing.T) {
	dir := t.TempDir()
	fc := clock.NewFake(t0)
	ca := newSigningCA(t, fc)
	f := newEnrollFixture(t, dir, fc, ca)
	if err := f.setTrusted(t, "ca", string(ca.ca.PEM()), "strict"); err != nil {
		t.Fatal(err)
	}
	if err := f.merge(t, enrollConfigJSON); err != nil {
		t.Fatal(err)
	}

	// Enroll at once.
	waitFor(t, "the first enrollment", func() bool { return f.cert("r1").GetStatus() == gen.PkiAuthority_CertificateStatus_valid })
	f.waitIdle(t, "r1")
	req := ca.last()
	if req.Kind != cmp.IR || req.Protection.(cmp.PBM).Reference != "3078" || req.Subject.CommonName != "r1" || len(req.DNSNames) != 1 {
		t.Fatalf("first request: kind %v, protection %v, subject %v, dns %v", req.Kind, req.Protection, req.Subject, req.DNSNames)
	}
	first := f.cert("r1")
	firstKey := publicOf(t, f, "r1")
	notBefore, _ := time.Parse(time.RFC3339, first.GetNotBefore())
	st := f.enrollState("r1")
	wantRenew := notBefore.Add(80 * 24 * time.Hour).UTC().Format(timeFormat)
	waitFor(t, "next-renewal", func() bool { return f.enrollState("r1").GetNextRenewal() == wantRenew })
	if st.GetEnrollmentStatus() != gen.PkiAuthority_Authority_ClientCertificate_State_EnrollmentStatus_idle || st.GetLastSuccess() == "" || st.GetTransactionId() != "abcd01" {
		t.Errorf("state after enrollment: %s, last-success %q, transaction-id %q", st.GetEnrollmentStatus(), st.GetLastSuccess(), st.GetTransactionId())
	}
	if f.alarm(alarmMissing+"r1") != nil {
		t.Error("certificate-missing still raised after the enrollment")
	}

	// Nothing before 80% of the lifetime; renewal with a new key at 80%.
	fc.Advance(79 * 24 * time.Hour)
	time.Sleep(50 * time.Millisecond)
	if n := ca.count(); n != 1 {
		t.Fatalf("%d requests before the renewal time; want 1", n)
	}
	fc.Advance(25 * time.Hour)
	waitFor(t, "the renewal", func() bool { return f.cert("r1").GetFingerprintSha256() != first.GetFingerprintSha256() })
	f.waitIdle(t, "r1")
	req = ca.last()
	if req.Kind != cmp.KUR || req.OldCert == nil || req.OldCert.SerialNumber.Text(16) != first.GetSerial() {
		t.Fatalf("renewal: kind %v, old cert %v", req.Kind, req.OldCert)
	}
	if sig, ok := req.Protection.(cmp.Signature); !ok || sig.Cert.SerialNumber.Text(16) != first.GetSerial() {
		t.Fatalf("renewal not signed by the certificate in force: %v", req.Protection)
	}
	if k := publicOf(t, f, "r1"); k.(interface{ Equal(crypto.PublicKey) bool }).Equal(firstKey) {
		t.Error("rekey true, but the renewal kept the key")
	}
	if _, err := f.engine.TLSCertificate(context.Background(), "r1"); err != nil {
		t.Errorf("the renewed pair does not serve: %v", err)
	}
	if names, _ := f.keys.Names(); len(names) != 1 {
		t.Errorf("keys after the renewal: %v; want only r1", names)
	}

	// A failing CA: the alarm is raised, the certificate in force kept.
	renewed := f.cert("r1").GetFingerprintSha256()
	renewedKey := publicOf(t, f, "r1")
	ca.set(func(c *signingCA) { c.fail = cmp.ErrUnreachable })
	out, err := f.engine.EnrollCertificate(context.Background(), admin, api.EnrollCertificateInput{Name: "r1", Force: true})
	if err != nil || out.Result != "failed" || !strings.Contains(out.Message, "the CA is failing") {
		t.Fatalf("forced renewal against a failing CA: %+v, %v", out, err)
	}
	a := f.alarm(alarmEnrollment + "r1")
	if a == nil || a.GetCategory() != gen.PkiAuthority_AlarmCategory_certificate_enrollment_failed || a.GetSeverity() != gen.PkiAuthority_Severity_major {
		t.Fatalf("alarm after a failure: %v", a)
	}
	st = f.enrollState("r1")
	if st.GetEnrollmentStatus() != gen.PkiAuthority_Authority_ClientCertificate_State_EnrollmentStatus_failed || !strings.Contains(st.GetLastError(), "the CA is failing") {
		t.Errorf("state after a failure: %s %q", st.GetEnrollmentStatus(), st.GetLastError())
	}
	if f.cert("r1").GetFingerprintSha256() != renewed || !publicOf(t, f, "r1").(interface{ Equal(crypto.PublicKey) bool }).Equal(renewedKey) {
		t.Fatal("a failed renewal changed the certificate or key in force")
	}
	if _, err := f.engine.TLSCertificate(context.Background(), "r1"); err != nil {
		t.Errorf("the pair in force does not serve after a failed renewal: %v", err)
	}
	if names, _ := f.keys.Names(); len(names) != 1 {
		t.Errorf("keys after a failed renewal: %v; want only r1", names)
	}
	// The second failure doubles the retry interval; a CA back clears it.
	n := ca.count()
	fc.Advance(61 * time.Second)
	waitFor(t, "the first retry", func() bool { return ca.count() == n+1 })
	waitFor(t, "the retry's outcome", func() bool {
		return f.enrollState("r1").GetEnrollmentStatus() == gen.PkiAuthority_Authority_ClientCertificate_State_EnrollmentStatus_failed
	})
	wantRetry := fc.Now().Add(120 * time.Second).UTC().Format(timeFormat)
	waitFor(t, "the doubled retry time", func() bool { return f.enrollState("r1").GetNextRenewal() == wantRetry })
	ca.set(func(c *signingCA) { c.fail = nil })
	fc.Advance(121 * time.Second)
	waitFor(t, "the alarm cleared", func() bool { return f.alarm(alarmEnrollment+"r1") == nil })
	f.waitIdle(t, "r1")
	if f.cert("r1").GetFingerprintSha256() == renewed {
		t.Error("the successful retry did not renew")
	}
	stats := func(f *fixture) (uint64, uint64) {
		s, _ := f.store.State()
		e := s.GetStats().GetSecurity().GetEnrollment()
		return e.GetSuccess(), e.GetFailure()
	}
	if ok, bad := stats(f); ok != 3 || bad != 2 {
		t.Errorf("enrollment counters %d/%d; want 3/2", ok, bad)
	}
	final := f.cert("r1").GetFingerprintSha256()
	lastSuccess := f.enrollState("r1").GetLastSuccess()

	// certificate-event notifications: enroll, then renew twice.
	var events []string
	for len(f.sub.C) > 0 {
		if n := (<-f.sub.C).Notification; n != nil && n.Name == "certificate-event" {
			for _, l := range n.Leaves {
				if l.Name == "event" && (l.Value == "enroll" || l.Value == "renew") {
					events = append(events, l.Value.(string))
				}
			}
		}
	}
	if strings.Join(events, " ") != "enroll renew renew" {
		t.Errorf("certificate-event notifications %v; want enroll renew renew", events)
	}
	// The audit log has the attempts, without the secret.
	var audit string
	waitFor(t, "5 system.enroll_certificate audit records", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "audit.log"))
		audit = string(b)
		return strings.Count(audit, "system.enroll_certificate") == 5
	})
	if strings.Contains(audit, "insta-s3cret") {
		t.Error("the audit log holds the PBM secret")
	}

	// Restart: the certificate, counters and state are back; not due, so
	// nothing is sent.
	f.close()
	n = ca.count()
	f2 := newEnrollFixture(t, dir, fc, ca)
	if err := f2.engine.RecoverRotations(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f2.cert("r1"); got.GetFingerprintSha256() != final || got.GetStatus() != gen.PkiAuthority_CertificateStatus_valid {
		t.Fatalf("after restart: %s %s", got.GetFingerprintSha256(), got.GetStatus())
	}
	if ok, bad := stats(f2); ok != 3 || bad != 2 {
		t.Errorf("enrollment counters after restart %d/%d; want 3/2", ok, bad)
	}
	if got := f2.enrollState("r1").GetLastSuccess(); got != lastSuccess {
		t.Errorf("last-success after restart %q; want %q", got, lastSuccess)
	}
	time.Sleep(50 * time.Millisecond)
	if ca.count() != n {
		t.Error("a restart re-enrolled a certificate that was not due")
	}
}

// TestEnrollmentRefusals: what the CA returns goes through the import
// checks, and a wrong secret, a certificate for another key or subject, or
// an expired one leaves nothing behind, with the reason in last-error and
// the alarm (critical: no certificate in force).
func TestEnrollmentRefusals(t *testing.T) {
	fc := clock.NewFake(t0)
	ca := newSigningCA(t, fc)
	ca.secret = "other"
	f := newEnrollFixture(t, t.TempDir(), fc, ca)
	if err := f.setTrusted(t, "ca", string(ca.ca.PEM()), "strict"); err != nil {
		t.Fatal(err)
	}
	if err := f.merge(t, enrollConfigJSON); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failure", func() bool { return f.alarm(alarmEnrollment+"r1") != nil })
	waitFor(t, "the attempt's end", func() bool {
		return f.enrollState("r1").GetEnrollmentStatus() == gen.PkiAuthority_Authority_ClientCertificate_State_EnrollmentStatus_failed
	})
	if a := f.alarm(alarmEnrollment + "r1"); a.GetSeverity() != gen.PkiAuthority_Severity_critical || !strings.Contains(a.GetText(), "wrong pbm value") {
		t.Errorf("alarm: %s %q", a.GetSeverity(), a.GetText())
	}
	if e := f.enrollState("r1").GetLastError(); !strings.Contains(e, "wrong pbm value") || strings.Contains(e, "insta-s3cret") {
		t.Errorf("last-error %q", e)
	}
	ca.set(func(c *signingCA) { c.secret = "insta-s3cret" })
	other := testpki.Must(testpki.NewKey(testpki.ECDSAP256))
	for _, tc := range []struct {
		desc  string
		issue func(req cmp.Request) *x509.Certificate
		want  string
	}{
		{"another key", func(req cmp.Request) *x509.Certificate {
			return testpki.Must(ca.gen.Issue(ca.ca, testpki.Options{Subject: &req.Subject, Key: other})).Cert
		}, "key"},
		{"expired", func(req cmp.Request) *x509.Certificate {
			return testpki.Must(ca.gen.Issue(ca.ca, testpki.Options{Subject: &req.Subject, Key: req.Key, NotBefore: t0.AddDate(-1, 0, 0), NotAfter: t0.Add(-time.Hour)})).Cert
		}, "expired"},
		{"untrusted issuer", func(req cmp.Request) *x509.Certificate {
			root := testpki.Must(ca.gen.Root(testpki.Options{CN: "Rogue"}))
			return testpki.Must(ca.gen.Issue(root, testpki.Options{Subject: &req.Subject, Key: req.Key})).Cert
		}, "trusted"},
	} {
		ca.set(func(c *signingCA) { c.issue = tc.issue })
		out, err := f.engine.EnrollCertificate(context.Background(), admin, api.EnrollCertificateInput{Name: "r1"})
		if err != nil || out.Result != "failed" || !strings.Contains(out.Message, tc.want) {
			t.Errorf("%s: %+v %v; want failed naming %q", tc.desc, out, err, tc.want)
		}
		if c := f.cert("r1"); c.GetFingerprintSha256() != "" {
			t.Errorf("%s: a refused certificate is in force", tc.desc)
		}
		if names, _ := f.keys.Names(); len(names) != 0 {
			t.Errorf("%s: keys left behind: %v", tc.desc, names)
		}
	}
	// An enrollment of an unknown name, and of a name without enrollment.
	if _, err := f.engine.EnrollCertificate(context.Background(), admin, api.EnrollCertificateInput{Name: "nope"}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("unknown name: %v", err)
	}
}

// TestEnrollmentConfigRefused: est and scep are declared but refused, as
// are a bad subject, a missing subject, reference without secret, major
// beyond minor days, and a TPM that is not there.
func TestEnrollmentConfigRefused(t *testing.T) {
	fc := clock.NewFake(t0)
	ca := newSigningCA(t, fc)
	f := newEnrollFixture(t, t.TempDir(), fc, ca)
	if err := f.setTrusted(t, "ca", string(ca.ca.PEM()), "strict"); err != nil {
		t.Fatal(err)
	}
	prof := `{"ca-profile": [{"name": "p", "url": "http://ca/x", "trusted-ca": "ca", "protocol": "%s"}]}`
	for _, tc := range []struct{ desc, cfg, want string }{
		{"est", strings.Replace(prof, "%s", "est", 1), "protocol est is not supported yet"},
		{"scep", strings.Replace(prof, "%s", "scep", 1), "protocol scep is not supported yet"},
		{"reference alone", `{"ca-profile": [{"name": "p", "url": "http://ca/x", "trusted-ca": "ca", "cmpv2": {"reference": "1"}}]}`, "reference and secret go together"},
		{"bad subject", `{"ca-profile": [{"name": "p", "url": "http://ca/x", "trusted-ca": "ca"}], "client-certificate": [{"name": "r", "enrollment": {"ca-profile": "p", "subject": "CN=x,XX=1"}}]}`, "unknown type"},
		{"no subject", `{"ca-profile": [{"name": "p", "url": "http://ca/x", "trusted-ca": "ca"}], "client-certificate": [{"name": "r", "enrollment": {"ca-profile": "p"}}]}`, "needs a subject"},
		{"tpm", `{"ca-profile": [{"name": "p", "url": "http://ca/x", "trusted-ca": "ca"}], "client-certificate": [{"name": "r", "enrollment": {"ca-profile": "p", "subject": "CN=r", "key-storage": "tpm"}}]}`, "needs --tpm"},
		{"major beyond minor", `{"expiry-alarms": {"minor-days": 10, "major-days": 20}}`, "major-days"},
	} {
		err := f.merge(t, tc.cfg)
		if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want invalid naming %q", tc.desc, err, tc.want)
		}
	}
	if ca.count() != 0 {
		t.Error("a refused configuration enrolled")
	}
}

// TestEnrollmentCrashDuringRenewal: a process killed while a renewal's
// request is with the CA (its new key generated beside the one in force)
// restarts with the old pair in force and renews again.
func TestEnrollmentCrashDuringRenewal(t *testing.T) {
	if _, err := exec.LookPath("cp"); err != nil {
		t.Skip("no cp")
	}
	dir := t.TempDir()
	fc := clock.NewFake(t0)
	ca := newSigningCA(t, fc)
	f := newEnrollFixture(t, dir, fc, ca)
	if err := f.setTrusted(t, "ca", string(ca.ca.PEM()), "strict"); err != nil {
		t.Fatal(err)
	}
	if err := f.merge(t, enrollConfigJSON); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first enrollment", func() bool { return f.cert("r1").GetStatus() == gen.PkiAuthority_CertificateStatus_valid })
	f.waitIdle(t, "r1")
	first := f.cert("r1").GetFingerprintSha256()
	// The state directory as a kill -9 leaves it mid-renewal.
	crashed := filepath.Join(t.TempDir(), "crashed")
	ca.set(func(c *signingCA) {
		c.during = func() {
			if out, err := exec.Command("cp", "-a", dir, crashed).CombinedOutput(); err != nil {
				t.Errorf("copy: %v %s", err, out)
			}
		}
	})
	if out, err := f.engine.EnrollCertificate(context.Background(), admin, api.EnrollCertificateInput{Name: "r1", Force: true}); err != nil || out.Result != "renewed" {
		t.Fatalf("renewal: %+v %v", out, err)
	}
	if names, _ := os.ReadDir(filepath.Join(crashed, "keys")); len(names) != 2 {
		t.Fatalf("the crash copy holds %d keys; want the key in force and the new one", len(names))
	}
	ca.set(func(c *signingCA) { c.during = nil })
	f.close()

	f2 := newFixtureIn(t, crashed, fc)
	f2.engine.enroll.dial = func(caProfile, *x509.CertPool, pkix.Name) caClient { return ca }
	if err := f2.engine.RecoverRotations(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := f2.engine.Load(context.Background(), f2.store.Sealed()); err != nil {
		t.Fatal(err)
	}
	if got := f2.cert("r1").GetFingerprintSha256(); got != first {
		t.Fatalf("after the crash %s is in force; want the old %s", got, first)
	}
	if _, err := f2.engine.TLSCertificate(context.Background(), "r1"); err != nil {
		t.Fatalf("after the crash the pair does not match: %v", err)
	}
	if names, _ := f2.keys.Names(); len(names) != 1 {
		t.Errorf("keys after recovery: %v", names)
	}
	if out, err := f2.engine.EnrollCertificate(context.Background(), admin, api.EnrollCertificateInput{Name: "r1", Force: true}); err != nil || out.Result != "renewed" {
		t.Fatalf("renewal after recovery: %+v %v", out, err)
	}
}

// TestEnrollmentTPMAndEd25519: an enrollment with key-storage tpm has its
// key made in the TPM (the simulator), certified and renewed with a new
// TPM key, the kur signed by the TPM; key-algorithm ed25519 enrolls a file
// key, and a TPM refuses an Ed25519 key clearly.
func TestEnrollmentTPMAndEd25519(t *testing.T) {
	tp, err := tpm.Open(tpm.SpecSim)
	if err != nil && strings.Contains(err.Error(), "CGO") {
		t.Skipf("TPM simulator unavailable in this build: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	dir := t.TempDir()
	tpmKeys, err := tpm.New(context.Background(), tp, filepath.Join(dir, "tpm"), nil)
	if err != nil {
		t.Fatal(err)
	}
	fc := clock.NewFake(t0)
	ca := newSigningCA(t, fc)
	f := newEnrollFixture(t, dir, fc, ca, func(c *Config) { c.Keys["tpm"] = tpmKeys })
	if err := f.setTrusted(t, "ca", string(ca.ca.PEM()), "strict"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.engine.GeneratePrivateKey(context.Background(), admin, api.GenerateKeyInput{Name: "ed", Algorithm: "ed25519", KeyStorage: "tpm"}); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "cannot hold Ed25519") {
		t.Errorf("an Ed25519 key in the TPM: %v", err)
	}
	if err := f.merge(t, `{"ca-profile": [{"name": "lab", "url": "http://ca.lab.invalid/pkix/", "trusted-ca": "ca", "cmpv2": {"reference": "3078", "secret": "insta-s3cret"}}],
	  "client-certificate": [{"name": "t1", "enrollment": {"ca-profile": "lab", "subject": "CN=t1", "key-storage": "tpm", "ecc-curve": "secp384r1"}},
	                         {"name": "e1", "enrollment": {"ca-profile": "lab", "subject": "CN=e1", "key-algorithm": "ed25519"}}]}`); err != nil {
		t.Fatal(err)
	}
	f.waitIdle(t, "t1")
	f.waitIdle(t, "e1")
	st, _ := f.store.State()
	if k := st.GetKeys().GetKey("t1"); k.GetKeyStorage() != gen.PkiAuthority_KeyStorage_tpm || k.GetCurve() != "secp384r1" {
		t.Errorf("t1 key: %s %s", k.GetKeyStorage(), k.GetCurve())
	}
	if k := st.GetKeys().GetKey("e1"); k.GetAlgorithm() != "ed25519" || k.GetKeyStorage() != gen.PkiAuthority_KeyStorage_file {
		t.Errorf("e1 key: %s %s", k.GetAlgorithm(), k.GetKeyStorage())
	}
	first := f.cert("t1").GetFingerprintSha256()
	out, err := f.engine.EnrollCertificate(context.Background(), admin, api.EnrollCertificateInput{Name: "t1", Force: true})
	if err != nil || out.Result != "renewed" || out.FingerprintSHA256 == first {
		t.Fatalf("renewal of the TPM certificate: %+v %v", out, err)
	}
	if sig, ok := ca.last().Protection.(cmp.Signature); !ok || sig.Cert.Subject.CommonName != "t1" {
		t.Errorf("kur protection: %v", ca.last().Protection)
	}
	if _, err := f.engine.TLSCertificate(context.Background(), "t1"); err != nil {
		t.Errorf("the renewed TPM pair does not serve: %v", err)
	}
	if names, _ := tpmKeys.Names(); len(names) != 1 {
		t.Errorf("TPM keys after the renewal: %v", names)
	}
}

// TestDeletePrivateKey: refused while a client certificate, an enrollment
// or the gNMI server certificate uses the key, unless force; the key and
// its certificate are then gone.
func TestDeletePrivateKey(t *testing.T) {
	fc := clock.NewFake(t0)
	ca := newSigningCA(t, fc)
	f := newEnrollFixture(t, t.TempDir(), fc, ca, func(c *Config) { c.ServerCertName = "gnmi" })
	ctx := context.Background()
	if err := f.setTrusted(t, "ca", string(ca.ca.PEM()), "strict"); err != nil {
		t.Fatal(err)
	}
	if err := f.merge(t, enrollConfigJSON); err != nil {
		t.Fatal(err)
	}
	f.waitIdle(t, "r1")
	for _, n := range []string{"gnmi", "spare"} {
		if _, err := f.engine.GeneratePrivateKey(ctx, admin, api.GenerateKeyInput{Name: n, Algorithm: "ed25519", KeyStorage: "file"}); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]string{"r1": "client-certificate r1 is configured", "gnmi": "gNMI server certificate"} {
		err := f.engine.DeletePrivateKey(ctx, admin, api.DeletePrivateKeyInput{Name: name})
		if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("delete %s: %v; want a refusal naming %q", name, err, want)
		}
	}
	if err := f.engine.DeletePrivateKey(ctx, admin, api.DeletePrivateKeyInput{Name: "nope"}); !errors.Is(err, api.ErrMissing) {
		t.Errorf("delete of no key: %v", err)
	}
	if err := f.engine.DeletePrivateKey(ctx, admin, api.DeletePrivateKeyInput{Name: "spare"}); err != nil {
		t.Fatal(err)
	}
	// Forced, the key of an enrollment goes; the enrollment then enrolls
	// again (here against a CA that fails, so nothing new stays).
	ca.set(func(c *signingCA) { c.fail = cmp.ErrUnreachable })
	if err := f.engine.DeletePrivateKey(ctx, admin, api.DeletePrivateKeyInput{Name: "r1", Force: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the enrollment of the deleted key to fail", func() bool {
		return f.enrollState("r1").GetEnrollmentStatus() == gen.PkiAuthority_Authority_ClientCertificate_State_EnrollmentStatus_failed
	})
	if names, _ := f.keys.Names(); len(names) != 1 || names[0] != "gnmi" {
		t.Errorf("keys left: %v", names)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "certs", "r1.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the certificate of the deleted key stays: %v", err)
	}
	if st, _ := f.store.State(); st.GetKeys().GetKey("r1") != nil {
		t.Error("/keys still lists the deleted key")
	}
}

// TestEnrollmentBadCA: the real CMP client against CAs that answer
// garbage, an HTTP error, an oversized body, nothing in time, or are not
// there: each attempt fails with the reason in last-error and the alarm,
// the CA shows down or up accordingly, and no key or certificate is left.
func TestEnrollmentBadCA(t *testing.T) {
	fc := clock.NewFake(t0)
	ca := newSigningCA(t, fc)
	f := newFixtureIn(t, t.TempDir(), fc)
	if err := f.engine.Load(context.Background(), f.store.Sealed()); err != nil {
		t.Fatal(err)
	}
	if err := f.setTrusted(t, "ca", string(ca.ca.PEM()), "strict"); err != nil {
		t.Fatal(err)
	}
	hang := make(chan struct{})
	defer close(hang)
	serve := func(h http.HandlerFunc) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL + "/pkix/"
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL + "/pkix/"
	closed.Close()
	for _, tc := range []struct {
		desc, url, want string
		down            bool
	}{
		{"garbage", serve(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/pkixcmp")
			w.Write([]byte("this is not DER"))
		}), "not a CMP message", false},
		{"HTTP 500", serve(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", 500) }), "500", false},
		{"oversized", serve(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/pkixcmp")
			w.Write(make([]byte, 2<<20))
		}), "larger than", false},
		{"hangs", serve(func(w http.ResponseWriter, _ *http.Request) { <-hang }), "within the timeout", true},
		{"unreachable", closedURL, "cannot reach the CA", true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			cfg := `{"ca-profile": [{"name": "bad", "url": "` + tc.url + `", "trusted-ca": "ca", "timeout": 1,
			  "cmpv2": {"reference": "3078", "secret": "insta-s3cret"}}],
			  "client-certificate": [{"name": "r1", "enrollment": {"ca-profile": "bad", "subject": "CN=r1", "retry-interval": 3600}}]}`
			if err := f.merge(t, cfg); err != nil {
				t.Fatal(err)
			}
			out, err := f.engine.EnrollCertificate(context.Background(), admin, api.EnrollCertificateInput{Name: "r1", Force: true})
			if err != nil || out.Result != "failed" || !strings.Contains(out.Message, tc.want) {
				t.Fatalf("%+v %v", out, err)
			}
			st := f.enrollState("r1")
			if st.GetLastError() == "" || st.GetEnrollmentStatus() != gen.PkiAuthority_Authority_ClientCertificate_State_EnrollmentStatus_failed {
				t.Errorf("state: %s %q", st.GetEnrollmentStatus(), st.GetLastError())
			}
			if a := f.alarm(alarmEnrollment + "r1"); a == nil || !strings.Contains(a.GetText(), st.GetLastError()) {
				t.Errorf("alarm %v does not carry last-error %q", a, st.GetLastError())
			}
			s, _ := f.store.State()
			ps := s.GetAuthority().GetCaProfile("bad").GetState()
			if want := map[bool]gen.E_PkiAuthority_Authority_CaProfile_State_Status{true: gen.PkiAuthority_Authority_CaProfile_State_Status_down, false: gen.PkiAuthority_Authority_CaProfile_State_Status_up}[tc.down]; ps.GetStatus() != want {
				t.Errorf("CA status %s, want %s (%s)", ps.GetStatus(), want, ps.GetLastError())
			}
			if names, _ := f.keys.Names(); len(names) != 0 {
				t.Errorf("keys left: %v", names)
			}
			if strings.Contains(st.GetLastError(), "insta-s3cret") {
				t.Error("last-error holds the secret")
			}
		})
	}
}

// A subject changed in the configuration is asked for with cr, signed by
// the certificate in force (SR OS cmpv2 cert-request), not kur: the CA
// issues a certificate for the new subject.
func TestEnrollmentSubjectChangeIsACertRequest(t *testing.T) {
	fc := clock.NewFake(t0)
	ca := newSigningCA(t, fc)
	f := newEnrollFixture(t, t.TempDir(), fc, ca)
	if err := f.setTrusted(t, "ca", string(ca.ca.PEM()), "strict"); err != nil {
		t.Fatal(err)
	}
	if err := f.merge(t, enrollConfigJSON); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first enrollment", func() bool { return f.cert("r1").GetStatus() == gen.PkiAuthority_CertificateStatus_valid })
	f.waitIdle(t, "r1")
	first := f.cert("r1")
	if err := f.merge(t, `{"client-certificate": [{"name": "r1", "enrollment": {"subject": "C=NL,O=Lab,CN=r1-new"}}]}`); err != nil {
		t.Fatal(err)
	}
	out, err := f.engine.EnrollCertificate(context.Background(), admin, api.EnrollCertificateInput{Name: "r1", Force: true})
	if err != nil || out.Result == "failed" {
		t.Fatalf("enrollment with a new subject: %+v, %v", out, err)
	}
	req := ca.last()
	sig, ok := req.Protection.(cmp.Signature)
	if req.Kind != cmp.CR || !ok || sig.Cert.SerialNumber.Text(16) != first.GetSerial() || req.Subject.CommonName != "r1-new" {
		t.Fatalf("request after the subject changed: kind %v, protection %T, subject %v", req.Kind, req.Protection, req.Subject)
	}
	if got := f.cert("r1").GetSubject(); !strings.Contains(got, "CN=r1-new") {
		t.Fatalf("certificate in force after the cr: subject %q", got)
	}
	// The same subject again: a renewal is a kur.
	if _, err := f.engine.EnrollCertificate(context.Background(), admin, api.EnrollCertificateInput{Name: "r1", Force: true}); err != nil {
		t.Fatal(err)
	}
	if req := ca.last(); req.Kind != cmp.KUR {
		t.Fatalf("renewal with the subject unchanged: kind %v, want kur", req.Kind)
	}
}
