package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/internal/pemx"
	"github.com/pkiagent/pkiagent/internal/persist"
	"github.com/pkiagent/pkiagent/pki/csr"
	"github.com/pkiagent/pkiagent/pki/importcheck"
	"github.com/pkiagent/pkiagent/pki/keystore"
)

// checkName checks the name input of rpc by the one object-name rule.
func checkName(rpc, name string) error {
	if err := api.CheckName("name", name, api.MaxNameLen); err != nil {
		return &api.InputError{RPC: rpc, Leaf: "name", Err: err}
	}
	return nil
}

// GeneratePrivateKey implements api.PKI.
func (e *Engine) GeneratePrivateKey(ctx context.Context, c api.Caller, in api.GenerateKeyInput) (api.GenerateKeyOutput, error) {
	if err := checkName("generate-private-key", in.Name); err != nil {
		return api.GenerateKeyOutput{}, err
	}
	ks, ok := e.cfg.Keys[in.KeyStorage]
	if !ok {
		err := fmt.Errorf("%w: key-storage %q is not file or tpm", api.ErrInvalid, in.KeyStorage)
		if in.KeyStorage == "tpm" {
			err = fmt.Errorf("%w: key-storage tpm: no TPM is configured (start the agent with --tpm sim, /dev/tpmrm0 or tcp://HOST:PORT)", api.ErrInvalid)
		}
		return api.GenerateKeyOutput{}, &api.InputError{RPC: "generate-private-key", Leaf: "key-storage", Err: err}
	}
	spec := KeySpec{Algorithm: in.Algorithm, RSABits: int(in.RSAKeySize), Curve: in.ECCCurve}
	if err := spec.Validate(); err != nil {
		return api.GenerateKeyOutput{}, &api.InputError{RPC: "generate-private-key", Leaf: specLeaf(spec), Err: fmt.Errorf("%w: %v", api.ErrInvalid, err)}
	}
	e.mu.Lock()
	_, exists := e.certs[in.Name]
	e.mu.Unlock()
	if exists {
		return api.GenerateKeyOutput{}, fmt.Errorf("%w: a key named %s exists; keys are never overwritten", api.ErrExists, in.Name)
	}
	signer, err := ks.Generate(ctx, in.Name, spec)
	switch {
	case errors.Is(err, keystore.ErrUnsupported):
		return api.GenerateKeyOutput{}, &api.InputError{RPC: "generate-private-key", Leaf: specLeaf(spec),
			Err: fmt.Errorf("%w: %s storage cannot hold a %s key: %v; choose a size or curve it supports", api.ErrInvalid, in.KeyStorage, spec, err)}
	case errors.Is(err, keystore.ErrExists):
		return api.GenerateKeyOutput{}, fmt.Errorf("%w: a key named %s exists in %s storage; keys are never overwritten", api.ErrExists, in.Name, in.KeyStorage)
	case err != nil:
		return api.GenerateKeyOutput{}, fmt.Errorf("generate %s key %s in %s storage: %w", in.Algorithm, in.Name, in.KeyStorage, err)
	}
	alg := keyAlgorithm(signer.Public())
	e.mu.Lock()
	e.certs[in.Name] = &managedCert{name: in.Name, storage: in.KeyStorage, algorithm: alg, public: signer.Public(), created: e.keyCreated(in.KeyStorage, in.Name)}
	e.evaluateLocked(false)
	e.mu.Unlock()
	e.log.Info("private key generated", "name", in.Name, "algorithm", alg, "storage", in.KeyStorage, "user", c.User)
	return api.GenerateKeyOutput{Name: in.Name, KeyAlgorithm: alg, KeyStorage: in.KeyStorage}, nil
}

func keyAlgorithm(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return "ecc-secp256r1"
		case 384:
			return "ecc-secp384r1"
		case 521:
			return "ecc-secp521r1"
		}
	case ed25519.PublicKey:
		return "ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// signerFor finds the named key in whichever store holds it.
func (e *Engine) signerFor(ctx context.Context, name string) (crypto.Signer, *managedCert, error) {
	e.mu.Lock()
	mc, ok := e.certs[name]
	e.mu.Unlock()
	if !ok {
		return nil, nil, fmt.Errorf("%w: no private key named %s: run generate-private-key first", api.ErrMissing, name)
	}
	s, err := e.cfg.Keys[mc.storage].Signer(ctx, name)
	if err != nil {
		return nil, nil, fmt.Errorf("load key %s from %s storage: %w", name, mc.storage, err)
	}
	return s, mc, nil
}

// GenerateCSR implements api.PKI.
func (e *Engine) GenerateCSR(ctx context.Context, c api.Caller, in api.GenerateCSRInput) (out api.GenerateCSROutput, err error) {
	defer func() {
		if err != nil {
			e.stats.csrFail.Add(1)
		} else {
			e.stats.csrOK.Add(1)
		}
		e.saveCounters()
		e.auditEvent(c, "system.generate_csr", fmt.Sprintf("generate CSR for %s", in.Name), csrAuditDetail(in, err == nil), err)
	}()
	if err := checkName("generate-csr", in.Name); err != nil {
		return out, err
	}
	signer, _, err := e.signerFor(ctx, in.Name)
	if err != nil {
		return out, err
	}
	req := csrRequest(in)
	p, err := csr.Create(req, signer)
	if err != nil {
		if fe := (*csr.FieldError)(nil); errors.As(err, &fe) {
			// subject-alt-name[2] is an element of leaf-list subject-alt-name.
			leaf, _, _ := strings.Cut(fe.Field, "[")
			return out, &api.InputError{RPC: "generate-csr", Leaf: leaf, Err: fmt.Errorf("%w: %w", api.ErrInvalid, err)}
		}
		if errors.Is(err, csr.ErrInvalidField) {
			return out, fmt.Errorf("%w: %w", api.ErrInvalid, err)
		}
		return out, err
	}
	e.publishCertificateEvent("generate-csr", in.Name, in.CommonName, "", nil)
	return api.GenerateCSROutput{CSR: string(p)}, nil
}

// ImportCertificate implements api.PKI: the three checks, then the
// certificate is stored beside its key.
func (e *Engine) ImportCertificate(ctx context.Context, c api.Caller, in api.ImportCertificateInput) (api.ImportCertificateOutput, error) {
	var mc *managedCert
	return e.importCertificate(ctx, certImport{
		caller: c, name: in.Name, pem: in.Certificate,
		what: "import-certificate " + in.Name, audit: "import certificate " + in.Name,
		key: func(ctx context.Context) (crypto.PublicKey, error) {
			s, m, err := e.signerFor(ctx, in.Name)
			if err != nil {
				return nil, err
			}
			mc = m
			return s.Public(), nil
		},
		install: func(res *importcheck.Result) (string, error) {
			if err := e.saveCertificate(in.Name, res.Chain); err != nil {
				return "", err
			}
			e.mu.Lock()
			defer e.mu.Unlock()
			mc.cert, mc.chain = res.Certificate, res.Chain
			e.syncCRLLocked() // its distribution points and issuing CAs
			e.evaluateLocked(false)
			return mc.status, nil
		},
	})
}

// saveCertificate writes the certificate and its whole verified chain, root
// included, as PEM to DIR/certs/NAME.pem, atomically: after a restart the
// certificate is judged against the same path (trust, revocation of every
// link, the CAs that may sign its CRLs) as before it.
func (e *Engine) saveCertificate(name string, chainCerts []*x509.Certificate) error {
	var buf []byte
	for _, c := range chainCerts {
		buf = append(buf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return persist.WriteFileAtomic(filepath.Join(certDir(e.cfg.StateDir), name+".pem"), buf, 0o600)
}

// loadCertificates finds every key and the certificates stored beside them.
func (e *Engine) loadCertificates(ctx context.Context) error {
	for storage, ks := range e.cfg.Keys {
		names, err := ks.Names()
		if err != nil {
			return fmt.Errorf("list %s keys: %w", storage, err)
		}
		for _, name := range names {
			s, err := ks.Signer(ctx, name)
			if err != nil {
				e.log.Error("key does not load; its certificate is unusable", "name", name, "storage", storage, "err", err)
				continue
			}
			mc := &managedCert{name: name, storage: storage, algorithm: keyAlgorithm(s.Public()), public: s.Public(), created: e.keyCreated(storage, name)}
			path := filepath.Join(certDir(e.cfg.StateDir), name+".pem")
			b, err := os.ReadFile(path)
			switch {
			case errors.Is(err, os.ErrNotExist):
			case err != nil:
				return fmt.Errorf("read %s: %w", path, err)
			default:
				certs, err := pemx.Certificates(b, pemx.DefaultLimits)
				if err != nil || len(certs) == 0 {
					return fmt.Errorf("%s does not hold a certificate (%v); move it aside to start", path, err)
				}
				mc.cert, mc.chain = certs[0], certs
			}
			e.certs[name] = mc
		}
	}
	return nil
}

func (e *Engine) publishCertificateEvent(event, name, cn, fingerprint string, crls []string) {
	if e.cfg.Bus == nil {
		return
	}
	leaves := []api.Leaf{{Name: "event", Value: event}, {Name: "name", Value: name}, {Name: "common-name", Value: cn}}
	if fingerprint != "" {
		leaves = append(leaves, api.Leaf{Name: "fingerprint", Value: fingerprint})
	}
	if len(crls) > 0 {
		leaves = append(leaves, api.Leaf{Name: "crl-urls", Value: crls})
	}
	e.cfg.Bus.Publish(api.Event{Kind: api.EventNotification, Time: e.clock.Now().UTC(), Notification: &api.Notification{Module: "pki-authority", Name: "certificate-event", Leaves: leaves}})
}

func (e *Engine) auditEvent(c api.Caller, typ, desc string, detail map[string]any, err error) {
	if e.cfg.Audit == nil {
		return
	}
	if werr := e.cfg.Audit.Write(audit.Event{Time: e.clock.Now().UTC(), User: c.User, Type: typ, Description: desc, Detail: detail, Permitted: true}); werr != nil {
		e.log.Error("audit log write failed", "type", typ, "err", werr)
	}
}

var (
	_ api.PKI         = (*Engine)(nil)
	_ api.Validator   = (*Engine)(nil)
	_ api.Applier     = (*Engine)(nil)
	_ api.StateSource = (*Engine)(nil)
)

// csrAuditDetail is the detail of a system.generate_csr audit event, with
// the subject fields given, as the SSR logs it.
func csrAuditDetail(in api.GenerateCSRInput, ok bool) map[string]any {
	d := map[string]any{"name": in.Name, "common_name": in.CommonName, "success": ok}
	for k, v := range map[string]string{
		"country_name": in.CountryName, "state_province_name": in.StateProvinceName,
		"locality_name": in.LocalityName, "organization_name": in.OrganizationName,
		"organizational_unit_name": in.OrganizationalUnitName, "email_address": in.EmailAddress,
	} {
		if v != "" {
			d[k] = v
		}
	}
	if in.ValidityPeriod > 0 {
		d["validity_period_days"] = in.ValidityPeriod
	}
	return d
}

// purpose names the extended key usages as openssl prints them ("TLS Web
// Client Authentication"), comma-separated; "N/A" when there are none.
func purpose(ekus []x509.ExtKeyUsage) string {
	names := map[x509.ExtKeyUsage]string{
		x509.ExtKeyUsageAny:             "Any Extended Key Usage",
		x509.ExtKeyUsageServerAuth:      "TLS Web Server Authentication",
		x509.ExtKeyUsageClientAuth:      "TLS Web Client Authentication",
		x509.ExtKeyUsageCodeSigning:     "Code Signing",
		x509.ExtKeyUsageEmailProtection: "E-mail Protection",
		x509.ExtKeyUsageIPSECEndSystem:  "IPSec End System",
		x509.ExtKeyUsageIPSECTunnel:     "IPSec Tunnel",
		x509.ExtKeyUsageIPSECUser:       "IPSec User",
		x509.ExtKeyUsageTimeStamping:    "Time Stamping",
		x509.ExtKeyUsageOCSPSigning:     "OCSP Signing",
	}
	var out []string
	for _, u := range ekus {
		if n, ok := names[u]; ok {
			out = append(out, n)
		} else {
			out = append(out, fmt.Sprintf("extended key usage %d", int(u)))
		}
	}
	if len(out) == 0 {
		return "N/A"
	}
	return strings.Join(out, ", ")
}

// specLeaf is the generate-private-key input leaf a refused key spec is
// about: the size of an RSA key, the curve of an ECC key, else the algorithm.
func specLeaf(s KeySpec) string {
	switch s.Algorithm {
	case keystore.AlgorithmRSA:
		return "rsa-key-size"
	case keystore.AlgorithmECC:
		return "ecc-curve"
	}
	return "algorithm"
}
