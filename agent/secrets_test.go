package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openconfig/ygot/ygot"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/telemetry"
)

// sealer is a password hasher that marks its output with "sealed:" and
// can be held, to see what waits for it.
type sealer struct {
	mu    sync.Mutex
	hold  chan struct{} // when set, Seal waits for it to close
	in    chan struct{} // when set, Seal says it started
	calls int
}

func (s *sealer) Sealed(v string) bool { return strings.HasPrefix(v, "sealed:") }

func (s *sealer) Seal(ctx context.Context, user, clear string) (string, error) {
	s.mu.Lock()
	s.calls++
	hold, in := s.hold, s.in
	s.mu.Unlock()
	if in != nil {
		in <- struct{}{}
	}
	if hold != nil {
		<-hold
	}
	if len(clear) < 8 {
		return "", errors.New("too short")
	}
	return "sealed:" + fmt.Sprint(len(clear)), nil
}

func userEdit(t testing.TB, name, role, password string) Edit {
	v := fmt.Sprintf(`{"name":%q,"role":%q`, name, role)
	if password != "" {
		v += fmt.Sprintf(`,"password":%q`, password)
	}
	return Edit{Op: OpMerge, Path: mustPath(t, "/system/aaa/user[name="+name+"]"), Value: jsonVal(v + "}")}
}

func emit(t *testing.T, s ygot.GoStruct) string {
	t.Helper()
	b, err := EmitJSON(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPasswordsSealedAndNeverRead: a password is stored as its hash, no
// read of the store shows it, and the commit's event carries only its
// path.
func TestPasswordsSealedAndNeverRead(t *testing.T) {
	bus := telemetry.NewBus()
	s, dir := newTestStore(t, Config{Bus: bus})
	s.SetSealer(&sealer{})
	sub := bus.Subscribe(16)
	if _, err := commitEdits(t, s, userEdit(t, "alice", "admin", "cleartext-1")); err != nil {
		t.Fatal(err)
	}
	if got := *s.Sealed().System.Aaa.User["alice"].Password; got != "sealed:11" {
		t.Fatalf("stored %q", got)
	}
	if !strings.Contains(emit(t, reload(t, dir)), "sealed:11") {
		t.Fatal("the hash is not on disk")
	}
	view, err := s.View(Running, true)
	if err != nil {
		t.Fatal(err)
	}
	for what, tree := range map[string]ygot.GoStruct{"Running": s.Running(), "Candidate": s.Candidate(), "Get": s.Get(Candidate), "View": view} {
		if js := emit(t, tree); strings.Contains(js, "password") || !strings.Contains(js, "alice") {
			t.Errorf("%s: %s", what, js)
		}
	}
	if s.Running() != s.Running() {
		t.Error("the redacted view of an unchanged running is not the same tree")
	}
	ev := <-sub.C
	for _, c := range ev.Changes {
		if IsWriteOnly(c.Path.GetElem()) {
			t.Errorf("the event carries the password: %v", c)
		}
	}
	if len(ev.WriteOnly) != 1 || api.PathString(ev.WriteOnly[0]) != "/system/aaa/user[name=alice]/password" {
		t.Errorf("write-only paths: %v", ev.WriteOnly)
	}
}

// TestSealingHoldsNoLock: while a password is being hashed, another
// client's commit goes through.
func TestSealingHoldsNoLock(t *testing.T) {
	s, _ := newTestStore(t, Config{})
	sl := &sealer{hold: make(chan struct{}), in: make(chan struct{}, 1)}
	s.SetSealer(sl)
	done := make(chan error, 1)
	go func() {
		_, err := commitEdits(t, s, userEdit(t, "alice", "admin", "cleartext-1"))
		done <- err
	}()
	<-sl.in
	start := time.Now()
	if _, err := commitEdits(t, s, addCRL(t, "http://a/x.crl", 2)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the commit waited %s for a password hash", took)
	}
	close(sl.hold)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s.Sealed().System.Aaa.User["alice"] == nil || s.Running().Authority.CertificateRevocationList["http://a/x.crl"] == nil {
		t.Fatal("a commit was lost")
	}
}

// TestPasswordRules: a replace that omits the password keeps the stored
// hash; a new user without one, a password the sealer refuses, a commit
// without a sealer, and too many passwords at once are refused, naming
// the user, never the value.
func TestPasswordRules(t *testing.T) {
	s, _ := newTestStore(t, Config{})
	if _, err := commitEdits(t, s, userEdit(t, "alice", "admin", "cleartext-1")); !errors.Is(err, ErrPassword) || strings.Contains(err.Error(), "cleartext-1") {
		t.Fatalf("without a sealer: %v", err)
	}
	s.SetSealer(&sealer{})
	if _, err := commitEdits(t, s, userEdit(t, "alice", "admin", "cleartext-1")); err != nil {
		t.Fatal(err)
	}
	replace := Edit{Op: OpReplace, Path: mustPath(t, "/system/aaa/user[name=alice]"), Value: jsonVal(`{"name":"alice","role":"operator"}`)}
	if _, err := commitEdits(t, s, replace); err != nil {
		t.Fatalf("replace without the password: %v", err)
	}
	if u := s.Sealed().System.Aaa.User["alice"]; u.GetPassword() != "sealed:11" || u.GetRole().String() != "operator" {
		t.Fatalf("after the replace: %+v", u)
	}
	for _, tc := range []struct {
		desc  string
		edits []Edit
		want  string
	}{
		{"new user without a password", []Edit{userEdit(t, "bob", "viewer", "")}, "user bob has no password"},
		{"refused by the sealer", []Edit{userEdit(t, "bob", "viewer", "short")}, "too short"},
		{"too many at once", func() []Edit {
			var out []Edit
			for i := range maxSealsPerCommit + 1 {
				out = append(out, userEdit(t, fmt.Sprintf("u%d", i), "viewer", fmt.Sprintf("password-%d", i)))
			}
			return out
		}(), "at most 16 passwords"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := commitEdits(t, s, tc.edits...)
			if !errors.Is(err, ErrPassword) || !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v", err)
			}
			if strings.Contains(err.Error(), "password-") || strings.Contains(err.Error(), "short\"") {
				t.Fatalf("the error quotes the value: %v", err)
			}
		})
	}
	// NETCONF validate checks the rule too.
	tx := s.Begin(Running)
	if err := tx.Apply(userEdit(t, "bob", "viewer", "short")); err != nil {
		t.Fatal(err)
	}
	if err := s.ValidateTx(context.Background(), tx); !errors.Is(err, ErrPassword) {
		t.Fatalf("validate: %v", err)
	}
}

// TestCAProfileSecretsNeverRead: the secrets of a CA profile are kept as
// given (the engine needs them) and on disk, and no read, no event and no
// value error shows them; the rest of the profile reads as written.
func TestCAProfileSecretsNeverRead(t *testing.T) {
	bus := telemetry.NewBus()
	s, dir := newTestStore(t, Config{Bus: bus})
	sub := bus.Subscribe(16)
	edit := Edit{Op: OpMerge, Path: mustPath(t, "/authority"), Value: jsonVal(`{
	  "trusted-ca-certificate": [{"name": "ca", "content": "PEM"}],
	  "ca-profile": [{"name": "lab", "url": "http://ca/pkix/", "trusted-ca": "ca",
	                  "cmpv2": {"reference": "3078", "secret": "s3cret-psk"}, "est": {"password": "est-pw"}, "scep": {"challenge-password": "scep-pw"}}]}`)}
	if _, err := commitEdits(t, s, edit); err != nil {
		t.Fatal(err)
	}
	if got := s.Sealed().Authority.CaProfile["lab"].Cmpv2.GetSecret(); got != "s3cret-psk" {
		t.Fatalf("the engine would see %q", got)
	}
	if js := emit(t, reload(t, dir)); !strings.Contains(js, "s3cret-psk") {
		t.Fatal("the secret is not on disk")
	}
	view, err := s.View(Running, true)
	if err != nil {
		t.Fatal(err)
	}
	for what, tree := range map[string]ygot.GoStruct{"Running": s.Running(), "Candidate": s.Candidate(), "Get": s.Get(Running), "View": view} {
		js := emit(t, tree)
		for _, secret := range []string{"s3cret-psk", "est-pw", "scep-pw"} {
			if strings.Contains(js, secret) {
				t.Errorf("%s shows %s: %s", what, secret, js)
			}
		}
		if !strings.Contains(js, `"reference":"3078"`) && !strings.Contains(js, `"reference": "3078"`) {
			t.Errorf("%s lost the reference: %s", what, js)
		}
	}
	if s.Sealed().Authority.CaProfile["lab"].Cmpv2.GetSecret() != "s3cret-psk" {
		t.Fatal("a read changed the stored secret")
	}
	ev := <-sub.C
	if len(ev.WriteOnly) != 3 {
		t.Errorf("write-only paths: %v", ev.WriteOnly)
	}
	for _, c := range ev.Changes {
		if IsWriteOnly(c.Path.GetElem()) {
			t.Errorf("the event carries a secret: %v", c)
		}
	}
	// A client writing back what it read keeps the secrets.
	if _, err := commitEdits(t, s, Edit{Op: OpReplace, Path: mustPath(t, "/authority/ca-profile[name=lab]"),
		Value: jsonVal(`{"name": "lab", "url": "http://ca/pkix/", "trusted-ca": "ca", "cmpv2": {"reference": "3078"}}`)}); err != nil {
		t.Fatal(err)
	}
	if p := s.Sealed().Authority.CaProfile["lab"]; p.Cmpv2.GetSecret() != "s3cret-psk" || p.GetEst().GetPassword() != "est-pw" {
		t.Errorf("a replace without the secrets dropped them: %q %q", p.Cmpv2.GetSecret(), p.GetEst().GetPassword())
	}
	long := strings.Repeat("x", 300)
	_, err = commitEdits(t, s, Edit{Op: OpMerge, Path: mustPath(t, "/authority/ca-profile[name=lab]/cmpv2"), Value: jsonVal(`{"secret": "` + long + `"}`)})
	if err == nil || strings.Contains(err.Error(), "xxxxxxxx") {
		t.Errorf("an over-long secret: %v", err)
	}
	_, err = commitEdits(t, s, Edit{Op: OpMerge, Path: mustPath(t, "/authority/ca-profile[name=lab]/cmpv2"), Value: jsonVal(`{"secret": 123456789}`)})
	if err == nil || strings.Contains(err.Error(), "123456789") {
		t.Errorf("a secret given as a number: %v", err)
	}
}
