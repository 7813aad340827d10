package ops

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"sort"
	"strings"

	"github.com/openconfig/goyang/pkg/yang"

	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
)

// node is an XML element: decoded from a request (config, filter, rpc
// input) or built from a datastore tree for a reply. Names carry namespace
// URIs, never prefixes.
// setNamespace moves n and its descendants in namespace from to namespace to.
func (n *node) setNamespace(from, to string) {
	if n.name.Space == from {
		n.name.Space = to
	}
	for _, c := range n.children {
		c.setNamespace(from, to)
	}
}

type node struct {
	name     xml.Name
	attrs    []xml.Attr // attributes other than namespace declarations
	text     string     // character data (leaves)
	children []*node
	// def marks a value reported because it is the schema default
	// (with-defaults report-all-tagged).
	def bool
	// nsDecl are prefix declarations the text needs (instance-identifier).
	nsDecl map[string]string
	// src is the data node a filtered copy stands for.
	src *node
	// keys names the key leaves of a list entry, which a subtree filter
	// always returns with any part of the entry (RFC 7950 7.8.5).
	keys []string
}

func xmlName(ns, local string) xml.Name { return xml.Name{Space: ns, Local: local} }

func (n *node) leaf() bool { return len(n.children) == 0 }

// attr returns the value of the attribute named local in namespace ns
// (or in no namespace when lenient is true).
func (n *node) attr(ns, local string, lenient bool) (string, bool) {
	for _, a := range n.attrs {
		if a.Name.Local == local && (a.Name.Space == ns || (lenient && a.Name.Space == "")) {
			return a.Value, true
		}
	}
	return "", false
}

// child returns the first child named local.
func (n *node) child(local string) *node {
	for _, c := range n.children {
		if c.name.Local == local {
			return c
		}
	}
	return nil
}

// decodeTree reads the element that start opens, up to its end tag. The
// decoder is ncxml's, so the input is already known to be well-formed,
// bounded in depth and free of DOCTYPE.
func decodeTree(d *xml.Decoder, start xml.StartElement) (*node, error) {
	n := &node{name: start.Name}
	for _, a := range start.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		n.attrs = append(n.attrs, a)
	}
	var text []byte
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("decode <%s>: %w", start.Name.Local, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			c, err := decodeTree(d, t)
			if err != nil {
				return nil, err
			}
			n.children = append(n.children, c)
		case xml.CharData:
			text = append(text, t...)
		case xml.EndElement:
			n.text = string(text)
			return n, nil
		}
	}
}

// hasText reports whether the element holds non-whitespace text.
func (n *node) hasText() bool { return strings.TrimSpace(n.text) != "" }

// appendXML writes n and its children; a namespace is declared on an
// element only when it differs from its parent's.
func (n *node) appendXML(dst []byte, parentNS string) []byte {
	dst = append(dst, '<')
	dst = append(dst, n.name.Local...)
	if n.name.Space != parentNS {
		dst = append(dst, ` xmlns="`...)
		dst = ncxml.AppendText(dst, n.name.Space)
		dst = append(dst, '"')
	}
	for pfx, uri := range n.nsDecl {
		dst = append(dst, ` xmlns:`+pfx+`="`...)
		dst = ncxml.AppendText(dst, uri)
		dst = append(dst, '"')
	}
	if n.def {
		dst = append(dst, ` xmlns:wd="`+wdNS+`" wd:default="true"`...)
	}
	if len(n.children) == 0 && n.text == "" {
		return append(dst, "/>"...)
	}
	dst = append(dst, '>')
	if len(n.children) == 0 {
		dst = ncxml.AppendText(dst, n.text)
	}
	for _, c := range n.children {
		dst = c.appendXML(dst, n.name.Space)
	}
	dst = append(dst, "</"...)
	dst = append(dst, n.name.Local...)
	return append(dst, '>')
}

// marshalNodes writes a list of sibling elements.
func marshalNodes(ns []*node, parentNS string) []byte {
	var dst []byte
	for _, n := range ns {
		dst = n.appendXML(dst, parentNS)
	}
	return dst
}

// decodeJSON parses RFC 7951 JSON keeping numbers exact.
func decodeJSON(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// fromJSON builds the XML elements of the children of entry e from the
// RFC 7951 object obj (module-qualified or plain member names), in schema
// order. Members the schema does not know are left out.
func fromJSON(e *yang.Entry, ns string, obj map[string]any) []*node {
	names := make([]string, 0, len(obj))
	byName := make(map[string]any, len(obj))
	for k, v := range obj {
		if i := strings.IndexByte(k, ':'); i >= 0 {
			k = k[i+1:]
		}
		if e.Dir[k] == nil {
			continue
		}
		names = append(names, k)
		byName[k] = v
	}
	ord := childOrder(e)
	sort.Slice(names, func(i, j int) bool {
		oi, iok := ord[names[i]]
		oj, jok := ord[names[j]]
		if iok && jok {
			return oi < oj
		}
		if iok != jok {
			return iok
		}
		return names[i] < names[j]
	})
	var out []*node
	for _, name := range names {
		c := e.Dir[name]
		v := byName[name]
		cns := ns
		if e == schemaRoot() {
			cns = nsOf(c)
		}
		xn := xml.Name{Space: cns, Local: name}
		switch {
		case c.IsList():
			arr, _ := v.([]any)
			for _, item := range arr {
				m, ok := item.(map[string]any)
				if !ok {
					continue
				}
				out = append(out, &node{name: xn, children: fromJSON(c, cns, m), keys: keys(c)})
			}
		case c.IsLeafList():
			arr, _ := v.([]any)
			for _, item := range arr {
				out = append(out, &node{name: xn, text: jsonText(item)})
			}
		case c.IsLeaf():
			out = append(out, &node{name: xn, text: jsonText(v)})
		default:
			m, ok := v.(map[string]any)
			if !ok {
				continue
			}
			out = append(out, &node{name: xn, children: fromJSON(c, cns, m)})
		}
	}
	return out
}

// jsonText is the XML text of an RFC 7951 scalar.
func jsonText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "true"
		}
		return "false"
	case nil, []any: // empty: [null]
		return ""
	}
	return fmt.Sprint(v)
}
