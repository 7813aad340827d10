package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
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
	// MinDelay and MaxDelay shape the delay of the answer to a failed
	// check: MinDelay after the first failure of its source address or
	// of its user, twice as long after each further one, at most
	// MaxDelay (the longer of the address's and the user's applies).
	MinDelay, MaxDelay time.Duration
	// MaxBusyDelay caps the delay that keeps the guesses of one address
	// to a quarter of the check capacity (see throttle).
	MaxBusyDelay time.Duration
	// Quiet is how long a source or user must stay without failures for
	// its delay to be forgotten.
	Quiet time.Duration
	// MaxWaiting bounds the logins of one source address waiting for
	// or holding a check slot; more are refused (ErrTooManyAttempts)
	// after the source's delay, without a check. A waiter costs a
	// goroutine and a connection (no argon2 memory), so the bound is high
	// enough for a hundred clients and an administrator behind one
	// address (a jump host, NAT) and only stops an address from queueing
	// without end.
	MaxWaiting int
	// MaxTracked bounds the source addresses and the user names whose
	// failures are remembered (each); beyond it, failures of new ones
	// share one entry, so many addresses or names cannot grow memory.
	MaxTracked int
}

// DefaultLimits: a check slot per core (2 to 4), 100 ms doubling to 5 s,
// forgotten after a quiet minute, 256 logins waiting per address, the
// delay that keeps an address to a quarter of the checks capped at 30 s.
var DefaultLimits = Limits{
	MaxChecks:    min(max(runtime.NumCPU(), 2), 4),
	MinDelay:     100 * time.Millisecond,
	MaxDelay:     5 * time.Second,
	MaxBusyDelay: 30 * time.Second,
	Quiet:        time.Minute,
	MaxWaiting:   256,
	MaxTracked:   4096,
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
	if l.MaxBusyDelay > 0 {
		d.MaxBusyDelay = l.MaxBusyDelay
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
//   - at most MaxChecks run at once (slots). A free slot goes to the
//     addresses with logins waiting in turn (round robin), and within an
//     address to its newest login: an administrator on another address
//     than a flood waits for one check at most per address ahead of his,
//     and one behind the same address (a jump host, NAT) is served before
//     the guesses queued there before him (which the delays below keep
//     few, and which a quiet spell drains);
//   - a failed check is answered only after a delay (Ticket.done returns
//     it): 100 ms after the first failure of its source address or its
//     user, twice as long after each further one, at most MaxDelay. The
//     failing client waits holding no slot (no argon2 memory), so a
//     connection that waits for its answer guesses at most once per
//     delay, and nobody else waits for it;
//   - that delay is also at least long enough for the address's logins in
//     progress (waiting, checked or delayed) to take at most a quarter of the
//     check capacity at the recent check duration, up to MaxBusyDelay:
//     however many connections guess from one address, its guesses keep
//     the queue short, so a login from that address (an administrator
//     behind the same jump host or NAT) gets its check within a few
//     check durations;
//   - at most MaxWaiting logins of one address wait for or hold a slot;
//     more are refused unchecked (after the address's delay).
//
// Delays are forgotten after Quiet without failures; a success clears the
// user's (not the address's: a valid account must not reset the delay of
// the guesses made beside it).
type throttle struct {
	lim Limits
	clk clock.Clock
	// free counts the idle check slots; ring holds the sources with
	// logins waiting (each once), next served first.
	free int
	ring []*penalty

	mu      sync.Mutex
	sources penalties
	users   penalties
	// checkTime is the recent duration of a check (a moving average).
	checkTime time.Duration
}

// penalty is what is remembered of one source address or user.
type penalty struct {
	fails int
	last  time.Time // of the last failure
	// waiting counts the logins waiting for or holding a slot, delayed
	// those whose refusal is being delayed.
	waiting, delayed int
	// queue holds the logins waiting for a slot, oldest first.
	queue []chan struct{}
}

type penalties struct {
	m        map[string]*penalty
	overflow *penalty
}

func newThrottle(lim Limits, clk clock.Clock) *throttle {
	lim = lim.withDefaults()
	return &throttle{
		lim: lim, clk: clk, free: lim.MaxChecks,
		sources: penalties{m: map[string]*penalty{}, overflow: &penalty{}},
		users:   penalties{m: map[string]*penalty{}, overflow: &penalty{}},
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
			p = &penalty{}
			ps.m[key] = p
		}
	}
	if p.fails > 0 && now.Sub(p.last) > t.lim.Quiet {
		p.fails = 0
	}
	return p
}

// sweep drops the entries nobody waits on whose failures are forgotten.
func (t *throttle) sweep(ps *penalties, now time.Time) {
	for k, p := range ps.m {
		if p.waiting == 0 && p.delayed == 0 && (p.fails == 0 || now.Sub(p.last) > t.lim.Quiet) {
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
	src      *penalty
	user     string
	start    time.Time // of the check
	released bool
}

// admit waits for a check slot for the login of user from source (see
// throttle for the order). It fails when ctx ends, or with ErrTooManyAttempts after
// the source's delay when the source has MaxWaiting logins waiting
// already.
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
	src.waiting++
	tk := &ticket{t: t, src: src, user: user}
	if t.free > 0 && len(t.ring) == 0 {
		t.free--
		t.mu.Unlock()
		tk.start = t.clk.Now()
		return tk, nil
	}
	granted := make(chan struct{}, 1)
	src.queue = append(src.queue, granted)
	if len(src.queue) == 1 {
		t.ring = append(t.ring, src)
	}
	t.mu.Unlock()
	select {
	case <-granted:
		tk.start = t.clk.Now()
		return tk, nil
	case <-ctx.Done():
	}
	t.mu.Lock()
	i := slices.Index(src.queue, granted)
	if i >= 0 {
		src.queue = slices.Delete(src.queue, i, i+1)
		if len(src.queue) == 0 {
			t.ring = slices.DeleteFunc(t.ring, func(p *penalty) bool { return p == src })
		}
	}
	t.mu.Unlock()
	// Granted meanwhile (i < 0): the slot is passed on.
	tk.release(i < 0)
	return nil, ctx.Err()
}

// freeSlot gives a slot to the next source in the ring (its newest
// login), or back to the idle ones.
func (t *throttle) freeSlot() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.ring) == 0 {
		t.free++
		return
	}
	src := t.ring[0]
	t.ring = slices.Delete(t.ring, 0, 1)
	n := len(src.queue) - 1
	granted := src.queue[n]
	src.queue = slices.Delete(src.queue, n, n+1)
	if len(src.queue) > 0 {
		t.ring = append(t.ring, src)
	}
	granted <- struct{}{}
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

// done records the verdict of the check, frees the slot and returns how
// long the answer of a failure must wait (0 after a success): the delay of
// the source or of the user, whichever is longer, and at least the busy
// delay of the source (see throttle).
func (tk *ticket) done(ok bool) time.Duration {
	t := tk.t
	now := t.clk.Now()
	t.mu.Lock()
	if took := now.Sub(tk.start); t.checkTime == 0 {
		t.checkTime = took
	} else {
		t.checkTime += (took - t.checkTime) / 8
	}
	u := t.get(&t.users, tk.user, now)
	var d time.Duration
	if ok {
		u.fails = 0
	} else {
		for _, p := range []*penalty{tk.src, u} {
			p.fails++
			p.last = now
			d = max(d, t.delay(p.fails))
		}
		// At one guess per d for each of n logins in progress, the
		// address takes n*checkTime/d of the time of the slots: at
		// most a quarter.
		n := time.Duration(tk.src.waiting + tk.src.delayed)
		busy := min(n*t.checkTime*4/time.Duration(t.lim.MaxChecks), t.lim.MaxBusyDelay)
		d = max(d, busy)
	}
	t.mu.Unlock()
	tk.release(true)
	return d
}

// delayAnswer waits d (or until ctx ends) before the refusal of tk's
// login is answered, counting it among its source's logins in progress.
func (t *throttle) delayAnswer(ctx context.Context, tk *ticket, d time.Duration) {
	t.mu.Lock()
	tk.src.delayed++
	t.mu.Unlock()
	_ = t.sleep(ctx, d)
	t.mu.Lock()
	tk.src.delayed--
	t.mu.Unlock()
}

// release gives back the slot (when held) and the place in the source's
// count.
func (tk *ticket) release(slot bool) {
	if tk.released {
		return
	}
	tk.released = true
	t := tk.t
	if slot {
		t.freeSlot()
	}
	t.mu.Lock()
	tk.src.waiting--
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
