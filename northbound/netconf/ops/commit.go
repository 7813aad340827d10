package ops

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/northbound/netconf"
	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
)

// commit serves <commit> with RFC 6241 8.3 and 8.4 (:confirmed-commit:1.1).
func (h *Handler) commit(ctx context.Context, s *netconf.Session, op *node) ncxml.Reply {
	ps, err := params(op, p("confirmed"), p("confirm-timeout"), p("persist"), p("persist-id"))
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	if err := canWrite(s, "commit"); err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	confirmed := ps["confirmed"] != nil
	timeout := DefaultConfirmTimeout
	if n := ps["confirm-timeout"]; n != nil {
		secs, err := strconv.ParseUint(strings.TrimSpace(n.text), 10, 32)
		if err != nil || secs == 0 {
			return ncxml.Error(ncxml.InvalidValue(ncxml.Protocol, fmt.Sprintf("confirm-timeout %q must be a number of seconds from 1 to 4294967295", n.text)))
		}
		timeout = time.Duration(secs) * time.Second
	}
	if !confirmed && (ps["confirm-timeout"] != nil || ps["persist"] != nil) {
		return ncxml.Error(ncxml.InvalidValue(ncxml.Protocol, "confirm-timeout and persist need <confirmed/>"))
	}
	opts := agent.CommitOptions{User: s.Username(), Owner: owner(s), Comment: "NETCONF commit"}
	if n := ps["persist-id"]; n != nil {
		opts.PersistID = n.text
	}
	if confirmed {
		opts.Confirm = &agent.ConfirmOptions{Timeout: timeout}
		if n := ps["persist"]; n != nil {
			opts.Confirm.Persist = n.text
		}
	}
	// The store decides what the commit does to a pending confirmed
	// commit (start, extend, confirm) and reports it on the bus, from
	// which netconf-confirmed-commit is sent (notify.go).
	if _, err := h.store.CommitCandidate(ctx, opts); err != nil {
		return ncxml.Error(h.toRPCError(err, "commit"))
	}
	return ncxml.OK()
}

func (h *Handler) cancelCommit(ctx context.Context, s *netconf.Session, op *node) ncxml.Reply {
	ps, err := params(op, p("persist-id"))
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	if err := canWrite(s, "cancel-commit"); err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	opts := agent.CommitOptions{User: s.Username(), Owner: owner(s)}
	if n := ps["persist-id"]; n != nil {
		opts.PersistID = n.text
	}
	if err := h.store.CancelCommit(ctx, opts); err != nil {
		return ncxml.Error(h.toRPCError(err, "cancel-commit"))
	}
	return ncxml.OK()
}

func (h *Handler) killSession(ctx context.Context, s *netconf.Session, op *node) ncxml.Reply {
	ps, err := params(op, p("session-id"))
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	if err := canWrite(s, "kill-session"); err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	n := ps["session-id"]
	if n == nil {
		return ncxml.Error(ncxml.MissingElement(ncxml.Protocol, "session-id", "kill-session needs <session-id>"))
	}
	id, err := strconv.ParseUint(strings.TrimSpace(n.text), 10, 32)
	if err != nil || id == 0 {
		return ncxml.Error(ncxml.InvalidValue(ncxml.Protocol, fmt.Sprintf("session-id %q is not a session number", n.text)))
	}
	if uint32(id) == s.ID() {
		return ncxml.Error(ncxml.InvalidValue(ncxml.Protocol, "kill-session cannot end the session that sends it; use close-session"))
	}
	h.mu.Lock()
	victim := h.sessions[uint32(id)]
	h.mu.Unlock()
	if err := s.KillSession(uint32(id)); err != nil {
		if errors.Is(err, netconf.ErrNoSession) {
			return ncxml.Error(ncxml.InvalidValue(ncxml.Protocol, fmt.Sprintf("there is no session %d", id)))
		}
		return ncxml.Error(h.toRPCError(err, "kill-session"))
	}
	// Answer once the victim's locks are released and its confirmed
	// commit rolled back (RFC 6241 7.9).
	if victim != nil {
		select {
		case <-victim.done:
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			h.log.Warn("netconf: killed session has not ended yet", "session", id)
		}
	}
	return ncxml.OK()
}
