package pki

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/pkiagent/pkiagent/internal/persist"
	"github.com/pkiagent/pkiagent/pki/crl"
	"github.com/pkiagent/pkiagent/pki/expiry"
	"github.com/pkiagent/pkiagent/pki/peer"
)

// stateName names the engine's durable state in the state directory:
// DIR/pki-state.json (a snapshot) and DIR/pki-state.journal (the changes
// since), written by internal/persist (framed, checksummed, fsynced; the
// snapshot atomically, mode 0600). They hold what the engine told the
// operator and cannot recompute from the configuration, the certificates
// and the CRLs: active alarms with their times, peer verdicts (a severed
// peer stays severed until it presents a valid certificate), the peer
// certificates known to be revoked or expired (a revoked one stays refused
// when a later CRL drops it), the /stats/security counters, and each CRL
// source's schedule, failures and raised alarms. Certificate statuses are not saved: they are graded again
// from certs/ and crl/ at start.
const stateName = "pki-state"

// Each change appends one record of what differs; after compactRecords
// records (or compactBytes) the journal is folded into a new snapshot.
const (
	compactRecords = 1000
	compactBytes   = 16 << 20
)

// savedState is the snapshot, and each journal record is the same shape
// holding only what changed: counters whole (they are few), alarms and
// peers and CRL sources set or removed.
type savedState struct {
	Counters       *savedCounters `json:"counters,omitempty"`
	Alarms         []savedAlarm   `json:"alarms,omitempty"`
	ClearedAlarms  []string       `json:"cleared-alarms,omitempty"`
	Peers          []savedPeer    `json:"peers,omitempty"`
	RemovedPeers   []savedPeerKey `json:"removed-peers,omitempty"`
	CRLSources     []savedSource  `json:"crl-sources,omitempty"`
	RemovedSources []string       `json:"removed-crl-sources,omitempty"`
	// Known are bad peer certificates the peer cache learned, in the order
	// it learned them (the snapshot: least recently used first).
	Known []savedKnown `json:"known-bad-certificates,omitempty"`
	// Enrollments are the enrollment states of client certificates
	// (outcomes and retry schedule), set or removed.
	Enrollments        []savedEnrollment `json:"enrollments,omitempty"`
	RemovedEnrollments []string          `json:"removed-enrollments,omitempty"`
}

type savedKnown struct {
	SHA256 []byte `json:"sha256"`
	Result string `json:"result"`
	Reason string `json:"reason,omitempty"`
}

func (s *savedState) empty() bool {
	return s.Counters == nil && len(s.Alarms)+len(s.ClearedAlarms)+len(s.Peers)+len(s.RemovedPeers)+len(s.CRLSources)+len(s.RemovedSources)+len(s.Known)+len(s.Enrollments)+len(s.RemovedEnrollments) == 0
}

type savedCounters struct {
	CSRSuccess          uint64 `json:"csr-success"`
	CSRFailure          uint64 `json:"csr-failure"`
	ImportSuccess       uint64 `json:"certificate-import-success"`
	ImportFailure       uint64 `json:"certificate-import-failure"`
	CertExpired         uint64 `json:"certificate-expired"`
	CertInvalid         uint64 `json:"certificate-invalid"`
	CertRevoked         uint64 `json:"certificate-revoked"`
	PeerExpired         uint64 `json:"peer-certificate-expired"`
	PeerInvalid         uint64 `json:"peer-certificate-invalid"`
	PeerRevoked         uint64 `json:"peer-certificate-revoked"`
	CRLFetchSuccess     uint64 `json:"crl-fetch-success"`
	CRLFetchFailure     uint64 `json:"crl-fetch-failure"`
	CRLIngestionSuccess uint64 `json:"crl-ingestion-success"`
	CRLIngestionFailure uint64 `json:"crl-ingestion-failure"`
	EnrollmentSuccess   uint64 `json:"enrollment-success,omitempty"`
	EnrollmentFailure   uint64 `json:"enrollment-failure,omitempty"`
}

type savedAlarm struct {
	ID         string    `json:"id"`
	Resource   string    `json:"resource"`
	Category   string    `json:"category"`
	Severity   string    `json:"severity"`
	Text       string    `json:"text"`
	TimeRaised time.Time `json:"time-raised"`
}

type savedPeerKey struct {
	Router string `json:"router"`
	Peer   string `json:"peer"`
}

type savedPeer struct {
	savedPeerKey
	Status        string    `json:"status"`
	Reason        string    `json:"reason,omitempty"`
	LastValidated time.Time `json:"last-validated,omitzero"`
	Identifier    string    `json:"identifier,omitempty"`
	// Path is the accepted certificate path (DER, leaf first), re-checked
	// when a CRL changes or the certificate expires.
	Path [][]byte `json:"path,omitempty"`
}

type savedSource struct {
	URL                 string    `json:"url"`
	Learned             bool      `json:"learned,omitempty"`
	Issuer              string    `json:"issuer,omitempty"`
	ThisUpdate          time.Time `json:"this-update,omitzero"`
	NextUpdate          time.Time `json:"next-update,omitzero"`
	Number              string    `json:"crl-number,omitempty"`
	Entries             int       `json:"entries,omitempty"`
	SizeBytes           int64     `json:"size-bytes,omitempty"`
	LastAttempt         time.Time `json:"last-attempt,omitzero"`
	LastSuccess         time.Time `json:"last-success,omitzero"`
	LastError           string    `json:"last-error,omitempty"`
	ConsecutiveFailures int       `json:"consecutive-failures,omitempty"`
	NextAttempt         time.Time `json:"next-attempt,omitzero"`
	Unreachable         bool      `json:"unreachable,omitempty"`
	Stale               bool      `json:"stale,omitempty"`
}

// durable is the engine's handle on its state files and what it last
// wrote there, so a save appends only what differs. Guarded by Engine.mu.
type durable struct {
	dir      *persist.Dir
	path     string // of the journal, for messages
	counters savedCounters
	alarms   map[string]expiry.Alarm
	sources  map[string]crl.SourceState
	peers    map[peerKey]bool // changed since the last save
	enrolls  map[string]savedEnrollment
	compact  bool // the next save writes a snapshot

	// known are what the peer cache learned since the last save; the cache
	// reports under its own lock, so they have a lock of their own.
	knownMu sync.Mutex
	known   []peer.Known
}

// loaded is what the state files held at start.
type loaded struct {
	counters savedCounters
	alarms   []expiry.Alarm
	peers    map[peerKey]peer.State
	sources  []crl.SourceState
	known    []peer.Known // in the order they were learned
	enrolls  map[string]savedEnrollment
}

// openDurable opens DIR/pki-state.* and replays them. A damaged file stops
// the start naming it (persist.ErrCorrupt), as running.json does; a record
// torn by a crash at the very end of the journal was never reported to
// anyone and is dropped.
func openDurable(stateDir string) (*durable, *loaded, error) {
	dir, err := persist.OpenJournal(stateDir, stateName)
	if err != nil {
		return nil, nil, err
	}
	snap, recs, err := dir.Load()
	if err != nil {
		return nil, nil, fmt.Errorf("PKI state: %w", err)
	}
	d := &durable{dir: dir, path: filepath.Join(stateDir, stateName+".journal"),
		alarms: map[string]expiry.Alarm{}, sources: map[string]crl.SourceState{}, peers: map[peerKey]bool{}}
	l := &loaded{peers: map[peerKey]peer.State{}, enrolls: map[string]savedEnrollment{}}
	alarms := map[string]expiry.Alarm{}
	sources := map[string]crl.SourceState{}
	replay := func(file string, b []byte, at int) error {
		var s savedState
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("%s: %w: %s does not decode: %v; move it aside to start without the saved alarms, peer states and counters", file, persist.ErrCorrupt, recordName(at), err)
		}
		if s.Counters != nil {
			l.counters = *s.Counters
		}
		for _, a := range s.Alarms {
			sev, ok := parseSeverity(a.Severity)
			if !ok || a.ID == "" {
				return fmt.Errorf("%s: %w: %s: alarm %.64q has severity %.16q", file, persist.ErrCorrupt, recordName(at), a.ID, a.Severity)
			}
			alarms[a.ID] = expiry.Alarm{ID: a.ID, Resource: a.Resource, Category: a.Category, Severity: sev, Text: a.Text, TimeRaised: a.TimeRaised}
		}
		for _, id := range s.ClearedAlarms {
			delete(alarms, id)
		}
		for _, p := range s.Peers {
			st := peer.State{Status: peer.Status(p.Status), Reason: p.Reason, LastValidated: p.LastValidated, Identifier: p.Identifier}
			for i, der := range p.Path {
				c, err := x509.ParseCertificate(der)
				if err != nil {
					return fmt.Errorf("%s: %w: %s: certificate %d of the path of router %.64q peer %.64q: %v", file, persist.ErrCorrupt, recordName(at), i, p.Router, p.Peer, err)
				}
				st.Path = append(st.Path, c)
			}
			l.peers[peerKey{router: p.Router, peer: p.Peer}] = st
		}
		for _, k := range s.RemovedPeers {
			delete(l.peers, peerKey{router: k.Router, peer: k.Peer})
		}
		for _, src := range s.CRLSources {
			sources[src.URL] = src.state()
		}
		for _, u := range s.RemovedSources {
			delete(sources, u)
		}
		for _, en := range s.Enrollments {
			l.enrolls[en.Name] = en
		}
		for _, n := range s.RemovedEnrollments {
			delete(l.enrolls, n)
		}
		for _, k := range s.Known {
			r := peer.Result(k.Result)
			if len(k.SHA256) != 32 || (r != peer.Revoked && r != peer.Expired) {
				return fmt.Errorf("%s: %w: %s: a known bad certificate has a %d-byte fingerprint and result %.16q", file, persist.ErrCorrupt, recordName(at), len(k.SHA256), k.Result)
			}
			l.known = append(l.known, peer.Known{FP: [32]byte(k.SHA256), Entry: peer.Entry{Result: r, Reason: k.Reason}})
		}
		return nil
	}
	if snap != nil {
		if err := replay(filepath.Join(stateDir, stateName+".json"), snap, -1); err != nil {
			return nil, nil, err
		}
	}
	for i, r := range recs {
		if err := replay(d.path, r, i+1); err != nil {
			return nil, nil, err
		}
	}
	for _, id := range sortedKeys(alarms) {
		l.alarms = append(l.alarms, alarms[id])
	}
	for _, u := range sortedKeys(sources) {
		l.sources = append(l.sources, sources[u])
	}
	d.counters, d.alarms, d.sources = l.counters, alarms, sources
	d.enrolls = maps.Clone(l.enrolls)
	if n, _ := dir.JournalSize(); n >= compactRecords {
		d.compact = true
	}
	return d, l, nil
}

func recordName(record int) string {
	if record < 0 {
		return "the snapshot"
	}
	return fmt.Sprintf("record %d", record)
}

func parseSeverity(s string) (expiry.Severity, bool) {
	for _, sev := range []expiry.Severity{expiry.SeverityMinor, expiry.SeverityMajor, expiry.SeverityCritical} {
		if sev.String() == s {
			return sev, true
		}
	}
	return expiry.SeverityNone, false
}

func (s savedSource) state() crl.SourceState {
	return crl.SourceState{URL: s.URL, Learned: s.Learned, Issuer: s.Issuer, ThisUpdate: s.ThisUpdate, NextUpdate: s.NextUpdate,
		Number: s.Number, Entries: s.Entries, SizeBytes: s.SizeBytes, LastAttempt: s.LastAttempt, LastSuccess: s.LastSuccess,
		LastError: s.LastError, ConsecutiveFailures: s.ConsecutiveFailures, NextAttempt: s.NextAttempt, Unreachable: s.Unreachable, Stale: s.Stale}
}

func sourceOf(st crl.SourceState) savedSource {
	return savedSource{URL: st.URL, Learned: st.Learned, Issuer: st.Issuer, ThisUpdate: st.ThisUpdate, NextUpdate: st.NextUpdate,
		Number: st.Number, Entries: st.Entries, SizeBytes: st.SizeBytes, LastAttempt: st.LastAttempt, LastSuccess: st.LastSuccess,
		LastError: st.LastError, ConsecutiveFailures: st.ConsecutiveFailures, NextAttempt: st.NextAttempt, Unreachable: st.Unreachable, Stale: st.Stale}
}

func alarmOf(a expiry.Alarm) savedAlarm {
	return savedAlarm{ID: a.ID, Resource: a.Resource, Category: a.Category, Severity: a.Severity.String(), Text: a.Text, TimeRaised: a.TimeRaised.UTC()}
}

func knownOf(k peer.Known) savedKnown {
	return savedKnown{SHA256: k.FP[:], Result: string(k.Result), Reason: k.Reason}
}

func peerOf(k peerKey, st peer.State) savedPeer {
	p := savedPeer{savedPeerKey: savedPeerKey{Router: k.router, Peer: k.peer}, Status: string(st.Status), Reason: st.Reason,
		LastValidated: st.LastValidated.UTC(), Identifier: st.Identifier}
	for _, c := range st.Path {
		p.Path = append(p.Path, c.Raw)
	}
	return p
}

// restoreLocked puts what the state files held back in place, before the
// first evaluation: the alarm tracker, the peer verdicts and the engine's
// counters (the CRL manager takes its own through crl.Config.Resume).
func (e *Engine) restoreLocked(l *loaded) {
	e.alarms.Restore(l.alarms)
	for k, st := range l.peers {
		e.routers.setState(k, st, true)
	}
	cache := e.peers.Cache()
	for _, k := range l.known {
		cache.Put(k.FP, k.Result, k.Reason)
	}
	if d := e.durable; d != nil {
		cache.Observe(func(k peer.Known) {
			d.knownMu.Lock()
			d.known = append(d.known, k)
			d.knownMu.Unlock()
		})
	}
	c, s := l.counters, &e.stats
	s.csrOK.Store(c.CSRSuccess)
	s.csrFail.Store(c.CSRFailure)
	s.importOK.Store(c.ImportSuccess)
	s.importFail.Store(c.ImportFailure)
	s.certExpired.Store(c.CertExpired)
	s.certInvalid.Store(c.CertInvalid)
	s.certRevoked.Store(c.CertRevoked)
	s.peerExpired.Store(c.PeerExpired)
	s.peerInvalid.Store(c.PeerInvalid)
	s.peerRevoked.Store(c.PeerRevoked)
	s.enrollOK.Store(c.EnrollmentSuccess)
	s.enrollFail.Store(c.EnrollmentFailure)
	e.enroll.restore(l.enrolls)
}

func (e *Engine) countersNow() savedCounters {
	s, cs := &e.stats, e.revocation.m.Stats()
	return savedCounters{
		CSRSuccess: s.csrOK.Load(), CSRFailure: s.csrFail.Load(),
		ImportSuccess: s.importOK.Load(), ImportFailure: s.importFail.Load(),
		CertExpired: s.certExpired.Load(), CertInvalid: s.certInvalid.Load(), CertRevoked: s.certRevoked.Load(),
		PeerExpired: s.peerExpired.Load(), PeerInvalid: s.peerInvalid.Load(), PeerRevoked: s.peerRevoked.Load(),
		CRLFetchSuccess: cs.FetchSuccess, CRLFetchFailure: cs.FetchFailure,
		CRLIngestionSuccess: cs.IngestionSuccess, CRLIngestionFailure: cs.IngestionFailure,
		EnrollmentSuccess: s.enrollOK.Load(), EnrollmentFailure: s.enrollFail.Load(),
	}
}

// peerChangedLocked marks a peer whose verdict was set or forgotten, for
// the next save.
func (e *Engine) peerChangedLocked(k peerKey) {
	if e.durable != nil {
		e.durable.peers[k] = true
	}
}

// saveLocked appends to the journal what changed since the last save
// (nothing when nothing did), so what is published next is on disk first.
// A failed write is logged and retried with the next change; the state in
// memory stays authoritative. e.mu must be held.
func (e *Engine) saveLocked() {
	d := e.durable
	if d == nil {
		return
	}
	counters := e.countersNow()
	active := e.alarms.Active()
	if d.compact {
		e.compactLocked(counters, active)
		return
	}
	var rec savedState
	if counters != d.counters {
		rec.Counters = &counters
	}
	now := make(map[string]bool, len(active))
	for _, a := range active {
		now[a.ID] = true
		if d.alarms[a.ID] != a {
			rec.Alarms = append(rec.Alarms, alarmOf(a))
		}
	}
	for _, id := range sortedKeys(d.alarms) {
		if !now[id] {
			rec.ClearedAlarms = append(rec.ClearedAlarms, id)
		}
	}
	for _, k := range sortedPeerKeys(d.peers) {
		if st, ok := e.routers.state(k); ok {
			rec.Peers = append(rec.Peers, peerOf(k, st))
		} else {
			rec.RemovedPeers = append(rec.RemovedPeers, savedPeerKey{Router: k.router, Peer: k.peer})
		}
	}
	states := e.revocation.sourceStates()
	for _, u := range sortedKeys(states) {
		if st := states[u]; d.sources[u] != st {
			rec.CRLSources = append(rec.CRLSources, sourceOf(st))
		}
	}
	for _, u := range sortedKeys(d.sources) {
		if _, ok := states[u]; !ok {
			rec.RemovedSources = append(rec.RemovedSources, u)
		}
	}
	enrolls := e.enroll.saved()
	for _, n := range sortedKeys(enrolls) {
		if d.enrolls[n] != enrolls[n] {
			rec.Enrollments = append(rec.Enrollments, enrolls[n])
		}
	}
	for _, n := range sortedKeys(d.enrolls) {
		if _, ok := enrolls[n]; !ok {
			rec.RemovedEnrollments = append(rec.RemovedEnrollments, n)
		}
	}
	d.knownMu.Lock()
	known := d.known
	d.known = nil
	d.knownMu.Unlock()
	for _, k := range known {
		rec.Known = append(rec.Known, knownOf(k))
	}
	if rec.empty() {
		return
	}
	b, err := json.Marshal(&rec)
	if err == nil {
		err = d.dir.Append(b)
	}
	if err != nil {
		d.knownMu.Lock()
		d.known = append(known, d.known...) // retried with the next save
		d.knownMu.Unlock()
		e.log.Error("PKI state not saved; it is retried with the next change", "file", d.path, "err", err)
		return
	}
	e.savedLocked(counters, active, states)
	d.enrolls = enrolls
	if n, size := d.dir.JournalSize(); n >= compactRecords || size >= compactBytes {
		d.compact = true
	}
}

// compactLocked writes the whole state as the snapshot and empties the
// journal.
func (e *Engine) compactLocked(counters savedCounters, active []expiry.Alarm) {
	d := e.durable
	s := savedState{Counters: &counters}
	for _, a := range active {
		s.Alarms = append(s.Alarms, alarmOf(a))
	}
	for _, k := range e.routers.keys(nil) {
		st, _ := e.routers.state(k)
		s.Peers = append(s.Peers, peerOf(k, st))
	}
	states := e.revocation.sourceStates()
	for _, u := range sortedKeys(states) {
		s.CRLSources = append(s.CRLSources, sourceOf(states[u]))
	}
	enrolls := e.enroll.saved()
	for _, n := range sortedKeys(enrolls) {
		s.Enrollments = append(s.Enrollments, enrolls[n])
	}
	d.knownMu.Lock()
	d.known = nil // All below holds them
	d.knownMu.Unlock()
	for _, k := range e.peers.Cache().All() {
		s.Known = append(s.Known, knownOf(k))
	}
	b, err := json.Marshal(&s)
	if err == nil {
		err = d.dir.Compact(b)
	}
	if err != nil {
		e.log.Error("PKI state not saved; it is retried with the next change", "file", filepath.Join(filepath.Dir(d.path), stateName+".json"), "err", err)
		return
	}
	d.compact = false
	e.savedLocked(counters, active, states)
	d.enrolls = enrolls
}

// savedLocked records what is now on disk.
func (e *Engine) savedLocked(counters savedCounters, active []expiry.Alarm, sources map[string]crl.SourceState) {
	d := e.durable
	d.counters = counters
	d.alarms = make(map[string]expiry.Alarm, len(active))
	for _, a := range active {
		d.alarms[a.ID] = a
	}
	d.sources = sources
	clear(d.peers)
}

// saveCounters saves after a counter moved outside an evaluation (a CSR,
// a refused import, a CRL fetch).
func (e *Engine) saveCounters() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.saveLocked()
}

// closeDurable closes the state files once nothing changes any more.
func (e *Engine) closeDurable() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.durable != nil {
		e.durable.dir.Close()
		e.durable = nil
	}
}

func sortedPeerKeys(m map[peerKey]bool) []peerKey {
	out := make([]peerKey, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].router < out[j].router || out[i].router == out[j].router && out[i].peer < out[j].peer
	})
	return out
}
