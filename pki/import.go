package pki

import (
	"context"
	"crypto"
	"fmt"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/internal/pemx"
	"github.com/pkiagent/pkiagent/pki/importcheck"
)

// certImport is one certificate put in force, by import-certificate or by
// a gNSI certz Rotation.Install: both take this one path.
type certImport struct {
	caller api.Caller
	name   string
	pem    string
	// what prefixes errors ("import-certificate NAME"), audit says how it
	// came ("import certificate NAME"), detail adds to the audit record.
	what, audit string
	detail      map[string]any
	// noTrust is said when no trusted CA is configured.
	noTrust string
	// key returns the public key the certificate must certify; called
	// after check 1.
	key func(ctx context.Context) (crypto.PublicKey, error)
	// install puts the checked certificate in force and returns its status.
	install func(res *importcheck.Result) (status string, err error)
}

// importCertificate counts, audits (system.ingest_certificate), runs check
// 1 on the input before anything else reads it, takes the key and the trust
// store in force, runs the three import checks, installs and announces the
// certificate (certificate-event ingest-certificate).
func (e *Engine) importCertificate(ctx context.Context, in certImport) (out api.ImportCertificateOutput, err error) {
	detail := map[string]any{"name": in.name}
	for k, v := range in.detail {
		detail[k] = v
	}
	defer func() {
		if err != nil {
			e.stats.importFail.Add(1)
			detail["error"] = err.Error()
		} else {
			e.stats.importOK.Add(1)
		}
		e.saveCounters()
		detail["success"] = err == nil
		e.auditEvent(in.caller, "system.ingest_certificate", in.audit, detail, err)
	}()
	// certz names passed BeginRotation's stricter check already.
	if err := checkName("import-certificate", in.name); err != nil {
		return out, err
	}
	if err := pemx.CheckNoPrivateKey([]byte(in.pem), pemx.DefaultLimits); err != nil {
		return out, fmt.Errorf("%w: %s: %w", api.ErrInvalid, in.what, err)
	}
	pub, err := in.key(ctx)
	if err != nil {
		return out, err
	}
	trust := e.trust.store()
	if trust == nil {
		return out, fmt.Errorf("%w: %s: no trusted-ca-certificate is configured to check it against%s", api.ErrInvalid, in.what, in.noTrust)
	}
	res, err := importcheck.Check(importcheck.Input{
		PEM: []byte(in.pem), PublicKey: pub, Trust: trust,
		Revocation: e.cfg.Revocation, Now: e.clock.Now(), Limits: pemx.DefaultLimits,
	})
	if err != nil {
		return out, fmt.Errorf("%w: %s: %w", api.ErrInvalid, in.what, err)
	}
	status, err := in.install(res)
	if err != nil {
		return out, err
	}
	detail["common_name"] = res.Certificate.Subject.CommonName
	detail["fingerprint"] = res.Info.FingerprintSHA256
	detail["crl_urls"] = res.Info.CRLDistributionPoints
	detail["certificate_authority"] = res.TrustedCA
	detail["purpose"] = purpose(res.Certificate.ExtKeyUsage)
	e.publishCertificateEvent("ingest-certificate", in.name, res.Certificate.Subject.CommonName, res.Info.FingerprintSHA256, res.Info.CRLDistributionPoints)
	return api.ImportCertificateOutput{FingerprintSHA256: res.Info.FingerprintSHA256, Status: status}, nil
}
