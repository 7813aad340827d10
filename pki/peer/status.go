package peer

import (
	"crypto/sha256"
	"crypto/x509"
	"time"
)

// Status of a peer, as /authority/router/peer/state/status shows it.
type Status string

const (
	StatusUnknown Status = "unknown"
	StatusValid   Status = "valid"
	StatusExpired Status = "expired"
	StatusRevoked Status = "revoked"
	StatusInvalid Status = "invalid"
	// StatusSevered: fail-hard cut the peer off; only a valid certificate
	// lifts it.
	StatusSevered Status = "severed"
)

// Action is a router's certificate-failure-action.
type Action int

const (
	// FailSoft: a failing peer is reported (status, alarm) and nothing
	// more.
	FailSoft Action = iota
	// FailHard: a failing peer is severed until it presents a valid
	// certificate.
	FailHard
)

// State is what the agent knows of one peer.
type State struct {
	Status        Status
	Reason        string
	LastValidated time.Time
	// Path is the last accepted certificate path (leaf first), kept so the
	// peer can be re-checked when a CRL changes or the certificate expires.
	Path []*x509.Certificate
	// Identifier is the identity the verdict was given for; a state whose
	// peer is now configured with another identifier no longer holds.
	Identifier string
}

// Failed reports whether the peer is in a failed state (an alarm holds).
func (s State) Failed() bool {
	return s.Status != StatusUnknown && s.Status != StatusValid
}

// Next is the state after a verdict at time now under action. A valid
// verdict always restores the peer; with fail-hard any failure severs it,
// with fail-soft the status is the verdict's result.
func Next(prev State, action Action, v Verdict, now time.Time) State {
	if v.Result == Valid {
		return State{Status: StatusValid, LastValidated: now, Path: v.Path}
	}
	st := State{Status: Status(v.Result), Reason: v.Reason, LastValidated: now}
	if action == FailHard {
		st.Status = StatusSevered
		st.Reason = "severed by fail-hard: certificate " + string(v.Result) + ": " + v.Reason
	}
	return st
}

// Recheck re-grades a peer whose last certificate was accepted, at time
// now: it turns revoked when a CRL now lists a certificate of its path
// (and the certificate joins the cache), expired when the leaf has
// expired. It returns the verdict and true when the peer no longer
// validates; the caller applies it with Next.
func (v *Validator) Recheck(s State, now time.Time) (Verdict, bool) {
	if s.Status != StatusValid || len(s.Path) == 0 {
		return Verdict{}, false
	}
	leaf := s.Path[0]
	if reason, revoked := RevokedIn(s.Path, v.idx); revoked {
		v.cache.Put(sha256.Sum256(leaf.Raw), Revoked, reason)
		return Verdict{Result: Revoked, Reason: reason, Certificate: leaf, Path: s.Path}, true
	}
	if r, reason := dates(leaf, now); r != Valid {
		return Verdict{Result: r, Reason: reason, Certificate: leaf, Path: s.Path}, true
	}
	return Verdict{}, false
}
