package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
)

// Users as configuration: /system/aaa/user[name] in the datastore (module
// pki-agent-system) holds each user's role and password hash. Users takes
// part in every commit: as a Sealer it hashes the cleartext passwords a
// commit sets (before the store's lock is taken, one check slot of the
// throttle per hash), as a Validator it refuses a commit that leaves no
// admin, and as a Finisher it puts the committed users in force for new
// logins as the commit becomes visible.

// The password rule, checked on every cleartext password a commit sets.
const (
	MinPassword = 8
	MaxPassword = 128
)

// PasswordRule states the rule in the words of the errors.
const PasswordRule = "a password has 8 to 128 characters, no control characters, is not the user name and is not one character repeated"

// ErrWeakPassword: a password breaks the rule.
var ErrWeakPassword = errors.New("password too weak")

// CheckPassword checks cleartext against PasswordRule. The error says
// which part fails, never the value.
func CheckPassword(user, cleartext string) error {
	n := utf8.RuneCountInString(cleartext)
	fail := func(why string) error {
		return fmt.Errorf("%w: %s (%s)", ErrWeakPassword, why, PasswordRule)
	}
	switch {
	case n == 0:
		return fail("the password is empty")
	case !utf8.ValidString(cleartext):
		return fail("the password is not valid UTF-8")
	case n < MinPassword:
		return fail(fmt.Sprintf("the password has %d characters", n))
	case n > MaxPassword:
		return fail(fmt.Sprintf("the password has %d characters", n))
	case strings.EqualFold(cleartext, user):
		return fail("the password is the user name")
	case strings.Count(cleartext, string([]rune(cleartext)[:1])) == n:
		return fail("the password is one character repeated")
	}
	for _, r := range cleartext {
		if unicode.IsControl(r) {
			return fail("the password holds a control character")
		}
	}
	return nil
}

// Sealed implements agent.Sealer: v is a bcrypt or argon2id hash within
// the bounds Login accepts.
func (u *Users) Sealed(v string) bool {
	_, err := parseHash(v)
	return err == nil
}

// Seal implements agent.Sealer: it checks the rule, then hashes in a check
// slot of the throttle, so hashes and logins together run at most
// Limits.MaxChecks argon2 computations at once.
func (u *Users) Seal(ctx context.Context, user, cleartext string) (string, error) {
	if err := CheckPassword(user, cleartext); err != nil {
		return "", err
	}
	tk, err := u.throttle.admit(ctx, "commit", user)
	if err != nil {
		return "", fmt.Errorf("hashing the password: %w", err)
	}
	defer tk.release(true)
	return hashWith(u.cfg.Rand, cleartext)
}

// usersIn returns the users of a datastore tree.
func usersIn(root *gen.Device) map[string]User {
	out := map[string]User{}
	if root.GetSystem().GetAaa() == nil {
		return out
	}
	for name, e := range root.System.Aaa.User {
		out[name] = User{Name: name, Role: e.GetRole().String(), Hash: e.GetPassword()}
	}
	return out
}

// Load puts the users of root (running, with its hashes: Store.Sealed)
// in force.
func (u *Users) Load(root *gen.Device) {
	u.set(usersIn(root))
}

func (u *Users) set(m map[string]User) {
	u.mu.Lock()
	u.byName = m
	u.cache = map[string][]byte{}
	u.pending = nil
	u.mu.Unlock()
}

// Validate implements agent.Validator: a commit may not leave the
// configuration without an admin when it had one.
func (u *Users) Validate(_ context.Context, c *api.Commit) error {
	if c.New.GetSystem() == c.Old.GetSystem() {
		return nil
	}
	admins := func(root *gen.Device) int {
		n := 0
		for _, usr := range usersIn(root) {
			if usr.Role == api.RoleAdmin {
				n++
			}
		}
		return n
	}
	if admins(c.Old) > 0 && admins(c.New) == 0 {
		return &api.PathError{Op: "commit", Path: &gnmi.Path{Elem: []*gnmi.PathElem{{Name: "system"}, {Name: "aaa"}, {Name: "user"}}}, Err: fmt.Errorf("%w: the commit would delete or demote the last admin, and nobody could change the configuration any more; make another user admin first", api.ErrInvalid)}
	}
	return nil
}

// Apply implements agent.Applier: it prepares the users of c.New, put in
// force by Finish.
func (u *Users) Apply(_ context.Context, c *api.Commit) error {
	if c.New.GetSystem() == c.Old.GetSystem() {
		return nil
	}
	m := usersIn(c.New)
	u.mu.Lock()
	u.pending = m
	u.mu.Unlock()
	return nil
}

// Finish implements agent.Finisher.
func (u *Users) Finish(_ context.Context, _ *api.Commit, committed bool) {
	u.mu.Lock()
	m := u.pending
	u.pending = nil
	u.mu.Unlock()
	if committed && m != nil {
		u.set(m)
	}
}

// Bootstrap makes sure the configuration has users, once the store and
// Users are wired (SetSealer, AddValidator, AddApplier). It puts the users
// of running in force; when there are none it migrates the users file
// (then renamed to FILE.migrated, so it is not read again), or, without
// one, creates admin with the password of PKI_AGENT_ADMIN_PASSWORD or a
// generated one (written to STATE-DIR/admin-password). A later
// PKI_AGENT_ADMIN_PASSWORD that does not match admin's stored password is
// logged as ignored.
func (u *Users) Bootstrap(ctx context.Context, store *agent.Store) error {
	root := store.Sealed()
	u.Load(root)
	existing := usersIn(root)
	file := u.cfg.File
	_, statErr := os.Stat(file)
	hasFile := file != "" && statErr == nil
	if len(existing) > 0 {
		if hasFile {
			u.cfg.Logger.Warn("the users file is ignored: users are configuration (/system/aaa/user) since they were migrated; remove the file", "file", file)
		}
		u.checkAdminEnv(existing)
		return nil
	}
	var users []User
	comment := "first start: user admin"
	if hasFile {
		var err error
		if users, err = ReadFile(file); err != nil {
			return err
		}
		comment = "users migrated from " + file
	}
	if len(users) == 0 {
		h, err := u.firstAdminHash()
		if err != nil {
			return err
		}
		users = []User{{Name: "admin", Role: api.RoleAdmin, Hash: h}}
	}
	tx := store.Begin(agent.Running)
	for _, usr := range users {
		v, err := json.Marshal(map[string]string{"name": usr.Name, "role": usr.Role, "password": usr.Hash})
		if err != nil {
			return err
		}
		p := &gnmi.Path{Elem: []*gnmi.PathElem{{Name: "system"}, {Name: "aaa"}, {Name: "user", Key: map[string]string{"name": usr.Name}}}}
		if err := tx.Apply(agent.Edit{Op: agent.OpReplace, Path: p, Value: &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: v}}}); err != nil {
			return fmt.Errorf("users: %w", err)
		}
	}
	if _, err := store.Commit(ctx, tx, agent.CommitOptions{User: "system", Owner: api.Owner{Name: "pki-agent start"}, Comment: comment}); err != nil {
		return fmt.Errorf("users: storing the first users in the configuration: %w", err)
	}
	if hasFile {
		if err := os.Rename(file, file+".migrated"); err != nil {
			return fmt.Errorf("users: the users were migrated into the configuration, but renaming %s failed: %w", file, err)
		}
		u.cfg.Logger.Info("migrated the users file into the configuration (/system/aaa/user); it is not read again", "users", len(users), "renamed-to", file+".migrated")
	}
	return nil
}

// checkAdminEnv logs PKI_AGENT_ADMIN_PASSWORD as ignored when it is set
// but is not admin's stored password (the password only seeds the first
// start).
func (u *Users) checkAdminEnv(users map[string]User) {
	pw := u.cfg.AdminPassword
	if pw == "" {
		return
	}
	if admin, ok := users["admin"]; ok && verify(admin.Hash, pw) == nil {
		return
	}
	u.cfg.Logger.Warn(AdminPasswordEnv + " is ignored: it only sets the first admin's password at the first start, and user admin's stored password differs; change a password with a commit to /system/aaa/user[name]/password")
}

// firstAdminHash returns the hash of the first admin's password: the one
// of PKI_AGENT_ADMIN_PASSWORD, or a generated one written to
// STATE-DIR/admin-password.
func (u *Users) firstAdminHash() (string, error) {
	pw, err := u.firstAdminPassword()
	if err != nil {
		return "", err
	}
	if u.cfg.AdminPassword != "" {
		if err := CheckPassword("admin", pw); err != nil {
			u.cfg.Logger.Warn("the first admin's password from "+AdminPasswordEnv+" is weak; change it", "rule", PasswordRule)
		}
	}
	return hashWith(u.cfg.Rand, pw)
}

// ReadFile reads and checks a users file (the format of Save).
func ReadFile(path string) ([]User, error) {
	return readFile(path, slog.New(slog.DiscardHandler))
}
