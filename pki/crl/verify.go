package crl

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var (
	oidSHA1WithRSA   = oid(1, 2, 840, 113549, 1, 1, 5)
	oidSHA256WithRSA = oid(1, 2, 840, 113549, 1, 1, 11)
	oidSHA384WithRSA = oid(1, 2, 840, 113549, 1, 1, 12)
	oidSHA512WithRSA = oid(1, 2, 840, 113549, 1, 1, 13)
	oidRSAPSS        = oid(1, 2, 840, 113549, 1, 1, 10)
	oidECDSASHA1     = oid(1, 2, 840, 10045, 4, 1)
	oidECDSASHA256   = oid(1, 2, 840, 10045, 4, 3, 2)
	oidECDSASHA384   = oid(1, 2, 840, 10045, 4, 3, 3)
	oidECDSASHA512   = oid(1, 2, 840, 10045, 4, 3, 4)
	oidEd25519       = oid(1, 3, 101, 112)
	oidSHA256        = oid(2, 16, 840, 1, 101, 3, 4, 2, 1)
	oidSHA384        = oid(2, 16, 840, 1, 101, 3, 4, 2, 2)
	oidSHA512        = oid(2, 16, 840, 1, 101, 3, 4, 2, 3)
)

// signatureAlgorithm maps an AlgorithmIdentifier element to the
// crypto/x509 constant, or UnknownSignatureAlgorithm.
func signatureAlgorithm(ai cryptobyte.String) x509.SignatureAlgorithm {
	var seq, o cryptobyte.String
	if !ai.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1(&o, cbasn1.OBJECT_IDENTIFIER) {
		return x509.UnknownSignatureAlgorithm
	}
	switch string(o) {
	case oidSHA1WithRSA:
		return x509.SHA1WithRSA
	case oidSHA256WithRSA:
		return x509.SHA256WithRSA
	case oidSHA384WithRSA:
		return x509.SHA384WithRSA
	case oidSHA512WithRSA:
		return x509.SHA512WithRSA
	case oidECDSASHA1:
		return x509.ECDSAWithSHA1
	case oidECDSASHA256:
		return x509.ECDSAWithSHA256
	case oidECDSASHA384:
		return x509.ECDSAWithSHA384
	case oidECDSASHA512:
		return x509.ECDSAWithSHA512
	case oidEd25519:
		return x509.PureEd25519
	case oidRSAPSS:
		// RSASSA-PSS-params: [0] EXPLICIT hashAlgorithm; crypto/x509 verifies
		// with a salt as long as the hash, as it does for certificates.
		var params, wrap, hashAI, hashOID cryptobyte.String
		if !seq.ReadASN1(&params, cbasn1.SEQUENCE) ||
			!params.ReadASN1(&wrap, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
			!wrap.ReadASN1(&hashAI, cbasn1.SEQUENCE) ||
			!hashAI.ReadASN1(&hashOID, cbasn1.OBJECT_IDENTIFIER) {
			return x509.UnknownSignatureAlgorithm
		}
		switch string(hashOID) {
		case oidSHA256:
			return x509.SHA256WithRSAPSS
		case oidSHA384:
			return x509.SHA384WithRSAPSS
		case oidSHA512:
			return x509.SHA512WithRSAPSS
		}
	}
	return x509.UnknownSignatureAlgorithm
}

// Verify finds the CA among trusted that issued the CRL and checks the
// signature with it. Candidates are the CAs whose RawSubject equals the
// CRL's RawIssuer, those whose subject key identifier matches the CRL's
// authority key identifier first. The CA must be a CA (basic constraints)
// and, when it has a key usage extension, it must include cRLSign (without
// one the key may sign anything, RFC 5280 4.2.1.3, as x509 also holds). It
// returns the verifying CA. A CRL that fails here must never be used.
func (c *CRL) Verify(trusted []*x509.Certificate) (*x509.Certificate, error) {
	cands, err := c.candidates(trusted)
	if err != nil {
		return nil, err
	}
	rl := &x509.RevocationList{RawTBSRevocationList: c.RawTBS, Signature: c.Signature, SignatureAlgorithm: c.SignatureAlgorithm}
	var errs []error
	for _, ca := range cands {
		if ca.KeyUsage != 0 && ca.KeyUsage&x509.KeyUsageCRLSign == 0 {
			errs = append(errs, fmt.Errorf("CA %q may not sign CRLs (no cRLSign key usage)", ca.Subject.String()))
			continue
		}
		if err := rl.CheckSignatureFrom(ca); err != nil {
			errs = append(errs, fmt.Errorf("CA %q: %w", ca.Subject.String(), err))
			continue
		}
		return ca, nil
	}
	return nil, fmt.Errorf("%w: %w", ErrSignature, errors.Join(errs...))
}

// candidates are the trusted CAs that may have issued the CRL, best first.
func (c *CRL) candidates(trusted []*x509.Certificate) ([]*x509.Certificate, error) {
	var cands []*x509.Certificate
	for _, ca := range trusted {
		if ca == nil || !bytes.Equal(ca.RawSubject, c.RawIssuer) {
			continue
		}
		if len(c.AuthorityKeyID) > 0 && len(ca.SubjectKeyId) > 0 && bytes.Equal(ca.SubjectKeyId, c.AuthorityKeyID) {
			cands = append([]*x509.Certificate{ca}, cands...)
		} else {
			cands = append(cands, ca)
		}
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("%w: no configured trusted CA has the subject %q", ErrUntrustedIssuer, IssuerString(c.RawIssuer))
	}
	if c.SignatureAlgorithm == x509.UnknownSignatureAlgorithm {
		return nil, fmt.Errorf("%w: the signature algorithm is not supported", ErrSignature)
	}
	return cands, nil
}
