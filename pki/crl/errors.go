package crl

import "errors"

// Errors a fetch or an ingestion can end with; test with errors.Is. Every
// returned error wraps one of these with the details an operator needs.
var (
	// ErrNotCRL: the body is neither a DER CRL nor a PEM "X509 CRL" block.
	ErrNotCRL = errors.New("not a CRL in DER or PEM form")
	// ErrMalformed: the DER does not follow the CRL structure of RFC 5280.
	ErrMalformed = errors.New("malformed CRL")
	// ErrTooLarge: the body is over the size limit.
	ErrTooLarge = errors.New("CRL is larger than the size limit")
	// ErrFetch: the CRL could not be downloaded or read.
	ErrFetch = errors.New("CRL could not be fetched")
	// ErrUntrustedIssuer: no trusted CA certificate issued the CRL.
	ErrUntrustedIssuer = errors.New("CRL issuer is not a trusted CA")
	// ErrSignature: the signature does not verify with the issuing CA's key,
	// or that CA may not sign CRLs.
	ErrSignature = errors.New("CRL signature does not verify")
	// ErrUnhandledExtension: a critical extension we do not process (for
	// example a critical issuing distribution point), a delta CRL, or an
	// indirect CRL entry.
	ErrUnhandledExtension = errors.New("CRL has an extension this agent does not handle")
	// ErrOlder: the CRL is older than the one held (lower CRLNumber, or
	// earlier thisUpdate when there is no CRLNumber).
	ErrOlder = errors.New("CRL is older than the one held")
	// ErrUnknownSource: Refresh named a URL that is not a configured source.
	ErrUnknownSource = errors.New("no such CRL source")
	// ErrNotRunning: the manager has not been started or has stopped.
	ErrNotRunning = errors.New("CRL manager is not running")
)
