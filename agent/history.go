package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
)

// CommitInfo identifies a commit in the history.
type CommitInfo struct {
	ID      uint64    `json:"id"`
	User    string    `json:"user"`
	Owner   string    `json:"owner,omitempty"`
	Time    time.Time `json:"time"`
	Comment string    `json:"comment,omitempty"`
	Changes int       `json:"changes,omitempty"`
}

// historyEntry is a commit and the tree it left running: nil for a commit
// reloaded from before the last snapshot, which cannot be rolled back to.
type historyEntry struct {
	info CommitInfo
	root *gen.Device
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

// retainedBefore returns the commits a new commit keeps in the history
// beside itself, oldest first.
func (s *Store) retainedBefore() []CommitInfo {
	var h []CommitInfo
	for _, e := range s.History() {
		if e.ID != 0 {
			h = append(h, e)
		}
	}
	if len(h) > s.maxHist-1 {
		h = h[len(h)-(s.maxHist-1):]
	}
	return h
}

// RollbackTo makes the configuration of commit id running again, as a new
// commit.
func (s *Store) RollbackTo(ctx context.Context, id uint64, opts CommitOptions) (CommitInfo, error) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.RLock()
	var target *gen.Device
	known := false
	var ids []string
	for _, h := range s.history {
		if h.root != nil && h.info.ID != 0 {
			ids = append(ids, strconv.FormatUint(h.info.ID, 10))
		}
		if h.info.ID == id {
			target, known = h.root, true
		}
	}
	s.mu.RUnlock()
	can := "no commit can be rolled back to"
	if len(ids) > 0 {
		can = "commits that can be rolled back to: " + strings.Join(ids, ", ")
	}
	switch {
	case known && target == nil:
		return CommitInfo{}, fmt.Errorf("rollback to commit %d: %w: its configuration was not kept across the last snapshot of the state directory; %s", id, ErrNoSuchCommit, can)
	case target == nil:
		return CommitInfo{}, fmt.Errorf("rollback to commit %d: %w (history keeps the last %d); %s", id, ErrNoSuchCommit, s.maxHist, can)
	}
	if opts.Comment == "" {
		opts.Comment = fmt.Sprintf("rollback to commit %d", id)
	}
	tx, err := graftChangedTops(s.runningTree(), target)
	if err != nil {
		return CommitInfo{}, err
	}
	return s.commitLocked(ctx, tx, opts, false, sealMemo{})
}

// graftChangedTops returns a transaction on running that takes from target
// each top-level container that differs: its journal record holds those
// subtrees, where a whole-tree replace would rewrite the snapshot and end
// every earlier rollback point.
func graftChangedTops(running, target *gen.Device) (*Tx, error) {
	tx := newTx(running)
	for name, e := range RootEntry().Dir {
		if !e.IsContainer() && !e.IsList() { // rpcs and notifications
			continue
		}
		elems := []*gnmi.PathElem{{Name: name}}
		was, err := lookup(running, elems)
		if err != nil {
			return nil, err
		}
		want, err := lookup(target, elems)
		if err != nil {
			return nil, err
		}
		if sameNode(was, want) {
			continue
		}
		if err := tx.graft(target, elems); err != nil {
			return nil, err
		}
	}
	return tx, nil
}

// historyState serves /system/commit-history.
type historyState struct{ s *Store }

// State implements api.StateSource.
func (h historyState) State() *gen.Device {
	s := h.s
	s.mu.RLock()
	var pendingID uint64
	if s.pending != nil {
		pendingID = s.pending.ID
	}
	entries := append([]historyEntry(nil), s.history...)
	s.mu.RUnlock()
	out := &gen.Device{}
	ch := out.GetOrCreateSystem().GetOrCreateCommitHistory()
	for _, e := range entries {
		if e.info.ID == 0 {
			continue
		}
		c := ch.GetOrCreateCommit(e.info.ID)
		c.Time = ptr(e.info.Time.UTC().Format(time.RFC3339Nano))
		c.User = ptr(e.info.User)
		if e.info.Owner != "" {
			c.Owner = ptr(e.info.Owner)
		}
		if e.info.Comment != "" {
			c.Comment = ptr(e.info.Comment)
		}
		c.Changes = ptr(uint32(min(e.info.Changes, int(^uint32(0)>>1))))
		c.ConfirmedPending = ptr(e.info.ID == pendingID)
		c.RollbackAvailable = ptr(e.root != nil)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// SystemRPCNames lists the rpcs of module pki-agent-system.
var SystemRPCNames = []string{"rollback-configuration"}

// RollbackInput is the input of rpc rollback-configuration.
type RollbackInput struct {
	ID json.RawMessage `json:"id"` // RFC 7951: a uint64 is a JSON string
}

// RollbackOutput is its output.
type RollbackOutput struct {
	ID uint64 `json:"id,string"`
}

// InvokeSystemRPC runs an rpc of module pki-agent-system (its input and
// output JSON objects as InvokeRPC's) for caller c, committing as owner.
func (s *Store) InvokeSystemRPC(ctx context.Context, c api.Caller, owner api.Owner, name string, input []byte) ([]byte, error) {
	if !api.CanWrite(c.Role) {
		return nil, fmt.Errorf("%w: rpc %s needs role admin; user %q has role %q", ErrAccessDenied, name, c.User, c.Role)
	}
	if len(input) > MaxRPCInput {
		return nil, fmt.Errorf("%w: rpc %s input is %d bytes, the limit is %d", api.ErrInvalid, name, len(input), MaxRPCInput)
	}
	if name != "rollback-configuration" {
		return nil, fmt.Errorf("%w: no rpc %q in module pki-agent-system", ErrUnknownPath, name)
	}
	var in RollbackInput
	d := json.NewDecoder(strings.NewReader(string(input)))
	d.DisallowUnknownFields()
	err := d.Decode(&in)
	if err == nil {
		if _, end := d.Token(); end != io.EOF {
			err = errors.New("more than one JSON value")
		}
	}
	if err != nil {
		return nil, &api.InputError{RPC: name, Err: fmt.Errorf("%w: rpc %s input: %v", api.ErrInvalid, name, err)}
	}
	// A uint64 is a JSON string in RFC 7951; a bare number is taken too.
	text := string(in.ID)
	if json.Unmarshal(in.ID, &text) != nil {
		text = string(in.ID)
	}
	id, err := strconv.ParseUint(text, 10, 64)
	if err != nil || id == 0 {
		return nil, &api.InputError{RPC: name, Leaf: "id", Err: fmt.Errorf("%w: rpc %s: id must be a commit id from 1 to 18446744073709551615", api.ErrInvalid, name)}
	}
	info, err := s.RollbackTo(ctx, id, CommitOptions{User: c.User, Owner: owner})
	if err != nil {
		if errors.Is(err, ErrNoSuchCommit) {
			return nil, &api.InputError{RPC: name, Leaf: "id", Err: err}
		}
		return nil, err
	}
	return json.Marshal(RollbackOutput{ID: info.ID})
}
