package pki

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/pki/chain"
	"github.com/pkiagent/pkiagent/pki/expiry"
)

// Alarm categories beyond expiry's.
const (
	categoryRevoked    = "certificate-revoked"
	categoryMissing    = "certificate-missing"
	categoryTrustedCA  = "trusted-ca-warning"
	alarmCertificate   = "certificate:"
	alarmMissing       = "certificate-missing:"
	alarmTrustedCA     = "trusted-ca:"
	alarmTrustedExpiry = "trusted-ca-validity:"
)

// evaluateLocked grades every certificate and trusted CA, updates statuses,
// turns the verdicts into alarm transitions, and publishes what changed.
// Peers are checked as the change requires: allPeers re-checks every
// accepted peer and drops the verdicts of every peer no longer configured
// (a start, a CRL that changed, the periodic re-grade); otherwise only the
// routers the commit being applied touched are looked at, so a commit of
// one router costs one router. e.mu must be held.
func (e *Engine) evaluateLocked(allPeers bool) {
	now := e.clock.Now()
	want := map[string]expiry.Alarm{}
	e.trust.refresh() // a CA expired or became valid since the commit
	ts := e.trust.view()

	for name, mc := range e.certs {
		if mc.cert == nil {
			mc.status = "no-certificate"
			continue
		}
		g := e.expiryAlarms.windows().GradeAt(mc.cert.NotBefore, mc.cert.NotAfter, now)
		mc.status = string(g.Status)
		alarm := expiry.Alarm{ID: alarmCertificate + name, Resource: "certificate " + name, Category: g.Category, Severity: g.Severity, Text: fmt.Sprintf("certificate %s: %s", name, g.Text)}
		if e.configured && g.Status != expiry.StatusExpired && g.Status != expiry.StatusInvalid {
			if err := trustErr(mc, ts.store, now); err != nil {
				mc.status = string(expiry.StatusInvalid)
				alarm.Category, alarm.Severity = expiry.CategoryInvalid, expiry.SeverityCritical
				alarm.Text = fmt.Sprintf("certificate %s no longer chains to a configured trusted CA: %v", name, err)
			}
		}
		if what, ok := e.revoked(mc); ok {
			mc.status = "revoked"
			alarm.Category, alarm.Severity = categoryRevoked, expiry.SeverityCritical
			alarm.Text = fmt.Sprintf("certificate %s: %s: issue and import a new certificate", name, what)
		}
		if alarm.Severity != expiry.SeverityNone {
			want[alarm.ID] = alarm
		}
	}
	for _, name := range e.certificates.names() {
		if mc, ok := e.certs[name]; !ok || mc.cert == nil {
			want[alarmMissing+name] = expiry.Alarm{ID: alarmMissing + name, Resource: "client-certificate " + name, Category: categoryMissing, Severity: expiry.SeverityMajor,
				Text: fmt.Sprintf("client-certificate %s is configured but has no certificate: run generate-private-key, generate-csr and import-certificate for %s", name, name)}
		}
	}
	for name, t := range ts.trusted {
		if t.mode == "warn" {
			if ws := t.bundle.Warnings(); len(ws) > 0 {
				want[alarmTrustedCA+name] = expiry.Alarm{ID: alarmTrustedCA + name, Resource: "trusted-ca-certificate " + name, Category: categoryTrustedCA, Severity: expiry.SeverityMajor,
					Text: fmt.Sprintf("trusted-ca-certificate %s was committed in warn mode with problems: %s", name, strings.Join(ws, "; "))}
			}
		}
		for _, c := range t.bundle.Certs {
			g := e.expiryAlarms.windows().GradeAt(c.NotBefore, c.NotAfter, now)
			if g.Severity == expiry.SeverityNone {
				continue
			}
			id := alarmTrustedExpiry + name
			if cur, ok := want[id]; ok && cur.Severity >= g.Severity {
				continue
			}
			want[id] = expiry.Alarm{ID: id, Resource: "trusted-ca-certificate " + name, Category: g.Category, Severity: g.Severity,
				Text: fmt.Sprintf("trusted-ca-certificate %s: CA %s: %s", name, c.Subject, g.Text)}
		}
	}

	if !e.configured {
		// Until a configuration is applied (Load), the alarms stay as they
		// were restored: the verdicts that depend on it (trust, client
		// certificates, trusted CAs, peers) are not known yet.
		e.publishStateLocked()
		return
	}
	if allPeers {
		e.retainPeersLocked(nil)
		e.recheckPeersLocked()
	} else {
		e.retainPeersLocked(e.routers.touchedRouters())
	}

	var transitions []expiry.Transition
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if tr, ok := e.alarms.Set(want[id]); ok {
			transitions = append(transitions, tr)
		}
	}
	transitions = append(transitions, e.alarms.Retain(func(a expiry.Alarm) bool {
		_, keep := want[a.ID]
		return keep || !e.ownsAlarm(a.ID)
	})...)
	for _, tr := range transitions {
		e.countTransition(tr)
		e.publishAlarm(tr)
	}
	e.publishStateLocked()
}

// ownsAlarm reports whether evaluateLocked decides this alarm (others, such
// as CRL and peer alarms, are raised elsewhere).
func (e *Engine) ownsAlarm(id string) bool {
	for _, p := range []string{alarmCertificate, alarmMissing, alarmTrustedCA, alarmTrustedExpiry} {
		if strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}

// revoked reports whether the certificate of mc, or a CA of its path, is
// on a known CRL, and says which. The certificate is looked up under its
// issuer's name (RawIssuer, which is how the CRL index is keyed and how
// chains are built), so one issued directly by a trusted root is checked
// whatever its stored chain holds. The CAs are checked along the path the
// trust store verified, else along the stored chain.
func (e *Engine) revoked(mc *managedCert) (string, bool) {
	idx := e.cfg.Revocation
	if idx.IsRevoked(mc.cert.RawIssuer, mc.cert.SerialNumber) {
		return fmt.Sprintf("the certificate (serial %s) is revoked by its CA %q", chain.SerialHex(mc.cert), mc.cert.Issuer.String()), true
	}
	path := mc.trust.path
	if len(path) == 0 {
		path = mc.chain
	}
	for i := 1; i+1 < len(path); i++ {
		c, issuer := path[i], path[i+1]
		if idx.IsRevoked(issuer.RawSubject, c.SerialNumber) {
			return fmt.Sprintf("CA %q of its path (serial %s) is revoked by %q", c.Subject.String(), chain.SerialHex(c), issuer.Subject.String()), true
		}
	}
	return "", false
}

func (e *Engine) countTransition(tr expiry.Transition) {
	if tr.Change == expiry.Cleared || !strings.HasPrefix(tr.Alarm.ID, alarmCertificate) {
		return
	}
	switch tr.Alarm.Category {
	case expiry.CategoryExpired:
		e.stats.certExpired.Add(1)
	case expiry.CategoryInvalid:
		e.stats.certInvalid.Add(1)
	case categoryRevoked:
		e.stats.certRevoked.Add(1)
	}
}

func alarmAction(tr expiry.Transition) string {
	if tr.Change == expiry.Cleared {
		return "cleared"
	}
	return "raised"
}

func (e *Engine) logAlarm(tr expiry.Transition) {
	e.log.Info("alarm "+alarmAction(tr), "id", tr.Alarm.ID, "severity", tr.Alarm.Severity.String(), "text", tr.Alarm.Text)
}

func (e *Engine) publishAlarm(tr expiry.Transition) {
	a := tr.Alarm
	action := alarmAction(tr)
	if e.prep != nil {
		// Logged once the commit is saved, like its events published.
		e.prep.logs = append(e.prep.logs, tr)
	} else {
		e.logAlarm(tr)
	}
	if e.cfg.Bus == nil {
		return
	}
	e.emitLocked(api.Event{Kind: api.EventNotification, Time: e.clock.Now().UTC(), Notification: &api.Notification{
		Module: "pki-authority", Name: "alarm-notification",
		Leaves: []api.Leaf{
			{Name: "action", Value: action}, {Name: "id", Value: a.ID}, {Name: "resource", Value: a.Resource},
			{Name: "category", Value: a.Category}, {Name: "severity", Value: a.Severity.String()},
			{Name: "text", Value: a.Text}, {Name: "time-raised", Value: a.TimeRaised.UTC().Format(timeFormat)},
		},
	}})
}

const timeFormat = "2006-01-02T15:04:05Z07:00"

// publishStateLocked diffs the state tree against what was last published
// and sends the difference on the bus: the engine's own state whole, the
// routers' state only for the routers whose state may have changed.
func (e *Engine) publishStateLocked() {
	if e.prep == nil {
		e.saveLocked() // what is published is on disk first
	} // a commit's state is saved by Finish, before the store publishes it
	st := e.stateLocked()
	prev := e.published
	if prev == nil {
		prev = &gen.Device{}
	}
	e.published = st
	routers, err := e.routers.stateChanges()
	if err != nil {
		e.log.Error("computing peer state changes for telemetry", "err", err)
	}
	if e.cfg.Bus == nil {
		return
	}
	changes, err := api.Diff(prev, st)
	if err != nil {
		e.log.Error("computing state changes for telemetry", "err", err)
		return
	}
	changes = append(changes, routers...)
	if len(changes) > 0 {
		e.emitLocked(api.Event{Kind: api.EventState, Time: e.clock.Now().UTC(), Changes: changes})
	}
}
