package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/pkiagent/pkiagent/agent"
	"github.com/pkiagent/pkiagent/audit"
	"github.com/pkiagent/pkiagent/pki"
	"github.com/pkiagent/pkiagent/pki/keystore/file"
	"github.com/pkiagent/pkiagent/pki/keystore/tpm"
)

// The PKI engine validates and applies every commit, publishes state and
// alarms, and serves the PKI rpcs. It owns the CRL manager (master list in
// DIR/crl, reloaded here by pki.New); the run func polls CRLs and stops
// the manager, delivering its last audit records, before the audit log
// closes.
func init() {
	components = append(components, component{name: "pki", setup: setupPKI, engine: true})
}

func setupPKI(a *app) (func(context.Context) error, error) {
	node, _ := os.Hostname()
	al, err := audit.Open(filepath.Join(a.opts.stateDir, "audit.log"), node)
	if err != nil {
		return nil, err
	}
	closeAll := func() {
		al.Close()
	}
	keys, closeTPM, err := openKeyStores(a)
	if err != nil {
		closeAll()
		return nil, err
	}
	if closeTPM != nil {
		closeAll = func() { closeTPM(); al.Close() }
	}
	e, err := pki.New(context.Background(), pki.Config{
		StateDir: a.opts.stateDir, Node: node, Clock: a.clock, Logger: a.log,
		Bus: a.store.Bus(), Audit: al, Keys: keys,
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
	a.store.AddAuditor(confirmAuditor{log: al, errs: a.log})
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

// confirmAuditor writes the transitions of the confirmed-commit machine to
// the audit log as config.confirmed_commit events.
type confirmAuditor struct {
	log  *audit.Log
	errs *slog.Logger
}

func (c confirmAuditor) Audit(ev agent.Event) {
	if ev.Kind != agent.EventConfirm {
		return
	}
	ch := ev.Confirm
	user := ev.User
	if ev.System {
		user = "system"
	}
	desc := fmt.Sprintf("Confirmed commit %d: %s", ch.Commit, ch.Outcome)
	detail := map[string]any{"commit-id": ch.Commit, "confirm-event": ch.Outcome.String(), "session": ev.Owner}
	if ch.Outcome == agent.ConfirmStarted || ch.Outcome == agent.ConfirmExtended {
		desc += fmt.Sprintf(" (rolls back in %s unless confirmed)", ch.Timeout.Round(time.Second))
		detail["timeout-seconds"] = int64(ch.Timeout.Round(time.Second) / time.Second)
	}
	if err := c.log.Write(audit.Event{Time: ev.Time, User: user, Type: "config.confirmed_commit", Description: desc, Detail: detail, Permitted: true}); err != nil {
		c.errs.Error("audit log write failed", "type", "config.confirmed_commit", "err", err)
	}
}
