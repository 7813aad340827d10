package telemetry

import (
	"sort"
	"strconv"
	"strings"

	"github.com/openconfig/gnmi/proto/gnmi"
)

// Wildcards of a pattern: Any matches one element of any name, AnyDepth
// any number of elements (none included), and a key value Any (or a key
// the pattern leaves out) any value of that key.
const (
	Any      = "*"
	AnyDepth = "..."
)

// Tree finds the values (subscriptions) whose path patterns match a
// concrete path: Match for a leaf that changed (it lies at or under what
// the pattern selects), MatchSubtree for a node deleted with all below it
// (it may also be an ancestor of what the pattern selects, so the delete
// of a list entry reaches a subscription to one of its leaves). A lookup costs the
// depth of the path and the matches it finds, not the number of patterns:
// children are indexed by element name and by key values. Not safe for
// concurrent use; the caller guards it.
type Tree[T comparable] struct {
	root node[T]
	// patterns counts the patterns of each value; multi how many values
	// have more than one and deep how many patterns hold AnyDepth: only
	// then can one lookup reach a value twice.
	patterns map[T]int
	multi    int
	deep     int
}

type node[T comparable] struct {
	vals     map[T]int // values whose pattern ends here, with their count
	children map[string]*edges[T]
}

// edges are the children of a node for one element name: wild for
// patterns with no concrete key, keyed by the canonical form of the
// concrete keys.
type edges[T comparable] struct {
	wild  *node[T]
	keyed map[string]*node[T]
}

// NewTree returns an empty tree.
func NewTree[T comparable]() *Tree[T] { return &Tree[T]{patterns: map[T]int{}} }

// Add registers v under pattern. A value may hold several patterns; the
// same pattern added twice must be removed twice.
func (t *Tree[T]) Add(pattern []*gnmi.PathElem, v T) {
	n := &t.root
	for _, pe := range pattern {
		n = n.child(pe, true)
	}
	if n.vals == nil {
		n.vals = map[T]int{}
	}
	n.vals[v]++
	if t.patterns[v]++; t.patterns[v] == 2 {
		t.multi++
	}
	if deep(pattern) {
		t.deep++
	}
}

// Remove unregisters one pattern of v added with Add.
func (t *Tree[T]) Remove(pattern []*gnmi.PathElem, v T) {
	if t.root.remove(pattern, v) {
		switch t.patterns[v]--; t.patterns[v] {
		case 0:
			delete(t.patterns, v)
		case 1:
			t.multi--
		}
		if deep(pattern) {
			t.deep--
		}
	}
}

// Match calls f once for every value with a pattern that selects path or
// one of its ancestors: the subscriptions a change of the leaf at path
// concerns.
func (t *Tree[T]) Match(path []*gnmi.PathElem, f func(T)) { t.match(path, false, f) }

// MatchSubtree calls f once for every value with a pattern that selects
// path, one of its ancestors or one of its descendants: the subscriptions
// the delete of the node at path (and all below it) concerns.
func (t *Tree[T]) MatchSubtree(path []*gnmi.PathElem, f func(T)) { t.match(path, true, f) }

func (t *Tree[T]) match(path []*gnmi.PathElem, subtree bool, f func(T)) {
	if t.multi > 0 || t.deep > 0 {
		seen := map[T]struct{}{}
		g := f
		f = func(v T) {
			if _, ok := seen[v]; !ok {
				seen[v] = struct{}{}
				g(v)
			}
		}
	}
	t.root.match(lookup[T]{f: f, subtree: subtree}, path)
}

// lookup is one Match: what to call and whether descendants count.
type lookup[T comparable] struct {
	f       func(T)
	subtree bool
}

func deep(pattern []*gnmi.PathElem) bool {
	for _, pe := range pattern {
		if pe.GetName() == AnyDepth {
			return true
		}
	}
	return false
}

// concreteKeys returns the canonical form of the keys of pe that are not
// Any ("" for none): sorted, each name and value length-prefixed so no
// two sets of keys share a form.
func concreteKeys(keys map[string]string) string {
	names := make([]string, 0, len(keys))
	for k, v := range keys {
		if v != Any {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		v := keys[k]
		b.WriteString(strconv.Itoa(len(k)))
		b.WriteByte(':')
		b.WriteString(k)
		b.WriteString(strconv.Itoa(len(v)))
		b.WriteByte(':')
		b.WriteString(v)
	}
	return b.String()
}

// child returns the child of n for the pattern element pe, made when
// create is set (nil when absent otherwise).
func (n *node[T]) child(pe *gnmi.PathElem, create bool) *node[T] {
	es := n.children[pe.GetName()]
	if es == nil {
		if !create {
			return nil
		}
		if n.children == nil {
			n.children = map[string]*edges[T]{}
		}
		es = &edges[T]{}
		n.children[pe.GetName()] = es
	}
	k := ""
	if pe.GetName() != AnyDepth {
		k = concreteKeys(pe.GetKey())
	}
	if k == "" {
		if es.wild == nil && create {
			es.wild = &node[T]{}
		}
		return es.wild
	}
	c := es.keyed[k]
	if c == nil && create {
		if es.keyed == nil {
			es.keyed = map[string]*node[T]{}
		}
		c = &node[T]{}
		es.keyed[k] = c
	}
	return c
}

// remove removes one v from the end of pattern below n, pruning empty
// nodes, and reports whether it was there.
func (n *node[T]) remove(pattern []*gnmi.PathElem, v T) bool {
	if len(pattern) == 0 {
		if n.vals[v] == 0 {
			return false
		}
		if n.vals[v]--; n.vals[v] == 0 {
			delete(n.vals, v)
		}
		return true
	}
	pe := pattern[0]
	c := n.child(pe, false)
	if c == nil || !c.remove(pattern[1:], v) {
		return false
	}
	if c.empty() {
		es := n.children[pe.GetName()]
		if es.wild == c {
			es.wild = nil
		} else {
			delete(es.keyed, concreteKeys(pe.GetKey()))
		}
		if es.wild == nil && len(es.keyed) == 0 {
			delete(n.children, pe.GetName())
		}
	}
	return true
}

func (n *node[T]) empty() bool { return len(n.vals) == 0 && len(n.children) == 0 }

// match reports the values of n (path lies at or under their pattern) and
// those below that path matches.
func (n *node[T]) match(l lookup[T], path []*gnmi.PathElem) {
	for v := range n.vals {
		l.f(v)
	}
	n.matchBelow(l, path)
}

// matchBelow reports the values of the patterns that continue below n and
// that path (what is left of it at n) matches.
func (n *node[T]) matchBelow(l lookup[T], path []*gnmi.PathElem) {
	if len(n.children) == 0 {
		return
	}
	if len(path) == 0 && l.subtree {
		// path is an ancestor of everything below.
		for _, es := range n.children {
			es.each(func(c *node[T]) { c.all(l.f) })
		}
		return
	}
	if len(path) > 0 {
		pe := path[0]
		if es := n.children[pe.GetName()]; es != nil {
			es.match(l, pe, path[1:])
		}
		if es := n.children[Any]; es != nil {
			es.match(l, pe, path[1:])
		}
	}
	// AnyDepth matches no element or any number of them.
	if es := n.children[AnyDepth]; es != nil && es.wild != nil {
		d := es.wild
		for v := range d.vals {
			l.f(v)
		}
		for i := 0; i <= len(path); i++ {
			d.matchBelow(l, path[i:])
		}
	}
}

// match descends into the children whose keys pe holds.
func (es *edges[T]) match(l lookup[T], pe *gnmi.PathElem, rest []*gnmi.PathElem) {
	if es.wild != nil {
		es.wild.match(l, rest)
	}
	if len(es.keyed) == 0 || len(pe.GetKey()) == 0 {
		return
	}
	keys := pe.GetKey()
	if len(keys) == 1 {
		// Every list of the model has one key: one lookup.
		if c := es.keyed[concreteKeys(keys)]; c != nil {
			c.match(l, rest)
		}
		return
	}
	// A pattern may name any subset of several keys.
	for k, c := range es.keyed {
		if subsetOf(k, keys) {
			c.match(l, rest)
		}
	}
}

// subsetOf reports whether the canonical keys k all appear in keys.
func subsetOf(k string, keys map[string]string) bool {
	for k != "" {
		var name, val string
		name, k = cutCanonical(k)
		val, k = cutCanonical(k)
		if got, ok := keys[name]; !ok || got != val {
			return false
		}
	}
	return true
}

func cutCanonical(s string) (string, string) {
	i := strings.IndexByte(s, ':')
	n, _ := strconv.Atoi(s[:i])
	return s[i+1 : i+1+n], s[i+1+n:]
}

func (es *edges[T]) each(f func(*node[T])) {
	if es.wild != nil {
		f(es.wild)
	}
	for _, c := range es.keyed {
		f(c)
	}
}

// all reports every value at or below n.
func (n *node[T]) all(f func(T)) {
	for v := range n.vals {
		f(v)
	}
	for _, es := range n.children {
		es.each(func(c *node[T]) { c.all(f) })
	}
}
