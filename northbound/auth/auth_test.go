package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkiagent/pkiagent/agent/api"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestFirstStartWithEnvPassword(t *testing.T) {
	dir := t.TempDir()
	u, err := Open(Config{File: filepath.Join(dir, "users.json"), StateDir: dir, AdminPassword: "s3cret", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	role, err := u.Login(context.Background(), Attempt{User: "admin", Password: "s3cret", Source: "192.0.2.1:1", Protocol: "test"})
	if err != nil || role != "admin" {
		t.Fatalf("Authenticate(admin, s3cret) = %q, %v; want admin", role, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "admin-password")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("admin-password written although the password came from the environment: %v", err)
	}
	st, err := os.Stat(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("users.json mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(filepath.Join(dir, "users.json"))
	if bytes.Contains(b, []byte("s3cret")) || !bytes.Contains(b, []byte("$argon2id$v=19$")) {
		t.Errorf("users.json holds %s; want an argon2id hash and no password", b)
	}
	// A restart reads the same file and keeps the password.
	u2, err := Open(Config{File: filepath.Join(dir, "users.json"), StateDir: dir, AdminPassword: "other", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u2.Login(context.Background(), Attempt{User: "admin", Password: "s3cret", Source: "192.0.2.1:1", Protocol: "test"}); err != nil {
		t.Errorf("after restart: %v", err)
	}
	if _, err := u2.Login(context.Background(), Attempt{User: "admin", Password: "other", Source: "192.0.2.1:1", Protocol: "test"}); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("the env password of a later start must not replace the file: %v", err)
	}
}

func TestFirstStartGeneratesPassword(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	u, err := Open(Config{File: filepath.Join(dir, "users.json"), StateDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "admin-password")
	b, err := os.ReadFile(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(pwFile)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("admin-password mode %v, want 0600", st.Mode().Perm())
	}
	pw := strings.TrimSpace(string(b))
	if len(pw) < 16 {
		t.Errorf("generated password %q is too short", pw)
	}
	if _, err := u.Login(context.Background(), Attempt{User: "admin", Password: pw, Source: "192.0.2.1:1", Protocol: "test"}); err != nil {
		t.Errorf("generated password refused: %v", err)
	}
	if !strings.Contains(logs.String(), pwFile) {
		t.Errorf("log does not name %s:\n%s", pwFile, logs.String())
	}
	if strings.Contains(logs.String(), pw) {
		t.Errorf("log reveals the password")
	}
}

func TestAuthenticate(t *testing.T) {
	dir := t.TempDir()
	argon, err := HashPassword("op-pass")
	if err != nil {
		t.Fatal(err)
	}
	bc, err := bcrypt.GenerateFromPassword([]byte("view-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "users.json")
	if err := Save(f, []User{{Name: "op", Role: "operator", Hash: argon}, {Name: "view", Role: "viewer", Hash: string(bc)}}); err != nil {
		t.Fatal(err)
	}
	u, err := Open(Config{File: f, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc, user, pw, role string
		ok                   bool
	}{
		{desc: "argon2id", user: "op", pw: "op-pass", role: "operator", ok: true},
		{desc: "argon2id cached", user: "op", pw: "op-pass", role: "operator", ok: true},
		{desc: "bcrypt", user: "view", pw: "view-pass", role: "viewer", ok: true},
		{desc: "wrong password after a cached success", user: "op", pw: "op-pasS"},
		{desc: "wrong bcrypt password", user: "view", pw: "x"},
		{desc: "unknown user", user: "nobody", pw: "op-pass"},
		{desc: "empty", user: "", pw: ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			role, err := u.Login(context.Background(), Attempt{User: tc.user, Password: tc.pw, Source: "192.0.2.1:1", Protocol: "test"})
			if tc.ok {
				if err != nil || role != tc.role {
					t.Errorf("got %q, %v; want %q", role, err, tc.role)
				}
				return
			}
			if !errors.Is(err, ErrBadCredentials) || role != "" {
				t.Errorf("got %q, %v; want ErrBadCredentials", role, err)
			}
		})
	}
	if r, ok := u.RoleFor("view"); !ok || r != "viewer" {
		t.Errorf("RoleFor(view) = %q, %v", r, ok)
	}
	if _, ok := u.RoleFor("nobody"); ok {
		t.Error("RoleFor(nobody) found a role")
	}
	// A reload with a changed hash drops the cached success.
	argon2, _ := HashPassword("new-pass")
	if err := Save(f, []User{{Name: "op", Role: "admin", Hash: argon2}}); err != nil {
		t.Fatal(err)
	}
	if err := u.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Login(context.Background(), Attempt{User: "op", Password: "op-pass", Source: "192.0.2.1:1", Protocol: "test"}); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old password after reload: %v", err)
	}
	if r, err := u.Login(context.Background(), Attempt{User: "op", Password: "new-pass", Source: "192.0.2.1:1", Protocol: "test"}); err != nil || r != "admin" {
		t.Errorf("new password after reload: %q %v", r, err)
	}
}

func TestBadUsersFiles(t *testing.T) {
	good, _ := HashPassword("x")
	for _, tc := range []struct{ desc, body, want string }{
		{desc: "not json", body: "{", want: "bad users file"},
		{desc: "unknown field", body: `{"users":[],"x":1}`, want: "unknown field"},
		{desc: "bad role", body: `{"users":[{"name":"a","role":"root","hash":"` + good + `"}]}`, want: `role "root"`},
		{desc: "duplicate", body: `{"users":[{"name":"a","role":"admin","hash":"` + good + `"},{"name":"a","role":"admin","hash":"` + good + `"}]}`, want: "twice"},
		{desc: "no name", body: `{"users":[{"role":"admin","hash":"` + good + `"}]}`, want: "no name"},
		{desc: "md5 crypt", body: `{"users":[{"name":"a","role":"admin","hash":"$1$abc$def"}]}`, want: "unsupported password hash"},
		{desc: "argon2i", body: `{"users":[{"name":"a","role":"admin","hash":"$argon2i$v=19$m=16,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}]}`, want: "unsupported"},
		{desc: "huge memory", body: `{"users":[{"name":"a","role":"admin","hash":"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}]}`, want: "m must be"},
		{desc: "bad bcrypt", body: `{"users":[{"name":"a","role":"admin","hash":"$2b$99$xx"}]}`, want: "bcrypt"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "users.json")
			if err := os.WriteFile(f, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(Config{File: f, Logger: quiet()})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		role              string
		read, write, rpcs bool
	}{
		{"admin", true, true, true},
		{"operator", true, false, true},
		{"viewer", true, false, false},
		{"", false, false, false},
		{"root", false, false, false},
	} {
		if api.CanRead(tc.role) != tc.read || api.CanWrite(tc.role) != tc.write || api.CanRunRPC(tc.role) != tc.rpcs {
			t.Errorf("role %q: read %v write %v rpc %v; want %v %v %v", tc.role, api.CanRead(tc.role), api.CanWrite(tc.role), api.CanRunRPC(tc.role), tc.read, tc.write, tc.rpcs)
		}
	}
}

// TestDummyHash: the hash unknown users are checked against costs a real
// check (it has HashPassword's parameters) and matches no password.
func TestDummyHash(t *testing.T) {
	d, err := dummyHash(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parseHash(d)
	if err != nil {
		t.Fatal(err)
	}
	real, _ := HashPassword("x")
	r, _ := parseHash(real)
	if p.argon.memory != r.argon.memory || p.argon.time != r.argon.time || p.argon.threads != r.argon.threads || len(p.argon.key) != len(r.argon.key) {
		t.Fatalf("dummy %s has other parameters than %s", d, real)
	}
	for _, pw := range []string{"", "x", "admin"} {
		if err := verify(d, pw); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("verify(dummy, %q) = %v", pw, err)
		}
	}
}

// TestVerifyOtherParameters: hashes made with other argon2id parameters
// (stored by an older agent or another tool) still verify, as the
// parameters travel in the hash.
func TestVerifyOtherParameters(t *testing.T) {
	salt := []byte("0123456789abcdef")
	for _, c := range []struct{ m, t uint32 }{{64 * 1024, 3}, {19 * 1024, 2}, {46 * 1024, 1}} {
		key := argon2.IDKey([]byte("pw"), salt, c.t, c.m, 1, 32)
		h := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=1$%s$%s", c.m, c.t, base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
		if err := verify(h, "pw"); err != nil {
			t.Errorf("%s: %v", h, err)
		}
		if err := verify(h, "other"); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s with a wrong password: %v", h, err)
		}
	}
}
