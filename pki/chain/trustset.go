package chain

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"sort"
	"time"
)

// TrustSet is the set of named trusted CA bundles a certificate may chain
// to: what import-certificate and peer validation both check against.
// Build it once per configuration; it is safe for concurrent use.
type TrustSet struct {
	names     []string
	verifiers []*Verifier
}

// ErrNoTrust: the set holds no bundle, so nothing can chain.
var ErrNoTrust = errors.New("no trusted-ca-certificate is configured")

// NewTrustSet prepares one verifier per non-empty bundle (name ->
// certificates), tried in name order. In each bundle the self-signed
// certificates are the roots and the others intermediates; a bundle without
// a self-signed certificate trusts all its certificates as anchors.
func NewTrustSet(bundles map[string][]*x509.Certificate) (*TrustSet, error) {
	names := make([]string, 0, len(bundles))
	for n, certs := range bundles {
		if len(certs) > 0 {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	ts := &TrustSet{}
	for _, n := range names {
		var roots, inter []*x509.Certificate
		for _, c := range bundles[n] {
			if bytes.Equal(c.RawSubject, c.RawIssuer) {
				roots = append(roots, c)
			} else {
				inter = append(inter, c)
			}
		}
		if len(roots) == 0 {
			roots, inter = bundles[n], nil
		}
		v, err := NewVerifier(roots, inter)
		if err != nil {
			return nil, fmt.Errorf("trusted CA %q: %w", n, err)
		}
		ts.names = append(ts.names, n)
		ts.verifiers = append(ts.verifiers, v)
	}
	return ts, nil
}

// Verify finds a path from leaf (with the intermediates in extra) to one of
// the bundles at now for a router certificate (serverAuth or clientAuth),
// and returns it with the bundle's name. When none verifies, the most
// specific failure wins: a problem found on the way to a trusted CA beats
// ErrUnknownIssuer. An empty or nil set fails with ErrNoTrust.
func (ts *TrustSet) Verify(leaf *x509.Certificate, extra []*x509.Certificate, now time.Time) ([]*x509.Certificate, string, error) {
	if ts == nil || len(ts.verifiers) == 0 {
		return nil, "", ErrNoTrust
	}
	usages := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	var best error
	for i, v := range ts.verifiers {
		path, err := v.Verify(leaf, extra, now, usages)
		if err == nil {
			return path, ts.names[i], nil
		}
		if best == nil || (errors.Is(best, ErrUnknownIssuer) && !errors.Is(err, ErrUnknownIssuer)) {
			best = fmt.Errorf("trusted CA %q: %w", ts.names[i], err)
		}
	}
	return nil, "", best
}
