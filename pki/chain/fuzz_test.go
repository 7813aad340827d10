package chain

import (
	"errors"
	"testing"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

// FuzzParseBundle feeds arbitrary content to the trusted CA bundle parser:
// it must never crash, and every result must be internally consistent.
func FuzzParseBundle(f *testing.F) {
	g := testpki.New(now)
	cas := testpki.Must(g.Hierarchy(3))
	leaf := testpki.Must(g.Issue(cas[2], testpki.Options{}))
	f.Add(testpki.PEM(cas...))
	f.Add(testpki.PEM(cas[2], cas[0]))
	f.Add(testpki.PEM(leaf, cas[1]))
	f.Add(testpki.PEM(cas[0], cas[0]))
	f.Add(cas[0].Cert.Raw)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBundle(data, now)
		if err != nil {
			if b != nil {
				t.Fatal("bundle and error both returned")
			}
			return
		}
		if len(b.Info) != len(b.Certs) || len(b.Roots)+len(b.Intermediates) != len(b.Certs) {
			t.Fatalf("inconsistent bundle: %d certs, %d infos, %d roots, %d intermediates", len(b.Certs), len(b.Info), len(b.Roots), len(b.Intermediates))
		}
		if (len(b.Problems) == 0) != (b.Err() == nil) {
			t.Fatalf("%d problems but Err() = %v", len(b.Problems), b.Err())
		}
		for _, p := range b.Problems {
			if errors.Unwrap(p) == nil || p.Index < 0 || p.Index > len(b.Certs) {
				t.Fatalf("malformed problem %+v", p)
			}
		}
		if b.Tiers > len(b.Certs) {
			t.Fatalf("%d tiers from %d certificates", b.Tiers, len(b.Certs))
		}
		// Whatever parsed must also go through a verifier without panicking.
		if len(b.Roots) > 0 {
			v, err := NewVerifier(b.Roots, b.Intermediates)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range b.Certs {
				_, _ = v.Verify(c, nil, now, nil)
			}
		}
	})
}
