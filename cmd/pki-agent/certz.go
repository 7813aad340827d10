package main

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/agent/api"
	"github.com/pkiagent/pkiagent/northbound/certz"
	"github.com/pkiagent/pkiagent/northbound/tlsboot"
	"github.com/pkiagent/pkiagent/pki"
)

// certzConfig configures gNSI certz on the gNMI port: rotation of the
// managed certificates (the gNxI profile is --tls-cert-name, managed),
// trust bundles and CRL bundles.
func certzConfig(opts *options, engine *pki.Engine, store *agent.Store, log *slog.Logger, managed *tlsboot.Managed) certz.Config {
	cfg := certz.Config{
		Engine: certzEngine{engine}, CRLs: engine, Store: store, Logger: log,
		ProfilesFile: filepath.Join(opts.stateDir, "certz-profiles.json"),
	}
	if managed != nil {
		cfg.ServerCertName = managed.Name
		cfg.OnInstalled = func(name string) {
			if name == managed.Name {
				managed.Reload(context.Background())
			}
		}
	}
	return cfg
}

// certzEngine gives certz the engine's rotations as its interface (Go has
// no covariant results: *pki.Rotation becomes certz.Rotation).
type certzEngine struct{ *pki.Engine }

func (c certzEngine) BeginRotation(name string, caller api.Caller) (certz.Rotation, error) {
	r, err := c.Engine.BeginRotation(name, caller)
	if err != nil {
		return nil, err
	}
	return r, nil
}
