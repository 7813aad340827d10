package pki

import (
	"context"
	"errors"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/pki/expiry"
)

// A reconciler is one subsystem of the engine, after openconfig/lemming's
// Reconciler: it watches some children of /authority, validates and
// applies only what a commit changes under them, and keeps its own state
// under its own lock. The engine calls it only for the commits that touch
// what it watches:
//
//   - validate checks the touched entries of c.New; no side effects;
//   - apply prepares the change; the engine holds the commit (Engine.mu)
//     until finish, so what apply prepares is seen only by the engine's
//     evaluation, which stages alarms and state on the commit;
//   - finish(true) makes the change running once the commit is saved;
//     finish(false) returns to exactly what was before apply.
//
// The reconcilers are trust (trusted-ca-certificate), certificates
// (client-certificate), revocation (certificate-revocation-list,
// crl-settings: the CRL manager) and peers (router). A new subsystem (the
// enrollment of certificates, say: ca-profile and client-certificate's
// enrollment) is one more reconciler in Engine.reconcilers; it reads the
// others' state through their accessors, as revocation reads trust, and
// stages its events through Engine.emitLocked.
type reconciler interface {
	id() string
	// watches are the children of /authority whose changes it reconciles.
	watches() []string
	validate(ctx context.Context, c *api.Commit, t touched) error
	apply(ctx context.Context, c *api.Commit, t touched) error
	finish(committed bool)
}

// touched is what a commit changes under /authority: for each child, the
// keys of the list entries touched ("" for a container's leaves). all is
// set when every entry counts as touched (Load, a commit without a change
// list).
type touched struct {
	all  bool
	keys map[string]map[string]bool
}

// touchedBy reads the commit's changes once.
func touchedBy(c *api.Commit) touched {
	if len(c.Changes) == 0 {
		return touched{all: true}
	}
	t := touched{keys: map[string]map[string]bool{}}
	for _, ch := range c.Changes {
		el := ch.Path.GetElem()
		if len(el) == 0 || el[0].GetName() != "authority" {
			continue
		}
		if len(el) == 1 {
			return touched{all: true}
		}
		m := t.keys[el[1].GetName()]
		if m == nil {
			m = map[string]bool{}
			t.keys[el[1].GetName()] = m
		}
		var key string
		for _, v := range el[1].GetKey() { // every list here has one key
			key = v
		}
		m[key] = true
	}
	return t
}

// any reports whether the commit touches one of children.
func (t touched) any(children ...string) bool {
	if t.all {
		return true
	}
	for _, c := range children {
		if len(t.keys[c]) > 0 {
			return true
		}
	}
	return false
}

// entries returns the keys touched in the list child: with all, every key
// of the list in the old and the new tree, from names.
func (t touched) entries(child string, names ...func() []string) map[string]bool {
	if !t.all {
		return t.keys[child]
	}
	out := map[string]bool{}
	for _, n := range names {
		for _, k := range n() {
			out[k] = true
		}
	}
	return out
}

// authorityOf is d's /authority, empty when d has none.
func authorityOf(d *gen.Device) *gen.PkiAuthority_Authority {
	if a := d.GetAuthority(); a != nil {
		return a
	}
	return &gen.PkiAuthority_Authority{}
}

// keysOf lists a map's keys, for touched.entries.
func keysOf[V any](m map[string]V) func() []string {
	return func() []string { return sortedKeys(m) }
}

// Validate implements api.Validator: each reconciler checks what the
// commit touches of its part.
func (e *Engine) Validate(ctx context.Context, c *api.Commit) error {
	t := touchedBy(c)
	var errs []error
	for _, r := range e.reconcilers {
		if t.any(r.watches()...) {
			errs = append(errs, r.validate(ctx, c, t))
		}
	}
	return errors.Join(errs...)
}

// Apply implements api.Applier. It cannot fail half way: each reconciler
// prepares its part aside, and a failure finishes those already applied
// as not committed. On success the engine holds the change (and e.mu)
// until the store calls Finish; its alarms and state changes are staged
// on c.
func (e *Engine) Apply(ctx context.Context, c *api.Commit) error {
	t := touchedBy(c)
	// e.mu stays held until Finish: readers of the engine's state and the
	// background loops wait, so nobody sees a change the store may undo.
	e.mu.Lock()
	var applied []reconciler
	for _, r := range e.reconcilers {
		if !t.any(r.watches()...) {
			continue
		}
		if err := r.apply(ctx, c, t); err != nil {
			e.log.Warn("PKI engine: commit not applied", "commit", c.ID, "reconciler", r.id(), "err", err)
			for _, a := range applied {
				a.finish(false)
			}
			r.finish(false)
			e.mu.Unlock()
			return err
		}
		applied = append(applied, r)
	}
	e.prep = e.prepareLocked(c, applied)
	e.configured = true
	if t.any("trusted-ca-certificate", "certificate-revocation-list", "crl-settings") {
		plan := e.planCRLLocked()
		e.prep.crl = &plan
	}
	e.evaluateLocked(t.all)
	return nil
}

// prepared is a commit the engine holds between Apply and Finish: the
// reconcilers it was applied to, what Finish restores of the engine's own
// evaluation (alarms, statuses, the state last published, counters) when
// the commit fails, and what it does once the commit is saved.
type prepared struct {
	commit  *api.Commit
	applied []reconciler
	// crl is handed to the CRL manager once the commit is saved, so a
	// failed commit never starts fetching a source; nil when the commit
	// changes nothing the manager follows.
	crl *crlPlan
	// logs are the alarm transitions to log once the commit is saved.
	logs []expiry.Transition

	configured bool
	alarms     []expiry.Alarm
	statuses   map[string]string
	published  *gen.Device
	counters   [6]uint64
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

// prepareLocked records the engine's evaluation before c is applied.
// e.mu must be held.
func (e *Engine) prepareLocked(c *api.Commit, applied []reconciler) *prepared {
	p := &prepared{
		commit: c, applied: applied, configured: e.configured,
		alarms: e.alarms.Active(), statuses: map[string]string{}, published: e.published, counters: e.counters(),
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
// running and the CRL manager follows it. Not committed: the engine is
// restored exactly as it was before Apply (alarms with their times,
// counters, peer states, the state last published), and nothing of it was
// published. Either way e.mu, held since Apply, is released.
func (e *Engine) Finish(_ context.Context, c *api.Commit, committed bool) {
	p := e.prep
	if p == nil || p.commit != c {
		e.log.Error("PKI engine: finish of a commit it does not hold; ignored", "commit", c.ID)
		return
	}
	defer e.mu.Unlock()
	e.prep = nil
	for _, r := range p.applied {
		r.finish(committed)
	}
	if committed {
		e.saveLocked() // DIR/pki-state: on disk before the store publishes
		for _, tr := range p.logs {
			e.logAlarm(tr)
		}
		if p.crl != nil {
			e.pushCRLLocked(*p.crl)
		}
		return
	}
	e.configured = p.configured
	e.alarms.Restore(p.alarms)
	for name, mc := range e.certs {
		if st, ok := p.statuses[name]; ok {
			mc.status = st
		}
	}
	e.published = p.published
	e.setCounters(p.counters)
}

var _ api.Finisher = (*Engine)(nil)
