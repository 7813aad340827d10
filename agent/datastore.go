package agent

import (
	"log/slog"
	"sync"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/clock"
)

// Datastore names a NETCONF-style datastore.
type Datastore int

const (
	Running Datastore = iota
	Candidate
)

func (d Datastore) String() string {
	if d == Candidate {
		return "candidate"
	}
	return "running"
}

// Config holds what a Store is built from.
type Config struct {
	Clock      clock.Clock
	Logger     *slog.Logger
	Persister  Persister
	Validators []api.Validator
	Appliers   []api.Applier
	// Bus carries the commits, confirmed-commit transitions and what the
	// appliers staged to subscribers (telemetry.Bus); nil publishes nothing.
	Bus api.Publisher
	// History is how many commits are kept for rollback (default 64).
	History int
	// Initial running tree and the last commit id it reflects, as loaded
	// from disk. Nil means empty.
	Initial       *gen.Device
	InitialCommit CommitInfo
}

// Store holds running and candidate and serialises commits.
type Store struct {
	clock     clock.Clock
	log       *slog.Logger
	persister Persister
	valids    []api.Validator
	appliers  []api.Applier
	auditors  []Auditor // guarded by commitMu
	bus       api.Publisher
	maxHist   int

	commitMu sync.Mutex // serialises commits and candidate edits

	mu        sync.RWMutex // guards the fields below
	running   *gen.Device
	candidate *gen.Device
	dirtyBy   map[api.Owner]bool // owners that edited candidate since it last matched running
	// candRegions are the nodes edited in candidate since it last matched
	// running (see candidate.go); candBase is the running tree the
	// candidate was last built on.
	candRegions  map[string]*candRegion
	candBase     *gen.Device
	locks        map[Datastore]api.Owner
	history      []historyEntry
	lastID       uint64
	pending      *pendingState
	closed       bool
	stateSources []api.StateSource

	sealer Sealer // guarded by mu
	// views are the redacted trees readers get (secrets.go).
	views redactCache
}

// New returns a Store holding cfg.Initial as running and candidate.
func New(cfg Config) *Store {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.History <= 0 {
		cfg.History = 64
	}
	root := cfg.Initial
	if root == nil {
		root = &gen.Device{}
	}
	s := &Store{
		clock:     cfg.Clock,
		log:       cfg.Logger,
		persister: cfg.Persister,
		valids:    cfg.Validators,
		appliers:  cfg.Appliers,
		bus:       cfg.Bus,
		maxHist:   cfg.History,
		running:   root,
		candidate: root,
		candBase:  root,
		dirtyBy:   map[api.Owner]bool{},
		locks:     map[Datastore]api.Owner{},
		lastID:    cfg.InitialCommit.ID,
	}
	s.history = append(s.history, historyEntry{info: cfg.InitialCommit, root: root})
	s.stateSources = append(s.stateSources, historyState{s})
	return s
}

// publish sends ev to the bus, if any; s.mu must be held.
func (s *Store) publish(ev api.Event) {
	if s.bus != nil {
		s.bus.Publish(ev)
	}
}

// Clock returns the store's clock.
func (s *Store) Clock() clock.Clock { return s.clock }

// AddValidator and AddApplier register the PKI engine (or any subsystem)
// after construction, before the first commit.
func (s *Store) AddValidator(v api.Validator) {
	s.commitMu.Lock()
	s.valids = append(s.valids, v)
	s.commitMu.Unlock()
}

func (s *Store) AddApplier(a api.Applier) {
	s.commitMu.Lock()
	s.appliers = append(s.appliers, a)
	s.commitMu.Unlock()
}

// Running returns the running tree (read-only), without its write-only
// leaves (secrets.go).
func (s *Store) Running() *gen.Device { return s.views.view(s.runningTree()) }

func (s *Store) runningTree() *gen.Device {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.running
}

// Candidate returns the candidate tree (read-only): running with the
// candidate's uncommitted edits on top, without its write-only leaves.
func (s *Store) Candidate() *gen.Device { return s.views.view(s.candidateTree()) }

func (s *Store) candidateTree() *gen.Device {
	s.mu.RLock()
	c, stale := s.candidate, s.candidate != s.running && s.candBase != s.running
	s.mu.RUnlock()
	if !stale {
		return c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.rebaseCandidateLocked(); err != nil {
		s.log.Error("the candidate could not be rebuilt on the new running; it shows running as it was when last edited", "err", err)
	}
	return s.candidate
}

// Get returns the named datastore's tree (read-only), without its
// write-only leaves.
func (s *Store) Get(ds Datastore) *gen.Device { return s.views.view(s.tree(ds)) }

func (s *Store) tree(ds Datastore) *gen.Device {
	if ds == Candidate {
		return s.candidateTree()
	}
	return s.runningTree()
}

// CandidateDirty reports whether candidate differs from running.
func (s *Store) CandidateDirty() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.candidate != s.running
}

// Begin starts a transaction from a snapshot of ds.
func (s *Store) Begin(ds Datastore) *Tx { return newTx(s.tree(ds)) }

// Close waits for an in-flight commit to finish and refuses new ones.
func (s *Store) Close() {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.pending != nil {
		s.pending.timer.Stop()
	}
}
