package pki

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/openconfig/ygot/ygot"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/pki/crl"
	"github.com/pkiagent/pkiagent/pki/expiry"
)

// CRL alarm ids: PREFIX + URL.
const (
	alarmCRLUnreachable = "crl-unreachable:"
	alarmCRLStale       = "crl-stale:"
)

// revocation is the reconciler of /authority/certificate-revocation-list
// and /authority/crl-settings: the CRL sources configured, those learned
// from the distribution points of trusted CAs and managed certificates,
// and the CRL manager (crl.Manager) that fetches, verifies and indexes
// them and answers every revocation check.
type revocation struct {
	m *crl.Manager

	mu       sync.Mutex
	config   map[string]crl.Source // configured, by URL
	proxy    string
	discover bool
	learned  map[string][]string // URL -> what names it
	states   map[string]crl.SourceState
	caKey    string // the CA set last given to the manager
	// undo is what finish(false) puts back; nil when nothing is prepared.
	undo *revocationUndo
}

type revocationUndo struct {
	config   map[string]*crl.Source // by URL touched; nil: it was absent
	all      map[string]crl.Source  // the whole set, when crl-settings changed
	proxy    string
	discover bool
	learned  map[string][]string
}

func newRevocation() *revocation {
	return &revocation{config: map[string]crl.Source{}, discover: true, learned: map[string][]string{}, states: map[string]crl.SourceState{}}
}

func (rv *revocation) id() string { return "revocation" }

func (rv *revocation) watches() []string {
	return []string{"certificate-revocation-list", "crl-settings"}
}

// validate: every source the commit adds or changes must be pollable (all
// of them when the proxy of crl-settings changes).
func (rv *revocation) validate(_ context.Context, c *api.Commit, t touched) error {
	auth := authorityOf(c.New)
	if t.any("crl-settings") {
		_, err := crlSourcesOf(auth)
		return err
	}
	var errs []error
	for _, url := range sortedKeys(t.keys["certificate-revocation-list"]) {
		if l := auth.GetCertificateRevocationList(url); l != nil {
			if _, err := crlSource(url, l, auth.GetCrlSettings().GetHttpProxy()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (rv *revocation) apply(_ context.Context, c *api.Commit, t touched) error {
	auth := authorityOf(c.New)
	rv.mu.Lock()
	defer rv.mu.Unlock()
	u := &revocationUndo{proxy: rv.proxy, discover: rv.discover, learned: rv.learned}
	if t.any("crl-settings") {
		sources, err := crlSourcesOf(auth)
		if err != nil {
			return err
		}
		u.all, rv.config = rv.config, sources
	} else {
		u.config = map[string]*crl.Source{}
		for url := range t.keys["certificate-revocation-list"] {
			if old, ok := rv.config[url]; ok {
				u.config[url] = &old
			} else {
				u.config[url] = nil
			}
			l := auth.GetCertificateRevocationList(url)
			if l == nil {
				delete(rv.config, url)
				continue
			}
			s, err := crlSource(url, l, auth.GetCrlSettings().GetHttpProxy())
			if err != nil {
				rv.undoLocked(u)
				return err
			}
			rv.config[url] = s
		}
	}
	rv.proxy = auth.GetCrlSettings().GetHttpProxy()
	rv.discover = auth.GetCrlSettings().GetDiscoverFromCertificates()
	rv.undo = u
	return nil
}

func (rv *revocation) finish(committed bool) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if !committed && rv.undo != nil {
		rv.undoLocked(rv.undo)
	}
	rv.undo = nil
}

func (rv *revocation) undoLocked(u *revocationUndo) {
	if u.all != nil {
		rv.config = u.all
	}
	for url, s := range u.config {
		if s == nil {
			delete(rv.config, url)
		} else {
			rv.config[url] = *s
		}
	}
	rv.proxy, rv.discover, rv.learned = u.proxy, u.discover, u.learned
}

// sourceStates returns the manager's state of every source, by URL.
func (rv *revocation) sourceStates() map[string]crl.SourceState {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return maps.Clone(rv.states)
}

func (rv *revocation) setState(url string, st crl.SourceState, ok bool) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	setOrDelete(rv.states, url, st, ok)
}

// crlPlan is what the engine hands the CRL manager.
type crlPlan struct {
	cas     []*x509.Certificate
	caKey   string
	sources []crl.Source
}

// syncCRLLocked hands the CRL manager the trusted CAs and the complete set
// of sources: the configured ones and, with discover-from-certificates,
// the distribution points of managed certificates and trusted CAs. CAs
// that issued a managed certificate's chain (verified at import) are
// trusted to sign CRLs too. e.mu must be held.
func (e *Engine) syncCRLLocked() { e.pushCRLLocked(e.planCRLLocked()) }

// planCRLLocked works out the CA set and the sources from the trust, the
// certificates and the configured sources, and the learned sources its
// state shows; it does not touch the CRL manager. e.mu must be held.
func (e *Engine) planCRLLocked() crlPlan {
	var cas []*x509.Certificate
	seen := map[[32]byte]bool{}
	addCA := func(c *x509.Certificate) {
		if sum := sha256.Sum256(c.Raw); c.IsCA && !seen[sum] {
			seen[sum] = true
			cas = append(cas, c)
		}
	}
	learned := map[string][]string{}
	learn := func(urls []string, from string) {
		for _, u := range urls {
			if !slices.Contains(learned[u], from) {
				learned[u] = append(learned[u], from)
			}
		}
	}
	trusted := e.trust.view().trusted
	for _, name := range sortedKeys(trusted) {
		for _, c := range trusted[name].bundle.Certs {
			addCA(c)
			learn(c.CRLDistributionPoints, "trusted-ca-certificate "+name)
		}
	}
	for _, name := range sortedKeys(e.certs) {
		mc := e.certs[name]
		if mc.cert == nil {
			continue
		}
		learn(mc.cert.CRLDistributionPoints, "certificate "+name)
		for _, c := range mc.chain[1:] {
			addCA(c)
		}
	}
	rv := e.revocation
	rv.mu.Lock()
	defer rv.mu.Unlock()
	sources := make([]crl.Source, 0, len(rv.config)+len(learned))
	for _, s := range rv.config {
		sources = append(sources, s)
	}
	rv.learned = map[string][]string{}
	if rv.discover {
		for u, from := range learned {
			s := crl.Source{URL: u, Proxy: rv.proxy, Learned: true}
			if err := s.Validate(); err != nil {
				e.log.Debug("CRL distribution point not fetched", "url", u, "learned_from", from, "err", err)
				continue
			}
			rv.learned[u] = from
			if _, configured := rv.config[u]; !configured {
				sources = append(sources, s)
			}
		}
	}
	return crlPlan{cas: cas, caKey: caSetKey(seen), sources: sources}
}

// pushCRLLocked hands a plan to the CRL manager. e.mu must be held.
func (e *Engine) pushCRLLocked(p crlPlan) {
	rv := e.revocation
	// Only a changed set: SetTrustedCAs retries sources that failed
	// verification, which an unrelated commit should not trigger.
	if p.caKey != rv.caKey {
		rv.caKey = p.caKey
		rv.m.SetTrustedCAs(p.cas)
	}
	if err := rv.m.SetSources(p.sources); err != nil {
		// Configured sources were checked by Validate; learned ones above.
		e.log.Error("CRL sources not updated", "err", err)
	}
}

// onCRLEvent turns the CRL manager's events into audit records,
// notifications, alarms, state and re-evaluation. It runs on the
// manager's delivery goroutine.
func (e *Engine) onCRLEvent(ev crl.Event) {
	switch ev := ev.(type) {
	case *crl.Update:
		e.saveCounters() // an attempt moved a crl-fetch or crl-ingestion counter
		e.auditCRLUpdate(ev)
		e.publishCRLUpdate(ev)
	case *crl.StateChange:
		e.mu.Lock()
		e.revocation.setState(ev.State.URL, ev.State, true)
		e.publishStateLocked()
		e.mu.Unlock()
	case *crl.SourceRemoved:
		e.mu.Lock()
		e.revocation.setState(ev.URL, crl.SourceState{}, false)
		e.publishStateLocked()
		e.mu.Unlock()
	case *crl.AlarmChange:
		e.mu.Lock()
		e.crlAlarmLocked(ev)
		e.publishStateLocked()
		e.mu.Unlock()
	case *crl.Changed:
		// The index already answers from the new lists: re-grade every
		// certificate and every accepted peer now.
		e.Evaluate()
	}
}

func (e *Engine) crlAlarmLocked(ev *crl.AlarmChange) {
	prefix := alarmCRLUnreachable
	if ev.Category == crl.AlarmStale {
		prefix = alarmCRLStale
	}
	a := expiry.Alarm{ID: prefix + ev.Resource, Resource: "certificate-revocation-list " + ev.Resource, Category: ev.Category, Severity: expiry.SeverityMajor, Text: ev.Text}
	if !ev.Raised {
		a.Severity = expiry.SeverityNone
	}
	if tr, ok := e.alarms.Set(a); ok {
		e.publishAlarm(tr)
	}
}

func (e *Engine) auditCRLUpdate(u *crl.Update) {
	if e.cfg.Audit == nil {
		return
	}
	var detail map[string]any
	b, _ := json.Marshal(u.Detail())
	json.Unmarshal(b, &detail)
	if err := e.cfg.Audit.Write(audit.Event{Time: u.Time.UTC(), User: "system", Type: "system.crl_update", Description: u.Description(), Detail: detail, Permitted: true}); err != nil {
		e.log.Error("audit log write failed", "type", "system.crl_update", "err", err)
	}
}

func (e *Engine) publishCRLUpdate(u *crl.Update) {
	if e.cfg.Bus == nil {
		return
	}
	leaves := []api.Leaf{
		{Name: "url", Value: u.URL}, {Name: "issuer", Value: u.Issuer}, {Name: "forced", Value: u.Forced},
		{Name: "success", Value: u.Success}, {Name: "size", Value: uint64(u.Size)},
		{Name: "total-entries", Value: uint64(u.TotalEntries)}, {Name: "added-entries", Value: uint64(u.AddedEntries)},
		{Name: "removed-entries", Value: uint64(u.RemovedEntries)},
	}
	if !u.ThisUpdate.IsZero() {
		leaves = append(leaves, api.Leaf{Name: "this-update", Value: u.ThisUpdate.UTC().Format(timeFormat)})
	}
	if !u.NextUpdate.IsZero() {
		leaves = append(leaves, api.Leaf{Name: "next-update", Value: u.NextUpdate.UTC().Format(timeFormat)})
	}
	// From the CRL manager's goroutine, never inside a commit: straight to
	// the bus.
	e.cfg.Bus.Publish(api.Event{Kind: api.EventNotification, Time: u.Time.UTC(), Notification: &api.Notification{Module: "pki-authority", Name: "crl-update", Leaves: leaves}})
}

// RefreshCRL implements api.PKI: a forced fetch of one source, or of
// every configured and learned source, waiting for the outcomes.
func (e *Engine) RefreshCRL(ctx context.Context, c api.Caller, in api.RefreshCRLInput) (api.RefreshCRLOutput, error) {
	rv := e.revocation
	rv.mu.Lock()
	var urls []string
	for u := range rv.config {
		urls = append(urls, u)
	}
	for u := range rv.learned {
		if _, dup := rv.config[u]; !dup {
			urls = append(urls, u)
		}
	}
	rv.mu.Unlock()
	sort.Strings(urls)
	if in.URL != "" {
		if !slices.Contains(urls, in.URL) {
			return api.RefreshCRLOutput{}, fmt.Errorf("%w: refresh-certificate-revocation-list: %q is neither a configured certificate-revocation-list nor a learned CRL source (%d known)", api.ErrInvalid, in.URL, len(urls))
		}
		urls = []string{in.URL}
	}
	out := api.RefreshCRLOutput{Result: make([]api.RefreshCRLResult, len(urls))}
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := api.RefreshCRLResult{URL: u, Success: true}
			if err := rv.m.Refresh(ctx, u); err != nil {
				r.Success, r.Message = false, err.Error()
			} else {
				r.Message = e.crlSummary(u)
			}
			out.Result[i] = r
		}()
	}
	wg.Wait()
	failed := 0
	for _, r := range out.Result {
		if !r.Success {
			failed++
		}
	}
	e.auditEvent(c, "system.refresh_crl", fmt.Sprintf("Forced CRL refresh: %d source(s), %d failed", len(urls), failed),
		map[string]any{"url": in.URL, "sources": len(urls), "failed": failed}, nil)
	return out, nil
}

func (e *Engine) crlSummary(url string) string {
	e.revocation.mu.Lock()
	st, ok := e.revocation.states[url]
	e.revocation.mu.Unlock()
	if !ok || st.Issuer == "" {
		return "fetched"
	}
	s := fmt.Sprintf("issuer %s: %d entries", st.Issuer, st.Entries)
	if !st.NextUpdate.IsZero() {
		s += ", next update " + st.NextUpdate.UTC().Format(timeFormat)
	}
	return s
}

// fillState fills /authority/certificate-revocation-list[url]/state
// and /authority/crl-settings/learned-source[url].
func (rv *revocation) fillState(d *gen.Device) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	for u := range rv.config {
		if st, ok := rv.states[u]; ok {
			d.GetOrCreateAuthority().GetOrCreateCertificateRevocationList(u).State = crlState(st)
		}
	}
	for u, from := range rv.learned {
		l := d.GetOrCreateAuthority().GetOrCreateCrlSettings().GetOrCreateLearnedSource(u)
		l.LearnedFrom = append([]string(nil), from...)
		if st, ok := rv.states[u]; ok {
			l.State = (*gen.PkiAuthority_Authority_CrlSettings_LearnedSource_State)(crlState(st))
		}
	}
}

func crlState(st crl.SourceState) *gen.PkiAuthority_Authority_CertificateRevocationList_State {
	ts := func(t time.Time) *string {
		if t.IsZero() {
			return nil
		}
		return ygot.String(t.UTC().Format(timeFormat))
	}
	s := &gen.PkiAuthority_Authority_CertificateRevocationList_State{
		ThisUpdate: ts(st.ThisUpdate), NextUpdate: ts(st.NextUpdate),
		LastAttempt: ts(st.LastAttempt), LastSuccess: ts(st.LastSuccess), NextAttempt: ts(st.NextAttempt),
		ConsecutiveFailures: ygot.Uint32(uint32(st.ConsecutiveFailures)),
	}
	if st.Issuer != "" {
		s.Issuer = ygot.String(st.Issuer)
		s.Entries, s.SizeBytes = ygot.Uint64(uint64(st.Entries)), ygot.Uint64(uint64(st.SizeBytes))
	}
	if st.LastError != "" {
		s.LastError = ygot.String(st.LastError)
	}
	return s
}

func caSetKey(seen map[[32]byte]bool) string {
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, string(k[:]))
	}
	sort.Strings(keys)
	return strings.Join(keys, "")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
