// Package csr builds PKCS#10 certificate signing requests from the
// generate-csr fields, validating every subject field and subject
// alternative name first, and signing with the named key's crypto.Signer.
package csr

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Upper bounds from RFC 5280 Appendix A (ub-*).
const (
	maxCommonName = 64
	maxLocality   = 128
	maxState      = 128
	maxOrg        = 64
	maxOrgUnit    = 64
	maxEmail      = 255
	maxSANs       = 100
	maxURI        = 1024
)

var (
	// ErrInvalidField: a subject field or SAN is not acceptable.
	ErrInvalidField = errors.New("invalid CSR field")
	// ErrUnsupportedKey: the signer's key type cannot sign a CSR here.
	ErrUnsupportedKey = errors.New("unsupported key for a CSR")
	// ErrSign: the signer failed, or produced a signature that does not
	// verify.
	ErrSign = errors.New("signing the CSR failed")
)

// FieldError names the field that is wrong and why.
type FieldError struct {
	// Field is the generate-csr input name, e.g. "country-name" or
	// "subject-alt-name[2]".
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("csr: %s: %s", e.Field, e.Reason)
}

func (e *FieldError) Unwrap() error { return ErrInvalidField }

// Subject holds the generate-csr subject fields. CommonName is required;
// the others are optional.
type Subject struct {
	CommonName             string
	CountryName            string // ISO 3166 alpha-2, e.g. "US"
	StateProvinceName      string
	LocalityName           string
	OrganizationName       string
	OrganizationalUnitName string
	EmailAddress           string
}

// SANKind is the type of a subject alternative name.
type SANKind string

const (
	DNS SANKind = "dns"
	IP  SANKind = "ip"
	URI SANKind = "uri"
)

// SAN is one subject alternative name.
type SAN struct {
	Kind  SANKind
	Value string
}

// Request is everything a CSR is built from.
type Request struct {
	Subject Subject
	SANs    []SAN
}

var oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

// Create validates req and returns a PEM "CERTIFICATE REQUEST" signed by
// signer: ECDSA P-256/P-384/P-521 with SHA-256/384/512, or RSA (>= 2048
// bits) with SHA256WithRSA. The signature is verified before returning.
func Create(req Request, signer crypto.Signer) ([]byte, error) {
	tmpl, err := template(req)
	if err != nil {
		return nil, err
	}
	if tmpl.SignatureAlgorithm, err = sigAlg(signer.Public()); err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, signer)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSign, err)
	}
	parsed, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: the CSR does not parse back: %w", ErrSign, err)
	}
	if err := parsed.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: the signature does not verify with the key's public key (is the key handle the right one?): %w", ErrSign, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

func sigAlg(pub crypto.PublicKey) (x509.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return x509.ECDSAWithSHA256, nil
		case elliptic.P384():
			return x509.ECDSAWithSHA384, nil
		case elliptic.P521():
			return x509.ECDSAWithSHA512, nil
		}
		return 0, fmt.Errorf("%w: ECDSA curve %s; use P-256, P-384 or P-521", ErrUnsupportedKey, k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return 0, fmt.Errorf("%w: RSA key of %d bits; at least 2048 are required", ErrUnsupportedKey, k.N.BitLen())
		}
		return x509.SHA256WithRSA, nil
	case ed25519.PublicKey:
		return x509.PureEd25519, nil
	}
	return 0, fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
}

func template(req Request) (*x509.CertificateRequest, error) {
	s := req.Subject
	tmpl := &x509.CertificateRequest{}
	if err := text("common-name", s.CommonName, maxCommonName, true); err != nil {
		return nil, err
	}
	tmpl.Subject.CommonName = s.CommonName
	if s.CountryName != "" {
		if len(s.CountryName) != 2 || !isUpperAlpha(s.CountryName) {
			return nil, &FieldError{Field: "country-name", Reason: fmt.Sprintf("%q is not a two-letter ISO 3166 code such as US or DE", clip(s.CountryName))}
		}
		tmpl.Subject.Country = []string{s.CountryName}
	}
	for _, f := range []struct {
		name  string
		value string
		max   int
		dst   *[]string
	}{
		{"state-province-name", s.StateProvinceName, maxState, &tmpl.Subject.Province},
		{"locality-name", s.LocalityName, maxLocality, &tmpl.Subject.Locality},
		{"organization-name", s.OrganizationName, maxOrg, &tmpl.Subject.Organization},
		{"organizational-unit-name", s.OrganizationalUnitName, maxOrgUnit, &tmpl.Subject.OrganizationalUnit},
	} {
		if f.value == "" {
			continue
		}
		if err := text(f.name, f.value, f.max, false); err != nil {
			return nil, err
		}
		*f.dst = []string{f.value}
	}
	if s.EmailAddress != "" {
		if err := email("email-address", s.EmailAddress); err != nil {
			return nil, err
		}
		tmpl.Subject.ExtraNames = append(tmpl.Subject.ExtraNames, pkix.AttributeTypeAndValue{
			Type: oidEmailAddress,
			// PKCS#9 emailAddress is an IA5String.
			Value: asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagIA5String, Bytes: []byte(s.EmailAddress)},
		})
	}
	if len(req.SANs) > maxSANs {
		return nil, &FieldError{Field: "subject-alt-name", Reason: fmt.Sprintf("%d names; at most %d", len(req.SANs), maxSANs)}
	}
	for i, san := range req.SANs {
		field := fmt.Sprintf("subject-alt-name[%d]", i+1)
		switch san.Kind {
		case DNS:
			if err := dnsName(field, san.Value); err != nil {
				return nil, err
			}
			tmpl.DNSNames = append(tmpl.DNSNames, san.Value)
		case IP:
			a, err := netip.ParseAddr(san.Value)
			if err != nil || a.Zone() != "" {
				return nil, &FieldError{Field: field, Reason: fmt.Sprintf("%q is not an IPv4 or IPv6 address (without zone)", clip(san.Value))}
			}
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.AsSlice()))
		case URI:
			u, err := uri(field, san.Value)
			if err != nil {
				return nil, err
			}
			tmpl.URIs = append(tmpl.URIs, u)
		default:
			return nil, &FieldError{Field: field, Reason: fmt.Sprintf("unknown type %q; use dns, ip or uri", clip(string(san.Kind)))}
		}
	}
	return tmpl, nil
}

func text(field, v string, max int, required bool) error {
	if v == "" {
		if required {
			return &FieldError{Field: field, Reason: "is required"}
		}
		return nil
	}
	if !utf8.ValidString(v) {
		return &FieldError{Field: field, Reason: "is not valid UTF-8"}
	}
	if n := utf8.RuneCountInString(v); n > max {
		return &FieldError{Field: field, Reason: fmt.Sprintf("is %d characters long; at most %d", n, max)}
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return &FieldError{Field: field, Reason: "contains a control character"}
		}
	}
	if strings.TrimSpace(v) != v {
		return &FieldError{Field: field, Reason: "has leading or trailing spaces"}
	}
	return nil
}

func email(field, v string) error {
	if len(v) > maxEmail {
		return &FieldError{Field: field, Reason: fmt.Sprintf("is %d bytes long; at most %d", len(v), maxEmail)}
	}
	a, err := mail.ParseAddress(v)
	if err != nil || a.Address != v || a.Name != "" {
		return &FieldError{Field: field, Reason: fmt.Sprintf("%q is not a plain address such as noc@example.net", clip(v))}
	}
	for _, r := range v {
		if r > unicode.MaxASCII {
			return &FieldError{Field: field, Reason: "must be ASCII (IA5String)"}
		}
	}
	return nil
}

// dnsName accepts RFC 1123 host names, with an optional leading "*."
// wildcard label and an optional trailing dot removed by the caller.
func dnsName(field, v string) error {
	bad := func(why string) error {
		return &FieldError{Field: field, Reason: fmt.Sprintf("%q is not a DNS name: %s", clip(v), why)}
	}
	if v == "" {
		return bad("empty")
	}
	if len(v) > 253 {
		return bad(fmt.Sprintf("%d characters; at most 253", len(v)))
	}
	labels := strings.Split(v, ".")
	for i, l := range labels {
		if l == "*" && i == 0 && len(labels) > 2 {
			continue
		}
		if l == "" {
			return bad("empty label")
		}
		if len(l) > 63 {
			return bad("a label is longer than 63 characters")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return bad("a label starts or ends with '-'")
		}
		for _, c := range []byte(l) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return bad(fmt.Sprintf("character %q is not allowed", c))
			}
		}
	}
	return nil
}

func uri(field, v string) (*url.URL, error) {
	if len(v) > maxURI {
		return nil, &FieldError{Field: field, Reason: fmt.Sprintf("URI is %d bytes long; at most %d", len(v), maxURI)}
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || (u.Host == "" && u.Opaque == "" && u.Path == "") || strings.ContainsAny(v, " \t\r\n") {
		return nil, &FieldError{Field: field, Reason: fmt.Sprintf("%q is not an absolute URI such as spiffe://example.net/router1", clip(v))}
	}
	return u, nil
}

func isUpperAlpha(s string) bool {
	for _, c := range []byte(s) {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// clip shortens operator input quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
