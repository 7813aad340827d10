package agent

import (
	"errors"
	"fmt"

	"github.com/pkiagent/pkiagent/agent/api"
)

// Error kinds of the datastore. Northbound servers map them, and the kinds
// the engine shares in package api (api.ErrInvalid, api.ErrExists,
// api.ErrMissing), to gRPC codes and NETCONF error-tags with errors.Is.
var (
	// ErrUnknownPath: a path names an element the model does not have.
	ErrUnknownPath = errors.New("unknown element")
	// ErrReadOnly: a path names state (config false).
	ErrReadOnly = errors.New("read-only state")
	// ErrLocked: the datastore is locked by another owner.
	ErrLocked = errors.New("locked")
	// ErrCandidateDirty: the candidate holds another owner's uncommitted changes.
	ErrCandidateDirty = errors.New("candidate has uncommitted changes")
	// ErrApply: the PKI engine (or another applier) could not apply a valid change.
	ErrApply = errors.New("apply failed")
	// ErrPersist: the running configuration could not be saved.
	ErrPersist = errors.New("persist failed")
	// ErrNoPendingCommit: confirm or cancel without a confirmed commit pending.
	ErrNoPendingCommit = errors.New("no confirmed commit is pending")
	// ErrPendingCommit: a confirmed commit of another owner is pending.
	ErrPendingCommit = errors.New("a confirmed commit is pending")
	// ErrPersistID: confirm or cancel with the wrong persist id.
	ErrPersistID = errors.New("persist-id does not match the pending confirmed commit")
	// ErrNoSuchCommit: rollback to a commit not in the history.
	ErrNoSuchCommit = errors.New("no such commit in history")
	// ErrClosed: the store is shut down.
	ErrClosed = errors.New("datastore is shut down")
	// ErrKeyLeaf: an edit would change or delete the key leaf of a list
	// entry on its own. It comes as a *KeyLeafError, which is ErrInvalid too.
	ErrKeyLeaf = errors.New("key leaf cannot be changed")
	// ErrConflict: a candidate commit would undo a change made to running
	// after the candidate was edited at the same node. It comes as a
	// *ConflictError.
	ErrConflict = errors.New("running changed under the candidate's edits")
)

// KeyLeafError refuses an edit of a key leaf on its own: a list entry is
// renamed by deleting it and creating the new one. It matches ErrInvalid
// and ErrKeyLeaf.
type KeyLeafError struct {
	Key   string // the key leaf, e.g. name
	Entry string // the entry's path, e.g. /authority/router[name=a]
}

func (e *KeyLeafError) Error() string {
	return fmt.Sprintf("key leaf %s of %s cannot be changed or deleted on its own: delete the entry and create it instead", e.Key, e.Entry)
}

func (e *KeyLeafError) Unwrap() []error { return []error{api.ErrInvalid, ErrKeyLeaf} }

// kindError joins a kind with a detailed cause so errors.Is matches both.
type kindError struct {
	kind  error
	cause error
}

func (e *kindError) Error() string   { return e.cause.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.cause} }

func withKind(kind, cause error) error {
	if cause == nil || errors.Is(cause, kind) {
		return cause
	}
	return &kindError{kind: kind, cause: cause}
}
