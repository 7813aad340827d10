package ncxml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// XMLNS is the namespace bound to the reserved prefix "xml".
const XMLNS = "http://www.w3.org/XML/1998/namespace"

// MaxDepth bounds element nesting in a message.
const MaxDepth = 256

// maxAttrs bounds the attributes of one element.
const maxAttrs = 256

// frame is one open element.
type frame struct {
	raw   xml.Name   // as written: Space is the prefix
	decls []xml.Attr // its namespace declarations, as written
}

// start is a start tag with its names resolved.
type start struct {
	name   xml.Name   // Space is the namespace URI
	attrs  []xml.Attr // non-declaration attributes, Space resolved
	raw    xml.StartElement
	offset int64 // of '<'
	end    int64 // just past '>'
}

// walker checks that a message is one well-formed, namespace-well-formed
// element without DTD, and yields its elements with resolved names.
type walker struct {
	d        *xml.Decoder
	stack    []frame
	seenRoot bool
}

func newWalker(msg []byte) *walker {
	d := xml.NewDecoder(bytes.NewReader(msg))
	d.Strict = true
	return &walker{d: d}
}

func (w *walker) depth() int { return len(w.stack) }

// lookup resolves a prefix ("" is the default namespace).
func (w *walker) lookup(prefix string) (string, bool) {
	switch prefix {
	case "xml":
		return XMLNS, true
	case "xmlns":
		return "", false
	}
	for i := len(w.stack) - 1; i >= 0; i-- {
		for _, d := range w.stack[i].decls {
			if (prefix == "" && d.Name.Space == "" && d.Name.Local == "xmlns") ||
				(prefix != "" && d.Name.Space == "xmlns" && d.Name.Local == prefix) {
				return d.Value, true
			}
		}
	}
	if prefix == "" {
		return "", true
	}
	return "", false
}

// next returns a *start, an xml.EndElement (raw) or xml.CharData (only inside
// the root), and io.EOF after the root element has closed and the rest of the
// message is blank. Every other error is an *RPCError malformed-message.
func (w *walker) next() (any, error) {
	for {
		off := w.d.InputOffset()
		tok, err := w.d.RawToken()
		if err == io.EOF {
			if !w.seenRoot {
				return nil, malformed("message has no element")
			}
			if len(w.stack) > 0 {
				return nil, malformed(fmt.Sprintf("message ends inside element <%s>", rawName(w.stack[len(w.stack)-1].raw)))
			}
			return nil, io.EOF
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, malformed(fmt.Sprintf("XML syntax error on line %d: %s", se.Line, se.Msg))
			}
			return nil, malformed("XML error: " + err.Error())
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return w.startElement(t, off)
		case xml.EndElement:
			if len(w.stack) == 0 || w.stack[len(w.stack)-1].raw != t.Name {
				return nil, malformed(fmt.Sprintf("unexpected end tag </%s>", rawName(t.Name)))
			}
			w.stack = w.stack[:len(w.stack)-1]
			return t, nil
		case xml.CharData:
			if len(w.stack) == 0 {
				if len(bytes.TrimLeft(t, " \t\r\n")) != 0 {
					return nil, malformed("text outside the root element")
				}
				continue
			}
			return t, nil
		case xml.Directive:
			return nil, malformed("DOCTYPE and other markup declarations are not accepted")
		case xml.ProcInst:
			if t.Target == "xml" && w.seenRoot {
				return nil, malformed("XML declaration after the root element")
			}
		case xml.Comment:
		}
	}
}

func (w *walker) startElement(t xml.StartElement, off int64) (*start, error) {
	if w.seenRoot && len(w.stack) == 0 {
		return nil, malformed(fmt.Sprintf("second root element <%s>", rawName(t.Name)))
	}
	if len(w.stack) >= MaxDepth {
		return nil, malformed(fmt.Sprintf("elements nested deeper than %d", MaxDepth))
	}
	if len(t.Attr) > maxAttrs {
		return nil, malformed(fmt.Sprintf("element <%s> has more than %d attributes", rawName(t.Name), maxAttrs))
	}
	w.seenRoot = true
	f := frame{raw: t.Name}
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			f.decls = append(f.decls, a)
		case a.Name.Space == "xmlns":
			switch {
			case a.Value == "":
				return nil, malformed(fmt.Sprintf("namespace prefix %q bound to an empty name", a.Name.Local))
			case a.Name.Local == "xmlns" || (a.Name.Local == "xml") != (a.Value == XMLNS):
				return nil, malformed(fmt.Sprintf("reserved namespace prefix or name misused: xmlns:%s=%q", a.Name.Local, a.Value))
			}
			f.decls = append(f.decls, a)
		}
	}
	w.stack = append(w.stack, f)
	s := &start{raw: t, offset: off, end: w.d.InputOffset()}
	if t.Name.Space == "xmlns" {
		return nil, malformed(fmt.Sprintf("element <%s> uses the reserved prefix xmlns", rawName(t.Name)))
	}
	uri, ok := w.lookup(t.Name.Space)
	if !ok {
		return nil, malformed(fmt.Sprintf("element <%s> uses undeclared prefix %q", rawName(t.Name), t.Name.Space))
	}
	s.name = xml.Name{Space: uri, Local: t.Name.Local}
	var seen map[xml.Name]bool
	if len(t.Attr) > 16 {
		seen = make(map[xml.Name]bool, len(t.Attr))
	}
	for _, a := range t.Attr {
		if (a.Name.Space == "" && a.Name.Local == "xmlns") || a.Name.Space == "xmlns" {
			continue
		}
		name := xml.Name{Local: a.Name.Local}
		if a.Name.Space != "" {
			uri, ok := w.lookup(a.Name.Space)
			if !ok {
				return nil, malformed(fmt.Sprintf("attribute %s of <%s> uses undeclared prefix %q", rawName(a.Name), rawName(t.Name), a.Name.Space))
			}
			name.Space = uri
		}
		dup := seen[name]
		if seen != nil {
			seen[name] = true
		} else {
			for _, b := range s.attrs {
				dup = dup || b.Name == name
			}
		}
		if dup {
			return nil, malformed(fmt.Sprintf("element <%s> repeats attribute %s", rawName(t.Name), rawName(a.Name)))
		}
		s.attrs = append(s.attrs, xml.Attr{Name: name, Value: a.Value})
	}
	return s, nil
}

// skip reads up to and including the end of the element just started.
func (w *walker) skip() error {
	for d := w.depth(); ; {
		tok, err := w.next()
		if err != nil {
			return err
		}
		if _, ok := tok.(xml.EndElement); ok && w.depth() < d {
			return nil
		}
	}
}

// finish checks the rest of the message.
func (w *walker) finish() error {
	for {
		if _, err := w.next(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

func rawName(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

func malformed(msg string) *RPCError { return MalformedMessage(msg) }
