package pki

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/pki/chain"
	"github.com/pkiagent/pkiagent/pki/importcheck"
	"github.com/pkiagent/pkiagent/pki/peer"
)

// trust is the reconciler of /authority/trusted-ca-certificate: the CA
// chains, the trust store imports are checked against, the anchors peers
// are validated against, and the cache of checked bundles.
type trust struct {
	clock clock.Clock

	mu sync.Mutex
	// cur is the trust of running; next, between apply and finish, the
	// trust of the commit being applied (seen only by the evaluation).
	cur, next *trustSnapshot
	// The bundle cache holds what running holds and what the last commit
	// that passed validate holds, nothing else: a rejected bundle, a dry
	// run, a replaced CA are forgotten.
	running, validated map[[32]byte]checkedBundle
}

// trustSnapshot is the trust of one configuration; it is never modified
// once built (but trustedCA.bundle is re-checked in place by refresh; the
// evaluation reads it, both under Engine.mu).
type trustSnapshot struct {
	trusted map[string]*trustedCA
	store   *importcheck.TrustStore // nil when no CA has a certificate
	anchors *peer.Anchors
}

type trustedCA struct {
	name    string
	mode    string // strict | warn
	content string
	sum     [32]byte
	bundle  *chain.Bundle // re-checked by refresh as time passes
	at      time.Time     // when bundle's verdict was reached
}

// checkedBundle is a parsed bundle and the time its verdict was reached.
type checkedBundle struct {
	b  *chain.Bundle
	at time.Time
}

func newTrust(c clock.Clock) *trust {
	empty := &trustSnapshot{trusted: map[string]*trustedCA{}}
	empty.anchors, _ = peer.NewAnchors(nil)
	return &trust{clock: c, cur: empty, running: map[[32]byte]checkedBundle{}, validated: map[[32]byte]checkedBundle{}}
}

func (t *trust) id() string { return "trust" }

func (t *trust) watches() []string { return []string{"trusted-ca-certificate"} }

// names are the trusted CAs the commit touches.
func (t *trust) names(c *api.Commit, tc touched) map[string]bool {
	return tc.entries("trusted-ca-certificate", keysOf(authorityOf(c.Old).TrustedCaCertificate), keysOf(authorityOf(c.New).TrustedCaCertificate))
}

// store is the trust store of running, for import checks.
func (t *trust) store() *importcheck.TrustStore {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur.store
}

// anchorsNow are the peer-validation anchors of running.
func (t *trust) anchorsNow() *peer.Anchors {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur.anchors
}

// view is the trust the evaluation grades against: the commit being
// applied, else running. Engine.mu must be held.
func (t *trust) view() *trustSnapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.next != nil {
		return t.next
	}
	return t.cur
}

// bundleLocked parses and checks a bundle, from the cache when the content
// was seen in running or the last validated commit and no certificate of
// it has become valid or expired since: the verdict depends on the time,
// not only on the bytes. seen collects what was looked up. t.mu is held.
func (t *trust) bundleLocked(content string, seen map[[32]byte]checkedBundle) (*chain.Bundle, [32]byte, error) {
	sum := sha256.Sum256([]byte(content))
	now := t.clock.Now()
	cb, ok := t.running[sum]
	if !ok {
		cb, ok = t.validated[sum]
	}
	switch {
	case ok && validityChangedBetween(cb.b.Certs, cb.at, now):
		cb = checkedBundle{b: chain.CheckBundle(cb.b.Certs, now), at: now}
	case !ok:
		b, err := chain.ParseBundle([]byte(content), now)
		if err != nil {
			return nil, sum, err
		}
		cb = checkedBundle{b: b, at: now}
	}
	seen[sum] = cb
	return cb.b, sum, nil
}

// validityChangedBetween reports whether a notBefore or notAfter of certs
// lies between a and b (inclusive), so a check made at a may not hold at b.
func validityChangedBetween(certs []*x509.Certificate, a, b time.Time) bool {
	if b.Before(a) {
		a, b = b, a
	}
	for _, c := range certs {
		for _, t := range []time.Time{c.NotBefore, c.NotAfter} {
			if !t.Before(a) && !t.After(b) {
				return true
			}
		}
	}
	return false
}

// validate: every trusted CA chain the commit adds or changes must parse;
// in strict mode it must also verify. When the commit passes, its bundles
// become the cache's validated set (apply finds them there); when it does
// not, they are forgotten.
func (t *trust) validate(_ context.Context, c *api.Commit, tc touched) error {
	names := t.names(c, tc)
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := map[[32]byte]checkedBundle{}
	var errs []error
	for _, name := range sortedKeys(names) {
		ca := c.New.GetAuthority().GetTrustedCaCertificate(name)
		if ca == nil {
			continue
		}
		b, _, err := t.bundleLocked(ca.GetContent(), seen)
		if err != nil {
			errs = append(errs, invalidAt(err, listElem("trusted-ca-certificate", "name", name), &gnmi.PathElem{Name: "content"}))
			continue
		}
		if ca.GetValidationMode() != gen.PkiAuthority_ValidationMode_warn {
			if err := b.Err(); err != nil {
				errs = append(errs, invalidAt(fmt.Errorf("validation-mode strict: %w", err),
					listElem("trusted-ca-certificate", "name", name), &gnmi.PathElem{Name: "content"}))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	t.validated = seen
	return nil
}

// apply builds the trust of c.New from running's, re-reading only the CAs
// c touches, and holds it as next until finish. Engine.mu is held.
func (t *trust) apply(_ context.Context, c *api.Commit, tc touched) error {
	names := t.names(c, tc)
	auth := c.New.GetAuthority()
	t.mu.Lock()
	defer t.mu.Unlock()
	trusted := maps.Clone(t.cur.trusted)
	seen := map[[32]byte]checkedBundle{}
	for name := range names {
		ca := auth.GetTrustedCaCertificate(name)
		if ca == nil {
			delete(trusted, name)
			continue
		}
		b, sum, err := t.bundleLocked(ca.GetContent(), seen)
		if err != nil {
			return fmt.Errorf("trusted-ca-certificate %s: %w", name, err)
		}
		at := seen[sum].at
		mode := "strict"
		if ca.GetValidationMode() == gen.PkiAuthority_ValidationMode_warn {
			mode = "warn"
		}
		trusted[name] = &trustedCA{name: name, mode: mode, content: ca.GetContent(), sum: sum, bundle: b, at: at}
	}
	s := &trustSnapshot{trusted: trusted}
	var err error
	if s.store, err = newTrustStore(trusted); err != nil {
		return err
	}
	if s.anchors, err = peerAnchors(trusted); err != nil {
		return err
	}
	t.next = s
	return nil
}

// finish makes next running (and the cache what running holds), or drops
// it.
func (t *trust) finish(committed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.next == nil {
		return
	}
	if committed {
		t.cur = t.next
		running := make(map[[32]byte]checkedBundle, len(t.cur.trusted))
		for _, ca := range t.cur.trusted {
			running[ca.sum] = checkedBundle{b: ca.bundle, at: ca.at}
		}
		t.running, t.validated = running, map[[32]byte]checkedBundle{}
	}
	t.next = nil
}

// refresh re-checks the bundles in force whose verdict the time changed (a
// CA expired or became valid since the commit). Engine.mu is held.
func (t *trust) refresh() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock.Now()
	for _, s := range []*trustSnapshot{t.cur, t.next} {
		if s == nil {
			continue
		}
		for _, ca := range s.trusted {
			cb := checkedBundle{b: ca.bundle, at: ca.at}
			if validityChangedBetween(cb.b.Certs, cb.at, now) {
				cb = checkedBundle{b: chain.CheckBundle(cb.b.Certs, now), at: now}
			}
			ca.bundle, ca.at = cb.b, cb.at
			if s == t.cur {
				t.running[ca.sum] = cb
			}
		}
	}
}

func peerAnchors(trusted map[string]*trustedCA) (*peer.Anchors, error) {
	bundles := map[string][]*x509.Certificate{}
	for name, t := range trusted {
		bundles[name] = t.bundle.Certs
	}
	return peer.NewAnchors(bundles)
}

func newTrustStore(trusted map[string]*trustedCA) (*importcheck.TrustStore, error) {
	var bundles []importcheck.TrustedCA
	for name, t := range trusted {
		if len(t.bundle.Certs) == 0 {
			continue
		}
		bundles = append(bundles, importcheck.TrustedCA{Name: name, Certs: t.bundle.Certs})
	}
	if len(bundles) == 0 {
		return nil, nil
	}
	return importcheck.NewTrustStore(bundles)
}
