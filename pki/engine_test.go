package pki

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/internal/testpki"
	"github.com/pkiagent/pkiagent/pki/keystore/file"
	"github.com/pkiagent/pkiagent/telemetry"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

type fixture struct {
	store  *agent.Store
	engine *Engine
	clock  *clock.Fake
	keys   *file.Store
	dir    string
	gen    *testpki.Generator
	sub    *telemetry.Subscription
	close  func() // the store and the audit log, as at process exit
}

func newFixture(t *testing.T, opts ...func(*Config)) *fixture {
	t.Helper()
	return newFixtureIn(t, t.TempDir(), clock.NewFake(t0), opts...)
}

// newFixtureIn builds an engine on dir (which may hold an earlier run's
// state) and clock.
func newFixtureIn(t *testing.T, dir string, fc *clock.Fake, opts ...func(*Config)) *fixture {
	t.Helper()
	bus := telemetry.NewBus()
	store, d, err := agent.OpenStore(filepath.Join(dir, "state"), agent.Config{Clock: fc, Bus: bus})
	if err != nil {
		t.Fatal(err)
	}
	al, err := audit.Open(filepath.Join(dir, "audit.log"), "r1")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := file.New(filepath.Join(dir, "keys"), nil)
	if err != nil {
		t.Fatal(err)
	}
	sub := bus.Subscribe(10000)
	cfg := Config{StateDir: dir, Clock: fc, Bus: bus, Audit: al, Keys: map[string]KeyStore{"file": keys}}
	for _, o := range opts {
		o(&cfg)
	}
	e, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	store.AddValidator(e)
	store.AddApplier(e)
	store.AddStateSource(e)
	var once sync.Once
	closeAll := func() { once.Do(func() { store.Close(); d.Close(); al.Close() }) }
	t.Cleanup(closeAll)
	return &fixture{store: store, engine: e, clock: fc, keys: keys, dir: dir, gen: testpki.New(t0), sub: sub, close: closeAll}
}

func (f *fixture) setTrusted(t *testing.T, name, content, mode string) error {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"content": content, "validation-mode": mode})
	tx := f.store.Begin(agent.Running)
	if err := tx.Apply(agent.Edit{Op: agent.OpMerge, Path: &gnmi.Path{Elem: []*gnmi.PathElem{{Name: "authority"}, {Name: "trusted-ca-certificate", Key: map[string]string{"name": name}}}},
		Value: &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: b}}}); err != nil {
		return err
	}
	_, err := f.store.Commit(context.Background(), tx, agent.CommitOptions{User: "admin"})
	return err
}

func (f *fixture) alarm(id string) *gen.PkiAuthority_Alarms_Alarm {
	st, _ := f.store.State()
	return st.GetAlarms().GetAlarm(id)
}

var admin = api.Caller{User: "admin", Role: api.RoleAdmin}

func TestTrustedCAStrictAndWarn(t *testing.T) {
	f := newFixture(t)
	h := testpki.Must(f.gen.Hierarchy(3))
	good := string(testpki.PEM(h...))
	if err := f.setTrusted(t, "corp", good, "strict"); err != nil {
		t.Fatal(err)
	}
	st, _ := f.store.State()
	ca := st.GetAuthority().GetTrustedCaCertificate("corp").GetState()
	if ca.GetStatus() != gen.PkiAuthority_Authority_TrustedCaCertificate_State_Status_valid || len(ca.Certificate) != 3 {
		t.Fatalf("state: %v, %d certs", ca.GetStatus(), len(ca.Certificate))
	}
	// An expired CA fails a strict commit with the reason ...
	expired := testpki.Must(f.gen.Root(testpki.Options{CN: "Old Root", NotBefore: t0.AddDate(-3, 0, 0), NotAfter: t0.AddDate(0, 0, -1)}))
	err := f.setTrusted(t, "old", string(testpki.PEM(expired)), "strict")
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "trusted-ca-certificate[name=old]/content") || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("err = %v", err)
	}
	if f.store.Running().GetAuthority().GetTrustedCaCertificate("old") != nil {
		t.Fatal("strict failure committed")
	}
	// ... and commits in warn mode, with warnings in state and an alarm.
	if err := f.setTrusted(t, "old", string(testpki.PEM(expired)), "warn"); err != nil {
		t.Fatal(err)
	}
	st, _ = f.store.State()
	ws := st.GetAuthority().GetTrustedCaCertificate("old").GetState()
	if ws.GetStatus() != gen.PkiAuthority_Authority_TrustedCaCertificate_State_Status_warning || len(ws.Warning) == 0 {
		t.Fatalf("warn state: %v %v", ws.GetStatus(), ws.Warning)
	}
	if a := f.alarm("trusted-ca:old"); a == nil || a.GetCategory() != gen.PkiAuthority_AlarmCategory_trusted_ca_warning {
		t.Fatalf("alarm: %v", a)
	}
	// Garbage is refused whatever the mode.
	if err := f.setTrusted(t, "junk", "not a certificate", "warn"); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
}

// TestTrustedCAVerdictFollowsTheClock: the check of a trusted CA bundle
// depends on the time, not only on its bytes. A CA refused in strict mode
// as not yet valid is accepted once it is; a CA that expires after its
// commit is no longer shown as valid.
func TestTrustedCAVerdictFollowsTheClock(t *testing.T) {
	f := newFixture(t)
	future := testpki.Must(f.gen.Root(testpki.Options{CN: "Future Root", NotBefore: t0.Add(time.Hour), NotAfter: t0.AddDate(5, 0, 0)}))
	if err := f.setTrusted(t, "future", string(testpki.PEM(future)), "strict"); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("not yet valid CA in strict mode: %v", err)
	}
	f.clock.Set(t0.Add(2 * time.Hour))
	if err := f.setTrusted(t, "future", string(testpki.PEM(future)), "strict"); err != nil {
		t.Fatalf("the same CA, now valid, is still refused: %v", err)
	}

	short := testpki.Must(f.gen.Root(testpki.Options{CN: "Short Root", NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(3 * time.Hour)}))
	if err := f.setTrusted(t, "short", string(testpki.PEM(short)), "strict"); err != nil {
		t.Fatal(err)
	}
	status := func() gen.E_PkiAuthority_Authority_TrustedCaCertificate_State_Status {
		st, _ := f.store.State()
		return st.GetAuthority().GetTrustedCaCertificate("short").GetState().GetStatus()
	}
	if got := status(); got != gen.PkiAuthority_Authority_TrustedCaCertificate_State_Status_valid {
		t.Fatalf("status before expiry = %v", got)
	}
	f.clock.Set(t0.Add(4 * time.Hour))
	f.engine.Evaluate()
	if got := status(); got != gen.PkiAuthority_Authority_TrustedCaCertificate_State_Status_invalid {
		t.Fatalf("status after the CA expired = %v, want invalid", got)
	}
	// And a strict commit of the same bytes is now refused.
	if err := f.setTrusted(t, "short2", string(testpki.PEM(short)), "strict"); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("expired CA accepted in strict mode: %v", err)
	}
}

// provision runs key -> CSR -> CA signs -> import and returns the leaf.
func provision(t *testing.T, f *fixture, issuer *testpki.Cert, name string, notAfter time.Time) (*testpki.Cert, error) {
	t.Helper()
	ctx := context.Background()
	if _, err := f.engine.GeneratePrivateKey(ctx, admin, api.GenerateKeyInput{Name: name, Algorithm: "ecc", ECCCurve: "secp256r1", KeyStorage: "file"}); err != nil {
		t.Fatal(err)
	}
	out, err := f.engine.GenerateCSR(ctx, admin, api.GenerateCSRInput{Name: name, CommonName: name + ".example", SubjectAltName: &api.SubjectAltName{DNS: []string{name + ".example"}, IP: []string{"192.0.2.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.CSR, "BEGIN CERTIFICATE REQUEST") {
		t.Fatalf("csr: %q", out.CSR)
	}
	key, _ := f.keys.Signer(ctx, name)
	leaf := testpki.Must(f.gen.Issue(issuer, testpki.Options{CN: name + ".example", Key: key, NotBefore: t0.Add(-time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}))
	_, err = f.engine.ImportCertificate(ctx, admin, api.ImportCertificateInput{Name: name, Certificate: string(testpki.PEM(leaf, issuer))})
	return leaf, err
}

func TestProvisionAndExpiryAlarms(t *testing.T) {
	f := newFixture(t)
	h := testpki.Must(f.gen.Hierarchy(2))
	if err := f.setTrusted(t, "corp", string(testpki.PEM(h[0])), "strict"); err != nil {
		t.Fatal(err)
	}
	leaf, err := provision(t, f, h[1], "router", t0.AddDate(0, 0, 40))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.store.State()
	c := st.GetCertificates().GetCertificate("router")
	if c.GetStatus() != gen.PkiAuthority_CertificateStatus_valid || c.GetSubject() == "" || c.GetKeyAlgorithm() != "ecc-secp256r1" {
		t.Fatalf("state: %+v", c)
	}
	if got := st.GetStats().GetSecurity().GetCertificateImport().GetSuccess(); got != 1 {
		t.Fatalf("import success = %d", got)
	}
	_ = leaf
	// Walk the clock across the 30/7/0-day boundaries.
	steps := []struct {
		at       time.Duration
		severity gen.E_PkiAuthority_Severity
		status   gen.E_PkiAuthority_CertificateStatus
	}{
		{11 * 24 * time.Hour, gen.PkiAuthority_Severity_minor, gen.PkiAuthority_CertificateStatus_expiring_within_month},
		{12 * 24 * time.Hour, gen.PkiAuthority_Severity_minor, gen.PkiAuthority_CertificateStatus_expiring_within_month},
		{34 * 24 * time.Hour, gen.PkiAuthority_Severity_major, gen.PkiAuthority_CertificateStatus_expiring_within_week},
		{41 * 24 * time.Hour, gen.PkiAuthority_Severity_critical, gen.PkiAuthority_CertificateStatus_expired},
		{42 * 24 * time.Hour, gen.PkiAuthority_Severity_critical, gen.PkiAuthority_CertificateStatus_expired},
	}
	for _, s := range steps {
		f.clock.Set(t0.Add(s.at))
		f.engine.Evaluate()
		a := f.alarm("certificate:router")
		st, _ := f.store.State()
		if a == nil || a.GetSeverity() != s.severity || st.GetCertificates().GetCertificate("router").GetStatus() != s.status {
			t.Fatalf("at +%v: alarm %v, status %v", s.at, a, st.GetCertificates().GetCertificate("router").GetStatus())
		}
	}
	// Each transition is notified once: raised minor, major, critical.
	var actions []string
	for len(f.sub.C) > 0 {
		ev := <-f.sub.C
		if ev.Kind == api.EventNotification && ev.Notification.Name == "alarm-notification" {
			var id, sev, action string
			for _, l := range ev.Notification.Leaves {
				switch l.Name {
				case "id":
					id = l.Value.(string)
				case "severity":
					sev = l.Value.(string)
				case "action":
					action = l.Value.(string)
				}
			}
			if id == "certificate:router" {
				actions = append(actions, action+" "+sev)
			}
		}
	}
	if got := strings.Join(actions, ","); got != "raised minor,raised major,raised critical" {
		t.Fatalf("notifications: %s", got)
	}
	if st, _ := f.store.State(); st.GetStats().GetSecurity().GetCertificate().GetExpired() != 1 {
		t.Fatal("expired counter")
	}
	// Audit log has the CSR and the import.
	b, _ := os.ReadFile(filepath.Join(f.dir, "audit.log"))
	if !strings.Contains(string(b), `"type":"system.generate_csr"`) || !strings.Contains(string(b), `"type":"system.ingest_certificate"`) {
		t.Fatalf("audit: %s", b)
	}
}

// TestAuditDetailAsSSR: generate_csr logs the subject fields given and the
// validity period, ingest_certificate the purpose (extended key usages),
// as the SSR's audit events do.
func TestAuditDetailAsSSR(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	h := testpki.Must(f.gen.Hierarchy(2))
	if err := f.setTrusted(t, "corp", string(testpki.PEM(h[0])), "strict"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.engine.GeneratePrivateKey(ctx, admin, api.GenerateKeyInput{Name: "r", Algorithm: "ecc", ECCCurve: "secp256r1", KeyStorage: "file"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.engine.GenerateCSR(ctx, admin, api.GenerateCSRInput{Name: "r", CommonName: "r.example", CountryName: "US",
		OrganizationName: "ExampleOrg", EmailAddress: "admin@example.com", ValidityPeriod: 365}); err != nil {
		t.Fatal(err)
	}
	key, _ := f.keys.Signer(ctx, "r")
	leaf := testpki.Must(f.gen.Issue(h[1], testpki.Options{CN: "r.example", Key: key, NotBefore: t0.Add(-time.Hour), NotAfter: t0.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}))
	if _, err := f.engine.ImportCertificate(ctx, admin, api.ImportCertificateInput{Name: "r", Certificate: string(testpki.PEM(leaf, h[1]))}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(f.dir, "audit.log"))
	details := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var ev struct {
			Type   string         `json:"type"`
			Detail map[string]any `json:"detail"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		details[ev.Type] = ev.Detail
	}
	csrD := details["system.generate_csr"]
	for k, want := range map[string]any{"name": "r", "common_name": "r.example", "country_name": "US", "organization_name": "ExampleOrg",
		"email_address": "admin@example.com", "validity_period_days": float64(365), "success": true} {
		if csrD[k] != want {
			t.Errorf("generate_csr detail %s = %v, want %v (detail %v)", k, csrD[k], want, csrD)
		}
	}
	if _, ok := csrD["locality_name"]; ok {
		t.Errorf("generate_csr detail has a locality_name that was not given: %v", csrD)
	}
	if got := details["system.ingest_certificate"]["purpose"]; got != "TLS Web Client Authentication" {
		t.Errorf("ingest_certificate purpose = %v", got)
	}
}

func TestImportRefusals(t *testing.T) {
	f := newFixture(t)
	h := testpki.Must(f.gen.Hierarchy(2))
	if err := f.setTrusted(t, "corp", string(testpki.PEM(h[0])), "strict"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := f.engine.GeneratePrivateKey(ctx, admin, api.GenerateKeyInput{Name: "r", Algorithm: "ecc", ECCCurve: "secp256r1", KeyStorage: "file"}); err != nil {
		t.Fatal(err)
	}
	other := testpki.Must(f.gen.Issue(h[1], testpki.Options{CN: "r", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}))
	keyPEM := string(other.KeyPEM())
	for _, tc := range []struct {
		desc, pem, want string
	}{
		{"key appended", string(testpki.PEM(other)) + keyPEM, "private key"},
		{"mismatched key", string(testpki.PEM(other, h[1])), "match"},
		{"garbage", "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n", "base64"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := f.engine.ImportCertificate(ctx, admin, api.ImportCertificateInput{Name: "r", Certificate: tc.pem})
			if !errors.Is(err, api.ErrInvalid) || !strings.Contains(strings.ToLower(err.Error()), tc.want) {
				t.Fatalf("err = %v", err)
			}
			body := strings.Split(keyPEM, "\n")[1]
			if strings.Contains(err.Error(), body[:20]) {
				t.Fatal("key material echoed")
			}
		})
	}
	st, _ := f.store.State()
	if st.GetStats().GetSecurity().GetCertificateImport().GetFailure() != 3 {
		t.Fatal("failure counter")
	}
}

func TestClientCertificateMissingAlarm(t *testing.T) {
	f := newFixture(t)
	tx := f.store.Begin(agent.Running)
	if err := tx.Apply(agent.Edit{Op: agent.OpMerge, Path: &gnmi.Path{Elem: []*gnmi.PathElem{{Name: "authority"}, {Name: "client-certificate", Key: map[string]string{"name": "gnmi-server"}}}},
		Value: &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: []byte(`{}`)}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Commit(context.Background(), tx, agent.CommitOptions{User: "admin"}); err != nil {
		t.Fatal(err)
	}
	if a := f.alarm("certificate-missing:gnmi-server"); a == nil || a.GetCategory() != gen.PkiAuthority_AlarmCategory_certificate_missing {
		t.Fatalf("alarm %v", a)
	}
	// It is listed under /certificates as no-certificate, before any key.
	st, _ := f.store.State()
	if c := st.GetCertificates().GetCertificate("gnmi-server"); c == nil || c.GetStatus() != gen.PkiAuthority_CertificateStatus_no_certificate {
		t.Fatalf("/certificates/certificate[name=gnmi-server] = %+v", c)
	}
	// Through the generic dispatch, a viewer may not run rpcs.
	_, err := agent.InvokeRPC(context.Background(), f.engine, api.Caller{User: "v", Role: api.RoleViewer}, "generate-private-key", []byte(`{"name":"x"}`))
	if !errors.Is(err, agent.ErrAccessDenied) {
		t.Fatalf("err = %v", err)
	}
	out, err := agent.InvokeRPC(context.Background(), f.engine, admin, "generate-private-key", []byte(`{"name":"gnmi-server"}`))
	if err != nil || !strings.Contains(string(out), "ecc-secp256r1") {
		t.Fatalf("%s %v", out, err)
	}
	_ = fmt.Sprint
}

// A managed certificate whose trusted CA is removed turns invalid with a
// critical certificate-invalid alarm; trusting the CA again clears it.
func TestCertificateInvalidWhenItsCAIsNoLongerTrusted(t *testing.T) {
	f := newFixture(t)
	h := testpki.Must(f.gen.Hierarchy(2))
	if err := f.setTrusted(t, "corp", string(testpki.PEM(h[0])), "strict"); err != nil {
		t.Fatal(err)
	}
	if _, err := provision(t, f, h[1], "router", t0.AddDate(1, 0, 0)); err != nil {
		t.Fatal(err)
	}
	status := func() gen.E_PkiAuthority_CertificateStatus {
		st, _ := f.store.State()
		return st.GetCertificates().GetCertificate("router").GetStatus()
	}
	if status() != gen.PkiAuthority_CertificateStatus_valid {
		t.Fatalf("status %v", status())
	}
	tx := f.store.Begin(agent.Running)
	if err := tx.Apply(agent.Edit{Op: agent.OpDelete, Path: &gnmi.Path{Elem: []*gnmi.PathElem{{Name: "authority"}, {Name: "trusted-ca-certificate", Key: map[string]string{"name": "corp"}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Commit(context.Background(), tx, agent.CommitOptions{User: "admin"}); err != nil {
		t.Fatal(err)
	}
	a := f.alarm("certificate:router")
	if status() != gen.PkiAuthority_CertificateStatus_invalid || a == nil || a.GetCategory() != gen.PkiAuthority_AlarmCategory_certificate_invalid || a.GetSeverity() != gen.PkiAuthority_Severity_critical {
		t.Fatalf("after removing the CA: status %v, alarm %v", status(), a)
	}
	if err := f.setTrusted(t, "corp", string(testpki.PEM(h[0])), "strict"); err != nil {
		t.Fatal(err)
	}
	if status() != gen.PkiAuthority_CertificateStatus_valid || f.alarm("certificate:router") != nil {
		t.Fatalf("after trusting the CA again: status %v, alarm %v", status(), f.alarm("certificate:router"))
	}
	if st, _ := f.store.State(); st.GetStats().GetSecurity().GetCertificate().GetInvalid() != 1 {
		t.Fatalf("certificate invalid counter %d", st.GetStats().GetSecurity().GetCertificate().GetInvalid())
	}
}

// TestRPCInputErrorsNameTheLeaf: an rpc input the engine refuses comes
// back as an *api.InputError naming the leaf, so NETCONF's error-path is
// that leaf: a csr.FieldError's field, the name refused by the one
// object-name rule, the key spec's leaf.
func TestRPCInputErrorsNameTheLeaf(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.engine.GeneratePrivateKey(ctx, admin, api.GenerateKeyInput{Name: "r", Algorithm: "ecc", ECCCurve: "secp256r1", KeyStorage: "file"}); err != nil {
		t.Fatal(err)
	}
	check := func(desc string, err error, rpc, leaf string) {
		t.Helper()
		ie, ok := errors.AsType[*api.InputError](err)
		if !ok || ie.RPC != rpc || ie.Leaf != leaf || !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%s: %v (%#v), want an invalid input error at %s/%s", desc, err, ie, rpc, leaf)
		}
	}
	_, err := f.engine.GenerateCSR(ctx, admin, api.GenerateCSRInput{Name: "r", CommonName: "r.example", CountryName: "USA", ValidityPeriod: 365})
	check("country-name USA", err, "generate-csr", "country-name")
	_, err = f.engine.GenerateCSR(ctx, admin, api.GenerateCSRInput{Name: "r", CommonName: "r.example", ValidityPeriod: 365,
		SubjectAltName: &api.SubjectAltName{URI: []string{"not-a-uri"}}})
	check("uri not-a-uri", err, "generate-csr", "subject-alt-name")
	_, err = f.engine.GeneratePrivateKey(ctx, admin, api.GenerateKeyInput{Name: "..", Algorithm: "ecc", ECCCurve: "secp256r1", KeyStorage: "file"})
	check("name ..", err, "generate-private-key", "name")
	_, err = f.engine.GeneratePrivateKey(ctx, admin, api.GenerateKeyInput{Name: "k", Algorithm: "rsa", RSAKeySize: 1000, KeyStorage: "file"})
	check("rsa-key-size 1000", err, "generate-private-key", "rsa-key-size")
}
