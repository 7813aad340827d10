package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pkiagent/pkiagent/pki"
	"github.com/pkiagent/pkiagent/pki/keystore/file"
	"github.com/pkiagent/pkiagent/pki/keystore/tpm"
)

// The PKI engine validates and applies every commit, publishes state and
// alarms, and serves the PKI rpcs. It owns the CRL manager (master list in
// DIR/crl, reloaded here by pki.New); the run func polls CRLs and stops
// the manager, delivering its last audit records, before the audit log
// closes (after every component has stopped: see openAudit).
func init() {
	components = append(components, component{name: "pki", setup: setupPKI, engine: true})
}

func setupPKI(a *app) (func(context.Context) error, error) {
	node, _ := os.Hostname()
	al, _, err := a.openAudit()
	if err != nil {
		return nil, err
	}
	closeAll := func() {}
	keys, closeTPM, err := openKeyStores(a)
	if err != nil {
		return nil, err
	}
	if closeTPM != nil {
		closeAll = closeTPM
	}
	e, err := pki.New(context.Background(), pki.Config{
		StateDir: a.opts.stateDir, Node: node, Clock: a.clock, Logger: a.log,
		Bus: a.store.Bus(), Audit: al, Keys: keys, ServerCertName: a.opts.tlsCertName,
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	// Bring the engine in step with the running configuration loaded from
	// disk before any northbound server accepts a request.
	if err := e.Load(context.Background(), a.store.Running()); err != nil {
		closeAll()
		return nil, err
	}
	a.store.AddValidator(e)
	a.store.AddApplier(e)
	a.store.AddStateSource(e)
	a.pki = e
	return func(ctx context.Context) error {
		defer closeAll()
		return e.Run(ctx)
	}, nil
}

// openKeyStores opens the file keystore in DIR/keys and, with --tpm, the TPM
// keystore whose key blobs live in DIR/tpm. closeTPM is nil without a TPM.
func openKeyStores(a *app) (keys map[string]pki.KeyStore, closeTPM func(), err error) {
	fileKeys, err := file.New(filepath.Join(a.opts.stateDir, "keys"), a.log.With("keystore", "file"))
	if err != nil {
		return nil, nil, err
	}
	keys = map[string]pki.KeyStore{"file": fileKeys}
	if a.opts.tpm == "none" || a.opts.tpm == "" {
		return keys, nil, nil
	}
	t, err := tpm.Open(a.opts.tpm)
	if err != nil {
		return nil, nil, fmt.Errorf("--tpm %s: %w", a.opts.tpm, err)
	}
	tpmKeys, err := tpm.New(context.Background(), t, filepath.Join(a.opts.stateDir, "tpm"), a.log.With("keystore", "tpm"))
	if err != nil {
		t.Close()
		return nil, nil, fmt.Errorf("--tpm %s: %w", a.opts.tpm, err)
	}
	keys["tpm"] = tpmKeys
	a.log.Info("TPM keystore ready", "tpm", a.opts.tpm)
	return keys, func() { t.Close() }, nil
}
