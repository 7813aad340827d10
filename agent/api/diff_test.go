package api

import (
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"testing"

	"github.com/openconfig/ygot/ygot"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/pkiagent/pkiagent/gen"
)

// randomDevice builds a tree of routers with peers, trusted CAs and CRL
// sources, their leaves set at random.
func randomDevice(r *rand.Rand) *gen.Device {
	d := &gen.Device{}
	a := d.GetOrCreateAuthority()
	str := func(s string) *string { return &s }
	for i := range r.Intn(6) {
		rt := a.GetOrCreateRouter(fmt.Sprintf("r%d", i))
		if r.Intn(2) == 0 {
			b := r.Intn(2) == 0
			rt.PeerValidation = &b
		}
		if r.Intn(2) == 0 {
			rt.PeeringCommonName = str(fmt.Sprintf("cn-%d", r.Intn(3)))
		}
		for j := range r.Intn(3) {
			p := rt.GetOrCreatePeer(fmt.Sprintf("p%d", j))
			if r.Intn(2) == 0 {
				p.Identifier = str(fmt.Sprintf("id-%d", r.Intn(3)))
			}
		}
	}
	for i := range r.Intn(4) {
		c := a.GetOrCreateTrustedCaCertificate(fmt.Sprintf("ca%d", i))
		if r.Intn(2) == 0 {
			c.Content = str(fmt.Sprintf("pem-%d", r.Intn(3)))
		}
	}
	for i := range r.Intn(3) {
		c := a.GetOrCreateCertificateRevocationList(fmt.Sprintf("http://x/%d.crl", i))
		if r.Intn(2) == 0 {
			v := uint16(1 + r.Intn(3))
			c.PollingInterval = &v
		}
	}
	if r.Intn(2) == 0 {
		b := r.Intn(2) == 0
		a.GetOrCreateCrlSettings().DiscoverFromCertificates = &b
	}
	if r.Intn(5) == 0 {
		d.Authority = nil
	}
	return d
}

func changeSet(t *testing.T, cs []Change) []string {
	var out []string
	for _, c := range cs {
		v := "delete"
		if c.Value != nil {
			v = prototext.Format(c.Value)
		}
		out = append(out, PathString(c.Path)+" "+v)
	}
	slices.Sort(out)
	return out
}

func ygotDiff(t *testing.T, old, cur *gen.Device) []Change {
	n, err := ygot.Diff(old, cur)
	if err != nil {
		t.Fatal(err)
	}
	var out []Change
	for _, p := range n.GetDelete() {
		out = append(out, Change{Path: p})
	}
	for _, u := range n.GetUpdate() {
		out = append(out, Change{Path: u.GetPath(), Value: u.GetVal()})
	}
	return out
}

// DiffNodes finds the changes ygot.Diff finds, over random pairs of trees
// and over trees that share subtrees as copy-on-write leaves them.
func TestDiffAgreesWithYgot(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := range 2000 {
		old, cur := randomDevice(r), randomDevice(r)
		if i%3 == 0 && old.Authority != nil && cur.Authority != nil && cur.Authority.Router != nil {
			// Share some entries, as copy-on-write does.
			for k, v := range old.Authority.Router {
				if r.Intn(2) == 0 {
					cur.Authority.Router[k] = v
				}
			}
		}
		got, err := Diff(old, cur)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := changeSet(t, got), changeSet(t, ygotDiff(t, old, cur)); !slices.Equal(g, w) {
			t.Fatalf("pair %d:\ngot  %q\nwant %q", i, g, w)
		}
		for j, c := range got {
			if c.Value != nil && slices.ContainsFunc(got[j:], func(c Change) bool { return c.Value == nil }) {
				t.Fatalf("pair %d: a delete follows an update", i)
			}
		}
	}
}

// A change of one entry among many costs that entry: the work does not grow
// with the list (allocations counted, not time).
func TestDiffCostFollowsTheChange(t *testing.T) {
	allocs := func(n int) float64 {
		old := &gen.Device{}
		for i := range n {
			old.GetOrCreateAuthority().GetOrCreateRouter(fmt.Sprintf("r%05d", i)).GetOrCreatePeer("p")
		}
		cur := *old
		a := *old.Authority
		a.Router = make(map[string]*gen.PkiAuthority_Authority_Router, len(old.Authority.Router))
		for k, v := range old.Authority.Router {
			a.Router[k] = v
		}
		changed := *a.Router["r00001"]
		b := true
		changed.PeerValidation = &b
		a.Router["r00001"] = &changed
		cur.Authority = &a
		return testing.AllocsPerRun(5, func() {
			ch, err := DiffNodes(reflect.ValueOf(old), reflect.ValueOf(&cur), nil)
			if err != nil || len(ch) != 1 {
				t.Fatalf("%v %v", ch, err)
			}
		})
	}
	small, large := allocs(10), allocs(5000)
	t.Logf("allocations of a diff of one router leaf: %.0f with 10 routers, %.0f with 5,000", small, large)
	if large > small*1.5+20 {
		t.Errorf("a diff of one router among 5,000 allocates %.0f times, among 10 %.0f: it grows with the list", large, small)
	}
}
