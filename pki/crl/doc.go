// Package crl keeps certificate revocation lists current: it fetches CRLs
// over http, https and file URLs, verifies them against trusted CA
// certificates, indexes their revoked serial numbers by issuer for
// allocation-free lookups, persists the master list of all known
// revocations and polls every source on an injected clock.
//
// The pieces can be used alone: Decode tells PEM from DER, Parse walks a
// CRL's DER with cryptobyte into a compact SerialSet (no
// x509.RevocationList is ever kept), CRL.Verify checks the signature,
// ReadVerified does all three on a body as it arrives (the DER is never
// held whole), Fetcher downloads with timeouts, a size limit, conditional
// GET, a proxy and a redirect limit. Manager ties them together (Open +
// ReadVerified) and reports through typed Events.
//
// Wiring (what the PKI engine does in pki.New and Engine.Run):
//
//	m, err := crl.New(crl.Config{Dir: filepath.Join(stateDir, "crl"), Clock: clk,
//		Logger: log, OnEvent: engine.onCRLEvent})
//	revocation = m                         // importcheck.RevocationIndex, peer.Index
//	m.SetTrustedCAs(certs)                 // on every trusted-ca change and import
//	m.SetSources(configured + learned)     // on every commit and import
//	m.Start(ctx); defer m.Stop()
//	m.Refresh(ctx, url)                    // refresh-certificate-revocation-list
//	m.States(), m.Stats()                  // state tree and /stats/security
//
// OnEvent gets *Update (audit system.crl_update via Detail and Description,
// the crl-update notification, crl-fetch/crl-ingestion counters via Fetch
// and Ingestion), *AlarmChange (crl-unreachable, crl-stale: raise/clear
// exactly as given), *StateChange, *Changed (re-check managed
// certificates: IsRevoked already answers from the new lists) and
// *SourceRemoved.
//
// An attempt fails when the fetch fails (crl-fetch failure) or the body
// is not a usable CRL (crl-fetch success, crl-ingestion failure); either
// raises crl-unreachable until an attempt succeeds. A 304 Not Modified or
// identical bytes is a success without ingestion.
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
