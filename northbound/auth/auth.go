// Package auth checks the passwords and roles of pki-agent's users.
//
// The agent's users are configuration: /system/aaa/user[name] (module
// pki-agent-system) holds each one's role and password hash, edited and
// committed like the rest (store.go: Users hashes the passwords a commit
// sets, refuses a commit that leaves no admin, and puts the committed
// users in force for new logins at once). At the first start Bootstrap
// migrates a users file of the older format, or creates the first admin.
//
// The users file (STATE-DIR/users.json, mode 0600), which Open still reads
// for servers run without a datastore of users, looks like:
//
//	{"users": [
//	  {"name": "admin", "role": "admin",  "hash": "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>"},
//	  {"name": "noc",   "role": "viewer", "hash": "$2b$10$..."}
//	]}
//
// Roles are admin (everything), operator (read and the PKI rpcs) and viewer
// (read only). The first admin's password comes from
// PKI_AGENT_ADMIN_PASSWORD or is generated and written to
// STATE-DIR/admin-password (mode 0600).
//
// Users.Login bounds what password guessing costs: the checks running at
// once (addresses in turn), a delay of the answer to a failure per source
// address and per user, and a password verified before is recognised
// without waiting (see throttle.go).
// Refused logins are audited, coalesced per source address.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/internal/persist"
)

// AdminPasswordEnv names the environment variable that sets the first
// admin's password.
const AdminPasswordEnv = "PKI_AGENT_ADMIN_PASSWORD"

// ErrBadCredentials: unknown user or wrong password. The message never says
// which, so it does not reveal which user names exist.
var ErrBadCredentials = errors.New("invalid user name or password")

// ErrUsersFile: the users file is unreadable or malformed.
var ErrUsersFile = errors.New("bad users file")

// User is one entry of the users file.
type User struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// Hash is a bcrypt ($2a$, $2b$) or argon2id PHC string.
	Hash string `json:"hash"`
}

type file struct {
	Users []User `json:"users"`
}

// Config says where the users live.
type Config struct {
	// File is the users file.
	File string
	// StateDir receives admin-password when a password is generated.
	StateDir string
	// AdminPassword is the first admin's password (from
	// PKI_AGENT_ADMIN_PASSWORD); empty means generate one.
	AdminPassword string
	Logger        *slog.Logger
	// Rand is the randomness for salts and generated passwords
	// (crypto/rand when nil).
	Rand io.Reader
	// Clock times the delays after failed logins (clock.Real when nil).
	Clock clock.Clock
	// Limits bound the password checks (see Limits; zero fields take
	// DefaultLimits).
	Limits Limits
	// Audit receives a record of each refused login, keyed by source
	// address so that a flood writes a few lines (nil: not audited).
	Audit Auditor
}

// Auditor writes audit records of refusals, coalescing those of one key
// (audit.Coalescer). It reports whether ev was written.
type Auditor interface {
	Coalesce(key string, ev audit.Event) bool
}

// Users authenticates users against the users file. It is safe for
// concurrent use.
type Users struct {
	cfg Config

	mu     sync.RWMutex
	byName map[string]User
	// dummy is verified for unknown users so that they take as long as
	// known ones.
	dummy string
	// cacheKey keys an HMAC of (user, hash, password) for passwords already
	// verified, so that per-RPC authentication does not pay for argon2id or
	// bcrypt on every call. Only successes are cached; Reload clears it.
	cacheKey []byte
	cache    map[string][]byte
	// pending are the users of a commit being applied (store.go).
	pending map[string]User

	throttle *throttle
}

// maxCache bounds the verified-password cache (one entry per user).
const maxCache = 1024

// New returns Users with nobody in force yet: Load or Bootstrap puts the
// users of the datastore in force (the agent), Open those of a users file.
func New(cfg Config) (*Users, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.StateDir == "" && cfg.File != "" {
		cfg.StateDir = filepath.Dir(cfg.File)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	u := &Users{cfg: cfg, throttle: newThrottle(cfg.Limits, cfg.Clock), byName: map[string]User{}, cache: map[string][]byte{}}
	u.cacheKey = make([]byte, 32)
	if _, err := io.ReadFull(cfg.Rand, u.cacheKey); err != nil {
		return nil, fmt.Errorf("users: reading randomness: %w", err)
	}
	dummy, err := dummyHash(cfg.Rand)
	if err != nil {
		return nil, err
	}
	u.dummy = dummy
	return u, nil
}

// Open loads the users file, creating it with a first admin when it does
// not exist (for servers run without a datastore of users).
func Open(cfg Config) (*Users, error) {
	u, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(u.cfg.File); errors.Is(err, fs.ErrNotExist) {
		if err := u.createFirstAdmin(); err != nil {
			return nil, err
		}
		// The admin's hash took argon2id's 19 MiB once: give it back to
		// the system now rather than hold it while the agent idles.
		debug.FreeOSMemory()
	}
	if err := u.Reload(); err != nil {
		return nil, err
	}
	return u, nil
}

// firstAdminPassword returns PKI_AGENT_ADMIN_PASSWORD, or a generated
// password written to STATE-DIR/admin-password (mode 0600).
func (u *Users) firstAdminPassword() (string, error) {
	if pw := u.cfg.AdminPassword; pw != "" {
		u.cfg.Logger.Info("created user admin with the password from " + AdminPasswordEnv)
		return pw, nil
	}
	pw := randomText(u.cfg.Rand)
	if err := os.MkdirAll(u.cfg.StateDir, 0o700); err != nil {
		return "", fmt.Errorf("users: creating %s: %w", u.cfg.StateDir, err)
	}
	pwFile := filepath.Join(u.cfg.StateDir, "admin-password")
	if err := persist.WriteFileAtomic(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("users: writing the generated admin password: %w", err)
	}
	u.cfg.Logger.Warn("created user admin with a generated password; read it from the file and change it", "password-file", pwFile)
	return pw, nil
}

func (u *Users) createFirstAdmin() error {
	if err := os.MkdirAll(filepath.Dir(u.cfg.File), 0o700); err != nil {
		return fmt.Errorf("users: creating %s: %w", filepath.Dir(u.cfg.File), err)
	}
	pw, err := u.firstAdminPassword()
	if err != nil {
		return err
	}
	h, err := hashWith(u.cfg.Rand, pw)
	if err != nil {
		return err
	}
	return Save(u.cfg.File, []User{{Name: "admin", Role: api.RoleAdmin, Hash: h}})
}

// Save writes users to path atomically with mode 0600.
func Save(path string, users []User) error {
	if err := check(users); err != nil {
		return err
	}
	b, err := json.MarshalIndent(file{Users: users}, "", "  ")
	if err != nil {
		return err
	}
	if err := persist.WriteFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("users: writing %s: %w", path, err)
	}
	return nil
}

// maxUsersFile bounds the users file.
const maxUsersFile = 4 << 20

// Reload re-reads the users file. On error the users loaded before stay in
// force.
func (u *Users) Reload() error {
	users, err := readFile(u.cfg.File, u.cfg.Logger)
	if err != nil {
		return err
	}
	if len(users) == 0 {
		u.cfg.Logger.Warn("the users file has no users; nobody can log in with a password", "file", u.cfg.File)
	}
	m := make(map[string]User, len(users))
	for _, usr := range users {
		m[usr.Name] = usr
	}
	u.set(m)
	return nil
}

func readFile(path string, log *slog.Logger) ([]User, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsersFile, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().Perm()&0o077 != 0 {
		log.Warn("the users file is readable by others; chmod 600 it", "file", path, "mode", st.Mode().Perm().String())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxUsersFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUsersFile, path, err)
	}
	if len(b) > maxUsersFile {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrUsersFile, path, maxUsersFile)
	}
	var fl file
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fl); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUsersFile, path, err)
	}
	if err := check(fl.Users); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fl.Users, nil
}

func check(users []User) error {
	seen := map[string]bool{}
	for i, usr := range users {
		switch {
		case usr.Name == "":
			return fmt.Errorf("%w: user %d has no name", ErrUsersFile, i+1)
		case seen[usr.Name]:
			return fmt.Errorf("%w: user %q appears twice", ErrUsersFile, usr.Name)
		case !api.ValidRole(usr.Role):
			return fmt.Errorf("%w: user %q has role %q; want admin, operator or viewer", ErrUsersFile, usr.Name, usr.Role)
		}
		if _, err := parseHash(usr.Hash); err != nil {
			return fmt.Errorf("%w: user %q: %w", ErrUsersFile, usr.Name, err)
		}
		seen[usr.Name] = true
	}
	return nil
}

// Attempt is one password login.
type Attempt struct {
	User, Password string
	// Source is the client's address (host:port or host); its host part
	// keys the delays after failures.
	Source string
	// Protocol names the northbound server ("gnmi", "netconf") in audit
	// records and logs.
	Protocol string
	// Failed, when set, is called as soon as the check has found the
	// password wrong, before Login delays its answer (so a server may
	// close that connection to make room for another).
	Failed func()
}

// maxCredential bounds user names and passwords: longer ones are refused
// without a check.
const maxCredential = 1024

// Login checks a password and returns the user's role. Unknown users and
// wrong passwords both get ErrBadCredentials after the same work.
//
// A password verified since the users were last loaded is recognised at
// once (an HMAC of user, hash and password under a key made at start,
// compared in constant time): it waits for nothing, so a user who has
// logged in before is not held up by a flood of guesses. Any other
// attempt goes through the throttle (see throttle): bounded checks at
// once (addresses in turn), and the answer to a failure delayed per source
// address and user. Login returns early with ctx's error when ctx ends
// while it waits for a check, and ErrBadCredentials when ctx ends while it
// delays a failure.
func (u *Users) Login(ctx context.Context, a Attempt) (string, error) {
	source := sourceOf(a.Source)
	if len(a.User) > maxCredential || len(a.Password) > maxCredential {
		u.refused(a, source, "user name or password too long")
		return "", ErrBadCredentials
	}
	u.mu.RLock()
	usr, known := u.byName[a.User]
	dummy := u.dummy
	var tag []byte
	if known {
		tag = u.tag(usr, a.Password)
		if cached, hit := u.cache[usr.Name]; hit && hmac.Equal(cached, tag) {
			u.mu.RUnlock()
			return usr.Role, nil
		}
	}
	u.mu.RUnlock()

	tk, err := u.throttle.admit(ctx, source, a.User)
	if errors.Is(err, ErrTooManyAttempts) {
		u.refused(a, source, "too many attempts from this address at once")
		return "", err
	}
	if err != nil {
		return "", waitError(a.User, source, err)
	}
	h := dummy
	if known {
		h = usr.Hash
	}
	verr := verify(h, a.Password)
	ok := known && verr == nil
	wait := tk.done(ok)
	if !ok {
		if a.Failed != nil {
			a.Failed()
		}
		u.refused(a, source, "invalid user name or password")
		// The client waits for its answer holding no check slot.
		u.throttle.delayAnswer(ctx, tk, wait)
		return "", ErrBadCredentials
	}
	u.mu.Lock()
	if cur, still := u.byName[a.User]; still && cur.Hash == usr.Hash {
		if len(u.cache) >= maxCache {
			clear(u.cache)
		}
		u.cache[usr.Name] = tag
	}
	u.mu.Unlock()
	return usr.Role, nil
}

// refused audits (coalesced per source address) and logs a refused login.
// The password is never written.
func (u *Users) refused(a Attempt, source, why string) {
	ev := audit.Event{
		Time: u.cfg.Clock.Now().UTC(), User: clip(a.User), Type: "system.login",
		Description: fmt.Sprintf("%s login of user %q from %s refused: %s", a.Protocol, clip(a.User), source, why),
		Detail:      map[string]any{"protocol": a.Protocol, "source": source, "method": "password", "reason": why},
	}
	if u.cfg.Audit == nil || u.cfg.Audit.Coalesce("login "+source, ev) {
		u.cfg.Logger.Warn("login refused", "protocol", a.Protocol, "user", clip(a.User), "source", source, "reason", why)
	}
}

// clip bounds a user name taken from a client for logs, errors and audit
// records.
func clip(s string) string {
	const maxShown = 64
	if len(s) <= maxShown && utf8.ValidString(s) {
		return s
	}
	b := []byte(s)
	if len(b) > maxShown {
		b = b[:maxShown]
	}
	return strings.ToValidUTF8(string(b), "?") + "..."
}

func (u *Users) tag(usr User, password string) []byte {
	m := hmac.New(sha256.New, u.cacheKey)
	for _, s := range []string{usr.Name, usr.Hash, password} {
		fmt.Fprintf(m, "%d:%s", len(s), s)
	}
	return m.Sum(nil)
}

// RoleFor returns the role of a user (for client-certificate logins, where
// the certificate's common name names the user).
func (u *Users) RoleFor(user string) (string, bool) {
	u.mu.RLock()
	defer u.mu.RUnlock()
	usr, ok := u.byName[user]
	return usr.Role, ok
}

// randomText returns 128 random bits as URL-safe base64.
func randomText(r io.Reader) string {
	b := make([]byte, 16)
	if _, err := io.ReadFull(r, b); err != nil {
		// crypto/rand does not fail; a broken test reader falls back to it.
		_, _ = rand.Read(b)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
