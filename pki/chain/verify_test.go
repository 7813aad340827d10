package chain

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

func verifierFor(t testing.TB, cas []*testpki.Cert) *Verifier {
	t.Helper()
	v, err := NewVerifier([]*x509.Certificate{cas[0].Cert}, certsOf(cas[1:]))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifyTiers(t *testing.T) {
	g := testpki.New(now)
	for tiers := 1; tiers <= MaxTiers+1; tiers++ {
		t.Run(fmt.Sprintf("%d tiers", tiers), func(t *testing.T) {
			cas := testpki.Must(g.Hierarchy(tiers))
			leaf := testpki.Must(g.Issue(cas[tiers-1], testpki.Options{CN: "r1"}))
			path, err := verifierFor(t, cas).Verify(leaf.Cert, nil, now, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
			if tiers > MaxTiers {
				if !errors.Is(err, ErrTooDeep) {
					t.Fatalf("error = %v, want ErrTooDeep", err)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(path) != tiers+1 || path[0] != leaf.Cert || path[tiers] != cas[0].Cert {
				t.Errorf("path has %d certificates, want leaf..root of %d", len(path), tiers+1)
			}
		})
	}
}

func TestVerifyRefusals(t *testing.T) {
	g := testpki.New(now)
	cas := testpki.Must(g.Hierarchy(2))
	root, inter := cas[0], cas[1]
	other := testpki.Must(g.Hierarchy(2))
	year := 365 * 24 * time.Hour
	leafOf := func(parent *testpki.Cert, o testpki.Options) *x509.Certificate {
		return testpki.Must(g.Issue(parent, o)).Cert
	}
	expiredInter := testpki.Must(g.Issue(root, testpki.Options{CN: "old inter", IsCA: true, NotBefore: now.Add(-2 * year), NotAfter: now.Add(-time.Hour)}))
	noSignInter := testpki.Must(g.Issue(root, testpki.Options{CN: "no sign", IsCA: true, KeyUsage: x509.KeyUsageDigitalSignature}))
	critInter := testpki.Must(g.Issue(root, testpki.Options{CN: "crit", IsCA: true, ExtraExtensions: []pkix.Extension{criticalExt}}))
	notCAInter := testpki.Must(g.Issue(root, testpki.Options{CN: "not ca", KeyUsage: x509.KeyUsageCertSign}))
	noKUInter := testpki.Must(g.Issue(root, testpki.Options{CN: "no key usage", IsCA: true, NoKeyUsage: true}))

	tests := []struct {
		desc  string
		leaf  *x509.Certificate
		extra []*x509.Certificate
		want  error
	}{
		{desc: "good", leaf: leafOf(inter, testpki.Options{})},
		{desc: "intermediate sent with the leaf", leaf: leafOf(expiredInter, testpki.Options{NotBefore: now.Add(-3 * year)}), extra: []*x509.Certificate{expiredInter.Cert}, want: ErrExpired},
		{desc: "expired leaf", leaf: leafOf(inter, testpki.Options{NotBefore: now.Add(-2 * year), NotAfter: now.Add(-time.Minute)}), want: ErrExpired},
		{desc: "not-yet-valid leaf", leaf: leafOf(inter, testpki.Options{NotBefore: now.Add(time.Minute)}), want: ErrNotYetValid},
		{desc: "wrong EKU", leaf: leafOf(inter, testpki.Options{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}), want: ErrWrongUsage},
		{desc: "unknown issuer", leaf: leafOf(other[1], testpki.Options{}), want: ErrUnknownIssuer},
		{desc: "self-signed leaf", leaf: testpki.Must(g.SelfSigned(testpki.Options{})).Cert, want: ErrUnknownIssuer},
		{desc: "critical unknown extension on leaf", leaf: leafOf(inter, testpki.Options{ExtraExtensions: []pkix.Extension{criticalExt}}), want: ErrCriticalExtension},
		{desc: "critical unknown extension on intermediate", leaf: leafOf(critInter, testpki.Options{}), extra: []*x509.Certificate{critInter.Cert}, want: ErrCriticalExtension},
		{desc: "intermediate without keyCertSign", leaf: leafOf(noSignInter, testpki.Options{}), extra: []*x509.Certificate{noSignInter.Cert}, want: ErrNoCertSign},
		{desc: "intermediate without a key usage extension", leaf: leafOf(noKUInter, testpki.Options{}), extra: []*x509.Certificate{noKUInter.Cert}},
		{desc: "intermediate not a CA", leaf: leafOf(notCAInter, testpki.Options{}), extra: []*x509.Certificate{notCAInter.Cert}, want: ErrNotCA},
	}
	v := verifierFor(t, cas)
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := v.Verify(tc.leaf, tc.extra, now, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
			if !errors.Is(err, tc.want) {
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
			var ve *VerifyError
			if err != nil && !errors.As(err, &ve) {
				t.Errorf("error %T is not *VerifyError", err)
			}
		})
	}
}

func TestNewVerifierNeedsRoots(t *testing.T) {
	if _, err := NewVerifier(nil, nil); !errors.Is(err, ErrNoRoots) {
		t.Errorf("error = %v, want ErrNoRoots", err)
	}
}

func BenchmarkVerify3Tier(b *testing.B) {
	g := testpki.New(now)
	cas := testpki.Must(g.Hierarchy(2))
	leaf := testpki.Must(g.Issue(cas[1], testpki.Options{}))
	v := verifierFor(b, cas)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(leaf.Cert, nil, now, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseBundle3Tier(b *testing.B) {
	g := testpki.New(now)
	pem := testpki.PEM(testpki.Must(g.Hierarchy(3))...)
	b.ReportAllocs()
	for b.Loop() {
		bd, err := ParseBundle(pem, now)
		if err != nil || bd.Err() != nil {
			b.Fatal(err, bd.Err())
		}
	}
}
