package pki

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
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

// syncCRLLocked hands the CRL manager the trusted CAs and the complete set
// of sources: the configured ones and, with discover-from-certificates,
// the distribution points of managed certificates and trusted CAs. CAs
// that issued a managed certificate's chain (verified at import) are
// trusted to sign CRLs too. e.mu must be held.
func (e *Engine) syncCRLLocked() { e.pushCRLLocked(e.planCRLLocked()) }

// crlPlan is what syncCRLLocked hands the CRL manager.
type crlPlan struct {
	cas     []*x509.Certificate
	caKey   string
	sources []crl.Source
}

// planCRLLocked works out the CA set and the sources from the engine's
// configuration and certificates, and the learned sources its state shows;
// it does not touch the CRL manager. e.mu must be held.
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
	for _, name := range sortedKeys(e.trusted) {
		for _, c := range e.trusted[name].bundle.Certs {
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
	sources := make([]crl.Source, 0, len(e.crlConfig)+len(learned))
	for _, s := range e.crlConfig {
		sources = append(sources, s)
	}
	e.learned = map[string][]string{}
	if e.crlDiscover {
		for u, from := range learned {
			s := crl.Source{URL: u, Proxy: e.crlProxy, Learned: true}
			if err := s.Validate(); err != nil {
				e.log.Debug("CRL distribution point not fetched", "url", u, "learned_from", from, "err", err)
				continue
			}
			e.learned[u] = from
			if _, configured := e.crlConfig[u]; !configured {
				sources = append(sources, s)
			}
		}
	}
	return crlPlan{cas: cas, caKey: caSetKey(seen), sources: sources}
}

// pushCRLLocked hands a plan to the CRL manager. e.mu must be held.
func (e *Engine) pushCRLLocked(p crlPlan) {
	// Only a changed set: SetTrustedCAs retries sources that failed
	// verification, which an unrelated commit should not trigger.
	if p.caKey != e.crlCAs {
		e.crlCAs = p.caKey
		e.crl.SetTrustedCAs(p.cas)
	}
	if err := e.crl.SetSources(p.sources); err != nil {
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
		e.crlStates[ev.State.URL] = ev.State
		e.publishStateLocked()
		e.mu.Unlock()
	case *crl.SourceRemoved:
		e.mu.Lock()
		delete(e.crlStates, ev.URL)
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
	e.mu.Lock()
	var urls []string
	for u := range e.crlConfig {
		urls = append(urls, u)
	}
	for u := range e.learned {
		if _, dup := e.crlConfig[u]; !dup {
			urls = append(urls, u)
		}
	}
	e.mu.Unlock()
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
			if err := e.crl.Refresh(ctx, u); err != nil {
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
	e.mu.Lock()
	st, ok := e.crlStates[url]
	e.mu.Unlock()
	if !ok || st.Issuer == "" {
		return "fetched"
	}
	s := fmt.Sprintf("issuer %s: %d entries", st.Issuer, st.Entries)
	if !st.NextUpdate.IsZero() {
		s += ", next update " + st.NextUpdate.UTC().Format(timeFormat)
	}
	return s
}

// crlStateLocked fills /authority/certificate-revocation-list[url]/state
// and /authority/crl-settings/learned-source[url].
func (e *Engine) crlStateLocked(d *gen.Device) {
	for u := range e.crlConfig {
		if st, ok := e.crlStates[u]; ok {
			d.GetOrCreateAuthority().GetOrCreateCertificateRevocationList(u).State = crlState(st)
		}
	}
	for u, from := range e.learned {
		l := d.GetOrCreateAuthority().GetOrCreateCrlSettings().GetOrCreateLearnedSource(u)
		l.LearnedFrom = append([]string(nil), from...)
		if st, ok := e.crlStates[u]; ok {
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
