// Package crl keeps certificate revocation lists current: it fetches CRLs
// over http, https and file URLs, verifies them against trusted CA
// certificates, indexes their revoked serial numbers by issuer for
// allocation-free lookups, persists the master list of all known
// revocations and polls every source on an injected clock.
//
// The pieces can be used alone: Decode tells PEM from DER, Parse walks a
// CRL's DER with cryptobyte into a compact SerialSet (no
// x509.RevocationList is ever kept), CRL.Verify checks the signature,
// Fetcher downloads with timeouts, a size limit, conditional GET, a proxy
// and a redirect limit. Manager ties them together and reports through
// typed Events.
//
// Limits (all documented constants, overridable where noted):
//
//   - DefaultMaxSize (64 MiB): largest CRL body accepted (FetchOptions.MaxSize).
//   - DefaultConnectTimeout (10 s) and DefaultTimeout (60 s, overall, so a
//     server that trickles bytes is cut off): FetchOptions.
//   - DefaultMaxRedirects (5): redirect loops end with an error.
//   - MaxSerialLen (64 octets): a CRL with a longer serial number is refused.
//   - MaxBackoff (1 h): failed fetches are retried after backoff-interval,
//     doubling per consecutive failure, capped at min(polling-interval,
//     MaxBackoff) but never below backoff-interval.
package crl
