package pki

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/google/go-cmp/cmp"
	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/internal/testpki"
	"github.com/pkiagent/pkiagent/pki/keystore/file"
	"github.com/pkiagent/pkiagent/telemetry"
)

// fullDisk is a Persister whose disk can fill up.
type fullDisk struct {
	full  atomic.Bool
	saved atomic.Int64
}

func (d *fullDisk) Save(_ context.Context, rec *agent.Record) error {
	if d.full.Load() {
		return fmt.Errorf("write running.journal: %w", syscall.ENOSPC)
	}
	d.saved.Add(1)
	return nil
}

// TestFailedCommitPublishesNothingAndLeavesState: a commit that is applied
// by the engine and then fails to persist (disk full) publishes nothing,
// not even the alarms it raised and cleared, and leaves the engine's state
// exactly as before: alarms with their times, peer states, counters. The
// same commit, once the disk has room, publishes its config event first,
// then the engine's alarms and state, all with its commit id.
func TestFailedCommitPublishesNothingAndLeavesState(t *testing.T) {
	ctx := context.Background()
	fc := clock.NewFake(t0)
	dir := t.TempDir()
	disk := &fullDisk{}
	bus := telemetry.NewBus()
	store := agent.New(agent.Config{Clock: fc, Persister: disk, Bus: bus})
	t.Cleanup(store.Close)
	keys, err := file.New(filepath.Join(dir, "keys"), nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(ctx, Config{StateDir: dir, Clock: fc, Bus: bus, Keys: map[string]KeyStore{"file": keys}})
	if err != nil {
		t.Fatal(err)
	}
	store.AddValidator(e)
	store.AddApplier(e)
	store.AddStateSource(e)

	g := testpki.New(t0)
	root := testpki.Must(g.Root(testpki.Options{CN: "Corp Root"}))
	commit := func(edits ...agent.Edit) (agent.CommitInfo, error) {
		tx := store.Begin(agent.Running)
		if err := tx.Apply(edits...); err != nil {
			t.Fatal(err)
		}
		return store.Commit(ctx, tx, agent.CommitOptions{User: "admin", Owner: api.Owner{Name: "test"}})
	}
	merge := func(value string, elems ...*gnmi.PathElem) agent.Edit {
		return agent.Edit{Op: agent.OpMerge, Path: &gnmi.Path{Elem: append([]*gnmi.PathElem{{Name: "authority"}}, elems...)},
			Value: &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: []byte(value)}}}
	}
	remove := func(elems ...*gnmi.PathElem) agent.Edit {
		return agent.Edit{Op: agent.OpRemove, Path: &gnmi.Path{Elem: append([]*gnmi.PathElem{{Name: "authority"}}, elems...)}}
	}
	ca, _ := json.Marshal(map[string]string{"content": string(testpki.PEM(root))})
	if _, err := commit(
		merge(string(ca), listElem("trusted-ca-certificate", "name", "corp")),
		merge(`{}`, listElem("client-certificate", "name", "web")),
		merge(`{"peer-validation": true, "peer": [{"name": "p", "identifier": "peer-1"}]}`, routerElem("r1")),
	); err != nil {
		t.Fatal(err)
	}
	// A peer that presented a certificate of an unknown CA: failed state,
	// alarm, counter.
	stranger := testpki.Must(g.SelfSigned(testpki.Options{CN: "peer-1"}))
	out, err := e.ValidatePeerCertificate(ctx, admin, api.ValidatePeerInput{Router: "r1", Peer: "p", Certificate: string(testpki.PEM(stranger))})
	if err != nil || out.Result != "invalid" {
		t.Fatalf("validate peer: %+v, %v", out, err)
	}
	fc.Advance(time.Hour)
	stateJSON := func() string {
		t.Helper()
		st, err := store.State()
		if err != nil {
			t.Fatal(err)
		}
		b, err := agent.EmitJSON(st)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	before := stateJSON()
	for _, want := range []string{"certificate-missing:web", "peer-certificate:r1/p"} {
		if !strings.Contains(before, want) {
			t.Fatalf("setup: alarm %s is not active: %s", want, before)
		}
	}
	sub := bus.Subscribe(1000)
	defer sub.Close()

	// The commit clears two alarms (and forgets the peer) and raises one.
	change := []agent.Edit{
		remove(listElem("client-certificate", "name", "web")),
		remove(routerElem("r1")),
		merge(`{}`, listElem("client-certificate", "name", "api")),
	}
	journal := func() string {
		b, err := os.ReadFile(filepath.Join(dir, stateName+".journal"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	savedBefore := journal()
	disk.full.Store(true)
	_, err = commit(change...)
	if !errors.Is(err, agent.ErrPersist) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("commit on a full disk: %v", err)
	}
	select {
	case ev := <-sub.C:
		t.Fatalf("a commit that failed published %+v", ev)
	default:
	}
	if d := cmp.Diff(before, stateJSON()); d != "" {
		t.Fatalf("state after a failed commit differs from before (-before +after):\n%s", d)
	}
	if store.Running().GetAuthority().GetClientCertificate("api") != nil {
		t.Fatal("running holds the failed commit")
	}
	if journal() != savedBefore {
		t.Fatal("the engine saved the state of a commit that failed")
	}

	disk.full.Store(false)
	info, err := commit(change...)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(sub.C) > 0 {
		ev := <-sub.C
		if ev.CommitID != info.ID {
			t.Errorf("event %v of commit %d carries commit id %d", ev.Kind, info.ID, ev.CommitID)
		}
		switch ev.Kind {
		case api.EventConfig:
			got = append(got, "config")
		case api.EventState:
			got = append(got, "state")
		case api.EventNotification:
			l := ev.Notification.Leaves
			got = append(got, fmt.Sprintf("%s %s", l[0].Value, l[1].Value))
		}
	}
	want := []string{"config", "cleared peer-certificate:r1/p", "raised certificate-missing:api", "cleared certificate-missing:web", "state"}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("events of the saved commit (-want +got):\n%s", d)
	}
	if !strings.Contains(journal(), "certificate-missing:api") {
		t.Fatal("the saved commit's alarm is not in the engine's saved state")
	}
	after := stateJSON()
	if !strings.Contains(after, "certificate-missing:api") || strings.Contains(after, "certificate-missing:web") {
		t.Fatalf("state after the saved commit: %s", after)
	}
}
