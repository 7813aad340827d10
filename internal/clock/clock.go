// Package clock lets code ask for the time and for timers through an
// interface, so tests can drive expiry, polling and timeouts with a fake
// clock instead of sleeping.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock is the source of time for everything that schedules or compares
// against "now". It is safe for concurrent use.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that sends the time on C after d.
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f in its own goroutine after d.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is the subset of *time.Timer that both clocks provide.
type Timer interface {
	// C is nil for timers made by AfterFunc.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was active.
	Stop() bool
	// Reset re-arms the timer to fire after d; it reports whether it was active.
	Reset(d time.Duration) bool
}

// Real is the wall clock.
type Real struct{}

func (Real) Now() time.Time { return time.Now() }

func (Real) NewTimer(d time.Duration) Timer { return realTimer{t: time.NewTimer(d)} }

func (Real) AfterFunc(d time.Duration, f func()) Timer { return realTimer{t: time.AfterFunc(d, f)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

// Fake is a manually advanced clock for tests. Timers fire, in deadline
// order, only when Advance or Set moves the time past their deadline.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	waiters []chan struct{}
}

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *Fake) NewTimer(d time.Duration) Timer {
	return f.add(&fakeTimer{clock: f, ch: make(chan time.Time, 1)}, d)
}

func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	return f.add(&fakeTimer{clock: f, fn: fn}, d)
}

func (f *Fake) add(t *fakeTimer, d time.Duration) *fakeTimer {
	f.mu.Lock()
	t.deadline = f.now.Add(d)
	t.active = true
	f.timers = append(f.timers, t)
	waiters := f.waiters
	f.waiters = nil
	f.mu.Unlock()
	for _, w := range waiters {
		close(w)
	}
	if d <= 0 {
		f.Advance(0)
	}
	return t
}

// Advance moves the clock forward by d, firing every timer that falls due.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	now := f.now
	var due []*fakeTimer
	kept := f.timers[:0]
	for _, t := range f.timers {
		if t.active && !t.deadline.After(now) {
			t.active = false
			due = append(due, t)
		} else if t.active {
			kept = append(kept, t)
		}
	}
	f.timers = kept
	// Sorted under the lock: a timer fired here may be Reset (its deadline
	// written) by its owner as soon as the lock is released.
	sort.SliceStable(due, func(i, j int) bool { return due[i].deadline.Before(due[j].deadline) })
	f.mu.Unlock()
	for _, t := range due {
		t.fire(now)
	}
}

// Set moves the clock to t (never backwards), firing due timers.
func (f *Fake) Set(t time.Time) {
	if d := t.Sub(f.Now()); d > 0 {
		f.Advance(d)
	}
}

// PendingTimers reports how many timers are armed.
func (f *Fake) PendingTimers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// TimerArmed returns a channel closed the next time any timer is armed, so a
// test can wait for a background loop to reach its sleep before advancing.
func (f *Fake) TimerArmed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := make(chan struct{})
	f.waiters = append(f.waiters, c)
	return c
}

type fakeTimer struct {
	clock    *Fake
	deadline time.Time
	active   bool
	ch       chan time.Time
	fn       func()
}

func (t *fakeTimer) fire(now time.Time) {
	if t.fn != nil {
		go t.fn()
		return
	}
	select {
	case t.ch <- now:
	default:
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	f := t.clock
	f.mu.Lock()
	defer f.mu.Unlock()
	was := t.active
	t.active = false
	for i, x := range f.timers {
		if x == t {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			break
		}
	}
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	was := t.Stop()
	t.clock.add(t, d)
	return was
}
