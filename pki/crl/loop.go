package crl

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"
)

// result is what a fetch worker hands back to the loop.
type result struct {
	src         *source
	forced      bool
	fetchErr    error
	ingestErr   error
	notModified bool
	etag        string
	lastMod     string
	next        *held // a new verified list; nil when unchanged or failed
	added       int
	removed     int
}

// loop is the owner goroutine: it alone touches m.srcs after Start.
func (m *Manager) loop(ctx context.Context) {
	defer close(m.loopDone)
	defer m.abandon()
	timer := m.clock.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		m.applyConfig(ctx)
		now := m.clock.Now()
		m.checkStale(now)
		for _, s := range m.sorted() {
			if !s.orphan && !s.inflight && !s.nextAttempt.After(now) {
				m.dispatch(ctx, s, false)
			}
		}
		timer.Stop()
		timer.Reset(m.nextWake(now))
		select {
		case <-ctx.Done():
			return
		case <-timer.C():
		case <-m.poke:
		case w := <-m.reqs:
			m.applyConfig(ctx)
			m.startRefresh(ctx, w)
		case r := <-m.results:
			m.finish(ctx, r)
		}
	}
}

// abandon answers every waiting Refresh when the loop ends.
func (m *Manager) abandon() {
	for _, s := range m.srcs {
		if s.cancel != nil {
			s.cancel()
		}
		for _, w := range append(s.waiters, s.pending...) {
			w.record(ErrNotRunning)
		}
		s.waiters, s.pending = nil, nil
	}
}

func (m *Manager) sorted() []*source {
	out := make([]*source, 0, len(m.srcs))
	for _, s := range m.srcs {
		out = append(out, s)
	}
	sortSources(out)
	return out
}

// nextWake is how long to sleep: until the earliest next attempt or the
// earliest nextUpdate still ahead (when crl-stale must be raised).
func (m *Manager) nextWake(now time.Time) time.Duration {
	wake := now.Add(24 * time.Hour)
	for _, s := range m.srcs {
		if !s.orphan && !s.inflight && s.nextAttempt.Before(wake) {
			wake = s.nextAttempt
		}
		if s.held != nil && !s.orphan && !s.stale && !s.held.nextUpdate.IsZero() && s.held.nextUpdate.Before(wake) {
			wake = s.held.nextUpdate
		}
	}
	return max(wake.Sub(now), 0)
}

// applyConfig takes the latest SetSources and SetTrustedCAs.
func (m *Manager) applyConfig(ctx context.Context) {
	m.mu.Lock()
	desired, dnew := m.desired, m.desiredNew
	tnew := m.trustNew
	m.desiredNew, m.trustNew = false, false
	m.mu.Unlock()
	now := m.clock.Now()
	if tnew {
		for _, s := range m.srcs {
			if s.ingestFailed && !s.inflight && !s.orphan {
				s.nextAttempt = now
			}
		}
	}
	if !dnew {
		return
	}
	changed := false
	var after []Event // Changed events, sent once the index is swapped
	for u, s := range m.srcs {
		if _, keep := desired[u]; keep {
			continue
		}
		if s.cancel != nil {
			s.cancel()
		}
		for _, w := range append(s.waiters, s.pending...) {
			w.record(fmt.Errorf("%w: %s was removed from the configuration", ErrUnknownSource, u))
		}
		delete(m.srcs, u)
		m.mu.Lock()
		delete(m.states, u)
		m.mu.Unlock()
		if s.unreachable {
			m.alarm(s, AlarmUnreachable, false, now, "")
		}
		if s.stale {
			m.alarm(s, AlarmStale, false, now, "")
		}
		m.emit(&SourceRemoved{URL: u})
		if s.held != nil {
			changed = true
			if n := s.held.serials.Len(); n > 0 {
				after = append(after, &Changed{URL: u, Removed: n})
			}
		}
	}
	for u, d := range desired {
		s := m.srcs[u]
		switch {
		case s == nil:
			s = &source{cfg: d, nextAttempt: now, st: SourceState{URL: u, Learned: d.Learned}}
			m.srcs[u] = s
		case s.orphan:
			// A resumed source keeps its schedule unless the schedule no
			// longer fits the configuration; any other is fetched now.
			s.orphan, s.cfg = false, d
			if !s.resumed || s.nextAttempt.After(now.Add(max(d.PollingInterval, MaxBackoff))) {
				s.nextAttempt = now
			}
			s.st.Learned = d.Learned
		case s.cfg != d:
			s.cfg = d
			s.st.Learned = d.Learned
			if s.inflight {
				s.cancel()
				s.restart = true
			} else {
				s.failures = 0
				s.nextAttempt = now
			}
		default:
			continue
		}
		m.publishState(s)
	}
	if changed {
		m.publishIndex()
		m.persist(now)
	}
	for _, e := range after {
		m.emit(e)
	}
}

func (m *Manager) startRefresh(ctx context.Context, w *refreshWait) {
	var targets []*source
	if w.url == "" {
		for _, s := range m.sorted() {
			if !s.orphan {
				targets = append(targets, s)
			}
		}
	} else if s := m.srcs[w.url]; s != nil && !s.orphan {
		targets = []*source{s}
	} else {
		w.done <- fmt.Errorf("%w: %q is not a configured CRL URL", ErrUnknownSource, w.url)
		return
	}
	if len(targets) == 0 {
		w.done <- nil
		return
	}
	w.remaining = len(targets)
	for _, s := range targets {
		if s.inflight {
			s.forcePending = true
			s.pending = append(s.pending, w)
			continue
		}
		s.waiters = append(s.waiters, w)
		m.dispatch(ctx, s, true)
	}
}

type job struct {
	src     *source
	cfg     Source
	prev    *held
	forced  bool
	trusted []*x509.Certificate
}

func (m *Manager) dispatch(ctx context.Context, s *source, forced bool) {
	actx, cancel := context.WithCancel(ctx)
	s.inflight, s.cancel = true, cancel
	s.st.LastAttempt = m.clock.Now()
	m.mu.Lock()
	trusted := m.trusted
	m.mu.Unlock()
	j := job{src: s, cfg: s.cfg, prev: s.held, forced: forced, trusted: trusted}
	m.workers.Add(1)
	go func() {
		defer m.workers.Done()
		defer cancel()
		r := m.attempt(actx, j)
		select {
		case m.results <- r:
		case <-ctx.Done():
		}
	}()
}

// attempt fetches, decodes, parses, verifies and diffs one CRL. It runs
// on a worker goroutine and only reads j.
func (m *Manager) attempt(ctx context.Context, j job) *result {
	r := &result{src: j.src, forced: j.forced}
	req := Request{URL: j.cfg.URL, Proxy: j.cfg.Proxy}
	if j.prev != nil && !j.forced {
		req.ETag, req.LastModified = j.prev.etag, j.prev.lastModified
	}
	resp, err := m.fetcher.Open(ctx, req)
	if err != nil {
		r.fetchErr = err
		return r
	}
	r.etag, r.lastMod = resp.ETag, resp.LastModified
	if resp.NotModified {
		if j.prev == nil {
			r.ingestErr = fmt.Errorf("%w: the server answered 304 Not Modified to an unconditional request", ErrNotCRL)
		}
		r.notModified = true
		return r
	}
	// The body is parsed, verified and hashed as it arrives. Identical
	// bytes (same size and SHA-256) are no update.
	c, ca, sum, err := ReadVerified(resp.Stream, m.fetcher.opts.MaxSize, j.trusted)
	resp.Stream.Close()
	var readErr *ReadError
	switch {
	case errors.As(err, &readErr):
		r.fetchErr = readErr.Err
		return r
	case err != nil:
		r.ingestErr = err
		return r
	case j.prev != nil && sum.Size == j.prev.size && sum.SHA256 == j.prev.derHash:
		r.notModified = true
		return r
	}
	sameIssuer := j.prev != nil && bytes.Equal(j.prev.rawIssuer, c.RawIssuer)
	if sameIssuer {
		switch {
		case j.prev.number != nil && c.Number != nil:
			if c.Number.Cmp(j.prev.number) < 0 {
				r.ingestErr = fmt.Errorf("%w: CRLNumber %s is lower than the %s held", ErrOlder, c.Number, j.prev.number)
				return r
			}
		case c.ThisUpdate.Before(j.prev.thisUpdate):
			r.ingestErr = fmt.Errorf("%w: thisUpdate %s is before the %s held", ErrOlder, c.ThisUpdate.UTC().Format(time.RFC3339), j.prev.thisUpdate.UTC().Format(time.RFC3339))
			return r
		}
	}
	h := &held{
		rawIssuer: c.RawIssuer, issuer: ca.Subject.String(), ca: OneLine(ca.RawSubject),
		thisUpdate: c.ThisUpdate, nextUpdate: c.NextUpdate, number: c.Number,
		etag: resp.ETag, lastModified: resp.LastModified, derHash: sum.SHA256,
		size: sum.Size, entries: c.Entries, serials: c.Serials,
	}
	if sameIssuer {
		r.added, r.removed = diffCounts(j.prev.serials, c.Serials)
	} else {
		r.added = c.Serials.Len()
		if j.prev != nil {
			r.removed = j.prev.serials.Len()
		}
	}
	r.next = h
	return r
}

// finish applies a worker's result: state, counters, alarms, index,
// master list and events.
func (m *Manager) finish(ctx context.Context, r *result) {
	s := r.src
	if m.srcs[s.cfg.URL] != s {
		return // removed meanwhile
	}
	s.inflight, s.cancel = false, nil
	now := m.clock.Now()
	if s.restart {
		s.restart, s.failures, s.nextAttempt = false, 0, now
		return
	}
	u := &Update{Time: now, URL: s.cfg.URL, Learned: s.cfg.Learned, Forced: r.forced}
	var failure error
	var changed *Changed
	switch {
	case r.fetchErr != nil:
		m.fetchFail.Add(1)
		u.Fetch, failure = Failed, r.fetchErr
	case r.ingestErr != nil:
		m.fetchOK.Add(1)
		m.ingestFail.Add(1)
		u.Fetch, u.Ingestion, failure = Succeeded, Failed, r.ingestErr
	case r.next != nil:
		m.fetchOK.Add(1)
		m.ingestOK.Add(1)
		u.Fetch, u.Ingestion = Succeeded, Succeeded
		prev := s.held
		r.next.lastSuccess = now
		s.held = r.next
		u.AddedEntries, u.RemovedEntries = r.added, r.removed
		m.publishIndex()
		m.persist(now)
		if r.added+r.removed > 0 || (prev != nil && !bytes.Equal(prev.rawIssuer, s.held.rawIssuer)) {
			changed = &Changed{URL: s.cfg.URL, Added: r.added, Removed: r.removed}
		}
	default: // not modified
		m.fetchOK.Add(1)
		u.Fetch, u.NotModified = Succeeded, true
		if s.held != nil {
			s.held.lastSuccess = now
			if r.etag != "" {
				s.held.etag = r.etag
			}
			if r.lastMod != "" {
				s.held.lastModified = r.lastMod
			}
		}
	}
	s.ingestFailed = r.ingestErr != nil
	if failure != nil {
		s.failures++
		s.nextAttempt = now.Add(s.cfg.backoff(s.failures))
		s.st.LastError = failure.Error()
		m.log.Warn("CRL update failed", "url", s.cfg.URL, "consecutive_failures", s.failures, "retry_at", s.nextAttempt, "err", failure)
		if !s.unreachable {
			m.alarm(s, AlarmUnreachable, true, now, fmt.Sprintf("CRL %s cannot be updated: %v", s.cfg.URL, failure))
		}
	} else {
		u.Success = true
		s.failures = 0
		s.st.LastSuccess, s.st.LastError = now, ""
		s.nextAttempt = m.schedule(s, now)
		if s.unreachable {
			m.alarm(s, AlarmUnreachable, false, now, "")
		}
		if s.held != nil {
			m.log.Info("CRL updated", "url", s.cfg.URL, "issuer", s.held.issuer, "entries", s.held.entries,
				"added", u.AddedEntries, "removed", u.RemovedEntries, "not_modified", u.NotModified, "next_update", s.held.nextUpdate)
		}
	}
	u.Err = failure
	if h := s.held; h != nil {
		u.Issuer, u.CertificateAuthority = h.issuer, h.ca
		u.Size, u.TotalEntries = h.size, h.entries
		u.ThisUpdate, u.NextUpdate = h.thisUpdate, h.nextUpdate
	}
	m.checkStale(now)
	m.publishState(s)
	m.emit(u) // after the state, so States() agrees with any Update seen
	if changed != nil {
		// Before the waiters are answered: Refresh flushes the events
		// queued by then, Changed included.
		m.emit(changed)
	}

	waiters := s.waiters
	s.waiters = nil
	for _, w := range waiters {
		w.record(failure)
	}
	if s.forcePending {
		s.forcePending = false
		s.waiters, s.pending = s.pending, nil
		m.dispatch(ctx, s, true)
	}
}

// schedule is the next attempt after a success: polling-interval later,
// or at nextUpdate when sooner; a CRL already past its nextUpdate is
// re-polled after min(polling-interval, MaxBackoff).
func (m *Manager) schedule(s *source, now time.Time) time.Time {
	next := now.Add(s.cfg.PollingInterval)
	if s.held == nil || s.held.nextUpdate.IsZero() {
		return next
	}
	if nu := s.held.nextUpdate; nu.After(now) {
		if nu.Before(next) {
			next = nu
		}
		return next
	}
	if t := now.Add(min(s.cfg.PollingInterval, MaxBackoff)); t.Before(next) {
		next = t
	}
	return next
}

// checkStale raises crl-stale for lists past their nextUpdate and clears
// it for the others.
func (m *Manager) checkStale(now time.Time) {
	for _, s := range m.sorted() {
		if s.orphan {
			continue
		}
		stale := s.held != nil && !s.held.nextUpdate.IsZero() && !now.Before(s.held.nextUpdate)
		if stale == s.stale {
			continue
		}
		text := ""
		if stale {
			text = fmt.Sprintf("CRL %s of %s is stale: its nextUpdate %s has passed; the last good list is kept",
				s.cfg.URL, s.held.issuer, s.held.nextUpdate.UTC().Format(time.RFC3339))
		}
		m.alarm(s, AlarmStale, stale, now, text)
		m.publishState(s)
	}
}

func (m *Manager) alarm(s *source, category string, raised bool, now time.Time, text string) {
	switch category {
	case AlarmUnreachable:
		s.unreachable = raised
	case AlarmStale:
		s.stale = raised
	}
	if !raised {
		text = fmt.Sprintf("%s cleared for %s", category, s.cfg.URL)
	}
	m.emit(&AlarmChange{Category: category, Resource: s.cfg.URL, Severity: SeverityMajor, Text: text, Raised: raised, Time: now})
}

// fillState copies the held list's fields into s.st.
func (s *source) fillState() {
	if h := s.held; h != nil {
		s.st.Issuer, s.st.ThisUpdate, s.st.NextUpdate = h.issuer, h.thisUpdate, h.nextUpdate
		s.st.Entries, s.st.SizeBytes = h.entries, h.size
		s.st.Number = ""
		if h.number != nil {
			s.st.Number = h.number.String()
		}
	}
}

func (m *Manager) publishState(s *source) {
	s.fillState()
	s.st.ConsecutiveFailures = s.failures
	s.st.NextAttempt = s.nextAttempt
	s.st.Unreachable, s.st.Stale = s.unreachable, s.stale
	m.mu.Lock()
	m.states[s.cfg.URL] = s.st
	m.mu.Unlock()
	m.emit(&StateChange{State: s.st})
}

// publishIndex swaps in a new lookup snapshot.
func (m *Manager) publishIndex() {
	ix := &index{byIssuer: map[string][]*SerialSet{}}
	for _, s := range m.sorted() {
		if s.held != nil {
			k := string(s.held.rawIssuer)
			ix.byIssuer[k] = append(ix.byIssuer[k], s.held.serials)
		}
	}
	m.idx.Store(ix)
}

// persist writes the master list; a failure is logged and retried with
// the next change (the index in memory stays authoritative).
func (m *Manager) persist(now time.Time) {
	if m.cfg.Dir == "" {
		return
	}
	var lists []storedList
	for _, s := range m.sorted() {
		if s.held != nil {
			lists = append(lists, storedList{url: s.cfg.URL, learned: s.cfg.Learned, h: s.held})
		}
	}
	if err := writeMaster(m.cfg.Dir, now, lists); err != nil {
		m.log.Error("CRL master list not saved", "err", err)
	}
}

func (m *Manager) emit(e Event) { m.events.push(e) }

func sortSources(s []*source) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].cfg.URL < s[j-1].cfg.URL; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// eventQueue delivers events in order on its own goroutine, so a slow
// handler never blocks the loop.
type eventQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	q      []Event
	closed bool
	done   chan struct{}
}

func newEventQueue() *eventQueue {
	e := &eventQueue{done: make(chan struct{})}
	e.cond = sync.NewCond(&e.mu)
	return e
}

func (e *eventQueue) push(ev Event) {
	e.mu.Lock()
	if !e.closed {
		e.q = append(e.q, ev)
		e.cond.Signal()
	}
	e.mu.Unlock()
}

func (e *eventQueue) run(h func(Event)) {
	defer close(e.done)
	for {
		e.mu.Lock()
		for len(e.q) == 0 && !e.closed {
			e.cond.Wait()
		}
		if len(e.q) == 0 {
			e.mu.Unlock()
			return
		}
		batch := e.q
		e.q = nil
		e.mu.Unlock()
		for _, ev := range batch {
			if f, ok := ev.(*flushMark); ok {
				close(f.done)
				continue
			}
			if h != nil {
				h(ev)
			}
		}
	}
}

// flushMark is queued by flush; it is never given to the handler.
type flushMark struct{ done chan struct{} }

func (*flushMark) crlEvent() {}

// flush waits until the handler has returned for every event queued
// before the call (or ctx ends, or the queue is closed, which delivers
// what it holds). It must not be called from the handler.
func (e *eventQueue) flush(ctx context.Context) error {
	f := &flushMark{done: make(chan struct{})}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		<-e.done
		return nil
	}
	e.q = append(e.q, f)
	e.cond.Signal()
	e.mu.Unlock()
	select {
	case <-f.done:
		return nil
	case <-e.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops accepting events and waits until queued ones are delivered.
func (e *eventQueue) close() {
	e.mu.Lock()
	e.closed = true
	e.cond.Signal()
	e.mu.Unlock()
	<-e.done
}
