package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/telemetry"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"

	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/persist"
)

func mustPath(t testing.TB, s string) *gnmi.Path {
	t.Helper()
	p, err := ygot.StringToStructuredPath(s)
	if err != nil {
		t.Fatalf("path %q: %v", s, err)
	}
	return p
}

func jsonVal(s string) *gnmi.TypedValue {
	return &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: []byte(s)}}
}

func uintVal(v uint64) *gnmi.TypedValue {
	return &gnmi.TypedValue{Value: &gnmi.TypedValue_UintVal{UintVal: v}}
}

func crlPath(url string) string {
	return fmt.Sprintf("/authority/certificate-revocation-list[url=%s]", url)
}

func addCRL(t testing.TB, url string, hours int) Edit {
	t.Helper()
	return Edit{Op: OpMerge, Path: mustPath(t, crlPath(url)), Value: jsonVal(fmt.Sprintf(`{"polling-interval": %d}`, hours))}
}

// recorder is a validator and applier that records what it saw and can be
// told to fail.
type recorder struct {
	mu        sync.Mutex
	name      string
	failApply error
	failValid error
	applied   []uint64
	state     *gen.Device // what the subsystem currently runs
}

func (r *recorder) Validate(_ context.Context, c *api.Commit) error { return r.failValid }

func (r *recorder) Apply(_ context.Context, c *api.Commit) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failApply != nil {
		return r.failApply
	}
	r.applied = append(r.applied, c.ID)
	r.state = c.New
	return nil
}

func newTestStore(t *testing.T, cfg Config) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, d, err := OpenStore(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); d.Close() })
	return s, dir
}

func commitEdits(t testing.TB, s *Store, edits ...Edit) (CommitInfo, error) {
	t.Helper()
	tx := s.Begin(Running)
	if err := tx.Apply(edits...); err != nil {
		return CommitInfo{}, err
	}
	return s.Commit(context.Background(), tx, CommitOptions{User: "alice", Owner: api.Owner{Name: "test"}})
}

func reload(t *testing.T, dir string) *gen.Device {
	t.Helper()
	d, err := persist.Open(dir + "-copy")
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	os.RemoveAll(dir + "-copy")
	// Copy the files so the open store's lock is not in the way.
	cp := t.TempDir()
	for _, f := range []string{persist.SnapshotFile, persist.JournalFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err == nil {
			os.WriteFile(filepath.Join(cp, f), b, 0o600)
		}
	}
	pd, err := persist.Open(cp)
	if err != nil {
		t.Fatal(err)
	}
	defer pd.Close()
	root, _, _, err := Load(pd)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestEditOperations(t *testing.T) {
	url := "http://ca.example/root.crl"
	for _, tc := range []struct {
		desc    string
		setup   []Edit
		edit    func(t *testing.T) Edit
		wantErr error
		check   func(t *testing.T, d *gen.Device)
	}{{
		desc: "merge creates list entry and keeps defaults implicit",
		edit: func(t *testing.T) Edit { return addCRL(t, url, 12) },
		check: func(t *testing.T, d *gen.Device) {
			e := d.GetAuthority().GetCertificateRevocationList(url)
			if e.GetPollingInterval() != 12 || e.GetBackoffInterval() != 60 {
				t.Errorf("got polling %d backoff %d", e.GetPollingInterval(), e.GetBackoffInterval())
			}
		},
	}, {
		desc:  "merge of a leaf keeps siblings",
		setup: []Edit{{Op: OpMerge, Path: mustPath(t, crlPath(url)), Value: jsonVal(`{"polling-interval": 5, "backoff-interval": 9}`)}},
		edit: func(t *testing.T) Edit {
			return Edit{Op: OpMerge, Path: mustPath(t, crlPath(url)+"/polling-interval"), Value: uintVal(7)}
		},
		check: func(t *testing.T, d *gen.Device) {
			e := d.GetAuthority().GetCertificateRevocationList(url)
			if e.GetPollingInterval() != 7 || e.GetBackoffInterval() != 9 {
				t.Errorf("got polling %d backoff %d", e.GetPollingInterval(), e.GetBackoffInterval())
			}
		},
	}, {
		desc:  "replace drops what the value leaves out",
		setup: []Edit{{Op: OpMerge, Path: mustPath(t, crlPath(url)), Value: jsonVal(`{"polling-interval": 5, "backoff-interval": 9}`)}},
		edit: func(t *testing.T) Edit {
			return Edit{Op: OpReplace, Path: mustPath(t, crlPath(url)), Value: jsonVal(`{"pki-authority:url": "` + url + `", "polling-interval": 3}`)}
		},
		check: func(t *testing.T, d *gen.Device) {
			e := d.GetAuthority().GetCertificateRevocationList(url)
			if e.GetPollingInterval() != 3 || e.BackoffInterval != nil {
				t.Errorf("got polling %d backoff %v", e.GetPollingInterval(), e.BackoffInterval)
			}
		},
	}, {
		desc:  "create of an existing entry is data-exists",
		setup: []Edit{addCRL(t, url, 5)},
		edit: func(t *testing.T) Edit {
			return Edit{Op: OpCreate, Path: mustPath(t, crlPath(url)), Value: jsonVal(`{}`)}
		},
		wantErr: api.ErrExists,
	}, {
		desc:    "delete of a missing entry is data-missing",
		edit:    func(t *testing.T) Edit { return Edit{Op: OpDelete, Path: mustPath(t, crlPath(url))} },
		wantErr: api.ErrMissing,
	}, {
		desc: "remove of a missing entry is fine",
		edit: func(t *testing.T) Edit { return Edit{Op: OpRemove, Path: mustPath(t, crlPath(url))} },
	}, {
		desc:  "delete removes the entry",
		setup: []Edit{addCRL(t, url, 5)},
		edit:  func(t *testing.T) Edit { return Edit{Op: OpDelete, Path: mustPath(t, crlPath(url))} },
		check: func(t *testing.T, d *gen.Device) {
			if d.GetAuthority().GetCertificateRevocationList(url) != nil {
				t.Error("entry still there")
			}
		},
	}, {
		desc:  "delete of a leaf",
		setup: []Edit{addCRL(t, url, 5)},
		edit: func(t *testing.T) Edit {
			return Edit{Op: OpDelete, Path: mustPath(t, crlPath(url)+"/polling-interval")}
		},
		check: func(t *testing.T, d *gen.Device) {
			if d.GetAuthority().GetCertificateRevocationList(url).PollingInterval != nil {
				t.Error("leaf still set")
			}
		},
	}, {
		desc: "state is read-only",
		edit: func(t *testing.T) Edit {
			return Edit{Op: OpMerge, Path: mustPath(t, crlPath(url)+"/state/entries"), Value: uintVal(1)}
		},
		wantErr: ErrReadOnly,
	}, {
		desc: "unknown element",
		edit: func(t *testing.T) Edit {
			return Edit{Op: OpMerge, Path: mustPath(t, "/authority/bogus"), Value: uintVal(1)}
		},
		wantErr: ErrUnknownPath,
	}, {
		desc: "key in value must match key in path",
		edit: func(t *testing.T) Edit {
			return Edit{Op: OpMerge, Path: mustPath(t, crlPath(url)), Value: jsonVal(`{"url": "http://other/x"}`)}
		},
		wantErr: api.ErrInvalid,
	}, {
		desc: "wrong type",
		edit: func(t *testing.T) Edit {
			return Edit{Op: OpMerge, Path: mustPath(t, crlPath(url)), Value: jsonVal(`{"polling-interval": "often"}`)}
		},
		wantErr: api.ErrInvalid,
	}} {
		t.Run(tc.desc, func(t *testing.T) {
			s, _ := newTestStore(t, Config{})
			if len(tc.setup) > 0 {
				if _, err := commitEdits(t, s, tc.setup...); err != nil {
					t.Fatal(err)
				}
			}
			before := s.Running()
			_, err := commitEdits(t, s, tc.edit(t))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if s.Running() != before {
					t.Fatal("running changed by a failed edit")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, s.Running())
			}
		})
	}
}

func TestYANGValidationNamesThePath(t *testing.T) {
	for _, tc := range []struct {
		desc     string
		edit     func(t *testing.T) Edit
		wantPath string
		wantText string
	}{{
		desc:     "range",
		edit:     func(t *testing.T) Edit { return addCRL(t, "http://x/a.crl", 0) },
		wantPath: crlPath("http://x/a.crl"),
		wantText: "polling-interval",
	}, {
		desc:     "pattern",
		edit:     func(t *testing.T) Edit { return addCRL(t, "ftp://x/a.crl", 1) },
		wantPath: crlPath("ftp://x/a.crl"),
		wantText: "does not match",
	}, {
		desc: "missing key",
		edit: func(t *testing.T) Edit {
			return Edit{Op: OpMerge, Path: mustPath(t, "/authority/certificate-revocation-list/polling-interval"), Value: uintVal(3)}
		},
		wantPath: "/authority/certificate-revocation-list",
		wantText: "needs its key [url=...]",
	}, {
		desc: "mandatory",
		edit: func(t *testing.T) Edit {
			return Edit{Op: OpMerge, Path: mustPath(t, "/authority/trusted-ca-certificate[name=root]"), Value: jsonVal(`{"validation-mode": "warn"}`)}
		},
		wantPath: "/authority/trusted-ca-certificate[name=root]/content",
		wantText: "mandatory",
	}, {
		desc: "name pattern",
		edit: func(t *testing.T) Edit {
			return Edit{Op: OpMerge, Path: mustPath(t, "/authority/router[name=a b]"), Value: jsonVal(`{}`)}
		},
		wantPath: "/authority/router[name=a b]",
		wantText: "does not match",
	}} {
		t.Run(tc.desc, func(t *testing.T) {
			s, _ := newTestStore(t, Config{})
			_, err := commitEdits(t, s, tc.edit(t))
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.wantPath) || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("err %q should name %q and say %q", err, tc.wantPath, tc.wantText)
			}
		})
	}
}

func TestSemanticValidatorRejects(t *testing.T) {
	v := &recorder{failValid: errors.New("content is not PEM")}
	s, _ := newTestStore(t, Config{Validators: []api.Validator{v}})
	_, err := commitEdits(t, s, addCRL(t, "http://x/a.crl", 3))
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "not PEM") {
		t.Fatalf("err = %v", err)
	}
	if len(s.History()) != 1 {
		t.Fatalf("history grew: %v", s.History())
	}
}

func TestApplierFailureLeavesEverythingUnchanged(t *testing.T) {
	first := &recorder{name: "first"}
	second := &recorder{name: "second"}
	s, dir := newTestStore(t, Config{Appliers: []api.Applier{first, second}})
	if _, err := commitEdits(t, s, addCRL(t, "http://x/a.crl", 3)); err != nil {
		t.Fatal(err)
	}
	good := s.Running()
	diskBefore := reload(t, dir)
	second.failApply = errors.New("TPM refused the key")
	_, err := commitEdits(t, s, addCRL(t, "http://x/b.crl", 4))
	if !errors.Is(err, ErrApply) || !strings.Contains(err.Error(), "TPM refused") {
		t.Fatalf("err = %v", err)
	}
	if s.Running() != good {
		t.Fatal("running changed")
	}
	if first.state != good {
		t.Fatal("first applier was not undone")
	}
	diskAfter := reload(t, dir)
	if !equalTrees(t, diskBefore, diskAfter) {
		t.Fatal("disk changed")
	}
}

func equalTrees(t *testing.T, a, b *gen.Device) bool {
	t.Helper()
	ch, err := api.Diff(a, b)
	if err != nil {
		t.Fatal(err)
	}
	return len(ch) == 0
}

type failingPersister struct{ err error }

func (f failingPersister) Save(context.Context, *Record) error { return f.err }

func TestPersistFailureUndoesApply(t *testing.T) {
	a := &recorder{}
	s := New(Config{Appliers: []api.Applier{a}, Persister: failingPersister{errors.New("disk full")}})
	_, err := commitEdits(t, s, addCRL(t, "http://x/a.crl", 3))
	if !errors.Is(err, ErrPersist) {
		t.Fatalf("err = %v", err)
	}
	if a.state == nil || a.state.GetAuthority() != nil {
		t.Fatal("applier not undone")
	}
	if s.Running().GetAuthority() != nil {
		t.Fatal("running changed")
	}
}

func TestLocks(t *testing.T) {
	s, _ := newTestStore(t, Config{})
	ctx := context.Background()
	if err := s.Lock(Running, api.NetconfOwner(1)); err != nil {
		t.Fatal(err)
	}
	err := s.Lock(Running, api.NetconfOwner(2))
	var le *LockError
	if !errors.As(err, &le) || le.Holder != api.NetconfOwner(1) {
		t.Fatalf("err = %v", err)
	}
	tx := s.Begin(Running)
	tx.Apply(addCRL(t, "http://x/a.crl", 1))
	if _, err := s.Commit(ctx, tx, CommitOptions{Owner: api.Owner{Name: "gnmi bob"}}); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "netconf session 1") {
		t.Fatalf("err = %v", err)
	}
	if err := s.Unlock(Running, api.NetconfOwner(2)); !errors.Is(err, ErrLocked) {
		t.Fatalf("unlock by other: %v", err)
	}
	if _, err := s.Commit(ctx, tx, CommitOptions{Owner: api.NetconfOwner(1)}); err != nil {
		t.Fatal(err)
	}
	// A dirty candidate cannot be locked by another session.
	if err := s.EditCandidate(api.NetconfOwner(2), addCRL(t, "http://x/b.crl", 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(Candidate, api.NetconfOwner(3)); !errors.Is(err, ErrCandidateDirty) {
		t.Fatalf("err = %v", err)
	}
	if err := s.Lock(Candidate, api.NetconfOwner(2)); err != nil {
		t.Fatal(err)
	}
	if err := s.EditCandidate(api.NetconfOwner(3), addCRL(t, "http://x/c.crl", 1)); !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v", err)
	}
	// Session end releases locks and discards its candidate changes.
	s.ReleaseOwner(ctx, api.NetconfOwner(2))
	s.ReleaseOwner(ctx, api.NetconfOwner(1))
	if _, ok := s.LockHolder(Candidate); ok || s.CandidateDirty() {
		t.Fatal("locks or candidate changes survived the session")
	}
}

func TestRollbackToEarlierCommit(t *testing.T) {
	a := &recorder{}
	s, dir := newTestStore(t, Config{Appliers: []api.Applier{a}})
	first, err := commitEdits(t, s, addCRL(t, "http://x/a.crl", 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := commitEdits(t, s, addCRL(t, "http://x/b.crl", 2), Edit{Op: OpDelete, Path: mustPath(t, crlPath("http://x/a.crl"))}); err != nil {
		t.Fatal(err)
	}
	info, err := s.RollbackTo(context.Background(), first.ID, CommitOptions{User: "ops", Owner: api.Owner{Name: "o"}})
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != first.ID+2 || !strings.Contains(info.Comment, "rollback") {
		t.Fatalf("info = %+v", info)
	}
	crls := s.Running().GetAuthority().CertificateRevocationList
	if len(crls) != 1 || crls["http://x/a.crl"] == nil {
		t.Fatalf("running after rollback: %v", crls)
	}
	if a.state != s.Running() {
		t.Fatal("applier not told")
	}
	if !equalTrees(t, reload(t, dir), s.Running()) {
		t.Fatal("disk differs")
	}
	if _, err := s.RollbackTo(context.Background(), 999, CommitOptions{}); !errors.Is(err, ErrNoSuchCommit) {
		t.Fatalf("err = %v", err)
	}
}

func TestConcurrentTransactions(t *testing.T) {
	bus := telemetry.NewBus()
	s, dir := newTestStore(t, Config{Bus: bus})
	sub := bus.Subscribe(10000)
	var wg sync.WaitGroup
	const workers, each = 8, 20
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				url := fmt.Sprintf("http://x/%d-%d.crl", w, i)
				if _, err := commitEdits(t, s, addCRL(t, url, 1+i%100)); err != nil {
					t.Error(err)
				}
				_ = s.Running().GetAuthority().GetCertificateRevocationList(url)
			}
		}()
	}
	wg.Wait()
	if n := len(s.Running().GetAuthority().CertificateRevocationList); n != workers*each {
		t.Fatalf("%d entries, want %d", n, workers*each)
	}
	var last uint64
	for range workers * each {
		ev := <-sub.C
		if ev.CommitID != last+1 {
			t.Fatalf("events out of order: %d after %d", ev.CommitID, last)
		}
		last = ev.CommitID
	}
	if !equalTrees(t, reload(t, dir), s.Running()) {
		t.Fatal("disk differs from running")
	}
}

func TestPersistenceAcrossRestartAndCorruption(t *testing.T) {
	dir := t.TempDir()
	s, d, err := OpenStore(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := commitEdits(t, s, addCRL(t, fmt.Sprintf("http://x/%d.crl", i), i+1)); err != nil {
			t.Fatal(err)
		}
	}
	want := s.Running()
	s.Close()
	d.Close()

	// A torn last record is dropped; everything acknowledged survives.
	f, _ := os.OpenFile(filepath.Join(dir, persist.JournalFile), os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{0, 0, 1, 0, 1, 2})
	f.Close()
	s, d, err = OpenStore(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if !equalTrees(t, want, s.Running()) {
		t.Fatal("running differs after restart")
	}
	if h := s.History(); h[len(h)-1].ID != 5 || h[len(h)-1].User != "alice" {
		t.Fatalf("history after restart: %+v", h)
	}
	if info, err := commitEdits(t, s, addCRL(t, "http://x/next.crl", 1)); err != nil || info.ID != 6 {
		t.Fatalf("next commit %+v %v", info, err)
	}
	s.Close()
	d.Close()

	// A corrupt snapshot is a clear error naming the file, and it is kept.
	snap := filepath.Join(dir, persist.SnapshotFile)
	os.WriteFile(snap, []byte(`{"pki-authority:authority": {`), 0o600)
	_, _, err = OpenStore(dir, Config{})
	if err == nil || !strings.Contains(err.Error(), snap) || !errors.Is(err, persist.ErrCorrupt) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(snap); string(b) != `{"pki-authority:authority": {` {
		t.Fatal("corrupt file was overwritten")
	}
	// Out-of-range values in the file are refused too.
	os.WriteFile(snap, []byte(`{"pki-authority:authority": {"certificate-revocation-list": [{"url": "http://x/y", "polling-interval": 0}]}}`), 0o600)
	if _, _, err = OpenStore(dir, Config{}); err == nil || !strings.Contains(err.Error(), "polling-interval") {
		t.Fatalf("err = %v", err)
	}
}

func TestUnwritableStateDir(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores permissions; use a path under a regular file instead.
		f := filepath.Join(t.TempDir(), "file")
		os.WriteFile(f, nil, 0o600)
		if _, _, err := OpenStore(filepath.Join(f, "state"), Config{}); err == nil || !strings.Contains(err.Error(), f) {
			t.Fatalf("err = %v", err)
		}
		return
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o500)
	if _, _, err := OpenStore(filepath.Join(dir, "state"), Config{}); err == nil {
		t.Fatal("no error")
	}
}

func TestStateDirLockedByOtherAgent(t *testing.T) {
	dir := t.TempDir()
	_, d, err := OpenStore(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, _, err := OpenStore(dir, Config{}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("err = %v", err)
	}
}

func TestBusDropsSlowSubscriber(t *testing.T) {
	bus := telemetry.NewBus()
	s, _ := newTestStore(t, Config{Bus: bus})
	slow := bus.Subscribe(2)
	for i := range 5 {
		if _, err := commitEdits(t, s, addCRL(t, fmt.Sprintf("http://x/%d.crl", i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for range slow.C {
		n++
	}
	if n != 2 || !errors.Is(slow.Err(), telemetry.ErrSlowSubscriber) {
		t.Fatalf("got %d events, err %v", n, slow.Err())
	}
}

func TestChangesFollowTheEdit(t *testing.T) {
	s, _ := newTestStore(t, Config{})
	if _, err := commitEdits(t, s, addCRL(t, "http://x/a.crl", 1), addCRL(t, "http://x/b.crl", 1)); err != nil {
		t.Fatal(err)
	}
	tx := s.Begin(Running)
	tx.Apply(Edit{Op: OpMerge, Path: mustPath(t, crlPath("http://x/a.crl")+"/polling-interval"), Value: uintVal(9)})
	ch, err := tx.Changes()
	if err != nil {
		t.Fatal(err)
	}
	if len(ch) != 1 || api.PathString(ch[0].Path) != crlPath("http://x/a.crl")+"/polling-interval" || ch[0].Value.GetUintVal() != 9 {
		t.Fatalf("changes = %v", ch)
	}
}

// A candidate without uncommitted changes follows commits made straight to
// running (gNMI Set), so a later NETCONF edit and commit of the candidate
// does not undo them; a dirty candidate shows them too, beside its own
// edits.
func TestCleanCandidateFollowsRunning(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t, Config{})
	if _, err := commitEdits(t, s, addCRL(t, "http://x/a.crl", 2)); err != nil {
		t.Fatal(err)
	}
	if s.Candidate() != s.Running() {
		t.Fatal("clean candidate did not follow running")
	}
	if err := s.EditCandidate(api.Owner{Name: "nc1"}, addCRL(t, "http://x/b.crl", 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommitCandidate(ctx, CommitOptions{Owner: api.Owner{Name: "nc1"}}); err != nil {
		t.Fatal(err)
	}
	run := s.Running().GetAuthority()
	if run.GetCertificateRevocationList("http://x/a.crl") == nil || run.GetCertificateRevocationList("http://x/b.crl") == nil {
		t.Fatal("the candidate commit undid the direct commit")
	}
	// Dirty candidate: it shows a later direct commit with its own edit.
	if err := s.EditCandidate(api.Owner{Name: "nc1"}, addCRL(t, "http://x/c.crl", 4)); err != nil {
		t.Fatal(err)
	}
	if _, err := commitEdits(t, s, addCRL(t, "http://x/d.crl", 5)); err != nil {
		t.Fatal(err)
	}
	cand := s.Candidate().GetAuthority()
	if cand.GetCertificateRevocationList("http://x/c.crl") == nil || cand.GetCertificateRevocationList("http://x/d.crl") == nil {
		t.Fatal("a dirty candidate does not show its edit beside a later direct commit")
	}
	if !s.CandidateDirty() {
		t.Fatal("the candidate's edit was lost")
	}
}

// A candidate commit validates and diffs only the edited nodes when running
// has not moved under them; the result, the published changes and the disk
// are those of a whole-tree commit.
func TestCandidateCommitOfEditedNodesOnly(t *testing.T) {
	ctx := context.Background()
	bus := telemetry.NewBus()
	s, dir := newTestStore(t, Config{Bus: bus})
	for i := range 20 {
		if _, err := commitEdits(t, s, addCRL(t, fmt.Sprintf("http://x/%d.crl", i), 2)); err != nil {
			t.Fatal(err)
		}
	}
	sub := bus.Subscribe(16)
	defer sub.Close()
	edits := [][]Edit{
		{addCRL(t, "http://x/new.crl", 5)},
		{{Op: OpDelete, Path: mustPath(t, crlPath("http://x/3.crl"))}},
		{{Op: OpReplace, Path: mustPath(t, crlPath("http://x/4.crl")), Value: jsonVal(`{"url": "http://x/4.crl", "backoff-interval": 9}`)}},
		{addCRL(t, "http://x/new.crl", 6)},
	}
	for _, e := range edits {
		if err := s.EditCandidate(api.Owner{Name: "nc"}, e...); err != nil {
			t.Fatal(err)
		}
	}
	before, cand := s.Running(), s.Candidate()
	want, err := api.Diff(before, cand)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommitCandidate(ctx, CommitOptions{Owner: api.Owner{Name: "nc"}}); err != nil {
		t.Fatal(err)
	}
	ev := <-sub.C
	if len(ev.Changes) != len(want) {
		t.Fatalf("published %d changes, whole-tree diff has %d:\n%v\n%v", len(ev.Changes), len(want), ev.Changes, want)
	}
	if d, _ := api.Diff(s.Running(), cand); len(d) != 0 {
		t.Fatalf("running differs from the committed candidate: %v", d)
	}
	if d, _ := api.Diff(reload(t, dir), cand); len(d) != 0 {
		t.Fatalf("disk differs from the committed candidate: %v", d)
	}
	// A YANG error in an edited node still fails the commit.
	if err := s.EditCandidate(api.Owner{Name: "nc"}, Edit{Op: OpMerge, Path: mustPath(t, crlPath("http://x/7.crl")+"/polling-interval"), Value: &gnmi.TypedValue{Value: &gnmi.TypedValue_UintVal{UintVal: 500}}}); err != nil {
		if !errors.Is(err, api.ErrInvalid) {
			t.Fatal(err)
		}
		return // refused at edit time already: fine
	}
	if _, err := s.CommitCandidate(ctx, CommitOptions{Owner: api.Owner{Name: "nc"}}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("out-of-range polling-interval committed: %v", err)
	}
}

// ygot would truncate 3.5 to 3 for an integer leaf; such a value is refused.
func TestNonIntegerNumbersRefused(t *testing.T) {
	s, _ := newTestStore(t, Config{})
	leaf := crlPath("http://x/a.crl") + "/polling-interval"
	for _, tc := range []struct {
		desc string
		edit Edit
	}{
		{"leaf json_ietf 3.5", Edit{Op: OpMerge, Path: mustPath(t, leaf), Value: jsonVal(`3.5`)}},
		{"leaf json 2e1", Edit{Op: OpMerge, Path: mustPath(t, leaf), Value: &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonVal{JsonVal: []byte(`2e1`)}}}},
		{"leaf double", Edit{Op: OpMerge, Path: mustPath(t, leaf), Value: &gnmi.TypedValue{Value: &gnmi.TypedValue_DoubleVal{DoubleVal: 3.5}}}},
		{"entry with 3.5", Edit{Op: OpMerge, Path: mustPath(t, crlPath("http://x/a.crl")), Value: jsonVal(`{"polling-interval": 3.5}`)}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if _, err := commitEdits(t, s, tc.edit); !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("err = %v", err)
			}
			if s.Running().GetAuthority().GetCertificateRevocationList("http://x/a.crl") != nil {
				t.Fatal("committed")
			}
		})
	}
	if _, err := commitEdits(t, s, Edit{Op: OpMerge, Path: mustPath(t, leaf), Value: jsonVal(`3`)}); err != nil {
		t.Fatal(err)
	}
}

// A confirmed commit still pending when the agent stops, crash included,
// is rolled back at the next start (RFC 6241 8.4.1); a confirmed one stays.
func TestPendingConfirmedCommitRolledBackAtNextStart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() (*Store, *persist.Dir) {
		t.Helper()
		s, d, err := OpenStore(dir, Config{})
		if err != nil {
			t.Fatal(err)
		}
		return s, d
	}
	has := func(s *Store, url string) bool {
		return s.Running().GetAuthority().GetCertificateRevocationList(url) != nil
	}
	s, d := open()
	if _, err := commitEdits(t, s, addCRL(t, "http://x/base.crl", 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.EditCandidate(api.Owner{Name: "nc1"}, addCRL(t, "http://x/unconfirmed.crl", 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommitCandidate(ctx, CommitOptions{Owner: api.Owner{Name: "nc1"}, Confirm: &ConfirmOptions{Timeout: time.Hour, Persist: "p1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, PendingFile)); err != nil {
		t.Fatalf("rollback point not saved: %v", err)
	}
	// A follow-up confirmed commit keeps the first rollback point on disk;
	// one that fails leaves the file alone.
	if err := s.EditCandidate(api.Owner{Name: "nc2"}, addCRL(t, "http://x/follow-up.crl", 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommitCandidate(ctx, CommitOptions{Owner: api.Owner{Name: "nc2"}, PersistID: "p1", Confirm: &ConfirmOptions{Timeout: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	saved, _ := os.ReadFile(filepath.Join(dir, PendingFile))
	if _, err := s.CommitCandidate(ctx, CommitOptions{Owner: api.Owner{Name: "nc2"}, PersistID: "wrong"}); !errors.Is(err, ErrPersistID) {
		t.Fatalf("confirming commit with a wrong persist-id: %v", err)
	}
	if now, _ := os.ReadFile(filepath.Join(dir, PendingFile)); string(now) != string(saved) {
		t.Fatal("a refused confirming commit rewrote the rollback point")
	}
	// The process dies: no cancel, no rollback.
	s.Close()
	d.Close()

	s, d = open()
	if has(s, "http://x/unconfirmed.crl") || has(s, "http://x/follow-up.crl") || !has(s, "http://x/base.crl") {
		t.Fatal("the unconfirmed commit survived the restart")
	}
	if _, ok := s.Pending(); ok {
		t.Fatal("still pending after the restart")
	}
	if _, err := os.Stat(filepath.Join(dir, PendingFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("rollback point left behind: %v", err)
	}
	// A confirmed commit that was confirmed stays across a restart.
	if err := s.EditCandidate(api.Owner{Name: "nc1"}, addCRL(t, "http://x/confirmed.crl", 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommitCandidate(ctx, CommitOptions{Owner: api.Owner{Name: "nc1"}, Confirm: &ConfirmOptions{Timeout: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommitCandidate(ctx, CommitOptions{Owner: api.Owner{Name: "nc1"}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	d.Close()
	s, d = open()
	defer func() { s.Close(); d.Close() }()
	if !has(s, "http://x/confirmed.crl") {
		t.Fatal("a confirmed commit was rolled back at the restart")
	}
	// A damaged rollback point stops the start-up, naming the file.
	s.Close()
	d.Close()
	os.WriteFile(filepath.Join(dir, PendingFile), []byte("{"), 0o600)
	if _, _, err := OpenStore(dir, Config{}); err == nil || !strings.Contains(err.Error(), PendingFile) {
		t.Fatalf("damaged %s: %v", PendingFile, err)
	}
	os.Remove(filepath.Join(dir, PendingFile))
	s, d = open()
}
