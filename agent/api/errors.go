package api

import (
	"errors"
	"fmt"

	"github.com/openconfig/gnmi/proto/gnmi"
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
	Op string // merge, replace, create, delete, remove, validate
	// Path is the node, e.g. /authority/trusted-ca-certificate[name=root]/content;
	// nil or no elements: the root. The servers report it as they write
	// paths (gNMI path, NETCONF error-path), without parsing text.
	Path *gnmi.Path
	Err  error
}

func (e *PathError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Op, PathString(e.Path), e.Err)
}

// PathAt is a *gnmi.Path of elems, for a PathError.
func PathAt(elems []*gnmi.PathElem) *gnmi.Path { return &gnmi.Path{Elem: elems} }

func (e *PathError) Unwrap() error { return e.Err }

// InputError says which input leaf of an rpc is wrong, so the servers can
// name it (NETCONF error-path /generate-csr/country-name). It matches
// ErrInvalid and Err; its text is Err's.
type InputError struct {
	RPC  string // e.g. generate-csr
	Leaf string // the input leaf, e.g. country-name
	Err  error
}

func (e *InputError) Error() string { return e.Err.Error() }

func (e *InputError) Unwrap() []error { return []error{ErrInvalid, e.Err} }
