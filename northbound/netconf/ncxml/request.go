// Package ncxml decodes NETCONF messages (hello and rpc) and encodes replies,
// rpc-errors, hellos and notifications, per RFC 6241 and RFC 5277.
//
// Decoding is defensive: a message must be one well-formed,
// namespace-well-formed element; DOCTYPE (and so every entity declaration,
// billion laughs and external entities included) is refused, as are
// undeclared prefixes, repeated attributes, nesting deeper than MaxDepth and
// any entity other than the five predefined ones. Such messages fail with a
// malformed-message *RPCError, after which the session must end. The message
// size is bounded by the framing layer (see package framing).
package ncxml

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Namespaces and capabilities of RFC 6241 and RFC 5277.
const (
	BaseNS         = "urn:ietf:params:xml:ns:netconf:base:1.0"
	NotificationNS = "urn:ietf:params:xml:ns:netconf:notification:1.0"
	CapBase10      = "urn:ietf:params:netconf:base:1.0"
	CapBase11      = "urn:ietf:params:netconf:base:1.1"
)

// Hello is a decoded <hello> message.
type Hello struct {
	Capabilities []string
	// SessionID is the session-id element; HasSessionID reports whether it
	// was present (a client must not send one).
	SessionID    uint32
	HasSessionID bool
}

// Has reports whether the hello lists capability uri, ignoring any
// "?parameters" on the listed capabilities.
func (h *Hello) Has(uri string) bool {
	for _, c := range h.Capabilities {
		if c == uri || (strings.HasPrefix(c, uri) && c[len(uri)] == '?') {
			return true
		}
	}
	return false
}

// ParseHello decodes a <hello> message. Unknown elements are ignored.
func ParseHello(msg []byte) (*Hello, error) {
	w := newWalker(msg)
	tok, err := w.next()
	if err != nil {
		return nil, err
	}
	root, ok := tok.(*start)
	if !ok || root.name != (xml.Name{Space: BaseNS, Local: "hello"}) {
		return nil, malformed("expected <hello> in namespace " + BaseNS)
	}
	h := &Hello{}
	var text []byte
	for {
		tok, err := w.next()
		if err == io.EOF {
			return h, nil
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case *start:
			text = text[:0]
		case xml.CharData:
			text = append(text, t...)
		case xml.EndElement:
			if t.Name.Local == "capability" && w.depth() == 2 {
				if c := strings.TrimSpace(string(text)); c != "" {
					h.Capabilities = append(h.Capabilities, c)
				}
			}
			if t.Name.Local == "session-id" && w.depth() == 1 {
				id, err := strconv.ParseUint(strings.TrimSpace(string(text)), 10, 32)
				if err != nil || id == 0 {
					return nil, malformed(fmt.Sprintf("bad session-id %q in hello", text))
				}
				h.SessionID, h.HasSessionID = uint32(id), true
			}
			text = text[:0]
		}
	}
}

// Request is a decoded <rpc>.
type Request struct {
	// MessageID is the message-id attribute.
	MessageID string
	// Attrs are the other attributes of <rpc> (namespace declarations
	// aside), with Name.Space the namespace URI.
	Attrs []xml.Attr
	// Operation is the name of the operation element; Space is its
	// namespace URI ("" when the client put it in no namespace).
	Operation xml.Name
	// Element is the operation element exactly as sent, and Inner its
	// content. Prefixes in them may be declared on <rpc>: see Namespaces,
	// Decoder and Unmarshal.
	Element []byte
	Inner   []byte
	// Namespaces are the namespace declarations of <rpc> as written
	// (Name.Space "xmlns" and Local the prefix, or Local "xmlns" for the
	// default namespace), in scope for Element.
	Namespaces []xml.Attr

	// echo are the attributes the reply repeats, as written, with the
	// declarations their prefixes need.
	echo []xml.Attr
}

// ParseRPC decodes an <rpc> message. Errors are *RPCError values. A
// malformed-message error means the message could not be understood and the
// session must end; req is then nil. For other errors (no message-id, no or
// several operations, a root other than rpc) req, when not nil, holds what
// the reply must echo, and the session goes on.
func ParseRPC(msg []byte) (req *Request, err error) {
	w := newWalker(msg)
	tok, err := w.next()
	if err != nil {
		return nil, err
	}
	root := tok.(*start) // the first token is always the root start tag
	if root.name != (xml.Name{Space: BaseNS, Local: "rpc"}) {
		if err := w.finish(); err != nil {
			return nil, err
		}
		return nil, UnknownElement(Protocol, root.raw.Name.Local,
			fmt.Sprintf("expected <rpc> in namespace %s, got <%s> in namespace %q", BaseNS, root.name.Local, root.name.Space))
	}
	req = &Request{}
	hasID := false
	for _, a := range root.raw.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			req.Namespaces = append(req.Namespaces, a)
		}
	}
	for i, a := range root.attrs {
		raw := root.raw.Attr[rawIndex(root.raw.Attr, i)]
		req.echo = appendEcho(req.echo, raw, req.Namespaces)
		if a.Name == (xml.Name{Local: "message-id"}) {
			req.MessageID, hasID = a.Value, true
			continue
		}
		req.Attrs = append(req.Attrs, a)
	}
	var rpcErr *RPCError
	ops := 0
	for {
		tok, err := w.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case *start:
			ops++
			if ops > 1 {
				if rpcErr == nil {
					rpcErr = UnknownElement(RPC, t.name.Local, fmt.Sprintf("<rpc> holds more than one operation: unexpected <%s>", t.name.Local))
				}
				if err := w.skip(); err != nil {
					return nil, err
				}
				continue
			}
			req.Operation = t.name
			if err := w.skip(); err != nil {
				return nil, err
			}
			end := w.d.InputOffset()
			req.Element = msg[t.offset:end]
			if inner := msg[t.end:end]; len(inner) > 0 {
				// Drop the end tag: from the last "</" on.
				req.Inner = inner[:bytes.LastIndex(inner, []byte("</"))]
			}
		case xml.CharData:
			if len(bytes.TrimLeft(t, " \t\r\n")) != 0 && rpcErr == nil {
				rpcErr = BadElement(RPC, "rpc", "<rpc> holds text; it must hold only the operation element")
			}
		}
	}
	switch {
	case !hasID:
		return req, MissingAttribute(RPC, "message-id", "rpc", "<rpc> has no message-id attribute")
	case rpcErr != nil:
		return req, rpcErr
	case ops == 0:
		return req, MissingElement(RPC, "rpc", "<rpc> holds no operation")
	}
	return req, nil
}

// rawIndex maps the index of a resolved attribute (declarations left out)
// to its index among the raw attributes.
func rawIndex(raw []xml.Attr, i int) int {
	for j, a := range raw {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		if i == 0 {
			return j
		}
		i--
	}
	panic("ncxml: attribute index out of range")
}

// appendEcho adds attribute a (as written) and, for a prefixed one, the
// declaration of its prefix if not yet there.
func appendEcho(echo []xml.Attr, a xml.Attr, decls []xml.Attr) []xml.Attr {
	echo = append(echo, a)
	p := a.Name.Space
	if p == "" || p == "xml" {
		return echo
	}
	for _, e := range echo {
		if e.Name.Space == "xmlns" && e.Name.Local == p {
			return echo
		}
	}
	for _, d := range decls {
		if d.Name.Space == "xmlns" && d.Name.Local == p {
			return append(echo, d)
		}
	}
	return echo
}

// Decoder returns a decoder whose next token is the start of the operation
// element, with the namespace declarations of <rpc> in scope.
func (r *Request) Decoder() *xml.Decoder {
	var b bytes.Buffer
	b.WriteString("<ncxml-rpc")
	for _, a := range r.Namespaces {
		b.Write(appendAttr(nil, rawName(a.Name), a.Value))
	}
	b.WriteByte('>')
	b.Write(r.Element)
	b.WriteString("</ncxml-rpc>")
	d := xml.NewDecoder(&b)
	d.Strict = true
	_, _ = d.Token() // the wrapper, validated when the rpc was parsed
	return d
}

// Unmarshal decodes the operation element into v, as xml.Unmarshal does.
func (r *Request) Unmarshal(v any) error {
	if err := r.Decoder().Decode(v); err != nil {
		return fmt.Errorf("decode <%s>: %w", r.Operation.Local, err)
	}
	return nil
}
