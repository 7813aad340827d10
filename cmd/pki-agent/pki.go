package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/pkiagent/pkiagent/pki"
	"github.com/pkiagent/pkiagent/pki/keystore/file"
	"github.com/pkiagent/pkiagent/pki/keystore/tpm"
)

// openKeyStores opens the file keystore in STATE-DIR/keys and, with --tpm,
// the TPM keystore whose key blobs live in STATE-DIR/tpm. closeTPM closes
// the TPM (it does nothing without one).
func openKeyStores(opts *options, log *slog.Logger) (keys map[string]pki.KeyStore, closeTPM func(), err error) {
	fileKeys, err := file.New(filepath.Join(opts.stateDir, "keys"), log.With("keystore", "file"))
	if err != nil {
		return nil, nil, err
	}
	keys = map[string]pki.KeyStore{"file": fileKeys}
	if opts.tpm == "none" || opts.tpm == "" {
		return keys, func() {}, nil
	}
	t, err := tpm.Open(opts.tpm)
	if err != nil {
		return nil, nil, fmt.Errorf("--tpm %s: %w", opts.tpm, err)
	}
	tpmKeys, err := tpm.New(context.Background(), t, filepath.Join(opts.stateDir, "tpm"), log.With("keystore", "tpm"))
	if err != nil {
		t.Close()
		return nil, nil, fmt.Errorf("--tpm %s: %w", opts.tpm, err)
	}
	keys["tpm"] = tpmKeys
	log.Info("TPM keystore ready", "tpm", opts.tpm)
	return keys, func() { t.Close() }, nil
}
