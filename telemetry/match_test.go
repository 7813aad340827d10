package telemetry

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openconfig/gnmi/proto/gnmi"
)

// elems parses "/a/b[k=v]/c" (no escapes: test paths only).
func elems(t testing.TB, s string) []*gnmi.PathElem {
	t.Helper()
	var out []*gnmi.PathElem
	for _, part := range strings.Split(strings.Trim(s, "/"), "/") {
		if part == "" {
			continue
		}
		name, rest, _ := strings.Cut(part, "[")
		pe := &gnmi.PathElem{Name: name}
		for rest != "" {
			kv, after, ok := strings.Cut(rest, "]")
			if !ok {
				t.Fatalf("bad test path %q", s)
			}
			k, v, _ := strings.Cut(kv, "=")
			if pe.Key == nil {
				pe.Key = map[string]string{}
			}
			pe.Key[k] = v
			rest = strings.TrimPrefix(after, "[")
		}
		out = append(out, pe)
	}
	return out
}

// reference is the specification of Tree: a path matches a pattern when
// it lies at or under what the pattern selects, or (subtree) is an
// ancestor of it.
func reference(pat, p []*gnmi.PathElem, subtree bool) bool {
	for i, pe := range pat {
		if pe.Name == AnyDepth {
			for j := 0; j <= len(p); j++ {
				if reference(pat[i+1:], p[j:], subtree) {
					return true
				}
			}
			return false
		}
		if len(p) == 0 {
			return subtree
		}
		if pe.Name != Any && pe.Name != p[0].Name {
			return false
		}
		for k, v := range pe.Key {
			if got, ok := p[0].Key[k]; v != Any && (!ok || got != v) {
				return false
			}
		}
		p = p[1:]
	}
	return true
}

func matches(tr *Tree[string], path []*gnmi.PathElem, subtree bool) []string {
	var got []string
	f := func(v string) { got = append(got, v) }
	if subtree {
		tr.MatchSubtree(path, f)
	} else {
		tr.Match(path, f)
	}
	slices.Sort(got)
	return got
}

func TestTreeMatch(t *testing.T) {
	patterns := map[string]string{
		"alarms":      "/alarms",
		"alarm":       "/alarms/alarm",
		"alarmX":      "/alarms/alarm[id=x]",
		"alarmXtext":  "/alarms/alarm[id=x]/text",
		"alarmAny":    "/alarms/alarm[id=*]/severity",
		"star":        "/*/alarm",
		"deep":        "/.../text",
		"authPeer":    "/authority/router[name=r1]/.../identifier",
		"root":        "/",
		"multiPart":   "/m/e[a=1]",
		"multiFull":   "/m/e[a=1][b=2]/x",
		"multiOtherB": "/m/e[b=3]",
	}
	tr := NewTree[string]()
	for v, p := range patterns {
		tr.Add(elems(t, p), v)
	}
	all := slices.Sorted(maps.Keys(patterns))
	for _, tc := range []struct {
		desc    string
		path    string
		subtree bool // a delete
		want    []string
	}{
		{desc: "a leaf of one alarm", path: "/alarms/alarm[id=x]/text", want: []string{"alarm", "alarmX", "alarmXtext", "alarms", "deep", "root", "star"}},
		{desc: "another alarm's text", path: "/alarms/alarm[id=y]/text", want: []string{"alarm", "alarms", "deep", "root", "star"}},
		{desc: "another alarm's severity", path: "/alarms/alarm[id=y]/severity", want: []string{"alarm", "alarmAny", "alarms", "root", "star"}},
		{desc: "the delete of an entry reaches its leaves", path: "/alarms/alarm[id=x]", subtree: true, want: []string{"alarm", "alarmAny", "alarmX", "alarmXtext", "alarms", "deep", "root", "star"}},
		{desc: "the delete of the container reaches everything below", path: "/alarms", subtree: true, want: []string{"alarm", "alarmAny", "alarmX", "alarmXtext", "alarms", "deep", "root", "star"}},
		{desc: "the delete of a leaf", path: "/alarms/alarm[id=y]/severity", subtree: true, want: []string{"alarm", "alarmAny", "alarms", "deep", "root", "star"}},
		{desc: "any depth", path: "/authority/router[name=r1]/peer[name=p]/identifier", want: []string{"authPeer", "root"}},
		{desc: "any depth, other router", path: "/authority/router[name=r2]/peer[name=p]/identifier", want: []string{"root"}},
		{desc: "any depth, zero elements", path: "/authority/router[name=r1]/identifier", want: []string{"authPeer", "root"}},
		{desc: "text at any depth", path: "/certificates/certificate[name=c]/text", want: []string{"deep", "root"}},
		{desc: "keys named in part", path: "/m/e[a=1][b=2]/x", want: []string{"multiFull", "multiPart", "root"}},
		{desc: "keys named in part, other value", path: "/m/e[a=1][b=3]/x", want: []string{"multiOtherB", "multiPart", "root"}},
		{desc: "the delete of everything", path: "/", subtree: true, want: all},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, matches(tr, elems(t, tc.path), tc.subtree)); diff != "" {
				t.Errorf("Match(%s) -want +got:\n%s", tc.path, diff)
			}
		})
	}
	// Removing every pattern leaves an empty tree.
	for v, p := range patterns {
		tr.Remove(elems(t, p), v)
	}
	if !tr.root.empty() || len(tr.patterns) != 0 || tr.multi != 0 || tr.deep != 0 {
		t.Fatalf("tree not empty after removing every pattern: %+v", tr)
	}
}

// A value with several patterns, or one reached by AnyDepth in several
// ways, is reported once; removing one of its patterns keeps the others.
func TestTreeReportsAValueOnce(t *testing.T) {
	tr := NewTree[string]()
	tr.Add(elems(t, "/alarms"), "s")
	tr.Add(elems(t, "/alarms/alarm"), "s")
	tr.Add(elems(t, "/.../alarm/..."), "d")
	tr.Add(elems(t, "/alarms"), "twice")
	tr.Add(elems(t, "/alarms"), "twice")
	path := elems(t, "/alarms/alarm[id=a]/alarm/alarm[id=b]/text")
	if diff := cmp.Diff([]string{"d", "s", "twice"}, matches(tr, path, false)); diff != "" {
		t.Fatalf("-want +got:\n%s", diff)
	}
	tr.Remove(elems(t, "/alarms"), "s")
	tr.Remove(elems(t, "/alarms"), "twice")
	tr.Remove(elems(t, "/nothing"), "d") // not registered: no effect
	if diff := cmp.Diff([]string{"d", "s", "twice"}, matches(tr, path, false)); diff != "" {
		t.Fatalf("after removing one pattern each -want +got:\n%s", diff)
	}
	tr.Remove(elems(t, "/alarms"), "twice")
	if diff := cmp.Diff([]string{"d", "s"}, matches(tr, path, false)); diff != "" {
		t.Fatalf("after removing the second /alarms of twice -want +got:\n%s", diff)
	}
}

// The tree agrees with the reference over random patterns and paths.
func TestTreeAgreesWithReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"a", "b", "c"}
	vals := []string{"1", "2"}
	randPath := func(wild bool) []*gnmi.PathElem {
		var out []*gnmi.PathElem
		for range rng.IntN(5) {
			pe := &gnmi.PathElem{Name: names[rng.IntN(len(names))]}
			if wild {
				switch rng.IntN(6) {
				case 0:
					pe.Name = Any
				case 1:
					out = append(out, &gnmi.PathElem{Name: AnyDepth})
					continue
				}
			}
			if rng.IntN(2) == 0 {
				pe.Key = map[string]string{}
				for _, k := range []string{"k", "j"} {
					switch r := rng.IntN(3); {
					case r == 0 && wild:
						pe.Key[k] = Any
					case r < 2:
						pe.Key[k] = vals[rng.IntN(len(vals))]
					}
				}
			}
			out = append(out, pe)
		}
		return out
	}
	tr := NewTree[int]()
	var pats [][]*gnmi.PathElem
	for i := range 200 {
		pats = append(pats, randPath(true))
		tr.Add(pats[i], i)
	}
	for i := range 4000 {
		p, subtree := randPath(false), i%2 == 0
		var want []int
		for i, pat := range pats {
			if reference(pat, p, subtree) {
				want = append(want, i)
			}
		}
		var got []int
		f := func(v int) { got = append(got, v) }
		if subtree {
			tr.MatchSubtree(p, f)
		} else {
			tr.Match(p, f)
		}
		slices.Sort(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("path %v (subtree %v) -reference +tree:\n%s", p, subtree, diff)
		}
	}
}

// BenchmarkTreeMatch: one alarm leaf against 1,000 subscriptions to one
// alarm each and 1,000 to every alarm.
func BenchmarkTreeMatch(b *testing.B) {
	tr := NewTree[int]()
	for i := range 1000 {
		tr.Add(elems(b, fmt.Sprintf("/alarms/alarm[id=a%d]", i)), i)
		tr.Add(elems(b, "/alarms/alarm"), 1000+i)
	}
	p := elems(b, "/alarms/alarm[id=a7]/text")
	n := 0
	for b.Loop() {
		tr.Match(p, func(int) { n++ })
	}
	if n != b.N*1001 {
		b.Fatalf("%d matches in %d lookups", n, b.N)
	}
}
