package pki

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/internal/persist"
	"github.com/pkiagent/pkiagent/pki/crl"
	"github.com/pkiagent/pkiagent/pki/csr"
	"github.com/pkiagent/pkiagent/pki/importcheck"
	"github.com/pkiagent/pkiagent/pki/keystore"
)

// Key names a rotation reserves beside a certificate name NAME
// (api.RotateNewSuffix, api.RotateOldSuffix): the key a certz Rotate
// generates waits as NAME.certz-new until its certificate is installed; the
// key (and certificate, DIR/certs/NAME.certz-old.pem) it replaces waits as
// NAME.certz-old until the rotation is finalized. RecoverRotations undoes a
// rotation that a crash interrupted.

// keyRenamer and keyDeleter are abilities of the file and TPM key stores
// that rotation needs beyond KeyStore.
type (
	keyRenamer interface{ Rename(from, to string) error }
	keyDeleter interface{ Delete(name string) error }
)

// Rotation is one gNSI certz Rotate (or one enrollment, enroll.go) of a
// managed certificate: a key generated aside, a certificate installed
// (live, so the client can test it) and then either committed or rolled
// back to exactly what was there.
// It is not safe for concurrent use; callers run one rotation of a name at
// a time.
type Rotation struct {
	e      *Engine
	name   string
	caller api.Caller
	// via is who rotates, for logs and audit: "certz" or "enrollment".
	via string

	newKey     crypto.Signer // generated in this rotation; nil when none
	newStorage string

	installed bool
	swapped   bool        // NAME holds the new key; the old one is NAME.certz-old
	hadKey    bool        // NAME had a key before the install
	prev      managedCert // NAME before the install
	prevFile  []byte      // DIR/certs/NAME.pem before the install; nil when absent
	done      bool
}

// BeginRotation starts a rotation of the certificate name.
func (e *Engine) BeginRotation(name string, c api.Caller) (*Rotation, error) {
	if err := api.CheckName("name", name, api.MaxRotatedNameLen); err != nil {
		return nil, err
	}
	if strings.HasSuffix(name, api.RotateNewSuffix) || strings.HasSuffix(name, api.RotateOldSuffix) {
		return nil, fmt.Errorf("%w: name %s ends in a suffix reserved for rotation", api.ErrInvalid, name)
	}
	return &Rotation{e: e, name: name, caller: c, via: "certz"}, nil
}

// Name is the certificate being rotated.
func (r *Rotation) Name() string { return r.name }

// KeyStorage is where a key generated for name goes: beside the existing
// key, else in the file store.
func (e *Engine) KeyStorage(name string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if mc, ok := e.certs[name]; ok {
		return mc.storage
	}
	return "file"
}

// GenerateCSR generates a key on the box for the rotation (key.Name is
// ignored; key.KeyStorage empty means KeyStorage(name)) and returns a CSR
// signed by it. The key stays aside until Install. Calling it again
// replaces the key generated before.
func (r *Rotation) GenerateCSR(ctx context.Context, key api.GenerateKeyInput, in api.GenerateCSRInput) (pemCSR string, err error) {
	e := r.e
	in.Name = r.name
	defer func() {
		if err != nil {
			e.stats.csrFail.Add(1)
		} else {
			e.stats.csrOK.Add(1)
		}
		e.saveCounters()
		e.auditEvent(r.caller, "system.generate_csr", fmt.Sprintf("certz Rotate: generate key and CSR for %s", r.name), map[string]any{"name": r.name, "common_name": in.CommonName, "success": err == nil}, err)
	}()
	if r.installed {
		return "", fmt.Errorf("%w: a certificate was already installed in this rotation of %s; finalize it and rotate again for another key", api.ErrInvalid, r.name)
	}
	if key.KeyStorage == "" {
		key.KeyStorage = e.KeyStorage(r.name)
	}
	ks, ok := e.cfg.Keys[key.KeyStorage]
	if !ok {
		return "", fmt.Errorf("%w: key-storage %s is not available (a TPM needs --tpm)", api.ErrInvalid, key.KeyStorage)
	}
	spec := KeySpec{Algorithm: key.Algorithm, RSABits: int(key.RSAKeySize), Curve: key.ECCCurve}
	if err := spec.Validate(); err != nil {
		return "", fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	staged := r.name + api.RotateNewSuffix
	if err := r.dropNewKey(); err != nil {
		return "", err
	}
	signer, err := ks.Generate(ctx, staged, spec)
	if errors.Is(err, keystore.ErrExists) { // left by a rotation a crash interrupted
		if d, ok := ks.(keyDeleter); ok {
			if derr := d.Delete(staged); derr == nil {
				signer, err = ks.Generate(ctx, staged, spec)
			}
		}
	}
	switch {
	case errors.Is(err, keystore.ErrUnsupported):
		return "", fmt.Errorf("%w: %s storage cannot hold a %s key: %v", api.ErrInvalid, key.KeyStorage, spec, err)
	case err != nil:
		return "", fmt.Errorf("generate a %s key for %s in %s storage: %w", spec, r.name, key.KeyStorage, err)
	}
	r.newKey, r.newStorage = signer, key.KeyStorage
	p, err := csr.Create(csrRequest(in), signer)
	if err != nil {
		if errors.Is(err, csr.ErrInvalidField) {
			return "", fmt.Errorf("%w: %w", api.ErrInvalid, err)
		}
		return "", err
	}
	e.log.Info("certz: key generated and CSR signed", "name", r.name, "algorithm", spec.String(), "storage", key.KeyStorage, "user", r.caller.User)
	e.publishCertificateEvent("generate-csr", r.name, in.CommonName, "", nil)
	return string(p), nil
}

func csrRequest(in api.GenerateCSRInput) csr.Request {
	req := csr.Request{Subject: csr.Subject{
		CommonName: in.CommonName, CountryName: in.CountryName, StateProvinceName: in.StateProvinceName,
		LocalityName: in.LocalityName, OrganizationName: in.OrganizationName,
		OrganizationalUnitName: in.OrganizationalUnitName, EmailAddress: in.EmailAddress,
	}}
	if s := in.SubjectAltName; s != nil {
		for _, v := range s.DNS {
			req.SANs = append(req.SANs, csr.SAN{Kind: csr.DNS, Value: v})
		}
		for _, v := range s.IP {
			req.SANs = append(req.SANs, csr.SAN{Kind: csr.IP, Value: v})
		}
		for _, v := range s.URI {
			req.SANs = append(req.SANs, csr.SAN{Kind: csr.URI, Value: v})
		}
	}
	return req
}

// dropNewKey destroys a key generated in this rotation and not installed.
func (r *Rotation) dropNewKey() error {
	if r.newKey == nil || r.swapped {
		return nil
	}
	d, ok := r.e.cfg.Keys[r.newStorage].(keyDeleter)
	if !ok {
		return fmt.Errorf("%s storage cannot delete keys", r.newStorage)
	}
	if err := d.Delete(r.name + api.RotateNewSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("discard the key generated for %s: %w", r.name, err)
	}
	r.newKey = nil
	return nil
}

// Install runs the three import checks on certPEM against the key of this
// rotation (the one generated by GenerateCSR, else the existing key of the
// name) and makes it the certificate in force. What it replaces is kept
// until Commit or Rollback. It may be called again to replace the
// certificate installed before.
func (r *Rotation) Install(ctx context.Context, certPEM string) (api.ImportCertificateOutput, error) {
	e := r.e
	var pub crypto.PublicKey
	return e.importCertificate(ctx, certImport{
		caller: r.caller, name: r.name, pem: certPEM,
		what: "certificate " + r.name, audit: r.via + ": install certificate " + r.name,
		detail:  map[string]any{"via": r.via},
		noTrust: " (upload a trust bundle)",
		key: func(ctx context.Context) (crypto.PublicKey, error) {
			if r.newKey != nil {
				pub = r.newKey.Public()
				return pub, nil
			}
			s, _, err := e.signerFor(ctx, r.name)
			if err != nil {
				return nil, fmt.Errorf("%w: no private key for %s on the box: send a GenerateCSRRequest in this Rotate first (keys are generated on the box and never imported)", api.ErrMissing, r.name)
			}
			pub = s.Public()
			return pub, nil
		},
		install: func(res *importcheck.Result) (string, error) {
			if !r.installed {
				if err := r.saveBefore(); err != nil {
					return "", err
				}
			}
			if r.newKey != nil && !r.swapped {
				if err := r.swapKeys(); err != nil {
					return "", err
				}
			}
			if err := e.saveCertificate(r.name, res.Chain); err != nil {
				return "", errors.Join(err, r.Rollback(ctx))
			}
			e.mu.Lock()
			mc := e.certs[r.name]
			if mc == nil || r.swapped {
				mc = &managedCert{name: r.name, storage: r.prev.storage, algorithm: keyAlgorithm(pub), public: pub}
				if r.swapped {
					mc.storage = r.newStorage
				}
				mc.created = e.keyCreated(mc.storage, r.name)
				e.certs[r.name] = mc
			}
			mc.cert, mc.chain = res.Certificate, res.Chain
			e.evaluateLocked(false)
			status := mc.status
			e.mu.Unlock()
			r.installed = true
			e.log.Info(r.via+": certificate installed, waiting for finalize", "name", r.name, "fingerprint", res.Info.FingerprintSHA256, "user", r.caller.User)
			return status, nil
		},
	})
}

// saveBefore records the certificate's state before the first install,
// in memory and, for a crash, as DIR/certs/NAME.certz-old.pem.
func (r *Rotation) saveBefore() error {
	e := r.e
	e.mu.Lock()
	mc, ok := e.certs[r.name]
	if ok {
		r.prev = *mc
	}
	e.mu.Unlock()
	r.hadKey = ok
	b, err := os.ReadFile(certPath(e.cfg.StateDir, r.name))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.prevFile = nil
	case err != nil:
		return fmt.Errorf("read the certificate %s in force: %w", r.name, err)
	default:
		r.prevFile = b
		if r.newKey != nil && ok {
			if err := persist.WriteFileAtomic(certPath(e.cfg.StateDir, r.name+api.RotateOldSuffix), b, 0o600); err != nil {
				return fmt.Errorf("keep the certificate %s in force: %w", r.name, err)
			}
		}
	}
	return nil
}

func certPath(stateDir, name string) string { return filepath.Join(certDir(stateDir), name+".pem") }

// swapKeys moves the current key of NAME to NAME.certz-old and the new
// key to NAME.
func (r *Rotation) swapKeys() error {
	e := r.e
	newStore, ok := e.cfg.Keys[r.newStorage].(keyRenamer)
	if !ok {
		return fmt.Errorf("%s storage cannot rename keys", r.newStorage)
	}
	var oldStore keyRenamer
	if r.hadKey {
		if oldStore, ok = e.cfg.Keys[r.prev.storage].(keyRenamer); !ok {
			return fmt.Errorf("%s storage cannot rename keys", r.prev.storage)
		}
		if err := oldStore.Rename(r.name, r.name+api.RotateOldSuffix); err != nil {
			return fmt.Errorf("set the key of %s aside: %w", r.name, err)
		}
	}
	if err := newStore.Rename(r.name+api.RotateNewSuffix, r.name); err != nil {
		err = fmt.Errorf("put the new key of %s in place: %w", r.name, err)
		if r.hadKey {
			if rerr := oldStore.Rename(r.name+api.RotateOldSuffix, r.name); rerr != nil {
				err = errors.Join(err, fmt.Errorf("restore the key of %s: %w", r.name, rerr))
			}
		}
		return err
	}
	r.swapped = true
	return nil
}

// Commit ends the rotation keeping what was installed; the replaced key is
// destroyed. A key generated and never installed is destroyed too.
func (r *Rotation) Commit() error {
	if r.done {
		return nil
	}
	r.done = true
	e := r.e
	var errs []error
	if r.swapped && r.hadKey {
		if d, ok := e.cfg.Keys[r.prev.storage].(keyDeleter); ok {
			if err := d.Delete(r.name + api.RotateOldSuffix); err != nil {
				errs = append(errs, fmt.Errorf("destroy the replaced key of %s: %w", r.name, err))
			}
		}
	}
	if err := persist.RemoveIfExists(certPath(e.cfg.StateDir, r.name+api.RotateOldSuffix)); err != nil {
		errs = append(errs, err)
	}
	if err := r.dropNewKey(); err != nil {
		errs = append(errs, err)
	}
	err := errors.Join(errs...)
	if r.via == "certz" { // an enrollment audits the whole attempt
		e.auditEvent(r.caller, "system.certz_rotate", fmt.Sprintf("certz Rotate of %s finalized", r.name), map[string]any{"name": r.name, "installed": r.installed, "new_key": r.swapped}, err)
	}
	e.log.Info(r.via+": rotation finalized", "name", r.name, "installed", r.installed, "new_key", r.swapped, "user", r.caller.User)
	return err
}

// Rollback restores the key and certificate of the name as they were when
// the rotation began and destroys a key it generated. It is a no-op after
// Commit or a previous Rollback.
func (r *Rotation) Rollback(ctx context.Context) error {
	if r.done {
		return nil
	}
	r.done = true
	e := r.e
	var errs []error
	if r.installed || r.swapped {
		if r.swapped {
			d, _ := e.cfg.Keys[r.newStorage].(keyDeleter)
			if d == nil {
				errs = append(errs, fmt.Errorf("%s storage cannot delete keys", r.newStorage))
			} else if err := d.Delete(r.name); err != nil {
				errs = append(errs, fmt.Errorf("destroy the new key of %s: %w", r.name, err))
			}
			if r.hadKey {
				if err := e.cfg.Keys[r.prev.storage].(keyRenamer).Rename(r.name+api.RotateOldSuffix, r.name); err != nil {
					errs = append(errs, fmt.Errorf("restore the key of %s: %w", r.name, err))
				}
			}
		}
		path := certPath(e.cfg.StateDir, r.name)
		if r.prevFile != nil {
			if err := persist.WriteFileAtomic(path, r.prevFile, 0o600); err != nil {
				errs = append(errs, fmt.Errorf("restore the certificate of %s: %w", r.name, err))
			}
		} else if err := persist.RemoveIfExists(path); err != nil {
			errs = append(errs, fmt.Errorf("remove the certificate of %s: %w", r.name, err))
		}
		e.mu.Lock()
		if r.hadKey {
			prev := r.prev
			e.certs[r.name] = &prev
		} else {
			delete(e.certs, r.name)
		}
		e.evaluateLocked(false)
		e.mu.Unlock()
	} else if err := r.dropNewKey(); err != nil {
		errs = append(errs, err)
	}
	if err := persist.RemoveIfExists(certPath(e.cfg.StateDir, r.name+api.RotateOldSuffix)); err != nil {
		errs = append(errs, err)
	}
	err := errors.Join(errs...)
	if err != nil {
		e.log.Error(r.via+": rollback incomplete", "name", r.name, "err", err)
	} else {
		e.log.Info(r.via+": rotation rolled back", "name", r.name, "installed", r.installed, "user", r.caller.User)
	}
	if r.via == "certz" {
		e.auditEvent(r.caller, "system.certz_rotate", fmt.Sprintf("certz Rotate of %s rolled back", r.name), map[string]any{"name": r.name, "installed": r.installed}, err)
	}
	return err
}

// TLSCertificate returns the certificate name with its chain (without the
// root) and a handle on its key (file or TPM), for a TLS server. It wraps
// api.ErrMissing when the name has no certificate yet.
func (e *Engine) TLSCertificate(ctx context.Context, name string) (tls.Certificate, error) {
	e.mu.Lock()
	var leaf *x509.Certificate
	var chain []*x509.Certificate
	var storage string
	if mc, ok := e.certs[name]; ok {
		leaf, chain, storage = mc.cert, mc.chain, mc.storage
	}
	e.mu.Unlock()
	if leaf == nil {
		return tls.Certificate{}, fmt.Errorf("%w: %s has no certificate yet: generate a key and a CSR, and import the signed certificate (or rotate it with gNSI certz)", api.ErrMissing, name)
	}
	signer, err := e.cfg.Keys[storage].Signer(ctx, name)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load the key of %s from %s storage: %w", name, storage, err)
	}
	if k, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(leaf.PublicKey) {
		return tls.Certificate{}, fmt.Errorf("the key of %s does not match its certificate (a rotation is in progress?)", name)
	}
	tc := tls.Certificate{PrivateKey: signer, Leaf: leaf}
	for i, c := range chain {
		if i > 0 && string(c.RawSubject) == string(c.RawIssuer) {
			break // a root: clients have it
		}
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc, nil
}

// RecoverRotations undoes what a crash left of rotations that were not
// finalized: keys NAME.certz-new are destroyed, and where NAME.certz-old
// exists the new key of NAME is destroyed and the old key and certificate
// are put back. A first rotation of a name that had no key cannot be told
// from a finished one and keeps its certificate. Call it after New and
// before serving.
func (e *Engine) RecoverRotations(ctx context.Context) error {
	var errs []error
	changed := false
	for storage, ks := range e.cfg.Keys {
		names, err := ks.Names()
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s keys: %w", storage, err))
			continue
		}
		for _, n := range names {
			base, isNew := strings.CutSuffix(n, api.RotateNewSuffix)
			if !isNew {
				var isOld bool
				if base, isOld = strings.CutSuffix(n, api.RotateOldSuffix); !isOld {
					continue
				}
				errs = append(errs, e.restoreOld(storage, base))
			} else if d, ok := ks.(keyDeleter); ok {
				errs = append(errs, d.Delete(n))
			}
			e.log.Warn("certz: undid a rotation a restart interrupted before finalize", "name", base, "key", n, "storage", storage)
			changed = true
		}
	}
	// A certificate set aside by a rotation whose key is gone was finalized.
	olds, _ := filepath.Glob(filepath.Join(certDir(e.cfg.StateDir), "*"+api.RotateOldSuffix+".pem"))
	for _, p := range olds {
		errs = append(errs, persist.RemoveIfExists(p))
	}
	if changed {
		e.mu.Lock()
		for n := range e.certs {
			delete(e.certs, n)
		}
		errs = append(errs, e.loadCertificates(ctx))
		e.evaluateLocked(false)
		e.mu.Unlock()
	}
	return errors.Join(errs...)
}

// restoreOld puts NAME.certz-old back as NAME, with its certificate.
func (e *Engine) restoreOld(storage, name string) error {
	for _, ks := range e.cfg.Keys {
		if d, ok := ks.(keyDeleter); ok {
			if err := d.Delete(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	r, ok := e.cfg.Keys[storage].(keyRenamer)
	if !ok {
		return fmt.Errorf("%s storage cannot rename keys", storage)
	}
	if err := r.Rename(name+api.RotateOldSuffix, name); err != nil {
		return err
	}
	old, cur := certPath(e.cfg.StateDir, name+api.RotateOldSuffix), certPath(e.cfg.StateDir, name)
	err := persist.Rename(old, cur)
	if errors.Is(err, fs.ErrNotExist) {
		return persist.RemoveIfExists(cur)
	}
	return err
}

// InstallCRLs puts the CRL bundle of a certz profile in force (see
// crl.Manager.Install); undo reinstalls the bundle it replaced.
func (e *Engine) InstallCRLs(ctx context.Context, profile string, ders [][]byte) (undo func(context.Context) error, err error) {
	prev, err := e.revocation.m.Install(ctx, profile, ders)
	if err != nil {
		for _, kind := range []error{crl.ErrNotCRL, crl.ErrMalformed, crl.ErrUntrustedIssuer, crl.ErrSignature, crl.ErrUnhandledExtension, crl.ErrOlder, crl.ErrTooLarge} {
			if errors.Is(err, kind) {
				return nil, fmt.Errorf("%w: %w", api.ErrInvalid, err)
			}
		}
		return nil, err
	}
	return func(ctx context.Context) error {
		_, err := e.revocation.m.Install(ctx, profile, prev)
		return err
	}, nil
}
