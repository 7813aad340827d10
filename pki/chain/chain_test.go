package chain

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pkiagent/pkiagent/internal/pemx"
	"github.com/pkiagent/pkiagent/internal/testpki"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

var criticalExt = pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 7}, Critical: true, Value: []byte{5, 0}}

func certsOf(cs []*testpki.Cert) []*x509.Certificate {
	out := make([]*x509.Certificate, len(cs))
	for i, c := range cs {
		out[i] = c.Cert
	}
	return out
}

func shuffled(cs []*x509.Certificate) []*x509.Certificate {
	out := append([]*x509.Certificate(nil), cs...)
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func sentinels(ps []Problem) []error {
	var out []error
	for _, p := range ps {
		out = append(out, p.Err)
	}
	return out
}

var cmpErrs = cmp.Comparer(func(a, b error) bool { return a == b })

func TestBundleTiers(t *testing.T) {
	g := testpki.New(now)
	for tiers := 1; tiers <= MaxTiers+1; tiers++ {
		cas := testpki.Must(g.Hierarchy(tiers))
		var want []error
		if tiers > MaxTiers {
			want = []error{ErrTooDeep}
		}
		t.Run(fmt.Sprintf("%d tiers", tiers), func(t *testing.T) {
			b, err := ParseBundle(testpki.PEM(shuffledCerts(cas)...), now)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, sentinels(b.Problems), cmpErrs); diff != "" {
				t.Errorf("problems (-want +got):\n%s\n%v", diff, b.Err())
			}
			if b.Tiers != tiers || len(b.Roots) != 1 || len(b.Intermediates) != tiers-1 {
				t.Errorf("tiers=%d roots=%d intermediates=%d, want %d/1/%d", b.Tiers, len(b.Roots), len(b.Intermediates), tiers, tiers-1)
			}
			if tiers > MaxTiers {
				if !errors.Is(b.Err(), ErrTooDeep) || !strings.Contains(b.Err().Error(), "the limit is 8") {
					t.Errorf("Err() = %v, want a clear too-deep error", b.Err())
				}
			} else if b.Err() != nil {
				t.Errorf("Err() = %v, want nil", b.Err())
			}
		})
	}
}

func shuffledCerts(cs []*testpki.Cert) []*testpki.Cert {
	out := append([]*testpki.Cert(nil), cs...)
	r := rand.New(rand.NewPCG(3, 4))
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func TestBundleProblems(t *testing.T) {
	g := testpki.New(now)
	cas := testpki.Must(g.Hierarchy(3))
	root := cas[0]
	iss := func(o testpki.Options) *testpki.Cert { return testpki.Must(g.Issue(root, o)) }
	year := 365 * 24 * time.Hour
	tests := []struct {
		desc  string
		certs []*x509.Certificate
		want  []error
	}{
		{desc: "good 3 tiers, any order", certs: shuffled(certsOf(cas))},
		{desc: "leaf in bundle", certs: []*x509.Certificate{root.Cert, iss(testpki.Options{}).Cert}, want: []error{ErrNotCA}},
		{desc: "CA without keyCertSign", certs: []*x509.Certificate{root.Cert, iss(testpki.Options{IsCA: true, KeyUsage: x509.KeyUsageCRLSign}).Cert}, want: []error{ErrNoCertSign}},
		{desc: "CA without a key usage extension (openssl req -x509) may sign anything", certs: []*x509.Certificate{root.Cert, iss(testpki.Options{IsCA: true, NoKeyUsage: true}).Cert}},
		{desc: "expired intermediate", certs: []*x509.Certificate{root.Cert, iss(testpki.Options{IsCA: true, NotBefore: now.Add(-2 * year), NotAfter: now.Add(-time.Second)}).Cert}, want: []error{ErrExpired}},
		{desc: "not-yet-valid intermediate", certs: []*x509.Certificate{root.Cert, iss(testpki.Options{IsCA: true, NotBefore: now.Add(time.Hour)}).Cert}, want: []error{ErrNotYetValid}},
		{desc: "absurd dates: valid from year 9999", certs: []*x509.Certificate{root.Cert, iss(testpki.Options{IsCA: true, NotBefore: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)}).Cert}, want: []error{ErrNotYetValid}},
		{desc: "absurd dates: valid until year 1", certs: []*x509.Certificate{root.Cert, iss(testpki.Options{IsCA: true, NotBefore: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC)}).Cert}, want: []error{ErrExpired}},
		{desc: "absurd dates: year 1 to 9999 is valid", certs: []*x509.Certificate{root.Cert, iss(testpki.Options{IsCA: true, NotBefore: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)}).Cert}},
		{desc: "missing middle tier", certs: []*x509.Certificate{cas[0].Cert, cas[2].Cert}, want: []error{ErrUnknownIssuer}},
		{desc: "duplicate root", certs: []*x509.Certificate{root.Cert, root.Cert}, want: []error{ErrDuplicate}},
		{desc: "critical unknown extension", certs: []*x509.Certificate{root.Cert, iss(testpki.Options{IsCA: true, ExtraExtensions: []pkix.Extension{criticalExt}}).Cert}, want: []error{ErrCriticalExtension}},
		{desc: "empty", certs: nil, want: []error{ErrEmpty}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			b := CheckBundle(tc.certs, now)
			if diff := cmp.Diff(tc.want, sentinels(b.Problems), cmpErrs); diff != "" {
				t.Errorf("problems (-want +got):\n%s\nerr: %v", diff, b.Err())
			}
			for _, w := range tc.want {
				if !errors.Is(b.Err(), w) {
					t.Errorf("Err() = %v does not match %v", b.Err(), w)
				}
			}
			if len(b.Warnings()) != len(tc.want) {
				t.Errorf("Warnings() = %q", b.Warnings())
			}
		})
	}
}

func TestParseBundleErrors(t *testing.T) {
	tests := []struct {
		desc string
		in   string
		want error
	}{
		{desc: "empty", in: "", want: pemx.ErrEmpty},
		{desc: "truncated", in: "-----BEGIN CERTIFICATE-----\nMIIB\n", want: pemx.ErrTruncated},
		{desc: "not a certificate", in: "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n", want: pemx.ErrCertificate},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := ParseBundle([]byte(tc.in), now)
			if !errors.Is(err, tc.want) || !strings.HasPrefix(err.Error(), "trusted CA bundle: ") {
				t.Errorf("error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestInfo(t *testing.T) {
	g := testpki.New(now)
	root := testpki.Must(g.Root(testpki.Options{CN: "Root"}))
	c := testpki.Must(g.Issue(root, testpki.Options{CN: "r1", CRLDistributionPoints: []string{"http://crl.example/root.crl"}}))
	got := Info(c.Cert)
	want := CertInfo{
		Subject:               "CN=r1,O=pki-agent tests",
		Issuer:                "CN=Root,O=pki-agent tests",
		Serial:                c.Cert.SerialNumber.Text(16),
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		FingerprintSHA256:     Fingerprint(c.Cert),
		CRLDistributionPoints: []string{"http://crl.example/root.crl"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Info (-want +got):\n%s", diff)
	}
	if len(got.FingerprintSHA256) != 64 || strings.ToLower(got.FingerprintSHA256) != got.FingerprintSHA256 {
		t.Errorf("fingerprint %q is not 64 lowercase hex digits", got.FingerprintSHA256)
	}
}
