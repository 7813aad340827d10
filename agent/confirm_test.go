package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/telemetry"

	"github.com/google/go-cmp/cmp"

	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/clock"
)

// switchDisk is a Persister whose disk can fill up; it keeps the pending
// rollback point as DiskPersister does, in memory.
type switchDisk struct {
	full    atomic.Bool
	mu      sync.Mutex
	pending *PendingCommit
}

func (d *switchDisk) Save(context.Context, *Record) error {
	if d.full.Load() {
		return fmt.Errorf("write running.journal: %w", syscall.ENOSPC)
	}
	return nil
}

func (d *switchDisk) SavePending(p PendingCommit, _ *gen.Device) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pending = &p
	return nil
}

func (d *switchDisk) ClearPending() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pending = nil
	return nil
}

// confirmRig is a store with a validator that can be told to fail, a disk
// that can fill up, a fake clock and a subscriber.
type confirmRig struct {
	t    *testing.T
	s    *Store
	fc   *clock.Fake
	val  *recorder
	disk *switchDisk
	sub  *telemetry.Subscription
	urls []string // committed by the rig, in order
}

func newConfirmRig(t *testing.T) *confirmRig {
	fc := clock.NewFake(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
	r := &confirmRig{t: t, fc: fc, val: &recorder{}, disk: &switchDisk{}}
	bus := telemetry.NewBus()
	r.sub = bus.Subscribe(1000)
	r.s = New(Config{Clock: fc, Validators: []api.Validator{r.val}, Persister: r.disk, Bus: bus})
	t.Cleanup(r.s.Close)
	return r
}

func (r *confirmRig) next() string {
	url := fmt.Sprintf("http://x/%d.crl", len(r.urls))
	r.urls = append(r.urls, url)
	return url
}

func (r *confirmRig) has(url string) bool {
	return r.s.Running().GetAuthority().GetCertificateRevocationList(url) != nil
}

// netconf edits the candidate as owner and commits it with persistID and,
// when timeout > 0, as a confirmed commit with persist.
func (r *confirmRig) netconf(owner, persistID string, timeout time.Duration, persist string) error {
	r.t.Helper()
	if err := r.s.EditCandidate(api.Owner{Name: owner}, addCRL(r.t, r.next(), 1)); err != nil {
		r.t.Fatal(err)
	}
	opts := CommitOptions{User: "u-" + owner, Owner: api.Owner{Name: owner}, PersistID: persistID}
	if timeout > 0 {
		opts.Confirm = &ConfirmOptions{Timeout: timeout, Persist: persist}
	}
	_, err := r.s.CommitCandidate(context.Background(), opts)
	return err
}

// gnmi commits straight to running as a gNMI Set does, confirmed with id
// as its persist token when id is set.
func (r *confirmRig) gnmi(owner, id string, timeout time.Duration) error {
	r.t.Helper()
	tx := r.s.Begin(Running)
	if err := tx.Apply(addCRL(r.t, r.next(), 1)); err != nil {
		r.t.Fatal(err)
	}
	opts := CommitOptions{User: "u-" + owner, Owner: api.Owner{Name: owner}}
	if id != "" {
		opts.Confirm = &ConfirmOptions{Timeout: timeout, Persist: id}
	}
	_, err := r.s.Commit(context.Background(), tx, opts)
	return err
}

// outcomes drains the bus and returns the confirmed-commit transitions.
func (r *confirmRig) outcomes() []string {
	var out []string
	for len(r.sub.C) > 0 {
		if ev := <-r.sub.C; ev.Kind == api.EventConfirm {
			out = append(out, ev.Confirm.Outcome.String())
		}
	}
	return out
}

// waitOutcome waits for a transition made by the store's timer.
func (r *confirmRig) waitOutcome(want string) {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var seen []string
	for time.Now().Before(deadline) {
		select {
		case ev := <-r.sub.C:
			if ev.Kind == api.EventConfirm {
				if ev.Confirm.Outcome.String() == want {
					return
				}
				seen = append(seen, ev.Confirm.Outcome.String())
			}
		case <-time.After(10 * time.Millisecond):
		}
	}
	r.t.Fatalf("no %s within 5 s; saw %v", want, seen)
}

func (r *confirmRig) noOutcomeFor(d time.Duration) {
	r.t.Helper()
	time.Sleep(d)
	if got := r.outcomes(); len(got) > 0 {
		r.t.Fatalf("unexpected transitions %v", got)
	}
}

// TestConfirmedCommitMachine drives each transition of the confirmed-commit
// machine the way NETCONF and gNMI do, and each refusal and failure, which
// must leave the pending commit (and its timer) as it was.
func TestConfirmedCommitMachine(t *testing.T) {
	const minute = time.Minute
	ctx := context.Background()
	startPlain := func(r *confirmRig) { // NETCONF <commit><confirmed/> by s1
		if err := r.netconf("s1", "", minute, ""); err != nil {
			r.t.Fatal(err)
		}
	}
	startPersist := func(r *confirmRig) { // ... with <persist>p1</persist>
		if err := r.netconf("s1", "", minute, "p1"); err != nil {
			r.t.Fatal(err)
		}
	}
	startGNMI := func(r *confirmRig) { // gNMI Set with Commit{id: g1}
		if err := r.gnmi("g-a", "g1", minute); err != nil {
			r.t.Fatal(err)
		}
	}
	failValidation := func(r *confirmRig) { r.val.failValid = errors.New("semantic check refused it") }
	for _, tc := range []struct {
		desc  string
		setup func(r *confirmRig)
		act   func(r *confirmRig) error
		// wantErr: the act fails with this kind, and the pending commit
		// is left exactly as it was (then it still times out on time).
		wantErr  error
		want     []string // transitions the act published
		pending  bool     // a commit is pending after the act
		rollback bool     // running is back to before the first confirmed commit
		after    func(r *confirmRig)
	}{{
		desc:    "confirmed commit starts",
		act:     func(r *confirmRig) error { return r.netconf("s1", "", minute, "") },
		want:    []string{"start"},
		pending: true,
	}, {
		desc:  "follow-up confirmed commit by its owner extends and keeps the rollback point",
		setup: startPlain,
		act: func(r *confirmRig) error {
			r.fc.Advance(30 * time.Second)
			return r.netconf("s1", "", 2*minute, "")
		},
		want:    []string{"extend"},
		pending: true,
		after: func(r *confirmRig) {
			r.fc.Advance(90 * time.Second) // past the first deadline
			r.noOutcomeFor(20 * time.Millisecond)
			r.fc.Advance(30 * time.Second)
			r.waitOutcome("timeout")
			if r.has(r.urls[0]) || r.has(r.urls[1]) {
				r.t.Fatal("the timeout did not roll back to before the first confirmed commit")
			}
		},
	}, {
		desc:    "follow-up by another session is refused",
		setup:   startPlain,
		act:     func(r *confirmRig) error { return r.netconf("s2", "", minute, "") },
		wantErr: ErrPendingCommit,
	}, {
		desc:  "plain commit of its owner confirms",
		setup: startPlain,
		act:   func(r *confirmRig) error { return r.netconf("s1", "", 0, "") },
		want:  []string{"complete"},
		after: func(r *confirmRig) {
			r.fc.Advance(time.Hour)
			r.noOutcomeFor(20 * time.Millisecond)
			if !r.has(r.urls[0]) || !r.has(r.urls[1]) {
				r.t.Fatal("a confirmed commit was rolled back")
			}
		},
	}, {
		desc:    "plain commit of another session is refused",
		setup:   startPlain,
		act:     func(r *confirmRig) error { return r.netconf("s2", "", 0, "") },
		wantErr: ErrPendingCommit,
	}, {
		desc:    "plain commit of its owner that fails validation leaves it pending",
		setup:   func(r *confirmRig) { startPlain(r); failValidation(r) },
		act:     func(r *confirmRig) error { return r.netconf("s1", "", 0, "") },
		wantErr: api.ErrInvalid,
	}, {
		desc:    "commit with its persist-id that fails validation leaves it pending",
		setup:   func(r *confirmRig) { startPersist(r); failValidation(r) },
		act:     func(r *confirmRig) error { return r.netconf("s2", "p1", 0, "") },
		wantErr: api.ErrInvalid,
	}, {
		desc:    "follow-up confirmed commit that fails validation leaves it pending",
		setup:   func(r *confirmRig) { startPlain(r); failValidation(r) },
		act:     func(r *confirmRig) error { return r.netconf("s1", "", 5*minute, "") },
		wantErr: api.ErrInvalid,
	}, {
		desc:    "confirming commit on a full disk leaves it pending",
		setup:   func(r *confirmRig) { startPersist(r); r.disk.full.Store(true) },
		act:     func(r *confirmRig) error { return r.netconf("s2", "p1", 0, "") },
		wantErr: ErrPersist,
		after:   func(r *confirmRig) { r.disk.full.Store(false) },
	}, {
		desc:  "commit with its persist-id confirms from any session",
		setup: startPersist,
		act:   func(r *confirmRig) error { return r.netconf("s2", "p1", 0, "") },
		want:  []string{"complete"},
	}, {
		desc:    "wrong persist-id is refused",
		setup:   startPersist,
		act:     func(r *confirmRig) error { return r.netconf("s2", "nope", 0, "") },
		wantErr: ErrPersistID,
	}, {
		desc:    "a persistent confirmed commit needs its persist-id, even from its owner",
		setup:   startPersist,
		act:     func(r *confirmRig) error { return r.netconf("s1", "", 0, "") },
		wantErr: ErrPersistID,
	}, {
		desc:    "cancel of a persistent confirmed commit needs its persist-id, even from its owner",
		setup:   startPersist,
		act:     func(r *confirmRig) error { return r.s.CancelCommit(ctx, CommitOptions{Owner: api.Owner{Name: "s1"}}) },
		wantErr: ErrPersistID,
	}, {
		desc:    "persist-id with none pending",
		act:     func(r *confirmRig) error { return r.netconf("s1", "p1", 0, "") },
		wantErr: ErrNoPendingCommit,
	}, {
		desc:    "persist-id for a commit without a persist token",
		setup:   startPlain,
		act:     func(r *confirmRig) error { return r.netconf("s1", "p1", 0, "") },
		wantErr: ErrPersistID,
	}, {
		desc:  "timeout rolls back",
		setup: startPlain,
		act: func(r *confirmRig) error {
			r.fc.Advance(59 * time.Second)
			r.noOutcomeFor(20 * time.Millisecond)
			return nil
		},
		pending: true,
		after: func(r *confirmRig) {
			r.fc.Advance(time.Second)
			r.waitOutcome("timeout")
			if r.has(r.urls[0]) {
				r.t.Fatal("not rolled back")
			}
		},
	}, {
		desc:  "a rollback on timeout that fails (disk full) keeps it pending and is retried",
		setup: startPlain,
		act: func(r *confirmRig) error {
			r.disk.full.Store(true)
			retry := r.fc.TimerArmed()
			r.fc.Advance(minute)
			select {
			case <-retry:
			case <-time.After(5 * time.Second):
				r.t.Fatal("the failed rollback was not rescheduled")
			}
			r.noOutcomeFor(10 * time.Millisecond)
			r.disk.full.Store(false)
			return nil
		},
		pending: true,
		after: func(r *confirmRig) {
			r.fc.Advance(retryRollback)
			r.waitOutcome("timeout")
			if r.has(r.urls[0]) {
				r.t.Fatal("not rolled back after the retry")
			}
		},
	}, {
		desc:  "cancel by its owner rolls back",
		setup: startPlain,
		act: func(r *confirmRig) error {
			return r.s.CancelCommit(ctx, CommitOptions{User: "u-s1", Owner: api.Owner{Name: "s1"}})
		},
		want:     []string{"cancel"},
		rollback: true,
	}, {
		desc:    "cancel by another session is refused",
		setup:   startPlain,
		act:     func(r *confirmRig) error { return r.s.CancelCommit(ctx, CommitOptions{Owner: api.Owner{Name: "s2"}}) },
		wantErr: ErrPendingCommit,
	}, {
		desc:  "cancel with the persist-id from any session",
		setup: startPersist,
		act: func(r *confirmRig) error {
			return r.s.CancelCommit(ctx, CommitOptions{Owner: api.Owner{Name: "s2"}, PersistID: "p1"})
		},
		want:     []string{"cancel"},
		rollback: true,
	}, {
		desc:    "cancel on a full disk leaves it pending",
		setup:   func(r *confirmRig) { startPlain(r); r.disk.full.Store(true) },
		act:     func(r *confirmRig) error { return r.s.CancelCommit(ctx, CommitOptions{Owner: api.Owner{Name: "s1"}}) },
		wantErr: ErrPersist,
		after:   func(r *confirmRig) { r.disk.full.Store(false) },
	}, {
		desc:    "cancel with none pending",
		act:     func(r *confirmRig) error { return r.s.CancelCommit(ctx, CommitOptions{Owner: api.Owner{Name: "s1"}}) },
		wantErr: ErrNoPendingCommit,
	}, {
		desc:     "the end of its owner's session cancels it",
		setup:    startPlain,
		act:      func(r *confirmRig) error { r.s.ReleaseOwner(ctx, api.Owner{Name: "s1"}); return nil },
		want:     []string{"cancel"},
		rollback: true,
	}, {
		desc:    "the end of its owner's session keeps a persistent one",
		setup:   startPersist,
		act:     func(r *confirmRig) error { r.s.ReleaseOwner(ctx, api.Owner{Name: "s1"}); return nil },
		pending: true,
	}, {
		desc:     "rolled back at shutdown",
		setup:    startPersist,
		act:      func(r *confirmRig) error { _, _, err := r.s.RollBackPending(ctx); return err },
		want:     []string{"cancel"},
		rollback: true,
	}, {
		desc:    "gNMI commit request starts one",
		act:     func(r *confirmRig) error { return r.gnmi("g-a", "g1", minute) },
		want:    []string{"start"},
		pending: true,
	}, {
		desc:    "gNMI commit request while one is pending is refused, even with the same id",
		setup:   startGNMI,
		act:     func(r *confirmRig) error { return r.gnmi("g-b", "g1", minute) },
		wantErr: ErrPendingCommit,
	}, {
		desc:    "gNMI Set without the extension while one is pending is refused",
		setup:   startPlain,
		act:     func(r *confirmRig) error { return r.gnmi("g-b", "", 0) },
		wantErr: ErrPendingCommit,
	}, {
		desc:  "gNMI confirm with its id",
		setup: startGNMI,
		act: func(r *confirmRig) error {
			return r.s.Confirm(CommitOptions{Owner: api.Owner{Name: "g-b"}, PersistID: "g1"})
		},
		want: []string{"complete"},
	}, {
		desc:  "gNMI confirm with another id",
		setup: startGNMI,
		act: func(r *confirmRig) error {
			return r.s.Confirm(CommitOptions{Owner: api.Owner{Name: "g-b"}, PersistID: "g2"})
		},
		wantErr: ErrPersistID,
	}, {
		desc:  "gNMI confirm of a NETCONF commit without persist token",
		setup: startPlain,
		act: func(r *confirmRig) error {
			return r.s.Confirm(CommitOptions{Owner: api.Owner{Name: "g-b"}, PersistID: "g1"})
		},
		wantErr: ErrPersistID,
	}, {
		desc: "gNMI confirm with none pending",
		act: func(r *confirmRig) error {
			return r.s.Confirm(CommitOptions{Owner: api.Owner{Name: "g-b"}, PersistID: "g1"})
		},
		wantErr: ErrNoPendingCommit,
	}, {
		desc:  "gNMI set_rollback_duration extends from now",
		setup: startGNMI,
		act: func(r *confirmRig) error {
			r.fc.Advance(50 * time.Second)
			return r.s.ExtendPending(CommitOptions{Owner: api.Owner{Name: "g-b"}, PersistID: "g1", Confirm: &ConfirmOptions{Timeout: 5 * minute}})
		},
		want:    []string{"extend"},
		pending: true,
		after: func(r *confirmRig) {
			if p, _ := r.s.Pending(); !p.Deadline.Equal(r.fc.Now().Add(5 * minute)) {
				r.t.Fatalf("deadline %v, want %v", p.Deadline, r.fc.Now().Add(5*minute))
			}
			r.fc.Advance(4 * minute)
			r.noOutcomeFor(20 * time.Millisecond)
			r.fc.Advance(minute)
			r.waitOutcome("timeout")
		},
	}, {
		desc:  "gNMI set_rollback_duration with another id",
		setup: startGNMI,
		act: func(r *confirmRig) error {
			return r.s.ExtendPending(CommitOptions{Owner: api.Owner{Name: "g-b"}, PersistID: "g2", Confirm: &ConfirmOptions{Timeout: 5 * minute}})
		},
		wantErr: ErrPersistID,
	}} {
		t.Run(tc.desc, func(t *testing.T) {
			r := newConfirmRig(t)
			if tc.setup != nil {
				tc.setup(r)
			}
			r.outcomes()
			before, wasPending := r.s.Pending()
			beforeFile := r.disk.pending
			beforeRunning := r.s.Running()
			err := tc.act(r)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				after, still := r.s.Pending()
				if still != wasPending || after != before || r.disk.pending != beforeFile {
					t.Fatalf("a refused or failed request changed the pending commit: %+v (%v) -> %+v (%v)", before, wasPending, after, still)
				}
				if r.s.Running() != beforeRunning {
					t.Fatal("a refused or failed request changed running")
				}
				if got := r.outcomes(); len(got) > 0 {
					t.Fatalf("a refused or failed request published %v", got)
				}
				if wasPending { // its timer still runs, to the same deadline
					if tc.after != nil {
						tc.after(r)
					}
					r.val.failValid = nil
					r.fc.Set(before.Deadline.Add(-time.Second))
					r.noOutcomeFor(20 * time.Millisecond)
					r.fc.Set(before.Deadline)
					r.waitOutcome("timeout")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, r.outcomes()); d != "" {
				t.Fatalf("transitions (-want +got):\n%s", d)
			}
			if _, ok := r.s.Pending(); ok != tc.pending {
				t.Fatalf("pending = %v, want %v", ok, tc.pending)
			}
			if (r.disk.pending != nil) != tc.pending {
				t.Fatalf("saved rollback point = %+v, want one: %v", r.disk.pending, tc.pending)
			}
			if tc.rollback && slices.ContainsFunc(r.urls, r.has) {
				t.Fatal("not rolled back")
			}
			if tc.after != nil {
				tc.after(r)
			}
		})
	}
}
