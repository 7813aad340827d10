package importcheck

import (
	"fmt"
)

// Category is the import check that failed (cfssl style: Category x
// Reason). The numbering follows the order the checks run in.
type Category int

const (
	// CategoryPrivateKey is check 1: the input holds key material.
	CategoryPrivateKey Category = iota + 1
	// CategoryParse is check 2, first part: the PEM or DER does not parse.
	CategoryParse
	// CategoryCertificate is check 2, the rest: the certificate does not
	// fit a router certificate, its key or a trusted CA.
	CategoryCertificate
	// CategoryRevocation is check 3: a certificate of the path is revoked.
	CategoryRevocation
)

func (c Category) String() string {
	switch c {
	case CategoryPrivateKey:
		return "check 1 (no private key)"
	case CategoryParse:
		return "check 2 (parse)"
	case CategoryCertificate:
		return "check 2 (certificate)"
	case CategoryRevocation:
		return "check 3 (revocation)"
	}
	return fmt.Sprintf("Category(%d)", int(c))
}

// Reason says what exactly failed within a Category.
type Reason int

const (
	ReasonUnknown Reason = iota
	// CategoryPrivateKey
	ReasonPrivateKeyPresent
	ReasonPKCS12
	// CategoryParse
	ReasonMalformed
	// CategoryCertificate
	ReasonExpired
	ReasonNotYetValid
	ReasonIsCA
	ReasonKeyUsage
	ReasonExtKeyUsage
	ReasonKeyAlgorithm
	ReasonCriticalExtension
	ReasonKeyMismatch
	ReasonUnknownIssuer
	ReasonChain
	// CategoryRevocation
	ReasonRevoked
)

var reasonNames = map[Reason]string{
	ReasonUnknown:           "unknown",
	ReasonPrivateKeyPresent: "private key present",
	ReasonPKCS12:            "PKCS#12 bundle",
	ReasonMalformed:         "malformed",
	ReasonExpired:           "expired",
	ReasonNotYetValid:       "not yet valid",
	ReasonIsCA:              "CA certificate given as the router certificate",
	ReasonKeyUsage:          "key usage",
	ReasonExtKeyUsage:       "extended key usage",
	ReasonKeyAlgorithm:      "key algorithm or size",
	ReasonCriticalExtension: "unhandled critical extension",
	ReasonKeyMismatch:       "public key does not match the private key",
	ReasonUnknownIssuer:     "unknown issuer",
	ReasonChain:             "chain does not verify",
	ReasonRevoked:           "revoked",
}

func (r Reason) String() string {
	if s, ok := reasonNames[r]; ok {
		return s
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// Error is every error Check returns. errors.Is matches it against the
// Err* values below by Category and Reason; errors.As gives the details.
// Its text never contains input bytes.
type Error struct {
	Category Category
	Reason   Reason
	// Detail says what was found, in operator words.
	Detail string
	// Cause is the underlying error (pemx, chain, x509), if any.
	Cause error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("import %s: %s", e.Category, e.Reason)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Cause }

// Is reports whether target is an *Error with the same Category and
// Reason (a zero Reason in target matches any reason of the category).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return t.Category == e.Category && (t.Reason == ReasonUnknown || t.Reason == e.Reason)
}

// Values to test with errors.Is.
var (
	ErrPrivateKey        = &Error{Category: CategoryPrivateKey, Reason: ReasonPrivateKeyPresent}
	ErrPKCS12            = &Error{Category: CategoryPrivateKey, Reason: ReasonPKCS12}
	ErrMalformed         = &Error{Category: CategoryParse, Reason: ReasonMalformed}
	ErrExpired           = &Error{Category: CategoryCertificate, Reason: ReasonExpired}
	ErrNotYetValid       = &Error{Category: CategoryCertificate, Reason: ReasonNotYetValid}
	ErrIsCA              = &Error{Category: CategoryCertificate, Reason: ReasonIsCA}
	ErrKeyUsage          = &Error{Category: CategoryCertificate, Reason: ReasonKeyUsage}
	ErrExtKeyUsage       = &Error{Category: CategoryCertificate, Reason: ReasonExtKeyUsage}
	ErrKeyAlgorithm      = &Error{Category: CategoryCertificate, Reason: ReasonKeyAlgorithm}
	ErrCriticalExtension = &Error{Category: CategoryCertificate, Reason: ReasonCriticalExtension}
	ErrKeyMismatch       = &Error{Category: CategoryCertificate, Reason: ReasonKeyMismatch}
	ErrUnknownIssuer     = &Error{Category: CategoryCertificate, Reason: ReasonUnknownIssuer}
	ErrChain             = &Error{Category: CategoryCertificate, Reason: ReasonChain}
	ErrRevoked           = &Error{Category: CategoryRevocation, Reason: ReasonRevoked}

	// Whole categories, for callers that only care which check failed.
	ErrCategoryPrivateKey  = &Error{Category: CategoryPrivateKey}
	ErrCategoryParse       = &Error{Category: CategoryParse}
	ErrCategoryCertificate = &Error{Category: CategoryCertificate}
	ErrCategoryRevocation  = &Error{Category: CategoryRevocation}
)
