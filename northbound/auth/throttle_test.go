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

// A failure delays its own answer (100 ms, then 200 ms), not the next
// check from that address: a fresh login from it is checked at once.
func TestFailureDelaysItsAnswerNotTheNextCheck(t *testing.T) {
	clk := clock.NewFake(t0)
	th := newThrottle(Limits{MaxChecks: 2}, clk)
	ctx := context.Background()
	r := waitAdmit(t, admitAsync(ctx, th, "192.0.2.1", "admin"))
	if d := r.tk.done(false); d != 100*time.Millisecond {
		t.Fatalf("answer delay after the first failure: %v, want 100ms", d)
	}
	// No time passes: the next login from the address is checked at once.
	r = waitAdmit(t, admitAsync(ctx, th, "192.0.2.1", "admin"))
	if r.err != nil {
		t.Fatal(r.err)
	}
	if d := r.tk.done(false); d != 200*time.Millisecond {
		t.Fatalf("answer delay after the second failure: %v, want 200ms", d)
	}
	r = waitAdmit(t, admitAsync(ctx, th, "192.0.2.1", "admin"))
	if d := r.tk.done(true); d != 0 {
		t.Fatalf("answer delay of a success: %v, want none", d)
	}
}

// However many logins one address has in progress, the answer to its
// failures waits long enough for them to take at most a quarter of the
// checks: with 3 in progress, 2 slots and checks of 100 ms, 600 ms (more
// than the 100 ms of a first failure).
func TestBusyAddressDelayedToAQuarterOfTheChecks(t *testing.T) {
	clk := clock.NewFake(t0)
	th := newThrottle(Limits{MaxChecks: 2}, clk)
	ctx := context.Background()
	a := waitAdmit(t, admitAsync(ctx, th, "192.0.2.66", "admin"))
	b := waitAdmit(t, admitAsync(ctx, th, "192.0.2.66", "admin"))
	c := admitAsync(ctx, th, "192.0.2.66", "admin")
	notYet(t, c, "a third check with two running")
	clk.Advance(100 * time.Millisecond)
	if d := a.tk.done(false); d != 600*time.Millisecond {
		t.Fatalf("answer delay with 3 logins in progress: %v, want 600ms", d)
	}
	b.tk.done(true)
	waitAdmit(t, c).tk.done(true)
	// Alone again, the address's failure waits the usual delay (its
	// second failure: 200 ms).
	r := waitAdmit(t, admitAsync(ctx, th, "192.0.2.66", "nobody"))
	clk.Advance(100 * time.Millisecond)
	if d := r.tk.done(false); d != 200*time.Millisecond {
		t.Fatalf("answer delay alone: %v, want 200ms", d)
	}
}

// A free slot goes to the addresses with logins waiting in turn, and
// within an address to its newest login: a login from another address
// waits for one check of the flooding address at most, and one from the
// flooding address for none of the guesses queued before it.
func TestSlotsRoundRobinNewestFirst(t *testing.T) {
	clk := clock.NewFake(t0)
	th := newThrottle(Limits{MaxChecks: 1}, clk)
	ctx := context.Background()
	first := waitAdmit(t, admitAsync(ctx, th, "192.0.2.66", "admin"))
	var queued []<-chan admitResult
	for i := range 4 {
		src := "192.0.2.66"
		if i == 3 {
			src = "198.51.100.7"
		}
		queued = append(queued, admitAsync(ctx, th, src, "admin"))
		notYet(t, queued[i], "a login with the one slot taken")
	}
	first.tk.done(false)
	// The flooding address's newest, the other address, then the rest of
	// the flooding address newest first.
	for _, i := range []int{2, 3, 1, 0} {
		r := waitAdmit(t, queued[i])
		if r.err != nil {
			t.Fatal(r.err)
		}
		for j, q := range queued {
			select {
			case <-q:
				t.Fatalf("login %d served while login %d held the slot", j, i)
			default:
			}
		}
		r.tk.done(false)
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
	th := newThrottle(Limits{MaxChecks: 1, MaxWaiting: 2}, clk)
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
	// 192.0.2.j failed a minute ago: it starts again at 100 ms.
	if r := waitAdmit(t, admitAsync(ctx, th, "192.0.2.j", "user-192.0.2.j")); r.err != nil {
		t.Fatal(r.err)
	} else if d := r.tk.done(false); d != 100*time.Millisecond {
		t.Fatalf("answer delay a quiet minute after a failure: %v, want 100ms", d)
	}
}

// The answer to a failure waits for the longer of the address's and the
// user's delay: guessing one user's password from many addresses is slowed
// too. A success clears the user's.
func TestUserDelayFromManyAddresses(t *testing.T) {
	clk := clock.NewFake(t0)
	th := newThrottle(Limits{MaxChecks: 2}, clk)
	ctx := context.Background()
	for _, src := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3"} {
		r := waitAdmit(t, admitAsync(ctx, th, src, "admin"))
		r.tk.done(false)
	}
	r := waitAdmit(t, admitAsync(ctx, th, "192.0.2.66", "admin"))
	if d := r.tk.done(false); d != 800*time.Millisecond {
		t.Fatalf("answer delay of admin's fourth failure from a new address: %v, want 800ms", d)
	}
	r = waitAdmit(t, admitAsync(ctx, th, "192.0.2.77", "admin"))
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

// On a fresh agent (nothing verified yet), the right password from an
// address whose guesses are being delayed is checked and accepted at once;
// the wrong ones are answered after their delay, and audited without the
// password.
func TestLoginFromADelayedAddress(t *testing.T) {
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
	// A guess: checked, then answered 100 ms later (not at 99 ms).
	armed := clk.TimerArmed()
	failed := make(chan struct{})
	guess := at("guess-one")
	guess.Failed = func() { close(failed) }
	guessed := make(chan error, 1)
	go func() { _, err := u.Login(ctx, guess); guessed <- err }()
	<-armed
	select {
	case <-failed:
	default:
		t.Fatal("Failed not called before the answer's delay")
	}
	clk.Advance(99 * time.Millisecond)
	select {
	case err := <-guessed:
		t.Fatalf("the guess was answered before its delay: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	// Meanwhile the admin logs in from the same address, no time passing.
	done := make(chan error, 1)
	go func() { _, err := u.Login(ctx, at("s3cret")); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the admin's login waited for the guesses' delay")
	}
	clk.Advance(time.Millisecond)
	select {
	case err := <-guessed:
		if !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the guess was never answered")
	}
	// A guess whose client gives up while its answer is delayed is still
	// refused.
	cctx, cancel := context.WithCancel(ctx)
	armed = clk.TimerArmed()
	go func() { <-armed; cancel() }()
	if _, err := u.Login(cctx, at("guess-two")); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong password given up while delayed: %v", err)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.evs) != 2 {
		t.Fatalf("audit records: %+v, want the two refused logins", rec.evs)
	}
	for _, ev := range rec.evs {
		b, _ := json.Marshal(ev)
		if ev.Type != "system.login" || ev.Permitted || ev.User != "admin" || ev.Detail["source"] != "192.0.2.66" || ev.Detail["protocol"] != "gnmi" || strings.Contains(string(b), "guess") {
			t.Fatalf("audit record %s", b)
		}
	}
}
