package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/pkiagent/pkiagent/agent/api"

	"google.golang.org/grpc"

	"github.com/pkiagent/pkiagent/northbound/certz"
	"github.com/pkiagent/pkiagent/pki"
)

// gNSI certz on the gNMI port: rotation of the managed certificates (the
// gNxI profile is --tls-cert-name), trust bundles and CRL bundles.
func init() {
	grpcServices = append(grpcServices, setupCertz)
}

func setupCertz(a *app, st serverTLS) (func(*grpc.Server), error) {
	e, ok := a.pki.(*pki.Engine)
	if !ok {
		a.log.Warn("gNSI certz is off: the PKI engine is not running")
		return nil, nil
	}
	if err := e.RecoverRotations(context.Background()); err != nil {
		return nil, fmt.Errorf("certz: undo rotations a restart interrupted: %w", err)
	}
	cfg := certz.Config{
		Engine: certzEngine{e}, CRLs: e, Store: a.store, Logger: a.log,
		ProfilesFile: filepath.Join(a.opts.stateDir, "certz-profiles.json"),
	}
	if m := st.managed; m != nil {
		cfg.ServerCertName = m.Name
		cfg.OnInstalled = func(name string) {
			if name == m.Name {
				m.Reload(context.Background())
			}
		}
	}
	srv, err := certz.New(cfg)
	if err != nil {
		return nil, err
	}
	return srv.Register, nil
}

// certzEngine gives certz the engine's rotations as its interface.
type certzEngine struct{ *pki.Engine }

func (c certzEngine) BeginRotation(name string, caller api.Caller) (certz.Rotation, error) {
	r, err := c.Engine.BeginRotation(name, caller)
	if err != nil {
		return nil, err
	}
	return r, nil
}
