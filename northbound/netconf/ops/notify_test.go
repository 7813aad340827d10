package ops

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openconfig/gnmi/proto/gnmi"

	"github.com/pkiagent/pkiagent/agent/api"
)

// referenceEdits is the former topmostEdits, quadratic in the changes: the
// specification editIndex must meet.
func referenceEdits(changes []api.Change) []configEdit {
	underEntry := func(path, entry []*gnmi.PathElem) bool {
		if len(path) < len(entry) {
			return false
		}
		for i, e := range entry {
			if path[i].GetName() != e.GetName() || !maps.Equal(path[i].GetKey(), e.GetKey()) {
				return false
			}
		}
		return true
	}
	var created []configEdit
	for _, c := range changes {
		elems := c.Path.GetElem()
		if n := len(elems); n >= 2 && hasKey(elems[n-2], elems[n-1].GetName()) {
			op := "create"
			if c.Value == nil {
				op = "delete"
			}
			created = append(created, configEdit{target: elems[:n-1], operation: op})
		}
	}
	covered := func(path []*gnmi.PathElem, self int) bool {
		return slices.ContainsFunc(created, func(e configEdit) bool {
			return (self < 0 || len(e.target) < len(created[self].target)) && underEntry(path, e.target)
		})
	}
	var out []configEdit
	for i, e := range created {
		if !covered(e.target, i) {
			out = append(out, e)
		}
	}
	for _, c := range changes {
		elems := c.Path.GetElem()
		if covered(elems, -1) {
			continue
		}
		op := "replace"
		if c.Value == nil {
			op = "delete"
		}
		out = append(out, configEdit{target: elems, operation: op})
	}
	return out
}

func editStrings(es []configEdit) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.operation+" "+api.PathString(&gnmi.Path{Elem: e.target}))
	}
	return out
}

func leafChange(path string, set bool) api.Change {
	p := &gnmi.Path{Elem: parsePath(path)}
	if !set {
		return api.Change{Path: p}
	}
	return api.Change{Path: p, Value: &gnmi.TypedValue{Value: &gnmi.TypedValue_StringVal{StringVal: "v"}}}
}

// routerChanges is what a commit creating n routers (each with a peer)
// and changing one setting publishes.
func routerChanges(n int) []api.Change {
	var chs []api.Change
	for i := range n {
		r := fmt.Sprintf("/authority/router[name=r%d]", i)
		chs = append(chs,
			leafChange(r+"/name", true),
			leafChange(r+"/peering-common-name", true),
			leafChange(r+"/peer[name=p]/name", true),
			leafChange(r+"/peer[name=p]/identifier", true),
		)
	}
	return append(chs, leafChange("/authority/crl-settings/http-proxy", false))
}

// The edits of a netconf-config-change cost what the commit changed: the
// prefixes looked up grow linearly with the changes (at most their depth
// each), never with their square, however many entries a commit creates.
func TestConfigChangeWorkIsLinear(t *testing.T) {
	work := func(n int) (int, int) {
		chs := routerChanges(n)
		var ix editIndex
		ix.topmost(chs, len(chs))
		return ix.lookups, len(chs)
	}
	small, nSmall := work(100)
	big, nBig := work(10_000)
	const depth = 5 // the deepest change: /authority/router/peer/identifier
	if big > depth*nBig {
		t.Errorf("%d lookups for %d changes: more than %d per change", big, nBig, depth)
	}
	if big > small*(nBig/nSmall+1) {
		t.Errorf("work grew faster than the changes: %d lookups for %d changes, %d for %d", small, nSmall, big, nBig)
	}
}

func TestConfigChangeEdits(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		changes []api.Change
		want    []string
	}{
		{"a new entry is one create", []api.Change{
			leafChange("/authority/router[name=r1]/name", true),
			leafChange("/authority/router[name=r1]/peer[name=p]/name", true),
			leafChange("/authority/router[name=r1]/peer[name=p]/identifier", true),
		}, []string{"create /authority/router[name=r1]"}},
		{"a new peer in an existing router", []api.Change{
			leafChange("/authority/router[name=r1]/peer[name=p]/name", true),
			leafChange("/authority/router[name=r1]/peer[name=p]/identifier", true),
			leafChange("/authority/router[name=r1]/peering-common-name", true),
		}, []string{"create /authority/router[name=r1]/peer[name=p]", "replace /authority/router[name=r1]/peering-common-name"}},
		{"a deleted entry and a deleted leaf", []api.Change{
			leafChange("/authority/router[name=r2]/name", false),
			leafChange("/authority/router[name=r2]/peering-common-name", false),
			leafChange("/authority/crl-settings/http-proxy", false),
		}, []string{"delete /authority/router[name=r2]", "delete /authority/crl-settings/http-proxy"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var ix editIndex
			if diff := cmp.Diff(tc.want, editStrings(ix.topmost(tc.changes, 64))); diff != "" {
				t.Errorf("-want +got:\n%s", diff)
			}
		})
	}
}

// editIndex gives the edits the former quadratic version gave, over
// random commits.
func TestConfigChangeEditsAgreeWithReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	leaves := []string{"/name", "/peering-common-name", "/peer[name=%s]/name", "/peer[name=%s]/identifier"}
	for range 500 {
		var chs []api.Change
		for range rng.IntN(12) {
			l := leaves[rng.IntN(len(leaves))]
			if rng.IntN(2) == 0 {
				l = fmt.Sprintf(l, []string{"a", "b"}[rng.IntN(2)])
			} else if len(l) > 20 {
				l = fmt.Sprintf(l, "a")
			}
			chs = append(chs, leafChange(fmt.Sprintf("/authority/router[name=r%d]", rng.IntN(3))+l, rng.IntN(3) > 0))
		}
		want := editStrings(referenceEdits(chs))
		var ix editIndex
		got := editStrings(ix.topmost(chs, len(chs)+1))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%d changes: -reference +got:\n%s", len(chs), diff)
		}
		var capped editIndex
		if got := editStrings(capped.topmost(chs, 3)); !slices.Equal(got, want[:min(3, len(want))]) {
			t.Fatalf("the first 3 edits %v differ from %v", got, want)
		}
	}
}

// parsePath reads a path in api.PathString syntax
// (/a/b[k=v]/c, "]" and "\" escaped in key values) into elements. It is
// lenient: it reads what it can and never fails.
func parsePath(s string) []*gnmi.PathElem {
	var out []*gnmi.PathElem
	var cur *gnmi.PathElem
	i := 0
	for i < len(s) {
		switch s[i] {
		case '/':
			i++
			j := i
			for j < len(s) && s[j] != '/' && s[j] != '[' {
				j++
			}
			if j > i {
				cur = &gnmi.PathElem{Name: s[i:j]}
				out = append(out, cur)
			}
			i = j
		case '[':
			i++
			j := strings.IndexByte(s[i:], '=')
			if j < 0 || cur == nil {
				return out
			}
			k := s[i : i+j]
			i += j + 1
			var v strings.Builder
			for i < len(s) && s[i] != ']' {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				v.WriteByte(s[i])
				i++
			}
			i++ // ]
			if cur.Key == nil {
				cur.Key = map[string]string{}
			}
			cur.Key[k] = v.String()
		default:
			i++
		}
	}
	return out
}
