package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/pkiagent/pkiagent/agent/api"
)

// Lock locks ds for owner. A second lock by another owner fails with a
// *LockError naming the holder; a candidate that holds uncommitted changes
// of another owner cannot be locked (ErrCandidateDirty).
func (s *Store) Lock(ds Datastore, owner api.Owner) error {
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
func (s *Store) Unlock(ds Datastore, owner api.Owner) error {
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
func (s *Store) LockHolder(ds Datastore) (api.Owner, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h, ok := s.locks[ds]
	return h, ok
}

// ReleaseOwner drops every lock of owner and, when the candidate holds only
// owner's uncommitted changes and owner held the candidate lock, discards
// them (RFC 6241 7.5). A confirmed commit of owner without a persist id is
// rolled back (RFC 6241 8.4). Call it when a session ends.
func (s *Store) ReleaseOwner(ctx context.Context, owner api.Owner) {
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
func (s *Store) checkWritable(ds Datastore, owner api.Owner) error {
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

// LockError says who holds a lock.
type LockError struct {
	Datastore Datastore
	Holder    api.Owner
}

func (e *LockError) Error() string {
	return fmt.Sprintf("%s datastore is locked by %s", e.Datastore, e.Holder)
}

func (e *LockError) Unwrap() error { return ErrLocked }
