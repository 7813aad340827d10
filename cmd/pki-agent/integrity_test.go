package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nemith/netconf"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// routerElems is the gNMI path of /authority/router[name], with the
// elements of leaf below it.
func routerElems(name string, leaf ...string) *gpb.Path {
	p := &gpb.Path{Elem: []*gpb.PathElem{{Name: "authority"}, {Name: "router", Key: map[string]string{"name": name}}}}
	for _, l := range leaf {
		p.Elem = append(p.Elem, &gpb.PathElem{Name: l})
	}
	return p
}

// jsonUpdate is a gNMI update as gnmic sends it with its default -e json.
func jsonUpdate(p *gpb.Path, v string) *gpb.Update {
	return &gpb.Update{Path: p, Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonVal{JsonVal: []byte(v)}}}
}

// getAuthority returns /authority of running as decoded JSON_IETF.
func getAuthority(t *testing.T, ctx context.Context, g gpb.GNMIClient) map[string]any {
	t.Helper()
	resp, err := g.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{{Elem: []*gpb.PathElem{{Name: "authority"}}}}, Type: gpb.GetRequest_CONFIG, Encoding: gpb.Encoding_JSON_IETF})
	if err != nil {
		t.Fatal(err)
	}
	var ups []*gpb.Update
	for _, n := range resp.GetNotification() {
		ups = append(ups, n.GetUpdate()...)
	}
	if len(ups) != 1 {
		t.Fatalf("Get /authority: %d updates, want 1: %v", len(ups), resp)
	}
	var v map[string]any
	if err := json.Unmarshal(ups[0].GetVal().GetJsonIetfVal(), &v); err != nil {
		t.Fatal(err)
	}
	// RFC 7951 allows the module name on any member; compare without it.
	out := map[string]any{}
	for k, x := range v {
		out[strings.TrimPrefix(k, "pki-authority:")] = x
	}
	return out
}

// TestGNMIKeyLeafSetRefusedAndRestartLoads is the reproduction of issue 10
// finding 1 over the binary: set peer-validation, then the key leaf name
// to another value, then delete the key leaf. Before, the rename was
// acknowledged and the agent refused to start again ("record 2 (commit 2)
// does not apply"); the delete left an entry without its key. Now both are
// InvalidArgument naming the path, and after a restart Get shows the same.
func TestGNMIKeyLeafSetRefusedAndRestartLoads(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	p := runAgentBinary(t, state)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g := gnmiClient(t, p, state)
	if _, err := g.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{jsonUpdate(routerElems("a", "peer-validation"), "true")}}); err != nil {
		t.Fatal(err)
	}
	for _, req := range []*gpb.SetRequest{
		{Update: []*gpb.Update{jsonUpdate(routerElems("a", "name"), `"b"`)}},
		{Replace: []*gpb.Update{jsonUpdate(routerElems("a", "name"), `"b"`)}},
		{Delete: []*gpb.Path{routerElems("a", "name")}},
		{Delete: []*gpb.Path{routerElems("x", "name")}},
		{Update: []*gpb.Update{jsonUpdate(routerElems("a"), `{"name": "b", "peer-validation": true}`)}},
	} {
		_, err := g.Set(ctx, req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "/authority/router[name=") ||
			!strings.Contains(err.Error(), "cannot be changed or deleted on its own: delete the entry and create it instead") {
			t.Fatalf("Set %v: %v", req, err)
		}
	}
	// The same name is a no-op: whole entries are set with their name.
	if _, err := g.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{jsonUpdate(routerElems("a"), `{"name": "a", "peer-validation": true}`)}}); err != nil {
		t.Fatal(err)
	}
	before := getAuthority(t, ctx, g)
	if err := p.stop(); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.log())
	}
	p = runAgentBinary(t, state)
	g = gnmiClient(t, p, state)
	after := getAuthority(t, ctx, g)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("running before the restart:\n%v\nafter:\n%v", before, after)
	}
	routers, _ := after["router"].([]any)
	if len(routers) != 1 {
		t.Fatalf("running after the restart: %v, want router a only", after)
	}
	if r := routers[0].(map[string]any); r["name"] != "a" || r["peer-validation"] != true {
		t.Fatalf("running after the restart: %v, want router a with peer-validation", after)
	}
}

// TestNETCONFCommitKeepsGNMISets is the reproduction of issue 10 finding 3
// over the binary: session 1 edits the candidate; a gNMI Set adds router
// g-1 (OK); session 1 commits. Before, g-1 was gone. With lock candidate
// (the README's pattern), the gNMI Set is refused naming the session while
// the lock is held.
func TestNETCONFCommitKeepsGNMISets(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	p := runAgentBinary(t, state)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g := gnmiClient(t, p, state)
	nc := dialNemith(t, ctx, p)
	edit := func(router string) {
		t.Helper()
		if err := nc.EditConfig(ctx, netconf.Candidate, `<authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>`+router+`</name><peer-validation>true</peer-validation></router></authority>`); err != nil {
			t.Fatal(err)
		}
	}
	gset := func(router string) error {
		_, err := g.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{jsonUpdate(routerElems(router, "peer-validation"), "true")}})
		return err
	}

	edit("n-1")
	if err := gset("g-1"); err != nil {
		t.Fatal(err)
	}
	if err := nc.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	running := func() string {
		t.Helper()
		run, err := nc.GetConfig(ctx, netconf.Running)
		if err != nil {
			t.Fatal(err)
		}
		return string(run)
	}
	if run := running(); !strings.Contains(run, "<name>g-1</name>") || !strings.Contains(run, "<name>n-1</name>") {
		t.Fatalf("running after the NETCONF commit: %s", run)
	}

	if err := nc.Lock(ctx, netconf.Candidate); err != nil {
		t.Fatal(err)
	}
	edit("n-2")
	err := gset("g-2")
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "locked by netconf session "+strconv.FormatUint(nc.SessionID(), 10)) {
		t.Fatalf("gNMI Set under a NETCONF candidate lock: %v", err)
	}
	if err := nc.Unlock(ctx, netconf.Candidate); err != nil {
		t.Fatal(err)
	}
	if err := gset("g-2"); err != nil {
		t.Fatal(err)
	}
	if err := nc.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"g-1", "n-1", "g-2", "n-2"} {
		if run := running(); !strings.Contains(run, "<name>"+r+"</name>") {
			t.Fatalf("running lacks %s: %s", r, run)
		}
	}

	// A node running changed after the candidate edited it: the commit is
	// refused naming it, running keeps the gNMI write.
	if err := nc.EditConfig(ctx, netconf.Candidate, `<authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>g-1</name><peering-common-name>from-netconf</peering-common-name></router></authority>`); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{jsonUpdate(routerElems("g-1", "peering-common-name"), `"from-gnmi"`)}}); err != nil {
		t.Fatal(err)
	}
	err = nc.Commit(ctx)
	var rpcErr netconf.RPCError
	if !errors.As(err, &rpcErr) || rpcErr.Tag != netconf.ErrResourceDenied || !strings.Contains(rpcErr.Path, "peering-common-name") {
		t.Fatalf("conflicting commit: %#v", err)
	}
	if run := running(); !strings.Contains(run, "from-gnmi") || strings.Contains(run, "from-netconf") {
		t.Fatalf("running after the refused commit: %s", run)
	}
}

// TestConcurrentGNMIAndNETCONFWritersLoseNothing runs 10 gNMI writers and 5
// NETCONF sessions at once for a bounded time. Each gNMI writer sets its
// own leaf over and over; each NETCONF session edits its own router in the
// shared candidate and commits (every other round under a candidate lock,
// which refuses the gNMI writers meanwhile). At the end every writer's last
// acknowledged value is in running, and in running after a restart.
func TestConcurrentGNMIAndNETCONFWritersLoseNothing(t *testing.T) {
	const gnmiWriters, ncSessions = 10, 5
	duration := faultDuration(3*time.Second, 30*time.Second)
	if testing.Short() {
		duration = time.Second
	}
	state := filepath.Join(t.TempDir(), "state")
	p := runAgentBinary(t, state)
	ctx, cancel := context.WithTimeout(context.Background(), duration+90*time.Second)
	defer cancel()
	g := gnmiClient(t, p, state)

	var mu sync.Mutex
	acked := map[string]string{}  // writer's node -> last acknowledged value
	var sets, locked, commits int // acknowledged gNMI Sets, Sets refused by a lock, NETCONF commits
	var wg sync.WaitGroup
	errs := make(chan error, gnmiWriters+ncSessions)
	ncs := make([]*netconf.Session, ncSessions)
	for n := range ncs {
		ncs[n] = dialNemith(t, ctx, p)
	}
	// Each writer runs for duration, and on until it has had 3 writes
	// acknowledged (a loaded machine), but never past hardStop.
	stop, hardStop := time.Now().Add(duration), time.Now().Add(duration+30*time.Second)
	for w := range gnmiWriters {
		wg.Go(func() {
			// Half the writers share router "shared", each its own peer,
			// so concurrent Sets write inside one entry.
			router, node := fmt.Sprintf("g-%d", w), "peering-common-name"
			path := routerElems(router, node)
			if w%2 == 1 {
				router, node = "shared", fmt.Sprintf("peer[name=g-%d]/identifier", w)
				path = routerElems("shared")
				path.Elem = append(path.Elem, &gpb.PathElem{Name: "peer", Key: map[string]string{"name": fmt.Sprintf("g-%d", w)}}, &gpb.PathElem{Name: "identifier"})
			}
			key := router + "/" + node
			for i, ok := 0, 0; (time.Now().Before(stop) || ok < 3) && time.Now().Before(hardStop); i++ {
				v := fmt.Sprintf("v%d-%d", w, i)
				_, err := g.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{jsonUpdate(path, strconv.Quote(v))}})
				switch status.Code(err) {
				case codes.OK:
					ok++
					mu.Lock()
					acked[key] = v
					sets++
					mu.Unlock()
				case codes.FailedPrecondition: // a NETCONF lock: not acknowledged
					mu.Lock()
					locked++
					mu.Unlock()
				default:
					errs <- fmt.Errorf("gNMI writer %d: %w", w, err)
					return
				}
			}
		})
	}
	for n, nc := range ncs {
		wg.Go(func() {
			router := fmt.Sprintf("n-%d", n)
			for i, ok := 0, 0; (time.Now().Before(stop) || ok < 3) && time.Now().Before(hardStop); i++ {
				v := fmt.Sprintf("c%d-%d", n, i)
				// Every other round under a candidate lock (refused while
				// another session's edits are in the candidate: fine).
				locked := i%2 == 1 && nc.Lock(ctx, netconf.Candidate) == nil
				editErr := nc.EditConfig(ctx, netconf.Candidate, `<authority xmlns="urn:pkiagent:yang:pki-authority"><router><name>`+router+`</name><peering-common-name>`+v+`</peering-common-name></router></authority>`)
				var commitErr error
				if editErr == nil {
					// A client between its edit and its commit, while the
					// gNMI writers go on.
					time.Sleep(time.Duration(10+n*5) * time.Millisecond)
					commitErr = nc.Commit(ctx)
				}
				if locked {
					if err := nc.Unlock(ctx, netconf.Candidate); err != nil {
						errs <- fmt.Errorf("NETCONF session %d: unlock: %w", n, err)
						return
					}
				}
				inUse := func(err error) bool {
					var rpcErr netconf.RPCError
					return errors.As(err, &rpcErr) && rpcErr.Tag == netconf.ErrInUse
				}
				switch {
				case editErr == nil && commitErr == nil:
					ok++
					mu.Lock()
					acked[router+"/peering-common-name"] = v
					commits++
					mu.Unlock()
				case inUse(editErr):
					// Another session holds the candidate lock: the edit
					// was refused, the last acknowledged value stands.
				case editErr == nil && inUse(commitErr):
					// The edit sits in the shared candidate and another
					// session's commit may carry it: the value of this
					// node is no longer known here.
					mu.Lock()
					delete(acked, router+"/peering-common-name")
					mu.Unlock()
				default:
					errs <- fmt.Errorf("NETCONF session %d: edit %v, commit %v", n, editErr, commitErr)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	check := func(when string, g gpb.GNMIClient) {
		t.Helper()
		got := map[string]string{}
		routers, _ := getAuthority(t, ctx, g)["router"].([]any)
		for _, r := range routers {
			r := r.(map[string]any)
			name := r["name"].(string)
			if v, ok := r["peering-common-name"].(string); ok {
				got[name+"/peering-common-name"] = v
			}
			peers, _ := r["peer"].([]any)
			for _, pe := range peers {
				pe := pe.(map[string]any)
				if v, ok := pe["identifier"].(string); ok {
					got[fmt.Sprintf("%s/peer[name=%s]/identifier", name, pe["name"])] = v
				}
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < gnmiWriters || commits == 0 {
			t.Fatalf("only %d nodes were ever acknowledged (%d gNMI Sets acknowledged, %d refused by a NETCONF lock; %d NETCONF commits)", len(acked), sets, locked, commits)
		}
		for k, v := range acked {
			if got[k] != v {
				t.Errorf("%s: %s = %q, last acknowledged %q", when, k, got[k], v)
			}
		}
	}
	check("running", g)
	t.Logf("%d nodes checked; %d gNMI Sets acknowledged, %d refused by a NETCONF lock; %d NETCONF commits", len(acked), sets, locked, commits)
	if err := p.stop(); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.log())
	}
	p = runAgentBinary(t, state)
	check("running after a restart", gnmiClient(t, p, state))
}
