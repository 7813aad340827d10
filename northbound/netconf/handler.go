package netconf

import (
	"context"

	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
)

// Handler answers the rpcs of a session. Rpcs of one session are handled one
// at a time, in order; different sessions call Handle concurrently. The
// server itself answers close-session and protocol errors (no message-id, no
// operation, malformed XML); every other rpc, base operations included,
// reaches Handle. ctx is the session's context: it is cancelled when the
// session ends or the server stops.
type Handler interface {
	Handle(ctx context.Context, s *Session, req *ncxml.Request) ncxml.Reply
}

// SessionObserver is implemented by a Handler that wants to know when
// sessions start and end, for example to release the locks of a session or
// to emit RFC 6470 netconf-session-start and netconf-session-end.
type SessionObserver interface {
	// SessionStart is called after the hello exchange, before the first
	// rpc. An error refuses the session: it is closed.
	SessionStart(s *Session) error
	// SessionEnd is called once for every session whose SessionStart
	// succeeded, after its last rpc, with the session's context cancelled.
	SessionEnd(s *Session, t Termination)
}

// TerminationReason is why a session ended, as in RFC 6470
// netconf-session-end.
type TerminationReason string

// The termination reasons of RFC 6470.
const (
	TermClosed   TerminationReason = "closed"    // close-session
	TermKilled   TerminationReason = "killed"    // kill-session from another session
	TermDropped  TerminationReason = "dropped"   // the transport closed
	TermTimeout  TerminationReason = "timeout"   // idle or write timeout
	TermBadHello TerminationReason = "bad-hello" // unusable client hello
	TermOther    TerminationReason = "other"     // malformed input, shutdown, refusal
)

// Termination says why and by whom a session ended.
type Termination struct {
	Reason TerminationReason
	// KilledBy is the session that ran kill-session (Reason TermKilled).
	KilledBy uint32
}
