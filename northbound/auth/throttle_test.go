package auth

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/internal/clock"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// admitted runs admit in a goroutine; the result arrives on the channel.
type admitResult struct {
	tk  *ticket
	err error
}

func admitAsync(ctx context.Context, th *throttle, source, user string) <-chan admitResult {
	ch := make(chan admitResult, 1)
	go func() {
		tk, err := th.admit(ctx, source, user)
		ch <- admitResult{tk, err}
	}()
	return ch
}

func waitAdmit(t *testing.T, ch <-chan admitResult) admitResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("admit did not return")
	}
	return admitResult{}
}

func notYet(t *testing.T, ch <-chan admitResult, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s: admitted early (err %v)", what, r.err)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestDelayDoublesUpToTheCap(t *testing.T) {
	th := newThrottle(Limits{}, clock.NewFake(t0))
	for _, tc := range []struct {
		fails int
		want  time.Duration
	}{{1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {3, 400 * time.Millisecond}, {6, 3200 * time.Millisecond}, {7, 5 * time.Second}, {1000, 5 * time.Second}} {
		if got := th.delay(tc.fails); got != tc.want {
			t.Errorf("delay after %d failures = %v, want %v", tc.fails, got, tc.want)
		}
	}
}

// A failure delays the next check from that address by 100 ms: not at 99
// ms, at 100 ms.
func TestFailureDelaysTheNextCheckFromTheAddress(t *testing.T) {
	clk := clock.NewFake(t0)
	th := newThrottle(Limits{MaxChecks: 2}, clk)
	ctx := context.Background()
	r := waitAdmit(t, admitAsync(ctx, th, "192.0.2.1", "admin"))
	r.tk.done(false)
	armed := clk.TimerArmed()
	next := admitAsync(ctx, th, "192.0.2.1", "admin")
	<-armed
	clk.Advance(99 * time.Millisecond)
	notYet(t, next, "99 ms after the failure")
	clk.Advance(time.Millisecond)
	if r := waitAdmit(t, next); r.err != nil {
		t.Fatal(r.err)
	} else {
		r.tk.done(true)
	}
}

// Logins of an address with one in progress wait for it: a flood from one
// address holds one check slot, and another address is served at once.
func TestOneAddressHoldsOneSlot(t *testing.T) {
	clk := clock.NewFake(t0)
	th := newThrottle(Limits{MaxChecks: 2}, clk)
	ctx := context.Background()
	first := waitAdmit(t, admitAsync(ctx, th, "192.0.2.66", "admin"))
	var waiting []<-chan admitResult
	for range 5 {
		waiting = append(waiting, admitAsync(ctx, th, "192.0.2.66", "admin"))
	}
	for _, w := range waiting {
		notYet(t, w, "a second login from the flooding address")
	}
	other := waitAdmit(t, admitAsync(ctx, th, "198.51.100.7", "admin"))
	if other.err != nil {
		t.Fatalf("another address: %v", other.err)
	}
	other.tk.done(true)
	first.tk.done(true)
	// They are served one at a time (no failure: no delay).
	for range waiting {
		var got admitResult
		select {
		case got = <-waiting[0]:
		case got = <-waiting[1]:
		case got = <-waiting[2]:
		case got = <-waiting[3]:
		case got = <-waiting[4]:
		case <-time.After(5 * time.Second):
			t.Fatal("a waiting login was never served")
		}
		if got.err != nil {
			t.Fatal(got.err)
		}
		got.tk.done(true)
	}
}

// At most MaxChecks run at once; a caller that gives up frees its place.
func TestChecksAreBoundedAndAWaiterCanGiveUp(t *testing.T) {
	clk := clock.NewFake(t0)
	th := newThrottle(Limits{MaxChecks: 2}, clk)
	ctx := context.Background()
	a := waitAdmit(t, admitAsync(ctx, th, "192.0.2.1", "u1"))
	b := waitAdmit(t, admitAsync(ctx, th, "192.0.2.2", "u2"))
	cctx, cancel := context.WithCancel(ctx)
	c := admitAsync(cctx, th, "192.0.2.3", "u3")
	notYet(t, c, "a third check with two running")
	cancel()
	if r := waitAdmit(t, c); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", r.err)
	}
	d := admitAsync(ctx, th, "192.0.2.3", "u3")
	notYet(t, d, "a third check with two running")
	a.tk.done(true)
	if r := waitAdmit(t, d); r.err != nil {
		t.Fatal(r.err)
	} else {
		r.tk.done(true)
	}
	b.tk.done(true)
	th.mu.Lock()
	defer th.mu.Unlock()
	for k, p := range th.sources.m {
		if p.waiting != 0 {
			t.Errorf("source %s still counts %d waiting", k, p.waiting)
		}
	}
}

// Beyond MaxWaiting logins from one address, more are refused unchecked
// after the address's delay.
func TestTooManyWaitingFromOneAddress(t *testing.T) {
	clk := clock.NewFake(t0)
	th := newThrottle(Limits{MaxChecks: 2, MaxWaiting: 2}, clk)
	ctx := context.Background()
	first := waitAdmit(t, admitAsync(ctx, th, "192.0.2.66", "admin"))
	second := admitAsync(ctx, th, "192.0.2.66", "admin")
	notYet(t, second, "second login")
	armed := clk.TimerArmed()
	third := admitAsync(ctx, th, "192.0.2.66", "admin")
	<-armed
	notYet(t, third, "the refusal before the delay")
	clk.Advance(100 * time.Millisecond)
	if r := waitAdmit(t, third); !errors.Is(r.err, ErrTooManyAttempts) {
		t.Fatalf("third login: %v, want ErrTooManyAttempts", r.err)
	}
	first.tk.done(true)
	r := waitAdmit(t, second)
	r.tk.done(true)
}

// Failures are forgotten after a quiet minute; the tables stay bounded
// whatever the number of addresses and names.
func TestFailuresForgottenAndTablesBounded(t *testing.T) {
	clk := clock.NewFake(t0)
	th := newThrottle(Limits{MaxChecks: 2, MaxTracked: 3}, clk)
	ctx := context.Background()
	for i := range 10 {
		clk.Advance(5 * time.Second) // past any delay, well within the quiet minute
		src := "192.0.2." + string(rune('a'+i))
		r := waitAdmit(t, admitAsync(ctx, th, src, "user-"+src))
		r.tk.done(false)
	}
	th.mu.Lock()
	ns, nu := len(th.sources.m), len(th.users.m)
	th.mu.Unlock()
	if ns > 3 || nu > 3 {
		t.Fatalf("tables hold %d addresses and %d users, bound 3", ns, nu)
	}
	clk.Advance(time.Minute + time.Second)
	// 192.0.2.j failed a minute ago: no delay any more.
	if r := waitAdmit(t, admitAsync(ctx, th, "192.0.2.j", "user-192.0.2.j")); r.err != nil {
		t.Fatal(r.err)
	} else {
		r.tk.done(true)
	}
}

// From an address that failed, logins for a user who failed (from anywhere)
// also wait for the user's delay; a success clears the user's.
func TestUserDelayFromFailingAddresses(t *testing.T) {
	clk := clock.NewFake(t0)
	th := newThrottle(Limits{MaxChecks: 2}, clk)
	ctx := context.Background()
	// The address fails once for another user; admin fails three times
	// from other addresses.
	r := waitAdmit(t, admitAsync(ctx, th, "192.0.2.66", "nobody"))
	r.tk.done(false)
	for _, src := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3"} {
		r := waitAdmit(t, admitAsync(ctx, th, src, "admin"))
		r.tk.done(false)
	}
	clk.Advance(100 * time.Millisecond) // the address's delay is over
	armed := clk.TimerArmed()
	w := admitAsync(ctx, th, "192.0.2.66", "admin")
	<-armed
	clk.Advance(299 * time.Millisecond) // admin's delay is 400 ms
	notYet(t, w, "admin's delay")
	clk.Advance(time.Millisecond)
	r = waitAdmit(t, w)
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.tk.done(true)
	th.mu.Lock()
	fails := th.users.m["admin"].fails
	th.mu.Unlock()
	if fails != 0 {
		t.Fatalf("admin's failures after a success: %d", fails)
	}
}

type recordedAudit struct {
	mu  sync.Mutex
	evs []audit.Event
}

func (r *recordedAudit) Coalesce(key string, ev audit.Event) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
	return true
}

// A password verified before is recognised at once even while its address
// is delayed by failures; refused logins are audited without the password.
func TestVerifiedPasswordSkipsTheDelay(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(t0)
	rec := &recordedAudit{}
	u, err := Open(Config{File: filepath.Join(dir, "users.json"), StateDir: dir, AdminPassword: "s3cret", Logger: quiet(), Clock: clk, Audit: rec})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	at := func(pw string) Attempt {
		return Attempt{User: "admin", Password: pw, Source: "192.0.2.66:4242", Protocol: "gnmi"}
	}
	if _, err := u.Login(ctx, at("s3cret")); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Login(ctx, at("guess-one")); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	// The address must now wait 100 ms for a check; the verified password
	// does not.
	done := make(chan error, 1)
	go func() { _, err := u.Login(ctx, at("s3cret")); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the verified password waited for the delay")
	}
	// A wrong one waits, and gives up with its context.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := u.Login(cctx, at("guess-two")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wrong password while delayed: %v", err)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.evs) != 1 {
		t.Fatalf("audit records: %+v, want the one refused login", rec.evs)
	}
	ev := rec.evs[0]
	b, _ := json.Marshal(ev)
	if ev.Type != "system.login" || ev.Permitted || ev.User != "admin" || ev.Detail["source"] != "192.0.2.66" || ev.Detail["protocol"] != "gnmi" || strings.Contains(string(b), "guess") {
		t.Fatalf("audit record %s", b)
	}
}
