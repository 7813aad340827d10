package ops

import (
	"slices"
	"strings"

	"github.com/openconfig/goyang/pkg/yang"

	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
)

// filter is a subtree filter (RFC 6241 section 6). A nil *filter selects
// everything; a filter without elements selects nothing.
type filter struct {
	nodes []*node
}

// parseFilter reads a <filter> element (nil: no filter). Only subtree
// filters are served; :xpath is not advertised.
func parseFilter(f *node) (*filter, error) {
	if f == nil {
		return nil, nil
	}
	typ, _ := f.attr(ncxml.BaseNS, "type", true)
	switch typ {
	case "", "subtree":
	case "xpath":
		return nil, ncxml.OperationNotSupported(ncxml.Protocol,
			"xpath filters are not supported (the :xpath capability is not advertised); use a subtree filter")
	default:
		return nil, ncxml.BadAttribute(ncxml.Protocol, "type", "filter",
			"filter type "+typ+" is unknown; use type=\"subtree\"")
	}
	if f.hasText() {
		return nil, ncxml.BadElement(ncxml.Protocol, "filter", "a subtree filter holds elements, not text")
	}
	return &filter{nodes: f.children}, nil
}

// apply returns the data nodes the filter selects. Selected subtrees are
// shared with data, not copied; callers must not modify either.
func (f *filter) apply(data []*node) []*node {
	if f == nil {
		return data
	}
	if len(f.nodes) == 0 {
		return nil
	}
	out, _ := selectSiblings(data, f.nodes)
	return out
}

func nameMatch(f, d *node) bool {
	return f.name.Local == d.name.Local && (f.name.Space == "" || f.name.Space == d.name.Space)
}

// selectSiblings applies a sibling set of filter nodes to a sibling set of
// data nodes (RFC 6241 6.2.5). ok is false when a content-match node fails,
// which removes the parent from the result.
func selectSiblings(data, fs []*node) (out []*node, ok bool) {
	var content, others []*node
	for _, f := range fs {
		if f.leaf() && f.hasText() {
			content = append(content, f)
		} else {
			others = append(others, f)
		}
	}
	matches := func(cm, d *node) bool {
		return nameMatch(cm, d) && d.leaf() && strings.TrimSpace(d.text) == strings.TrimSpace(cm.text)
	}
	for _, cm := range content {
		if !slices.ContainsFunc(data, func(d *node) bool { return matches(cm, d) }) {
			return nil, false
		}
	}
	if len(others) == 0 {
		return data, true
	}
	for _, d := range data {
		var sels []*node
		for _, cm := range content {
			if matches(cm, d) {
				sels = append(sels, d)
			}
		}
		for _, f := range others {
			if !nameMatch(f, d) {
				continue
			}
			if f.leaf() { // selection node
				sels = append(sels, d)
				continue
			}
			if kids, ok := selectSiblings(d.children, f.children); ok && (len(kids) > 0 || d.leaf()) {
				sels = append(sels, &node{name: d.name, text: d.text, children: withKeys(d, kids), src: d})
			}
		}
		if s := mergeSelections(d, sels); s != nil {
			out = append(out, s)
		}
	}
	return out, true
}

// withKeys returns the selected children kids of list entry d with d's
// key leaves first, selected or not: an entry without its keys cannot be
// told apart from its siblings (RFC 7950 7.8.5; as libyang-based servers
// and ConfD answer).
func withKeys(d *node, kids []*node) []*node {
	if len(d.keys) == 0 {
		return kids
	}
	isKey := func(n *node) bool { return slices.Contains(d.keys, n.name.Local) }
	out := make([]*node, 0, len(d.keys)+len(kids))
	for _, k := range d.keys {
		i := slices.IndexFunc(kids, func(n *node) bool { return n.name.Local == k })
		if i >= 0 {
			out = append(out, kids[i])
			continue
		}
		if j := slices.IndexFunc(d.children, func(n *node) bool { return n.name.Local == k }); j >= 0 {
			out = append(out, d.children[j])
		}
	}
	for _, n := range kids {
		if !isKey(n) {
			out = append(out, n)
		}
	}
	return out
}

// mergeSelections unites what several filter nodes selected of data node d:
// d whole if any selected it whole, else its children selected by any.
func mergeSelections(d *node, sels []*node) *node {
	switch len(sels) {
	case 0:
		return nil
	case 1:
		return sels[0]
	}
	if slices.Contains(sels, d) {
		return d
	}
	// Each selection holds, in data order, children of d or filtered
	// copies of them; unite them child by child.
	m := &node{name: d.name, text: d.text, src: d}
	for _, c := range d.children {
		var csels []*node
		for _, s := range sels {
			for _, sc := range s.children {
				if sc == c || sc.src == c {
					csels = append(csels, sc)
				}
			}
		}
		if mc := mergeSelections(c, csels); mc != nil {
			m.children = append(m.children, mc)
		}
	}
	return m
}

// withDefaults is an RFC 6243 retrieval mode.
type withDefaults int

const (
	wdExplicit withDefaults = iota // basic mode: what was set
	wdReportAll
	wdReportAllTagged
	wdTrim
)

const wdNS = "urn:ietf:params:xml:ns:netconf:default:1.0"

func parseWithDefaults(n *node) (withDefaults, error) {
	if n == nil {
		return wdExplicit, nil
	}
	switch strings.TrimSpace(n.text) {
	case "explicit":
		return wdExplicit, nil
	case "report-all":
		return wdReportAll, nil
	case "report-all-tagged":
		return wdReportAllTagged, nil
	case "trim":
		return wdTrim, nil
	}
	return 0, ncxml.InvalidValue(ncxml.Protocol, "with-defaults "+strings.TrimSpace(n.text)+
		" is not supported; use explicit, report-all, report-all-tagged or trim")
}

// applyDefaults rewrites the children of a node of schema entry e for the
// mode: report-all adds the default values of absent leaves (in existing
// list entries and in non-presence containers), trim removes leaves equal
// to their default. configOnly skips state.
func applyDefaults(children []*node, e *yang.Entry, mode withDefaults, configOnly bool) []*node {
	if mode == wdExplicit {
		return children
	}
	var out []*node
	present := map[string]bool{}
	for _, c := range children {
		ce := e.Dir[c.name.Local]
		if ce == nil {
			out = append(out, c)
			continue
		}
		present[ce.Name] = true
		if ce.IsLeaf() {
			def, hasDef := ce.SingleDefaultValue()
			isDef := hasDef && strings.TrimSpace(c.text) == def
			switch {
			case mode == wdTrim && isDef:
				continue
			case mode == wdReportAllTagged && isDef:
				c = &node{name: c.name, text: c.text, def: true}
			}
			out = append(out, c)
			continue
		}
		if ce.IsLeafList() {
			out = append(out, c)
			continue
		}
		n := &node{name: c.name, text: c.text, children: applyDefaults(c.children, ce, mode, configOnly), keys: c.keys}
		if mode == wdTrim && !ce.IsList() && len(n.children) == 0 && len(c.children) > 0 {
			continue
		}
		out = append(out, n)
	}
	if mode == wdTrim {
		return out
	}
	added := false
	for _, ce := range sortedChildren(e) {
		if present[ce.Name] || !isData(ce) || (configOnly && ce.ReadOnly()) {
			continue
		}
		ns := nsOf(ce)
		switch {
		case ce.IsLeaf():
			if def, ok := ce.SingleDefaultValue(); ok {
				out = append(out, &node{name: xmlName(ns, ce.Name), text: def, def: mode == wdReportAllTagged})
				added = true
			}
		case ce.IsContainer():
			if kids := applyDefaults(nil, ce, mode, configOnly); len(kids) > 0 {
				out = append(out, &node{name: xmlName(ns, ce.Name), children: kids})
				added = true
			}
		}
	}
	if added {
		sortNodes(e, out)
	}
	return out
}

// sortNodes puts data nodes in schema order (stable, so list entries keep
// their order).
func sortNodes(e *yang.Entry, ns []*node) {
	ord := childOrder(e)
	slices.SortStableFunc(ns, func(a, b *node) int {
		ia, oka := ord[a.name.Local]
		ib, okb := ord[b.name.Local]
		switch {
		case oka && okb:
			return ia - ib
		case oka:
			return -1
		case okb:
			return 1
		}
		return strings.Compare(a.name.Local, b.name.Local)
	})
}
