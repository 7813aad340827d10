package pki

import (
	"context"
	"maps"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/pki/crl"
	"github.com/pkiagent/pkiagent/pki/expiry"
	"github.com/pkiagent/pkiagent/pki/importcheck"
	"github.com/pkiagent/pkiagent/pki/peer"
)

// prepared is a commit the engine holds between Apply and Finish: the
// engine as it was before Apply (what Finish restores when the commit
// fails) and what it does once the commit is saved.
type prepared struct {
	commit *api.Commit
	// crl is handed to the CRL manager once the commit is saved, so a
	// failed commit never starts fetching a source.
	crl crlPlan
	// logs are the alarm transitions to log once the commit is saved.
	logs []expiry.Transition

	trusted     map[string]*trustedCA
	trustAll    *importcheck.TrustStore
	configured  bool
	clients     map[string]bool
	crlConfig   map[string]crl.Source
	crlProxy    string
	crlDiscover bool
	learned     map[string][]string
	routers     map[string]*routerConfig
	peerTrust   *peer.Anchors
	peerStates  map[peerKey]peer.State
	alarms      []expiry.Alarm
	statuses    map[string]string
	published   *gen.Device
	counters    [6]uint64
	windows     expiry.Windows
}

// counters are the statistics an evaluation moves.
func (e *Engine) counters() [6]uint64 {
	s := &e.stats
	return [6]uint64{s.certExpired.Load(), s.certInvalid.Load(), s.certRevoked.Load(), s.peerExpired.Load(), s.peerInvalid.Load(), s.peerRevoked.Load()}
}

func (e *Engine) setCounters(v [6]uint64) {
	s := &e.stats
	for i, c := range []interface{ Store(uint64) }{&s.certExpired, &s.certInvalid, &s.certRevoked, &s.peerExpired, &s.peerInvalid, &s.peerRevoked} {
		c.Store(v[i])
	}
}

// prepareLocked records the engine before c is applied. e.mu must be held.
func (e *Engine) prepareLocked(c *api.Commit) *prepared {
	p := &prepared{
		commit: c, trusted: e.trusted, trustAll: e.trustAll, configured: e.configured, clients: e.clients,
		crlConfig: e.crlConfig, crlProxy: e.crlProxy, crlDiscover: e.crlDiscover, learned: e.learned,
		routers: e.routers, peerTrust: e.peerTrust, peerStates: maps.Clone(e.peerStates),
		alarms: e.alarms.Active(), statuses: map[string]string{}, published: e.published, counters: e.counters(),
		windows: e.windows,
	}
	for name, mc := range e.certs {
		p.statuses[name] = mc.status
	}
	return p
}

// emitLocked publishes ev, or stages it on the commit being applied: the
// store publishes it once the commit is saved, and never if it fails.
// Events of background work (CRL polling, expiry ticks, rpcs) outside a
// commit go straight to the bus. e.mu must be held.
func (e *Engine) emitLocked(ev api.Event) {
	if e.prep != nil {
		e.prep.commit.Stage(ev)
		return
	}
	if e.cfg.Bus != nil {
		e.cfg.Bus.Publish(ev)
	}
}

// Finish implements api.Finisher. committed: the engine's durable state
// (alarms, peers, counters) is saved, the change applied by Apply becomes
// visible and the CRL manager follows it. Not committed: the
// engine is restored exactly as it was before Apply (alarms with their
// times, counters, peer states, the state last published), and nothing of
// it was published. Either way e.mu, held since Apply, is released.
func (e *Engine) Finish(_ context.Context, c *api.Commit, committed bool) {
	p := e.prep
	if p == nil || p.commit != c {
		e.log.Error("PKI engine: finish of a commit it does not hold; ignored", "commit", c.ID)
		return
	}
	defer e.mu.Unlock()
	e.prep = nil
	e.enroll.finish(committed)
	if committed {
		e.saveLocked() // DIR/pki-state: on disk before the store publishes
		for _, tr := range p.logs {
			e.logAlarm(tr)
		}
		e.pushCRLLocked(p.crl)
		return
	}
	e.trusted, e.trustAll, e.configured, e.clients = p.trusted, p.trustAll, p.configured, p.clients
	e.crlConfig, e.crlProxy, e.crlDiscover, e.learned = p.crlConfig, p.crlProxy, p.crlDiscover, p.learned
	e.routers, e.peerTrust, e.peerStates = p.routers, p.peerTrust, p.peerStates
	e.alarms.Restore(p.alarms)
	for name, mc := range e.certs {
		if st, ok := p.statuses[name]; ok {
			mc.status = st
		}
	}
	e.published = p.published
	e.setCounters(p.counters)
	e.windows = p.windows
}

var _ api.Finisher = (*Engine)(nil)
