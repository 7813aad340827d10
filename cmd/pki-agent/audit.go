package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/northbound/netconf"
	"github.com/pkiagent/pkiagent/northbound/netconf/ncxml"
	"github.com/pkiagent/pkiagent/northbound/netconf/ops"
)

// The audit log, DIR/audit.log: the PKI engine writes its events there;
// this file adds a record of every commit (from the store's config event)
// and of every transition of a confirmed commit (the store's Auditor),
// and the refusals of the northbound servers (logins, operations denied
// to the caller's role) through one Coalescer, so that a flood of them
// writes a few lines. The log is closed after every component has stopped.
func init() {
	components = append(components, component{name: "audit", setup: setupAudit})
}

// openAudit opens the audit log and its coalescer of refusals once; the
// wiring functions that need them call it.
func (a *app) openAudit() (*audit.Log, *audit.Coalescer, error) {
	if a.audit != nil {
		return a.audit, a.refusals, nil
	}
	node, _ := os.Hostname()
	al, err := audit.Open(filepath.Join(a.opts.stateDir, "audit.log"), node)
	if err != nil {
		return nil, nil, err
	}
	a.audit = al
	a.refusals = audit.NewCoalescer(al, a.clock, a.log, 0, 0)
	a.atExit = append(a.atExit, func() {
		a.refusals.Flush()
		al.Close()
	})
	return al, a.refusals, nil
}

// maxAuditedPaths bounds the paths listed in the record of one commit.
const maxAuditedPaths = 64

func setupAudit(a *app) (func(context.Context) error, error) {
	al, refusals, err := a.openAudit()
	if err != nil {
		return nil, err
	}
	// The store hands every transition of the confirmed-commit machine to
	// the auditor, in order, without the bus's risk of loss.
	a.store.AddAuditor(confirmAuditor{log: al, errs: a.log})
	// Subscribed now, so no commit made once the servers run is missed.
	sub := a.store.Bus().Subscribe(4096)
	return func(ctx context.Context) error {
		defer sub.Close()
		done := make(chan struct{})
		go func() { defer close(done); refusals.Run(ctx) }()
		defer func() { <-done }()
		for {
			select {
			case ev, ok := <-sub.C:
				if !ok {
					if err := sub.Err(); err != nil {
						a.log.Error("audit: fell behind the commits; the records of some are missing", "err", err)
						sub = a.store.Bus().Subscribe(4096)
						continue
					}
					return nil
				}
				auditCommit(a, al, ev)
			case <-ctx.Done():
				// The rollback of a pending confirmed commit at shutdown
				// is published before the components stop.
				for {
					select {
					case ev, ok := <-sub.C:
						if !ok {
							return nil
						}
						auditCommit(a, al, ev)
					default:
						return nil
					}
				}
			}
		}
	}, nil
}

// auditCommit writes the record of a config event: who, the commit id and
// the paths that changed (never their values).
func auditCommit(a *app, al *audit.Log, ev api.Event) {
	if ev.Kind != api.EventConfig {
		return
	}
	var updated, deleted []string
	for _, c := range ev.Changes {
		p := api.PathString(c.Path)
		if c.Value == nil {
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
	if ev.Owner != "" {
		detail["owner"] = ev.Owner
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
	if err := al.Write(audit.Event{Time: ev.Time.UTC(), User: ev.User, Type: "system.commit", Description: desc, Detail: detail, Permitted: true}); err != nil {
		a.log.Error("audit: writing the record of a commit failed", "commit", ev.CommitID, "err", err)
	}
}

// auditedOps is the NETCONF handler with a record of each operation it
// refuses for the session's role (rpc-error access-denied), coalesced per
// user and operation. The embedded handler's other methods (session
// observer) are promoted.
type auditedOps struct {
	*ops.Handler
	a        *app
	refusals *audit.Coalescer
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
			Time: h.a.clock.Now().UTC(), User: s.Username(), Type: "system." + strings.ReplaceAll(op, "-", "_"),
			Description: "NETCONF " + op + " refused: " + e.Message,
			Detail:      map[string]any{"protocol": "netconf", "operation": op, "session-id": s.ID(), "source": source, "role": s.Role()},
		}
		if h.refusals.Coalesce("denied "+s.Username()+" netconf "+op, ev) {
			h.a.log.Warn("netconf: operation refused for the caller's role", "user", s.Username(), "role", s.Role(), "operation", op, "session", s.ID())
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
	detail := map[string]any{"commit-id": ch.Commit, "confirm-event": ch.Outcome.String(), "session": ev.Owner}
	if ch.Outcome == api.ConfirmStarted || ch.Outcome == api.ConfirmExtended {
		desc += fmt.Sprintf(" (rolls back in %s unless confirmed)", ch.Timeout.Round(time.Second))
		detail["timeout-seconds"] = int64(ch.Timeout.Round(time.Second) / time.Second)
	}
	if err := c.log.Write(audit.Event{Time: ev.Time, User: user, Type: "system.confirmed_commit", Description: desc, Detail: detail, Permitted: true}); err != nil {
		c.errs.Error("audit log write failed", "type", "system.confirmed_commit", "err", err)
	}
}
