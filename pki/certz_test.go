package pki

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

// TestRecoverRotations: a restart after a certificate was installed by a
// rotation that was never finalized restores the previous key and
// certificate and destroys the rotation's keys.
func TestRecoverRotations(t *testing.T) {
	f := newFixture(t)
	ca := testpki.Must(f.gen.Root(testpki.Options{CN: "recover root"}))
	if err := f.setTrusted(t, "root", string(ca.PEM()), "strict"); err != nil {
		t.Fatal(err)
	}
	certA, err := provision(t, f, ca, "r1", t0.AddDate(0, 6, 0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := f.engine.BeginRotation("r1", admin)
	if err != nil {
		t.Fatal(err)
	}
	csrPEM, err := r.GenerateCSR(ctx, api.GenerateKeyInput{Algorithm: "ecc", ECCCurve: "secp384r1"}, api.GenerateCSRInput{CommonName: "r1.example"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode([]byte(csrPEM))
	req, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	newKey, _ := f.keys.Signer(ctx, "r1"+api.RotateNewSuffix)
	if !newKey.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(req.PublicKey) {
		t.Fatal("the CSR is not signed by the rotation's key")
	}
	certB := testpki.Must(f.gen.Issue(ca, testpki.Options{CN: "r1.example", Key: newKey, NotAfter: t0.AddDate(0, 6, 0)}))
	if _, err := r.Install(ctx, string(certB.PEM())); err != nil {
		t.Fatal(err)
	}
	if tc, err := f.engine.TLSCertificate(ctx, "r1"); err != nil || !tc.Leaf.Equal(certB.Cert) {
		t.Fatalf("installed: %v", err)
	}
	// The process dies here: a new engine over the same directory.
	e2, err := New(ctx, Config{StateDir: f.dir, Clock: f.clock, Keys: map[string]KeyStore{"file": f.keys}, EvaluateEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := e2.RecoverRotations(ctx); err != nil {
		t.Fatal(err)
	}
	tc, err := e2.TLSCertificate(ctx, "r1")
	if err != nil || !tc.Leaf.Equal(certA.Cert) {
		t.Fatalf("after recovery: %v", err)
	}
	names, _ := f.keys.Names()
	for _, n := range names {
		if strings.Contains(n, ".certz-") {
			t.Errorf("rotation key %s left after recovery", n)
		}
	}
	if st := e2.State(); st.GetCertificates().GetCertificate("r1"+api.RotateOldSuffix) != nil {
		t.Error("the set-aside key shows as a certificate")
	}
}
