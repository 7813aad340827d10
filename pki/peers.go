package pki

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"sync"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/pki/expiry"
	"github.com/pkiagent/pkiagent/pki/peer"
)

// Peer alarm ids: alarmPeer + ROUTER/PEER.
const (
	alarmPeer    = "peer-certificate:"
	categoryPeer = "peer-certificate"
)

// peers is the reconciler of /authority/router: the index of routers and
// their peers, kept up to date from each commit's changes (a commit that
// touches one router costs one router, whatever the number configured),
// the peers' verdicts, and the state published for each router. The
// verdicts themselves come from validate-peer-certificate and the
// re-checks of the evaluation.
type peers struct {
	mu      sync.Mutex
	routers map[string]*routerConfig
	// states are the verdicts, by router then peer.
	states map[string]map[string]peer.State
	// published is each router's state subtree as last published; dirty
	// the routers whose state may have changed since.
	published map[string]*gen.PkiAuthority_Authority_Router
	dirty     map[string]bool
	// undo holds, for each router apply touched, what Finish(false) puts
	// back; nil when nothing is prepared.
	undo map[string]*routerUndo
	// visits counts the router entries visited, to show that work follows
	// the change and not the number of routers.
	visits int
}

type routerConfig struct {
	validate bool
	action   peer.Action
	peers    map[string]string // peer name -> identifier
}

type routerUndo struct {
	config    *routerConfig
	states    map[string]peer.State
	published *gen.PkiAuthority_Authority_Router
	dirty     bool
}

type peerKey struct{ router, peer string }

func newPeers() *peers {
	return &peers{routers: map[string]*routerConfig{}, states: map[string]map[string]peer.State{},
		published: map[string]*gen.PkiAuthority_Authority_Router{}, dirty: map[string]bool{}}
}

func (ps *peers) id() string { return "peers" }

func (ps *peers) watches() []string { return []string{"router"} }

func (ps *peers) validate(context.Context, *api.Commit, touched) error { return nil }

// apply re-reads the routers the commit touches. Engine.mu is held; the
// verdicts of peers no longer configured are dropped by the engine
// (retainPeersLocked) right after.
func (ps *peers) apply(_ context.Context, c *api.Commit, t touched) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	auth := authorityOf(c.New)
	ps.undo = map[string]*routerUndo{}
	for name := range t.entries("router", keysOf(ps.routers), keysOf(auth.Router)) {
		ps.visits++
		ps.saveUndoLocked(name)
		r := auth.GetRouter(name)
		if r == nil {
			delete(ps.routers, name)
			ps.dirty[name] = true
			continue
		}
		rc := &routerConfig{validate: r.GetPeerValidation(), action: peer.FailSoft, peers: map[string]string{}}
		if r.GetCertificateFailureAction() == gen.PkiAuthority_FailureAction_fail_hard {
			rc.action = peer.FailHard
		}
		for pn, p := range r.Peer {
			rc.peers[pn] = p.GetIdentifier()
		}
		ps.routers[name] = rc
		ps.dirty[name] = true
	}
	return nil
}

// saveUndoLocked records router name as it is, once per commit.
func (ps *peers) saveUndoLocked(name string) {
	if ps.undo == nil {
		return
	}
	if _, ok := ps.undo[name]; ok {
		return
	}
	u := &routerUndo{config: ps.routers[name], published: ps.published[name], dirty: ps.dirty[name]}
	if st := ps.states[name]; st != nil {
		u.states = make(map[string]peer.State, len(st))
		for k, v := range st {
			u.states[k] = v
		}
	}
	ps.undo[name] = u
}

func (ps *peers) finish(committed bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if !committed {
		for name, u := range ps.undo {
			setOrDelete(ps.routers, name, u.config, u.config != nil)
			setOrDelete(ps.states, name, u.states, u.states != nil)
			setOrDelete(ps.published, name, u.published, u.published != nil)
			setOrDelete(ps.dirty, name, true, u.dirty)
		}
	}
	ps.undo = nil
}

func setOrDelete[V any](m map[string]V, k string, v V, set bool) {
	if set {
		m[k] = v
	} else {
		delete(m, k)
	}
}

// router returns the configuration of a router, nil when none.
func (ps *peers) router(name string) *routerConfig {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.routers[name]
}

// state returns a peer's verdict.
func (ps *peers) state(k peerKey) (peer.State, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	st, ok := ps.states[k.router][k.peer]
	return st, ok
}

// setState records a peer's verdict; ok false forgets it.
func (ps *peers) setState(k peerKey, st peer.State, ok bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.saveUndoLocked(k.router)
	m := ps.states[k.router]
	if ok {
		if m == nil {
			m = map[string]peer.State{}
			ps.states[k.router] = m
		}
		m[k.peer] = st
	} else {
		delete(m, k.peer)
		if len(m) == 0 {
			delete(ps.states, k.router)
		}
	}
	ps.dirty[k.router] = true
}

// keys lists the peers with a verdict, sorted; only of routers when given.
func (ps *peers) keys(routers map[string]bool) []peerKey {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out []peerKey
	add := func(rn string) {
		ps.visits++
		for pn := range ps.states[rn] {
			out = append(out, peerKey{router: rn, peer: pn})
		}
	}
	if routers == nil {
		for rn := range ps.states {
			add(rn)
		}
	} else {
		for rn := range routers {
			add(rn)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].router < out[j].router || out[i].router == out[j].router && out[i].peer < out[j].peer
	})
	return out
}

// touchedRouters are the routers apply changed in the commit being held.
func (ps *peers) touchedRouters() map[string]bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make(map[string]bool, len(ps.undo))
	for n := range ps.undo {
		out[n] = true
	}
	return out
}

// stateChanges returns the changes of the state of every dirty router
// since it was last published (/authority/router[name]/peer[name]/state,
// for routers with peer-validation), and marks it published.
func (ps *peers) stateChanges() ([]api.Change, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out []api.Change
	for _, rn := range sortedKeys(ps.dirty) {
		ps.visits++
		cur := ps.routerStateLocked(rn)
		prev := ps.published[rn]
		ch, err := api.DiffNodes(reflect.ValueOf(prev), reflect.ValueOf(cur),
			[]*gnmi.PathElem{{Name: "authority"}, {Name: "router", Key: map[string]string{"name": rn}}})
		if err != nil {
			return out, err
		}
		out = append(out, ch...)
		setOrDelete(ps.published, rn, cur, cur != nil)
		delete(ps.dirty, rn)
	}
	return out, nil
}

// routerStateLocked builds the state subtree of a router: nil when it
// does not validate peers.
func (ps *peers) routerStateLocked(rn string) *gen.PkiAuthority_Authority_Router {
	r := ps.routers[rn]
	if r == nil || !r.validate || len(r.peers) == 0 {
		return nil
	}
	out := &gen.PkiAuthority_Authority_Router{Name: ygot.String(rn)}
	for pn := range r.peers {
		st := ps.states[rn][pn]
		p, _ := out.NewPeer(pn)
		s := p.GetOrCreateState()
		s.Status = peerStatusEnum(st.Status)
		if st.Reason != "" {
			s.Reason = ygot.String(st.Reason)
		}
		if !st.LastValidated.IsZero() {
			s.LastValidated = ygot.String(st.LastValidated.UTC().Format(timeFormat))
		}
	}
	return out
}

// fillState puts the published state of every router into d.
func (ps *peers) fillState(d *gen.Device) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if len(ps.published) == 0 {
		return
	}
	auth := &gen.PkiAuthority_Authority{}
	if d.Authority != nil {
		*auth = *d.Authority
	}
	auth.Router = make(map[string]*gen.PkiAuthority_Authority_Router, len(ps.published))
	for rn, r := range ps.published {
		auth.Router[rn] = r
	}
	d.Authority = auth
}

// retainPeersLocked forgets the verdict and clears the alarm of every peer
// of the given routers (every router when nil) that is no longer
// configured on a router with peer-validation, or whose identifier
// changed. e.mu must be held.
func (e *Engine) retainPeersLocked(routers map[string]bool) {
	for _, k := range e.routers.keys(routers) {
		st, _ := e.routers.state(k)
		if r := e.routers.router(k.router); r != nil && r.validate {
			if id, ok := r.peers[k.peer]; ok && id == st.Identifier {
				continue
			}
		}
		e.routers.setState(k, peer.State{}, false)
		e.peerChangedLocked(k)
		if tr, ok := e.alarms.Clear(peerAlarmID(k)); ok {
			e.publishAlarm(tr)
		}
	}
}

func peerAlarmID(k peerKey) string { return alarmPeer + k.router + "/" + k.peer }

// ValidatePeerCertificate implements api.PKI: the certificate chain a
// peer of a router with peer-validation presented is checked and the
// peer's state, counters and alarm follow the verdict.
func (e *Engine) ValidatePeerCertificate(_ context.Context, c api.Caller, in api.ValidatePeerInput) (api.ValidatePeerOutput, error) {
	k := peerKey{router: in.Router, peer: in.Peer}
	r := e.routers.router(in.Router)
	switch {
	case r == nil:
		return api.ValidatePeerOutput{}, fmt.Errorf("%w: validate-peer-certificate: router %q is not configured (authority/router[name=%s])", api.ErrMissing, in.Router, in.Router)
	case !r.validate:
		return api.ValidatePeerOutput{}, fmt.Errorf("%w: validate-peer-certificate: router %q does not validate peers: set authority/router[name=%s]/peer-validation true", api.ErrInvalid, in.Router, in.Router)
	}
	id, ok := r.peers[in.Peer]
	switch {
	case !ok:
		return api.ValidatePeerOutput{}, fmt.Errorf("%w: validate-peer-certificate: router %q has no peer %q (authority/router[name=%s]/peer[name=%s])", api.ErrMissing, in.Router, in.Peer, in.Router, in.Peer)
	case id == "":
		return api.ValidatePeerOutput{}, fmt.Errorf("%w: validate-peer-certificate: peer %q of router %q has no identifier configured, so no certificate can match it", api.ErrInvalid, in.Peer, in.Router)
	}
	v, err := e.peers.Validate([]byte(in.Certificate), id, e.trust.anchorsNow(), e.clock.Now())
	if err != nil {
		return api.ValidatePeerOutput{}, fmt.Errorf("%w: validate-peer-certificate router %s peer %s: %w", api.ErrInvalid, in.Router, in.Peer, err)
	}
	e.mu.Lock()
	// A commit may have changed the router while the chain was checked.
	r = e.routers.router(in.Router)
	if r == nil || !r.validate || r.peers[in.Peer] != id {
		e.mu.Unlock()
		return api.ValidatePeerOutput{}, fmt.Errorf("validate-peer-certificate: the configuration of router %q peer %q changed during validation; try again", in.Router, in.Peer)
	}
	st := e.recordPeerLocked(k, r, v)
	e.publishStateLocked()
	e.mu.Unlock()
	e.log.Info("peer certificate validated", "router", in.Router, "peer", in.Peer, "result", v.Result, "status", st.Status, "reason", v.Reason, "user", c.User)
	out := api.ValidatePeerOutput{Result: string(v.Result)}
	if v.Result != peer.Valid {
		out.Reason = st.Reason
	}
	return out, nil
}

// recordPeerLocked applies a verdict to a peer of r: state, counter, alarm.
func (e *Engine) recordPeerLocked(k peerKey, r *routerConfig, v peer.Verdict) peer.State {
	prev, _ := e.routers.state(k)
	st := peer.Next(prev, r.action, v, e.clock.Now())
	st.Identifier = r.peers[k.peer]
	e.routers.setState(k, st, true)
	e.peerChangedLocked(k)
	switch v.Result {
	case peer.Expired:
		e.stats.peerExpired.Add(1)
	case peer.Revoked:
		e.stats.peerRevoked.Add(1)
	case peer.Invalid:
		e.stats.peerInvalid.Add(1)
	}
	a := expiry.Alarm{ID: peerAlarmID(k), Resource: fmt.Sprintf("router %s peer %s", k.router, k.peer), Category: categoryPeer, Severity: expiry.SeverityNone}
	if st.Failed() {
		// SPEC: expired, revoked or invalid is critical, whether the
		// session is severed (fail-hard) or only alarmed (fail-soft).
		a.Severity = expiry.SeverityCritical
		a.Text = fmt.Sprintf("router %s peer %s: %s", k.router, k.peer, st.Reason)
	}
	if tr, ok := e.alarms.Set(a); ok {
		e.publishAlarm(tr)
	}
	return st
}

// recheckPeersLocked re-grades every peer whose last certificate was
// accepted: a CRL that now lists it, or its expiry, fails the peer as a
// new validation would.
func (e *Engine) recheckPeersLocked() {
	now := e.clock.Now()
	for _, k := range e.routers.keys(nil) {
		r := e.routers.router(k.router)
		if r == nil {
			continue // retainPeersLocked forgets it
		}
		st, _ := e.routers.state(k)
		if v, bad := e.peers.Recheck(st, now); bad {
			e.recordPeerLocked(k, r, v)
			e.log.Warn("peer certificate no longer valid", "router", k.router, "peer", k.peer, "result", v.Result, "reason", v.Reason)
		}
	}
}

func peerStatusEnum(s peer.Status) gen.E_PkiAuthority_PeerStatus {
	for v, def := range gen.ΛEnum["E_PkiAuthority_PeerStatus"] {
		if def.Name == string(s) {
			return gen.E_PkiAuthority_PeerStatus(v)
		}
	}
	return gen.PkiAuthority_PeerStatus_unknown
}
