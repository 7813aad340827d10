package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"

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

// Persister saves running. Save is called after a successful apply and
// before the commit becomes visible; an error aborts the commit.
type Persister interface {
	Save(ctx context.Context, rec *Record) error
}

// PendingPersister is a Persister that also keeps the rollback point of a
// pending confirmed commit, so that a restart (even after a crash) rolls the
// unconfirmed commit back as RFC 6241 8.4.1 asks.
type PendingPersister interface {
	SavePending(p PendingCommit, rollbackTo *gen.Device) error
	ClearPending() error
}

// Record is one commit as the persister sees it.
type Record struct {
	Info CommitInfo
	// Root is the new running tree.
	Root *gen.Device
	// Scopes are the subtrees that changed (nil Elem = whole tree).
	Scopes [][]*gnmi.PathElem
	// Whole is true when the whole tree should be written out (rollback,
	// root replace), not only the scopes.
	Whole bool
}

// CommitInfo identifies a commit in the history.
type CommitInfo struct {
	ID      uint64    `json:"id"`
	User    string    `json:"user"`
	Time    time.Time `json:"time"`
	Comment string    `json:"comment,omitempty"`
}

// CommitOptions describe who commits and how.
type CommitOptions struct {
	User string
	// Owner is the session that commits (for locks), e.g. "netconf session 4"
	// or "gnmi alice@127.0.0.1:5000".
	Owner   string
	Comment string
	// Confirm, when set, makes this a confirmed commit, or a follow-up
	// confirmed commit that extends the pending one (see confirm.go).
	Confirm *ConfirmOptions
	// PersistID names the pending confirmed commit started with a persist
	// token, which this commit confirms, extends or cancels (RFC 6241
	// 8.4.5.1 persist-id; the gNMI commit id).
	PersistID string

	// system: the agent itself commits (a rollback on timeout or at
	// shutdown), not a client.
	system bool
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
	Bus Publisher
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
	bus       Publisher
	maxHist   int

	commitMu sync.Mutex // serialises commits and candidate edits

	mu        sync.RWMutex // guards the fields below
	running   *gen.Device
	candidate *gen.Device
	dirtyBy   map[string]bool // owners that edited candidate since it last matched running
	// candRegions are the nodes edited in candidate since it last matched
	// running (see candidate.go); candBase is the running tree the
	// candidate was last built on.
	candRegions  map[string]*candRegion
	candBase     *gen.Device
	locks        map[Datastore]string
	history      []historyEntry
	lastID       uint64
	pending      *pendingState
	closed       bool
	stateSources []api.StateSource
}

type historyEntry struct {
	info CommitInfo
	root *gen.Device
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
		dirtyBy:   map[string]bool{},
		locks:     map[Datastore]string{},
		lastID:    cfg.InitialCommit.ID,
	}
	s.history = append(s.history, historyEntry{info: cfg.InitialCommit, root: root})
	return s
}

// Publisher carries the store's events to subscribers. Publish must not
// block: the store calls it under its lock, so subscribers see commits in
// order.
type Publisher interface {
	Publish(api.Event)
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

// Running returns the running tree (read-only).
func (s *Store) Running() *gen.Device {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.running
}

// Candidate returns the candidate tree (read-only): running with the
// candidate's uncommitted edits on top.
func (s *Store) Candidate() *gen.Device {
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

// Get returns the named datastore's tree (read-only).
func (s *Store) Get(ds Datastore) *gen.Device {
	if ds == Candidate {
		return s.Candidate()
	}
	return s.Running()
}

// CandidateDirty reports whether candidate differs from running.
func (s *Store) CandidateDirty() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.candidate != s.running
}

// Begin starts a transaction from a snapshot of ds.
func (s *Store) Begin(ds Datastore) *Tx { return newTx(s.Get(ds)) }

// Lock locks ds for owner. A second lock by another owner fails with a
// *LockError naming the holder; a candidate that holds uncommitted changes
// of another owner cannot be locked (ErrCandidateDirty).
func (s *Store) Lock(ds Datastore, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.locks[ds]; ok {
		return &LockError{Datastore: ds, Holder: h}
	}
	if ds == Candidate && s.candidate != s.running {
		for o := range s.dirtyBy {
			if o != owner {
				return fmt.Errorf("%w: lock candidate: it holds uncommitted changes of %s; commit or discard them first", ErrCandidateDirty, o)
			}
		}
	}
	s.locks[ds] = owner
	return nil
}

// Unlock releases owner's lock on ds.
func (s *Store) Unlock(ds Datastore, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.locks[ds]
	switch {
	case !ok:
		return fmt.Errorf("%w: %s is not locked", ErrNoLock, ds)
	case h != owner:
		return &LockError{Datastore: ds, Holder: h}
	}
	delete(s.locks, ds)
	return nil
}

// ErrNoLock: unlock of a datastore that is not locked.
var ErrNoLock = errors.New("no lock held")

// LockHolder returns who holds ds locked, if anyone.
func (s *Store) LockHolder(ds Datastore) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h, ok := s.locks[ds]
	return h, ok
}

// ReleaseOwner drops every lock of owner and, when the candidate holds only
// owner's uncommitted changes and owner held the candidate lock, discards
// them (RFC 6241 7.5). A confirmed commit of owner without a persist id is
// rolled back (RFC 6241 8.4). Call it when a session ends.
func (s *Store) ReleaseOwner(ctx context.Context, owner string) {
	s.mu.Lock()
	hadCandidateLock := s.locks[Candidate] == owner
	for ds, h := range s.locks {
		if h == owner {
			delete(s.locks, ds)
		}
	}
	if hadCandidateLock && s.candidate != s.running {
		s.resetCandidateLocked()
	}
	s.mu.Unlock()
	s.releasePending(ctx, owner)
}

// checkWritable reports whether owner may write ds. A write to running
// (a commit) is refused while another owner holds running or candidate
// locked (SPEC: a NETCONF lock makes other sessions' writes, gNMI Set
// included, fail), so a session that locked the candidate to prepare a
// change does not commit over changes made behind its back.
func (s *Store) checkWritable(ds Datastore, owner string) error {
	if s.closed {
		return ErrClosed
	}
	if h, ok := s.locks[ds]; ok && h != owner {
		return &LockError{Datastore: ds, Holder: h}
	}
	if ds == Running {
		if h, ok := s.locks[Candidate]; ok && h != owner {
			return &LockError{Datastore: Candidate, Holder: h}
		}
	}
	return nil
}

// EditCandidate applies edits to the shared candidate as one unit: all of
// them or none. It fails if another owner holds the candidate lock.
func (s *Store) EditCandidate(owner string, edits ...Edit) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	err := s.checkWritable(Candidate, owner)
	if err == nil {
		err = s.rebaseCandidateLocked()
	}
	base, seen, seenID := s.candidate, s.running, s.lastID
	s.mu.Unlock()
	if err != nil {
		return err
	}
	tx := newTx(base)
	if err := tx.Apply(edits...); err != nil {
		return err
	}
	if !tx.Changed() {
		return nil
	}
	write, exist, err := editRegions(tx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.addRegions(write, exist, seen, seenID)
	s.candidate, s.candBase = tx.Root(), seen
	s.dirtyBy[owner] = true
	s.mu.Unlock()
	return nil
}

// ReplaceCandidate sets the candidate to root (copy-config). The whole
// tree is then the candidate's edit: a commit of it is refused when running
// changed after the replace, since it would undo that change.
func (s *Store) ReplaceCandidate(owner string, root *gen.Device) error {
	if root != s.Running() {
		if err := screenTree(root); err != nil {
			return err
		}
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkWritable(Candidate, owner); err != nil {
		return err
	}
	if root == s.running {
		s.resetCandidateLocked()
		return nil
	}
	s.candRegions = nil
	s.addRegions([][]*gnmi.PathElem{nil}, nil, s.running, s.lastID)
	s.candidate, s.candBase = root, s.running
	s.dirtyBy[owner] = true
	return nil
}

// DiscardCandidate resets the candidate to running.
func (s *Store) DiscardCandidate(owner string) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkWritable(Candidate, owner); err != nil {
		return err
	}
	s.resetCandidateLocked()
	return nil
}

// ValidateTx runs YANG and semantic validation of tx against running without
// committing (NETCONF validate, gNMI Set dry runs).
func (s *Store) ValidateTx(ctx context.Context, tx *Tx) error {
	if err := tx.Validate(); err != nil {
		return err
	}
	changes, err := tx.Changes()
	if err != nil {
		return err
	}
	c := &api.Commit{Old: s.Running(), New: tx.Root(), Changes: changes}
	for _, v := range s.valids {
		if err := v.Validate(ctx, c); err != nil {
			return withKind(api.ErrInvalid, err)
		}
	}
	return nil
}

// Commit makes tx the running configuration: validate -> apply -> persist
// -> publish. On any failure running, the appliers and the disk are left as
// before. tx must have been begun from running (gNMI Set) or candidate.
func (s *Store) Commit(ctx context.Context, tx *Tx, opts CommitOptions) (CommitInfo, error) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	return s.commitLocked(ctx, tx, opts, false)
}

// CommitCandidate commits the candidate (NETCONF commit). With a confirmed
// commit pending, a plain commit by its owner (or with its persist id)
// confirms it.
func (s *Store) CommitCandidate(ctx context.Context, opts CommitOptions) (CommitInfo, error) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	// The candidate's own edits are applied on the running found now; a
	// node running changed since the candidate edited it is a conflict.
	err := s.checkWritable(Running, opts.Owner)
	if err == nil {
		err = s.checkWritable(Candidate, opts.Owner)
	}
	if err == nil {
		err = s.rebaseCandidateLocked()
	}
	if err == nil {
		err = s.conflictLocked()
	}
	var tx *Tx
	if err == nil {
		tx = newTxFromTrees(s.running, s.candidate)
		if s.candidate != s.running {
			tx, err = s.candidateTxLocked()
		}
	}
	s.mu.Unlock()
	if err != nil {
		return CommitInfo{}, err
	}
	return s.commitLocked(ctx, tx, opts, true)
}

// newTxFromTrees builds a transaction whose base is old and whose tree is
// cur, diffed as a whole (candidate commits may carry many edits).
func newTxFromTrees(old, cur *gen.Device) *Tx {
	tx := newTx(old)
	tx.root = cur
	tx.wholeTree = old != cur
	return tx
}

func (s *Store) commitLocked(ctx context.Context, tx *Tx, opts CommitOptions, fromCandidate bool) (CommitInfo, error) {
	s.mu.RLock()
	err := s.checkWritable(Running, opts.Owner)
	if err == nil && fromCandidate {
		err = s.checkWritable(Candidate, opts.Owner)
	}
	pending := s.pending
	old := s.running
	s.mu.RUnlock()
	if err != nil {
		return CommitInfo{}, err
	}
	// What the commit does to a pending confirmed commit is decided now and
	// done only once the commit is saved: a failed commit changes nothing.
	step, err := planConfirm(pending, opts, fromCandidate)
	if err != nil {
		return CommitInfo{}, err
	}
	if tx.base != old && (len(tx.edits) > 0 || !tx.wholeTree) {
		// Running moved since tx began: apply its edits to running as it
		// is now, so a concurrent commit is not undone.
		rebased, err := rebase(old, tx)
		if err != nil {
			return CommitInfo{}, err
		}
		tx = rebased
	}
	var info CommitInfo
	if tx.Changed() {
		info, err = s.apply(ctx, tx, opts, true)
		if err != nil {
			return CommitInfo{}, err
		}
	} else {
		s.mu.RLock()
		info = s.history[len(s.history)-1].info
		s.mu.RUnlock()
	}
	if fromCandidate {
		s.mu.Lock()
		s.resetCandidateLocked()
		s.mu.Unlock()
	}
	s.stepConfirm(step, info, old, pending, opts)
	return info, nil
}

// rebase re-applies tx's edits on top of a newer running tree (its
// touched scopes, for a transaction not built from edits).
func rebase(onto *gen.Device, tx *Tx) (*Tx, error) {
	n := newTx(onto)
	if len(tx.edits) > 0 {
		if err := n.Apply(tx.edits...); err != nil {
			return nil, err
		}
		return n, nil
	}
	var edits []Edit
	for _, elems := range tx.scopes() {
		raw, ok, err := subtreeJSON(tx.root, elems)
		if err != nil {
			return nil, err
		}
		p := &gnmi.Path{Elem: elems}
		if !ok {
			edits = append(edits, Edit{Op: OpRemove, Path: p})
			continue
		}
		edits = append(edits, Edit{Op: OpReplace, Path: p, Value: &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: raw}}})
	}
	if err := n.Apply(edits...); err != nil {
		return nil, err
	}
	return n, nil
}

// apply runs the pipeline for a transaction; commitMu must be held.
func (s *Store) apply(ctx context.Context, tx *Tx, opts CommitOptions, validateYANG bool) (CommitInfo, error) {
	if validateYANG {
		if err := tx.Validate(); err != nil {
			return CommitInfo{}, err
		}
	}
	changes, err := tx.Changes()
	if err != nil {
		return CommitInfo{}, err
	}
	s.mu.RLock()
	id := s.lastID + 1
	old := s.running
	s.mu.RUnlock()
	info := CommitInfo{ID: id, User: opts.User, Time: s.clock.Now().UTC(), Comment: opts.Comment}
	c := &api.Commit{ID: id, User: opts.User, Old: old, New: tx.Root(), Changes: changes}
	for _, v := range s.valids {
		if err := v.Validate(ctx, c); err != nil {
			return CommitInfo{}, withKind(api.ErrInvalid, err)
		}
	}
	applied := 0
	undo := func() {
		// The undo stages events too (on rev); nothing publishes them: a
		// failed commit publishes nothing, nor does its undo.
		rev := &api.Commit{ID: id, User: opts.User, Old: c.New, New: c.Old, Changes: nil}
		for i := applied - 1; i >= 0; i-- {
			if f, ok := s.appliers[i].(api.Finisher); ok {
				f.Finish(context.WithoutCancel(ctx), c, false)
				continue
			}
			if err := s.appliers[i].Apply(context.WithoutCancel(ctx), rev); err != nil {
				s.log.Error("undoing a failed commit left a subsystem out of step; restart the agent to resync it", "commit", id, "err", err)
			}
		}
	}
	for _, a := range s.appliers {
		if err := a.Apply(ctx, c); err != nil {
			undo()
			return CommitInfo{}, withKind(ErrApply, fmt.Errorf("commit %d not applied: %w", id, err))
		}
		applied++
	}
	if s.persister != nil {
		rec := &Record{Info: info, Root: tx.Root(), Scopes: tx.scopes(), Whole: tx.wholeTree}
		if err := s.persister.Save(ctx, rec); err != nil {
			undo()
			return CommitInfo{}, withKind(ErrPersist, fmt.Errorf("commit %d not saved, nothing changed: %w", id, err))
		}
	}
	s.mu.Lock()
	if s.candidate == s.running {
		// A candidate without uncommitted changes is a view of running:
		// it follows commits made straight to running (gNMI Set). A dirty
		// one is rebuilt on the new running when next read.
		s.candidate = tx.Root()
	}
	s.running = tx.Root()
	s.lastID = id
	s.history = append(s.history, historyEntry{info: info, root: tx.Root()})
	if len(s.history) > s.maxHist {
		s.history = append([]historyEntry(nil), s.history[len(s.history)-s.maxHist:]...)
	}
	for _, a := range s.appliers {
		if f, ok := a.(api.Finisher); ok {
			f.Finish(context.WithoutCancel(ctx), c, true)
		}
	}
	// Published under the lock so subscribers see commits in order: the
	// config event, then what the appliers staged (alarms, state), all
	// marked with the commit id (as etcd's mvcc sends at End()).
	s.publish(api.Event{Kind: api.EventConfig, Time: info.Time, CommitID: id, User: opts.User, Owner: opts.Owner, Changes: changes, System: opts.system})
	for _, ev := range c.Staged() {
		ev.CommitID = id
		s.publish(ev)
	}
	s.mu.Unlock()
	s.log.Info("commit", "id", id, "user", opts.User, "changes", len(changes), "comment", opts.Comment)
	return info, nil
}

// History returns the retained commits, oldest first.
func (s *Store) History() []CommitInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]CommitInfo, len(s.history))
	for i, h := range s.history {
		out[i] = h.info
	}
	return out
}

// RollbackTo makes the configuration of commit id running again, as a new
// commit.
func (s *Store) RollbackTo(ctx context.Context, id uint64, opts CommitOptions) (CommitInfo, error) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.RLock()
	var target *gen.Device
	for _, h := range s.history {
		if h.info.ID == id {
			target = h.root
		}
	}
	s.mu.RUnlock()
	if target == nil {
		return CommitInfo{}, fmt.Errorf("rollback to commit %d: %w (history keeps the last %d)", id, ErrNoSuchCommit, s.maxHist)
	}
	if opts.Comment == "" {
		opts.Comment = fmt.Sprintf("rollback to commit %d", id)
	}
	return s.commitLocked(ctx, newTxFromTrees(s.Running(), target), opts, false)
}

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

// AddStateSource registers a provider of operational state.
func (s *Store) AddStateSource(src api.StateSource) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stateSources = append(s.stateSources, src)
}

// State returns a fresh tree with the operational state of every source.
func (s *Store) State() (*gen.Device, error) {
	s.mu.RLock()
	srcs := append([]api.StateSource(nil), s.stateSources...)
	s.mu.RUnlock()
	out := &gen.Device{}
	for _, src := range srcs {
		st := src.State()
		if st == nil {
			continue
		}
		if err := mergeInto(out, st); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// resetCandidateLocked makes the candidate a clean view of running again;
// s.mu must be held for writing.
func (s *Store) resetCandidateLocked() {
	s.candidate = s.running
	s.dirtyBy = map[string]bool{}
	s.candRegions = nil
	s.candBase = s.running
}
