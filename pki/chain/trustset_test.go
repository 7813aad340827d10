package chain

import (
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

func TestTrustSet(t *testing.T) {
	g := testpki.New(now)
	corp := testpki.Must(g.Hierarchy(2))
	lab := testpki.Must(g.Hierarchy(2))
	set, err := NewTrustSet(map[string][]*x509.Certificate{
		"a-lab":  {lab[0].Cert},
		"b-corp": {corp[0].Cert, corp[1].Cert}, // the intermediate travels in the bundle
		"empty":  nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	leaf := testpki.Must(g.Issue(corp[1], testpki.Options{CN: "r1"}))
	path, name, err := set.Verify(leaf.Cert, nil, now)
	if err != nil || name != "b-corp" || len(path) != 3 {
		t.Fatalf("verify: %v, %q, %d certificates", err, name, len(path))
	}
	// The specific failure (expired, under b-corp) beats "unknown issuer"
	// from a-lab, tried first.
	old := testpki.Must(g.Issue(corp[1], testpki.Options{CN: "r1", NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)}))
	if _, _, err := set.Verify(old.Cert, nil, now); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired leaf: %v", err)
	}
	stranger := testpki.Must(g.Issue(testpki.Must(g.Hierarchy(1))[0], testpki.Options{CN: "r2"}))
	if _, _, err := set.Verify(stranger.Cert, nil, now); !errors.Is(err, ErrUnknownIssuer) {
		t.Fatalf("unknown issuer: %v", err)
	}
	var none *TrustSet
	if _, _, err := none.Verify(leaf.Cert, nil, now); !errors.Is(err, ErrNoTrust) {
		t.Fatalf("no trust: %v", err)
	}
}
