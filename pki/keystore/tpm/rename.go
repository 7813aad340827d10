package tpm

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/pkiagent/pkiagent/internal/persist"
	"github.com/pkiagent/pkiagent/pki/keystore"
)

// Rename gives the key from the name to, atomically and durably; to must
// not exist (ErrExists: keys are never overwritten). A certz rotation keeps
// the key it replaces under another name until the rotation is finalized.
func (s *Store) Rename(from, to string) error {
	for _, n := range []string{from, to} {
		if err := keystore.ValidateName(n); err != nil {
			return err
		}
	}
	if err := s.names.Reserve(to, s.path(to)); err != nil {
		return err
	}
	defer s.names.Release(to)
	err := persist.Rename(s.path(from), s.path(to))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rename key %s: %w", from, keystore.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("rename key %s to %s: %w", from, to, err)
	}
	s.log.Info("TPM key renamed", "from", from, "to", to)
	return nil
}
