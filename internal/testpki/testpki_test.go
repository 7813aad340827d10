package testpki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func TestHierarchyVerifies(t *testing.T) {
	g := New(now)
	for _, tiers := range []int{1, 3, 8} {
		cas := Must(g.Hierarchy(tiers))
		leaf := Must(g.Issue(cas[len(cas)-1], Options{CN: "r1.example", DNSNames: []string{"r1.example"}}))
		inter := x509.NewCertPool()
		for _, c := range cas[1:] {
			inter.AddCert(c.Cert)
		}
		chains, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: Pool(cas[0]), Intermediates: inter, CurrentTime: now, DNSName: "r1.example"})
		if err != nil {
			t.Fatalf("%d tiers: verify: %v", tiers, err)
		}
		if got, want := len(chains[0]), tiers+1; got != want {
			t.Errorf("%d tiers: chain length %d, want %d", tiers, got, want)
		}
	}
}

func TestKeyTypesAndOptions(t *testing.T) {
	g := New(now)
	root := Must(g.Root(Options{}))
	tests := []struct {
		desc string
		opts Options
		want func(*x509.Certificate) []any
		exp  []any
	}{
		{
			desc: "defaults",
			opts: Options{},
			want: func(c *x509.Certificate) []any {
				return []any{c.PublicKeyAlgorithm, c.KeyUsage, c.ExtKeyUsage, c.IsCA, c.NotBefore, c.NotAfter}
			},
			exp: []any{x509.ECDSA, x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, false, now.Add(-time.Hour), now.Add(365 * 24 * time.Hour)},
		},
		{
			desc: "rsa, serial, CDP, no EKU",
			opts: Options{KeyType: RSA2048, Serial: big.NewInt(77), CRLDistributionPoints: []string{"http://crl.example/ca.crl"}, NoExtKeyUsage: true},
			want: func(c *x509.Certificate) []any {
				return []any{c.PublicKeyAlgorithm, c.SerialNumber.Int64(), c.CRLDistributionPoints, len(c.ExtKeyUsage)}
			},
			exp: []any{x509.RSA, int64(77), []string{"http://crl.example/ca.crl"}, 0},
		},
		{
			desc: "critical unknown extension kept",
			opts: Options{ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Critical: true, Value: []byte{5, 0}}}},
			want: func(c *x509.Certificate) []any { return []any{len(c.UnhandledCriticalExtensions)} },
			exp:  []any{1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			c := Must(g.Issue(root, tc.opts))
			if diff := cmp.Diff(tc.exp, tc.want(c.Cert)); diff != "" {
				t.Errorf("certificate fields (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCRL(t *testing.T) {
	g := New(now)
	root := Must(g.Root(Options{}))
	der := Must(g.CRL(root, []*big.Int{big.NewInt(5), big.NewInt(9)}, now, now.Add(24*time.Hour), 3))
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(root.Cert); err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, e := range crl.RevokedCertificateEntries {
		got = append(got, e.SerialNumber.Int64())
	}
	if diff := cmp.Diff([]int64{5, 9}, got); diff != "" {
		t.Errorf("revoked serials (-want +got):\n%s", diff)
	}
	if crl.Number.Int64() != 3 || !crl.ThisUpdate.Equal(now) || !crl.NextUpdate.Equal(now.Add(24*time.Hour)) {
		t.Errorf("CRL number/dates = %v %v %v", crl.Number, crl.ThisUpdate, crl.NextUpdate)
	}
}
