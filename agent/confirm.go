package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/clock"
)

// The confirmed-commit state machine (RFC 6241 8.4, NETCONF
// :confirmed-commit:1.1, and the gNMI gnmi_ext.Commit extension of
// openconfig/reference rpc/gnmi/gnmi-commit-confirmed.md). It lives here
// only; the protocols translate their requests into CommitOptions and the
// calls below, and the outcomes (EventConfirm on the bus) and errors into
// their wire forms.
//
// At most one confirmed commit is pending. Its rollback point is the
// running configuration before the commit that started it.
//
//   - A confirmed commit (Confirm set) with none pending starts one
//     (ConfirmStarted). Confirm.Persist sets its persist token: then only
//     a request that carries the token (PersistID) may act on it, from any
//     session, and it survives the end of its session; without a token only
//     its owner may, and the end of its session cancels it.
//   - A confirmed commit with one pending, by a request allowed to act on
//     it, is a follow-up: it commits, keeps the rollback point and sets the
//     new timeout (ConfirmExtended). Only a commit of the candidate
//     (NETCONF) can be one: a gNMI commit request while one is pending
//     fails, as the gNMI extension wants.
//   - A plain commit of the candidate by a request allowed to act on it
//     commits and confirms (ConfirmConfirmed); Confirm confirms without
//     committing (gNMI confirm).
//   - CancelCommit, the end of the owner's session (no token) and
//     RollBackPending (shutdown) roll back to the rollback point
//     (ConfirmCancelled); the timeout does too (ConfirmTimedOut).
//   - ExtendPending sets a new timeout (gNMI set_rollback_duration).
//   - A commit straight to running (a gNMI Set, with the extension or
//     without, a rollback) while one is pending fails.
//
// Every check is made before the commit is applied, and every transition
// only after it was saved: a commit that fails (validation, apply,
// persist) or a rollback that fails leaves the pending commit as it was,
// its timer running.

// ConfirmOptions of a confirmed commit.
type ConfirmOptions struct {
	// Timeout after which the commit rolls back unless confirmed.
	Timeout time.Duration
	// Persist, when set, is the persist token of the confirmed commit: it
	// lets another session confirm or cancel it (with PersistID) and keeps
	// it pending when the owner's session ends. A follow-up commit without
	// one keeps the token of the pending commit.
	Persist string
}

// PendingCommit describes a confirmed commit waiting for confirmation.
type PendingCommit struct {
	ID        uint64
	User      string // who started or last extended it
	Owner     api.Owner
	PersistID string
	Deadline  time.Time
}

type pendingState struct {
	PendingCommit
	rollbackTo *gen.Device
	timer      clock.Timer
}

// retryRollback is how soon a rollback on timeout that failed (disk full)
// is tried again.
const retryRollback = 30 * time.Second

// Pending returns the confirmed commit waiting for confirmation, if any.
func (s *Store) Pending() (PendingCommit, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.pending == nil {
		return PendingCommit{}, false
	}
	return s.pending.PendingCommit, true
}

// allows checks that a request of owner carrying persistID may act on the
// pending commit p.
func (p *pendingState) allows(owner api.Owner, persistID string) error {
	switch {
	case p.PersistID != "" && persistID == "":
		return fmt.Errorf("%w: confirmed commit %d was started with a persist token; only a request that carries it can confirm, extend or cancel it", ErrPersistID, p.ID)
	case p.PersistID != "" && persistID != p.PersistID:
		return fmt.Errorf("%w (confirmed commit %d)", ErrPersistID, p.ID)
	case p.PersistID == "" && persistID != "":
		return fmt.Errorf("%w: confirmed commit %d has no persist token; only %s can confirm, extend or cancel it", ErrPersistID, p.ID, p.Owner)
	case p.PersistID == "" && p.Owner != owner:
		return fmt.Errorf("%w by %s (commit %d): only that session can confirm, extend or cancel it", ErrPendingCommit, p.Owner, p.ID)
	}
	return nil
}

// planConfirm decides what a commit does to the pending confirmed commit p
// (nil: none), before anything is applied. fromCandidate: a commit of the
// candidate (NETCONF), where a plain commit confirms. It returns 0 for a
// commit that leaves the machine alone.
func planConfirm(p *pendingState, opts CommitOptions, fromCandidate bool) (api.ConfirmOutcome, error) {
	switch {
	case p == nil && opts.PersistID != "":
		return 0, fmt.Errorf("%w: a persist-id names a confirmed commit, and none is pending", ErrNoPendingCommit)
	case p == nil && opts.Confirm != nil:
		return api.ConfirmStarted, nil
	case p == nil:
		return 0, nil
	case !fromCandidate:
		// Straight to running (gNMI Set, rollback): follow-ups are
		// commits of the candidate only.
		return 0, fmt.Errorf("%w (commit %d by %s, rolls back at %s): confirm or cancel it first", ErrPendingCommit, p.ID, p.Owner, p.Deadline.UTC().Format(time.RFC3339))
	}
	if err := p.allows(opts.Owner, opts.PersistID); err != nil {
		return 0, err
	}
	if opts.Confirm != nil {
		return api.ConfirmExtended, nil
	}
	return api.ConfirmConfirmed, nil
}

// stepConfirm carries out what planConfirm decided, once the commit info
// was saved; before is running before it, prev the pending commit the plan
// was made against. commitMu must be held.
func (s *Store) stepConfirm(step api.ConfirmOutcome, info CommitInfo, before *gen.Device, prev *pendingState, opts CommitOptions) {
	switch step {
	case api.ConfirmStarted, api.ConfirmExtended:
		p := &pendingState{
			PendingCommit: PendingCommit{ID: info.ID, User: opts.User, Owner: opts.Owner, PersistID: opts.Confirm.Persist, Deadline: s.clock.Now().Add(opts.Confirm.Timeout)},
			rollbackTo:    before,
		}
		if prev != nil {
			prev.timer.Stop()
			p.rollbackTo = prev.rollbackTo // a follow-up keeps the first rollback point
			if p.PersistID == "" {
				p.PersistID = prev.PersistID
			}
		}
		p.timer = s.clock.AfterFunc(opts.Confirm.Timeout, func() { s.expire(p) })
		s.savePending(p)
		s.mu.Lock()
		s.pending = p
		ev := s.publishConfirm(step, p, opts)
		s.mu.Unlock()
		s.audit(ev)
		s.log.Info("confirmed commit pending", "id", info.ID, "owner", opts.Owner.String(), "timeout", opts.Confirm.Timeout, "outcome", step.String())
	case api.ConfirmConfirmed:
		s.endPending(prev, step, opts)
	}
}

// publishConfirm sends the EventConfirm of a transition and returns it for
// the auditors; s.mu must be held.
func (s *Store) publishConfirm(o api.ConfirmOutcome, p *pendingState, by CommitOptions) api.Event {
	ch := &api.ConfirmChange{Outcome: o, Commit: p.ID}
	if o == api.ConfirmStarted || o == api.ConfirmExtended {
		ch.Timeout = p.Deadline.Sub(s.clock.Now())
	}
	ev := api.Event{Kind: api.EventConfirm, Time: s.clock.Now().UTC(), CommitID: p.ID, User: by.User, Owner: by.Owner, System: by.system, Confirm: ch}
	s.publish(ev)
	return ev
}

// Auditor records the transitions of the confirmed-commit machine
// (EventConfirm) in the audit log. The store calls it in order, outside
// its lock, and does not lose an event to a slow auditor as a bus
// subscriber could.
type Auditor interface {
	Audit(ev api.Event)
}

// AddAuditor registers an auditor.
func (s *Store) AddAuditor(a Auditor) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.auditors = append(s.auditors, a)
}

// audit hands ev to the auditors; commitMu must be held (it orders them).
func (s *Store) audit(ev api.Event) {
	for _, a := range s.auditors {
		a.Audit(ev)
	}
}

// endPending forgets the pending commit p (confirmed, or rolled back) and
// publishes how it ended. commitMu must be held.
func (s *Store) endPending(p *pendingState, o api.ConfirmOutcome, by CommitOptions) {
	p.timer.Stop()
	s.mu.Lock()
	if s.pending == p {
		s.pending = nil
	}
	ev := s.publishConfirm(o, p, by)
	s.mu.Unlock()
	s.audit(ev)
	s.clearPendingFile()
	s.log.Info("confirmed commit ended", "id", p.ID, "outcome", o.String(), "by", by.Owner.String())
}

func (s *Store) savePending(p *pendingState) {
	if pp, ok := s.persister.(PendingPersister); ok {
		if err := pp.SavePending(p.PendingCommit, p.rollbackTo); err != nil {
			s.log.Error("the rollback point of a confirmed commit could not be saved; a crash before it is confirmed would keep it", "id", p.ID, "err", err)
		}
	}
}

// clearPendingFile forgets the saved rollback point once the pending commit
// is confirmed, cancelled or rolled back.
func (s *Store) clearPendingFile() {
	if pp, ok := s.persister.(PendingPersister); ok {
		if err := pp.ClearPending(); err != nil {
			s.log.Error("the saved rollback point of a confirmed commit could not be removed; the next start would roll back to it", "err", err)
		}
	}
}

// expire rolls back a confirmed commit whose timeout passed. A rollback
// that fails keeps the commit pending and is tried again.
func (s *Store) expire(p *pendingState) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.RLock()
	// A timer reset (ExtendPending) while this call waited for commitMu
	// moved the deadline.
	still := s.pending == p && !s.closed && !s.clock.Now().Before(p.Deadline)
	s.mu.RUnlock()
	if !still {
		return
	}
	s.log.Warn("confirmed commit not confirmed in time: rolling back", "id", p.ID, "owner", p.Owner.String())
	if err := s.rollbackPending(context.Background(), p, api.ConfirmTimedOut, CommitOptions{User: "system", system: true}); err != nil {
		s.log.Error("rolling back an unconfirmed commit failed; it stays pending and is tried again", "id", p.ID, "retry_in", retryRollback, "err", err)
		p.timer = s.clock.AfterFunc(retryRollback, func() { s.expire(p) })
	}
}

// rollbackPending restores p's rollback point as a new commit by by, then
// ends p with outcome o. When the rollback fails p stays pending.
// commitMu must be held.
func (s *Store) rollbackPending(ctx context.Context, p *pendingState, o api.ConfirmOutcome, by CommitOptions) error {
	tx := newTxFromTrees(s.runningTree(), p.rollbackTo)
	if tx.Changed() {
		by.Comment = fmt.Sprintf("confirmed commit %d: %s, rolled back", p.ID, o)
		if _, err := s.apply(ctx, tx, by, false); err != nil {
			return fmt.Errorf("roll back confirmed commit %d: %w", p.ID, err)
		}
		s.mu.Lock()
		s.resetCandidateLocked()
		s.mu.Unlock()
	}
	s.endPending(p, o, by)
	return nil
}

// Confirm confirms the pending confirmed commit without committing anything
// (gNMI confirm): by.Owner and by.PersistID must be allowed to act on it.
func (s *Store) Confirm(by CommitOptions) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	p, err := s.pendingFor(by)
	if err != nil {
		return err
	}
	s.endPending(p, api.ConfirmConfirmed, by)
	return nil
}

// pendingFor returns the pending commit if by may act on it.
func (s *Store) pendingFor(by CommitOptions) (*pendingState, error) {
	s.mu.RLock()
	p := s.pending
	s.mu.RUnlock()
	if p == nil {
		return nil, ErrNoPendingCommit
	}
	if err := p.allows(by.Owner, by.PersistID); err != nil {
		return nil, err
	}
	return p, nil
}

// CancelCommit rolls back the pending confirmed commit now (NETCONF
// cancel-commit, gNMI cancel).
func (s *Store) CancelCommit(ctx context.Context, by CommitOptions) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	p, err := s.pendingFor(by)
	if err != nil {
		return err
	}
	return s.rollbackPending(ctx, p, api.ConfirmCancelled, by)
}

// ExtendPending sets a new timeout, by.Confirm.Timeout from now, for the
// pending confirmed commit (gNMI set_rollback_duration).
func (s *Store) ExtendPending(by CommitOptions) error {
	if by.Confirm == nil || by.Confirm.Timeout <= 0 {
		return fmt.Errorf("%w: a new timeout must be positive", api.ErrInvalid)
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	p, err := s.pendingFor(by)
	if err != nil {
		return err
	}
	p.timer.Reset(by.Confirm.Timeout)
	s.mu.Lock()
	p.Deadline = s.clock.Now().Add(by.Confirm.Timeout)
	ev := s.publishConfirm(api.ConfirmExtended, p, by)
	s.mu.Unlock()
	s.audit(ev)
	s.savePending(p)
	return nil
}

// releasePending cancels the confirmed commit of owner, whose session
// ended, unless it has a persist token (RFC 6241 8.4.1).
func (s *Store) releasePending(ctx context.Context, owner api.Owner) {
	s.mu.RLock()
	p := s.pending
	s.mu.RUnlock()
	if p == nil || p.Owner != owner || p.PersistID != "" {
		return
	}
	if err := s.CancelCommit(ctx, CommitOptions{User: p.User, Owner: owner}); err != nil && !errors.Is(err, ErrNoPendingCommit) {
		s.log.Error("rolling back the confirmed commit of an ended session", "owner", owner, "err", err)
	}
}

// RollBackPending rolls back the confirmed commit still pending, if any, as
// the agent itself (at shutdown: RFC 6241 8.4.1 wants the configuration
// from before it after a restart). It reports the commit it rolled back.
func (s *Store) RollBackPending(ctx context.Context) (PendingCommit, bool, error) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.RLock()
	p := s.pending
	s.mu.RUnlock()
	if p == nil {
		return PendingCommit{}, false, nil
	}
	err := s.rollbackPending(ctx, p, api.ConfirmCancelled, CommitOptions{User: "system", system: true})
	return p.PendingCommit, err == nil, err
}
