package ops

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/openconfig/goyang/pkg/yang"

	"github.com/pkiagent/pkiagent/internal/redact"
	pkyang "github.com/pkiagent/pkiagent/yang"
)

// NS is the namespace of module pki-authority (its rpcs and
// notifications).
var NS = pkyang.Main.Namespace

// module is the root of the data model: the goyang entry of pki-authority,
// parsed from the embedded sources, with the top-level nodes of the other
// data modules (pki-agent-system) added. Unlike the ygot schema it keeps
// rpcs, notifications and the AST (for the statement order of children).
// Each top-level node is in its own module's namespace (nsOf).
var module = sync.OnceValues(func() (*yang.Entry, error) {
	ms := yang.NewModules()
	for _, m := range pkyang.Modules {
		src, err := pkyang.Source(m.Name, "")
		if err != nil {
			return nil, err
		}
		if err := ms.Parse(src, m.Name+".yang"); err != nil {
			return nil, fmt.Errorf("parse YANG module %s: %w", m.Name, err)
		}
	}
	if errs := ms.Process(); len(errs) > 0 {
		return nil, fmt.Errorf("process YANG modules: %v", errs)
	}
	main, errs := ms.GetModule(pkyang.Main.Name)
	if len(errs) > 0 {
		return nil, fmt.Errorf("YANG module %s: %v", pkyang.Main.Name, errs)
	}
	root := *main
	root.Dir = maps.Clone(main.Dir)
	for _, m := range pkyang.Modules {
		if m.ImportOnly || m.Name == pkyang.Main.Name {
			continue
		}
		e, errs := ms.GetModule(m.Name)
		if len(errs) > 0 {
			return nil, fmt.Errorf("YANG module %s: %v", m.Name, errs)
		}
		for name, c := range e.Dir {
			if isData(c) {
				root.Dir[name] = c
			}
		}
	}
	return &root, nil
})

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
	e, err := module()
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

// patterns caches compiled YANG patterns.
var patterns sync.Map // string -> *regexp.Regexp (nil: not compilable by Go)

func pattern(p string) *regexp.Regexp {
	if r, ok := patterns.Load(p); ok {
		return r.(*regexp.Regexp)
	}
	r, err := regexp.Compile(`^(?:` + p + `)$`)
	if err != nil {
		r = nil
	}
	patterns.Store(p, r)
	return r
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
		if err := intBounds(t.Kind, n); err != nil {
			return nil, err
		}
		if err := inRange(n); err != nil {
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
		if t.Enum != nil && t.Enum.IsDefined(trimmed) {
			return trimmed, nil
		}
		var names []string
		if t.Enum != nil {
			names = t.Enum.Names()
		}
		return nil, fmt.Errorf("%s is not one of %s", redact.Value(s), strings.Join(names, ", "))
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
	// string, binary, bits, leafref, instance-identifier: text.
	if len(t.Length) > 0 {
		n := yang.FromInt(int64(utf8.RuneCountInString(s)))
		if !t.Length.Contains(yang.YangRange{{Min: n, Max: n}}) {
			return nil, fmt.Errorf("length %d is outside the allowed lengths %s", utf8.RuneCountInString(s), t.Length)
		}
	}
	for _, p := range t.Pattern {
		if r := pattern(p); r != nil && !r.MatchString(s) {
			return nil, fmt.Errorf("%s does not match the pattern %s", redact.Value(s), p)
		}
	}
	return s, nil
}

func intBounds(k yang.TypeKind, n yang.Number) error {
	var lo, hi yang.Number
	switch k {
	case yang.Yint8:
		lo, hi = yang.FromInt(-128), yang.FromInt(127)
	case yang.Yint16:
		lo, hi = yang.FromInt(-32768), yang.FromInt(32767)
	case yang.Yint32:
		lo, hi = yang.FromInt(-1<<31), yang.FromInt(1<<31-1)
	case yang.Yint64:
		lo, hi = yang.FromInt(-1<<63), yang.FromInt(1<<63-1)
	case yang.Yuint8:
		lo, hi = yang.FromInt(0), yang.FromInt(255)
	case yang.Yuint16:
		lo, hi = yang.FromInt(0), yang.FromInt(65535)
	case yang.Yuint32:
		lo, hi = yang.FromInt(0), yang.FromInt(1<<32-1)
	default:
		lo, hi = yang.FromInt(0), yang.FromUint(1<<64-1)
	}
	if n.Less(lo) || hi.Less(n) {
		return fmt.Errorf("%s is outside the range of %s (%s..%s)", n, k, lo, hi)
	}
	return nil
}
