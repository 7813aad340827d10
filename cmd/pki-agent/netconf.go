package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/internal/clock"
	"github.com/pkiagent/pkiagent/northbound/auth"
	"github.com/pkiagent/pkiagent/northbound/netconf"
	"github.com/pkiagent/pkiagent/northbound/netconf/ops"
)

// netconfConfig configures the NETCONF server: SSH on --netconf-addr with
// the host key and authorized_keys in STATE-DIR, the users and roles shared
// with gNMI, and the operations of h, whose refusals are audited.
func netconfConfig(opts *options, h *ops.Handler, users *auth.Users, refusals *audit.Coalescer, clk clock.Clock, log *slog.Logger) netconf.Config {
	return netconf.Config{
		StateDir:      opts.stateDir,
		Handler:       auditedOps{Handler: h, refusals: refusals, clock: clk, log: log},
		Authenticator: netconfLogin{users},
		KeyRole: func(user string) (string, error) {
			role, ok := users.RoleFor(user)
			if !ok {
				return "", fmt.Errorf("user %q is not a configured user (/system/aaa/user)", user)
			}
			return role, nil
		},
		Capabilities:       ops.Capabilities(),
		IdleTimeout:        idleTimeout(opts.netconfIdleTimeout),
		MaxSessionsPerUser: opts.netconfMaxPerUser,
		Clock:              clk,
		Logger:             log,
	}
}

// idleTimeout maps --netconf-idle-timeout (0: never) to
// netconf.Config.IdleTimeout (negative: never).
func idleTimeout(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// netconfLogin checks SSH passwords with the users shared with gNMI.
type netconfLogin struct{ u *auth.Users }

func (l netconfLogin) Authenticate(ctx context.Context, user, password string, remote net.Addr) (string, error) {
	src := ""
	if remote != nil {
		src = remote.String()
	}
	return l.u.Login(ctx, auth.Attempt{User: user, Password: password, Source: src, Protocol: "netconf", Failed: netconf.AuthFailed(ctx)})
}
