package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/telemetry"
)

// stager is an applier that stages one event per Apply, naming the CRL
// sources the commit adds (none for an undo).
type stager struct {
	mu       sync.Mutex
	finished map[uint64]bool // for the Finisher variant: commit id -> committed
}

func (st *stager) Apply(_ context.Context, c *api.Commit) error {
	var added []string
	if c.New.GetAuthority() == nil {
		return nil
	}
	for url := range c.New.GetAuthority().CertificateRevocationList {
		if c.Old.GetAuthority().GetCertificateRevocationList(url) == nil {
			added = append(added, url)
		}
	}
	slices.Sort(added)
	c.Stage(api.Event{Kind: api.EventNotification, Notification: &api.Notification{Module: "test", Name: "added " + strings.Join(added, " ")}})
	return nil
}

// finisher is a stager that is a Finisher: it undoes itself in Finish.
type finisher struct{ stager }

func (f *finisher) Finish(_ context.Context, c *api.Commit, committed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.finished == nil {
		f.finished = map[uint64]bool{}
	}
	f.finished[c.ID] = committed
}

// diskFullOn fails to save a commit that touches a source named "fail".
type diskFullOn struct{}

func (diskFullOn) Save(_ context.Context, rec *Record) error {
	for _, sc := range rec.Scopes {
		for _, e := range sc {
			if strings.Contains(e.GetKey()["url"], "fail") {
				return fmt.Errorf("write running.journal: %w", syscall.ENOSPC)
			}
		}
	}
	return nil
}

// TestStagedEventsPublishedAfterPersistInCommitOrder: concurrent commits,
// some of which fail to persist (disk full). Subscribers see, for each
// saved commit in commit order, its config event and then the events its
// applier staged, all carrying its id; of a failed commit (or its undo)
// they see nothing.
func TestStagedEventsPublishedAfterPersistInCommitOrder(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		applier api.Applier
	}{
		{desc: "applier undone by a reversed Apply", applier: &stager{}},
		{desc: "finisher", applier: &finisher{}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			bus := telemetry.NewBus()
			s := New(Config{Appliers: []api.Applier{tc.applier}, Persister: diskFullOn{}, Bus: bus})
			defer s.Close()
			sub := bus.Subscribe(10000)
			const writers, each = 6, 15
			var wg sync.WaitGroup
			var mu sync.Mutex
			saved := map[uint64]string{} // commit id -> url it added
			failed := 0
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						url := fmt.Sprintf("http://x/w%d-%d.crl", w, i)
						if i%3 == 0 {
							url = fmt.Sprintf("http://x/fail-w%d-%d.crl", w, i)
						}
						info, err := commitEdits(t, s, addCRL(t, url, 1))
						mu.Lock()
						switch {
						case err == nil:
							saved[info.ID] = url
						case errors.Is(err, ErrPersist) && errors.Is(err, syscall.ENOSPC):
							failed++
						default:
							t.Errorf("commit of %s: %v", url, err)
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if failed != writers*((each+2)/3) {
				t.Fatalf("%d commits failed, want %d", failed, writers*((each+2)/3))
			}
			var last uint64
			var seq []string
			for len(sub.C) > 0 {
				ev := <-sub.C
				switch ev.Kind {
				case api.EventConfig:
					if ev.CommitID <= last {
						t.Fatalf("config event of commit %d after commit %d", ev.CommitID, last)
					}
					last = ev.CommitID
					seq = append(seq, fmt.Sprintf("config %d", ev.CommitID))
				case api.EventNotification:
					if ev.CommitID != last {
						t.Fatalf("staged event %q of commit %d after the config event of commit %d", ev.Notification.Name, ev.CommitID, last)
					}
					seq = append(seq, fmt.Sprintf("%d %s", ev.CommitID, ev.Notification.Name))
				}
			}
			var want []string
			for id := uint64(1); id <= uint64(len(saved)); id++ {
				want = append(want, fmt.Sprintf("config %d", id), fmt.Sprintf("%d added %s", id, saved[id]))
			}
			if !slices.Equal(seq, want) {
				t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(seq, "\n"), strings.Join(want, "\n"))
			}
			if f, ok := tc.applier.(*finisher); ok {
				// A failed commit's id is taken by the next saved one, so
				// the map holds each id's last outcome: saved means true.
				for id := range saved {
					if !f.finished[id] {
						t.Errorf("commit %d saved but not finished as committed", id)
					}
				}
				if len(f.finished) < len(saved) || len(f.finished) > len(saved)+1 {
					t.Errorf("%d commit ids finished, want %d (or one more, failed)", len(f.finished), len(saved))
				}
			}
		})
	}
}
