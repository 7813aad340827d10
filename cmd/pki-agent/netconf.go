package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/pkiagent/pkiagent/agent/api"

	"github.com/pkiagent/pkiagent/northbound/auth"
	"github.com/pkiagent/pkiagent/northbound/netconf"
	"github.com/pkiagent/pkiagent/northbound/netconf/ops"
)

// The NETCONF server: SSH on --netconf-addr with the host key and
// authorized_keys in STATE-DIR, the users and roles shared with
// gNMI, and the operations over the datastore and the PKI engine.
func init() {
	components = append(components, component{name: "netconf", setup: setupNETCONF})
}

// idleTimeout maps --netconf-idle-timeout (0: never) to
// netconf.Config.IdleTimeout (negative: never).
func idleTimeout(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func setupNETCONF(a *app) (func(context.Context) error, error) {
	u, err := openUsers(a)
	if err != nil {
		return nil, err
	}
	// The pki component may be set up after this one: read a.pki at each
	// rpc, once every component is set up.
	h, err := ops.New(ops.Config{Store: a.store, PKI: func() api.PKI { return a.pki }, Clock: a.clock, Logger: a.log})
	if err != nil {
		return nil, err
	}
	_, refusals, err := a.openAudit()
	if err != nil {
		return nil, err
	}
	srv, err := netconf.NewServer(netconf.Config{
		StateDir:      a.opts.stateDir,
		Handler:       auditedOps{Handler: h, a: a, refusals: refusals},
		Authenticator: netconfLogin{u},
		KeyRole: func(user string) (string, error) {
			role, ok := u.RoleFor(user)
			if !ok {
				return "", fmt.Errorf("user %q is not a configured user (/system/aaa/user)", user)
			}
			return role, nil
		},
		Capabilities:       ops.Capabilities(),
		IdleTimeout:        idleTimeout(a.opts.netconfIdleTimeout),
		MaxSessionsPerUser: a.opts.netconfMaxPerUser,
		Clock:              a.clock,
		Logger:             a.log,
	})
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", a.opts.netconfAddr)
	if err != nil {
		return nil, fmt.Errorf("--netconf-addr %s: %w", a.opts.netconfAddr, err)
	}
	return func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var wg sync.WaitGroup
		wg.Go(func() { h.Run(ctx) })
		err := srv.Serve(ctx, lis)
		cancel()
		wg.Wait()
		return err
	}, nil
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
