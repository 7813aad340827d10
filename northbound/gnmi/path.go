package gnmi

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/goyang/pkg/yang"

	"github.com/pkiagent/pkiagent/agent"
	yangmod "github.com/pkiagent/pkiagent/yang"
)

// errPath: a path is malformed or names nothing in the model. It becomes
// InvalidArgument.
var errPath = errors.New("bad path")

// Limits on paths, so hostile requests cannot make the server walk forever.
const (
	maxPathElems  = 32
	maxPathString = 4096
)

// origins we accept: none, "openconfig" (what many clients send by
// default) and the names of our data modules.
func originOK(o string) bool {
	return o == "" || o == "openconfig" || dataModule(o)
}

// dataModule reports whether name is one of our data modules
// (pki-authority, pki-agent-system).
func dataModule(name string) bool {
	for _, m := range yangmod.Modules {
		if m.Name == name && !m.ImportOnly {
			return true
		}
	}
	return false
}

// fullPath joins a request prefix and a path into one path of elements,
// checks the origin, strips "pki-authority:" module prefixes and checks
// every element against the schema. Wildcards ("*" names and key values,
// "...") are allowed only when wild is true. The target is ignored.
func fullPath(prefix, p *gnmi.Path, wild bool) ([]*gnmi.PathElem, error) {
	for _, x := range []*gnmi.Path{prefix, p} {
		if x == nil {
			continue
		}
		if !originOK(x.GetOrigin()) {
			return nil, fmt.Errorf("%w: origin %s is not served; use no origin, \"openconfig\" or %q", errPath, quoteName(x.GetOrigin()), yangmod.Main.Name)
		}
		if len(x.GetElement()) > 0 && len(x.GetElem()) == 0 {
			return nil, fmt.Errorf("%w: the deprecated path field \"element\" is not supported; use \"elem\"", errPath)
		}
	}
	if prefix.GetOrigin() != "" && p.GetOrigin() != "" && prefix.GetOrigin() != p.GetOrigin() {
		return nil, fmt.Errorf("%w: origin %s in the path differs from %s in the prefix", errPath, quoteName(p.GetOrigin()), quoteName(prefix.GetOrigin()))
	}
	n := len(prefix.GetElem()) + len(p.GetElem())
	if n > maxPathElems {
		return nil, fmt.Errorf("%w: %d elements; at most %d", errPath, n, maxPathElems)
	}
	elems := make([]*gnmi.PathElem, 0, n)
	for _, e := range append(append([]*gnmi.PathElem(nil), prefix.GetElem()...), p.GetElem()...) {
		if e == nil {
			return nil, fmt.Errorf("%w: empty element", errPath)
		}
		name := e.GetName()
		if mod, local, ok := strings.Cut(name, ":"); ok {
			if !dataModule(mod) {
				return nil, fmt.Errorf("%w: module %s of element %s is not served", errPath, quoteName(mod), quoteName(name))
			}
			name = local
		}
		elems = append(elems, &gnmi.PathElem{Name: name, Key: e.GetKey()})
	}
	if err := checkSchema(elems, wild); err != nil {
		return nil, err
	}
	if s := api.PathString(&gnmi.Path{Elem: elems}); len(s) > maxPathString {
		return nil, fmt.Errorf("%w: path longer than %d bytes", errPath, maxPathString)
	}
	return elems, nil
}

// checkSchema checks names and keys against the model.
func checkSchema(elems []*gnmi.PathElem, wild bool) error {
	return checkFrom(agent.RootEntry(), elems, 0, wild)
}

func checkFrom(e *yang.Entry, elems []*gnmi.PathElem, i int, wild bool) error {
	if i == len(elems) {
		return nil
	}
	pe := elems[i]
	at := api.PathString(&gnmi.Path{Elem: elems[:i+1]})
	switch pe.Name {
	case "":
		return fmt.Errorf("%w: %s: empty element name", errPath, at)
	case "...":
		if !wild {
			return fmt.Errorf("%w: %s: wildcards are not allowed here", errPath, at)
		}
		if len(pe.Key) > 0 {
			return fmt.Errorf("%w: %s: \"...\" takes no keys", errPath, at)
		}
		// Anything may follow; check the rest loosely against every
		// descendant is too costly: accept it and let the walk match.
		return nil
	case "*":
		if !wild {
			return fmt.Errorf("%w: %s: wildcards are not allowed here", errPath, at)
		}
		if len(pe.Key) > 0 {
			return fmt.Errorf("%w: %s: \"*\" takes no keys", errPath, at)
		}
		var errs []error
		for _, c := range e.Dir {
			if err := checkFrom(c, elems, i+1, wild); err == nil {
				return nil
			} else {
				errs = append(errs, err)
			}
		}
		if len(errs) == 0 {
			return fmt.Errorf("%w: %s: nothing below %s", errPath, at, api.PathString(&gnmi.Path{Elem: elems[:i]}))
		}
		return errs[0]
	}
	c := e.Dir[pe.Name]
	if c == nil {
		return fmt.Errorf("%w: %s: unknown element %s; %s", errPath, at, quoteName(pe.Name), childNames(e, elems[:i]))
	}
	switch {
	case c.IsList():
		for k, v := range pe.Key {
			if k != c.Key {
				return fmt.Errorf("%w: %s: list %s is keyed by %q, not %s", errPath, at, pe.Name, c.Key, quoteName(k))
			}
			if v == "*" && !wild {
				return fmt.Errorf("%w: %s: wildcards are not allowed here", errPath, at)
			}
		}
		if len(pe.Key) == 0 && !wild {
			return fmt.Errorf("%w: %s: list %s needs its key [%s=...]", errPath, at, pe.Name, c.Key)
		}
	case len(pe.Key) > 0:
		return fmt.Errorf("%w: %s: %s is not a list and takes no keys", errPath, at, pe.Name)
	case c.IsLeaf() || c.IsLeafList():
		if i != len(elems)-1 {
			return fmt.Errorf("%w: %s: leaf %s has no children", errPath, at, pe.Name)
		}
	}
	return checkFrom(c, elems, i+1, wild)
}

// maxQuoted bounds a name from the client quoted in an error, so a request
// never has a long value (or a key pasted by mistake) echoed back whole.
const maxQuoted = 64

// quoteName quotes a name the client sent, cut to maxQuoted bytes.
func quoteName(s string) string {
	if len(s) <= maxQuoted {
		return fmt.Sprintf("%q", s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:cut], len(s))
}

// childNames says which elements may follow the path at (of entry e), for
// an operator who mistyped one.
func childNames(e *yang.Entry, at []*gnmi.PathElem) string {
	names := make([]string, 0, len(e.Dir))
	for n := range e.Dir {
		names = append(names, n)
	}
	if len(names) == 0 {
		return fmt.Sprintf("%s has no children", api.PathString(&gnmi.Path{Elem: at}))
	}
	sort.Strings(names)
	return fmt.Sprintf("%s has %s", api.PathString(&gnmi.Path{Elem: at}), strings.Join(names, ", "))
}

// hasWildcard reports whether elems hold a wildcard or a keyless list.
func hasWildcard(elems []*gnmi.PathElem) bool {
	e := agent.RootEntry()
	for _, pe := range elems {
		if pe.Name == "*" || pe.Name == "..." {
			return true
		}
		for _, v := range pe.Key {
			if v == "*" {
				return true
			}
		}
		if e != nil {
			e = e.Dir[pe.Name]
			if e != nil && e.IsList() && len(pe.Key) == 0 {
				return true
			}
		}
	}
	return false
}

// isContainer reports whether elems name a container. A Get of an empty
// container (no alarm in /alarms) answers with no updates, while a leaf or
// a list entry that does not exist is NotFound.
func isContainer(elems []*gnmi.PathElem) bool {
	e := agent.RootEntry()
	for _, pe := range elems {
		if e = e.Dir[pe.Name]; e == nil {
			return false
		}
	}
	return e.IsContainer()
}
