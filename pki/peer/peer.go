// Package peer validates the certificate chains that peers of a router
// present: against the trusted CAs, the CRL index, an in-memory cache of
// peer certificates known to be revoked or expired, and the identifier the
// peer is configured with; and it keeps each peer's status under the
// router's certificate-failure-action (fail-soft or fail-hard).
//
// Decisions:
//   - The first PEM block is the peer's certificate; further blocks are
//     intermediates offered for path building, never trusted by themselves.
//   - Input holding a private key or a PKCS#12 bundle is refused as an
//     error (never echoed), like import-certificate does; any other input
//     that is not a certificate chain is an invalid certificate.
//   - The subject CN must equal the peer's identifier (a UUID compares
//     case-insensitively).
//   - The checks run in this order and the first failure is the verdict:
//     parse, cache of known bad certificates, validity dates (expired),
//     end-entity certificate, path to a trusted CA (invalid; expired when a CA of the path is),
//     CRL index for every certificate of the path (revoked), identifier
//     (invalid).
//   - Revocation is permanent (RFC 5280 has no un-revoke for our reason
//     codes), so a certificate once seen revoked stays refused through the
//     cache even if a later CRL no longer lists it.
package peer

import (
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"time"

	"github.com/pkiagent/pkiagent/internal/pemx"
	"github.com/pkiagent/pkiagent/pki/chain"
)

// Result of one validation, as the validate-peer-certificate output says.
type Result string

const (
	Valid   Result = "valid"
	Expired Result = "expired"
	Revoked Result = "revoked"
	Invalid Result = "invalid"
)

// ErrKeyMaterial: the input holds a private key or a PKCS#12 bundle. Such
// input is refused outright and never echoed.
var ErrKeyMaterial = errors.New("peer certificate input holds private key material")

// Index answers whether a serial of the CA with subject rawIssuer is on
// a known CRL; crl.Manager implements it. It must be safe for concurrent
// use.
type Index interface {
	IsRevoked(rawIssuer []byte, serial *big.Int) bool
}

// Anchors are the trusted CA bundles peers must chain to. Build them once
// per configuration; they are safe for concurrent use.
type Anchors struct{ set *chain.TrustSet }

// NewAnchors prepares the bundles (name -> certificates), tried in name
// order (see chain.NewTrustSet for roots and intermediates).
func NewAnchors(bundles map[string][]*x509.Certificate) (*Anchors, error) {
	set, err := chain.NewTrustSet(bundles)
	if err != nil {
		return nil, err
	}
	return &Anchors{set: set}, nil
}

// Verdict is the outcome of one validation.
type Verdict struct {
	Result Result
	// Reason says why the certificate was refused ("" when valid).
	Reason string
	// Certificate is the peer's certificate (nil when the input did not
	// parse); Path the verified path, leaf first, when it chained.
	Certificate *x509.Certificate
	Path        []*x509.Certificate
	// TrustedCA names the bundle the path ends in.
	TrustedCA string
	// Cached is true when the verdict came from the cache of known bad
	// certificates.
	Cached bool
}

// Validator validates peer certificates. It is safe for concurrent use.
type Validator struct {
	idx   Index
	cache *Cache
}

// NewValidator returns a validator that consults idx (nil: no CRL known)
// and remembers up to cacheSize bad certificates (<= 0: DefaultCacheSize).
func NewValidator(idx Index, cacheSize int) *Validator {
	return &Validator{idx: idx, cache: NewCache(cacheSize)}
}

// Cache returns the validator's cache of known bad certificates.
func (v *Validator) Cache() *Cache { return v.cache }

// Limits bound the PEM input of one validation: pemx.DefaultLimits (1 MiB,
// 16 blocks).
var Limits = pemx.DefaultLimits

var uuidRE = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)

// Validate checks pemChain, presented by a peer that must carry
// identifier as its subject CN, against anchors at time now. It returns an
// error (wrapping ErrKeyMaterial) only for input holding key material;
// every other problem is a Verdict.
func (v *Validator) Validate(pemChain []byte, identifier string, anchors *Anchors, now time.Time) (Verdict, error) {
	if err := pemx.CheckNoPrivateKey(pemChain, Limits); err != nil {
		if errors.Is(err, pemx.ErrPrivateKey) || errors.Is(err, pemx.ErrPKCS12) {
			return Verdict{}, fmt.Errorf("%w: %w; give only the certificate chain", ErrKeyMaterial, err)
		}
		return Verdict{Result: Invalid, Reason: "the certificate does not parse: " + err.Error()}, nil
	}
	certs, err := pemx.Certificates(pemChain, Limits)
	if err != nil {
		return Verdict{Result: Invalid, Reason: "the certificate does not parse: " + err.Error()}, nil
	}
	leaf := certs[0]
	vd := Verdict{Certificate: leaf}
	fp := sha256.Sum256(leaf.Raw)
	if bad, ok := v.cache.Get(fp); ok {
		vd.Result, vd.Reason, vd.Cached = bad.Result, bad.Reason+" (known bad certificate)", true
		return vd, nil
	}
	if r, reason := dates(leaf, now); r != Valid {
		vd.Result, vd.Reason = r, reason
		if r == Expired {
			v.cache.Put(fp, vd.Result, vd.Reason)
		}
		return vd, nil
	}
	if leaf.IsCA {
		vd.Result, vd.Reason = Invalid, fmt.Sprintf("%q is a CA certificate; a peer must present its own end-entity certificate", leaf.Subject.String())
		return vd, nil
	}
	path, caName, err := anchors.verify(leaf, certs[1:], now)
	if err != nil {
		vd.Result, vd.Reason = Invalid, err.Error()
		if errors.Is(err, chain.ErrExpired) {
			vd.Result = Expired
		}
		return vd, nil
	}
	vd.Path, vd.TrustedCA = path, caName
	if reason, revoked := RevokedIn(path, v.idx); revoked {
		vd.Result, vd.Reason = Revoked, reason
		v.cache.Put(fp, vd.Result, vd.Reason)
		return vd, nil
	}
	if !matchIdentifier(leaf.Subject.CommonName, identifier) {
		vd.Result = Invalid
		vd.Reason = fmt.Sprintf("subject CN %q does not match the peer's identifier %q", leaf.Subject.CommonName, identifier)
		return vd, nil
	}
	vd.Result = Valid
	return vd, nil
}

func matchIdentifier(cn, identifier string) bool {
	if cn == identifier {
		return true
	}
	return uuidRE.MatchString(identifier) && strings.EqualFold(cn, identifier)
}

func dates(c *x509.Certificate, now time.Time) (Result, string) {
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	switch {
	case now.After(c.NotAfter):
		return Expired, fmt.Sprintf("certificate %q expired at %s (serial %s)", c.Subject.CommonName, ts(c.NotAfter), chain.SerialHex(c))
	case now.Before(c.NotBefore):
		return Invalid, fmt.Sprintf("certificate %q is not valid before %s (check the peer's and this device's clocks)", c.Subject.CommonName, ts(c.NotBefore))
	}
	return Valid, ""
}

// RevokedIn reports whether a certificate of path (leaf first) is on a CRL
// known to idx, and says which.
func RevokedIn(path []*x509.Certificate, idx Index) (string, bool) {
	if idx == nil {
		return "", false
	}
	for i := 0; i+1 < len(path); i++ {
		c, issuer := path[i], path[i+1]
		if idx.IsRevoked(issuer.RawSubject, c.SerialNumber) {
			who := fmt.Sprintf("certificate %q", c.Subject.CommonName)
			if i > 0 {
				who = fmt.Sprintf("CA %q of its path", c.Subject.String())
			}
			return fmt.Sprintf("%s (serial %s) is revoked by a CRL of %q", who, chain.SerialHex(c), issuer.Subject.String()), true
		}
	}
	return "", false
}

// verify finds a path to one of the bundles, saying what failed in the
// words of peer validation.
func (a *Anchors) verify(leaf *x509.Certificate, extra []*x509.Certificate, now time.Time) ([]*x509.Certificate, string, error) {
	var set *chain.TrustSet
	if a != nil {
		set = a.set
	}
	path, name, err := set.Verify(leaf, extra, now)
	switch {
	case errors.Is(err, chain.ErrNoTrust):
		return nil, "", errors.New("no trusted-ca-certificate is configured to validate peers against")
	case errors.Is(err, chain.ErrUnknownIssuer):
		return nil, "", fmt.Errorf("issuer %q does not chain to any trusted-ca-certificate: %w", leaf.Issuer.String(), err)
	}
	return path, name, err
}
