package pki

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/gen"
	"github.com/pkiagent/pkiagent/internal/testpki"
)

// cacheSize is the number of bundles the cache holds.
func (t *trust) cacheSize() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.running) + len(t.validated)
}

func (ps *peers) visitCount() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.visits
}

// A commit that changes one router visits one router: the work does not
// grow with the number of routers configured (each with peer-validation,
// a peer and, for some, a verdict).
func TestCommitOfOneRouterCostsOneRouter(t *testing.T) {
	work := func(n int) (visits, stateChanges int) {
		p := newPeerFixture(t)
		var sb strings.Builder
		sb.WriteString(`{"router": [`)
		for i := range n {
			if i > 0 {
				sb.WriteString(",")
			}
			fmt.Fprintf(&sb, `{"name": "r-%05d", "peer-validation": true, "peer": [{"name": "p", "identifier": "peer-1"}]}`, i)
		}
		sb.WriteString(`]}`)
		if err := p.merge(t, sb.String()); err != nil {
			t.Fatal(err)
		}
		good, _ := p.peerPEM(t, "peer-1", testpki.Options{})
		for i := 0; i < n; i += 10 {
			out, err := p.engine.ValidatePeerCertificate(t.Context(), admin, apiPeer(fmt.Sprintf("r-%05d", i), good))
			if err != nil || out.Result != "valid" {
				t.Fatalf("validate r-%05d: %+v %v", i, out, err)
			}
		}
		for len(p.sub.C) > 0 {
			<-p.sub.C
		}
		before := p.engine.routers.visitCount()
		// The peer's identifier changes: its verdict is dropped, its state
		// goes back to unknown.
		if err := p.merge(t, `{"identifier": "peer-2"}`, routerElem("r-00000"), &gnmi.PathElem{Name: "peer", Key: map[string]string{"name": "p"}}); err != nil {
			t.Fatal(err)
		}
		visits = p.engine.routers.visitCount() - before
		for len(p.sub.C) > 0 {
			ev := <-p.sub.C
			for _, ch := range ev.Changes {
				if ch.Path.GetElem()[1].GetName() == "router" && ch.Path.GetElem()[1].GetKey()["name"] == "r-00000" {
					stateChanges++
				}
			}
		}
		if st := p.state(t).GetAuthority().GetRouter("r-00000").GetPeer("p").GetState(); st.GetStatus().String() != "unknown" {
			t.Errorf("%d routers: the peer whose identifier changed is %v, want unknown", n, st.GetStatus())
		}
		return visits, stateChanges
	}
	v10, s10 := work(10)
	v1000, s1000 := work(1000)
	t.Logf("router entries visited by a commit of one router: %d with 10 routers, %d with 1,000", v10, v1000)
	if v10 == 0 || v1000 != v10 {
		t.Errorf("a commit of one router visits %d router entries with 10 routers and %d with 1,000: want the same, above 0", v10, v1000)
	}
	if s10 == 0 || s1000 != s10 {
		t.Errorf("changes published for the router: %d with 10 routers, %d with 1,000: want the same, above 0", s10, s1000)
	}
}

// The bundle cache holds the bundles running needs and those of the last
// commit that passed validation: 1,000 distinct bundles that parse but are
// refused (an expired CA in strict mode) leave nothing behind.
func TestBundleCacheHoldsWhatRunningNeeds(t *testing.T) {
	f := newFixture(t)
	h := testpki.Must(f.gen.Hierarchy(2))
	if err := f.setTrusted(t, "corp", string(testpki.PEM(h[0], h[1])), "strict"); err != nil {
		t.Fatal(err)
	}
	if err := f.setTrusted(t, "other", string(testpki.PEM(h[0])), "strict"); err != nil {
		t.Fatal(err)
	}
	want := f.engine.trust.cacheSize()
	if want != 2 {
		t.Fatalf("cache holds %d bundles with two trusted CAs in running, want 2", want)
	}
	key, err := testpki.NewKey(testpki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		ca := testpki.Must(f.gen.Root(testpki.Options{CN: fmt.Sprintf("expired CA %d", i), Key: key,
			NotBefore: t0.Add(-48 * time.Hour), NotAfter: t0.Add(-time.Hour)}))
		name := fmt.Sprintf("bad-%d", i)
		if i%100 == 0 { // through the store, as a client commits
			if err := f.setTrusted(t, name, string(ca.PEM()), "strict"); err == nil {
				t.Fatalf("bundle %d of an expired CA was accepted in strict mode", i)
			}
			continue
		}
		running := f.store.Running()
		next := &gen.Device{}
		if err := ygot.MergeStructInto(next, running); err != nil {
			t.Fatal(err)
		}
		ca2, _ := next.GetOrCreateAuthority().NewTrustedCaCertificate(name)
		ca2.Content = ygot.String(string(ca.PEM()))
		c := &api.Commit{Old: running, New: next, Changes: []api.Change{{Path: &gnmi.Path{Elem: []*gnmi.PathElem{
			{Name: "authority"}, listElem("trusted-ca-certificate", "name", name), {Name: "content"}}}}}}
		if err := f.engine.Validate(t.Context(), c); err == nil {
			t.Fatalf("bundle %d of an expired CA passed validation in strict mode", i)
		}
	}
	if got := f.engine.trust.cacheSize(); got != want {
		t.Errorf("after 1,000 refused bundles the cache holds %d, want %d (what running holds)", got, want)
	}
	// Replacing a CA drops the old bundle.
	if err := f.setTrusted(t, "other", string(testpki.PEM(h[1], h[0])), "strict"); err != nil {
		t.Fatal(err)
	}
	if got := f.engine.trust.cacheSize(); got != 2 {
		t.Errorf("after replacing a CA the cache holds %d, want 2", got)
	}
}

func apiPeer(router, pem string) api.ValidatePeerInput {
	return api.ValidatePeerInput{Router: router, Peer: "p", Certificate: pem}
}
