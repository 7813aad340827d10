package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/pkiagent/pkiagent/internal/clock"
)

// ErrTooManyAttempts: a source address has too many logins waiting for
// their password check; the attempt was refused without checking it.
var ErrTooManyAttempts = errors.New("too many login attempts from this address at once; try again in a few seconds")

// Limits bound what password guessing can make the agent spend. Zero fields
// take the values of DefaultLimits.
type Limits struct {
	// MaxChecks bounds the password checks running at once. An argon2id
	// check holds its memory parameter (19 MiB for the hashes the agent
	// makes) for its whole run, so this bounds the memory of a login
	// flood too.
	MaxChecks int
	// MinDelay and MaxDelay shape the delay after a failure: the next
	// check for the same source address (and, from an address that
	// failed, for the same user) waits MinDelay after the first failure,
	// twice as long after each further one, at most MaxDelay.
	MinDelay, MaxDelay time.Duration
	// Quiet is how long a source or user must stay without failures for
	// its delay to be forgotten.
	Quiet time.Duration
	// MaxWaiting bounds the logins of one source address waiting for
	// their check; more are refused (ErrTooManyAttempts) after the
	// source's delay, without a check.
	MaxWaiting int
	// MaxTracked bounds the source addresses and the user names whose
	// failures are remembered (each); beyond it, failures of new ones
	// share one entry, so many addresses or names cannot grow memory.
	MaxTracked int
}

// DefaultLimits: a check slot per core (2 to 4), 100 ms doubling to 5 s,
// forgotten after a quiet minute.
var DefaultLimits = Limits{
	MaxChecks:  min(max(runtime.NumCPU(), 2), 4),
	MinDelay:   100 * time.Millisecond,
	MaxDelay:   5 * time.Second,
	Quiet:      time.Minute,
	MaxWaiting: 32,
	MaxTracked: 4096,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxChecks > 0 {
		d.MaxChecks = l.MaxChecks
	}
	if l.MinDelay > 0 {
		d.MinDelay = l.MinDelay
	}
	if l.MaxDelay > 0 {
		d.MaxDelay = l.MaxDelay
	}
	if l.Quiet > 0 {
		d.Quiet = l.Quiet
	}
	if l.MaxWaiting > 0 {
		d.MaxWaiting = l.MaxWaiting
	}
	if l.MaxTracked > 0 {
		d.MaxTracked = l.MaxTracked
	}
	return d
}

// throttle orders the password checks of logins (see Users.Login):
//
//   - at most MaxChecks run at once (slots);
//   - a source address is served one login at a time, each waiting
//     until the delay after its last failure has passed (so concurrent guessing from one address
//     gets one guess per delay, not one per connection, and holds at most
//     one check slot);
//   - from such an address, logins for a user who failed recently are
//     also served one at a time after that user's delay, so guessing one
//     user's password from many addresses is slowed too;
//   - so an address holds at most one check slot, and an administrator
//     on an address with no recent failure waits only for a free slot:
//     he logs in at once during a flood from elsewhere.
//
// Delays are forgotten after Quiet without failures; a success clears the
// user's (not the address's: a valid account must not reset the delay of
// the guesses made beside it).
type throttle struct {
	lim   Limits
	clk   clock.Clock
	slots chan struct{}

	mu      sync.Mutex
	sources penalties
	users   penalties
}

// penalty is what is remembered of one source address or user.
type penalty struct {
	fails int
	until time.Time // no check before
	last  time.Time // of the last failure
	// turn is held by the one login of a penalised key that is being
	// served.
	turn chan struct{}
	// waiting counts the logins holding or waiting for turn or a slot.
	waiting int
}

type penalties struct {
	m        map[string]*penalty
	overflow *penalty
}

func newThrottle(lim Limits, clk clock.Clock) *throttle {
	lim = lim.withDefaults()
	return &throttle{
		lim: lim, clk: clk, slots: make(chan struct{}, lim.MaxChecks),
		sources: penalties{m: map[string]*penalty{}, overflow: &penalty{turn: make(chan struct{}, 1)}},
		users:   penalties{m: map[string]*penalty{}, overflow: &penalty{turn: make(chan struct{}, 1)}},
	}
}

// get returns the entry of key, making one when there is room (else the
// shared overflow entry). It forgets failures older than Quiet. t.mu is
// held.
func (t *throttle) get(ps *penalties, key string, now time.Time) *penalty {
	p := ps.m[key]
	if p == nil {
		if len(ps.m) >= t.lim.MaxTracked {
			t.sweep(ps, now)
		}
		if len(ps.m) >= t.lim.MaxTracked {
			p = ps.overflow
		} else {
			p = &penalty{turn: make(chan struct{}, 1)}
			ps.m[key] = p
		}
	}
	if p.fails > 0 && now.Sub(p.last) > t.lim.Quiet {
		p.fails, p.until = 0, time.Time{}
	}
	return p
}

// sweep drops the entries nobody waits on whose failures are forgotten.
func (t *throttle) sweep(ps *penalties, now time.Time) {
	for k, p := range ps.m {
		if p.waiting == 0 && (p.fails == 0 || now.Sub(p.last) > t.lim.Quiet) {
			delete(ps.m, k)
		}
	}
}

func (t *throttle) delay(fails int) time.Duration {
	d := t.lim.MinDelay
	for i := 1; i < fails && d < t.lim.MaxDelay; i++ {
		d *= 2
	}
	return min(d, t.lim.MaxDelay)
}

// ticket is one login admitted to a check slot; done must be called with
// the verdict.
type ticket struct {
	t        *throttle
	src, usr *penalty
	user     string
	// srcHeld and usrHeld: the turns of src and usr (nil unless the user's
	// line applies) are held.
	srcHeld  bool
	usrHeld  bool
	slot     bool
	released bool
}

// admit waits for the turn of the login of user from source and a check
// slot. It fails when ctx ends, or with ErrTooManyAttempts after the
// source's delay when the source has MaxWaiting logins waiting already.
func (t *throttle) admit(ctx context.Context, source, user string) (*ticket, error) {
	now := t.clk.Now()
	t.mu.Lock()
	src := t.get(&t.sources, source, now)
	if src.waiting >= t.lim.MaxWaiting {
		d := t.delay(max(src.fails, 1))
		t.mu.Unlock()
		if err := t.sleep(ctx, d); err != nil {
			return nil, err
		}
		return nil, ErrTooManyAttempts
	}
	tk := &ticket{t: t, src: src, user: user}
	// One login at a time from an address (so an address holds at most
	// one check slot); from one that failed, one at a time for a user
	// who failed too.
	src.waiting++
	if src.fails > 0 {
		if u := t.get(&t.users, user, now); u.fails > 0 {
			tk.usr = u
			u.waiting++
		}
	}
	t.mu.Unlock()

	fail := func(err error) (*ticket, error) {
		tk.release()
		return nil, err
	}
	if err := t.take(ctx, src); err != nil {
		return fail(err)
	}
	tk.srcHeld = true
	if tk.usr != nil {
		if err := t.take(ctx, tk.usr); err != nil {
			return fail(err)
		}
		tk.usrHeld = true
	}
	select {
	case t.slots <- struct{}{}:
		tk.slot = true
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	return tk, nil
}

// take acquires p's turn and waits until its delay has passed.
func (t *throttle) take(ctx context.Context, p *penalty) error {
	select {
	case p.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	t.mu.Lock()
	wait := p.until.Sub(t.clk.Now())
	t.mu.Unlock()
	if err := t.sleep(ctx, wait); err != nil {
		<-p.turn
		return err
	}
	return nil
}

func (t *throttle) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	tm := t.clk.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// done records the verdict of the check and frees the slot and turns.
func (tk *ticket) done(ok bool) {
	t := tk.t
	now := t.clk.Now()
	t.mu.Lock()
	u := t.get(&t.users, tk.user, now)
	if ok {
		u.fails, u.until = 0, time.Time{}
	} else {
		for _, p := range []*penalty{tk.src, u} {
			p.fails++
			p.last = now
			p.until = now.Add(t.delay(p.fails))
		}
	}
	t.mu.Unlock()
	tk.release()
}

// release gives back what the ticket holds.
func (tk *ticket) release() {
	if tk.released {
		return
	}
	tk.released = true
	t := tk.t
	if tk.slot {
		<-t.slots
	}
	if tk.usrHeld {
		<-tk.usr.turn
	}
	if tk.srcHeld {
		<-tk.src.turn
	}
	t.mu.Lock()
	tk.src.waiting--
	if tk.usr != nil {
		tk.usr.waiting--
	}
	t.mu.Unlock()
}

// sourceOf is the address part of a client address (host:port).
func sourceOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// waitError says why a login gave up waiting.
func waitError(user, source string, err error) error {
	return fmt.Errorf("login of user %q from %s: gave up waiting for a password check: %w", clip(user), source, err)
}
