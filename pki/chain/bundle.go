// Package chain checks X.509 certificate chains: a trusted CA bundle as
// configured by an operator (CheckBundle), and a leaf certificate against
// trusted roots and intermediates (Verifier), with the checks Go's
// x509.Verify leaves out (key usage of CAs, path depth, critical
// extensions everywhere in the path).
//
// A tier is one CA certificate. A bundle holds at most MaxTiers tiers on
// any path from its lowest CA to its root, and a verified leaf chain holds
// at most MaxTiers CA certificates above the leaf (MaxTiers+1 certificates
// in all), so a leaf issued under any bundle that CheckBundle accepts also
// verifies.
package chain

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pkiagent/pkiagent/internal/pemx"
)

// MaxTiers is the deepest CA hierarchy accepted: 8 CA certificates from
// the root down to the lowest intermediate.
const MaxTiers = 8

// Sentinel errors. Every Problem, and every error from Verify, wraps one.
var (
	ErrEmpty             = errors.New("no certificate")
	ErrNotCA             = errors.New("certificate is not a CA")
	ErrNoCertSign        = errors.New("CA certificate lacks the keyCertSign key usage")
	ErrExpired           = errors.New("certificate has expired")
	ErrNotYetValid       = errors.New("certificate is not yet valid")
	ErrUnknownIssuer     = errors.New("issuer not found among the trusted certificates")
	ErrBadSignature      = errors.New("signature does not verify")
	ErrTooDeep           = errors.New("chain is deeper than 8 CA tiers")
	ErrCriticalExtension = errors.New("certificate has a critical extension the agent does not handle")
	ErrDuplicate         = errors.New("certificate appears more than once")
	ErrWrongUsage        = errors.New("extended key usage does not allow this use")
	ErrVerify            = errors.New("chain does not verify")
	ErrNoRoots           = errors.New("no trusted root certificates configured")
)

// CertInfo is what operators see about one certificate in state.
type CertInfo struct {
	Subject string
	Issuer  string
	// Serial is lowercase hex without separators.
	Serial    string
	NotBefore time.Time
	NotAfter  time.Time
	// FingerprintSHA256 is the lowercase hex SHA-256 of the DER.
	FingerprintSHA256     string
	CRLDistributionPoints []string
	IsCA                  bool
	SelfSigned            bool
}

// Info describes c for state and logs.
func Info(c *x509.Certificate) CertInfo {
	return CertInfo{
		Subject:               c.Subject.String(),
		Issuer:                c.Issuer.String(),
		Serial:                SerialHex(c),
		NotBefore:             c.NotBefore.UTC(),
		NotAfter:              c.NotAfter.UTC(),
		FingerprintSHA256:     Fingerprint(c),
		CRLDistributionPoints: append([]string(nil), c.CRLDistributionPoints...),
		IsCA:                  c.BasicConstraintsValid && c.IsCA,
		SelfSigned:            bytes.Equal(c.RawSubject, c.RawIssuer),
	}
}

// Fingerprint returns the lowercase hex SHA-256 of c's DER encoding.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// SerialHex returns c's serial number as lowercase hex ("-" prefixed if a
// non-conforming certificate has a negative one).
func SerialHex(c *x509.Certificate) string {
	if c.SerialNumber == nil {
		return ""
	}
	return c.SerialNumber.Text(16)
}

// Problem is one thing wrong with a bundle. In strict mode any problem
// fails the commit; in warn mode each becomes a warning in state.
type Problem struct {
	// Err is one of the package's sentinel errors.
	Err error
	// Index is the 1-based position of the certificate in the bundle, 0
	// for a problem of the bundle as a whole.
	Index int
	// Subject names the certificate concerned, if any.
	Subject string
	// Detail says why, in operator words.
	Detail string
}

func (p Problem) Error() string {
	var b strings.Builder
	if p.Index > 0 {
		fmt.Fprintf(&b, "certificate %d (%s): ", p.Index, p.Subject)
	}
	b.WriteString(p.Err.Error())
	if p.Detail != "" {
		b.WriteString(": ")
		b.WriteString(p.Detail)
	}
	return b.String()
}

// Unwrap returns the sentinel.
func (p Problem) Unwrap() error { return p.Err }

// Bundle is the result of checking a trusted CA bundle.
type Bundle struct {
	// Certs are the certificates in input order.
	Certs []*x509.Certificate
	// Info describes Certs, index for index.
	Info []CertInfo
	// Roots are the self-signed certificates; Intermediates the others.
	Roots, Intermediates []*x509.Certificate
	// Tiers is the length of the longest issuer path found.
	Tiers int
	// Problems is empty for a good bundle.
	Problems []Problem
}

// Err returns nil for a bundle without problems, else an error wrapping
// every problem (errors.Is works on each sentinel) whose text lists them.
func (b *Bundle) Err() error {
	if len(b.Problems) == 0 {
		return nil
	}
	errs := make([]error, len(b.Problems))
	for i, p := range b.Problems {
		errs[i] = p
	}
	return &BundleError{Problems: b.Problems, err: errors.Join(errs...)}
}

// Warnings returns each problem's text, for warn mode's state leaf-list.
func (b *Bundle) Warnings() []string {
	out := make([]string, len(b.Problems))
	for i, p := range b.Problems {
		out[i] = p.Error()
	}
	return out
}

// BundleError is the error of a bundle with problems.
type BundleError struct {
	Problems []Problem
	err      error
}

func (e *BundleError) Error() string {
	if len(e.Problems) == 1 {
		return "trusted CA bundle: " + e.Problems[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "trusted CA bundle has %d problems: ", len(e.Problems))
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

func (e *BundleError) Unwrap() error { return e.err }

// ParseBundle parses PEM content (within pemx.DefaultLimits) and checks it
// with CheckBundle. The error is for content that does not parse at all;
// semantic problems are in the returned Bundle.
func ParseBundle(content []byte, now time.Time) (*Bundle, error) {
	certs, err := pemx.Certificates(content, pemx.DefaultLimits)
	if err != nil {
		return nil, fmt.Errorf("trusted CA bundle: %w", err)
	}
	return CheckBundle(certs, now), nil
}

// CheckBundle checks a trusted CA bundle given in any order: every
// certificate a CA with keyCertSign, no unhandled critical extension,
// valid at now, each non-root signed by another certificate of the bundle,
// each self-signed root's signature valid, and no path deeper than
// MaxTiers.
func CheckBundle(certs []*x509.Certificate, now time.Time) *Bundle {
	b := &Bundle{Certs: certs, Info: make([]CertInfo, len(certs))}
	if len(certs) == 0 {
		b.Problems = append(b.Problems, Problem{Err: ErrEmpty, Detail: "the bundle holds no certificate"})
		return b
	}
	add := func(i int, err error, detail string) {
		b.Problems = append(b.Problems, Problem{Err: err, Index: i + 1, Subject: b.Info[i].Subject, Detail: detail})
	}
	seen := map[string]int{}
	for i, c := range certs {
		b.Info[i] = Info(c)
	}
	// parent[i] is the index of i's issuer, -1 for a root, -2 if none.
	parent := make([]int, len(certs))
	for i, c := range certs {
		fp := b.Info[i].FingerprintSHA256
		if j, ok := seen[fp]; ok {
			add(i, ErrDuplicate, fmt.Sprintf("same as certificate %d", j+1))
		}
		seen[fp] = i
		if p := caProblem(c); p != nil {
			add(i, p.err, p.detail)
		}
		if p := dateProblem(c, now); p != nil {
			add(i, p.err, p.detail)
		}
		if len(c.UnhandledCriticalExtensions) > 0 {
			add(i, ErrCriticalExtension, "extension "+oidList(c))
		}
		parent[i] = findIssuer(certs, i)
		switch parent[i] {
		case -1:
			b.Roots = append(b.Roots, c)
		case -2:
			b.Intermediates = append(b.Intermediates, c)
			if bytes.Equal(c.RawSubject, c.RawIssuer) {
				add(i, ErrBadSignature, "the self-signed certificate's own signature does not verify")
			} else {
				add(i, ErrUnknownIssuer, fmt.Sprintf("issuer %q is not in the bundle (add the issuing CA, up to its root)", c.Issuer.String()))
			}
		default:
			b.Intermediates = append(b.Intermediates, c)
		}
	}
	// Depth: walk each certificate up to its root.
	for i := range certs {
		depth := 1
		for j := i; parent[j] >= 0 && depth <= len(certs); j = parent[j] {
			depth++
		}
		if depth > len(certs) {
			add(i, ErrUnknownIssuer, "issuer loop: the certificates sign each other and reach no root")
			continue
		}
		if depth > b.Tiers {
			b.Tiers = depth
		}
		if depth == MaxTiers+1 {
			add(i, ErrTooDeep, fmt.Sprintf("it is %d tiers below its root, counting the root; the limit is %d", depth, MaxTiers))
		}
	}
	return b
}

// findIssuer returns the index of the certificate that signed certs[i]:
// -1 when it is a valid self-signed root, -2 when none is found.
func findIssuer(certs []*x509.Certificate, i int) int {
	c := certs[i]
	if bytes.Equal(c.RawSubject, c.RawIssuer) {
		if c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil {
			return -1
		}
	}
	for j, p := range certs {
		if j == i || !bytes.Equal(p.RawSubject, c.RawIssuer) {
			continue
		}
		if len(c.AuthorityKeyId) > 0 && len(p.SubjectKeyId) > 0 && !bytes.Equal(c.AuthorityKeyId, p.SubjectKeyId) {
			continue
		}
		if bytes.Equal(p.Raw, c.Raw) {
			continue
		}
		if p.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil {
			return j
		}
	}
	return -2
}

type problem struct {
	err    error
	detail string
}

func caProblem(c *x509.Certificate) *problem {
	if !c.BasicConstraintsValid || !c.IsCA {
		return &problem{ErrNotCA, "basic constraints do not say CA:TRUE (is this a router or server certificate?)"}
	}
	// Without a key usage extension the key may be used for anything (RFC
	// 5280 4.2.1.3; OpenSSL 3's "openssl req -x509" makes such CAs); with
	// one, it must allow signing certificates.
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return &problem{ErrNoCertSign, "key usage has no keyCertSign"}
	}
	return nil
}

func dateProblem(c *x509.Certificate, now time.Time) *problem {
	switch {
	case now.Before(c.NotBefore):
		return &problem{ErrNotYetValid, fmt.Sprintf("valid from %s, now is %s", c.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	case now.After(c.NotAfter):
		return &problem{ErrExpired, fmt.Sprintf("expired at %s, now is %s", c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	return nil
}

func oidList(c *x509.Certificate) string {
	s := make([]string, len(c.UnhandledCriticalExtensions))
	for i, o := range c.UnhandledCriticalExtensions {
		s[i] = o.String()
	}
	return strings.Join(s, ", ")
}
