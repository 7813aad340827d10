package api

import (
	"errors"
	"fmt"
)

// Error kinds the engine returns. Northbound servers map them to gRPC codes
// and NETCONF error-tags with errors.Is; package agent defines the kinds only
// the datastore returns.
var (
	// ErrInvalid: a value breaks the YANG model (type, range, pattern,
	// mandatory, key) or a semantic rule of a validator.
	ErrInvalid = errors.New("invalid value")
	// ErrExists: create of an element that exists (NETCONF data-exists).
	ErrExists = errors.New("already exists")
	// ErrMissing: delete of an element that does not exist (data-missing).
	ErrMissing = errors.New("does not exist")
)

// PathError says which path an operation failed on and why. It unwraps to
// one of the Err kinds (and to the underlying cause).
type PathError struct {
	Op   string // merge, replace, create, delete, remove, validate
	Path string // e.g. /authority/trusted-ca-certificate[name=root]/content
	Err  error
}

func (e *PathError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%s /: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("%s %s: %v", e.Op, e.Path, e.Err)
}

func (e *PathError) Unwrap() error { return e.Err }
