package cmp

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	encasn1 "encoding/asn1"
	"errors"
	"fmt"

	"github.com/pkiagent/pkiagent/internal/redact"
)

// checkIssued checks the certificate the CA returned and fills res.
func (c *Client) checkIssued(req *Request, m *message, rep *certRep, resp *certResponse, res *Result) error {
	cert := resp.cert
	if cert == nil {
		if resp.encrypted {
			return newError(ErrBadResponse, nil, "the CA returned the certificate encrypted, which this client does not ask for")
		}
		return newError(ErrBadResponse, nil, "the CA accepted the request but returned no certificate")
	}
	if !publicKeysEqual(cert.PublicKey, req.Key.Public()) {
		return newError(ErrWrongKey, nil, "the CA returned a certificate (serial %s) for another public key than the one we asked it to certify; refused", serial(cert))
	}
	if want := req.Subject.ToRDNSequence(); len(want) > 0 {
		var got pkix.RDNSequence
		if rest, err := encasn1.Unmarshal(cert.RawSubject, &got); err != nil || len(rest) > 0 || got.String() != want.String() {
			return newError(ErrBadCertificate, nil, "the CA returned a certificate with subject %s, not the %s asked for; refused",
				redact.Value(cert.Subject.String()), redact.Value(want.String()))
		}
	}
	now := c.clock().Now()
	inter := x509.NewCertPool()
	for _, x := range append(append([]*x509.Certificate{}, rep.caPubs...), m.extraCerts...) {
		inter.AddCert(x)
	}
	opts := x509.VerifyOptions{Roots: c.Trusted, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	chains, err := cert.Verify(opts)
	if err != nil {
		return newError(ErrBadCertificate, err, "the certificate the CA returned does not chain to the trusted CA; refused")
	}
	res.Cert, res.Chain = cert, chains[0]
	if len(res.Chain) > maxChain {
		return newError(ErrBadCertificate, nil, "the certificate's chain is longer than %d; refused", maxChain)
	}
	opts.Intermediates = x509.NewCertPool()
	for _, x := range m.extraCerts {
		opts.Intermediates.AddCert(x)
	}
	for _, x := range rep.caPubs {
		if chains, err := x.Verify(opts); err == nil && len(chains[0]) <= maxChain {
			res.CAPubs = append(res.CAPubs, x)
		}
	}
	return nil
}

// unverified handles a response whose protection failed. An unprotected
// error is accepted as such when the client is configured so; otherwise a
// response that does not verify is a protection failure, and an error or
// rejection we cannot authenticate is named as such, with its reason
// marked as unverified, since a wrong secret is the usual cause.
func (t *transaction) unverified(m *message, perr error) error {
	isError := m.bodyType == bodyError
	var si *statusInfo
	if isError {
		if e, err := parseErrorMsg(m.body); err == nil {
			e.status.text = append(e.status.text, e.details...)
			si = &e.status
		}
	} else if m.bodyType == t.req.Kind.responseBody() {
		if _, r, err := certResponseOf(m); err == nil && r.status.status == statusRejection {
			si = &r.status
		}
	}
	if si == nil {
		return newError(ErrProtection, perr, "the CA's %s fails its protection check", bodyName(m.bodyType))
	}
	if m.protection == nil && t.c.AcceptUnprotectedErrors {
		return rejected(si, "the CA refused the request (unprotected answer)")
	}
	e := rejected(si, "the CA refused the request, in an answer we cannot authenticate")
	e.Kind = ErrProtection
	if m.protection == nil {
		e.Msg += " (unprotected; accept-unprotected-errors lets such answers through)"
	} else if errors.Is(perr, errMACMismatch) {
		e.Msg += " (its MAC does not verify with our shared secret: the secret or reference is probably wrong)"
	} else {
		e.Err = perr
	}
	return e
}

var errUnprotected = errors.New("it is not protected")

// verify checks m's protection: a MAC with our secret, or a signature by a
// certificate in extraCerts that chains to the trusted CA.
func (t *transaction) verify(m *message) error {
	if m.header.protectionAlg == nil || m.protection == nil {
		return errUnprotected
	}
	oid, params, err := algorithm(m.header.protectionAlg)
	if err != nil {
		return err
	}
	if oid.Equal(oidPBM) {
		return t.prot.verifyPBM(params, m)
	}
	alg := x509SignatureAlgorithm(oid)
	if alg == x509.UnknownSignatureAlgorithm {
		return fmt.Errorf("protection algorithm %v not supported", oid)
	}
	senderName, _ := directoryName(m.header.sender)
	var lastErr error = errors.New("its signature is by no certificate it carries")
	for _, cand := range m.extraCerts {
		if len(m.header.senderKID) > 0 && len(cand.SubjectKeyId) > 0 && !bytes.Equal(cand.SubjectKeyId, m.header.senderKID) {
			continue
		}
		if cand.CheckSignature(alg, m.protected, m.protection) != nil {
			continue
		}
		if len(senderName) > 0 {
			var got pkix.RDNSequence
			if _, err := encasn1.Unmarshal(cand.RawSubject, &got); err != nil || got.String() != senderName.String() {
				lastErr = errors.New("its signer is not the sender it names")
				continue
			}
		}
		if cand.KeyUsage != 0 && cand.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
			lastErr = errors.New("its signer's certificate does not allow digital signatures")
			continue
		}
		inter := x509.NewCertPool()
		for _, x := range m.extraCerts {
			inter.AddCert(x)
		}
		chains, err := cand.Verify(x509.VerifyOptions{Roots: t.c.Trusted, Intermediates: inter,
			CurrentTime: t.c.clock().Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			lastErr = fmt.Errorf("its signer does not chain to the trusted CA: %w", err)
			continue
		}
		if len(chains[0]) > maxChain {
			lastErr = errors.New("its signer's chain is too long")
			continue
		}
		return nil
	}
	return lastErr
}
