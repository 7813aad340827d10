package agent

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
)

// Write-only leaves (writeOnlyLeaves) are accepted in configuration and
// never read back: Running, Candidate, Get and View leave them out, the
// events on the bus carry only their paths (Event.WriteOnly), and value
// errors do not quote them. Validators, appliers and the persister (mode
// 0600) see them. The users' passwords (/system/aaa/user/password) are
// also replaced by a hash at commit (Sealer); the secrets of CA profiles
// are kept as given, for the engine to use.

// writeOnlyLeaves is the one list of the write-only leaves, by the names
// of their path elements (keys aside).
var writeOnlyLeaves = [][]string{
	{"system", "aaa", "user", "password"},
	{"authority", "ca-profile", "cmpv2", "secret"},
	{"authority", "ca-profile", "est", "password"},
	{"authority", "ca-profile", "scep", "challenge-password"},
}

// Sealer turns the cleartext of a password into the form stored. The store
// calls it at commit, before it takes its commit lock, so a slow hash holds
// up no other client.
type Sealer interface {
	// Sealed reports whether v is already a hash that may be stored as
	// given (a value from a rollback, a migration, or an operator who
	// hashed it himself).
	Sealed(v string) bool
	// Seal checks cleartext against the password rule and returns its
	// hash. Its error says which rule fails, never the value.
	Seal(ctx context.Context, user, cleartext string) (string, error)
}

// SetSealer registers the password hasher. Without one, a commit that sets
// a password that is not already a hash is refused.
func (s *Store) SetSealer(sl Sealer) {
	s.mu.Lock()
	s.sealer = sl
	s.mu.Unlock()
}

func (s *Store) currentSealer() Sealer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sealer
}

// ErrPassword: a password is refused (weak, empty, missing, or too many set
// at once). The error names the user, never the value.
var ErrPassword = errors.New("password refused")

// maxSealsPerCommit bounds the passwords one commit may hash: each costs
// tens of milliseconds and 19 MiB.
const maxSealsPerCommit = 16

// IsWriteOnly reports whether a path names a write-only leaf.
func IsWriteOnly(elems []*gnmi.PathElem) bool {
	for _, names := range writeOnlyLeaves {
		if len(elems) != len(names) {
			continue
		}
		match := true
		for i, n := range names {
			match = match && elems[i].GetName() == n
		}
		if match {
			return true
		}
	}
	return false
}

func usersOf(root *gen.Device) map[string]*gen.PkiAgentSystem_System_Aaa_User {
	if a := root.GetSystem().GetAaa(); a != nil {
		return a.User
	}
	return nil
}

// redacted returns root without its write-only leaves: root itself when it
// has none, else a copy of what leads to them (the rest is shared).
func redacted(root *gen.Device) *gen.Device {
	v := reflect.ValueOf(root)
	for _, names := range writeOnlyLeaves {
		if c, changed := withoutLeaf(v, names); changed {
			v = c
		}
	}
	return v.Interface().(*gen.Device)
}

// withoutLeaf returns v (a pointer to a generated struct) with the leaf
// at names (path elements, every entry of a list) unset, copying the
// structs and lists on the way to a leaf that is set; v itself and false
// when none is.
func withoutLeaf(v reflect.Value, names []string) (reflect.Value, bool) {
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return v, false
	}
	st := v.Elem()
	for i := 0; i < st.NumField(); i++ {
		if st.Type().Field(i).Tag.Get("path") != names[0] {
			continue
		}
		f := st.Field(i)
		var nf reflect.Value
		switch {
		case len(names) == 1:
			if f.IsZero() {
				return v, false
			}
			nf = reflect.Zero(f.Type())
		case f.Kind() == reflect.Map:
			var changed bool
			nf = reflect.MakeMapWithSize(f.Type(), f.Len())
			for it := f.MapRange(); it.Next(); {
				e, ch := withoutLeaf(it.Value(), names[1:])
				changed = changed || ch
				nf.SetMapIndex(it.Key(), e)
			}
			if !changed {
				return v, false
			}
		default:
			var changed bool
			if nf, changed = withoutLeaf(f, names[1:]); !changed {
				return v, false
			}
		}
		c := reflect.New(st.Type())
		c.Elem().Set(st)
		c.Elem().Field(i).Set(nf)
		return c, true
	}
	return v, false
}

// redactCache keeps the redacted view of the last trees read, so that
// readers of an unchanged datastore get the same tree (and its pointer
// identity, which render caches key on).
type redactCache struct {
	mu    sync.Mutex
	views map[*gen.Device]*gen.Device // at most 2: running and candidate
}

func (c *redactCache) view(root *gen.Device) *gen.Device {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.views[root]; ok {
		return v
	}
	v := redacted(root)
	if c.views == nil || len(c.views) >= 2 {
		c.views = map[*gen.Device]*gen.Device{}
	}
	c.views[root] = v
	return v
}

// publicChanges splits changes into those published with their values and
// the paths of write-only leaves.
func publicChanges(changes []api.Change) ([]api.Change, []*gnmi.Path) {
	var hidden []*gnmi.Path
	out := changes
	for i, c := range changes {
		if !IsWriteOnly(c.Path.GetElem()) {
			if hidden != nil {
				out = append(out, c)
			}
			continue
		}
		if hidden == nil {
			out = append([]api.Change(nil), changes[:i]...)
		}
		hidden = append(hidden, c.Path)
	}
	return out, hidden
}

// sealMemo holds the hashes made before the commit lock was taken, keyed
// by user and cleartext.
type sealMemo map[[2]string]string

// preseal hashes, without any lock held, the cleartext passwords of root
// (the tree about to be committed).
func (s *Store) preseal(ctx context.Context, root *gen.Device) (sealMemo, error) {
	sl := s.currentSealer()
	memo := sealMemo{}
	if root.GetSystem() == s.runningTree().GetSystem() {
		return memo, nil
	}
	for name, u := range usersOf(root) {
		if u.Password == nil || (sl != nil && sl.Sealed(*u.Password)) {
			continue
		}
		if err := s.sealOne(ctx, sl, memo, name, *u.Password); err != nil {
			return nil, err
		}
	}
	return memo, nil
}

func (s *Store) sealOne(ctx context.Context, sl Sealer, memo sealMemo, name, clear string) error {
	if _, ok := memo[[2]string{name, clear}]; ok {
		return nil
	}
	if sl == nil {
		return usersError(name, fmt.Errorf("%w: this agent has no password hasher, so it stores no passwords", ErrPassword))
	}
	if len(memo) >= maxSealsPerCommit {
		return usersError(name, fmt.Errorf("%w: one commit may set at most %d passwords; commit the rest in another", ErrPassword, maxSealsPerCommit))
	}
	h, err := sl.Seal(ctx, name, clear)
	if err != nil {
		return usersError(name, fmt.Errorf("%w: %w", ErrPassword, err))
	}
	memo[[2]string{name, clear}] = h
	return nil
}

func usersError(name string, err error) error {
	p := &gnmi.Path{Elem: []*gnmi.PathElem{{Name: "system"}, {Name: "aaa"}, {Name: "user", Key: map[string]string{"name": name}}, {Name: "password"}}}
	return &api.PathError{Op: "commit", Path: p, Err: withKind(api.ErrInvalid, err)}
}

// seal makes tx hold only hashes: a cleartext password becomes its hash
// (from memo, or hashed now if it changed since preseal), and a user
// without a password keeps the hash old has for it (a replace that omits
// the write-only leaf keeps it). A new user without a password is refused.
// commitMu must be held.
func (s *Store) seal(ctx context.Context, tx *Tx, old *gen.Device, memo sealMemo) error {
	if tx.Root().GetSystem() == old.GetSystem() {
		return nil
	}
	oldUsers := usersOf(old)
	sl := s.currentSealer()
	var edits []Edit
	for name, u := range usersOf(tx.Root()) {
		var v string
		switch {
		case u.Password == nil:
			prev := oldUsers[name]
			if prev == nil || prev.Password == nil {
				return usersError(name, fmt.Errorf("%w: user %s has no password; a new user needs one", ErrPassword, name))
			}
			v = *prev.Password
		case sl != nil && sl.Sealed(*u.Password):
			continue
		default:
			if err := s.sealOne(ctx, sl, memo, name, *u.Password); err != nil {
				return err
			}
			v = memo[[2]string{name, *u.Password}]
		}
		edits = append(edits, Edit{Op: OpReplace, Path: &gnmi.Path{Elem: []*gnmi.PathElem{
			{Name: "system"}, {Name: "aaa"}, {Name: "user", Key: map[string]string{"name": name}}, {Name: "password"}}},
			Value: &gnmi.TypedValue{Value: &gnmi.TypedValue_StringVal{StringVal: v}}})
	}
	if len(edits) == 0 {
		return nil
	}
	return tx.Apply(edits...)
}

// keepSecrets gives a CA profile of tx that lacks a secret its profile in
// old has the old one: a client that read the profile (without its
// secrets) and writes it back keeps them, as a user keeps his password
// (seal). A secret goes with its profile.
func keepSecrets(tx *Tx, old *gen.Device) error {
	if tx.Root().GetAuthority() == old.GetAuthority() {
		return nil
	}
	var edits []Edit
	keep := func(profile, container, leaf string, was, is *string) {
		if was != nil && is == nil {
			edits = append(edits, Edit{Op: OpMerge, Path: &gnmi.Path{Elem: []*gnmi.PathElem{{Name: "authority"},
				{Name: "ca-profile", Key: map[string]string{"name": profile}}, {Name: container}, {Name: leaf}}},
				Value: &gnmi.TypedValue{Value: &gnmi.TypedValue_StringVal{StringVal: *was}}})
		}
	}
	var profiles map[string]*gen.PkiAuthority_Authority_CaProfile
	if a := tx.Root().GetAuthority(); a != nil {
		profiles = a.CaProfile
	}
	for name, p := range profiles {
		o := old.GetAuthority().GetCaProfile(name)
		if o == nil {
			continue
		}
		if o.Cmpv2 != nil {
			var is *string
			if p.Cmpv2 != nil {
				is = p.Cmpv2.Secret
			}
			keep(name, "cmpv2", "secret", o.Cmpv2.Secret, is)
		}
		if o.Est != nil {
			var is *string
			if p.Est != nil {
				is = p.Est.Password
			}
			keep(name, "est", "password", o.Est.Password, is)
		}
		if o.Scep != nil {
			var is *string
			if p.Scep != nil {
				is = p.Scep.ChallengePassword
			}
			keep(name, "scep", "challenge-password", o.Scep.ChallengePassword, is)
		}
	}
	if len(edits) == 0 {
		return nil
	}
	return tx.Apply(edits...)
}

// Sealed returns running with its write-only leaves (the password
// hashes), for the subsystem that checks them (authentication). Never serve
// it to a client.
func (s *Store) Sealed() *gen.Device { return s.runningTree() }
