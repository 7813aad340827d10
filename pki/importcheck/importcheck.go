// Package importcheck runs the three checks a certificate must pass before
// the agent stores it beside its private key: (1) the input holds no
// private key or PKCS#12; (2) it parses and fits a router certificate, its
// key and a configured trusted CA; (3) no certificate of its path is
// revoked. Each failure is an *Error with its own Category and Reason.
//
// Decisions: the first PEM block is the router certificate and any further
// blocks are intermediates offered for path building (never trusted by
// themselves). The key usage extension must be present and include
// digitalSignature. The extended key usage must be present and include
// serverAuth or clientAuth (anyExtendedKeyUsage alone is refused, as is a
// certificate without the extension: a router certificate is used for
// TLS, and naming the purpose is what CAs for routers do). Keys must be RSA
// of at least 2048 bits or ECDSA on P-256, P-384 or P-521.
package importcheck

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/pkiagent/pkiagent/internal/pemx"
	"github.com/pkiagent/pkiagent/pki/chain"
)

// MinRSABits is the smallest RSA key accepted.
const MinRSABits = 2048

// RevocationIndex answers whether a serial number issued by the CA whose
// subject is rawIssuer (the issuing CA's RawSubject, DER) is on a known
// CRL. Implementations must be safe for concurrent use.
type RevocationIndex interface {
	IsRevoked(rawIssuer []byte, serial *big.Int) bool
}

// TrustedCA is one configured trusted-ca-certificate bundle.
type TrustedCA struct {
	Name  string
	Certs []*x509.Certificate
}

// TrustStore holds the configured trusted CA bundles. Build it once per
// configuration; it is safe for concurrent use.
type TrustStore struct{ set *chain.TrustSet }

// NewTrustStore prepares the bundles, tried in name order (see
// chain.NewTrustSet for roots and intermediates).
func NewTrustStore(bundles []TrustedCA) (*TrustStore, error) {
	m := make(map[string][]*x509.Certificate, len(bundles))
	for _, b := range bundles {
		m[b.Name] = append(m[b.Name], b.Certs...)
	}
	set, err := chain.NewTrustSet(m)
	if err != nil {
		return nil, err
	}
	return &TrustStore{set: set}, nil
}

// Input is what one import-certificate request gives to Check.
type Input struct {
	// PEM is the operator's input: the certificate, optionally followed
	// by intermediates.
	PEM []byte
	// PublicKey is the public half of the private key of the certificate's
	// name (from the keystore).
	PublicKey crypto.PublicKey
	// Trust holds the configured trusted CAs; nil or empty means none,
	// and the chain check fails.
	Trust *TrustStore
	// Revocation is consulted in check 3; nil means no CRL is known.
	Revocation RevocationIndex
	// Now is the time the dates are checked at.
	Now time.Time
	// Limits bound the PEM input; zero means pemx.DefaultLimits.
	Limits pemx.Limits
}

// Result describes an accepted certificate.
type Result struct {
	Certificate *x509.Certificate
	Info        chain.CertInfo
	// Chain is the verified path, leaf first, root last.
	Chain []*x509.Certificate
	// TrustedCA is the name of the bundle the path ends in.
	TrustedCA string
	// KeyAlgorithm is e.g. "ecdsa-p256" or "rsa-2048".
	KeyAlgorithm string
}

// Check runs the three import checks in order and returns the first
// failure.
func Check(in Input) (*Result, error) {
	lim := in.Limits
	if lim == (pemx.Limits{}) {
		lim = pemx.DefaultLimits
	}
	// Check 1.
	if err := pemx.CheckNoPrivateKey(in.PEM, lim); err != nil {
		switch {
		case errors.Is(err, pemx.ErrPrivateKey):
			return nil, &Error{Category: CategoryPrivateKey, Reason: ReasonPrivateKeyPresent, Detail: "the input contains a private key; give only the certificate (the key never leaves the device)", Cause: err}
		case errors.Is(err, pemx.ErrPKCS12):
			return nil, &Error{Category: CategoryPrivateKey, Reason: ReasonPKCS12, Detail: "the input is a PKCS#12 bundle; give only the certificate as PEM", Cause: err}
		}
		return nil, &Error{Category: CategoryParse, Reason: ReasonMalformed, Cause: err}
	}
	// Check 2: parse.
	certs, err := pemx.Certificates(in.PEM, lim)
	if err != nil {
		return nil, &Error{Category: CategoryParse, Reason: ReasonMalformed, Cause: err}
	}
	if len(certs) == 0 { // pemx never returns this; a panic here would end the agent
		return nil, &Error{Category: CategoryParse, Reason: ReasonMalformed, Detail: "the input holds no certificate"}
	}
	leaf, extra := certs[0], certs[1:]
	// Check 2: the certificate itself.
	if err := checkLeaf(leaf, in.Now); err != nil {
		return nil, err
	}
	alg, err := keyAlgorithm(leaf.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := matchKey(leaf.PublicKey, in.PublicKey); err != nil {
		return nil, err
	}
	path, caName, err := in.Trust.verify(leaf, extra, in.Now)
	if err != nil {
		return nil, err
	}
	// Check 3.
	if err := checkRevoked(path, in.Revocation); err != nil {
		return nil, err
	}
	return &Result{Certificate: leaf, Info: chain.Info(leaf), Chain: path, TrustedCA: caName, KeyAlgorithm: alg}, nil
}

func checkLeaf(c *x509.Certificate, now time.Time) error {
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	switch {
	case now.After(c.NotAfter):
		return &Error{Category: CategoryCertificate, Reason: ReasonExpired, Detail: fmt.Sprintf("not after %s, now is %s", ts(c.NotAfter), ts(now))}
	case now.Before(c.NotBefore):
		return &Error{Category: CategoryCertificate, Reason: ReasonNotYetValid, Detail: fmt.Sprintf("not before %s, now is %s (check the device clock and the CA's)", ts(c.NotBefore), ts(now))}
	}
	if c.IsCA || c.KeyUsage&x509.KeyUsageCertSign != 0 {
		return &Error{Category: CategoryCertificate, Reason: ReasonIsCA, Detail: fmt.Sprintf("%q is a CA certificate (CA:TRUE or keyCertSign); a router needs an end-entity certificate (configure CAs as trusted-ca-certificate)", c.Subject.String())}
	}
	if c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		d := "key usage lacks digitalSignature"
		if c.KeyUsage == 0 {
			d = "the key usage extension is absent; it must include digitalSignature"
		}
		return &Error{Category: CategoryCertificate, Reason: ReasonKeyUsage, Detail: d}
	}
	ok := false
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageServerAuth || u == x509.ExtKeyUsageClientAuth {
			ok = true
		}
	}
	if !ok {
		d := "extended key usage has neither serverAuth nor clientAuth"
		if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
			d = "the extended key usage extension is absent; it must include serverAuth or clientAuth"
		}
		return &Error{Category: CategoryCertificate, Reason: ReasonExtKeyUsage, Detail: d}
	}
	if len(c.UnhandledCriticalExtensions) > 0 {
		return &Error{Category: CategoryCertificate, Reason: ReasonCriticalExtension, Detail: fmt.Sprintf("extension %v is marked critical and the agent does not handle it", c.UnhandledCriticalExtensions)}
	}
	return nil
}

func keyAlgorithm(pub any) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		if bits < MinRSABits {
			return "", &Error{Category: CategoryCertificate, Reason: ReasonKeyAlgorithm, Detail: fmt.Sprintf("RSA key of %d bits; at least %d are required", bits, MinRSABits)}
		}
		return fmt.Sprintf("rsa-%d", bits), nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ecdsa-p256", nil
		case elliptic.P384():
			return "ecdsa-p384", nil
		case elliptic.P521():
			return "ecdsa-p521", nil
		}
		return "", &Error{Category: CategoryCertificate, Reason: ReasonKeyAlgorithm, Detail: fmt.Sprintf("ECDSA curve %s is not allowed; use P-256, P-384 or P-521", k.Curve.Params().Name)}
	case ed25519.PublicKey:
		return "ed25519", nil
	}
	return "", &Error{Category: CategoryCertificate, Reason: ReasonKeyAlgorithm, Detail: fmt.Sprintf("%T keys are not allowed; use RSA (>= %d bits), ECDSA P-256/P-384/P-521 or Ed25519", pub, MinRSABits)}
}

func matchKey(certPub, keyPub crypto.PublicKey) error {
	if keyPub == nil {
		return &Error{Category: CategoryCertificate, Reason: ReasonKeyMismatch, Detail: "there is no private key of this name to match; generate the key and CSR first"}
	}
	eq, ok := certPub.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(keyPub) {
		return &Error{Category: CategoryCertificate, Reason: ReasonKeyMismatch, Detail: "the certificate was issued for another key (was it made from an older CSR?)"}
	}
	return nil
}

// Verify checks that leaf, with the intermediates in extra, still chains
// to one of the trusted CAs at now; it returns the path and the name of the
// trusted CA, or the reason as an *Error (the check 2 verdict alone).
func (ts *TrustStore) Verify(leaf *x509.Certificate, extra []*x509.Certificate, now time.Time) ([]*x509.Certificate, string, error) {
	return ts.verify(leaf, extra, now)
}

// verify maps the trust set's verdict to the import check's vocabulary.
func (ts *TrustStore) verify(leaf *x509.Certificate, extra []*x509.Certificate, now time.Time) ([]*x509.Certificate, string, error) {
	var set *chain.TrustSet
	if ts != nil {
		set = ts.set
	}
	path, name, err := set.Verify(leaf, extra, now)
	switch {
	case err == nil:
		return path, name, nil
	case errors.Is(err, chain.ErrNoTrust):
		return nil, "", &Error{Category: CategoryCertificate, Reason: ReasonUnknownIssuer, Detail: "no trusted-ca-certificate is configured"}
	case errors.Is(err, chain.ErrUnknownIssuer):
		return nil, "", &Error{Category: CategoryCertificate, Reason: ReasonUnknownIssuer, Detail: fmt.Sprintf("issuer %q does not chain to any configured trusted-ca-certificate", leaf.Issuer.String())}
	}
	reason := ReasonChain
	switch {
	case errors.Is(err, chain.ErrExpired):
		reason = ReasonExpired
	case errors.Is(err, chain.ErrNotYetValid):
		reason = ReasonNotYetValid
	case errors.Is(err, chain.ErrCriticalExtension):
		reason = ReasonCriticalExtension
	case errors.Is(err, chain.ErrWrongUsage):
		reason = ReasonExtKeyUsage
	}
	return nil, "", &Error{Category: CategoryCertificate, Reason: reason, Detail: "a CA of the path is not acceptable", Cause: err}
}

func checkRevoked(path []*x509.Certificate, idx RevocationIndex) error {
	if idx == nil {
		return nil
	}
	for i := 0; i+1 < len(path); i++ {
		c, issuer := path[i], path[i+1]
		if idx.IsRevoked(issuer.RawSubject, c.SerialNumber) {
			who := "the certificate"
			if i > 0 {
				who = fmt.Sprintf("CA %q of its path", c.Subject.String())
			}
			return &Error{Category: CategoryRevocation, Reason: ReasonRevoked, Detail: fmt.Sprintf("%s (serial %s) is on a CRL of %q", who, chain.SerialHex(c), issuer.Subject.String())}
		}
	}
	return nil
}

// MemoryIndex is an in-memory RevocationIndex, safe for concurrent use.
type MemoryIndex struct {
	mu      sync.RWMutex
	revoked map[string]map[string]struct{} // raw issuer -> serial bytes
}

// NewMemoryIndex returns an empty index.
func NewMemoryIndex() *MemoryIndex {
	return &MemoryIndex{revoked: map[string]map[string]struct{}{}}
}

func serialKey(s *big.Int) string {
	if s.Sign() < 0 {
		return "-" + string(s.Bytes())
	}
	return string(s.Bytes())
}

// Add marks serials of rawIssuer as revoked.
func (m *MemoryIndex) Add(rawIssuer []byte, serials ...*big.Int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	set := m.revoked[string(rawIssuer)]
	if set == nil {
		set = map[string]struct{}{}
		m.revoked[string(rawIssuer)] = set
	}
	for _, s := range serials {
		set[serialKey(s)] = struct{}{}
	}
}

// Replace sets the revoked serials of rawIssuer to exactly serials, as
// when a new CRL from that issuer replaces the previous one.
func (m *MemoryIndex) Replace(rawIssuer []byte, serials []*big.Int) {
	set := make(map[string]struct{}, len(serials))
	for _, s := range serials {
		set[serialKey(s)] = struct{}{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.revoked[string(rawIssuer)] = set
}

// IsRevoked implements RevocationIndex.
func (m *MemoryIndex) IsRevoked(rawIssuer []byte, serial *big.Int) bool {
	if serial == nil {
		return false
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.revoked[string(rawIssuer)][serialKey(serial)]
	return ok
}
