package main

import (
	"encoding/xml"
	"fmt"
	"slices"
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
)

// Namespaces of the modules whose top-level containers pkictl edits.
var moduleNS = map[string]string{
	"authority": "urn:pkiagent:yang:pki-authority",
	"system":    "urn:pkiagent:yang:pki-agent-system",
}

// parsePath reads a gNMI path string such as
// /authority/router[name=r1]/peer[name=p1]/identifier. Key values may hold
// '/' and ']' escaped as '\]' (URLs do: certificate-revocation-list[url=http://h/c.crl]).
func parsePath(s string) (*gpb.Path, error) {
	if !strings.HasPrefix(s, "/") {
		return nil, usagef("path %q: must start with /", clip(s))
	}
	p := &gpb.Path{}
	rest := s[1:]
	for rest != "" {
		e := &gpb.PathElem{}
		i := 0
		for i < len(rest) && rest[i] != '/' && rest[i] != '[' {
			i++
		}
		e.Name = rest[:i]
		if e.Name == "" {
			return nil, usagef("path %q: empty element", clip(s))
		}
		rest = rest[i:]
		for strings.HasPrefix(rest, "[") {
			eq := strings.IndexByte(rest, '=')
			if eq < 0 {
				return nil, usagef("path %q: key without '=' in %s", clip(s), e.Name)
			}
			k := rest[1:eq]
			var v strings.Builder
			j := eq + 1
			for ; j < len(rest) && rest[j] != ']'; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
				}
				v.WriteByte(rest[j])
			}
			if j == len(rest) {
				return nil, usagef("path %q: unclosed [ in %s", clip(s), e.Name)
			}
			if k == "" || v.Len() == 0 {
				return nil, usagef("path %q: empty key name or value in %s", clip(s), e.Name)
			}
			if e.Key == nil {
				e.Key = map[string]string{}
			}
			e.Key[k] = v.String()
			rest = rest[j+1:]
		}
		p.Elem = append(p.Elem, e)
		switch {
		case rest == "":
		case rest[0] == '/':
			rest = rest[1:]
			if rest == "" {
				return nil, usagef("path %q: ends with /", clip(s))
			}
		default:
			return nil, usagef("path %q: unexpected %q after %s", clip(s), rest[:1], e.Name)
		}
	}
	if len(p.Elem) == 0 {
		return nil, usagef("path %q: names nothing", clip(s))
	}
	return p, nil
}

// configPath is a path into the configuration.
func configPath(s string) (*gpb.Path, error) {
	p, err := parsePath(s)
	if err != nil {
		return nil, err
	}
	if _, ok := moduleNS[p.Elem[0].Name]; !ok {
		return nil, usagef("path %q: the configuration starts at /authority or /system", clip(s))
	}
	return p, nil
}

// pathString writes a path back as parsePath reads it.
func pathString(p *gpb.Path) string {
	var b strings.Builder
	for _, e := range p.GetElem() {
		b.WriteString("/" + e.Name)
		for _, k := range sortedKeys(e.Key) {
			v := strings.ReplaceAll(e.Key[k], "]", `\]`)
			fmt.Fprintf(&b, "[%s=%s]", k, v)
		}
	}
	return b.String()
}

// editXML is the <config> content of an edit-config that sets the leaf at
// p to value (value nil: deletes the node at p). List keys come first in
// each entry, as RFC 6241 wants.
func editXML(p *gpb.Path, value *string) string {
	var b strings.Builder
	elems := p.GetElem()
	for i, e := range elems {
		b.WriteString("<" + e.Name)
		if i == 0 {
			fmt.Fprintf(&b, ` xmlns="%s"`, moduleNS[e.Name])
		}
		last := i == len(elems)-1
		if last && value == nil {
			b.WriteString(` xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:operation="delete"`)
		}
		b.WriteString(">")
		for _, k := range sortedKeys(e.Key) {
			fmt.Fprintf(&b, "<%s>%s</%s>", k, escape(e.Key[k]), k)
		}
		if last && value != nil {
			b.WriteString(escape(*value))
		}
	}
	for i := len(elems) - 1; i >= 0; i-- {
		b.WriteString("</" + elems[i].Name + ">")
	}
	return b.String()
}

func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// clip shortens what an operator typed for an error line.
func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
