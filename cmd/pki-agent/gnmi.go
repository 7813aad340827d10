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
	"github.com/pkiagent/pkiagent/pki"
)

// The gNMI server: TLS (bootstrapped, operator-given or managed by the
// agent with --tls-cert-name), users and roles, and the gRPC services that
// share its port.
func init() {
	components = append(components, component{name: "gnmi", setup: setupGNMI})
}

// serverTLS is the gNMI server certificate as the services on its port see
// it: holder is nil with --gnmi-insecure, managed nil without
// --tls-cert-name.
type serverTLS struct {
	holder  *tlsboot.Holder
	managed *tlsboot.Managed
}

// grpcService adds a service (gNSI certz) to the gNMI port. Services are
// set up when the server starts, after every component (the PKI engine
// too); callers are authenticated already (gnmi.CallerFrom).
type grpcService func(a *app, certs serverTLS) (register func(*grpc.Server), err error)

// grpcServices are registered by the wiring files of this package.
var grpcServices []grpcService

// users is shared by the northbound servers (gNMI, NETCONF): the users of
// the configuration (/system/aaa/user), set up once (users.go).
var users = struct {
	once sync.Once
	u    *auth.Users
	err  error
}{}

func openUsers(a *app) (*auth.Users, error) {
	users.once.Do(func() {
		_, refusals, err := a.openAudit()
		if err != nil {
			users.err = err
			return
		}
		users.u, users.err = setupUsers(a, auth.Config{
			File: a.opts.usersFile, StateDir: a.opts.stateDir,
			AdminPassword: os.Getenv(auth.AdminPasswordEnv), Logger: a.log,
			Clock: a.clock, Audit: refusals,
		})
	})
	return users.u, users.err
}

func setupGNMI(a *app) (func(context.Context) error, error) {
	u, err := openUsers(a)
	if err != nil {
		return nil, err
	}
	_, refusals, err := a.openAudit()
	if err != nil {
		return nil, err
	}
	srv, err := gnmi.New(gnmi.Config{Store: a.store, Auth: u, Audit: refusals, Clock: a.clock, Logger: a.log})
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
		holder = tlsboot.NewHolder(cert)
		var clientCAs *x509.CertPool
		if a.opts.clientCA != "" {
			if clientCAs, err = tlsboot.LoadClientCAs(a.opts.clientCA); err != nil {
				return nil, err
			}
		}
		tlsCfg = tlsboot.ServerConfig(holder, clientCAs)
	}
	if a.opts.tlsCertName != "" && holder == nil {
		a.log.Warn("--tls-cert-name is ignored with --gnmi-insecure", "name", a.opts.tlsCertName)
	}
	lis, err := net.Listen("tcp", a.opts.gnmiAddr)
	if err != nil {
		return nil, fmt.Errorf("--gnmi-addr %s: %w", a.opts.gnmiAddr, err)
	}
	return func(ctx context.Context) error {
		defer lis.Close()
		st := serverTLS{holder: holder}
		if a.opts.tlsCertName != "" && holder != nil {
			e, ok := a.pki.(*pki.Engine)
			if !ok {
				return fmt.Errorf("--tls-cert-name %s: the PKI engine is not running", a.opts.tlsCertName)
			}
			st.managed = &tlsboot.Managed{Holder: holder, Name: a.opts.tlsCertName, Load: e.TLSCertificate, Fallback: *holder.Current(), Logger: a.log}
		}
		var regs []func(*grpc.Server)
		for _, svc := range grpcServices {
			r, err := svc(a, st)
			if err != nil {
				return err
			}
			if r != nil {
				regs = append(regs, r)
			}
		}
		if st.managed == nil {
			return srv.Serve(ctx, lis, tlsCfg, regs...)
		}
		// The managed certificate is in force before the first handshake,
		// and follows every import or rotation of its name.
		st.managed.Reload(ctx)
		wctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); st.managed.Watch(wctx, a.store.Bus()) }()
		err := srv.Serve(ctx, lis, tlsCfg, regs...)
		stop()
		<-done
		return err
	}, nil
}
