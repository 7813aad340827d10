package crl

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkiagent/pkiagent/internal/clock"
)

// Source defaults, as in the YANG model.
const (
	DefaultPollingInterval = 24 * time.Hour
	DefaultBackoffInterval = 60 * time.Second
	// MaxBackoff caps the growing retry delay (see doc.go).
	MaxBackoff = time.Hour
)

// Source is one CRL location to poll.
type Source struct {
	URL string
	// PollingInterval between successful fetches (0: 24 h). A fetch also
	// happens at the CRL's nextUpdate when that is sooner.
	PollingInterval time.Duration
	// BackoffInterval is the first retry delay after a failure (0: 60 s);
	// it doubles per consecutive failure up to min(PollingInterval,
	// MaxBackoff).
	BackoffInterval time.Duration
	// Proxy is an http:// proxy URL for this source, "" for none.
	Proxy string
	// Learned marks a source discovered from a CRL distribution point
	// rather than configured.
	Learned bool
}

func (s Source) withDefaults() Source {
	if s.PollingInterval <= 0 {
		s.PollingInterval = DefaultPollingInterval
	}
	if s.BackoffInterval <= 0 {
		s.BackoffInterval = DefaultBackoffInterval
	}
	return s
}

// Validate reports whether the source can be polled: an absolute http,
// https or file URL and, when set, an http(s) proxy URL.
func (s Source) Validate() error {
	u, err := url.Parse(s.URL)
	if err != nil {
		return fmt.Errorf("CRL URL %q does not parse: %w", s.URL, err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return fmt.Errorf("CRL URL %q has no host", s.URL)
		}
	case "file":
		if u.Path == "" {
			return fmt.Errorf("CRL URL %q has no path", s.URL)
		}
	default:
		return fmt.Errorf("CRL URL %q: scheme must be http, https or file", s.URL)
	}
	if s.Proxy != "" {
		p, err := url.Parse(s.Proxy)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("HTTP proxy %q is not an http:// URL", s.Proxy)
		}
	}
	return nil
}

// backoff is the delay before retry number failures (>= 1).
func (s Source) backoff(failures int) time.Duration {
	ceiling := min(s.PollingInterval, MaxBackoff)
	ceiling = max(ceiling, s.BackoffInterval)
	d := s.BackoffInterval
	for i := 1; i < failures && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}

// Config builds a Manager.
type Config struct {
	// Dir holds the master list (STATEDIR/crl); "" keeps it in memory only.
	Dir    string
	Clock  clock.Clock
	Logger *slog.Logger
	Fetch  FetchOptions
	// OnEvent receives every Event in order on the manager's delivery
	// goroutine; nil drops them.
	OnEvent func(Event)
	// Resume is where the manager stood when the agent last stopped.
	Resume Resume
}

// Resume is what a restarted manager takes up again, as the owner of the
// manager saved it from its StateChange events and Stats: each source's
// schedule, failure count and raised alarms (so a restart neither fetches
// every source at once nor raises or forgets an alarm), and the counters.
type Resume struct {
	States []SourceState
	Stats  Stats
}

// Manager polls CRL sources, keeps the revocation index and the master
// list, and reports through events. Its methods are safe for concurrent
// use; one owner goroutine (Start/Stop) does all scheduling.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	clock   clock.Clock
	fetcher *Fetcher
	idx     atomic.Pointer[index]

	mu         sync.Mutex
	desired    map[string]Source
	desiredNew bool
	trusted    []*x509.Certificate
	trustNew   bool
	states     map[string]SourceState

	poke    chan struct{}
	reqs    chan *refreshWait
	results chan *result
	events  *eventQueue

	startOnce, stopOnce sync.Once
	running             atomic.Bool
	cancel              context.CancelFunc
	stopped             chan struct{} // closed when Stop begins
	loopDone            chan struct{}
	workers             sync.WaitGroup

	fetchOK, fetchFail, ingestOK, ingestFail atomic.Uint64

	// Owned by the loop goroutine (and by New before Start).
	srcs map[string]*source
}

// index is an immutable snapshot: serial sets by raw issuer.
type index struct{ byIssuer map[string][]*SerialSet }

// source is the loop's record of one source.
type source struct {
	cfg          Source
	orphan       bool // loaded from disk, not (yet) configured
	held         *held
	st           SourceState
	failures     int
	nextAttempt  time.Time
	inflight     bool
	cancel       context.CancelFunc
	restart      bool // config changed while in flight: discard and refetch
	forcePending bool
	waiters      []*refreshWait // answered by the attempt in flight
	pending      []*refreshWait // answered by the forced attempt after it
	ingestFailed bool
	unreachable  bool
	stale        bool
	resumed      bool // schedule and failures taken from Config.Resume
}

// New returns a manager that has reloaded the master list from cfg.Dir, so
// IsRevoked answers from the last known lists before the first fetch.
func New(cfg Config) (*Manager, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Manager{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "crl"),
		clock:    cfg.Clock,
		fetcher:  NewFetcher(cfg.Fetch),
		states:   map[string]SourceState{},
		poke:     make(chan struct{}, 1),
		reqs:     make(chan *refreshWait),
		results:  make(chan *result),
		events:   newEventQueue(),
		stopped:  make(chan struct{}),
		loopDone: make(chan struct{}),
		srcs:     map[string]*source{},
	}
	if cfg.Dir != "" {
		lists, err := readMaster(cfg.Dir)
		if err != nil {
			return nil, err
		}
		for _, l := range lists {
			s := &source{cfg: Source{URL: l.url, Learned: l.learned}.withDefaults(), orphan: true, held: l.h}
			s.st = SourceState{URL: l.url, Learned: l.learned, LastSuccess: l.h.lastSuccess}
			s.fillState()
			m.srcs[l.url] = s
			m.states[l.url] = s.st
		}
		if len(lists) > 0 {
			m.log.Info("reloaded the CRL master list", "sources", len(lists), "revoked", m.totalRevoked())
		}
	}
	m.resume(cfg.Resume)
	m.publishIndex()
	return m, nil
}

// resume takes up the saved state of each source (an orphan until
// SetSources names it again) and the counters.
func (m *Manager) resume(r Resume) {
	for _, st := range r.States {
		if st.URL == "" {
			continue
		}
		s := m.srcs[st.URL]
		if s == nil {
			s = &source{cfg: Source{URL: st.URL, Learned: st.Learned}.withDefaults(), orphan: true}
			m.srcs[st.URL] = s
		}
		s.st = st
		if s.held == nil { // the list itself was not kept: nothing of it is known
			s.st.Issuer, s.st.ThisUpdate, s.st.NextUpdate, s.st.Number, s.st.Entries, s.st.SizeBytes = "", time.Time{}, time.Time{}, "", 0, 0
		}
		s.failures, s.nextAttempt = st.ConsecutiveFailures, st.NextAttempt
		s.unreachable, s.stale, s.resumed = st.Unreachable, st.Stale, true
		s.fillState()
		m.states[st.URL] = s.st
	}
	m.fetchOK.Store(r.Stats.FetchSuccess)
	m.fetchFail.Store(r.Stats.FetchFailure)
	m.ingestOK.Store(r.Stats.IngestionSuccess)
	m.ingestFail.Store(r.Stats.IngestionFailure)
}

func (m *Manager) totalRevoked() int {
	n := 0
	for _, s := range m.srcs {
		if s.held != nil {
			n += s.held.serials.Len()
		}
	}
	return n
}

// IsRevoked reports whether any held CRL of the CA whose subject is
// rawIssuer (the CA certificate's RawSubject) lists serial. It does not
// allocate and is safe for concurrent use; it implements
// importcheck.RevocationIndex.
func (m *Manager) IsRevoked(rawIssuer []byte, serial *big.Int) bool {
	ix := m.idx.Load()
	for _, s := range ix.byIssuer[string(rawIssuer)] {
		if s.Contains(serial) {
			return true
		}
	}
	return false
}

// SetSources replaces the set of sources: configured ones and learned ones
// (Learned true) together, in every call. Added or changed sources are
// fetched at once; removed ones stop being polled and their lists leave the
// index and the master list. Until the first call the lists reloaded from
// disk stay in force. It does not wait for the fetches.
func (m *Manager) SetSources(sources []Source) error {
	sources = append(sources, m.installedSources()...) // install.go
	desired := make(map[string]Source, len(sources))
	for _, s := range sources {
		if err := s.Validate(); err != nil {
			return err
		}
		if prev, dup := desired[s.URL]; dup && !prev.Learned {
			continue // configured wins over learned
		}
		desired[s.URL] = s.withDefaults()
	}
	m.mu.Lock()
	m.desired, m.desiredNew = desired, true
	m.mu.Unlock()
	m.wake()
	return nil
}

// SetTrustedCAs replaces the CA certificates CRLs are verified against.
// Sources whose last CRL failed verification or parsing are retried at
// once.
func (m *Manager) SetTrustedCAs(cas []*x509.Certificate) {
	m.mu.Lock()
	m.trusted, m.trustNew = append([]*x509.Certificate(nil), cas...), true
	m.mu.Unlock()
	m.wake()
}

func (m *Manager) wake() {
	select {
	case m.poke <- struct{}{}:
	default:
	}
}

// States returns the state of every source, sorted by URL.
func (m *Manager) States() []SourceState {
	m.mu.Lock()
	out := make([]SourceState, 0, len(m.states))
	for _, s := range m.states {
		out = append(out, s)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].URL < out[j].URL })
	return out
}

// Stats returns the counters.
func (m *Manager) Stats() Stats {
	return Stats{
		FetchSuccess: m.fetchOK.Load(), FetchFailure: m.fetchFail.Load(),
		IngestionSuccess: m.ingestOK.Load(), IngestionFailure: m.ingestFail.Load(),
	}
}

// Start runs the owner goroutine until ctx ends or Stop is called.
func (m *Manager) Start(ctx context.Context) error {
	started := false
	m.startOnce.Do(func() {
		started = true
		ctx, m.cancel = context.WithCancel(ctx)
		m.running.Store(true)
		go m.events.run(m.cfg.OnEvent)
		go m.loop(ctx)
	})
	if !started {
		return errors.New("CRL manager already started")
	}
	return nil
}

// Stop ends polling, cancels fetches in flight and waits for every
// goroutine and for the delivery of queued events.
func (m *Manager) Stop() {
	m.stopOnce.Do(func() {
		close(m.stopped)
		if !m.running.Load() {
			return
		}
		m.cancel()
		<-m.loopDone
		m.workers.Wait()
		m.events.close()
		m.running.Store(false)
	})
}

// refreshWait is one Refresh call waiting for its attempts.
type refreshWait struct {
	url       string
	remaining int
	errs      []error
	done      chan error
}

func (w *refreshWait) record(err error) {
	if err != nil {
		w.errs = append(w.errs, err)
	}
	w.remaining--
	if w.remaining == 0 {
		w.done <- errors.Join(w.errs...)
	}
}

// Refresh fetches url now (every source when url is ""), as the
// refresh-certificate-revocation-list RPC does, without conditional GET,
// and waits for the outcome and for the event handler to have handled the
// events of that outcome. Its updates carry Forced true. It must not be
// called from the event handler.
func (m *Manager) Refresh(ctx context.Context, url string) error {
	if !m.running.Load() {
		return ErrNotRunning
	}
	w := &refreshWait{url: url, done: make(chan error, 1)}
	select {
	case m.reqs <- w:
	case <-ctx.Done():
		return ctx.Err()
	case <-m.stopped:
		return ErrNotRunning
	case <-m.loopDone:
		return ErrNotRunning
	}
	select {
	case err := <-w.done:
		// The outcome is known; wait until the event handler has seen it
		// too (state, alarms, Changed), so that a caller reading its own
		// view right after Refresh returns sees the list it asked for.
		if ferr := m.events.flush(ctx); ferr != nil && err == nil {
			err = ferr
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-m.loopDone:
		return ErrNotRunning
	}
}
