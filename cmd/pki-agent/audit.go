package main

// The audit records this package adds to STATE-DIR/audit.log, beside the
// PKI engine's: a record of every commit (commitAuditor, from the hub's
// config events), of every transition of a confirmed commit
// (confirmAuditor, called by the store) and of the NETCONF operations
// refused for the caller's role (auditedOps).

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/northbound/netconf"
	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
	"github.com/pkiagent/pkiagent/northbound/netconf/ops"
	"github.com/pkiagent/pkiagent/telemetry"
)

// maxAuditedPaths bounds the paths listed in the record of one commit.
const maxAuditedPaths = 64

// commitAuditor writes a record of every commit to the audit log, from the
// config events of the hub.
type commitAuditor struct {
	hub  *telemetry.Bus
	sub  *telemetry.Subscription
	log  *audit.Log
	errs *slog.Logger
}

// newCommitAuditor subscribes to hub now, so that no commit made after it
// returns is missed.
func newCommitAuditor(hub *telemetry.Bus, al *audit.Log, errs *slog.Logger) *commitAuditor {
	return &commitAuditor{hub: hub, sub: hub.Subscribe(4096), log: al, errs: errs}
}

// run writes the records until ctx ends, then those of the events already
// published: the rollback of a pending confirmed commit at shutdown is
// published before the components stop.
func (c *commitAuditor) run(ctx context.Context) error {
	defer func() { c.sub.Close() }()
	for {
		select {
		case ev, ok := <-c.sub.C:
			if !ok {
				if err := c.sub.Err(); err != nil {
					c.errs.Error("audit: fell behind the commits; the records of some are missing", "err", err)
					c.sub = c.hub.Subscribe(4096)
					continue
				}
				return nil
			}
			c.write(ev)
		case <-ctx.Done():
			for {
				select {
				case ev, ok := <-c.sub.C:
					if !ok {
						return nil
					}
					c.write(ev)
				default:
					return nil
				}
			}
		}
	}
}

// write writes the record of a config event: who, the commit id and the
// paths that changed (never their values).
func (c *commitAuditor) write(ev api.Event) {
	if ev.Kind != api.EventConfig {
		return
	}
	var updated, deleted []string
	for _, ch := range ev.Changes {
		p := api.PathString(ch.Path)
		if ch.Value == nil {
			deleted = append(deleted, p)
		} else {
			updated = append(updated, p)
		}
	}
	for _, p := range ev.WriteOnly { // passwords set or deleted: their paths only
		updated = append(updated, api.PathString(p))
	}
	slices.Sort(updated)
	slices.Sort(deleted)
	detail := map[string]any{"commit-id": ev.CommitID, "changes": len(ev.Changes) + len(ev.WriteOnly)}
	if o := ev.Owner.String(); o != "" {
		detail["owner"] = o
	}
	left := maxAuditedPaths
	for _, l := range []struct {
		name  string
		paths []string
	}{{"updated", updated}, {"deleted", deleted}} {
		n := min(len(l.paths), left)
		if n > 0 {
			detail[l.name] = l.paths[:n]
		}
		left -= n
	}
	if omitted := len(ev.Changes) + len(ev.WriteOnly) - (maxAuditedPaths - left); omitted > 0 {
		detail["paths-omitted"] = omitted
	}
	desc := fmt.Sprintf("commit %d by %s: %d leaves updated, %d deleted", ev.CommitID, ev.User, len(updated), len(deleted))
	if err := c.log.Write(audit.Event{Time: ev.Time.UTC(), User: ev.User, Type: "system.commit", Description: desc, Detail: detail, Permitted: true}); err != nil {
		c.errs.Error("audit: writing the record of a commit failed", "commit", ev.CommitID, "err", err)
	}
}

// auditedOps is the NETCONF handler with a record of each operation it
// refuses for the session's role (rpc-error access-denied), coalesced per
// user and operation. The embedded handler's other methods (session
// observer) are promoted.
type auditedOps struct {
	*ops.Handler
	refusals *audit.Coalescer
	clock    clock.Clock
	log      *slog.Logger
}

func (h auditedOps) Handle(ctx context.Context, s *netconf.Session, req *ncxml.Request) ncxml.Reply {
	r := h.Handler.Handle(ctx, s, req)
	for _, e := range r.Errors() {
		if e.Tag != ncxml.TagAccessDenied {
			continue
		}
		op := req.Operation.Local
		source := ""
		if s.RemoteAddr() != nil {
			source = s.RemoteAddr().String()
			if h, _, err := net.SplitHostPort(source); err == nil {
				source = h
			}
		}
		ev := audit.Event{
			Time: h.clock.Now().UTC(), User: s.Username(), Type: "system." + strings.ReplaceAll(op, "-", "_"),
			Description: "NETCONF " + op + " refused: " + e.Message,
			Detail:      map[string]any{"protocol": "netconf", "operation": op, "session-id": s.ID(), "source": source, "role": s.Role()},
		}
		if h.refusals.Coalesce("denied "+s.Username()+" netconf "+op, ev) {
			h.log.Warn("netconf: operation refused for the caller's role", "user", s.Username(), "role", s.Role(), "operation", op, "session", s.ID())
		}
		break
	}
	return r
}

// confirmAuditor writes the transitions of the confirmed-commit machine to
// the audit log as system.confirmed_commit events.
type confirmAuditor struct {
	log  *audit.Log
	errs *slog.Logger
}

func (c confirmAuditor) Audit(ev api.Event) {
	if ev.Kind != api.EventConfirm {
		return
	}
	ch := ev.Confirm
	user := ev.User
	if ev.System {
		user = "system"
	}
	desc := fmt.Sprintf("Confirmed commit %d: %s", ch.Commit, ch.Outcome)
	detail := map[string]any{"commit-id": ch.Commit, "confirm-event": ch.Outcome.String(), "session": ev.Owner.String()}
	if ch.Outcome == api.ConfirmStarted || ch.Outcome == api.ConfirmExtended {
		desc += fmt.Sprintf(" (rolls back in %s unless confirmed)", ch.Timeout.Round(time.Second))
		detail["timeout-seconds"] = int64(ch.Timeout.Round(time.Second) / time.Second)
	}
	if err := c.log.Write(audit.Event{Time: ev.Time, User: user, Type: "system.confirmed_commit", Description: desc, Detail: detail, Permitted: true}); err != nil {
		c.errs.Error("audit log write failed", "type", "system.confirmed_commit", "err", err)
	}
}
