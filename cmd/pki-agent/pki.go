package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/pki"
)

// The PKI engine validates and applies every commit, publishes state and
// alarms, and serves the PKI rpcs.
func init() {
	components = append(components, component{name: "pki", setup: setupPKI})
}

func setupPKI(a *app) (func(context.Context) error, error) {
	node, _ := os.Hostname()
	al, err := audit.Open(filepath.Join(a.opts.stateDir, "audit.log"), node)
	if err != nil {
		return nil, err
	}
	keys := map[string]pki.KeyStore{}
	if a.opts.tpm != "none" {
		a.log.Warn("--tpm is not available in this build yet; keys go to the file keystore", "tpm", a.opts.tpm)
	}
	e, err := pki.New(context.Background(), pki.Config{
		StateDir: a.opts.stateDir, Node: node, Clock: a.clock, Logger: a.log,
		Bus: a.store.Bus(), Audit: al, Keys: keys,
	})
	if err != nil {
		al.Close()
		return nil, err
	}
	// Bring the engine in step with the running configuration loaded from
	// disk before any northbound server accepts a request.
	if err := e.Load(context.Background(), a.store.Running()); err != nil {
		al.Close()
		return nil, err
	}
	a.store.AddValidator(e)
	a.store.AddApplier(e)
	a.store.AddStateSource(e)
	a.pki = e
	return func(ctx context.Context) error {
		defer al.Close()
		return e.Run(ctx)
	}, nil
}
