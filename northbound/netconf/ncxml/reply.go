package ncxml

import (
	"errors"
	"strconv"
	"time"
)

type replyKind int

const (
	replyOK replyKind = iota
	replyData
	replyOutput
	replyErrors
)

// Reply is the content of an <rpc-reply>: <ok/>, <data>, rpc output or
// rpc-errors. The zero Reply is <ok/>.
type Reply struct {
	kind replyKind
	body []byte
	errs []*RPCError
}

// OK is the <ok/> reply.
func OK() Reply { return Reply{} }

// Data is a <data> reply; inner is its raw XML content, which must be
// well-formed and declare the namespaces it uses.
func Data(inner []byte) Reply { return Reply{kind: replyData, body: inner} }

// Output is a reply whose raw XML content goes directly inside <rpc-reply>,
// as for the output of a YANG rpc. An empty output is <ok/>.
func Output(body []byte) Reply {
	if len(body) == 0 {
		return OK()
	}
	return Reply{kind: replyOutput, body: body}
}

// Error is a reply of one or more rpc-errors. Without errors it is an
// operation-failed error.
func Error(errs ...*RPCError) Reply {
	if len(errs) == 0 {
		errs = []*RPCError{OperationFailed(Application, "operation failed")}
	}
	return Reply{kind: replyErrors, errs: errs}
}

// ErrorFrom is the reply for err: the rpc-errors in its chain (see
// AsRPCErrors), else an operation-failed error whose message is safeMsg. The
// text of err itself is never sent, as it may hold internal detail.
func ErrorFrom(err error, safeMsg string) Reply {
	if errs := AsRPCErrors(err); errs != nil {
		return Error(errs...)
	}
	if safeMsg == "" {
		safeMsg = "operation failed"
	}
	return Error(OperationFailed(Application, safeMsg))
}

// Errors returns the rpc-errors of the reply (nil unless it is an error
// reply).
func (r Reply) Errors() []*RPCError { return r.errs }

// Err returns the reply's rpc-errors as an error, or nil.
func (r Reply) Err() error {
	switch len(r.errs) {
	case 0:
		return nil
	case 1:
		return r.errs[0]
	}
	return Errors(r.errs)
}

// IsOK reports whether the reply is <ok/>.
func (r Reply) IsOK() bool { return r.kind == replyOK }

// Body returns the raw content of a data or output reply.
func (r Reply) Body() []byte { return r.body }

// MapErrors returns the reply with f applied to each of its rpc-errors.
func (r Reply) MapErrors(f func(*RPCError) *RPCError) Reply {
	if len(r.errs) == 0 {
		return r
	}
	errs := make([]*RPCError, len(r.errs))
	for i, e := range r.errs {
		errs[i] = f(e)
	}
	r.errs = errs
	return r
}

// MarshalReply returns the <rpc-reply> message answering req (nil when the
// request could not be decoded far enough to know its attributes). The reply
// repeats the attributes of <rpc> in the order sent, each prefix
// declared once, and puts itself in the base namespace by a default
// declaration.
func MarshalReply(req *Request, r Reply) []byte {
	dst := make([]byte, 0, 128+len(r.body))
	dst = append(dst, `<rpc-reply xmlns="`+BaseNS+`"`...)
	if req != nil {
		for _, a := range req.echo {
			dst = appendAttr(dst, rawName(a.Name), a.Value)
		}
	}
	dst = append(dst, '>')
	switch r.kind {
	case replyOK:
		dst = append(dst, "<ok/>"...)
	case replyData:
		dst = append(dst, "<data>"...)
		dst = append(dst, r.body...)
		dst = append(dst, "</data>"...)
	case replyOutput:
		dst = append(dst, r.body...)
	case replyErrors:
		for _, e := range r.errs {
			dst = e.AppendXML(dst)
		}
	}
	return append(dst, "</rpc-reply>"...)
}

// MarshalHello returns a server <hello> with the given capabilities and
// session-id.
func MarshalHello(capabilities []string, sessionID uint32) []byte {
	dst := []byte(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<hello xmlns="` + BaseNS + `"><capabilities>`)
	for _, c := range capabilities {
		dst = appendText(dst, "capability", c)
	}
	dst = append(dst, "</capabilities>"...)
	dst = appendText(dst, "session-id", strconv.FormatUint(uint64(sessionID), 10))
	return append(dst, "</hello>"...)
}

// Notification is an RFC 5277 event notification.
type Notification struct {
	EventTime time.Time
	// Body is the raw XML of the event element(s); it must be well-formed
	// and declare its namespaces.
	Body []byte
}

// ErrEmptyNotification reports a notification without content.
var ErrEmptyNotification = errors.New("notification has no content")

// MarshalNotification returns the <notification> message for n.
func MarshalNotification(n Notification) ([]byte, error) {
	if len(n.Body) == 0 {
		return nil, ErrEmptyNotification
	}
	dst := make([]byte, 0, 128+len(n.Body))
	dst = append(dst, `<notification xmlns="`+NotificationNS+`"><eventTime>`...)
	dst = n.EventTime.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, "</eventTime>"...)
	dst = append(dst, n.Body...)
	return append(dst, "</notification>"...), nil
}
