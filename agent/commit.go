package agent

import (
	"context"
	"fmt"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
)

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
	// Whole is true when the whole tree should be written out (a root
	// replace, the rollback of an unconfirmed commit), not only the scopes.
	Whole bool
	// History is the commits retained before this one, oldest first, which
	// a snapshot keeps so the history survives the journal's compaction.
	History []CommitInfo
	// Snapshot is set by a persister that saved the whole tree and kept
	// no earlier tree: the history's earlier commits lose their rollback
	// point now, as they would at the next start.
	Snapshot bool
}

// CommitOptions describe who commits and how.
type CommitOptions struct {
	User string
	// Owner is the session that commits (for locks and the pending
	// confirmed commit).
	Owner   api.Owner
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
	if _, err := s.preseal(ctx, tx.Root()); err != nil {
		return err
	}
	c := &api.Commit{Old: s.runningTree(), New: tx.Root(), Changes: changes}
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
	memo, err := s.preseal(ctx, tx.Root())
	if err != nil {
		return CommitInfo{}, err
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	return s.commitLocked(ctx, tx, opts, false, memo)
}

// CommitCandidate commits the candidate (NETCONF commit). With a confirmed
// commit pending, a plain commit by its owner (or with its persist id)
// confirms it.
func (s *Store) CommitCandidate(ctx context.Context, opts CommitOptions) (CommitInfo, error) {
	memo, err := s.preseal(ctx, s.candidateTree())
	if err != nil {
		return CommitInfo{}, err
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	// The candidate's own edits are applied on the running found now; a
	// node running changed since the candidate edited it is a conflict.
	err = s.checkWritable(Running, opts.Owner)
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
	return s.commitLocked(ctx, tx, opts, true, memo)
}

// newTxFromTrees builds a transaction whose base is old and whose tree is
// cur, diffed as a whole (candidate commits may carry many edits).
func newTxFromTrees(old, cur *gen.Device) *Tx {
	tx := newTx(old)
	tx.root = cur
	tx.wholeTree = old != cur
	return tx
}

func (s *Store) commitLocked(ctx context.Context, tx *Tx, opts CommitOptions, fromCandidate bool, memo sealMemo) (CommitInfo, error) {
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
	if err := s.seal(ctx, tx, old, memo); err != nil {
		return CommitInfo{}, err
	}
	if err := keepSecrets(tx, old); err != nil {
		return CommitInfo{}, err
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
	info := CommitInfo{ID: id, User: opts.User, Owner: opts.Owner.String(), Time: s.clock.Now().UTC(), Comment: opts.Comment, Changes: len(changes)}
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
	var rec *Record
	if s.persister != nil {
		rec = &Record{Info: info, Root: tx.Root(), Scopes: tx.scopes(), Whole: tx.wholeTree, History: s.retainedBefore()}
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
	if rec != nil && rec.Snapshot {
		for i := range s.history {
			s.history[i].root = nil
		}
	}
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
	public, writeOnly := publicChanges(changes)
	s.publish(api.Event{Kind: api.EventConfig, Time: info.Time, CommitID: id, User: opts.User, Owner: opts.Owner, Changes: public, WriteOnly: writeOnly, System: opts.system})
	for _, ev := range c.Staged() {
		ev.CommitID = id
		s.publish(ev)
	}
	s.mu.Unlock()
	s.log.Info("commit", "id", id, "user", opts.User, "changes", len(changes), "comment", opts.Comment)
	return info, nil
}
