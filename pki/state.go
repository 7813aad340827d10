package pki

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"time"

	"github.com/openconfig/ygot/ygot"

	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/pki/chain"
	"github.com/pkiagent/pkiagent/pki/expiry"
)

// State implements api.StateSource: certificates, trusted CA state,
// alarms and counters, as a tree the caller must not modify.
func (e *Engine) State() *gen.Device {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.published == nil {
		e.published = e.stateLocked()
	}
	// Counters move without evaluation; refresh them on every read.
	st := *e.published
	st.Stats = e.statsTree()
	e.routers.fillState(&st)
	return &st
}

func (e *Engine) stateLocked() *gen.Device {
	d := &gen.Device{}
	for name, mc := range e.certs {
		c, _ := d.GetOrCreateCertificates().NewCertificate(name)
		c.KeyAlgorithm = ygot.String(mc.algorithm)
		c.KeyStorage = keyStorageEnum(mc.storage)
		c.Status = certStatusEnum(mc.status)
		if mc.cert != nil {
			info := chain.Info(mc.cert)
			c.Subject, c.Issuer, c.Serial = ygot.String(info.Subject), ygot.String(info.Issuer), ygot.String(info.Serial)
			c.NotBefore = ygot.String(info.NotBefore.UTC().Format(timeFormat))
			c.NotAfter = ygot.String(info.NotAfter.UTC().Format(timeFormat))
			c.FingerprintSha256 = ygot.String(info.FingerprintSHA256)
			c.CrlDistributionPoint = info.CRLDistributionPoints
			c.Pem = ygot.String(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: mc.cert.Raw})))
		}
	}
	for name, mc := range e.certs {
		e.keyStateLocked(d, name, mc)
	}
	// A configured client-certificate without key or certificate is listed
	// too, as no-certificate (its certificate-missing alarm says what to do).
	for _, name := range e.certificates.names() {
		if _, ok := e.certs[name]; !ok {
			c, _ := d.GetOrCreateCertificates().NewCertificate(name)
			c.Status = gen.PkiAuthority_CertificateStatus_no_certificate
		}
	}
	for name, t := range e.trust.view().trusted {
		ca := d.GetOrCreateAuthority().GetOrCreateTrustedCaCertificate(name)
		st := ca.GetOrCreateState()
		switch {
		case len(t.bundle.Problems) == 0:
			st.Status = gen.PkiAuthority_Authority_TrustedCaCertificate_State_Status_valid
		case t.mode == "warn":
			st.Status = gen.PkiAuthority_Authority_TrustedCaCertificate_State_Status_warning
		default:
			st.Status = gen.PkiAuthority_Authority_TrustedCaCertificate_State_Status_invalid
		}
		st.Warning = t.bundle.Warnings()
		for _, info := range t.bundle.Info {
			c, err := st.NewCertificate(info.FingerprintSHA256)
			if err != nil {
				continue // the same certificate twice in one bundle
			}
			c.Subject, c.Issuer, c.Serial = ygot.String(info.Subject), ygot.String(info.Issuer), ygot.String(info.Serial)
			c.NotBefore = ygot.String(info.NotBefore.UTC().Format(timeFormat))
			c.NotAfter = ygot.String(info.NotAfter.UTC().Format(timeFormat))
		}
	}
	for _, a := range e.alarms.Active() {
		al, _ := d.GetOrCreateAlarms().NewAlarm(a.ID)
		al.Resource, al.Text = ygot.String(a.Resource), ygot.String(a.Text)
		al.Category = alarmCategoryEnum(a.Category)
		al.Severity = severityEnum(a.Severity)
		al.TimeRaised = ygot.String(a.TimeRaised.UTC().Format(timeFormat))
	}
	e.revocation.fillState(d)
	e.enroll.enrollStateLocked(d)
	d.Stats = e.statsTree()
	return d
}

func (e *Engine) statsTree() *gen.PkiAuthority_Stats {
	s := &e.stats
	cs := e.revocation.m.Stats()
	sec := &gen.PkiAuthority_Stats_Security{
		Csr:               &gen.PkiAuthority_Stats_Security_Csr{Success: ygot.Uint64(s.csrOK.Load()), Failure: ygot.Uint64(s.csrFail.Load())},
		CertificateImport: &gen.PkiAuthority_Stats_Security_CertificateImport{Success: ygot.Uint64(s.importOK.Load()), Failure: ygot.Uint64(s.importFail.Load())},
		CrlFetch:          &gen.PkiAuthority_Stats_Security_CrlFetch{Success: ygot.Uint64(cs.FetchSuccess), Failure: ygot.Uint64(cs.FetchFailure)},
		CrlIngestion:      &gen.PkiAuthority_Stats_Security_CrlIngestion{Success: ygot.Uint64(cs.IngestionSuccess), Failure: ygot.Uint64(cs.IngestionFailure)},
		Certificate:       &gen.PkiAuthority_Stats_Security_Certificate{Expired: ygot.Uint64(s.certExpired.Load()), Invalid: ygot.Uint64(s.certInvalid.Load()), Revoked: ygot.Uint64(s.certRevoked.Load())},
		PeerCertificate:   &gen.PkiAuthority_Stats_Security_PeerCertificate{Expired: ygot.Uint64(s.peerExpired.Load()), Invalid: ygot.Uint64(s.peerInvalid.Load()), Revoked: ygot.Uint64(s.peerRevoked.Load())},
		Enrollment:        &gen.PkiAuthority_Stats_Security_Enrollment{Success: ygot.Uint64(s.enrollOK.Load()), Failure: ygot.Uint64(s.enrollFail.Load())},
	}
	return &gen.PkiAuthority_Stats{Security: sec}
}

func keyStorageEnum(s string) gen.E_PkiAuthority_KeyStorage {
	if s == "tpm" {
		return gen.PkiAuthority_KeyStorage_tpm
	}
	return gen.PkiAuthority_KeyStorage_file
}

func certStatusEnum(s string) gen.E_PkiAuthority_CertificateStatus {
	for v, def := range gen.ΛEnum["E_PkiAuthority_CertificateStatus"] {
		if def.Name == s {
			return gen.E_PkiAuthority_CertificateStatus(v)
		}
	}
	return gen.PkiAuthority_CertificateStatus_invalid
}

func alarmCategoryEnum(s string) gen.E_PkiAuthority_AlarmCategory {
	for v, def := range gen.ΛEnum["E_PkiAuthority_AlarmCategory"] {
		if def.Name == s {
			return gen.E_PkiAuthority_AlarmCategory(v)
		}
	}
	return gen.PkiAuthority_AlarmCategory_certificate_invalid
}

func severityEnum(s expiry.Severity) gen.E_PkiAuthority_Severity {
	switch strings.ToLower(s.String()) {
	case "minor":
		return gen.PkiAuthority_Severity_minor
	case "major":
		return gen.PkiAuthority_Severity_major
	}
	return gen.PkiAuthority_Severity_critical
}

// keyStateLocked lists the key of mc under /keys with its public half.
func (e *Engine) keyStateLocked(d *gen.Device, name string, mc *managedCert) {
	pub := mc.public
	if pub == nil {
		return
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return
	}
	k, _ := d.GetOrCreateKeys().NewKey(name)
	k.KeyStorage = keyStorageEnum(mc.storage)
	k.PublicKey = ygot.String(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	if !mc.created.IsZero() {
		k.Created = ygot.String(mc.created.UTC().Format(timeFormat))
	}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		k.Algorithm, k.Size = ygot.String("rsa"), ygot.Uint16(uint16(p.N.BitLen()))
	case *ecdsa.PublicKey:
		k.Algorithm, k.Size = ygot.String("ecc"), ygot.Uint16(uint16(p.Curve.Params().BitSize))
		k.Curve = ygot.String(map[int]string{256: "secp256r1", 384: "secp384r1", 521: "secp521r1"}[p.Curve.Params().BitSize])
	case ed25519.PublicKey:
		k.Algorithm = ygot.String("ed25519")
	}
}

// keyCreated is when the key store of storage wrote key name, to the
// second; zero when it cannot say.
func (e *Engine) keyCreated(storage, name string) time.Time {
	ks, ok := e.cfg.Keys[storage].(interface {
		Created(name string) (time.Time, error)
	})
	if !ok {
		return time.Time{}
	}
	t, err := ks.Created(name)
	if err != nil {
		e.log.Warn("the creation time of a key is unknown", "name", name, "storage", storage, "err", err)
		return time.Time{}
	}
	return t.Truncate(time.Second)
}
