package pki

import (
	"context"
	"fmt"
	"sort"

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

func routersOf(auth *gen.PkiAuthority_Authority) map[string]*routerConfig {
	out := map[string]*routerConfig{}
	for name, r := range auth.Router {
		rc := &routerConfig{validate: r.GetPeerValidation(), action: peer.FailSoft, peers: map[string]string{}}
		if r.GetCertificateFailureAction() == gen.PkiAuthority_FailureAction_fail_hard {
			rc.action = peer.FailHard
		}
		for pn, p := range r.Peer {
			rc.peers[pn] = p.GetIdentifier()
		}
		out[name] = rc
	}
	return out
}

// retainPeersLocked forgets the state and clears the alarm of every peer
// that is no longer configured on a router with peer-validation.
func (e *Engine) retainPeersLocked() {
	for k := range e.peerStates {
		if r := e.routers[k.router]; r != nil && r.validate {
			if id, ok := r.peers[k.peer]; ok && id == e.peerStates[k].Identifier {
				continue
			}
		}
		delete(e.peerStates, k)
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
	e.mu.Lock()
	r := e.routers[in.Router]
	anchors := e.peerTrust
	e.mu.Unlock()
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
	v, err := e.peers.Validate([]byte(in.Certificate), id, anchors, e.clock.Now())
	if err != nil {
		return api.ValidatePeerOutput{}, fmt.Errorf("%w: validate-peer-certificate router %s peer %s: %w", api.ErrInvalid, in.Router, in.Peer, err)
	}
	e.mu.Lock()
	// A commit may have changed the router while the chain was checked.
	r = e.routers[in.Router]
	if r == nil || !r.validate || r.peers[in.Peer] != id {
		e.mu.Unlock()
		return api.ValidatePeerOutput{}, fmt.Errorf("validate-peer-certificate: the configuration of router %q peer %q changed during validation; try again", in.Router, in.Peer)
	}
	st := e.recordPeerLocked(k, r.action, v)
	e.publishStateLocked()
	e.mu.Unlock()
	e.log.Info("peer certificate validated", "router", in.Router, "peer", in.Peer, "result", v.Result, "status", st.Status, "reason", v.Reason, "user", c.User)
	out := api.ValidatePeerOutput{Result: string(v.Result)}
	if v.Result != peer.Valid {
		out.Reason = st.Reason
	}
	return out, nil
}

// recordPeerLocked applies a verdict to a peer: state, counter, alarm.
func (e *Engine) recordPeerLocked(k peerKey, action peer.Action, v peer.Verdict) peer.State {
	st := peer.Next(e.peerStates[k], action, v, e.clock.Now())
	if r := e.routers[k.router]; r != nil {
		st.Identifier = r.peers[k.peer]
	}
	e.peerStates[k] = st
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
	keys := make([]peerKey, 0, len(e.peerStates))
	for k := range e.peerStates {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].router < keys[j].router || keys[i].router == keys[j].router && keys[i].peer < keys[j].peer
	})
	now := e.clock.Now()
	for _, k := range keys {
		r := e.routers[k.router]
		if r == nil {
			continue // retainPeersLocked forgets it
		}
		if v, bad := e.peers.Recheck(e.peerStates[k], now); bad {
			e.recordPeerLocked(k, r.action, v)
			e.log.Warn("peer certificate no longer valid", "router", k.router, "peer", k.peer, "result", v.Result, "reason", v.Reason)
		}
	}
}

// peerStateLocked fills /authority/router[name]/peer[name]/state for the
// routers with peer-validation.
func (e *Engine) peerStateLocked(d *gen.Device) {
	for rn, r := range e.routers {
		if !r.validate {
			continue
		}
		for pn := range r.peers {
			st := e.peerStates[peerKey{router: rn, peer: pn}]
			ps := d.GetOrCreateAuthority().GetOrCreateRouter(rn).GetOrCreatePeer(pn).GetOrCreateState()
			ps.Status = peerStatusEnum(st.Status)
			if st.Reason != "" {
				ps.Reason = ygot.String(st.Reason)
			}
			if !st.LastValidated.IsZero() {
				ps.LastValidated = ygot.String(st.LastValidated.UTC().Format(timeFormat))
			}
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
