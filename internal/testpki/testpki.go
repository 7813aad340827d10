// Package testpki generates X.509 material at test time (CA hierarchies,
// leaf certificates, CRLs) from a fixed clock, so tests never depend on
// committed private keys or on the wall clock.
//
// It is for tests only: keys are created fresh in memory on every run and
// must never be written into the repository.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"sync"
	"time"
)

// KeyType selects the algorithm of a generated key.
type KeyType int

const (
	// ECDSAP256 is the default: fast to generate.
	ECDSAP256 KeyType = iota
	ECDSAP384
	ECDSAP521
	RSA1024 // too small on purpose, for "weak key" tests
	RSA2048
	RSA3072
	Ed25519
	// ECDSAP224 is a curve the agent does not allow.
	ECDSAP224
)

func (k KeyType) String() string {
	switch k {
	case ECDSAP256:
		return "ecdsa-p256"
	case ECDSAP384:
		return "ecdsa-p384"
	case ECDSAP521:
		return "ecdsa-p521"
	case RSA1024:
		return "rsa-1024"
	case RSA2048:
		return "rsa-2048"
	case RSA3072:
		return "rsa-3072"
	case Ed25519:
		return "ed25519"
	case ECDSAP224:
		return "ecdsa-p224"
	}
	return fmt.Sprintf("KeyType(%d)", int(k))
}

// NewKey creates a fresh private key of type kt.
func NewKey(kt KeyType) (crypto.Signer, error) {
	switch kt {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case ECDSAP521:
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case ECDSAP224:
		return ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	case RSA1024:
		return rsaKey(1024)
	case RSA2048:
		return rsaKey(2048)
	case RSA3072:
		return rsaKey(3072)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("testpki: unknown key type %v", kt)
}

func rsaKey(bits int) (crypto.Signer, error) {
	return rsa.GenerateKey(rand.Reader, bits)
}

// Options describe one certificate. The zero value issues a leaf valid
// from Now-1h to Now+365d with digitalSignature, serverAuth+clientAuth and
// a fresh ECDSA P-256 key.
type Options struct {
	// CN is the subject common name; Subject, when set, wins over CN.
	CN      string
	Subject *pkix.Name

	// NotBefore and NotAfter default to Now-1h and Now+365d.
	NotBefore, NotAfter time.Time

	// KeyType is used when Key is nil.
	KeyType KeyType
	// Key, when set, is the subject's key (reuse to save RSA generation).
	Key crypto.Signer

	IsCA bool
	// MaxPathLen is copied as is; MaxPathLenZero marks an explicit 0.
	MaxPathLen     int
	MaxPathLenZero bool

	// KeyUsage defaults to certSign|cRLSign|digitalSignature for a CA and
	// digitalSignature (plus keyEncipherment for RSA) for a leaf.
	// NoKeyUsage omits the extension entirely.
	KeyUsage   x509.KeyUsage
	NoKeyUsage bool

	// ExtKeyUsage defaults to none for a CA and serverAuth+clientAuth for
	// a leaf. NoExtKeyUsage forces none on a leaf.
	ExtKeyUsage   []x509.ExtKeyUsage
	NoExtKeyUsage bool

	DNSNames       []string
	IPAddresses    []net.IP
	URIs           []*url.URL
	EmailAddresses []string

	CRLDistributionPoints []string

	// Serial defaults to a per-generator counter.
	Serial *big.Int

	// ExtraExtensions are added verbatim (e.g. a critical unknown one).
	ExtraExtensions []pkix.Extension
}

// Cert is a generated certificate with its private key.
type Cert struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// PEM returns the certificate as one "CERTIFICATE" PEM block.
func (c *Cert) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
}

// KeyPEM returns the private key as a PKCS#8 "PRIVATE KEY" block.
func (c *Cert) KeyPEM() []byte { return KeyPEM(c.Key) }

// KeyPEM encodes k as a PKCS#8 "PRIVATE KEY" PEM block. It panics on a key
// type x509 cannot marshal, which cannot happen for keys from NewKey.
func KeyPEM(k crypto.Signer) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(fmt.Sprintf("testpki: marshal key: %v", err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// PEM concatenates the certificates' PEM blocks in the given order.
func PEM(certs ...*Cert) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, c.PEM()...)
	}
	return out
}

// Pool returns a pool holding the given certificates.
func Pool(certs ...*Cert) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c.Cert)
	}
	return p
}

// Generator issues certificates relative to a fixed time. It is safe for
// concurrent use.
type Generator struct {
	// Now is the reference time for default validity windows.
	Now time.Time

	mu     sync.Mutex
	serial int64
}

// New returns a generator whose default validity windows are around now.
func New(now time.Time) *Generator { return &Generator{Now: now, serial: 0x1000} }

func (g *Generator) nextSerial() *big.Int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.serial++
	return big.NewInt(g.serial)
}

// Root creates a self-signed CA. opts.IsCA is forced true.
func (g *Generator) Root(opts Options) (*Cert, error) {
	opts.IsCA = true
	if opts.CN == "" && opts.Subject == nil {
		opts.CN = "testpki root"
	}
	return g.issue(nil, opts)
}

// Issue creates a certificate signed by parent (a CA from Root or Issue).
func (g *Generator) Issue(parent *Cert, opts Options) (*Cert, error) {
	if parent == nil {
		return nil, fmt.Errorf("testpki: Issue needs a parent; use Root for a self-signed CA")
	}
	return g.issue(parent, opts)
}

// SelfSigned creates a self-signed certificate with opts as given (IsCA is
// not forced, so it can make a self-signed leaf).
func (g *Generator) SelfSigned(opts Options) (*Cert, error) { return g.issue(nil, opts) }

// Hierarchy builds a chain of tiers CAs: result[0] is the root and
// result[tiers-1] the lowest intermediate. Names are "testpki tier N".
func (g *Generator) Hierarchy(tiers int) ([]*Cert, error) {
	if tiers < 1 {
		return nil, fmt.Errorf("testpki: hierarchy needs at least 1 tier, got %d", tiers)
	}
	out := make([]*Cert, 0, tiers)
	root, err := g.Root(Options{CN: "testpki tier 1"})
	if err != nil {
		return nil, err
	}
	out = append(out, root)
	for i := 2; i <= tiers; i++ {
		c, err := g.Issue(out[len(out)-1], Options{CN: fmt.Sprintf("testpki tier %d", i), IsCA: true})
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (g *Generator) issue(parent *Cert, opts Options) (*Cert, error) {
	key := opts.Key
	if key == nil {
		var err error
		if key, err = NewKey(opts.KeyType); err != nil {
			return nil, err
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          opts.Serial,
		NotBefore:             opts.NotBefore,
		NotAfter:              opts.NotAfter,
		BasicConstraintsValid: true,
		IsCA:                  opts.IsCA,
		MaxPathLen:            opts.MaxPathLen,
		MaxPathLenZero:        opts.MaxPathLenZero,
		DNSNames:              opts.DNSNames,
		IPAddresses:           opts.IPAddresses,
		URIs:                  opts.URIs,
		EmailAddresses:        opts.EmailAddresses,
		CRLDistributionPoints: opts.CRLDistributionPoints,
		ExtraExtensions:       opts.ExtraExtensions,
	}
	if opts.Subject != nil {
		tmpl.Subject = *opts.Subject
	} else {
		cn := opts.CN
		if cn == "" {
			cn = "testpki leaf"
		}
		tmpl.Subject = pkix.Name{CommonName: cn, Organization: []string{"pki-agent tests"}}
	}
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = g.nextSerial()
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = g.Now.Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = g.Now.Add(365 * 24 * time.Hour)
	}
	switch {
	case opts.NoKeyUsage:
	case opts.KeyUsage != 0:
		tmpl.KeyUsage = opts.KeyUsage
	case opts.IsCA:
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	default:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		if _, ok := key.(*rsa.PrivateKey); ok {
			tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
		}
	}
	switch {
	case opts.NoExtKeyUsage:
	case opts.ExtKeyUsage != nil:
		tmpl.ExtKeyUsage = opts.ExtKeyUsage
	case !opts.IsCA:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}

	parentCert, signer := tmpl, key
	if parent != nil {
		parentCert, signer = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("testpki: create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("testpki: parse generated certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	return &Cert{Cert: cert, Key: key}, nil
}

// CRL returns a DER CRL signed by issuer listing revokedSerials (each
// revoked at thisUpdate), with the given CRL number.
func (g *Generator) CRL(issuer *Cert, revokedSerials []*big.Int, thisUpdate, nextUpdate time.Time, number int64) ([]byte, error) {
	return CRL(issuer, revokedSerials, thisUpdate, nextUpdate, number)
}

// CRL returns a DER CRL signed by issuer listing revokedSerials (each
// revoked at thisUpdate), with the given CRL number.
func CRL(issuer *Cert, revokedSerials []*big.Int, thisUpdate, nextUpdate time.Time, number int64) ([]byte, error) {
	return CRLWith(issuer, CRLOptions{Revoked: revokedSerials, ThisUpdate: thisUpdate, NextUpdate: nextUpdate, Number: number})
}

// CRLOptions describe a CRL for CRLWith.
type CRLOptions struct {
	Revoked                []*big.Int
	ThisUpdate, NextUpdate time.Time
	Number                 int64
	// ExtraExtensions are added verbatim to the CRL (e.g. a critical
	// delta-CRL indicator).
	ExtraExtensions []pkix.Extension
}

// CRLWith returns a DER CRL signed by issuer as described by o.
func CRLWith(issuer *Cert, o CRLOptions) ([]byte, error) {
	entries := make([]x509.RevocationListEntry, 0, len(o.Revoked))
	for _, s := range o.Revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: o.ThisUpdate})
	}
	tmpl := &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    big.NewInt(o.Number),
		ThisUpdate:                o.ThisUpdate,
		NextUpdate:                o.NextUpdate,
		ExtraExtensions:           o.ExtraExtensions,
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer.Cert, issuer.Key)
	if err != nil {
		return nil, fmt.Errorf("testpki: create CRL for %q: %w", issuer.Cert.Subject.CommonName, err)
	}
	return der, nil
}

// CRLPEM wraps a DER CRL in an "X509 CRL" PEM block.
func CRLPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// Must returns v and panics when err is not nil, like template.Must; a
// panic fails the test that called it. Use it as
// testpki.Must(g.Issue(ca, opts)).
func Must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
