package ops

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/openconfig/goyang/pkg/yang"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/internal/redact"
	pkyang "github.com/pkiagent/pkiagent/yang"
)

// NS is the namespace of module pki-authority (its rpcs and
// notifications).
var NS = pkyang.Main.Namespace

// nsOf returns the namespace of the module that defines e.
func nsOf(e *yang.Entry) string { return e.Namespace().Name }

// moduleOf returns the data module whose namespace is ns.
func moduleOf(ns string) (pkyang.Module, bool) {
	for _, m := range pkyang.Modules {
		if m.Namespace == ns && !m.ImportOnly {
			return m, true
		}
	}
	return pkyang.Module{}, false
}

// dataNamespaces lists the namespaces of the data modules, for errors.
func dataNamespaces() string {
	var ns []string
	for _, m := range pkyang.Modules {
		if !m.ImportOnly {
			ns = append(ns, m.Namespace)
		}
	}
	return strings.Join(ns, " and ")
}

// schemaRoot returns the module entry; the embedded module is tested to
// load, so a failure here is a build defect.
func schemaRoot() *yang.Entry {
	e, err := agent.Module()
	if err != nil {
		panic(err)
	}
	return e
}

// isData reports whether e is a data node (not an rpc or notification).
func isData(e *yang.Entry) bool {
	return e.RPC == nil && e.Kind != yang.NotificationEntry
}

// keys returns the key leaf names of list e.
func keys(e *yang.Entry) []string {
	if e.Key == "" {
		return nil
	}
	return strings.Fields(e.Key)
}

// orders caches the statement order of the children of an entry.
var orders sync.Map // *yang.Entry -> map[string]int

// childOrder maps the child names of e to their position in the YANG
// source (uses expanded), so output follows the schema (RFC 7950 7.8.5
// and 7.14.4: list keys first, rpc input and output in order).
func childOrder(e *yang.Entry) map[string]int {
	if m, ok := orders.Load(e); ok {
		return m.(map[string]int)
	}
	m := map[string]int{}
	if e.Node != nil {
		groupings := map[string]*yang.Statement{}
		for _, s := range schemaRoot().Node.Statement().SubStatements() {
			if s.Keyword == "grouping" {
				groupings[s.Argument] = s
			}
		}
		var walk func(s *yang.Statement, depth int)
		walk = func(s *yang.Statement, depth int) {
			for _, c := range s.SubStatements() {
				switch c.Keyword {
				case "leaf", "leaf-list", "container", "list", "anydata", "anyxml":
					if _, dup := m[c.Argument]; !dup {
						m[c.Argument] = len(m)
					}
				case "uses":
					if g := groupings[c.Argument]; g != nil && depth < 8 {
						walk(g, depth+1)
					}
				case "choice", "case":
					walk(c, depth+1)
				}
			}
		}
		walk(e.Node.Statement(), 0)
	}
	for i, k := range keys(e) {
		m[k] = -len(keys(e)) + i
	}
	orders.Store(e, m)
	return m
}

// sortedChildren returns the child entries of e in schema order.
func sortedChildren(e *yang.Entry) []*yang.Entry {
	out := make([]*yang.Entry, 0, len(e.Dir))
	for _, c := range e.Dir {
		out = append(out, c)
	}
	sortEntries(e, out)
	return out
}

func sortEntries(parent *yang.Entry, es []*yang.Entry) {
	ord := childOrder(parent)
	slices.SortFunc(es, func(a, b *yang.Entry) int {
		ia, oka := ord[a.Name]
		ib, okb := ord[b.Name]
		switch {
		case oka && okb:
			return ia - ib
		case oka:
			return -1
		case okb:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// leafValue checks the XML text s of a leaf of type t and returns its
// RFC 7951 JSON value. The error says what is wrong with the value, for an
// operator.
func leafValue(t *yang.YangType, s string) (any, error) {
	if t == nil {
		return s, nil
	}
	trimmed := strings.TrimSpace(s)
	inRange := func(n yang.Number) error {
		if len(t.Range) > 0 && !t.Range.Contains(yang.YangRange{{Min: n, Max: n}}) {
			return fmt.Errorf("%s is outside the allowed range %s", trimmed, t.Range)
		}
		return nil
	}
	switch t.Kind {
	case yang.Yint8, yang.Yint16, yang.Yint32, yang.Yint64, yang.Yuint8, yang.Yuint16, yang.Yuint32, yang.Yuint64:
		n, err := yang.ParseInt(trimmed)
		if err != nil {
			return nil, fmt.Errorf("%s is not an integer (%s)", redact.Value(s), t.Kind)
		}
		// The range of the type and of its base type: agent's checker.
		if err := agent.CheckValue(t, json.Number(n.String())); err != nil {
			return nil, err
		}
		if t.Kind == yang.Yint64 || t.Kind == yang.Yuint64 {
			return n.String(), nil
		}
		return json.Number(n.String()), nil
	case yang.Ydecimal64:
		n, err := yang.ParseDecimal(trimmed, uint8(t.FractionDigits))
		if err != nil {
			return nil, fmt.Errorf("%s is not a decimal number with at most %d fraction digits", redact.Value(s), t.FractionDigits)
		}
		if err := inRange(n); err != nil {
			return nil, err
		}
		return trimmed, nil
	case yang.Ybool:
		switch trimmed {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fmt.Errorf("%s is not a boolean (true or false)", redact.Value(s))
	case yang.Yempty:
		if trimmed != "" {
			return nil, fmt.Errorf("an empty leaf takes no value, got %s", redact.Value(s))
		}
		return []any{nil}, nil
	case yang.Yenum:
		if err := agent.CheckValue(t, trimmed); err != nil {
			return nil, err
		}
		return trimmed, nil
	case yang.Yidentityref:
		// RFC 7951 names an identity by module; XML by prefix. The model
		// has no identityrefs; strip a prefix and pass the name on.
		if i := strings.IndexByte(trimmed, ':'); i >= 0 {
			trimmed = pkyang.Main.Name + ":" + trimmed[i+1:]
		}
		return trimmed, nil
	case yang.Yunion:
		var errs []string
		for _, m := range t.Type {
			v, err := leafValue(m, s)
			if err == nil {
				return v, nil
			}
			errs = append(errs, err.Error())
		}
		return nil, fmt.Errorf("%s matches no member of the union: %s", redact.Value(s), strings.Join(errs, "; "))
	}
	// string, binary, bits, leafref, instance-identifier: text, whose
	// length and patterns agent's checker checks.
	if t.Kind == yang.Ystring {
		if err := agent.CheckValue(t, s); err != nil {
			return nil, err
		}
	}
	return s, nil
}
