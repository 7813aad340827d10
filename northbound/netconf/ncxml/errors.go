package ncxml

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"unicode/utf8"
)

// ErrorType is the layer an rpc-error comes from (RFC 6241 section 4.3).
type ErrorType string

// The error types of RFC 6241.
const (
	Transport   ErrorType = "transport"
	RPC         ErrorType = "rpc"
	Protocol    ErrorType = "protocol"
	Application ErrorType = "application"
)

// ErrorSeverity is "error" or "warning".
type ErrorSeverity string

// The error severities of RFC 6241.
const (
	SeverityError   ErrorSeverity = "error"
	SeverityWarning ErrorSeverity = "warning"
)

// ErrorTag names the error condition (RFC 6241 appendix A).
type ErrorTag string

// The error tags of RFC 6241 appendix A.
const (
	TagInUse                 ErrorTag = "in-use"
	TagInvalidValue          ErrorTag = "invalid-value"
	TagTooBig                ErrorTag = "too-big"
	TagMissingAttribute      ErrorTag = "missing-attribute"
	TagBadAttribute          ErrorTag = "bad-attribute"
	TagUnknownAttribute      ErrorTag = "unknown-attribute"
	TagMissingElement        ErrorTag = "missing-element"
	TagBadElement            ErrorTag = "bad-element"
	TagUnknownElement        ErrorTag = "unknown-element"
	TagUnknownNamespace      ErrorTag = "unknown-namespace"
	TagAccessDenied          ErrorTag = "access-denied"
	TagLockDenied            ErrorTag = "lock-denied"
	TagResourceDenied        ErrorTag = "resource-denied"
	TagRollbackFailed        ErrorTag = "rollback-failed"
	TagDataExists            ErrorTag = "data-exists"
	TagDataMissing           ErrorTag = "data-missing"
	TagOperationNotSupported ErrorTag = "operation-not-supported"
	TagOperationFailed       ErrorTag = "operation-failed"
	TagMalformedMessage      ErrorTag = "malformed-message"
)

// ErrorInfo is the content of <error-info>. Empty fields are left out.
type ErrorInfo struct {
	// SessionID is the lock holder for lock-denied (0: a non-NETCONF
	// holder); nil leaves it out.
	SessionID    *uint32
	BadAttribute string
	BadElement   string
	BadNamespace string
	// Extra is raw XML appended inside <error-info>, for example
	// data-model-specific elements in their own namespace. It must be
	// well-formed and declare the namespaces it uses.
	Extra []byte
}

// RPCError is one <rpc-error> of RFC 6241 section 4.3. It is also an error,
// so code can return it and errors.As can find it. Message is shown to the
// client: it must say what to fix and must not carry internal detail.
type RPCError struct {
	Type     ErrorType
	Tag      ErrorTag
	Severity ErrorSeverity // "" means error
	AppTag   string
	// Path is an XPath expression naming the node in error, for example
	// "/pka:authority/pka:router[pka:name='r1']". PathNamespaces binds the
	// prefixes it uses (prefix -> namespace URI).
	Path           string
	PathNamespaces map[string]string
	Message        string
	Info           ErrorInfo
}

// Error returns "rpc-error TYPE/TAG: MESSAGE".
func (e *RPCError) Error() string {
	s := "rpc-error " + string(e.Type) + "/" + string(e.Tag)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// WithPath sets the error-path and the namespaces of its prefixes.
func (e *RPCError) WithPath(path string, namespaces map[string]string) *RPCError {
	e.Path, e.PathNamespaces = path, namespaces
	return e
}

// WithAppTag sets the error-app-tag.
func (e *RPCError) WithAppTag(tag string) *RPCError {
	e.AppTag = tag
	return e
}

// AppendXML appends the <rpc-error> element, in the base namespace by
// default namespace inheritance (it is meant to sit inside <rpc-reply>).
func (e *RPCError) AppendXML(dst []byte) []byte {
	sev := e.Severity
	if sev == "" {
		sev = SeverityError
	}
	dst = append(dst, "<rpc-error>"...)
	dst = appendText(dst, "error-type", string(e.Type))
	dst = appendText(dst, "error-tag", string(e.Tag))
	dst = appendText(dst, "error-severity", string(sev))
	if e.AppTag != "" {
		dst = appendText(dst, "error-app-tag", e.AppTag)
	}
	if e.Path != "" {
		dst = append(dst, "<error-path"...)
		prefixes := make([]string, 0, len(e.PathNamespaces))
		for p := range e.PathNamespaces {
			prefixes = append(prefixes, p)
		}
		slices.Sort(prefixes)
		for _, p := range prefixes {
			dst = appendAttr(dst, "xmlns:"+p, e.PathNamespaces[p])
		}
		dst = append(dst, '>')
		dst = appendEscaped(dst, e.Path)
		dst = append(dst, "</error-path>"...)
	}
	if e.Message != "" {
		dst = append(dst, `<error-message xml:lang="en">`...)
		dst = appendEscaped(dst, e.Message)
		dst = append(dst, "</error-message>"...)
	}
	in := e.Info
	if in.SessionID != nil || in.BadAttribute != "" || in.BadElement != "" || in.BadNamespace != "" || len(in.Extra) > 0 {
		dst = append(dst, "<error-info>"...)
		if in.SessionID != nil {
			dst = appendText(dst, "session-id", strconv.FormatUint(uint64(*in.SessionID), 10))
		}
		if in.BadAttribute != "" {
			dst = appendText(dst, "bad-attribute", in.BadAttribute)
		}
		if in.BadElement != "" {
			dst = appendText(dst, "bad-element", in.BadElement)
		}
		if in.BadNamespace != "" {
			dst = appendText(dst, "bad-namespace", in.BadNamespace)
		}
		dst = append(dst, in.Extra...)
		dst = append(dst, "</error-info>"...)
	}
	return append(dst, "</rpc-error>"...)
}

// AsRPCErrors returns the rpc-errors err carries: an *RPCError or an Errors
// anywhere in its chain. It returns nil if there is none.
func AsRPCErrors(err error) []*RPCError {
	var list Errors
	if errors.As(err, &list) {
		return list
	}
	var e *RPCError
	if errors.As(err, &e) {
		return []*RPCError{e}
	}
	return nil
}

// Errors is a list of rpc-errors returned as one error (RFC 6241 allows
// several <rpc-error> elements in one reply).
type Errors []*RPCError

// Error joins the messages of the errors.
func (l Errors) Error() string {
	var b bytes.Buffer
	for i, e := range l {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// New returns an rpc-error of severity error.
func New(t ErrorType, tag ErrorTag, msg string) *RPCError {
	return &RPCError{Type: t, Tag: tag, Severity: SeverityError, Message: msg}
}

// InUse: the resource is already in use (protocol or application).
func InUse(t ErrorType, msg string) *RPCError { return New(t, TagInUse, msg) }

// InvalidValue: a parameter value is not acceptable (protocol or application).
func InvalidValue(t ErrorType, msg string) *RPCError { return New(t, TagInvalidValue, msg) }

// TooBig: the request or the reply it would need is too large.
func TooBig(t ErrorType, msg string) *RPCError { return New(t, TagTooBig, msg) }

// MissingAttribute: attribute attr of element elem is missing.
func MissingAttribute(t ErrorType, attr, elem, msg string) *RPCError {
	e := New(t, TagMissingAttribute, msg)
	e.Info.BadAttribute, e.Info.BadElement = attr, elem
	return e
}

// BadAttribute: attribute attr of element elem has a bad value.
func BadAttribute(t ErrorType, attr, elem, msg string) *RPCError {
	e := New(t, TagBadAttribute, msg)
	e.Info.BadAttribute, e.Info.BadElement = attr, elem
	return e
}

// UnknownAttribute: attribute attr of element elem is unexpected.
func UnknownAttribute(t ErrorType, attr, elem, msg string) *RPCError {
	e := New(t, TagUnknownAttribute, msg)
	e.Info.BadAttribute, e.Info.BadElement = attr, elem
	return e
}

// MissingElement: an expected element elem is missing.
func MissingElement(t ErrorType, elem, msg string) *RPCError {
	e := New(t, TagMissingElement, msg)
	e.Info.BadElement = elem
	return e
}

// BadElement: element elem has a bad value.
func BadElement(t ErrorType, elem, msg string) *RPCError {
	e := New(t, TagBadElement, msg)
	e.Info.BadElement = elem
	return e
}

// UnknownElement: element elem is unexpected.
func UnknownElement(t ErrorType, elem, msg string) *RPCError {
	e := New(t, TagUnknownElement, msg)
	e.Info.BadElement = elem
	return e
}

// UnknownNamespace: element elem is in the unexpected namespace ns.
func UnknownNamespace(t ErrorType, elem, ns, msg string) *RPCError {
	e := New(t, TagUnknownNamespace, msg)
	e.Info.BadElement, e.Info.BadNamespace = elem, ns
	return e
}

// AccessDenied: the caller's role does not allow the operation.
func AccessDenied(t ErrorType, msg string) *RPCError { return New(t, TagAccessDenied, msg) }

// LockDenied: the lock is held by session holder (0: a non-NETCONF holder).
func LockDenied(holder uint32, msg string) *RPCError {
	e := New(Protocol, TagLockDenied, msg)
	e.Info.SessionID = &holder
	return e
}

// ResourceDenied: the request could not be completed for lack of resources.
func ResourceDenied(t ErrorType, msg string) *RPCError { return New(t, TagResourceDenied, msg) }

// DataExists: create of data that already exists (application).
func DataExists(msg string) *RPCError { return New(Application, TagDataExists, msg) }

// DataMissing: delete or use of data that does not exist (application).
func DataMissing(msg string) *RPCError { return New(Application, TagDataMissing, msg) }

// OperationNotSupported: the operation is not implemented.
func OperationNotSupported(t ErrorType, msg string) *RPCError {
	return New(t, TagOperationNotSupported, msg)
}

// OperationFailed: the operation failed for a reason no other tag covers.
func OperationFailed(t ErrorType, msg string) *RPCError { return New(t, TagOperationFailed, msg) }

// MalformedMessage: the message is not well-formed XML or not acceptable as
// a NETCONF message. RFC 6241 reserves this tag for base:1.1 sessions; see
// ForBase10.
func MalformedMessage(msg string) *RPCError { return New(RPC, TagMalformedMessage, msg) }

// ForBase10 returns the error as a base:1.0 client may receive it:
// malformed-message, new in base:1.1, becomes operation-failed.
func (e *RPCError) ForBase10() *RPCError {
	if e.Tag != TagMalformedMessage {
		return e
	}
	c := *e
	c.Tag = TagOperationFailed
	return &c
}

func appendText(dst []byte, elem, text string) []byte {
	dst = append(dst, '<')
	dst = append(dst, elem...)
	dst = append(dst, '>')
	dst = appendEscaped(dst, text)
	dst = append(dst, "</"...)
	dst = append(dst, elem...)
	return append(dst, '>')
}

func appendAttr(dst []byte, name, value string) []byte {
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, `="`...)
	dst = appendEscaped(dst, value)
	return append(dst, '"')
}

// appendEscaped appends s escaped for text and attribute values; characters
// XML cannot carry become U+FFFD.
func appendEscaped(dst []byte, s string) []byte { return escape(dst, s, true) }

// AppendText appends s escaped for element content in which newlines and
// tabs stay as they are (a PEM value stays readable); characters XML cannot
// carry become U+FFFD. It also does for attribute values that hold no
// whitespace, such as namespace URIs.
func AppendText(dst []byte, s string) []byte { return escape(dst, s, false) }

func escape(dst []byte, s string, whitespace bool) []byte {
	for _, r := range s {
		switch {
		case r == '&':
			dst = append(dst, "&amp;"...)
		case r == '<':
			dst = append(dst, "&lt;"...)
		case r == '>':
			dst = append(dst, "&gt;"...)
		case r == '"':
			dst = append(dst, "&quot;"...)
		case r == '\r':
			dst = append(dst, "&#xD;"...)
		case whitespace && r == '\'':
			dst = append(dst, "&apos;"...)
		case whitespace && r == '\t':
			dst = append(dst, "&#x9;"...)
		case whitespace && r == '\n':
			dst = append(dst, "&#xA;"...)
		default:
			if !isXMLChar(r) {
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
		}
	}
	return dst
}

func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}
