package chain

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// VerifyError is the error of a leaf that does not verify. It wraps one
// of the package's sentinels and, when there is one, the x509 error.
type VerifyError struct {
	// Err is one of the package's sentinel errors.
	Err error
	// Subject names the certificate concerned (the leaf or a CA above it).
	Subject string
	// Detail says why, in operator words.
	Detail string
	// Cause is the underlying crypto/x509 error, if any.
	Cause error
}

func (e *VerifyError) Error() string {
	s := fmt.Sprintf("chain verification of %q: %v", e.Subject, e.Err)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *VerifyError) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Err, e.Cause}
	}
	return []error{e.Err}
}

// Verifier verifies leaf certificates against fixed trusted roots and
// intermediates. It is safe for concurrent use and cheap to reuse.
type Verifier struct {
	roots, inter        *x509.CertPool
	rootList, interList []*x509.Certificate
}

// NewVerifier returns a verifier trusting roots and able to build paths
// through intermediates. It refuses an empty roots list, because
// x509.Verify would then fall back to the system roots.
func NewVerifier(roots, intermediates []*x509.Certificate) (*Verifier, error) {
	if len(roots) == 0 {
		return nil, &VerifyError{Err: ErrNoRoots, Subject: "(none)", Detail: "configure a trusted-ca-certificate first"}
	}
	v := &Verifier{
		roots: x509.NewCertPool(), inter: x509.NewCertPool(),
		rootList:  append([]*x509.Certificate(nil), roots...),
		interList: append([]*x509.Certificate(nil), intermediates...),
	}
	for _, c := range roots {
		v.roots.AddCert(c)
	}
	for _, c := range intermediates {
		v.inter.AddCert(c)
	}
	return v, nil
}

// Verify builds a path from leaf to a trusted root at time now, using the
// verifier's intermediates plus extra (e.g. those sent with the leaf).
// usages are the extended key usages the leaf must allow (any one of
// them); nil accepts any. On top of x509.Verify it requires
// keyCertSign on every CA in the path, refuses unhandled critical
// extensions anywhere in the path, and refuses paths with more than
// MaxTiers CA certificates. It returns the first path that passes, leaf
// first.
func (v *Verifier) Verify(leaf *x509.Certificate, extra []*x509.Certificate, now time.Time, usages []x509.ExtKeyUsage) ([]*x509.Certificate, error) {
	subject := leaf.Subject.String()
	if len(leaf.UnhandledCriticalExtensions) > 0 {
		return nil, &VerifyError{Err: ErrCriticalExtension, Subject: subject, Detail: "extension " + oidList(leaf)}
	}
	if p := dateProblem(leaf, now); p != nil {
		return nil, &VerifyError{Err: p.err, Subject: subject, Detail: p.detail}
	}
	inter := v.inter
	if len(extra) > 0 {
		inter = v.inter.Clone()
		for _, c := range extra {
			inter.AddCert(c)
		}
	}
	if len(usages) == 0 {
		usages = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         v.roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     usages,
	})
	if err != nil {
		var ua x509.UnknownAuthorityError
		if errors.As(err, &ua) {
			// x509 refuses a CA that is not a CA or lacks keyCertSign as
			// "unknown authority"; find out which it was.
			if d := v.diagnose(leaf, extra); d != nil {
				return nil, d
			}
		}
		return nil, mapX509Error(subject, err)
	}
	var firstErr error
	for _, c := range chains {
		if err := checkPath(c); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		return c, nil
	}
	return nil, firstErr
}

// diagnose walks up from leaf by issuer name and signature, ignoring CA
// constraints, and reports the first CA in the way that is not fit to
// sign. It returns nil when it finds nothing more precise to say.
func (v *Verifier) diagnose(leaf *x509.Certificate, extra []*x509.Certificate) error {
	cands := make([]*x509.Certificate, 0, len(v.rootList)+len(v.interList)+len(extra))
	cands = append(append(append(cands, v.rootList...), v.interList...), extra...)
	c := leaf
	for range MaxTiers + 1 {
		var parent *x509.Certificate
		for _, p := range cands {
			if p != c && bytes.Equal(p.RawSubject, c.RawIssuer) &&
				p.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil {
				parent = p
				break
			}
		}
		if parent == nil {
			return nil
		}
		if p := caProblem(parent); p != nil {
			return &VerifyError{Err: p.err, Subject: parent.Subject.String(), Detail: p.detail}
		}
		if bytes.Equal(parent.RawSubject, parent.RawIssuer) {
			return nil
		}
		c = parent
	}
	return nil
}

// checkPath applies the checks x509.Verify leaves out.
func checkPath(path []*x509.Certificate) error {
	if cas := len(path) - 1; cas > MaxTiers {
		return &VerifyError{Err: ErrTooDeep, Subject: path[0].Subject.String(), Detail: fmt.Sprintf("the path has %d CA certificates above the leaf; the limit is %d", cas, MaxTiers)}
	}
	for _, c := range path[1:] {
		if p := caProblem(c); p != nil {
			return &VerifyError{Err: p.err, Subject: c.Subject.String(), Detail: p.detail}
		}
		if len(c.UnhandledCriticalExtensions) > 0 {
			return &VerifyError{Err: ErrCriticalExtension, Subject: c.Subject.String(), Detail: "extension " + oidList(c)}
		}
	}
	return nil
}

func mapX509Error(subject string, err error) error {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) {
		s := subject
		if inv.Cert != nil {
			s = inv.Cert.Subject.String()
		}
		switch inv.Reason {
		case x509.Expired:
			return &VerifyError{Err: ErrExpired, Subject: s, Detail: "a certificate in the path is outside its validity dates", Cause: err}
		case x509.NotAuthorizedToSign:
			return &VerifyError{Err: ErrNotCA, Subject: s, Detail: "a certificate in the path signs others but is not a CA", Cause: err}
		case x509.IncompatibleUsage:
			return &VerifyError{Err: ErrWrongUsage, Subject: s, Cause: err}
		case x509.TooManyIntermediates:
			return &VerifyError{Err: ErrTooDeep, Subject: s, Cause: err}
		}
		return &VerifyError{Err: ErrVerify, Subject: s, Cause: err}
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return &VerifyError{Err: ErrUnknownIssuer, Subject: subject, Detail: "no path to a configured trusted CA (is the issuing CA's chain configured as a trusted-ca-certificate?)", Cause: err}
	}
	var uce x509.UnhandledCriticalExtension
	if errors.As(err, &uce) {
		return &VerifyError{Err: ErrCriticalExtension, Subject: subject, Cause: err}
	}
	return &VerifyError{Err: ErrVerify, Subject: subject, Cause: err}
}
