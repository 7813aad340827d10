package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"google.golang.org/grpc"

	"github.com/pkiagent/pkiagent/northbound/auth"
	"github.com/pkiagent/pkiagent/northbound/gnmi"
	"github.com/pkiagent/pkiagent/northbound/tlsboot"
)

// The gNMI server: TLS (bootstrapped, operator-given or, later, managed by
// the agent), users and roles, and the gRPC services that share its port.
func init() {
	components = append(components, component{name: "gnmi", setup: setupGNMI})
}

// grpcService adds a service (gNSI certz) to the gNMI port. It gets the
// holder of the server certificate, to swap it after a Rotate; callers are
// authenticated already (gnmi.CallerFrom).
type grpcService func(a *app, certs *tlsboot.Holder) (register func(*grpc.Server), err error)

// grpcServices are registered by the wiring files of this package.
var grpcServices []grpcService

// users is shared by the northbound servers (gNMI, NETCONF), so the first
// admin is created once.
var users = struct {
	once sync.Once
	u    *auth.Users
	err  error
}{}

func openUsers(a *app) (*auth.Users, error) {
	users.once.Do(func() {
		users.u, users.err = auth.Open(auth.Config{
			File: a.opts.usersFile, StateDir: a.opts.stateDir,
			AdminPassword: os.Getenv(auth.AdminPasswordEnv), Logger: a.log,
		})
	})
	return users.u, users.err
}

func setupGNMI(a *app) (func(context.Context) error, error) {
	u, err := openUsers(a)
	if err != nil {
		return nil, err
	}
	srv, err := gnmi.New(gnmi.Config{Store: a.store, Auth: u, Clock: a.clock, Logger: a.log})
	if err != nil {
		return nil, err
	}
	var tlsCfg *tls.Config
	var holder *tlsboot.Holder
	if a.opts.gnmiInsecure {
		a.log.Warn("gNMI serves plaintext (--gnmi-insecure): passwords cross the network in the clear; use it in labs only", "addr", a.opts.gnmiAddr)
	} else {
		var cert tls.Certificate
		if a.opts.tlsCert != "" {
			cert, err = tlsboot.LoadKeyPair(a.opts.tlsCert, a.opts.tlsKey)
		} else {
			cert, err = tlsboot.Bootstrap{Dir: filepath.Join(a.opts.stateDir, "tls"), Clock: a.clock, Logger: a.log}.Ensure()
		}
		if err != nil {
			return nil, err
		}
		if a.opts.tlsCertName != "" {
			a.log.Warn("--tls-cert-name is not available in this build yet; gNMI serves the certificate above until the PKI engine provides the managed one", "name", a.opts.tlsCertName)
		}
		holder = tlsboot.NewHolder(cert)
		var clientCAs *x509.CertPool
		if a.opts.clientCA != "" {
			if clientCAs, err = tlsboot.LoadClientCAs(a.opts.clientCA); err != nil {
				return nil, err
			}
		}
		tlsCfg = tlsboot.ServerConfig(holder, clientCAs)
	}
	var regs []func(*grpc.Server)
	for _, svc := range grpcServices {
		r, err := svc(a, holder)
		if err != nil {
			return nil, err
		}
		if r != nil {
			regs = append(regs, r)
		}
	}
	lis, err := net.Listen("tcp", a.opts.gnmiAddr)
	if err != nil {
		return nil, fmt.Errorf("--gnmi-addr %s: %w", a.opts.gnmiAddr, err)
	}
	return func(ctx context.Context) error { return srv.Serve(ctx, lis, tlsCfg, regs...) }, nil
}
