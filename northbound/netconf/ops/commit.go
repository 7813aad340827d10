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
	var persist, persistID string
	if n := ps["persist"]; n != nil {
		persist = n.text
	}
	if n := ps["persist-id"]; n != nil {
		persistID = n.text
	}
	me := owner(s)
	opts := agent.CommitOptions{User: s.Username(), Owner: me, Comment: "NETCONF commit"}
	pending, isPending := h.store.Pending()
	event := ""
	switch {
	case confirmed:
		if isPending {
			if err := samePending(pending, me, persistID); err != nil {
				return ncxml.Error(h.toRPCError(err, "commit"))
			}
			if persist == "" {
				persist = pending.PersistID
			}
		}
		opts.Confirm = &agent.ConfirmOptions{Timeout: timeout, PersistID: persist}
		event = "start"
		if isPending {
			event = "extend"
		}
	case persistID != "":
		// A confirming commit from any session (RFC 6241 8.4.1).
		if !isPending {
			return ncxml.Error(h.toRPCError(agent.ErrNoPendingCommit, "commit"))
		}
		if err := h.store.Confirm(me, persistID); err != nil {
			return ncxml.Error(h.toRPCError(err, "commit"))
		}
		event = "complete"
	case isPending && pending.PersistID != "":
		return ncxml.Error(ncxml.InUse(ncxml.Protocol, fmt.Sprintf(
			"commit: confirmed commit %d (with persist) is pending; confirm it with <persist-id> or cancel it with cancel-commit first", pending.ID)))
	case isPending:
		event = "complete" // a plain commit of its owner confirms it
	}
	if _, err := h.store.CommitCandidate(ctx, opts); err != nil {
		if event == "complete" && persistID != "" {
			h.confirmedEvent(s, "complete", 0)
		}
		return ncxml.Error(h.toRPCError(err, "commit"))
	}
	if event != "" {
		h.confirmedEvent(s, event, timeout)
	}
	return ncxml.OK()
}

// samePending checks that session me may extend the pending commit.
func samePending(p agent.PendingCommit, me, persistID string) error {
	switch {
	case p.PersistID != "" && persistID != p.PersistID:
		return agent.ErrPersistID
	case p.PersistID == "" && p.Owner != me:
		return fmt.Errorf("%w by %s: only that session can extend or confirm it", agent.ErrPendingCommit, p.Owner)
	}
	return nil
}

func (h *Handler) cancelCommit(ctx context.Context, s *netconf.Session, op *node) ncxml.Reply {
	ps, err := params(op, p("persist-id"))
	if err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	if err := canWrite(s, "cancel-commit"); err != nil {
		return ncxml.ErrorFrom(err, "")
	}
	var persistID string
	if n := ps["persist-id"]; n != nil {
		persistID = n.text
	}
	if err := h.store.CancelCommit(ctx, owner(s), persistID); err != nil {
		return ncxml.Error(h.toRPCError(err, "cancel-commit"))
	}
	h.confirmedEvent(s, "cancel", 0)
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
